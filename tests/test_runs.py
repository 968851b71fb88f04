"""RunDir (the file names of a run folder) and resolve_run_or_ckpt (the RUN_OR_CKPT argument of later commands)."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest
import torch

from tests.conftest import HF, V1
from vjepa_edge import RunDir, load_vjepa, resolve_run_or_ckpt, save_vjepa
from vjepa_edge.errors import CheckpointError, VjepaEdgeError
from vjepa_edge.models import create_student, student_model
from vjepa_edge.runinfo import write_json
from vjepa_edge.train.distributed import DistInfo
from vjepa_edge.train.state import save_checkpoint


def _student():
    return student_model(create_student("vit_tiny", frames=2, size=16, depth=1))


def _started_run(root: Path, kind: str = "distill", *, checkpoint: bool = True) -> RunDir:
    """A run as the trainers leave it before the end: its config and a checkpoint, no finished model."""
    run = RunDir(root)
    write_json(run.recipe if kind == "distill" else run.config, {"name": "vit_t" if kind == "distill" else "physics"})
    if checkpoint:
        model = _student()
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        save_checkpoint(
            run.root, 5, model=model, arch=model.arch, trained=model, optimizer=opt, extra={}, info=DistInfo(), keep=2
        )
    return run


def _finished_run(root: Path, kind: str = "distill") -> RunDir:
    run = _started_run(root, kind, checkpoint=False)
    save_vjepa(_student(), run.student if kind == "distill" else run.teacher)
    return run


def test_layout_names_every_file(tmp_path: Path) -> None:
    run = RunDir(str(tmp_path))
    assert run.root == tmp_path
    names = {
        "student": "student.safetensors",
        "teacher": "teacher.safetensors",
        "recipe": "recipe.json",
        "config": "config.json",
        "env": "env.json",
        "metrics": "metrics.jsonl",
        "report": "report.json",
        "report_html": "report.html",
        "report_md": "report.md",
        "checkpoints": "checkpoints",
        "quant": "quant",
        "export": "export",
        "profile": "profile",
    }
    for prop, name in names.items():
        assert getattr(run, prop) == tmp_path / name, prop
    with pytest.raises(dataclasses.FrozenInstanceError):
        run.root = tmp_path / "other"  # type: ignore[misc]


def test_kind(tmp_path: Path) -> None:
    assert RunDir(tmp_path).kind is None
    assert _started_run(tmp_path / "d", checkpoint=False).kind == "distill"
    assert _started_run(tmp_path / "t", "teacher", checkpoint=False).kind == "teacher"
    assert RunDir(HF).kind is None  # config.json next to model.safetensors: a Hugging Face model, no run


def test_finished_distill_run_resolves_to_its_student(tmp_path: Path) -> None:
    run = _finished_run(tmp_path / "run")
    got = resolve_run_or_ckpt(run.root)
    assert (got.path, got.run, got.kind) == (run.student, run, "distill")
    assert load_vjepa(got.path).arch.encoder.embed_dim == 192
    # the student file itself keeps its run (the recipe is next to it)
    assert resolve_run_or_ckpt(str(run.student)) == got


def test_finished_teacher_run_resolves_to_its_teacher(tmp_path: Path) -> None:
    run = _finished_run(tmp_path / "run", "teacher")
    got = resolve_run_or_ckpt(run.root)
    assert (got.path, got.run, got.kind) == (run.teacher, run, "teacher")


def test_files_and_model_folders_are_checkpoints(tmp_path: Path) -> None:
    student = save_vjepa(_student(), tmp_path / "s.safetensors")
    for arg in (student, V1, HF):
        got = resolve_run_or_ckpt(arg)
        assert (got.path, got.run, got.kind) == (Path(arg), None, "checkpoint")
    ckpt = _started_run(tmp_path / "run").checkpoints / "step_0000005"
    got = resolve_run_or_ckpt(ckpt)  # a training checkpoint folder: load_vjepa reads its model.safetensors
    assert (got.path, got.kind) == (ckpt, "checkpoint")
    load_vjepa(got.path)


def test_unfinished_run_says_how_to_finish_it(tmp_path: Path) -> None:
    run = _started_run(tmp_path / "run")
    with pytest.raises(CheckpointError, match="has no student.safetensors: it has not finished") as info:
        resolve_run_or_ckpt(run.root)
    assert f"vjepa-edge distill --recipe vit_t --resume --out {run.root}" in info.value.hint
    assert str(run.checkpoints / "step_0000005" / "model.safetensors") in info.value.hint


def test_unfinished_teacher_run(tmp_path: Path) -> None:
    run = _started_run(tmp_path / "run", "teacher", checkpoint=False)
    with pytest.raises(CheckpointError, match="has no teacher.safetensors") as info:
        resolve_run_or_ckpt(run.root)
    assert f"vjepa-edge teacher pretrain --config physics --resume --out {run.root}" in info.value.hint


def test_folder_with_only_checkpoints(tmp_path: Path) -> None:
    run = _started_run(tmp_path / "run")
    run.recipe.unlink()
    with pytest.raises(CheckpointError, match="neither a run folder") as info:
        resolve_run_or_ckpt(run.root)
    assert "--resume --out" in info.value.hint and "step_0000005" in info.value.hint


def test_missing_and_foreign_paths(tmp_path: Path) -> None:
    with pytest.raises(VjepaEdgeError, match="no such run folder or checkpoint") as info:
        resolve_run_or_ckpt(tmp_path / "nope")
    assert info.value.hint
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="neither a run folder .* nor a model directory"):
        resolve_run_or_ckpt(tmp_path / "empty")


def test_hf_folder_with_a_recipe_is_a_run(tmp_path: Path) -> None:
    """recipe.json decides: a run folder that happens to hold a model.safetensors is still a run."""
    shutil.copytree(HF, tmp_path / "run")
    write_json(RunDir(tmp_path / "run").recipe, {"name": "vit_t"})
    with pytest.raises(CheckpointError, match="not finished"):
        resolve_run_or_ckpt(tmp_path / "run")
