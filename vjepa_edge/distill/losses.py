"""Distillation losses: student tokens regress the teacher's (LayerNorm'ed) tokens at the same place.

`latent`: every student token, through a projector to the teacher's width, regresses the teacher token at its
place. `masked`: the student encodes only the visible tokens of its clip (tube masks) and a light V-JEPA
predictor regresses the teacher's features of the hidden ones (masked latent distillation); the visible tokens
are matched as in `latent`. The teacher's token grid may differ from the student's (frames, resolution,
stride): its feature map is resampled to the student's grid first.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vjepa_edge.models.arch import PredictorArch
from vjepa_edge.models.predictor import Predictor
from vjepa_edge.models.vit import gather_tokens

Grid = tuple[int, int, int]


def resample_tokens(tokens: Tensor, src: Grid, dst: Grid) -> Tensor:
    """Tokens [B, N, D] on grid `src` (t, h, w order) -> [B, prod(dst), D] on grid `dst`.

    Shrinking averages (area pooling, exact for whole ratios); growing interpolates trilinearly."""
    if tuple(src) == tuple(dst):
        return tokens
    B, N, D = tokens.shape
    x = tokens.transpose(1, 2).reshape(B, D, *src).float()
    if all(d <= s for s, d in zip(src, dst, strict=True)):
        x = F.adaptive_avg_pool3d(x, dst)
    else:
        x = F.interpolate(x, size=dst, mode="trilinear", align_corners=False)
    return x.flatten(2).transpose(1, 2).to(tokens.dtype)


def teacher_targets(features: Tensor, src: Grid, dst: Grid, *, normalize: bool) -> Tensor:
    """The regression targets: teacher features resampled to the student's grid, non-affine LayerNorm'ed."""
    x = resample_tokens(features.float(), src, dst)
    return F.layer_norm(x, x.shape[-1:]) if normalize else x


def distance(pred: Tensor, target: Tensor, kind: str) -> Tensor:
    """Mean per-token distance: `l1`, `smooth_l1` (beta 1) or `cosine` (1 - cosine similarity)."""
    pred, target = pred.float(), target.float()
    if kind == "l1":
        return (pred - target).abs().mean()
    if kind == "smooth_l1":
        return F.smooth_l1_loss(pred, target, beta=1.0)
    if kind == "cosine":
        return 1.0 - F.cosine_similarity(pred, target, dim=-1).mean()
    raise ValueError(f"unknown distance {kind!r}")


def token_cosine(pred: Tensor, target: Tensor) -> Tensor:
    """Per-token cosine similarity [B, N]."""
    return F.cosine_similarity(pred.float(), target.float(), dim=-1)


def make_projector(kind: str, student_dim: int, teacher_dim: int) -> nn.Module:
    if kind == "linear":
        return nn.Linear(student_dim, teacher_dim)
    if kind == "mlp":
        hidden = 2 * max(student_dim, teacher_dim)
        return nn.Sequential(nn.Linear(student_dim, hidden), nn.GELU(), nn.Linear(hidden, teacher_dim))
    raise ValueError(f"unknown projector {kind!r}")


def tube_masks(batch: int, grid: Grid, ratio: float, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Per-sample tube masks (VideoMAE): `ratio` of the spatial positions hidden in every frame.
    Returns (visible_idx [B, K], hidden_idx [B, M]), sorted token indices in (t, h, w) order."""
    T, H, W = grid
    spatial = H * W
    hide = min(spatial - 1, max(1, round(ratio * spatial)))
    order = torch.argsort(torch.rand(batch, spatial, generator=generator), dim=1)
    hidden_s, visible_s = order[:, :hide].sort(dim=1).values, order[:, hide:].sort(dim=1).values
    offsets = torch.arange(T) * spatial

    def tubes(s: Tensor) -> Tensor:
        return (offsets[None, :, None] + s[:, None, :]).flatten(1)

    return tubes(visible_s), tubes(hidden_s)


def causal_masks(batch: int, grid: Grid) -> tuple[Tensor, Tensor]:
    """The first half of the time steps visible, the second hidden (the future to predict), for every sample.
    Returns (visible_idx [B, K], hidden_idx [B, M]) in (t, h, w) order."""
    T, H, W = grid
    split = (T // 2) * H * W
    visible, hidden = torch.arange(split), torch.arange(split, T * H * W)
    return visible.expand(batch, -1), hidden.expand(batch, -1)


class DistillHead(nn.Module):
    """The trained modules besides the student: the projector and, for `masked`, the predictor."""

    def __init__(
        self,
        student_dim: int,
        teacher_dim: int,
        student_grid: Grid,
        *,
        projector: str = "linear",
        masked: bool = False,
        pred_dim: int = 192,
        pred_depth: int = 2,
        pred_heads: int = 4,
    ) -> None:
        super().__init__()
        self.projector = make_projector(projector, student_dim, teacher_dim)
        self.predictor = None
        if masked:
            arch = PredictorArch(
                embed_dim=student_dim,
                pred_dim=pred_dim,
                depth=pred_depth,
                num_heads=pred_heads,
                mlp_hidden=4 * pred_dim,
                num_mask_tokens=1,
                pos="rope",
            )
            self.predictor = Predictor(arch, student_grid)


class DistillModel(nn.Module):
    """Student and head in one forward (so DDP sees one call per step); returns (predictions, target index).

    `latent`: predictions for every token (index None). `masked`: the visible tokens' projections followed by
    the predictor's outputs for the hidden ones, with the token index of each."""

    def __init__(self, student: nn.Module, head: DistillHead) -> None:
        super().__init__()
        self.student = student
        self.head = head

    def forward(self, clip: Tensor, masks: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor | None]:
        if masks is None:
            return self.head.projector(self.student(clip)), None
        visible, hidden = masks
        z = self.student(clip, visible)
        predicted = self.head.predictor(z, visible, hidden, mask_index=0)
        out = self.head.projector(torch.cat([z, predicted], dim=1))
        return out, torch.cat([visible, hidden], dim=1)


def distill_loss(predictions: Tensor, index: Tensor | None, targets: Tensor, kind: str) -> Tensor:
    """Distance between predictions and the targets at their tokens (all tokens when `index` is None)."""
    if index is not None:
        targets = gather_tokens(targets, index)
    return distance(predictions, targets, kind)
