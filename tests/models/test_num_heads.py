"""`num_heads`: loading official checkpoints whose width is no published size (no tensor records the head count)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from tests.conftest import HF
from vjepa_edge import load_vjepa, save_vjepa
from vjepa_edge.errors import ArchitectureError, CheckpointError, ConfigError
from vjepa_edge.models import VJEPA, EncoderArch, PredictorArch, VJEPAArch
from vjepa_edge.models.keymaps import tubelet_linear_to_conv

WIDTH, HEADS = 128, 4  # no published size is 128 wide


def custom_model(pos: str = "sincos", *, predictor: bool = True) -> VJEPA:
    """A V-JEPA model 128 wide with 4 heads, every weight non-trivial."""
    enc = EncoderArch(embed_dim=WIDTH, depth=1, num_heads=HEADS, mlp_hidden=256, pos=pos, num_frames=4, img_size=32)
    pred = PredictorArch(
        embed_dim=WIDTH,
        pred_dim=64,
        depth=1,
        num_heads=HEADS,
        mlp_hidden=128,
        num_mask_tokens=2,
        pos=pos,
        sort_tokens=pos == "rope",
    )
    version = "vjepa1" if pos == "sincos" else "vjepa2"
    arch = VJEPAArch(version=version, encoder=enc, predictor=pred if predictor else None, target_encoder=predictor)
    model = VJEPA(arch).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model


def write_official(model: VJEPA, path: Path) -> Path:
    """`model` as a V-JEPA 1/2 training checkpoint: Conv3d tubelets, `module.backbone.` prefixes, extra keys."""
    enc = model.arch.encoder
    ck: dict = {"epoch": 3, "lr": 1e-4}
    for part in model.parts:
        sd = {k.removeprefix(part + "."): v.clone() for k, v in model.state_dict().items() if k.startswith(part + ".")}
        sd = tubelet_linear_to_conv(sd, in_chans=enc.in_chans, tubelet=enc.tubelet_size, patch=enc.patch_size)
        ck[part] = {f"module.backbone.{k}": v for k, v in sd.items()}
    torch.save(ck, path)
    return path


@pytest.fixture
def v1_custom(tmp_path: Path) -> tuple[VJEPA, Path]:
    model = custom_model("sincos")
    return model, write_official(model, tmp_path / "custom.pth.tar")


def test_unknown_width_says_how_to_pass_the_head_count(v1_custom: tuple[VJEPA, Path]) -> None:
    _, path = v1_custom
    with pytest.raises(ArchitectureError) as info:
        load_vjepa(path)
    assert "width 128" in info.value.message
    hint = info.value.hint
    assert "pass num_heads=N to load_vjepa (or --heads N on the command line)" in hint
    assert "embed_dim 128 must be divisible by it with an even head dim" in hint
    assert "4" in hint.split("head dim")[-1]  # and lists counts that fit


def test_given_head_count_loads_the_saved_model(v1_custom: tuple[VJEPA, Path]) -> None:
    model, path = v1_custom
    loaded = load_vjepa(path, num_heads=HEADS)
    assert loaded.arch == model.arch
    assert loaded.parts == ["encoder", "target_encoder", "predictor"]
    assert any("num_heads 4 given by the caller" in n for n in loaded.source.notes)
    x = torch.randn(2, 3, 4, 32, 32)
    ctx, tgt = torch.tensor([[0, 3, 5], [1, 2, 7]]), torch.tensor([[1, 2], [0, 6]])
    with torch.no_grad():
        assert torch.equal(loaded.encoder(x), model.encoder(x))
        assert torch.equal(loaded.target_encoder(x), model.target_encoder(x))
        assert torch.equal(
            loaded.predictor(loaded.encoder(x, ctx), ctx, tgt, mask_index=1),
            model.predictor(model.encoder(x, ctx), ctx, tgt, mask_index=1),
        )
        # why the count matters: another one that fits loads just as strictly, and computes something else
        assert not torch.allclose(load_vjepa(path, num_heads=8).encoder(x), model.encoder(x))


@pytest.mark.parametrize(("heads", "needle"), [(3, "128 is not divisible by 3"), (128, "head dim 1 is odd")])
def test_head_count_that_does_not_fit(v1_custom: tuple[VJEPA, Path], heads: int, needle: str) -> None:
    _, path = v1_custom
    with pytest.raises(ConfigError) as info:
        load_vjepa(path, num_heads=heads)
    assert f"num_heads={heads} does not fit embed_dim 128" in info.value.message and needle in info.value.message
    assert "1, 2, 4, 8, 16, 32, 64" in info.value.hint


def test_rope_file_of_custom_width_takes_the_input_from_the_caller(tmp_path: Path) -> None:
    model = custom_model("rope", predictor=False)
    path = write_official(model, tmp_path / "custom.pt")
    default = load_vjepa(path, num_heads=HEADS)
    assert (default.arch.encoder.num_frames, default.arch.encoder.img_size) == (16, 224)
    assert "defaults" in default.source.input_from
    loaded = load_vjepa(path, num_heads=HEADS, frames=4, size=32)
    assert loaded.arch == model.arch
    x = torch.randn(1, 3, 4, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded.encoder(x), model.encoder(x))


def test_own_format_refuses_a_contradicting_head_count(tmp_path: Path) -> None:
    path = save_vjepa(custom_model(), tmp_path / "m.safetensors")
    assert load_vjepa(path, num_heads=HEADS).arch.encoder.num_heads == HEADS  # the same count is fine
    with pytest.raises(ConfigError, match="num_heads=8 contradicts .* which records 4 heads") as info:
        load_vjepa(path, num_heads=8)
    assert "drop num_heads" in info.value.hint


def test_hf_directory_refuses_a_contradicting_head_count(tmp_path: Path) -> None:
    assert load_vjepa(HF, num_heads=3).arch.encoder.num_heads == 3
    with pytest.raises(ConfigError, match="contradicts .*config.json, which records 3 heads"):
        load_vjepa(HF, num_heads=6)
    # a config.json without the count takes the caller's
    shutil.copytree(HF, tmp_path / "hf")
    cfg = json.loads((tmp_path / "hf" / "config.json").read_text())
    del cfg["num_attention_heads"]
    (tmp_path / "hf" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="lacks 'num_attention_heads'") as info:
        load_vjepa(tmp_path / "hf")
    assert "pass num_heads=N" in info.value.hint
    assert load_vjepa(tmp_path / "hf", num_heads=3).arch == load_vjepa(HF).arch
