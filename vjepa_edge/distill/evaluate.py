"""The end-of-run evaluation of a distilled student, on held-out clips.

- `feature_cosine`: mean per-token cosine similarity of the student's projected tokens to the teacher's
  (LayerNorm'ed, on the student's grid), on `eval.cosine_clips` clips never trained on: the first of the probe's
  physics `test` clips, from the tokens the probe extracted (no second encoding); a real source's held-out clips
  in evaluation transform.
- Frozen probes on the physics labels for the teacher, the student and the same student architecture
  randomly initialised, trained and tested on the same held-out clips with the same probe. `retention` is
  student / teacher accuracy; student minus random student is what distillation added.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Subset

from vjepa_edge.data.config import ClipSpec
from vjepa_edge.data.loader import collate_clips
from vjepa_edge.data.sources import PHYSICS, PhysicsDataset, open_source
from vjepa_edge.distill.cache import state_dict_digest
from vjepa_edge.distill.losses import DistillModel, teacher_targets, token_cosine
from vjepa_edge.distill.recipe import Recipe
from vjepa_edge.eval.physics import physics_probe
from vjepa_edge.eval.probe import Adapted, Features, ProbeConfig
from vjepa_edge.models.students import build_encoder
from vjepa_edge.train.loop import task_bar

log = logging.getLogger(__name__)


class Distilled(Protocol):
    """What the evaluation reads from a distillation (`vjepa_edge.distill.train`'s distiller): the teacher, the
    trained student and its head, and where they run. The student's input is read from the student itself."""

    recipe: Recipe
    spec: ClipSpec  # the teacher's clips
    device: torch.device
    amp: torch.dtype | None
    teacher: nn.Module
    student: nn.Module
    model: DistillModel
    teacher_grid: tuple[int, int, int]
    student_grid: tuple[int, int, int]
    teacher_dim: int
    teacher_digest: str  # the key of the teacher's cached probe tokens

    def encode(self, clip: Tensor) -> Tensor:
        """The teacher's tokens of a clip at the teacher's input."""
        ...


def _params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@torch.no_grad()
def feature_cosine(d: Distilled, *, progress: bool) -> float:
    r = d.recipe
    student_input = d.student.input_spec
    n = r.eval.cosine_clips
    if r.data.source == PHYSICS:
        dataset = PhysicsDataset(d.spec, length=n, seed=r.run.seed, split="test").render()
    else:
        full = open_source(r.data.source, spec=d.spec, train=False, seed=r.run.seed)
        dataset = Subset(full, range(min(n, len(full))))
    loader = DataLoader(dataset, batch_size=32, collate_fn=collate_clips)
    cosines = []
    with task_bar("feature cosine", len(dataset), enabled=progress) as bar:
        for batch in loader:
            clip = batch["clip"].to(d.device)
            with _autocast(d):
                student = d.student(student_input.adapt(clip))
            cosines.append(_token_cosines(d, d.encode(clip), student))
            if bar is not None:
                bar(advance=clip.shape[0])
    return torch.cat(cosines).mean().item() if cosines else 0.0


@torch.no_grad()
def probe_cosine(d: Distilled, teacher: Features, student: Features, clips: int) -> float:
    """`feature_cosine` from tokens the probe already holds: the teacher's and the student's encoder tokens of the
    same held-out physics test clips (the first `clips` of them)."""
    t, u = (f.tokens[: min(clips, len(teacher), len(student))] for f in (teacher, student))
    cosines = [_token_cosines(d, t[s : s + 64], u[s : s + 64]) for s in range(0, len(t), 64)]
    return torch.cat(cosines).mean().item() if cosines else 0.0


def _autocast(d: Distilled) -> Any:
    return torch.autocast(d.device.type, dtype=d.amp or torch.float32, enabled=d.amp is not None)


def _token_cosines(d: Distilled, teacher: Tensor, student: Tensor) -> Tensor:
    """Per-token cosine [B, N] of the student's tokens through its projector to the teacher's tokens, resampled to
    the student's grid and LayerNorm'ed (the regression targets)."""
    targets = teacher_targets(teacher.to(d.device), d.teacher_grid, d.student_grid, normalize=True)
    with _autocast(d):
        pred = d.model.head.projector(student.to(d.device).float())
    return token_cosine(pred, targets)


def evaluate(d: Distilled, *, progress: bool) -> dict[str, Any]:
    """Cosine, probe accuracies (teacher, student, random student), retention and sizes, as report entries."""
    r = d.recipe
    d.student.eval()
    torch.manual_seed(r.run.seed + 1)
    random_student = build_encoder(d.student.arch).to(d.device).eval()  # the same architecture, untrained
    encoders = {
        "teacher": d.teacher,
        "student": Adapted(d.student, d.student.input_spec, d.student.grid),
        "random_student": Adapted(random_student, random_student.input_spec, random_student.grid),
    }
    test_tokens: dict[str, Features] = {}
    total = len(encoders) * (r.eval.train_clips + r.eval.test_clips)
    with task_bar("probe features", total, enabled=progress) as bar:
        results = physics_probe(
            encoders,
            spec=d.spec,
            labels=r.eval.labels,
            train_clips=r.eval.train_clips,
            test_clips=r.eval.test_clips,
            seed=r.run.seed,
            config=ProbeConfig(kind=r.eval.probe, epochs=r.eval.epochs, pool=r.eval.pool, seed=r.run.seed),
            autocast_dtype=d.amp,
            device=d.device,
            progress=bar,
            # Kept in the cache: the teacher's tokens for its next student, the random student's for the next run of
            # the recipe (the same seed, the same weights). Not the student's: a new entry every run.
            cache={"teacher": d.teacher_digest, "random_student": state_dict_digest(random_student.state_dict())},
            test_features=test_tokens,
        )
    if r.data.source == PHYSICS:  # the probe's held-out test clips are the physics test stream: no second encoding
        cosine = probe_cosine(d, test_tokens["teacher"], test_tokens["student"], r.eval.cosine_clips)
    else:  # the cosine is measured on the user's own held-out clips
        cosine = feature_cosine(d, progress=progress)
    spec = d.student.input_spec
    acc = {name: sum(x.accuracy for x in per.values()) / len(per) for name, per in results.items()}
    chance = sum(x.chance for x in results["teacher"].values()) / len(results["teacher"])
    report = {
        "teacher_probe_acc": acc["teacher"],
        "student_probe_acc": acc["student"],
        "random_student_probe_acc": acc["random_student"],
        "retention": acc["student"] / acc["teacher"] if acc["teacher"] > 0 else None,
        "distillation_gain": acc["student"] - acc["random_student"],
        "feature_cosine": cosine,
        "student_params": _params(d.student),
        "teacher_params": _params(d.teacher),
        "probe": {
            "kind": r.eval.probe,
            "pool": list(r.eval.pool),
            "labels": list(r.eval.labels),
            "chance": chance,
            "train_clips": r.eval.train_clips,
            "test_clips": r.eval.test_clips,
            "accuracy": {name: {label: x.accuracy for label, x in per.items()} for name, per in results.items()},
        },
        "student": {"name": r.student.name, "frames": spec.frames, "size": spec.size, "grid": list(d.student_grid)},
        "teacher": {"grid": list(d.teacher_grid), "dim": d.teacher_dim, "input": [d.spec.frames, d.spec.size]},
    }
    log.info(
        "probe (%s; %s): teacher %.1f%%, student %.1f%%, random student %.1f%%; retention %.2f; cosine %.3f",
        r.eval.probe,
        ", ".join(r.eval.labels),
        100 * acc["teacher"],
        100 * acc["student"],
        100 * acc["random_student"],
        report["retention"] or 0.0,
        cosine,
    )
    return report
