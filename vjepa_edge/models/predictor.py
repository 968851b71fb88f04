"""V-JEPA's predictor: from context tokens, predict the encoder features at target positions.

Context tokens are projected to the predictor width; one learned mask token (chosen by `mask_index`) stands
in at each target position; positions come from a fixed sin-cos table (V-JEPA 1) or 3-D RoPE (V-JEPA 2, which
also sorts the joint sequence by position). After the blocks and a LayerNorm, the target slots are projected
back to the encoder width.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vjepa_edge.models.arch import PredictorArch
from vjepa_edge.models.layers import Block, init_vit_weights, interpolate_pos_embed, rope_table, sincos_3d
from vjepa_edge.models.vit import gather_tokens


class Predictor(nn.Module):
    def __init__(self, arch: PredictorArch, grid: tuple[int, int, int]) -> None:
        super().__init__()
        self.arch = arch
        self.grid = grid  # token grid of the encoder's configured input
        self.predictor_embed = nn.Linear(arch.embed_dim, arch.pred_dim)
        self.mask_tokens = nn.ParameterList(
            nn.Parameter(torch.zeros(1, 1, arch.pred_dim)) for _ in range(arch.num_mask_tokens)
        )
        if arch.pos == "sincos":
            pos = sincos_3d(arch.pred_dim, grid, uniform_power=arch.uniform_power)
            self.register_buffer("predictor_pos_embed", pos.unsqueeze(0))
        else:
            self.predictor_pos_embed = None
        self.predictor_blocks = nn.ModuleList(
            Block(arch.pred_dim, arch.num_heads, arch.mlp_hidden, qkv_bias=arch.qkv_bias, eps=arch.norm_eps)
            for _ in range(arch.depth)
        )
        self.predictor_norm = nn.LayerNorm(arch.pred_dim, eps=arch.norm_eps)
        self.predictor_proj = nn.Linear(arch.pred_dim, arch.embed_dim)
        init_vit_weights(self, self.predictor_blocks)

    def forward(
        self,
        z: Tensor,
        context_idx: Tensor,
        target_idx: Tensor,
        mask_index: int = 1,
        *,
        grid: tuple[int, int, int] | None = None,
    ) -> Tensor:
        """z [B, K, D] context features at `context_idx` [B, K] -> predictions [B, M, D] at `target_idx` [B, M].

        `grid` is the token grid (T', H', W') of the clip the indices refer to; by default the encoder's
        configured input.
        """
        grid = grid or self.grid
        B, K, _ = z.shape
        x = self.predictor_embed(z)
        tgt = self.mask_tokens[mask_index % len(self.mask_tokens)].expand(B, target_idx.shape[1], -1)
        if self.predictor_pos_embed is not None:
            pos = interpolate_pos_embed(self.predictor_pos_embed, self.grid, grid).to(x.dtype).expand(B, -1, -1)
            x = x + gather_tokens(pos, context_idx)
            tgt = tgt + gather_tokens(pos, target_idx)
        x = torch.cat([x, tgt], dim=1)
        idx = torch.cat([context_idx, target_idx], dim=1)
        order = None
        if self.arch.sort_tokens:
            order = torch.argsort(idx, dim=1)
            x, idx = gather_tokens(x, order), torch.gather(idx, 1, order)
        rope = rope_table(idx, grid, self.arch.pred_dim // self.arch.num_heads) if self.arch.pos == "rope" else None
        for blk in self.predictor_blocks:
            x = blk(x, rope)
        x = self.predictor_norm(x)
        if order is not None:
            x = gather_tokens(x, torch.argsort(order, dim=1))
        return self.predictor_proj(x[:, K:])
