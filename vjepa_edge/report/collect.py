"""Read a distill run folder into one `RunSummary`: every file the report shows, each optional but report.json.

The readers are tolerant: a missing, unreadable or oddly shaped file becomes None (with a note saying why), a
missing key becomes None, so a section degrades to "not run yet" instead of the report failing. Only the checks in
`check_run` (no such folder, no report.json) stop the command, and they run before anything is read or drawn.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vjepa_edge.errors import CheckpointError
from vjepa_edge.runs import RunDir

log = logging.getLogger(__name__)

DEFAULT_SCHEME = "xnnpack-int8"


def get(obj: Any, *keys: str | int) -> Any:
    """`obj[k1][k2]...`, or None where a key is missing or a level is not a dict/list."""
    for k in keys:
        if isinstance(obj, dict):
            obj = obj.get(k)
        elif isinstance(obj, list) and isinstance(k, int) and -len(obj) <= k < len(obj):
            obj = obj[k]
        else:
            return None
    return obj


def num(obj: Any, *keys: str | int) -> float | None:
    """A finite number at `keys` (bools are no numbers), else None."""
    v = get(obj, *keys)
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        return None
    return float(v)


def text(obj: Any, *keys: str | int) -> str | None:
    v = get(obj, *keys)
    return v if isinstance(v, str) and v else None


@dataclass(frozen=True, slots=True)
class RunSummary:
    """Everything a report shows about one run; each part None (or empty) when its file is missing."""

    run: RunDir
    report: dict[str, Any]
    metrics: list[dict[str, Any]] = field(default_factory=list)
    env: dict[str, Any] | None = None
    recipe: dict[str, Any] | None = None
    quant: dict[str, dict[str, Any]] = field(default_factory=dict)  # scheme -> quant_report.json
    export: dict[str, dict[str, Any]] | None = None  # key -> entry of export_report.json
    profile: dict[str, Any] | None = None
    profile_png: Path | None = None
    eval: dict[str, Any] | None = None
    examples: Path | None = None  # eval/voe_examples.npz
    teacher_metrics: list[dict[str, Any]] = field(default_factory=list)
    teacher_run: Path | None = None
    notes: tuple[str, ...] = ()  # files that exist but could not be read

    @property
    def name(self) -> str:
        return text(self.report, "recipe") or text(self.recipe, "name") or "RECIPE"

    @property
    def deploy(self) -> dict[str, Any]:
        d = get(self.report, "deploy")
        return d if isinstance(d, dict) else {}

    @property
    def primary_scheme(self) -> str | None:
        """The quantization scheme the summary quotes: the deployed artifact's, else xnnpack-int8, else the first."""
        entry = self.primary_export
        for name in (text(entry, "scheme"), text(entry, "target"), DEFAULT_SCHEME):
            if name and name in self.quant:
                return name
        return min(self.quant) if self.quant else None

    @property
    def primary_export(self) -> dict[str, Any] | None:
        """The deployed artifact's export entry, else the xnnpack-int8 encoder, else an int8 encoder, else any."""
        if not self.export:
            return None
        entries = [e for e in self.export.values() if isinstance(e, dict)]
        artifact = text(self.deploy, "artifact")
        for pick in (
            lambda e: artifact is not None and text(e, "artifact") == artifact,
            lambda e: text(e, "target") == DEFAULT_SCHEME and text(e, "part") in (None, "encoder"),
            lambda e: text(e, "precision") == "int8" and text(e, "part") in (None, "encoder"),
            lambda e: True,
        ):
            found = [e for e in entries if pick(e)]
            if found:
                return found[0]
        return None

    @property
    def artifact(self) -> str | None:
        return text(self.deploy, "artifact") or text(self.primary_export, "artifact")

    @property
    def eval_stages(self) -> dict[str, dict[str, Any]]:
        stages = get(self.eval, "stages")
        return {k: v for k, v in stages.items() if isinstance(v, dict)} if isinstance(stages, dict) else {}

    @property
    def verdicts(self) -> dict[str, dict[str, Any]]:
        """Per device: fits, latency_ms, budget_ms, measured, target (deploy's verdicts, else profile.json's)."""
        out: dict[str, dict[str, Any]] = {}
        deployed = get(self.deploy, "verdicts")
        if isinstance(deployed, dict) and deployed:
            for device, v in deployed.items():
                if isinstance(v, dict):
                    ms = num(v, "p50_ms") if num(v, "p50_ms") is not None else num(v, "latency_ms")
                    out[str(device)] = {**v, "latency_ms": ms}
            return out
        for d in self.profile_devices:
            out[str(d.get("device"))] = {**d, "latency_ms": num(d, "p50_ms")}
        return out

    @property
    def profile_devices(self) -> list[dict[str, Any]]:
        devices = get(self.profile, "devices")
        return [d for d in devices if isinstance(d, dict) and d.get("device")] if isinstance(devices, list) else []


def check_run(path: str | Path) -> RunDir:
    """The run folder at `path`, checked before any work: it exists and is a finished distill run (report.json)."""
    p = Path(path).expanduser()
    if not p.exists():
        raise CheckpointError(f"no such run folder: {p}", hint="pass the --out folder of `vjepa-edge distill`")
    if not p.is_dir():
        raise CheckpointError(
            f"{p} is a file, not a run folder", hint="pass the run folder that holds report.json, not a file inside it"
        )
    run = RunDir(p)
    if not run.report.is_file():
        if run.kind == "teacher":
            hint = "a teacher pretraining run has no distillation report; pass a distill run folder"
        elif run.kind == "distill":
            hint = f"finish the run first: `vjepa-edge distill --recipe {_recipe_name(run)} --resume --out {p}`"
        else:
            hint = "pass the --out folder of `vjepa-edge distill` (it holds report.json)"
        raise CheckpointError(f"{p} is not a finished distill run: it has no report.json", hint=hint)
    report = read_json(run.report)
    if not isinstance(report, dict):
        raise CheckpointError(
            f"{run.report} is not a JSON object", hint="rerun `vjepa-edge distill` to write it again, or restore it"
        )
    return run


def collect(run: RunDir) -> RunSummary:
    """Read every file of a checked run folder (`check_run`)."""
    notes: list[str] = []

    def obj(path: Path) -> dict[str, Any] | None:
        if not path.is_file():
            return None
        v = read_json(path)
        if not isinstance(v, dict):
            notes.append(f"{path} could not be read as a JSON object; its section is left out")
            return None
        return v

    report = obj(run.report) or {}
    quant: dict[str, dict[str, Any]] = {}
    if run.quant.is_dir():
        for f in sorted(run.quant.glob("*/quant_report.json")):
            q = obj(f)
            if q is not None:
                quant[text(q, "scheme") or f.parent.name] = q
    export = obj(run.export / "export_report.json")
    if export is not None:
        export = {k: v for k, v in export.items() if isinstance(v, dict)}
    png = run.profile / "profile.png"
    examples = run.root / "eval" / "voe_examples.npz"
    teacher_run = _teacher_run(text(report, "teacher_path"))
    return RunSummary(
        run=run,
        report=report,
        metrics=read_jsonl(run.metrics),
        env=obj(run.env),
        recipe=obj(run.recipe),
        quant=quant,
        export=export,
        profile=obj(run.profile / "profile.json"),
        profile_png=png if png.is_file() else None,
        eval=obj(run.root / "eval" / "eval.json"),
        examples=examples if examples.is_file() else None,
        teacher_metrics=read_jsonl(teacher_run / "metrics.jsonl") if teacher_run else [],
        teacher_run=teacher_run,
        notes=tuple(notes),
    )


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        log.warning("could not read %s: %s", path, e)
        return None


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The rows of a metrics.jsonl that parse as JSON objects (a line cut by an interrupted run is skipped)."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return []
    rows = []
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def _teacher_run(teacher_path: str | None) -> Path | None:
    """The teacher's pretraining run folder: `NAME.run/` beside a cached `NAME.safetensors`, or the folder of a
    run's own teacher.safetensors; only when it has a metrics.jsonl."""
    if not teacher_path:
        return None
    p = Path(teacher_path)
    for cand in (p.with_suffix(".run"), p.parent if p.name == "teacher.safetensors" else None):
        if cand is not None and (cand / "metrics.jsonl").is_file():
            return cand
    return None


def _recipe_name(run: RunDir) -> str:
    r = read_json(run.recipe)
    return text(r, "name") or "RECIPE"
