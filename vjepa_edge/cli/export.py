"""`vjepa-edge export`: a student -> a verified artifact of a registered target, with its delegation report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from vjepa_edge.cli._common import JsonOpt, command, console


def _figures(v: dict[str, Any]) -> str:
    return f"max abs err {v['max_rel_error']:.2e} of scale {v['scale']:.3g}, cosine {v['cosine']:.6f}"


def _render(r: dict[str, Any]) -> None:
    part = r.get("part", "encoder")
    title = r["target"] if part == "encoder" else f"{part} {r['target']}"
    t = Table(title=f"{title}: {r['artifact']}", title_justify="left", show_header=False)
    t.add_column(style="bold")
    t.add_column()
    t.add_row(
        "backend / precision", f"{r['backend']} / {r['precision']}" + (f" (scheme {r['scheme']})" * bool(r["scheme"]))
    )
    t.add_row("inputs", ", ".join(f"{name} {'x'.join(map(str, shape))}" for name, shape in r["inputs"].items()))
    if "predictor" in r:
        p = r["predictor"]
        t.add_row("context", f"{p['context']}: {p['context_tokens']} context tokens -> {p['target_tokens']} targets")
        t.add_row("output", "x".join(map(str, p["output_shape"])) + " (teacher-space features)")
    t.add_row("size", f"{r['size_bytes'] / 1e6:.2f} MB")
    v = r["verification"]
    if v["verified"]:
        t.add_row(f"vs {v['reference']}", _figures(v["vs_same_precision"]))
        if r["precision"] != "fp32":
            t.add_row("vs fp32 student", _figures(v["vs_fp32"]))
        t.add_row("verified on", f"{v['clips']} held-out clips")
    else:
        t.add_row("verification", f"skipped: {v['skipped']}")
        t.add_row("structural check", ", ".join(f"{k} {val}" for k, val in v["structure"].items()))
    d = r["delegation"]
    if "partitions" in d:
        share = d["flops_share_inside"]
        t.add_row("delegate partitions", str(d["partitions"]))
        t.add_row("ops inside / outside", f"{d['ops_inside']} / {d['ops_outside']}")
        t.add_row(
            "FLOPs inside",
            "n/a" if share is None else f"{share:.1%} of {(d['flops_inside'] + d['flops_outside']) / 1e6:.1f} MFLOP",
        )
        outside = ", ".join(f"{op} x{n}" for op, n in d["outside"].items())
        t.add_row("outside the delegate", outside or "nothing")
    else:
        t.add_row("operators", ", ".join(f"{op} x{n}" for op, n in d["by_type"].items()))
    console.print(t)
    console.print(f"artifact: {r['artifact']}\nreport:   {Path(r['artifact']).parent / 'export_report.json'}")


@command(_render)
def export(
    student: Annotated[str, typer.Argument(help="RUN_OR_CKPT: a distill run folder, a student .safetensors, ...")],
    target: Annotated[str, typer.Option(help="Export target (`vjepa-edge list targets`).")],
    scheme: Annotated[
        str | None, typer.Option(help="Quantization scheme of an int8 target (default: the target's first).")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Artifact to write (default RUN/export/TARGET.SUFFIX).")] = None,
    verify_clips: Annotated[int, typer.Option(help="Held-out clips the artifact is verified on.")] = 8,
    part: Annotated[
        str,
        typer.Option(
            help="What to export: encoder (clip -> tokens) or predictor (a masked distill run's predictor + "
            "projector: context tokens and indices -> predicted teacher features)."
        ),
    ] = "encoder",
    context: Annotated[
        str,
        typer.Option(
            help="Predictor context choice, fixing its token counts: first-half (the first half of the time steps "
            "predicts the rest) or all-but-last."
        ),
    ] = "first-half",
    json_out: JsonOpt = False,
) -> dict[str, Any]:
    """Export a student (or its predictor) to a target's artifact, verified against eager before it is written."""
    from vjepa_edge.export.run import ExportOptions
    from vjepa_edge.export.run import export as run_export

    options = ExportOptions(target=target, scheme=scheme, verify_clips=verify_clips, part=part, context=context)
    return run_export(student, options, out=out, progress=not json_out).report
