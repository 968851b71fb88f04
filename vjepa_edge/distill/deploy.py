"""The deploy stages that end the main job: a trained student -> a verified int8 artifact, verdicts and a report.

After distillation, `distill` runs the recipe's `[deploy]` stages on the run folder, each the library function of its
command with the recipe's names:

1. `quantize`: `vjepa-edge quantize RUN --scheme SCHEME` (its own evaluation is left to the eval stage);
2. `export`: `vjepa-edge export RUN --target TARGET`, which verifies the artifact against eager before it publishes
   it, and, for a masked run, the predictor (`--part predictor`, xnnpack-fp32) so a device can compute surprise;
3. `profile`: `vjepa-edge profile RUN --device host --device DEVICE...`: measured on this machine, estimated on
   the recipe's devices, a verdict each;
4. `eval`: `vjepa-edge eval RUN`;
5. `report`: `vjepa-edge report RUN`.

Everything the stages can refuse is checked with the recipe, before any compute (`deploy_problems`). A stage that
fails is recorded with its error and the command that reruns it; the stages after it are skipped; the student and
everything before it stay as they are. Outcomes go to report.json under "deploy".
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vjepa_edge.distill.recipe import Recipe
from vjepa_edge.errors import ConfigError, VjepaEdgeError, debugging
from vjepa_edge.runinfo import write_json
from vjepa_edge.runs import RunDir, StageCommands

log = logging.getLogger(__name__)

STAGES = ("quantize", "export", "profile", "eval", "report")
PREDICTOR_TARGET = "xnnpack-fp32"


def deploy_problems(recipe: Recipe) -> list[str]:
    """What would stop the deploy stages, known from the recipe alone (the names are checked by DeployConfig)."""
    from vjepa_edge.export.targets import check_target_scheme, get_target

    d, p = recipe.deploy, []
    target = get_target(d.target)
    try:
        check_target_scheme(target, d.scheme)
    except ConfigError as e:
        p.append(f"deploy: {e.message} ({e.hint})")
    try:
        target.load().check()  # a target whose toolchain is missing here (the QNN SDK)
    except ConfigError as e:
        p.append(f"deploy.target {d.target!r}: {e.message}")
    return p


@dataclass
class DeployResult:
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)
    artifact: str | None = None
    verdicts: dict[str, dict[str, Any]] = field(default_factory=dict)
    report_html: str | None = None

    @property
    def failed(self) -> str | None:
        return next((n for n, s in self.stages.items() if s["status"] == "failed"), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "stages": self.stages,
            "artifact": self.artifact,
            "verdicts": self.verdicts,
            "report_html": self.report_html,
            "failed": self.failed,
        }


def _commands(run: Path, recipe: Recipe) -> dict[str, str]:
    """The command that reruns each stage."""
    d = recipe.deploy
    c = StageCommands(str(run), recipe.name, d.scheme, d.target, ("host", *d.devices))
    return {name: getattr(c, name) for name in STAGES}


def deploy(run_dir: str | Path, recipe: Recipe, *, progress: bool = True) -> DeployResult:
    """Run the deploy stages on the finished distill run `run_dir`; see the module docstring."""
    run = RunDir(Path(run_dir))
    result = DeployResult()
    commands = _commands(run.root, recipe)
    actions: dict[str, Callable[[], None]] = {
        "quantize": lambda: _quantize(run, recipe, progress),
        "export": lambda: _export(run, recipe, result, progress),
        "profile": lambda: _profile(run, recipe, result, progress),
        "eval": lambda: _eval(run, progress),
        "report": lambda: _report(run, result),
    }
    failed = None
    for name in STAGES:
        if failed is not None:
            result.stages[name] = {
                "status": "skipped",
                "seconds": 0.0,
                "error": f"{failed} failed",
                "command": commands[name],
            }
            continue
        log.info("deploy: %s", name)
        t0 = time.perf_counter()
        entry: dict[str, Any] = {"status": "ok", "command": commands[name], "error": None}
        try:
            actions[name]()
        except VjepaEdgeError as e:
            entry.update(status="failed", error=e.message, hint=e.hint)
        except Exception as e:  # noqa: BLE001 - a stage's bug must not cost the student: record it, stop here
            entry.update(
                status="failed", error=f"{type(e).__name__}: {e}", hint="set VJEPA_EDGE_DEBUG=1 for the traceback"
            )
            if debugging():
                raise
        entry["seconds"] = time.perf_counter() - t0
        result.stages[name] = entry
        if entry["status"] == "failed":
            failed = name
            log.error("deploy stage %s failed: %s (rerun it with `%s`)", name, entry["error"], commands[name])
        _record(run, result)  # after every stage: an interrupted deploy still says what it did
    _record(run, result)  # with the skipped stages
    return result


def _record(run: RunDir, result: DeployResult) -> None:
    report = json.loads(run.report.read_text()) if run.report.is_file() else {}
    report["deploy"] = result.to_dict()
    write_json(run.report, report)


def _quantize(run: RunDir, recipe: Recipe, progress: bool) -> None:
    from vjepa_edge.quant.run import QuantizeOptions, quantize

    quantize(run.root, QuantizeOptions(scheme=recipe.deploy.scheme, evaluate=False), progress=progress)


def _export(run: RunDir, recipe: Recipe, result: DeployResult, progress: bool) -> None:
    from vjepa_edge.export.run import ExportOptions, export

    d = recipe.deploy
    done = export(run.root, ExportOptions(target=d.target, scheme=d.scheme), progress=progress)
    result.artifact = str(done.path)
    if recipe.loss.kind == "masked":  # the world model a device computes surprise with
        export(run.root, ExportOptions(target=PREDICTOR_TARGET, part="predictor"), progress=progress)


def _profile(run: RunDir, recipe: Recipe, result: DeployResult, progress: bool) -> None:
    from vjepa_edge.profile.run import ProfileOptions, profile

    done = profile(run.root, ProfileOptions(devices=("host", *recipe.deploy.devices)), progress=progress)
    for d in done.results:
        result.verdicts[d["device"]] = {
            k: d.get(k) for k in ("target", "measured", "p50_ms", "p90_ms", "budget_ms", "fits")
        }


def _eval(run: RunDir, progress: bool) -> None:
    from vjepa_edge.eval.run import evaluate_run

    evaluate_run(run.root, progress=progress)


def _report(run: RunDir, result: DeployResult) -> None:
    from vjepa_edge.report import write_report

    result.report_html = str(write_report(run.root).html)


__all__ = ["STAGES", "DeployResult", "deploy", "deploy_problems"]
