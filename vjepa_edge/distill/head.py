"""The distillation head of a finished run (projector, and the predictor of a `masked` run), rebuilt from the run's
recipe and loaded strictly from its last checkpoint.

Distillation saves the head in every checkpoint's state.pt (key "head"), not in student.safetensors: stages after
distillation that need it (export of the predictor; `--qat`, which continues the distillation loss) read it here.
The teacher's width (the projector's output) is read from the saved weights when the caller does not know it.
"""

from __future__ import annotations

import json
import pickle
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from vjepa_edge.errors import ConfigError
from vjepa_edge.runs import RunDir, list_checkpoints

if TYPE_CHECKING:
    from vjepa_edge.distill.losses import DistillHead
    from vjepa_edge.distill.recipe import Recipe


def run_recipe(run: RunDir) -> Recipe:
    """The resolved recipe a distill run trained with (recipe.json)."""
    from vjepa_edge.distill.recipe import recipe_from_dict

    return recipe_from_dict(json.loads(run.recipe.read_text()), where=str(run.recipe))


def head_problems(run: RunDir | None, *, what: str, predictor: bool = False) -> list[str]:
    """Why the head of `run` cannot be loaded (empty when it can); reads only the recipe and the checkpoint list.
    `predictor`: the head must hold a predictor (the recipe's loss kind is "masked")."""
    if run is None or run.kind != "distill":
        return [f"{what} needs a distill run folder (its head is in the run's checkpoints), not a bare model file"]
    if predictor:
        kind = run_recipe(run).loss.kind
        if kind != "masked":
            return [f"{run.root} trained with loss kind {kind!r}, which has no predictor (only 'masked' trains one)"]
    if not list_checkpoints(run.root):
        return [f"{run.root} has no checkpoint under {run.checkpoints}, so its distillation head is gone"]
    return []


def _teacher_dim(state: dict[str, Tensor]) -> int:
    """The projector's output width: the rows of its last weight (a Linear, or an MLP's last Linear)."""
    weights = [k for k in state if k.startswith("projector.") and k.endswith("weight")]
    if not weights:
        raise ConfigError("the checkpoint's head holds no projector weights")
    return int(state[weights[-1]].shape[0])


def load_head(run: RunDir, student: nn.Module, *, teacher_dim: int | None = None) -> DistillHead:
    """The head of `run`'s last checkpoint for `student` (its width and token grid), loaded strictly (eval mode).
    `teacher_dim`: the projector's output width when the caller knows it (else read from the weights)."""
    from vjepa_edge.distill.losses import DistillHead

    problems = head_problems(run, what="the distillation head")
    if problems:
        raise ConfigError(problems[0])
    recipe = run_recipe(run)
    checkpoint = list_checkpoints(run.root)[-1]
    try:
        state = torch.load(checkpoint.state, map_location="cpu", weights_only=True)["head"]
    except (OSError, RuntimeError, KeyError, TypeError, EOFError, pickle.UnpicklingError) as e:
        raise ConfigError(f"{checkpoint.state} holds no readable distillation head ({type(e).__name__}: {e})") from None
    r = recipe.loss
    head = DistillHead(
        student.embed_dim,
        teacher_dim or _teacher_dim(state),
        tuple(student.grid),
        projector=r.projector,
        masked=r.kind == "masked",
        pred_dim=r.pred_dim,
        pred_depth=r.pred_depth,
        pred_heads=r.pred_heads,
    )
    try:
        head.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ConfigError(f"{checkpoint.state}: the head does not match the run's recipe and student: {e}") from None
    return head.eval()
