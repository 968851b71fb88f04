"""A finished distill run of a tiny ViT student (vit_pico widths: 48 wide, 2 blocks, 3 heads; 4 frames at 32 px,
patch 8: 32 tokens), shared by the export tests of a module; random weights (export does not care)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.distill.conftest import tiny_recipe
from vjepa_edge.models.checkpoint import save_vjepa
from vjepa_edge.models.students import create_student
from vjepa_edge.models.vjepa import student_model
from vjepa_edge.runinfo import write_json
from vjepa_edge.runs import RunDir

TINY = dict(frames=4, size=32, patch_size=8, depth=2, embed_dim=48, num_heads=3, mlp_hidden=192)
SMALL_QUANT = dict(calib_clips=8, eval_train_clips=8, eval_test_clips=4, batch_size=4)


def tiny_student() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_student("vit_tiny", **TINY).eval()


def make_run(root: Path) -> Path:
    run = RunDir(root / "run")
    save_vjepa(student_model(tiny_student()), run.student)
    write_json(run.recipe, tiny_recipe(root / "teacher.safetensors", root / "cache").to_dict())
    return run.root


def make_masked_layout(root: Path, loss: dict) -> Path:
    """The layout a distill run trained with `loss` leaves (student, recipe.json, a checkpoint whose state holds the
    head), written directly with random weights: seconds instead of a minute of distillation."""
    from vjepa_edge.distill.losses import DistillHead

    run = RunDir(root / "run")
    student = tiny_student()
    save_vjepa(student_model(student), run.student)
    write_json(run.recipe, tiny_recipe(root / "teacher.safetensors", root / "cache", loss=loss).to_dict())
    step = run.checkpoints / "step_0000004"
    step.mkdir(parents=True)
    save_vjepa(student_model(student), step / "model.safetensors")
    torch.manual_seed(1)
    masked = loss["kind"] == "masked"
    head = DistillHead(
        48, 40, tuple(student.grid), masked=masked, pred_dim=24, pred_depth=2, pred_heads=loss.get("pred_heads", 4)
    )
    torch.save({"head": head.state_dict()}, step / "state.pt")
    return run.root


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_run(tmp_path_factory.mktemp("export"))
