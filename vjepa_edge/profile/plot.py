"""The profile plot: latency per device against its budget, and the per-operator time of measured runs.

One PNG (matplotlib's Agg backend, imported here only): the left panel has one bar per device (measured p50 solid
with its p90 as a whisker, estimates hatched with their calibration error as the whisker) and the device's budget
as a tick; bars within budget are green, over budget red. The right panel, when something was measured, has the
operators that took the most time in the first measured run, delegated ones and ones outside the delegate coloured
apart. Written atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vjepa_edge.runinfo import atomic_open

FITS, OVER = "#2e7d32", "#c62828"


def _breakdown_row(results: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The measured run whose operators are shown: the fastest measured ExecuTorch program (its delegate split is
    the interesting part), else the fastest measured run."""
    rows = [r for d in results for r in d.get("rows", [d]) if r.get("measured") and r.get("operators")]
    pte = [r for r in rows if str(r.get("artifact", "")).endswith(".pte")]
    return min(pte or rows, key=lambda r: r["p50_ms"], default=None)


def plot_profile(results: list[dict[str, Any]], path: str | Path, *, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    shown = [r for r in results if r.get("p50_ms") is not None]
    measured = _breakdown_row(results)
    cols = 2 if measured else 1
    fig, axes = plt.subplots(1, cols, figsize=(7 * cols, 0.55 * max(len(shown), 4) + 1.6), squeeze=False)
    ax = axes[0][0]
    labels, ys = [], list(range(len(shown)))
    for y, r in zip(ys, shown, strict=True):
        ms = r["p50_ms"]
        colour = FITS if r["fits"] else OVER
        if r["measured"]:
            hi = (r.get("p90_ms") or ms) - ms
            ax.barh(y, ms, color=colour, xerr=[[0], [hi]], capsize=3)
        else:
            err = (r.get("calibration_error") or 0.0) * ms
            ax.barh(y, ms, color="white", edgecolor=colour, hatch="//", xerr=err, capsize=3)
        ax.plot([r["budget_ms"]] * 2, [y - 0.42, y + 0.42], color="black", linewidth=2)
        end = (r.get("p90_ms") or ms) if r["measured"] else ms * (1 + (r.get("calibration_error") or 0.0))
        ax.annotate(f"{ms:.1f} ms", (max(ms, end), y), xytext=(6, -3), textcoords="offset points", fontsize=8)
        how = "measured" if r["measured"] else "estimated" + ("" if r.get("artifact") else ", not exported")
        labels.append(f"{r['device']}\n{r.get('target') or ''} ({how})")
    ax.set_yticks(ys, labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("latency per clip, ms (log; black tick: the device's budget)")
    ax.set_title("latency against budget: solid = measured p50 (whisker p90), hatched = estimate", fontsize=9)
    if measured:
        ax2 = axes[0][1]
        ops = measured["operators"][:12]
        names = [o["name"][:38] for o in ops]
        ax2.barh(
            range(len(ops)),
            [o["total_ms"] for o in ops],
            color=["#1565c0" if o["delegated"] else "#ef6c00" for o in ops],
        )
        ax2.set_yticks(range(len(ops)), names, fontsize=7)
        ax2.invert_yaxis()
        ax2.set_xlabel("ms per inference (blue: inside the delegate, orange: outside)")
        ax2.set_title(
            f"operators of {measured.get('target') or measured.get('artifact')} on {measured['device']}", fontsize=9
        )
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    out = Path(path)
    with atomic_open(out, "wb") as f:
        fig.savefig(f, format="png", dpi=110)
    plt.close(fig)
    return out
