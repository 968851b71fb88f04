"""`vjepa-edge distill`, `vjepa-edge validate` and `vjepa-edge list`: recipes -> small ViT students."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from vjepa_edge.cli._common import JsonOpt, command, console
from vjepa_edge.errors import ConfigError

LISTABLE = ("recipes", "devices", "students", "schemes", "targets")


def _overrides(teacher: Path | None, data: str | None) -> dict[str, dict[str, Any]]:
    over: dict[str, dict[str, Any]] = {}
    if teacher is not None:
        over["teacher"] = {"path": str(teacher)}
    if data is not None:
        over["data"] = {"source": data}
    return over


def _render_distill(rep: dict[str, Any]) -> None:
    t = Table(title=f"distilled {rep['recipe']}: {rep['run_dir']}", title_justify="left", show_header=False)
    t.add_column(style="bold")
    t.add_column(justify="right")
    labels = ", ".join(rep["probe"]["labels"])
    t.add_row(f"teacher probe acc ({labels})", f"{rep['teacher_probe_acc']:.1%}")
    t.add_row("student probe acc", f"{rep['student_probe_acc']:.1%}")
    t.add_row("random-init student probe acc", f"{rep['random_student_probe_acc']:.1%}")
    retention = rep["retention"]
    t.add_row("retention (student / teacher)", "n/a" if retention is None else f"{retention:.2f}")
    t.add_row("feature cosine (held-out tokens)", f"{rep['feature_cosine']:.3f}")
    t.add_row(
        "student / teacher parameters", f"{rep['student_params'] / 1e6:.1f} M / {rep['teacher_params'] / 1e6:.1f} M"
    )
    if rep["cache"].get("enabled"):
        t.add_row("teacher-feature cache", f"{rep['cache']['bytes'] / 1e6:.0f} MB")
    console.print(t)
    console.print(f"student: {rep['student_path']}\nreport:  {Path(rep['run_dir']) / 'report.json'}")
    if rep.get("deploy"):
        _render_deploy(rep["deploy"])


def _render_deploy(d: dict[str, Any]) -> None:
    t = Table(title="deploy", title_justify="left")
    for col in ("stage", "status", "seconds", "detail"):
        t.add_column(col, justify="right" if col == "seconds" else "left")
    colour = {"ok": "green", "failed": "red", "skipped": "yellow"}
    for name, s in d["stages"].items():
        detail = "" if s["status"] == "ok" else f"{s['error']}; rerun: {s['command']}"
        t.add_row(name, f"[{colour[s['status']]}]{s['status']}", f"{s['seconds']:.0f}", detail)
    console.print(t)
    for device, v in d["verdicts"].items():
        how = "measured" if v["measured"] else "estimated"
        fits = "[green]fits" if v["fits"] else "[red]over budget"
        p50 = "-" if v["p50_ms"] is None else f"{v['p50_ms']:.2f} ms"
        console.print(f"{device:<12} {v['target']:<14} {p50:>10} ({how}) of {v['budget_ms']:.1f} ms: {fits}")
    if d.get("artifact"):
        console.print(f"artifact: {d['artifact']}")
    if d.get("report_html"):
        console.print(f"report:   {d['report_html']}")


@command(_render_distill)
def distill(
    recipe: Annotated[str, typer.Option(help="Recipe name (recipes/NAME.toml, e.g. vit_s) or a TOML path.")],
    teacher: Annotated[Path | None, typer.Option(help="Teacher checkpoint (anything load_vjepa reads).")] = None,
    data: Annotated[str | None, typer.Option(help="Data source: physics, a directory, a CSV or a video.")] = None,
    out: Annotated[Path | None, typer.Option(help="Run folder to write (default runs/distill/RECIPE).")] = None,
    resume: Annotated[bool, typer.Option(help="Continue the run in --out from its last checkpoint.")] = False,
    deploy: Annotated[
        bool, typer.Option(help="Then quantize, export, profile, eval and report (the recipe's [deploy]).")
    ] = True,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
    json_out: JsonOpt = False,
) -> dict[str, Any] | None:
    """Distill a V-JEPA teacher into a small ViT student, then deploy it (int8 artifact, verdicts, report) unless
    --no-deploy; writes everything into the run folder."""
    from vjepa_edge.distill.recipe import load_recipe
    from vjepa_edge.distill.train import distill as run_distill

    r = load_recipe(recipe, **_overrides(teacher, data))
    result = run_distill(r, out, resume=resume, progress=progress and not json_out, deploy=deploy)
    if not result.report:  # a rank other than 0 of a torchrun job: rank 0 reports
        return None
    failed = (result.report.get("deploy") or {}).get("failed")
    if failed:  # the student and the stages before are in place; say which stage failed and how to rerun it
        from vjepa_edge.errors import VjepaEdgeError

        stage = result.report["deploy"]["stages"][failed]
        if not json_out:
            _render_distill({"run_dir": str(result.run_dir), **result.report})
        raise VjepaEdgeError(
            f"deploy stage {failed} failed: {stage['error']} (the student and the stages before it are in "
            f"{result.run_dir})",
            hint=f"{stage.get('hint') or 'fix the cause'}; then rerun it: {stage['command']}",
        )
    return {"run_dir": str(result.run_dir), **result.report}


def _render_valid(v: dict[str, Any]) -> None:
    console.print(f"{v['path']}: valid recipe {v['recipe']!r} ({v['resolved']['description']})", soft_wrap=True)


@command(_render_valid)
def validate(
    recipe: Annotated[str, typer.Argument(help="Recipe name or TOML path.")],
    teacher: Annotated[Path | None, typer.Option(help="Teacher checkpoint to validate the recipe with.")] = None,
    data: Annotated[str | None, typer.Option(help="Data source to validate the recipe with.")] = None,
    out: Annotated[Path | None, typer.Option(help="Run folder the distillation would write.")] = None,
    json_out: JsonOpt = False,
) -> dict[str, Any]:
    """Check a recipe as `distill` will, without compute: values, shapes, teacher file, student, data, run folder."""
    from vjepa_edge.distill.recipe import load_recipe, resolve_recipe_path
    from vjepa_edge.distill.validate import validate_recipe

    r = load_recipe(recipe, **_overrides(teacher, data))
    validate_recipe(r, out=out)
    return {"recipe": r.name, "path": str(resolve_recipe_path(recipe)), "valid": True, "resolved": r.to_dict()}


def _render_list(rows: dict[str, Any]) -> None:
    ((what, items),) = rows.items()
    t = Table(title=what, title_justify="left")
    for key in items[0] if items else []:
        t.add_column(key)
    for row in items:
        t.add_row(*(str(v) for v in row.values()))
    console.print(t)


@command(_render_list)
def list_things(
    what: Annotated[str, typer.Argument(help=f"What to list: {', '.join(LISTABLE)}.")],
    json_out: JsonOpt = False,
) -> dict[str, Any]:
    """List the registered recipes, device profiles, students, quantization schemes or export targets."""
    if what not in LISTABLE:
        import difflib

        close = difflib.get_close_matches(what, LISTABLE, n=1)
        raise ConfigError(
            f"cannot list {what!r}" + (f" (did you mean {close[0]!r}?)" if close else ""),
            hint=f"choose one of: {', '.join(LISTABLE)}",
        )
    listers = {
        "recipes": _recipes,
        "devices": _devices,
        "students": _students,
        "schemes": _schemes,
        "targets": _targets,
    }
    return {what: listers[what]()}


def _recipes() -> list[dict[str, Any]]:
    from vjepa_edge.distill.recipe import bundled_recipes, load_recipe

    rows = []
    for path in bundled_recipes():
        r = load_recipe(path, check=False)
        rows.append(
            {
                "name": r.name,
                "student": f"{r.student.name} {r.student.frames}x{r.student.size}",
                "teacher": r.teacher.path,
                "loss": f"{r.loss.kind} {r.loss.distance}",
                "steps": r.optim.steps,
            }
        )
    return rows


def _devices() -> list[dict[str, Any]]:
    from vjepa_edge.profile.devices import device_files, load_device_file

    rows = []
    for path in device_files():
        d = load_device_file(path)
        rows.append(
            {
                "name": d.name,
                "soc": d.soc,
                "budget": f"{d.budget_ms:g} ms ({d.budget_use})",
                "targets": ", ".join(d.targets),
                "transport": d.transport.kind,
            }
        )
    return rows


def _students() -> list[dict[str, Any]]:
    from vjepa_edge.models.students import student_table

    return [
        {
            "name": row["name"],
            "kind": row["kind"],
            "params": f"{row['params'] / 1e6:.1f} M",
            "width": row["embed_dim"],
            "grid (16x64)": "x".join(str(g) for g in row["grid"]),
            "description": row["description"],
        }
        for row in student_table(frames=16, size=64)
    ]


def _schemes() -> list[dict[str, Any]]:
    from vjepa_edge.quant.schemes import SCHEMES

    return [
        {
            "name": name,
            "backend": s.backend,
            "calibrated": s.calibrated,
            "qat": s.qat,
            "runs here": s.runs_here,
            "export targets": ", ".join(s.targets) or "(PyTorch)",
            "description": s.description,
        }
        for name, s in SCHEMES.items()
    ]


def _targets() -> list[dict[str, Any]]:
    from vjepa_edge.export.targets import TARGETS

    return [
        {
            "name": name,
            "backend": t.backend,
            "precision": t.precision,
            "file": t.suffix,
            "schemes": ", ".join(t.schemes) or "-",
            "runs here": t.runs_here,
            "description": t.description,
        }
        for name, t in TARGETS.items()
    ]
