"""Everything about a distillation that can be known before compute, checked at once.

`validate_recipe` is what `vjepa-edge validate` prints and the first thing `distill` does: no teacher is
pretrained, no feature extracted and no clip rendered before it passes. Beyond the recipe's own values (checked
when it is loaded) it reads the outside world cheaply: the teacher file's architecture (tensor shapes, no model
built) or the registered teacher source's (no pretraining), the student's architecture, the data source's first
readable video, and the output folder. Every problem is reported in one ConfigError.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vjepa_edge.distill.recipe import Recipe, external_problems
from vjepa_edge.errors import ConfigError, VjepaEdgeError

HINT = "fix the recipe (or the --teacher / --data / --out options) and check it with `vjepa-edge validate RECIPE`"


def teacher_arch(recipe: Recipe):
    """The teacher's VJEPAArch: read from its file (shapes only), or from its registered source (no training)."""
    t = recipe.teacher
    if t.source is not None:
        from vjepa_edge.distill.teachers import get_teacher_source

        return get_teacher_source(t.source).arch()
    from vjepa_edge.models.checkpoint import read_arch

    return read_arch(Path(t.path).expanduser(), frames=t.frames or None, size=t.size or None)


def _student_problems(recipe: Recipe) -> tuple[Any, list[str]]:
    from vjepa_edge.models.students import student_arch

    s = recipe.student
    overrides = {k: v for k, v in (("patch_size", s.patch_size), ("tubelet_size", s.tubelet_size)) if v}
    try:
        return student_arch(s.name, frames=s.frames, size=s.size, **overrides), []
    except VjepaEdgeError as e:
        problems = getattr(e, "problems", None) or [e.message]
        return None, [f"student {s.name} at {s.frames} frames, {s.size} px: {p}" for p in problems]


def _teacher_problems(recipe: Recipe) -> tuple[Any, list[str]]:
    t = recipe.teacher
    try:
        arch = teacher_arch(recipe)
    except VjepaEdgeError as e:
        hint = f" ({e.hint})" if e.hint else ""
        return None, [f"teacher.path={t.path!r}: {e.message}{hint}"]
    if t.part == "target_encoder" and not arch.target_encoder:
        return arch, [f"teacher.part='target_encoder': {t.path} has no EMA target encoder; use 'auto' or 'encoder'"]
    return arch, []


def _fit_problems(recipe: Recipe, teacher, student) -> list[str]:
    """Do teacher and student fit together: the student subsamples the teacher's frames."""
    frames = teacher.encoder.num_frames
    if frames % recipe.student.frames:
        divisors = [d for d in range(1, frames + 1) if frames % d == 0]
        return [
            f"student.frames={recipe.student.frames} does not divide the teacher's {frames} frames "
            f"(the student sees the teacher's clip subsampled): choose one of {divisors}"
        ]
    return []


def recipe_problems(recipe: Recipe, *, out: str | Path | None = None, deploy: bool = False) -> list[str]:
    """Every problem of `recipe` that can be found without compute (empty when it can run); with `deploy`, also
    what would stop its deploy stages."""
    from vjepa_edge.data.sources import source_problems
    from vjepa_edge.paths import out_dir_problems

    problems = external_problems(recipe.to_dict())
    student, p = _student_problems(recipe)
    problems += p
    teacher = None
    if not any(q.startswith("teacher.path") for q in problems):
        teacher, p = _teacher_problems(recipe)
        problems += p
    if teacher is not None and student is not None:
        problems += _fit_problems(recipe, teacher, student)
    if not any(q.startswith("data.source") for q in problems):
        problems += source_problems(recipe.data.source, batch_size=recipe.data.batch_size)
    if out is not None:
        problems += out_dir_problems(out)
    if deploy:
        from vjepa_edge.distill.deploy import deploy_problems

        problems += deploy_problems(recipe)
    return problems


def validate_recipe(recipe: Recipe, *, out: str | Path | None = None, deploy: bool = False) -> None:
    """Raise one ConfigError listing every problem of `recipe` (and of the run folder `out`) found before compute."""
    problems = recipe_problems(recipe, out=out, deploy=deploy)
    if problems:
        raise ConfigError(f"invalid recipe {recipe.name}", problems=problems, hint=HINT)
