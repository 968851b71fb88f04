"""`vjepa-edge distill`, `vjepa-edge validate` and `vjepa-edge list`: recipes -> small ViT students."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from vjepa_edge.cli._common import JsonOpt, console, emit_json, fail, setup_logging
from vjepa_edge.errors import ConfigError, VjepaEdgeError

LISTABLE = ("recipes", "students")


def _overrides(teacher: Path | None, data: str | None) -> dict[str, dict[str, Any]]:
    over: dict[str, dict[str, Any]] = {}
    if teacher is not None:
        over["teacher"] = {"path": str(teacher)}
    if data is not None:
        over["data"] = {"source": data}
    return over


def distill(
    recipe: Annotated[str, typer.Option(help="Recipe name (recipes/NAME.toml, e.g. vit_s) or a TOML path.")],
    teacher: Annotated[Path | None, typer.Option(help="Teacher checkpoint (anything load_vjepa reads).")] = None,
    data: Annotated[str | None, typer.Option(help="Data source: physics, a directory, a CSV or a video.")] = None,
    out: Annotated[Path | None, typer.Option(help="Run folder to write (default runs/distill/RECIPE).")] = None,
    resume: Annotated[bool, typer.Option(help="Continue the run in --out from its last checkpoint.")] = False,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
    json_out: JsonOpt = False,
) -> None:
    """Distill a V-JEPA teacher into a small ViT student; writes the student and report.json to the run folder."""
    setup_logging()
    try:
        from vjepa_edge.distill.recipe import load_recipe
        from vjepa_edge.distill.train import distill as run_distill

        r = load_recipe(recipe, **_overrides(teacher, data))
        result = run_distill(r, out, resume=resume, progress=progress and not json_out)
    except VjepaEdgeError as e:
        fail(e, as_json=json_out)
    rep = result.report
    if json_out:
        emit_json({"run_dir": str(result.run_dir), **rep})
        return
    t = Table(title=f"distilled {r.name}: {result.run_dir}", title_justify="left", show_header=False)
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
    console.print(f"student: {result.student}\nreport:  {result.run_dir / 'report.json'}")


def validate(
    recipe: Annotated[str, typer.Argument(help="Recipe name or TOML path.")],
    teacher: Annotated[Path | None, typer.Option(help="Teacher checkpoint to validate the recipe with.")] = None,
    data: Annotated[str | None, typer.Option(help="Data source to validate the recipe with.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Check a recipe: every problem (keys, types, values, teacher file, student, data source) at once."""
    try:
        from vjepa_edge.distill.recipe import load_recipe, resolve_recipe_path

        r = load_recipe(recipe, **_overrides(teacher, data))
        path = resolve_recipe_path(recipe)
    except VjepaEdgeError as e:
        fail(e, as_json=json_out)
    if json_out:
        emit_json({"recipe": r.name, "path": str(path), "valid": True, "resolved": r.to_dict()})
        return
    console.print(f"{path}: valid recipe {r.name!r} ({r.description})")


def list_things(
    what: Annotated[str, typer.Argument(help=f"What to list: {', '.join(LISTABLE)}.")],
    json_out: JsonOpt = False,
) -> None:
    """List the registered recipes or students."""
    try:
        if what not in LISTABLE:
            import difflib

            close = difflib.get_close_matches(what, LISTABLE, n=1)
            raise ConfigError(
                f"cannot list {what!r}" + (f" (did you mean {close[0]!r}?)" if close else ""),
                hint=f"choose one of: {', '.join(LISTABLE)}",
            )
        rows = _recipes() if what == "recipes" else _students()
    except VjepaEdgeError as e:
        fail(e, as_json=json_out)
    if json_out:
        emit_json({what: rows})
        return
    t = Table(title=what, title_justify="left")
    for key in rows[0] if rows else []:
        t.add_column(key)
    for row in rows:
        t.add_row(*(str(v) for v in row.values()))
    console.print(t)


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
