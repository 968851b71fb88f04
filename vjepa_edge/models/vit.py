"""V-JEPA's video Vision Transformer encoder (V-JEPA 1: 3-D sin-cos positions; V-JEPA 2: 3-D RoPE).

`encoder(x)` maps a clip [B, C, T, H, W] to tokens [B, N, D] in (t, h, w) order; `encoder(x, context_idx)`
embeds the clip, keeps only the tokens at `context_idx` [B, K] and sends just those through the blocks.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from vjepa_edge.models.arch import EncoderArch
from vjepa_edge.models.inputs import InputSpec
from vjepa_edge.models.layers import (
    Block,
    TubeletEmbed,
    grid_rope_table,
    init_vit_weights,
    interpolate_pos_embed,
    rope_table,
    sincos_3d,
)


def gather_tokens(x: Tensor, idx: Tensor) -> Tensor:
    """x [B, N, D], idx [B, K] -> [B, K, D]."""
    return torch.gather(x, 1, idx.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


class VisionTransformer(nn.Module):
    """Video ViT encoder; owns its input contract (`input_spec`, built from `arch`)."""

    def __init__(self, arch: EncoderArch) -> None:
        super().__init__()
        self.arch = arch
        self.patch_embed = TubeletEmbed(
            in_chans=arch.in_chans, embed_dim=arch.embed_dim, patch_size=arch.patch_size, tubelet_size=arch.tubelet_size
        )
        if arch.pos == "sincos":
            pos = sincos_3d(arch.embed_dim, arch.grid, uniform_power=arch.uniform_power)
            self.register_buffer("pos_embed", pos.unsqueeze(0))
        else:
            self.pos_embed = None
        if arch.pos == "rope":
            # The configured grid's tables, computed once: exported programs then hold them as constants instead
            # of tracing the integer position arithmetic (which PT2E quantizers would annotate). Non-persistent:
            # state dicts and checkpoints stay as they were.
            cos, sin = grid_rope_table(arch.grid, arch.head_dim)
            self.register_buffer("rope_cos", cos, persistent=False)
            self.register_buffer("rope_sin", sin, persistent=False)
        self.blocks = nn.ModuleList(
            Block(arch.embed_dim, arch.num_heads, arch.mlp_hidden, qkv_bias=arch.qkv_bias, eps=arch.norm_eps)
            for _ in range(arch.depth)
        )
        self.norm = nn.LayerNorm(arch.embed_dim, eps=arch.norm_eps)
        self.grad_checkpointing = False
        init_vit_weights(self, self.blocks)

    @property
    def embed_dim(self) -> int:
        return self.arch.embed_dim

    @property
    def grid(self) -> tuple[int, int, int]:
        """Token grid (T', H', W') of the configured input."""
        return self.arch.grid

    def token_grid(self, x: Tensor) -> tuple[int, int, int]:
        """Token grid (T', H', W') of a clip [B, C, T, H, W]."""
        if x.dim() != 5 or x.shape[1] != self.arch.in_chans:
            raise ValueError(f"expected a clip [B, {self.arch.in_chans}, T, H, W], got shape {list(x.shape)}")
        _, _, T, H, W = x.shape
        a = self.arch
        if T < a.tubelet_size or H < a.patch_size or W < a.patch_size:
            raise ValueError(f"clip {T}x{H}x{W} is smaller than one tubelet {a.tubelet_size}x{a.patch_size}^2")
        return T // a.tubelet_size, H // a.patch_size, W // a.patch_size

    @property
    def input_spec(self) -> InputSpec:
        """The input contract: frames, size, tubelet, patch, channels, mean/std."""
        return InputSpec.from_arch(self.arch)

    def example_inputs(self, batch: int = 1) -> tuple[Tensor]:
        return self.input_spec.example_inputs(batch)

    def forward(self, x: Tensor, context_idx: Tensor | None = None) -> Tensor:
        grid = self.token_grid(x)
        tokens = self.patch_embed(x)
        if self.pos_embed is not None:
            tokens = tokens + interpolate_pos_embed(self.pos_embed, self.arch.grid, grid).to(tokens.dtype)
        if context_idx is not None:
            tokens = gather_tokens(tokens, context_idx)
        rope = self.rope(grid, context_idx, x.device) if self.arch.pos == "rope" else None
        for blk in self.blocks:
            if self.grad_checkpointing and self.training:
                tokens = torch.utils.checkpoint.checkpoint(blk, tokens, rope, use_reentrant=False)
            else:
                tokens = blk(tokens, rope)
        return self.norm(tokens)

    def rope(
        self, grid: tuple[int, int, int], context_idx: Tensor | None, device: torch.device
    ) -> tuple[Tensor, Tensor]:
        """cos/sin tables for the tokens of a clip of token grid `grid` (those at `context_idx` [B, K] when given).

        The configured grid reads the stored tables (rows gathered per sample); another grid computes its own.
        Both give the same numbers: `rope_table` is elementwise in the positions.
        """
        if grid != self.arch.grid:
            idx = context_idx if context_idx is not None else torch.arange(math.prod(grid), device=device)
            return rope_table(idx, grid, self.arch.head_dim)
        if context_idx is None:
            return self.rope_cos, self.rope_sin
        # [B, K, hd] -> [B, 1, K, hd]: per-sample positions broadcast over heads, as rope_table gives them.
        return self.rope_cos[context_idx].unsqueeze(1), self.rope_sin[context_idx].unsqueeze(1)
