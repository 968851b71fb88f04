"""`vjepa-edge profile`: an artifact or a run's artifacts on device profiles, measured or estimated, with a verdict."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from vjepa_edge.cli._common import JsonOpt, command, console


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def _render(r: dict[str, Any]) -> None:
    t = Table(title=f"profile of {r['source']}", title_justify="left")
    for col in ("device", "target", "how", "p50 ms", "p90 ms", "budget ms", "verdict"):
        t.add_column(col, justify="right" if "ms" in col else "left")
    for d in r["devices"]:
        for row in d["rows"]:
            best = row["target"] == d["target"] and row["measured"] == d["measured"]
            if row.get("error"):
                how = f"[yellow]{row['error']}"
            elif row["measured"]:
                how = f"measured, {row['threads']} thr"
            else:
                err = row.get("calibration_error")
                how = "estimated" + (f" ±{err:.0%}" if err is not None else " (uncalibrated)")
                how += "" if row.get("artifact") else ", not exported"
            verdict = ("[green]fits" if d["fits"] else "[red]over budget") if best else ""
            t.add_row(
                d["device"], row["target"], how, _ms(row["p50_ms"]), _ms(row["p90_ms"]), _ms(d["budget_ms"]), verdict
            )
    console.print(t)
    for d in r["devices"]:
        if d["measured"] and d.get("operators"):
            ops = Table(title=f"{d['target']} on {d['device']}: operators by time", title_justify="left")
            for col in ("operator", "where", "calls", "ms", "share"):
                ops.add_column(col, justify="right" if col in ("calls", "ms", "share") else "left")
            for o in d["operators"][:10]:
                where = o.get("backend") or "delegate" if o["delegated"] else "outside the delegate"
                ops.add_row(o["name"], where, str(o["calls"]), f"{o['total_ms']:.3f}", f"{o['share']:.1%}")
            console.print(ops)
        if d["alternatives"]:
            alt = Table(title=f"{d['device']}: over its {d['budget_ms']:.1f} ms budget; estimated alternatives")
            for col in ("change", "target", "estimate ms", "fits"):
                alt.add_column(col)
            for a in d["alternatives"]:
                alt.add_row(a["change"], a["target"], _ms(a["estimate_ms"]), "yes" if a["fits"] else "no")
            console.print(alt)
    console.print(f"plot:   {r['plot']}\nreport: {Path(r['plot']).parent / 'profile.json'}")


@command(_render)
def profile(
    source: Annotated[str, typer.Argument(help="ARTIFACT_OR_RUN: an exported artifact or a distill run folder.")],
    device: Annotated[
        list[str],
        typer.Option(help="Device profile (`vjepa-edge list devices`), a device TOML path, or all. Repeatable."),
    ] = ["host"],  # noqa: B006 - typer reads the default list, nothing mutates it
    iterations: Annotated[int, typer.Option(help="Timed iterations of a measured run (every sample is kept).")] = 50,
    warmup: Annotated[int, typer.Option(help="Untimed iterations before them.")] = 10,
    threads: Annotated[int | None, typer.Option(help="Threads of a host measurement (default: every core).")] = None,
    out: Annotated[
        Path | None, typer.Option(help="Folder for profile.json and profile.png (default RUN/profile/).")
    ] = None,
    json_out: JsonOpt = False,
) -> dict[str, Any]:
    """Measure the artifacts where they run (host, or an attached device), estimate them elsewhere, and give each
    device's verdict against its latency budget, with configurations that would fit when over."""
    from vjepa_edge.profile.run import ProfileOptions
    from vjepa_edge.profile.run import profile as run_profile

    options = ProfileOptions(devices=tuple(device), iterations=iterations, warmup=warmup, threads=threads)
    result = run_profile(source, options, out=out, progress=not json_out)
    report = dict(result.report)
    if len(result.results) == 1:  # one device: its summary at the top level of the JSON object
        report = {**{k: v for k, v in result.results[0].items() if k != "rows"}, **report}
    else:  # several: each entry of `devices` has device, measured, p50_ms, p90_ms, budget_ms, fits, flops, bytes
        report = {"device": ",".join(d["device"] for d in result.results), **report}
    return report
