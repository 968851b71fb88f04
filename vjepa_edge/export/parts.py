"""What `vjepa-edge export --part` exports: the student encoder (default) or the student's predictor.

`encoder`: clips [1, C, T, H, W] -> tokens [1, N, D], at the student's InputSpec.

`predictor`: the student's world model, trained by a `masked` distillation (`DistillHead`): the predictor and the
projector in one module, as `DistillModel.forward` chains them. Inputs: context tokens [1, K, D] (the student's
features of the context, `encoder(clip, context_idx)`), `context_idx` [1, K] and `target_idx` [1, M] (int64 token
indices in (t, h, w) order of the student's grid); output: the predicted teacher-space features [1, M, D_teacher]
at the targets. A device computes intuitive-physics surprise from it (the error of these predictions of the future
tokens given the first frames). K and M are fixed at export by a named context choice (`CONTEXTS`, default
`first-half`: the tokens of the first half of the time steps are the context, the rest the targets); the index
values stay inputs, so any K context and M target positions of the grid can be asked for.

The predictor is exported with its token sorting off (`sort_tokens`, V-JEPA 2's sort of context+target tokens by
position before the blocks): ExecuTorch's runtime has no sort kernel (`aten::sort.values` is missing when the
program loads), and the sort changes nothing but the float summation order, since the blocks have no attention
mask and every token carries its own position (RoPE at its index, or the sin-cos embedding gathered at it), so
they are permutation-equivariant. Verification compares the artifact with the eager predictor as it trained
(sorting on), so this is checked on every export.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from vjepa_edge.errors import ConfigError
from vjepa_edge.export.base import Signature

if TYPE_CHECKING:
    from vjepa_edge.export.base import TargetImpl
    from vjepa_edge.export.targets import Target
    from vjepa_edge.runs import ResolvedModel

Grid = tuple[int, int, int]

PARTS = {
    "encoder": "the student encoder: clip [1, C, T, H, W] -> tokens [1, N, D]",
    "predictor": "the student's predictor + projector (a masked distill run): context tokens [1, K, D], "
    "context_idx [1, K], target_idx [1, M] -> predicted teacher features [1, M, D_teacher]",
}


def _steps(grid: Grid, first: int, last: int) -> Tensor:
    """Token indices of time steps [first, last) of `grid`, in (t, h, w) order."""
    _, h, w = grid
    return torch.arange(first * h * w, last * h * w, dtype=torch.int64)


def _first_half(grid: Grid) -> tuple[Tensor, Tensor]:
    t = grid[0]
    return _steps(grid, 0, t // 2), _steps(grid, t // 2, t)


def _all_but_last(grid: Grid) -> tuple[Tensor, Tensor]:
    t = grid[0]
    return _steps(grid, 0, t - 1), _steps(grid, t - 1, t)


@dataclass(frozen=True)
class Context:
    name: str
    description: str
    split: Callable[[Grid], tuple[Tensor, Tensor]]  # grid -> (context_idx [K], target_idx [M])


CONTEXTS = {
    c.name: c
    for c in (
        Context(
            "first-half",
            "context: the tokens of the first half of the time steps; targets: the rest (intuitive-physics surprise)",
            _first_half,
        ),
        Context("all-but-last", "context: every time step but the last; targets: the last one", _all_but_last),
    )
}


def context_problems(name: str, grid: Grid | None = None) -> list[str]:
    if name not in CONTEXTS:
        return [f"--context {name!r}: one of {', '.join(CONTEXTS)}"]
    if grid is not None and grid[0] < 2:
        return [f"--context {name}: the student's grid has {grid[0]} time step; context and targets need 2 or more"]
    return []


def part_problems(part: str, target: Target, impl: TargetImpl) -> list[str]:
    """Why `target` cannot export `part` (empty when it can); known before any work."""
    if part not in PARTS:
        return [f"--part {part!r}: one of {', '.join(PARTS)}"]
    if part == "encoder":
        return []
    if target.precision == "int8":
        return [
            f"--part {part} exports at float precision only: the quantization schemes ({', '.join(target.schemes)}) "
            "calibrate and evaluate on the encoder's one clip input, not on tokens and indices"
        ]
    if part not in impl.parts:
        return [f"target {target.name!r} exports the {', '.join(impl.parts)} only, not the {part}"]
    return []


class PredictorModule(nn.Module):
    """Predictor + projector: (tokens [B, K, D], context_idx [B, K], target_idx [B, M]) -> [B, M, D_teacher], the
    teacher-space features `DistillModel` regresses at the hidden tokens (the projector is per token, so projecting
    the predicted tokens alone is what it computes). `sort_tokens=False`: a copy of the predictor without the sort
    (see the module docstring)."""

    def __init__(self, predictor: nn.Module, projector: nn.Module, *, sort_tokens: bool = True) -> None:
        super().__init__()
        if sort_tokens != predictor.arch.sort_tokens:
            predictor = copy.deepcopy(predictor)
            predictor.arch = dataclasses.replace(predictor.arch, sort_tokens=sort_tokens)
        self.predictor = predictor
        self.projector = projector

    def forward(self, tokens: Tensor, context_idx: Tensor, target_idx: Tensor) -> Tensor:
        return self.projector(self.predictor(tokens, context_idx, target_idx, mask_index=0))


@dataclass
class Part:
    """One exportable part: `module` is what is exported (eval, fp32), `reference` the eager module verification
    compares with, `signature` its inputs at batch 1, `inputs` makes verification inputs from held-out clips."""

    name: str
    module: nn.Module
    reference: nn.Module
    signature: Signature
    inputs: Callable[[Tensor], list[tuple[Tensor, ...]]]
    info: dict[str, Any] = field(default_factory=dict)


def encoder_part(encoder: nn.Module) -> Part:
    def inputs(clips: Tensor) -> list[tuple[Tensor, ...]]:
        return [(clips[i : i + 1].contiguous().float(),) for i in range(clips.shape[0])]

    return Part("encoder", encoder, encoder, Signature.of_spec(encoder.input_spec), inputs)


def predictor_part(encoder: nn.Module, resolved: ResolvedModel, context: str) -> Part:
    """The predictor of the masked distill run `resolved` (its last checkpoint's head) for `encoder`, with the
    context choice `context`. The caller checked `head_problems` before any work."""
    from vjepa_edge.distill.head import load_head

    grid = tuple(encoder.grid)
    problems = context_problems(context, grid)
    if problems:
        raise ConfigError(problems[0])
    head = load_head(resolved.run, encoder)
    if head.predictor is None:  # head_problems refuses these runs first; a head saved without one still is
        raise ConfigError(f"{resolved.run.root}: the distillation head holds no predictor")
    ctx, tgt = (i.unsqueeze(0) for i in CONTEXTS[context].split(grid))
    reference = PredictorModule(head.predictor, head.projector).eval()
    module = PredictorModule(head.predictor, head.projector, sort_tokens=False).eval()
    example = (torch.randn(1, ctx.shape[1], encoder.embed_dim, generator=torch.Generator().manual_seed(0)), ctx, tgt)

    @torch.no_grad()
    def inputs(clips: Tensor) -> list[tuple[Tensor, ...]]:
        """The student's features of each held-out clip's context (the context alone through the encoder, as
        surprise computes them), with the context's and targets' indices."""
        out = []
        for i in range(clips.shape[0]):
            tokens = encoder(clips[i : i + 1].float(), ctx)
            out.append((tokens.contiguous(), ctx, tgt))
        return out

    signature = Signature(("tokens", "context_idx", "target_idx"), example)
    with torch.no_grad():
        teacher_dim = int(reference(*example).shape[-1])
    info = {
        "context": context,
        "context_description": CONTEXTS[context].description,
        "grid": list(grid),
        "context_tokens": int(ctx.shape[1]),
        "target_tokens": int(tgt.shape[1]),
        "student_dim": int(encoder.embed_dim),
        "teacher_dim": teacher_dim,
        "output_shape": [1, int(tgt.shape[1]), teacher_dim],
        "context_idx": ctx[0].tolist(),
        "target_idx": tgt[0].tolist(),
    }
    return Part("predictor", module, reference, signature, inputs, info)
