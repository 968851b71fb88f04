"""read_arch: the architecture load_vjepa would build, without building it; the same errors for bad files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.conftest import HF, V1, V2
from tests.models.test_num_heads import HEADS, custom_model, write_official
from vjepa_edge import load_vjepa, read_arch, save_vjepa
from vjepa_edge.errors import ArchitectureError, CheckpointError, ConfigError
from vjepa_edge.models import checkpoint


@pytest.fixture
def no_building(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("read_arch built a model")

    monkeypatch.setattr(checkpoint, "VJEPA", refuse)
    monkeypatch.setattr(checkpoint, "build_from_weights", refuse)


@pytest.mark.parametrize("path", [V1, V2, HF], ids=["v1", "v2", "hf"])
def test_official_formats_match_load_vjepa(path: Path, no_building: None, monkeypatch: pytest.MonkeyPatch) -> None:
    arch = read_arch(path)
    monkeypatch.undo()
    assert arch == load_vjepa(path).arch


def test_input_overrides_and_num_heads_are_applied(tmp_path: Path, no_building: None) -> None:
    enc = read_arch(V2, frames=8, size=64).encoder
    assert (enc.num_frames, enc.img_size) == (8, 64)
    model = custom_model()
    path = write_official(model, tmp_path / "c.pth.tar")
    with pytest.raises(ArchitectureError, match="width 128"):
        read_arch(path)
    assert read_arch(path, num_heads=HEADS) == model.arch


def test_own_format_reads_only_the_header(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_building: None) -> None:
    model = custom_model()
    path = save_vjepa(model, tmp_path / "model.safetensors")
    monkeypatch.setattr(checkpoint, "load_file", lambda *a, **k: pytest.fail("read_arch loaded the tensors"))
    assert read_arch(path) == model.arch
    assert read_arch(tmp_path) == model.arch  # a folder holding model.safetensors, as a training checkpoint
    with pytest.raises(ConfigError, match="contradicts"):
        read_arch(path, num_heads=8)


def _bad_files(tmp_path: Path) -> dict[str, Path]:
    own = save_vjepa(custom_model(), tmp_path / "own.safetensors")
    files = {
        "empty": b"",
        "text": b"hello, this is not a checkpoint\n",
        "truncated.pt": V2.read_bytes()[: V2.stat().st_size // 2],
        "truncated.safetensors": own.read_bytes()[: own.stat().st_size // 2],
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    return {name: tmp_path / name for name in [*files, "missing"]}


def test_bad_files_raise_what_load_vjepa_raises(tmp_path: Path) -> None:
    for name, path in _bad_files(tmp_path).items():
        with pytest.raises(CheckpointError) as loading:
            load_vjepa(path)
        with pytest.raises(CheckpointError) as reading:
            read_arch(path)
        assert type(reading.value) is type(loading.value), name
        assert (reading.value.message, reading.value.hint) == (loading.value.message, loading.value.hint), name


def test_does_not_touch_torch_global_state() -> None:
    state = torch.get_rng_state()
    read_arch(V1)
    assert torch.equal(state, torch.get_rng_state())
