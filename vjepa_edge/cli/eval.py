"""`vjepa-edge eval`: probe accuracy and intuitive-physics surprise of every stage of a run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from vjepa_edge.cli._common import JsonOpt, command, console


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.1%}"


def _ratio(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def _render(r: dict[str, Any]) -> None:
    proto = r["protocol"]
    title = f"eval of {r['run']}: {', '.join(proto['probes'])} probe on {', '.join(proto['labels'])}"
    t = Table(title=title, title_justify="left")
    for col in ("stage", "probe acc", "retention", "cosine to fp32", "VoE pairwise", "VoE retention", "seconds"):
        t.add_column(col, justify="left" if col == "stage" else "right")
    for row in r["stages"].values():
        cos = row["cosine_to_student"]
        t.add_row(
            row["label"],
            _pct(row["probe_acc"]),
            _ratio(row["retention"]),
            "-" if cos is None else f"{cos:.4f}",
            _pct(row["voe_pairwise_acc"]),
            _ratio(row["voe_retention"]),
            f"{row['seconds']:.0f}",
        )
    console.print(t)
    console.print(f"chance: probe {_pct(proto['chance'])}, VoE 50.0%")
    kinds = {n: row["voe"]["kinds"] for n, row in r["stages"].items() if row.get("voe")}
    if kinds:
        k = Table(title="VoE pairwise accuracy per violation kind (max surprise over the future)", title_justify="left")
        k.add_column("kind")
        for n in kinds:
            k.add_column(n, justify="right")
        for kind in next(iter(kinds.values())):
            k.add_row(kind, *(_pct(v[kind].get("accuracy_max")) for v in kinds.values()))
        console.print(k)
    console.print(f"results: {Path(r['folder']) / 'eval.json'}")


@command(_render)
def eval_command(
    model: Annotated[str, typer.Argument(help="RUN_OR_CKPT: a distill or teacher run folder, or a checkpoint.")],
    probe: Annotated[
        list[str] | None,
        typer.Option(
            help="Probe kind: grid, linear, attentive, attentive4 (V-JEPA 2's). Repeatable. Default: the recipe's."
        ),
    ] = None,
    train_clips: Annotated[
        int | None, typer.Option(help="Labelled clips the probes train on (default: the recipe's).")
    ] = None,
    test_clips: Annotated[
        int | None, typer.Option(help="Held-out clips they are tested on (default: the recipe's).")
    ] = None,
    voe_pairs: Annotated[int, typer.Option(help="Violation-of-expectation pairs for surprise.")] = 120,
    voe: Annotated[bool, typer.Option(help="Measure intuitive-physics surprise.")] = True,
    stage: Annotated[
        list[str] | None, typer.Option(help="Only these stages (teacher, student, int8, artifact:TARGET, ...).")
    ] = None,
    recompute: Annotated[
        bool, typer.Option(help="Probe again what the distillation's report.json already measured.")
    ] = False,
    out: Annotated[Path | None, typer.Option(help="Folder for eval.json (default RUN/eval/).")] = None,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
    json_out: JsonOpt = False,
) -> dict[str, Any]:
    """Probe accuracy, retention and intuitive-physics (VoE) pairwise accuracy of every stage: teacher, fp32
    student, int8 program, exported artifact, and random-init baselines, on the same clips."""
    from vjepa_edge.eval.run import EvalOptions, evaluate_run

    options = EvalOptions(
        probes=tuple(probe or ()),
        train_clips=train_clips,
        test_clips=test_clips,
        voe_pairs=voe_pairs,
        voe=voe,
        stages=tuple(stage or ()),
        recompute=recompute,
    )
    result = evaluate_run(model, options, out=out, progress=progress and not json_out)
    return {"folder": str(result.folder), **result.report}
