"""`vjepa-edge quantize`: an fp32 student -> an int8 program of a registered scheme, with its report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from vjepa_edge.cli._common import JsonOpt, command, console


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.1%}"


def _render(r: dict[str, Any]) -> None:
    t = Table(title=f"{r['scheme']}: {r['folder']}", title_justify="left", show_header=False)
    t.add_column(style="bold")
    t.add_column(justify="right")
    t.add_row("method", r["method"])
    cos = r["feature_cosine"]
    t.add_row("feature cosine int8 vs fp32", "n/a" if cos is None else f"{cos:.4f}")
    t.add_row("probe acc fp32 / int8", f"{_pct(r['probe_acc_fp32'])} / {_pct(r['probe_acc_int8'])}")
    size = f"{r['size_fp32_bytes'] / 1e6:.1f} MB -> {r['size_int8_bytes'] / 1e6:.1f} MB ({r['size_ratio']:.0%})"
    t.add_row("size fp32 -> int8", size)
    t.add_row("kept in float", ", ".join(r["kept_float"]) or "none")
    t.add_row("time to quantize", f"{r['quantize_seconds']:.1f} s")
    if r.get("qat_finetune"):
        q = r["qat_finetune"]
        t.add_row("QAT fine-tune", f"{q['steps']} steps, loss {q['first_loss']:.4f} -> {q['final_loss']:.4f}")
    if r.get("note"):
        t.add_row("note", r["note"])
    console.print(t)
    s = Table(title="most sensitive layers (SQNR when quantized alone)", title_justify="left")
    for col in ("layer", "kind", "params", "SQNR dB"):
        s.add_column(col, justify="left" if col in ("layer", "kind") else "right")
    for row in r["sensitivity"][:8]:
        s.add_row(row["name"], row["kind"], f"{row['params']:,}", f"{row['sqnr_db']:.1f}")
    console.print(s)
    console.print(f"program: {', '.join(r['files'])}\nreport:  {Path(r['folder']) / 'quant_report.json'}")


@command(_render)
def quantize(
    student: Annotated[str, typer.Argument(help="RUN_OR_CKPT: a distill run folder, a student .safetensors, ...")],
    scheme: Annotated[str, typer.Option(help="Quantization scheme (`vjepa-edge list schemes`).")] = "xnnpack-int8",
    qat: Annotated[
        bool,
        typer.Option(
            "--qat", help="Fine-tune with fake quantization (the run's distillation loss on its teacher-feature cache)."
        ),
    ] = False,
    qat_steps: Annotated[int, typer.Option(help="QAT fine-tune steps.")] = 60,
    qat_lr: Annotated[float, typer.Option(help="QAT peak learning rate.")] = 2e-5,
    calib_clips: Annotated[int, typer.Option(help="Training clips that calibrate the activations.")] = 64,
    keep_float: Annotated[
        str | None, typer.Option(help="Keep layers in float: N (the N most sensitive) or names, comma-separated.")
    ] = None,
    eval_train_clips: Annotated[int, typer.Option(help="Held-out clips the probe head trains on.")] = 1024,
    eval_test_clips: Annotated[int, typer.Option(help="Held-out clips fp32 and int8 are compared on.")] = 512,
    out: Annotated[Path | None, typer.Option(help="Folder to write (default RUN/quant/SCHEME).")] = None,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
    json_out: JsonOpt = False,
) -> dict[str, Any]:
    """Quantize a student to int8 with a scheme's own quantizer; report cosine, probe accuracy, size, sensitivity."""
    from vjepa_edge.quant.run import QuantizeOptions, keep_float_option
    from vjepa_edge.quant.run import quantize as run_quantize

    options = QuantizeOptions(
        scheme=scheme,
        qat=qat,
        qat_steps=qat_steps,
        qat_lr=qat_lr,
        calib_clips=calib_clips,
        keep_float=keep_float_option(keep_float),
        eval_train_clips=eval_train_clips,
        eval_test_clips=eval_test_clips,
    )
    result = run_quantize(student, options, out=out, progress=progress and not json_out)
    return {"folder": str(result.folder), **result.report}
