"""`RunDir`: the file names of a run folder in one place, and `resolve_run_or_ckpt` for `RUN_OR_CKPT` arguments.

A distillation run holds recipe.json, env.json, metrics.jsonl, checkpoints/step_NNNNNNN/, student.safetensors and
report.json; a teacher pretraining run holds config.json instead of recipe.json and teacher.safetensors instead
of student.safetensors. Later stages add quant/, export/, profile/ and report.html / report.md. The writers
(distill, teacher, ...) own what goes into these files; this module only names them, so every command that
reads a run finds the same files.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from vjepa_edge.errors import CheckpointError

RunKind = Literal["distill", "teacher"]
ModelKind = Literal["distill", "teacher", "checkpoint"]


@dataclass(frozen=True, slots=True)
class RunDir:
    """The layout of the run folder at `root` (nothing is created or read until a property is used)."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root).expanduser())

    @property
    def student(self) -> Path:
        return self.root / "student.safetensors"

    @property
    def teacher(self) -> Path:
        return self.root / "teacher.safetensors"

    @property
    def recipe(self) -> Path:
        return self.root / "recipe.json"

    @property
    def config(self) -> Path:
        """The resolved teacher pretraining config (teacher runs)."""
        return self.root / "config.json"

    @property
    def env(self) -> Path:
        return self.root / "env.json"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def report(self) -> Path:
        return self.root / "report.json"

    @property
    def report_html(self) -> Path:
        return self.root / "report.html"

    @property
    def report_md(self) -> Path:
        return self.root / "report.md"

    @property
    def checkpoints(self) -> Path:
        """Training checkpoints, one `step_NNNNNNN/` folder each (`vjepa_edge.train.state.list_checkpoints`)."""
        return self.root / "checkpoints"

    @property
    def quant(self) -> Path:
        return self.root / "quant"

    @property
    def export(self) -> Path:
        return self.root / "export"

    @property
    def profile(self) -> Path:
        return self.root / "profile"

    @property
    def kind(self) -> RunKind | None:
        """The kind of run: "distill" (recipe.json), "teacher" (config.json), or None for no run.

        A Hugging Face model directory also has a config.json, next to its model.safetensors: it is no run.
        """
        if self.recipe.is_file():
            return "distill"
        if self.config.is_file() and not (self.root / "model.safetensors").is_file():
            return "teacher"
        return None

    @property
    def weights(self) -> Path | None:
        """The finished model of this run: student.safetensors or teacher.safetensors (None for no run)."""
        kind = self.kind
        if kind is None:
            return None
        return self.student if kind == "distill" else self.teacher


@dataclass(frozen=True, slots=True)
class StageCommands:
    """The command that makes each part of the distill run folder `run` (recipe `name`), with the quantization
    scheme, export target and profile devices to use: what the report shows for a part not made yet, and what a
    failed deploy stage says to rerun. No devices: every device profile."""

    run: str
    name: str
    scheme: str = "xnnpack-int8"
    target: str = "xnnpack-int8"
    devices: tuple[str, ...] = ()

    @property
    def distill(self) -> str:
        return f"vjepa-edge distill --recipe {self.name} --out {self.run}"

    @property
    def quantize(self) -> str:
        return f"vjepa-edge quantize {self.run} --scheme {self.scheme}"

    @property
    def export(self) -> str:
        return f"vjepa-edge export {self.run} --target {self.target}"

    @property
    def profile(self) -> str:
        devices = " ".join(f"--device {d}" for d in self.devices) or "--device all"
        return f"vjepa-edge profile {self.run} {devices}"

    @property
    def eval(self) -> str:
        return f"vjepa-edge eval {self.run}"

    @property
    def report(self) -> str:
        return f"vjepa-edge report {self.run}"


_STEP_DIR = re.compile(r"^step_(\d{7,})$")


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """One complete training checkpoint of a run: `step_NNNNNNN/` holding model.safetensors and state.pt."""

    path: Path
    step: int

    @property
    def model(self) -> Path:
        return self.path / "model.safetensors"

    @property
    def state(self) -> Path:
        return self.path / "state.pt"


def list_checkpoints(run_dir: Path) -> list[Checkpoint]:
    """Complete checkpoints of a run, oldest first (temporary folders of an interrupted write are ignored)."""
    root = RunDir(run_dir).checkpoints
    found = []
    if root.is_dir():
        for d in root.iterdir():
            m = _STEP_DIR.match(d.name)
            if m and (d / "model.safetensors").is_file() and (d / "state.pt").is_file():
                found.append(Checkpoint(d, int(m.group(1))))
    return sorted(found, key=lambda c: c.step)


@dataclass(frozen=True, slots=True)
class ResolvedModel:
    """What a `RUN_OR_CKPT` argument names: the weights to load, the run they belong to (if any), and its kind.

    kind "distill" / "teacher": the finished model of a run folder; "checkpoint": any other file or folder
    that `load_vjepa` reads (a student .safetensors, an official checkpoint, a Hugging Face directory).
    """

    path: Path
    run: RunDir | None
    kind: ModelKind


def resolve_run_or_ckpt(arg: str | os.PathLike[str]) -> ResolvedModel:
    """Resolve a `RUN_OR_CKPT` argument: a run folder, or anything `load_vjepa` reads. Raises CheckpointError.

    Only the layout is checked here; the file's contents are read by `load_vjepa` (or `read_arch`).
    """
    p = Path(arg).expanduser()
    if not p.exists():
        raise CheckpointError(
            f"no such run folder or checkpoint: {p}",
            hint="pass a run folder (vjepa-edge distill --out DIR), a .safetensors file or a V-JEPA checkpoint",
        )
    if p.is_file():
        return _file(p)
    run = RunDir(p)
    if run.kind is not None:
        return _finished(run)
    if (p / "model.safetensors").is_file():  # a Hugging Face directory, or a folder holding our own file
        return ResolvedModel(path=p, run=None, kind="checkpoint")
    raise CheckpointError(
        f"{p} is neither a run folder (no recipe.json or config.json) nor a model directory (no model.safetensors)",
        hint=_unfinished_hint(run) if run.checkpoints.is_dir() else "pass a run folder or a checkpoint file",
    )


def _file(p: Path) -> ResolvedModel:
    """A file; a run's own student.safetensors / teacher.safetensors keeps its run (for the recipe)."""
    run = RunDir(p.parent)
    kind = run.kind
    if kind is not None and p == run.weights:
        return ResolvedModel(path=p, run=run, kind=kind)
    return ResolvedModel(path=p, run=None, kind="checkpoint")


def _finished(run: RunDir) -> ResolvedModel:
    kind, weights = run.kind, run.weights
    assert kind is not None and weights is not None  # the caller checked kind
    if not weights.is_file():
        raise CheckpointError(
            f"the {kind} run {run.root} has no {weights.name}: it has not finished",
            hint=_unfinished_hint(run, kind),
        )
    return ResolvedModel(path=weights, run=run, kind=kind)


def _unfinished_hint(run: RunDir, kind: RunKind = "distill") -> str:
    """How to finish a run (with the name its stored config gives), and which checkpoint to pass meanwhile."""
    if kind == "distill":
        command = f"vjepa-edge distill --recipe {_stored_name(run.recipe, 'RECIPE')} --resume --out {run.root}"
    else:
        command = f"vjepa-edge teacher pretrain --config {_stored_name(run.config, 'CONFIG')} --resume --out {run.root}"
    found = list_checkpoints(run.root)
    latest = f", or pass its latest checkpoint {found[-1].model}" if found else ""
    return f"finish it with `{command}`{latest}"


def _stored_name(path: Path, placeholder: str) -> str:
    """The `name` in a run's stored recipe/config, or `placeholder` when it cannot be read."""
    try:
        name = json.loads(path.read_text()).get("name")
    except (OSError, ValueError, AttributeError):
        return placeholder
    return name if isinstance(name, str) and name else placeholder
