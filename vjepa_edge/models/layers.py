"""Building blocks of V-JEPA's video ViT, written to export.

- The tubelet embedding is a Linear over patches, cut out with reshapes of rank 6 or less (XNNPACK has no
  Conv3d and fails on tensors of rank above 6). It reproduces the official Conv3d exactly.
- Attention goes through `scaled_dot_product_attention`; 3-D RoPE is applied from a precomputed cos/sin
  table with V-JEPA 2's tiled frequency layout, which the released weights depend on.
- Nothing loops over the batch.
- This is the training form. `vjepa_edge.models.deploy.deploy_form` gives the export form of a model built from these
  layers (3-D bmm attention, LayerNorm in elementwise ops: one XNNPACK partition), with the same weights and numbers.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class TubeletEmbed(nn.Module):
    """[B, C, T, H, W] -> [B, N, D] tokens in (t, h, w) order; a Linear over each tubelet's C*t*p*p pixels."""

    def __init__(self, *, in_chans: int, embed_dim: int, patch_size: int, tubelet_size: int) -> None:
        super().__init__()
        self.in_chans, self.patch_size, self.tubelet_size = in_chans, patch_size, tubelet_size
        self.proj = nn.Linear(in_chans * tubelet_size * patch_size * patch_size, embed_dim)

    def forward(self, x: Tensor) -> Tensor:
        B, C, T, H, W = x.shape
        t, p = self.tubelet_size, self.patch_size
        nt, nh, nw = T // t, H // p, W // p
        if (nt * t, nh * p, nw * p) != (T, H, W):  # Conv3d with stride == kernel drops the remainder too
            x = x[:, :, : nt * t, : nh * p, : nw * p]  # (only then: a full slice exports as a copy, `alias_copy`)
        # Fold (B, C, T') so that the 6-D view separates the in-tubelet offsets from the grid positions.
        x = x.reshape(B * C * nt, t, nh, p, nw, p)
        x = x.permute(0, 2, 4, 1, 3, 5)  # [B*C*T', H', W', t, p, p]
        x = x.reshape(B, C, nt, nh * nw, t * p * p)
        x = x.permute(0, 2, 3, 1, 4)  # [B, T', H'W', C, t*p*p]: feature order (c, t, y, x) as the Conv3d weight
        x = x.reshape(B, nt * nh * nw, C * t * p * p)
        return self.proj(x)


def sincos_1d(dim: int, pos: Tensor) -> Tensor:
    """[M] positions -> [M, dim] as [sin | cos], V-JEPA's `get_1d_sincos_pos_embed_from_grid` (float64)."""
    omega = torch.arange(dim // 2, dtype=torch.float64) / (dim / 2.0)
    omega = 1.0 / 10000**omega
    out = pos.reshape(-1).to(torch.float64)[:, None] * omega[None, :]
    return torch.cat([out.sin(), out.cos()], dim=1)


def sincos_3d(dim: int, grid: tuple[int, int, int], *, uniform_power: bool) -> Tensor:
    """V-JEPA 1's fixed 3-D sin-cos position embedding, [T'*H'*W', dim] float32 in (t, h, w) order."""
    depth, height, width = grid
    d, h, w = torch.meshgrid(torch.arange(depth), torch.arange(height), torch.arange(width), indexing="ij")
    if uniform_power:
        dd = hd = wd = int(math.ceil(dim / 6) * 2)
    else:
        hd = wd = dim // 4
        dd = dim // 2
    emb = torch.cat([sincos_1d(dd, d), sincos_1d(hd, h), sincos_1d(wd, w)], dim=1)
    return emb[:, :dim].float()


def interpolate_pos_embed(pos_embed: Tensor, src: tuple[int, int, int], dst: tuple[int, int, int]) -> Tensor:
    """Resample a [1, N, D] embedding from grid `src` to `dst`, as V-JEPA does (chop shorter clips, else trilinear)."""
    if src == dst:
        return pos_embed
    if src[1:] == dst[1:] and dst[0] < src[0]:
        return pos_embed[:, : dst[0] * dst[1] * dst[2]]
    D = pos_embed.shape[-1]
    x = pos_embed.reshape(1, *src, D).permute(0, 4, 1, 2, 3)
    scale = tuple(b / a for a, b in zip(src, dst, strict=True))
    x = F.interpolate(x, scale_factor=scale, mode="trilinear")
    return x.permute(0, 2, 3, 4, 1).reshape(1, -1, D)


def token_positions(idx: Tensor, grid: tuple[int, int, int]) -> tuple[Tensor, Tensor, Tensor]:
    """Token indices in (t, h, w) order -> their frame, row and column."""
    _, h, w = grid
    t = idx // (h * w)
    rem = idx - t * (h * w)
    row = rem // w
    return t, row, rem - row * w


def rope_table(idx: Tensor, grid: tuple[int, int, int], head_dim: int) -> tuple[Tensor, Tensor]:
    """cos/sin tables [..., N, head_dim] for V-JEPA 2's 3-D RoPE at token indices `idx` ([N] or [B, N]).

    Each of depth, height and width rotates `2 * ((head_dim // 3) // 2)` leading channels (in that order);
    the rest pass through (cos 1, sin 0). Within an axis the frequencies are tiled [f0..fk, f0..fk] while the
    rotation pairs adjacent channels: this is the layout of the official code, which its weights depend on.
    """
    axis_dim = 2 * ((head_dim // 3) // 2)
    omega = torch.arange(axis_dim // 2, dtype=torch.float32, device=idx.device) / (axis_dim / 2.0)
    omega = 1.0 / 10000**omega
    cos, sin = [], []
    for pos in token_positions(idx, grid):
        freq = pos.to(torch.float32)[..., None] * omega  # [..., N, axis_dim/2]
        freq = torch.cat([freq, freq], dim=-1)  # tiled, not interleaved: the official layout
        cos.append(freq.cos())
        sin.append(freq.sin())
    rest = head_dim - 3 * axis_dim
    if rest:
        shape = (*idx.shape, rest)
        cos.append(torch.ones(shape, device=idx.device))
        sin.append(torch.zeros(shape, device=idx.device))
    cos_t, sin_t = torch.cat(cos, dim=-1), torch.cat(sin, dim=-1)
    if idx.dim() == 2:  # per-sample positions broadcast over heads
        cos_t, sin_t = cos_t.unsqueeze(1), sin_t.unsqueeze(1)
    return cos_t, sin_t


def grid_rope_table(grid: tuple[int, int, int], head_dim: int) -> tuple[Tensor, Tensor]:
    """`rope_table` of every token of `grid` ([T'*H'*W', head_dim] each), for a model to keep as a constant.

    Computed on the CPU when the default device is meta: a model built on meta and then loaded with
    `assign=True` gets real parameters, but a non-persistent buffer is in no file and would stay on meta.
    """
    device = torch.get_default_device()
    if device.type == "meta":
        device = torch.device("cpu")
    return rope_table(torch.arange(math.prod(grid), device=device), grid, head_dim)


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """x [B, heads, N, hd] rotated by the table (cos/sin [N, hd] or [B, 1, N, hd]); pairs are adjacent channels."""
    x1, x2 = x.unflatten(-1, (-1, 2)).unbind(-1)
    rotated = torch.stack((-x2, x1), dim=-1).flatten(-2)
    if cos.dtype != x.dtype:  # no cast node in exported graphs when the dtypes already agree
        cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return x * cos + rotated * sin


class Attention(nn.Module):
    """Multi-head self-attention with a fused qkv projection (official key layout) and optional RoPE."""

    def __init__(self, dim: int, num_heads: int, *, qkv_bias: bool = True) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, rope: tuple[Tensor, Tensor] | None = None) -> Tensor:
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # each [B, heads, N, hd]
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(B, N, C))


class MLP(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm1(x)), then x + mlp(norm2(x))."""

    def __init__(self, dim: int, num_heads: int, mlp_hidden: int, *, qkv_bias: bool = True, eps: float = 1e-6):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, num_heads, qkv_bias=qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = MLP(dim, mlp_hidden)

    def forward(self, x: Tensor, rope: tuple[Tensor, Tensor] | None = None) -> Tensor:
        x = x + self.attn(self.norm1(x), rope)
        return x + self.mlp(self.norm2(x))


def init_vit_weights(module: nn.Module, blocks: nn.ModuleList, std: float = 0.02) -> None:
    """V-JEPA's init: truncated-normal linears, unit LayerNorms, residual projections scaled by 1/sqrt(2*layer)."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    with torch.no_grad():
        for i, blk in enumerate(blocks, start=1):
            blk.attn.proj.weight.div_(math.sqrt(2.0 * i))
            blk.mlp.fc2.weight.div_(math.sqrt(2.0 * i))
