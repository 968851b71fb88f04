"""Exported artifacts found by path or run folder, each with its target and student (what `profile` and the
probes of the shipped model read).

An artifact written by `vjepa-edge export` has its entry in the `export_report.json` beside it: its target, the
student it came from and its input shape, which give the artifact's FLOPs and bytes for the estimates. A run
folder stands for the encoder artifacts in its `export/` folder. A bare artifact without a report can still be
measured where it runs, but not estimated (its FLOPs are unknown): `Artifact.student` is None.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from vjepa_edge.errors import ConfigError
from vjepa_edge.export.targets import SUFFIXES, TARGETS, Target
from vjepa_edge.runs import RunDir

REPORT = "export_report.json"  # beside every artifact `vjepa-edge export` writes (vjepa_edge.export.run)


@dataclass(frozen=True, kw_only=True, slots=True)
class Artifact:
    """One exported artifact: its path, its registered target (None when unknown) and where it came from."""

    path: Path
    target: Target | None
    student: Path | None  # the student .safetensors it was exported from (None: no export report)
    input_shape: tuple[int, ...] | None
    run: RunDir | None
    entry: dict | None = None  # its entry in export_report.json (None: none)

    @property
    def name(self) -> str:
        return self.target.name if self.target is not None else self.path.name

    @property
    def precision(self) -> str:
        if self.target is not None:
            return self.target.precision
        return "int8" if "int8" in self.path.name else "fp32"


def _entries(folder: Path) -> dict[str, dict]:
    f = folder / REPORT
    if not f.is_file():
        return {}
    try:
        data = json.loads(f.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(
            f"{f} is not readable JSON: {e}", hint="export the artifact again (vjepa-edge export)"
        ) from None
    return data if isinstance(data, dict) else {}


def export_entry(path: Path) -> dict | None:
    """The entry `vjepa-edge export` recorded for the artifact `path` in the report beside it (None: none)."""
    for e in _entries(path.parent).values():
        if isinstance(e, dict) and Path(str(e.get("artifact", ""))).name == path.name:
            return e
    return None


def _from_entry(path: Path, entry: dict | None, run: RunDir | None) -> Artifact:
    target = TARGETS.get(entry["target"]) if entry and entry.get("target") in TARGETS else None
    if target is None:  # a file with no report: its target is known only from the name `vjepa-edge export` gives
        stem = path.name.removesuffix(path.suffix)
        target = TARGETS.get(stem) if stem in TARGETS and TARGETS.get(stem).suffix == path.suffix else None
    student = Path(entry["student"]) if entry and entry.get("student") else None
    shape = tuple(entry["input_shape"]) if entry and entry.get("input_shape") else None
    return Artifact(path=path, target=target, student=student, input_shape=shape, run=run, entry=entry)


def find_artifacts(arg: str | Path) -> list[Artifact]:
    """The artifacts named by ARTIFACT_OR_RUN; a ConfigError with a hint when there are none."""
    p = Path(arg).expanduser()
    if not p.exists():
        raise ConfigError(
            f"no such artifact or run folder: {p}",
            hint="pass an exported artifact (.pte, .onnx, .mlpackage) or a distill run folder",
        )
    if p.suffix in SUFFIXES:
        folder = p.parent
        run = RunDir(folder.parent) if folder.name == "export" and RunDir(folder.parent).kind else None
        entry = next(
            (
                e
                for e in _entries(folder).values()
                if isinstance(e, dict) and Path(e.get("artifact", "")).name == p.name
            ),
            None,
        )
        return [_from_entry(p, entry, run)]
    run = RunDir(p)
    if p.is_dir() and run.kind == "distill":
        entries = _entries(run.export)
        found = [
            _from_entry(Path(e["artifact"]), e, run)
            for e in entries.values()
            if isinstance(e, dict) and e.get("part", "encoder") == "encoder" and Path(e.get("artifact", "")).exists()
        ]
        if found:
            return found
        raise ConfigError(
            f"the run {p} has no exported artifacts in {run.export}",
            hint=f"export one first: vjepa-edge export {p} --target xnnpack-int8",
        )
    raise ConfigError(
        f"{p} is neither an exported artifact ({', '.join(SUFFIXES)}) nor a distill run folder",
        hint="pass RUN/export/TARGET.pte (vjepa-edge export writes it) or the run folder itself",
    )


def predictor_artifacts(run: RunDir) -> list[Artifact]:
    """The predictors `vjepa-edge export --part predictor` left in the run's export folder (those still there)."""
    return [
        _from_entry(Path(e["artifact"]), e, run)
        for e in _entries(run.export).values()
        if isinstance(e, dict) and e.get("part") == "predictor" and Path(e.get("artifact", "")).exists()
    ]
