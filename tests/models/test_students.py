"""The student registry: every registered student honours the encoder contract, trains, and round-trips a checkpoint."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from vjepa_edge import load_vjepa, save_vjepa
from vjepa_edge.errors import ConfigError, RegistryError
from vjepa_edge.models import (
    STUDENTS,
    EncoderArch,
    TimmEncoderArch,
    TimmVideoEncoder,
    VJEPAArch,
    create_student,
    list_students,
    student_model,
    student_table,
)

FRAMES = 4
# Tiny inputs: 2x2x2 tokens for every student (patch 16 at 32 px, stride 32 at 64 px), so the file runs in seconds.
SIZE = {"vit": 32, "timm": 64}
# Unregistered timm models that cover the other code paths: a plain CNN, input-size-bound attention with
# non-persistent buffers, and a ViT (NLC tokens with a class token to drop).
UNREGISTERED = ["timm/resnet10t", "timm/efficientvit_m0", "timm/vit_tiny_patch16_224"]


def _build(name: str) -> torch.nn.Module:
    kind = "timm" if name.startswith("timm/") else STUDENTS.get(name).kind
    return create_student(name, frames=FRAMES, size=SIZE[kind])


def _clip(model: torch.nn.Module, batch: int = 2) -> torch.Tensor:
    a = model.arch
    return torch.randn(batch, a.in_chans, a.num_frames, a.img_size, a.img_size)


def test_the_mobile_backbones_are_registered() -> None:
    names = set(list_students())
    assert {"vit_tiny", "vit_small", "vit_base", "mobilenetv3_small", "mobilenetv3_large", "resnet18"} <= names
    assert {"mobilenetv4_conv_small", "efficientvit_b0", "fastvit_t8", "repvit_m0_9"} <= names
    assert list_students("mobilenet*") == ["mobilenetv3_large", "mobilenetv3_small", "mobilenetv4_conv_small"]


@pytest.mark.parametrize("name", list_students())
def test_default_input_gives_the_documented_grid(name: str) -> None:
    """At 16 frames of 64 px: ViT/16 students give 8x4x4 tokens, stride-32 backbones 8x2x2."""
    with torch.device("meta"):
        model = create_student(name)
    assert model.arch.grid == ((8, 4, 4) if STUDENTS.get(name).kind == "vit" else (8, 2, 2))
    (x,) = model.example_inputs(batch=2)
    assert x.shape == (2, 3, 16, 64, 64)
    assert len(model.arch.mean) == len(model.arch.std) == 3


@pytest.mark.parametrize("name", list_students() + UNREGISTERED)
def test_forward_shape_and_grid(name: str) -> None:
    model = _build(name).eval()
    x = _clip(model)
    assert model.token_grid(x) == model.arch.grid
    with torch.no_grad():
        out = model(x)
    assert out.shape == (2, math.prod(model.arch.grid), model.embed_dim)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", list_students())
def test_tokens_are_in_thw_order(name: str) -> None:
    model = _build(name).eval()
    if isinstance(model, TimmVideoEncoder):
        _check_timm_order(model)
    else:
        _check_order_by_gradient(model)


def _check_timm_order(model: TimmVideoEncoder) -> None:
    """With the temporal mixer off, token (t, h, w) of clip b is the backbone's feature at (h, w) of tubelet t,
    whose channels are the tubelet's frames one after the other."""
    with torch.no_grad():
        model.temporal.conv.weight.zero_()
        model.temporal.conv.bias.zero_()
        x = _clip(model)
        out = model(x)
        (t, h, w), ts = model.arch.grid, model.arch.tubelet_size
        for b in range(2):
            for ti in range(t):
                frames = torch.cat([x[b, :, ti * ts + k] for k in range(ts)]).unsqueeze(0)  # [1, ts*3, H, W]
                f = model.backbone.forward_features(frames)[0]  # [D, h, w]
                for hi in range(h):
                    for wi in range(w):
                        want = model.norm(f[:, hi, wi])
                        torch.testing.assert_close(out[b, (ti * h + hi) * w + wi], want, rtol=1e-4, atol=1e-4)


def _check_order_by_gradient(model: torch.nn.Module) -> None:
    """Token (t, h, w) depends most on the tubelet at (t, h, w): its input gradient is largest there.

    Sample i of a batch of N copies of one clip back-propagates token i only, so one backward pass gives all N.
    """
    t, h, w = model.arch.grid
    n = t * h * w
    x = _clip(model, batch=1).repeat(n, 1, 1, 1, 1).requires_grad_(True)
    out = model(x)
    probe = torch.randn(model.embed_dim)
    (out[torch.arange(n), torch.arange(n)] @ probe).sum().backward()
    ts, size = model.arch.tubelet_size, model.arch.img_size
    g = x.grad.abs().reshape(n, 3, t, ts, h, size // h, w, size // w).sum(dim=(1, 3, 5, 7))  # [N, t, h, w]
    assert g.reshape(n, n).argmax(dim=1).tolist() == list(range(n))


@pytest.mark.parametrize("name", list_students())
def test_one_training_step(name: str) -> None:
    model = _build(name).train()
    x = _clip(model)
    target = torch.randn(2, math.prod(model.arch.grid), model.embed_dim)
    before = {k: p.detach().clone() for k, p in model.named_parameters()}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss = torch.nn.functional.mse_loss(model(x), target)
    loss.backward()
    assert torch.isfinite(loss)
    unused = [k for k, p in model.named_parameters() if p.grad is None]
    assert not unused, f"parameters outside the forward pass (heads should be dropped): {unused[:5]}"
    opt.step()
    unchanged = [k for k, p in model.named_parameters() if torch.equal(p, before[k]) and p.grad.any()]
    assert not unchanged


@pytest.mark.parametrize("name", list_students() + UNREGISTERED)
def test_checkpoint_round_trip(tmp_path: Path, name: str) -> None:
    model = _build(name)
    with torch.no_grad():
        model.train()(_clip(model))  # BatchNorm running statistics move away from their initial values
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    model.eval()
    path = save_vjepa(student_model(model), tmp_path / "student.safetensors")
    loaded = load_vjepa(path).encoder
    assert loaded.arch == model.arch
    assert type(loaded) is type(model)
    assert not any(t.is_meta for t in (*loaded.parameters(), *loaded.buffers()))
    x = _clip(model)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))


def test_timm_student_record_round_trips_and_old_records_stay_vit() -> None:
    enc = create_student("timm/resnet10t", frames=FRAMES, size=64).arch
    arch = VJEPAArch(version="vjepa2", encoder=enc)
    d = arch.to_dict()
    assert d["encoder"]["kind"] == "timm"
    assert VJEPAArch.from_dict(d) == arch
    vit = VJEPAArch(version="vjepa2", encoder=EncoderArch.from_size("vit_pico"))
    assert "kind" not in vit.to_dict()["encoder"] and VJEPAArch.from_dict(vit.to_dict()) == vit
    d["encoder"]["kind"] = "onnx"
    with pytest.raises(ConfigError, match="unknown encoder kind 'onnx'"):
        VJEPAArch.from_dict(d)


def test_invalid_timm_record_lists_every_problem() -> None:
    with pytest.raises(ConfigError) as e:
        TimmEncoderArch(model_name="resnet18", embed_dim=512, feature_grid=(2, 2), num_frames=5, mean=(0.5,))
    assert "num_frames 5 is not a multiple of tubelet_size 2" in str(e.value)
    assert "mean and std need 3 values" in str(e.value)


def test_loading_with_other_frames(tmp_path: Path) -> None:
    model = create_student("timm/resnet10t", frames=FRAMES, size=64)
    path = save_vjepa(student_model(model), tmp_path / "s.safetensors")
    loaded = load_vjepa(path, frames=8)
    assert loaded.arch.encoder.grid == (4, 2, 2)
    with torch.no_grad():
        assert loaded.encoder(torch.randn(1, 3, 8, 64, 64)).shape == (1, 16, model.embed_dim)


def test_unknown_names_suggest_close_ones() -> None:
    with pytest.raises(RegistryError, match="Did you mean 'mobilenetv3_small'"):
        create_student("mobilenetv3_smal")
    with pytest.raises(RegistryError, match="unknown timm model 'resnet1'.*'resnet18'"):
        create_student("timm/resnet1")


def test_overrides_are_checked() -> None:
    vit = create_student("vit_tiny", frames=FRAMES, size=32, patch_size=8, pos="sincos")
    assert (vit.arch.patch_size, vit.arch.pos, vit.arch.grid) == (8, "sincos", (2, 4, 4))
    assert student_model(vit).arch.version == "vjepa1"
    timm4 = create_student("timm/resnet10t", frames=8, size=64, tubelet_size=4, mean=[0.5] * 3, std=[0.5] * 3)
    assert isinstance(timm4, TimmVideoEncoder)
    assert (timm4.arch.grid, timm4.arch.mean) == ((2, 2, 2), (0.5, 0.5, 0.5))
    with pytest.raises(ConfigError, match="did you mean 'patch_size'"):
        create_student("vit_tiny", patchsize=8)
    with pytest.raises(ConfigError, match="pass frames= instead"):
        create_student("resnet18", num_frames=8)


def test_token_grid_checks_the_clip() -> None:
    model = create_student("timm/resnet10t", frames=FRAMES, size=64)
    assert model.token_grid(torch.empty(1, 3, 6, 96, 128)) == (3, 3, 4)
    with pytest.raises(ValueError, match="tubelets"):
        model.token_grid(torch.empty(1, 3, 3, 64, 64))
    with pytest.raises(ValueError, match="expected a clip"):
        model.token_grid(torch.empty(3, 4, 64, 64))


def test_student_table() -> None:
    rows = {r["name"]: r for r in student_table("mobilenetv3_*")}
    assert set(rows) == {"mobilenetv3_small", "mobilenetv3_large"}
    small = rows["mobilenetv3_small"]
    assert small["kind"] == "timm" and small["grid"] == [8, 2, 2] and small["embed_dim"] == 576
    assert 0.5e6 < small["params"] < 1.5e6  # the unused 1x1 head conv is dropped
