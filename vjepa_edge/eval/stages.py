"""The models `vjepa-edge eval` evaluates, one `Stage` each, found from what a run folder holds.

A distill run gives, in pipeline order: `teacher` (the encoder that distilled: its EMA target encoder when the file
has one, as distillation reads it), `random_teacher` (its architecture freshly initialised), `student` (fp32),
`random_student` (the student's architecture, initialised as the distillation's own evaluation does), `int8` (each
program `vjepa-edge quantize` left in RUN/quant/SCHEME/ that runs on this machine and that no exported artifact
holds: see `_int8_stages`) and `artifact:TARGET` (each encoder artifact `vjepa-edge export` left in RUN/export/
that runs here, through its runtime). A teacher run or a
V-JEPA checkpoint gives `teacher` and `random_teacher`; a bare student file `student` and `random_student`.

A stage holds its probe encoder (clips at the evaluation's clip spec in, tokens out) and, where the model has a world
model, a factory for its intuitive-physics surprise model (`vjepa_edge.eval.surprise`), built only when asked for.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from vjepa_edge.errors import CheckpointError, ConfigError
from vjepa_edge.eval.probe import Adapted
from vjepa_edge.runs import ResolvedModel, RunDir

log = logging.getLogger(__name__)

StageKind = Literal["teacher", "student", "baseline"]


@dataclass
class Stage:
    """One evaluated model. `encoder`: the probe encoder (an `Adapted`); `surprise`: makes its surprise model (None:
    the model has no predictor); `digest`: a key of its weights for the probe-feature cache (None: not cached);
    `surprise_digest`: a key of the weights its surprise model computes with, for the surprise cache (None: not
    cached; the teachers, which every student of a teacher scores again, and the random-init student, the same for
    every run of a recipe, are)."""

    name: str
    label: str
    kind: StageKind
    source: str
    encoder: nn.Module
    surprise: Callable[[], Any] | None = None
    digest: str | None = None
    surprise_digest: str | None = None
    size_bytes: int | None = None
    notes: list[str] = field(default_factory=list)
    probe: bool = True  # False: a surprise baseline only


def _params_bytes(module: nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in module.parameters())


def teacher_file(run: RunDir) -> Path:
    """The teacher a distill run distilled from: report.json's `teacher_path`, or the recipe's registered source
    when that file is gone (the embedded teacher, from the cache). Raises CheckpointError with the fix."""
    from vjepa_edge.distill.head import run_recipe
    from vjepa_edge.distill.teachers import get_teacher_source

    if run.report.is_file():
        path = json.loads(run.report.read_text()).get("teacher_path")
        if path and Path(path).is_file():
            return Path(path)
    recipe = run_recipe(run)
    if recipe.teacher.source is not None:
        cached = get_teacher_source(recipe.teacher.source).cached()
        if cached is not None:
            return cached
        raise CheckpointError(
            f"the {recipe.teacher.source} teacher of {run.root} is not in this machine's cache",
            hint=f"make it with `vjepa-edge distill --recipe {recipe.name}` (it is pretrained and cached on first use)",
        )
    raise CheckpointError(
        f"the teacher of {run.root} ({recipe.teacher.path}) is gone",
        hint="put the teacher file back where the recipe names it",
    )


def _teacher_stages(model: Any, path: Path, *, part: str = "auto", seed: int = 0) -> list[Stage]:
    """The teacher `model` (loaded from `path`) and its architecture randomly initialised."""
    from vjepa_edge.distill.cache import state_dict_digest
    from vjepa_edge.eval.surprise import random_init_vjepa, teacher_surprise_model

    if part == "auto":
        part = "target_encoder" if "target_encoder" in model.parts else "encoder"
    encoder = getattr(model, part).eval()
    has_predictor = "predictor" in model.parts
    spec = encoder.input_spec

    random = random_init_vjepa(model, seed=seed)
    random_encoder = getattr(random, part if part in random.parts else "encoder").eval()
    return [
        Stage(
            "teacher",
            "teacher",
            "teacher",
            str(path),
            Adapted(encoder, spec, encoder.grid),
            (lambda: teacher_surprise_model(model)) if has_predictor else None,
            digest=state_dict_digest(encoder.state_dict()),
            surprise_digest=state_dict_digest(model.state_dict()) if has_predictor else None,
            size_bytes=_params_bytes(encoder),
        ),
        Stage(
            "random_teacher",
            "random-init teacher",
            "baseline",
            f"the teacher's architecture, seed {seed}",
            Adapted(random_encoder, spec, random_encoder.grid),
            (lambda: teacher_surprise_model(random)) if has_predictor else None,
            surprise_digest=state_dict_digest(random.state_dict()) if has_predictor else None,
        ),
    ]


def _student_stages(resolved: ResolvedModel, student: nn.Module, seed: int) -> list[Stage]:
    """The student encoder (loaded from `resolved`) and its architecture randomly initialised."""
    from vjepa_edge.distill.head import head_problems
    from vjepa_edge.models.students import build_encoder

    student = student.eval()
    spec = student.input_spec
    world_model = resolved.run is not None and not head_problems(resolved.run, what="surprise", predictor=True)
    with torch.random.fork_rng(devices=[]):  # the random student of the distillation's own evaluation
        torch.manual_seed(seed + 1)
        random = build_encoder(student.arch).eval()
    run = resolved.run
    random_world = _random_student_surprise(run, seed) if world_model else None  # the same for every run of a recipe
    return [
        Stage(
            "student",
            "fp32 student",
            "student",
            str(resolved.path),
            Adapted(student, spec, student.grid),
            (lambda: _student_surprise(run)) if world_model else None,
            size_bytes=_params_bytes(student),
        ),
        Stage(
            "random_student",
            "random-init student",
            "baseline",
            f"the student's architecture, seed {seed + 1}",
            Adapted(random, spec, random.grid),
            (lambda: random_world) if random_world is not None else None,
            surprise_digest=_surprise_digest(random_world) if random_world is not None else None,
        ),
    ]


def _student_surprise(run: RunDir, **kw: Any) -> Any:
    from vjepa_edge.eval.surprise import student_surprise_model

    return student_surprise_model(run, **kw)


def _random_student_surprise(run: RunDir, seed: int) -> Any:
    from vjepa_edge.eval.surprise import random_student_surprise_model

    return random_student_surprise_model(run, seed=seed + 1)


def _surprise_digest(model: Any) -> str:
    """A key of the weights a student surprise model computes with (its encoder, projector and predictor)."""
    from vjepa_edge.distill.cache import state_dict_digest

    parts = {"encoder": model.encoder, "projector": model.projector, "predictor": model.predictor}
    return state_dict_digest({f"{n}.{k}": v for n, m in parts.items() for k, v in m.state_dict().items()})


def _exported(run: RunDir) -> list[Any]:
    """The encoder artifacts `vjepa-edge export` left in the run (none: an empty list)."""
    from vjepa_edge.export.artifacts import find_artifacts

    try:
        return find_artifacts(run.root)
    except ConfigError:  # nothing exported
        return []


def _int8_stages(
    run: RunDir, student: nn.Module, world_model: bool, include: tuple[str, ...], lowered: set[str]
) -> list[Stage]:
    """The int8 programs of RUN/quant/, run in PyTorch. A program that an exported artifact holds is left to that
    artifact's stage unless asked for by name: PT2E programs run their quantize / dequantize reference ops in
    PyTorch, about 3 s a clip for vit_s on 2 cores, 40x the artifact XNNPACK runs, which computes the same
    int8 program with real int8 kernels (export verified it against this program). `lowered`: the schemes of the
    exported artifacts."""
    from vjepa_edge.quant.run import REPORT, QuantizedEncoder
    from vjepa_edge.quant.schemes import SCHEMES

    stages = []
    if not run.quant.is_dir():
        return stages
    for folder in sorted(p for p in run.quant.iterdir() if (p / REPORT).is_file()):
        if folder.name not in SCHEMES:
            continue
        scheme = SCHEMES.get(folder.name)
        name = "int8" if folder.name == "xnnpack-int8" else f"int8:{folder.name}"
        if not scheme.runs_here:
            log.info("skipping the %s program: it does not run on this machine", folder.name)
            continue
        if folder.name in lowered and name not in include:
            log.info(
                "the %s program is evaluated as the artifact that runs it (--stage %s: in PyTorch)", folder.name, name
            )
            continue
        program = scheme.load().load(folder)
        encoder = QuantizedEncoder(program, tuple(student.grid))
        stages.append(
            Stage(
                name,
                f"int8 ({folder.name})",
                "student",
                str(folder),
                Adapted(encoder, program.input_spec, student.grid),
                (lambda e=encoder: _student_surprise(run, encoder=e, context="hold")) if world_model else None,
                size_bytes=program.size_bytes,
            )
        )
    return stages


def _artifact_stages(run: RunDir, world_model: bool, artifacts: list[Any]) -> list[Stage]:
    from vjepa_edge.export.artifacts import predictor_artifacts
    from vjepa_edge.export.encoder import ArtifactEncoder

    if not artifacts:
        return []
    runnable = [p for p in predictor_artifacts(run) if p.target is not None and p.target.load().cannot_run() is None]
    predictor = runnable[0].path if runnable else None  # the exported predictor (float)
    stages = []
    for a in artifacts:
        if a.target is None:
            continue
        try:
            encoder = ArtifactEncoder(a.path)
        except ConfigError as e:  # a target this machine cannot run (Core ML, QNN, ...)
            log.info("skipping %s: %s", a.path.name, e.message)
            continue

        def make(e: ArtifactEncoder = encoder, p: Path | None = predictor) -> Any:
            if p is None:
                return _student_surprise(run, encoder=e, context="hold")
            from vjepa_edge.export.encoder import PredictorArtifact

            return _student_surprise(run, encoder=e, predictor=PredictorArtifact(p), context="hold")

        stage = Stage(
            f"artifact:{a.target.name}",
            f"{a.path.name} ({a.target.name})",
            "student",
            str(a.path),
            Adapted(encoder, encoder.input_spec, encoder.input_spec.grid),
            make if world_model else None,
            size_bytes=a.path.stat().st_size,
        )
        if world_model and predictor is None:
            stage.notes.append("no exported predictor: surprise uses the eager predictor with the artifact encoder")
        elif world_model:
            stage.notes.append(f"surprise: the artifact encoder and the exported predictor {predictor.name}")
        stages.append(stage)
    return stages


def find_stages(resolved: ResolvedModel, *, seed: int = 0, include: tuple[str, ...] = ()) -> list[Stage]:
    """Every stage `resolved` offers, in pipeline order (see the module docstring); `include`: stages asked for by
    name (an int8 program that an artifact holds is evaluated only when asked for)."""
    from vjepa_edge.models.checkpoint import load_vjepa

    model = load_vjepa(resolved.path)  # the run's student, a teacher run's teacher, or the checkpoint
    if resolved.kind == "teacher":
        return _teacher_stages(model, resolved.path, seed=seed)
    if resolved.kind == "checkpoint":
        if "predictor" in model.parts or "target_encoder" in model.parts:  # a V-JEPA file: evaluated as a teacher
            return _teacher_stages(model, resolved.path, seed=seed)
        return _student_stages(resolved, model.encoder, seed)
    run = resolved.run
    assert run is not None
    from vjepa_edge.distill.head import run_recipe

    recipe = run_recipe(run)
    teacher = teacher_file(run)
    stages = _teacher_stages(load_vjepa(teacher), teacher, part=recipe.teacher.part, seed=seed)
    # In a distill run the random student is the probe baseline (the distillation measured it); the random teacher,
    # as large as the teacher, is the surprise baseline of the teacher alone.
    stages[1].probe = False
    stages[1].notes.append("surprise baseline only: the random-init student is the probe baseline")
    students = _student_stages(resolved, model.encoder, seed)
    world_model = students[0].surprise is not None
    student = students[0].encoder.encoder
    artifacts = _exported(run)
    lowered = {a.entry["scheme"] for a in artifacts if a.entry and a.entry.get("scheme")}
    return [
        *stages,
        *students,
        *_int8_stages(run, student, world_model, include, lowered),
        *_artifact_stages(run, world_model, artifacts),
    ]


__all__ = ["Adapted", "Stage", "find_stages", "teacher_file"]
