"""The export form (`vjepa_edge.models.deploy`) computes what the training form computes, with the same weights."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tests.conftest import FIXTURES, HF, load_io, pico_predictor_arch
from vjepa_edge import load_vjepa
from vjepa_edge.models.arch import EncoderArch
from vjepa_edge.models.deploy import BmmAttention, DelegateLayerNorm, deploy_form, rope_sliced
from vjepa_edge.models.layers import Attention, apply_rope, rope_table
from vjepa_edge.models.predictor import Predictor
from vjepa_edge.models.students import create_student
from vjepa_edge.models.vit import VisionTransformer

TOL = 1e-5  # fp32 max abs, export form against training form


def _err(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return float((a - b).abs().max())


def _check_form(model: nn.Module, deployed: nn.Module) -> None:
    """Same names, keys and tensors; every Attention and LayerNorm swapped; the original untouched."""
    assert deployed is not model
    assert dict(deployed.named_parameters()).keys() == dict(model.named_parameters()).keys()
    ref, new = model.state_dict(), deployed.state_dict()
    assert list(new) == list(ref)
    assert all(torch.equal(new[k], ref[k]) for k in ref)
    deployed.load_state_dict(ref, strict=True)  # official checkpoints load into the export form too
    kinds = {type(m) for m in deployed.modules()}
    assert Attention not in kinds and nn.LayerNorm not in kinds
    assert not any(isinstance(m, (BmmAttention, DelegateLayerNorm)) for m in model.modules())


@pytest.mark.parametrize("pos", ["rope", "sincos"])
def test_pico_encoder_parity(pos: str) -> None:
    model = VisionTransformer(EncoderArch.from_size("vit_pico", pos=pos)).eval()
    deployed = deploy_form(model)
    _check_form(model, deployed)
    assert BmmAttention in {type(m) for m in deployed.modules()}
    x = torch.randn(3, 3, 4, 48, 48)
    idx = torch.stack([torch.randperm(18)[:7].sort().values for _ in range(3)])
    with torch.no_grad():
        assert _err(deployed(x), model(x)) <= TOL
        assert _err(deployed(x, idx), model(x, idx)) <= TOL  # per-sample RoPE tables [B, 1, K, hd]
        other = torch.randn(1, 3, 8, 64, 32)  # another grid: RoPE tables computed on the fly
        assert _err(deployed(other), model(other)) <= TOL


@pytest.mark.parametrize(
    ("name", "overrides"),
    [
        ("vit_tiny", dict(frames=4, size=32, patch_size=8, depth=2)),
        ("vit_small", dict(frames=8, size=32, tubelet_size=4, depth=2)),
        ("vit_small", dict(frames=8, size=32, depth=1, pos="sincos")),
    ],
)
def test_student_parity(name: str, overrides: dict) -> None:
    model = create_student(name, **overrides).eval()
    deployed = deploy_form(model)
    _check_form(model, deployed)
    x = torch.randn(2, *model.input_spec.shape(1)[1:])
    with torch.no_grad():
        assert _err(deployed(x), model(x)) <= TOL


def test_timm_student_keeps_its_numbers() -> None:
    """A timm student has no `Attention` of ours; its plain LayerNorms (the temporal mixer's) are swapped."""
    model = create_student("mobilenetv3_small", frames=4, size=64).eval()
    deployed = deploy_form(model)
    x = torch.randn(1, *model.input_spec.shape(1)[1:])
    with torch.no_grad():
        assert _err(deployed(x), model(x)) <= TOL


@pytest.mark.parametrize("name", ["vjepa1_tiny", "vjepa2_tiny"])
def test_official_checkpoint_parity(name: str) -> None:
    model = load_vjepa(FIXTURES / f"{name}.pth.tar")
    io = load_io(FIXTURES / f"{name}.io.pt")
    x, ctx, tgt = io["x"], io["context_idx"], io["target_idx"]
    encoder, target_encoder, predictor = (
        deploy_form(m) for m in (model.encoder, model.target_encoder, model.predictor)
    )
    for m, d in ((model.encoder, encoder), (model.target_encoder, target_encoder), (model.predictor, predictor)):
        _check_form(m, d)
    with torch.no_grad():
        assert _err(encoder(x), model.encoder(x)) <= TOL
        assert _err(target_encoder(x), model.target_encoder(x)) <= TOL
        masked = model.encoder(x, ctx)
        assert _err(encoder(x, ctx), masked) <= TOL
        assert _err(predictor(masked, ctx, tgt, mask_index=1), model.predictor(masked, ctx, tgt, mask_index=1)) <= TOL
        # and the export form still reproduces the official implementation's own outputs (test_parity's bar)
        assert _err(encoder(x), io["encoder_out"]) <= 1e-4


def test_hf_directory_parity() -> None:
    model = load_vjepa(HF)
    x = load_io(HF / "io.pt")["pixel_values_videos"].permute(0, 2, 1, 3, 4)
    with torch.no_grad():
        assert _err(deploy_form(model.encoder)(x), model.encoder(x)) <= TOL


@pytest.mark.parametrize("pos", ["rope", "sincos"])
def test_predictor_parity(pos: str) -> None:
    grid = (2, 3, 3)
    pred = Predictor(pico_predictor_arch(pos), grid).eval()
    with torch.no_grad():
        pred.mask_tokens[1].normal_()
    deployed = deploy_form(pred)
    _check_form(pred, deployed)
    ctx = torch.stack([torch.randperm(18)[:8].sort().values for _ in range(2)])
    tgt = torch.stack([torch.randperm(18)[:5].sort().values for _ in range(2)])
    z = torch.randn(2, 8, 48)
    with torch.no_grad():
        assert _err(deployed(z, ctx, tgt), pred(z, ctx, tgt)) <= TOL


def test_sliced_rope_is_apply_rope() -> None:
    x = torch.randn(2, 2, 3, 30, 32)  # [q/k, B, heads, N, hd]: the export form rotates q and k together
    cos, sin = rope_table(torch.arange(30), (2, 3, 5), 32)
    assert torch.equal(rope_sliced(x, cos, sin), apply_rope(x, cos, sin))
    idx = torch.stack([torch.randperm(30)[:11] for _ in range(3)])
    cos, sin = rope_table(idx, (2, 3, 5), 32)  # [B, 1, K, hd]
    x = torch.randn(2, 3, 4, 11, 32)
    assert torch.equal(rope_sliced(x, cos, sin), apply_rope(x, cos, sin))


def test_layer_norm_without_affine_and_a_lone_module() -> None:
    """`deploy_form` of a bare LayerNorm (the module itself is swapped), with and without weights."""
    for norm in (nn.LayerNorm(40, eps=1e-6), nn.LayerNorm(40, elementwise_affine=False)):
        if norm.weight is not None:
            with torch.no_grad():
                norm.weight.normal_()
                norm.bias.normal_()
        new = deploy_form(norm)
        assert isinstance(new, DelegateLayerNorm)
        x = torch.randn(2, 7, 40) * 3 + 1
        with torch.no_grad():
            assert _err(new(x), norm(x)) <= TOL


def test_export_form_trains() -> None:
    """Gradients flow through the export form as through the training form (same parameters, same maths)."""
    model = VisionTransformer(EncoderArch.from_size("vit_pico", pos="rope")).train()
    deployed = deploy_form(model).train()
    x = torch.randn(2, 3, 4, 48, 48)
    model(x).square().mean().backward()
    deployed(x).square().mean().backward()
    a, b = model.blocks[0].attn.qkv.weight.grad, deployed.blocks[0].attn.qkv.weight.grad
    assert torch.allclose(a, b, atol=1e-6)
