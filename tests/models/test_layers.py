"""The export-friendly layers against direct transcriptions of the official formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.conftest import pico_predictor_arch
from vjepa_edge.models.arch import EncoderArch
from vjepa_edge.models.layers import TubeletEmbed, apply_rope, interpolate_pos_embed, rope_table, sincos_3d
from vjepa_edge.models.predictor import Predictor
from vjepa_edge.models.vit import VisionTransformer, gather_tokens


@pytest.mark.parametrize(
    ("shape", "tubelet", "patch"), [((2, 3, 4, 48, 48), 2, 16), ((1, 3, 5, 40, 56), 2, 8), ((3, 1, 4, 32, 32), 1, 16)]
)
def test_tubelet_linear_equals_conv3d(shape, tubelet, patch) -> None:
    B, C, T, H, W = shape
    # float64 so that the comparison is about the layout, not about summation order
    embed = TubeletEmbed(in_chans=C, embed_dim=24, patch_size=patch, tubelet_size=tubelet).double()
    conv_w = torch.randn(24, C, tubelet, patch, patch, dtype=torch.float64)
    bias = torch.randn(24, dtype=torch.float64)
    with torch.no_grad():
        embed.proj.weight.copy_(conv_w.reshape(24, -1))
        embed.proj.bias.copy_(bias)
    x = torch.randn(shape, dtype=torch.float64)
    ref = F.conv3d(x, conv_w, bias, stride=(tubelet, patch, patch)).flatten(2).transpose(1, 2)
    assert torch.allclose(embed(x), ref, atol=1e-10)


def _official_rotate(x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """facebookresearch/vjepa2 `rotate_queries_or_keys`, transcribed (tiled frequencies, adjacent pairs)."""
    D = x.shape[-1]
    omega = torch.arange(D // 2, dtype=x.dtype) / (D / 2.0)
    omega = 1.0 / 10000**omega
    freq = pos.to(x.dtype).unsqueeze(-1) * omega
    emb_sin, emb_cos = freq.sin(), freq.cos()
    emb_sin = torch.cat([emb_sin, emb_sin], -1)
    emb_cos = torch.cat([emb_cos, emb_cos], -1)
    y = x.unflatten(-1, (-1, 2))
    y = torch.stack((-y[..., 1], y[..., 0]), dim=-1).flatten(-2)
    return x * emb_cos + y * emb_sin


def _official_rope(q: torch.Tensor, ids: torch.Tensor, grid) -> torch.Tensor:
    _, H, W = grid
    hd = q.shape[-1]
    d = int(2 * ((hd // 3) // 2))
    frame = ids // (H * W)
    height = (ids - frame * H * W) // W
    width = ids - frame * H * W - height * W
    if ids.dim() == 2:
        frame, height, width = (p.unsqueeze(1) for p in (frame, height, width))
    parts = [_official_rotate(q[..., i * d : (i + 1) * d], p) for i, p in enumerate((frame, height, width))]
    return torch.cat(parts + [q[..., 3 * d :]], dim=-1)


@pytest.mark.parametrize("head_dim", [16, 32, 64, 80])
def test_rope_matches_official_layout(head_dim: int) -> None:
    grid = (4, 5, 6)
    q = torch.randn(2, 3, 120, head_dim)
    full = apply_rope(q, *rope_table(torch.arange(120), grid, head_dim))
    assert torch.allclose(full, _official_rope(q, torch.arange(120), grid), atol=1e-5)
    idx = torch.stack([torch.randperm(120)[:17].sort().values for _ in range(2)])
    qm = q[:, :, :17]
    masked = apply_rope(qm, *rope_table(idx, grid, head_dim))
    assert torch.allclose(masked, _official_rope(qm, idx, grid), atol=1e-5)


def test_rope_is_not_the_interleaved_layout() -> None:
    """The tiled layout differs from textbook interleaved RoPE; a 'fixed' version would break released weights."""
    q = torch.randn(1, 1, 10, 64)
    ours = apply_rope(q, *rope_table(torch.arange(10), (10, 1, 1), 64))
    d = 20
    omega = 1.0 / 10000 ** (torch.arange(d // 2) / (d / 2))
    freq = torch.arange(10.0)[:, None] * omega
    cos, sin = freq.cos().repeat_interleave(2, -1), freq.sin().repeat_interleave(2, -1)
    y = torch.stack((-q[..., 1:d:2], q[..., 0:d:2]), -1).flatten(-2)
    interleaved = q[..., :d] * cos + y * sin
    assert (ours[..., :d] - interleaved).abs().max() > 1e-2


def _official_sincos_3d(dim, grid_size, grid_depth, uniform_power):
    """facebookresearch/jepa `get_3d_sincos_pos_embed`, transcribed in numpy."""

    def one(d, pos):
        omega = 1.0 / 10000 ** (np.arange(d // 2, dtype=float) / (d / 2.0))
        out = np.einsum("m,d->md", pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    gh, gd, gw = np.meshgrid(
        np.arange(grid_size, dtype=float), np.arange(grid_depth, dtype=float), np.arange(grid_size, dtype=float)
    )
    if uniform_power:
        hd = wd = dd = int(np.ceil(dim / 6) * 2)
    else:
        hd, wd, dd = dim // 4, dim // 4, dim // 2
    return np.concatenate([one(dd, gd), one(hd, gh), one(wd, gw)], axis=1)[:, :dim]


@pytest.mark.parametrize(("dim", "uniform_power"), [(48, True), (1024, True), (384, False), (192, False)])
def test_sincos_3d_matches_official(dim: int, uniform_power: bool) -> None:
    ours = sincos_3d(dim, (3, 4, 4), uniform_power=uniform_power)
    ref = torch.from_numpy(_official_sincos_3d(dim, 4, 3, uniform_power)).float()
    assert torch.allclose(ours, ref, atol=1e-6)


def test_interpolate_pos_embed_chops_shorter_clips_and_resamples_others() -> None:
    pe = sincos_3d(48, (4, 3, 3), uniform_power=True)[None]
    assert torch.equal(interpolate_pos_embed(pe, (4, 3, 3), (2, 3, 3)), pe[:, :18])
    out = interpolate_pos_embed(pe, (4, 3, 3), (4, 6, 6))
    assert out.shape == (1, 4 * 36, 48)


@pytest.mark.parametrize("pos", ["rope", "sincos"])
def test_masked_forward_is_per_sample_and_batched(pos: str) -> None:
    """Each sample's context indices are used for that sample only: batch == one-by-one."""
    enc = VisionTransformer(EncoderArch.from_size("vit_pico", pos=pos)).eval()
    x = torch.randn(3, 3, 4, 48, 48)
    idx = torch.stack([torch.randperm(18)[:7].sort().values for _ in range(3)])
    with torch.no_grad():
        batched = enc(x, idx)
        single = torch.cat([enc(x[i : i + 1], idx[i : i + 1]) for i in range(3)])
        # only context tokens go through the blocks: same as gathering the embedded tokens first
        full = enc(x)
    assert torch.allclose(batched, single, atol=1e-5)
    assert not torch.allclose(batched, gather_tokens(full, idx), atol=1e-3)


def test_rope_encoder_accepts_other_resolutions_and_lengths() -> None:
    enc = VisionTransformer(EncoderArch.from_size("vit_pico", pos="rope")).eval()
    with torch.no_grad():
        assert enc(torch.randn(1, 3, 8, 64, 32)).shape == (1, 4 * 4 * 2, 48)


def test_v2_predictor_is_invariant_to_the_order_of_its_inputs() -> None:
    """V-JEPA 2 sorts tokens by position, so shuffling context and targets (consistently) changes nothing."""
    grid = (2, 3, 3)
    pred = Predictor(pico_predictor_arch("rope"), grid).eval()
    with torch.no_grad():
        pred.mask_tokens[1].normal_()
    ctx, tgt = torch.tensor([[1, 4, 7, 9]]), torch.tensor([[0, 2, 17]])
    z = torch.randn(1, 4, 48)
    with torch.no_grad():
        out = pred(z, ctx, tgt)
        perm_c, perm_t = torch.tensor([2, 0, 3, 1]), torch.tensor([1, 2, 0])
        shuffled = pred(z[:, perm_c], ctx[:, perm_c], tgt[:, perm_t])
    assert torch.allclose(out[:, perm_t], shuffled, atol=1e-5)


def test_init_rescales_residual_projections() -> None:
    enc = VisionTransformer(EncoderArch(embed_dim=48, depth=4, num_heads=3, mlp_hidden=192))
    stds = [float(b.attn.proj.weight.detach().std()) for b in enc.blocks]
    assert stds[0] / stds[3] == pytest.approx(math.sqrt(4), rel=0.25)


def test_activation_checkpointing_gives_the_same_gradients() -> None:
    enc = VisionTransformer(EncoderArch.from_size("vit_pico", pos="rope")).train()
    x = torch.randn(2, 3, 4, 48, 48)
    grads = []
    for flag in (False, True):
        enc.zero_grad()
        enc.grad_checkpointing = flag
        enc(x).square().mean().backward()
        grads.append(enc.blocks[0].attn.qkv.weight.grad.clone())
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


@pytest.mark.parametrize("pos", ["rope", "sincos"])
def test_bf16_autocast_forward(pos: str) -> None:
    enc = VisionTransformer(EncoderArch.from_size("vit_pico", pos=pos)).eval()
    x = torch.randn(1, 3, 4, 48, 48)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        low = enc(x, torch.tensor([[0, 3, 5, 17]]))
    with torch.no_grad():
        ref = enc(x, torch.tensor([[0, 3, 5, 17]]))
    assert low.dtype == torch.bfloat16
    assert float((low.float() - ref).abs().max()) < 0.2
