"""load_vjepa / save_vjepa: formats, strictness, and every kind of bad file."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch

from tests.conftest import HF, V1, V2, pico_predictor_arch
from vjepa_edge import load_vjepa, save_vjepa
from vjepa_edge.errors import ArchitectureError, CheckpointError
from vjepa_edge.models import VJEPA, EncoderArch, VJEPAArch
from vjepa_edge.models.checkpoint import read_checkpoint
from vjepa_edge.models.keymaps import tubelet_linear_to_conv


def _arch(version: str, *, target: bool = True) -> VJEPAArch:
    pos = "sincos" if version == "vjepa1" else "rope"
    enc = EncoderArch.from_size("vit_pico", pos=pos)
    pred = pico_predictor_arch(pos, num_mask_tokens=3)
    return VJEPAArch(version=version, encoder=enc, predictor=pred, target_encoder=target)


@pytest.mark.parametrize("version", ["vjepa1", "vjepa2"])
def test_own_format_round_trip(tmp_path: Path, version: str) -> None:
    model = VJEPA(_arch(version)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)  # every tensor non-trivial, mask tokens included
    path = save_vjepa(model, tmp_path / "m.safetensors")
    assert sorted(os.listdir(tmp_path)) == ["m.safetensors"]  # the temp file was renamed, not left behind
    loaded = load_vjepa(path)
    assert loaded.arch == model.arch
    assert loaded.source.format == "vjepa-edge checkpoint"
    for (k, a), (k2, b) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(a, b), k
    x = torch.randn(1, 3, 4, 48, 48)
    ctx, tgt = torch.tensor([[0, 5, 9]]), torch.tensor([[1, 2]])
    with torch.no_grad():
        assert torch.equal(model.encoder(x), loaded.encoder(x))
        assert torch.equal(
            model.predictor(model.encoder(x, ctx), ctx, tgt, mask_index=2),
            loaded.predictor(loaded.encoder(x, ctx), ctx, tgt, mask_index=2),
        )
    # a directory holding model.safetensors (a run folder) loads too
    os.replace(path, tmp_path / "model.safetensors")
    assert load_vjepa(tmp_path).arch == model.arch


def test_loaded_official_model_round_trips_through_own_format(tmp_path: Path) -> None:
    official = load_vjepa(V2)
    again = load_vjepa(save_vjepa(official, tmp_path / "v2.safetensors"))
    x = torch.randn(1, 3, 4, 48, 48)
    with torch.no_grad():
        assert torch.equal(official.target_encoder(x), again.target_encoder(x))


def test_formats_and_parts_are_detected() -> None:
    v1, v2, hf = load_vjepa(V1), load_vjepa(V2), load_vjepa(HF)
    assert (v1.arch.version, v1.arch.encoder.pos, v1.arch.encoder.uniform_power) == ("vjepa1", "sincos", True)
    assert (v2.arch.version, v2.arch.encoder.pos) == ("vjepa2", "rope")
    assert v1.parts == v2.parts == ["encoder", "target_encoder", "predictor"]
    assert hf.parts == ["encoder", "predictor"]
    assert v1.arch.predictor.num_mask_tokens == 2 and v2.arch.predictor.num_mask_tokens == 10
    assert (v1.arch.encoder.num_frames, v1.arch.encoder.img_size) == (4, 48)  # read from pos_embed
    assert not v1.arch.predictor.sort_tokens and v2.arch.predictor.sort_tokens
    assert "not loaded" in v1.source.notes[0] and "opt" in v1.source.notes[0]


def test_v1_grid_and_uniform_power_are_inferred_from_pos_embed(tmp_path: Path) -> None:
    enc = EncoderArch(
        embed_dim=192,
        depth=1,
        num_heads=3,
        mlp_hidden=768,
        pos="sincos",
        uniform_power=False,
        num_frames=6,
        img_size=64,
    )
    model = VJEPA(VJEPAArch(version="vjepa1", encoder=enc))
    sd = {k.removeprefix("encoder."): v for k, v in model.state_dict().items()}
    sd = tubelet_linear_to_conv(sd, in_chans=3, tubelet=2, patch=16)  # the official Conv3d layout
    sd = {f"module.backbone.{k}": v for k, v in sd.items()}
    torch.save({"encoder": sd, "epoch": 3}, tmp_path / "v1.pth.tar")
    arch, _, src = read_checkpoint(tmp_path / "v1.pth.tar")
    assert (arch.encoder.num_frames, arch.encoder.img_size, arch.encoder.uniform_power) == (6, 64, False)
    assert src.input_from == "the stored pos_embed"


def test_v2_input_contract_can_be_given(tmp_path: Path) -> None:
    m = load_vjepa(V2, frames=8, size=64)
    assert (m.arch.encoder.num_frames, m.arch.encoder.img_size) == (8, 64)
    assert m.predictor.grid == (4, 4, 4)
    assert m.source.input_from == "given by the caller"


def test_target_only_file_loads_its_ema_weights_as_encoder(tmp_path: Path) -> None:
    ck = torch.load(V2, weights_only=True)
    torch.save({"target_encoder": ck["target_encoder"]}, tmp_path / "t.pt")
    m = load_vjepa(tmp_path / "t.pt")
    x = torch.randn(1, 3, 4, 48, 48)
    with torch.no_grad():
        assert torch.equal(m.encoder(x), load_vjepa(V2).target_encoder(x))


# ----------------------------------------------------------------------------- bad files


def _expect(path: Path, *needles: str, kind: type[Exception] = CheckpointError) -> str:
    with pytest.raises(kind) as info:
        load_vjepa(path)
    for needle in needles:
        assert needle in info.value.message, info.value.message
    return info.value.message


def test_missing_file(tmp_path: Path) -> None:
    _expect(tmp_path / "nope.pt", "no such file")


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "e.pt").write_bytes(b"")
    _expect(tmp_path / "e.pt", "empty")


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.95])
def test_truncated_file(tmp_path: Path, fraction: float) -> None:
    data = V2.read_bytes()
    (tmp_path / "t.pt").write_bytes(data[: int(len(data) * fraction)])
    _expect(tmp_path / "t.pt", "truncated or corrupt")


def test_corrupt_member_is_caught_by_crc(tmp_path: Path) -> None:
    data = bytearray(V2.read_bytes())
    data[len(data) // 2] ^= 0xFF  # flip a byte inside a tensor's storage
    (tmp_path / "c.pt").write_bytes(bytes(data))
    _expect(tmp_path / "c.pt", "corrupt")


@pytest.mark.parametrize("keep", [20, 0.5])  # cut inside the JSON header, and inside the tensor data
def test_truncated_safetensors(tmp_path: Path, keep: float) -> None:
    path = save_vjepa(VJEPA(_arch("vjepa2")), tmp_path / "m.safetensors")
    data = path.read_bytes()
    path.write_bytes(data[: int(keep if keep >= 1 else len(data) * keep)])
    _expect(path, "truncated or corrupt")


@pytest.mark.parametrize("content", [b"hello, this is not a checkpoint\n", os.urandom(4096), b"\x89PNG\r\n\x1a\n" * 9])
def test_not_a_checkpoint(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "x.pt").write_bytes(content)
    _expect(tmp_path / "x.pt", "not a PyTorch checkpoint")


def test_safetensors_without_record_is_refused(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    save_file({"a": torch.zeros(2)}, str(tmp_path / "x.safetensors"))
    _expect(tmp_path / "x.safetensors", "without a vjepa-edge architecture record")


def test_dict_without_model_parts(tmp_path: Path) -> None:
    torch.save({"epoch": 3, "lr": 0.1}, tmp_path / "x.pt")
    _expect(tmp_path / "x.pt", "not a V-JEPA checkpoint", "'encoder'")


class _Payload:
    """Unpickling this runs a command that creates a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("how", ["torch.save", "pickle-protocol-2", "pickle-protocol-4"])
def test_pickled_code_is_refused_not_executed(tmp_path: Path, how: str) -> None:
    marker = tmp_path / "EXECUTED"
    # plain pickles of tensors go through torch.storage globals; keep the payload the first global there
    weights = {"w": torch.zeros(1)} if how == "torch.save" else {"w": [0.0]}
    obj = {"encoder": weights, "extra": _Payload(marker)}
    path = tmp_path / "evil.pt"
    if how == "torch.save":
        torch.save(obj, path)
    else:
        with path.open("wb") as f:
            pickle.dump(obj, f, protocol=int(how[-1]))
    with pytest.raises(CheckpointError) as info:
        load_vjepa(path)
    assert not marker.exists(), "the pickled payload ran"
    assert "refused" in info.value.message or "not unpickled" in info.value.message
    if how != "pickle-protocol-4":
        assert "system" in info.value.message  # names the object it refused


def _native_sd(path: Path = V2) -> dict:
    return torch.load(path, weights_only=True)


def test_unknown_width_names_key_and_shape(tmp_path: Path) -> None:
    ck = _native_sd()
    key = "module.backbone.patch_embed.proj.weight"
    ck["encoder"][key] = torch.zeros(100, 3, 2, 16, 16)
    torch.save({"encoder": ck["encoder"]}, tmp_path / "w.pt")
    msg = _expect(
        tmp_path / "w.pt", "patch_embed.proj.weight", "[100, 3, 2, 16, 16]", "width 100", kind=ArchitectureError
    )
    assert "vit_large" in msg  # and says which widths are known


def test_mismatched_block_tensor_names_key_and_shape(tmp_path: Path) -> None:
    ck = _native_sd()
    ck["encoder"]["module.backbone.blocks.1.mlp.fc1.weight"] = torch.zeros(100, 48)
    torch.save({"encoder": ck["encoder"]}, tmp_path / "m.pt")
    _expect(tmp_path / "m.pt", "blocks.1.mlp.fc1.weight", "[100, 48]", "[192, 48]", kind=ArchitectureError)


def test_missing_tensor_is_an_error_not_a_partial_load(tmp_path: Path) -> None:
    ck = _native_sd()
    del ck["encoder"]["module.backbone.blocks.0.norm2.bias"]
    torch.save({"encoder": ck["encoder"]}, tmp_path / "m.pt")
    _expect(tmp_path / "m.pt", "blocks.0.norm2.bias", kind=ArchitectureError)


def test_extra_tensor_is_an_error_not_ignored(tmp_path: Path) -> None:
    ck = _native_sd()
    ck["encoder"]["module.backbone.extra.weight"] = torch.zeros(3)
    torch.save({"encoder": ck["encoder"]}, tmp_path / "m.pt")
    _expect(tmp_path / "m.pt", "extra.weight", kind=ArchitectureError)


def test_predictor_for_another_encoder_width(tmp_path: Path) -> None:
    ck = _native_sd()
    ck["predictor"]["module.backbone.predictor_embed.weight"] = torch.zeros(48, 64)
    torch.save(ck, tmp_path / "m.pt")
    _expect(tmp_path / "m.pt", "predictor_embed.weight", "[48, 64]", kind=ArchitectureError)


def test_hf_directory_with_wrong_model_type(tmp_path: Path) -> None:
    import json
    import shutil

    shutil.copytree(HF, tmp_path / "hf")
    cfg = json.loads((tmp_path / "hf" / "config.json").read_text())
    cfg["model_type"] = "vit"
    (tmp_path / "hf" / "config.json").write_text(json.dumps(cfg))
    _expect(tmp_path / "hf", "'vit'")


def test_hf_config_that_disagrees_with_tensors(tmp_path: Path) -> None:
    import json
    import shutil

    shutil.copytree(HF, tmp_path / "hf")
    cfg = json.loads((tmp_path / "hf" / "config.json").read_text())
    cfg["num_hidden_layers"] = 3
    (tmp_path / "hf" / "config.json").write_text(json.dumps(cfg))
    _expect(tmp_path / "hf", "encoder.blocks.2", kind=ArchitectureError)


def test_absent_part_says_what_the_model_holds() -> None:
    hf = load_vjepa(HF)
    assert getattr(hf, "target_encoder", None) is None
    with pytest.raises(AttributeError, match="no target_encoder .*holds: encoder, predictor"):
        hf.target_encoder(torch.randn(1, 3, 4, 48, 48))


def test_hf_video_classification_directory_loads_the_backbone(tmp_path: Path) -> None:
    """VJEPA2ForVideoClassification prefixes the backbone with `vjepa2.`; its head is reported, not loaded."""
    import shutil

    from safetensors.torch import load_file, save_file

    shutil.copytree(HF, tmp_path / "cls")
    sd = {f"vjepa2.{k}": v for k, v in load_file(str(HF / "model.safetensors")).items()}
    sd["classifier.weight"] = torch.zeros(5, 48)
    save_file(sd, str(tmp_path / "cls" / "model.safetensors"))
    model = load_vjepa(tmp_path / "cls")
    x = torch.randn(1, 3, 4, 48, 48)
    with torch.no_grad():
        assert torch.equal(model.encoder(x), load_vjepa(HF).encoder(x))
    assert "classifier.weight" in model.source.notes[0]
