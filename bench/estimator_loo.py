"""The latency estimator's error against every published figure it models, each predicted leave-one-out.

For each figure of vjepa_edge/profile/published.toml (reference/edge.md 5.1 Qualcomm AI Hub, 5.2 Apple), the
calibration (`vjepa_edge.profile.calibrate`) is refitted without that figure and predicts it. Prints the table, the
median absolute error overall and per class (unit/precision/runtime), the factors fitted on all figures, and what
is not modelled and why. No device needed: the figures and the models' costs are data.

Usage: uv run python bench/estimator_loo.py [--json] [--markdown]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vjepa_edge.profile.calibrate import class_errors, leave_one_out, published_calibration  # noqa: E402
from vjepa_edge.profile.published import load_published  # noqa: E402


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:+.0f} %"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the tables")
    ap.add_argument("--markdown", action="store_true", help="Markdown tables (for a README or an issue)")
    args = ap.parse_args()
    rows, errors, cal, published = leave_one_out(), class_errors(), published_calibration(), load_published()
    if args.json:
        print(
            json.dumps(
                {
                    "rows": [
                        {
                            "model": r.model,
                            "device": r.device,
                            "class": r.klass,
                            "published_ms": r.published_ms,
                            "predicted_ms": r.predicted_ms,
                            "error": r.error,
                            "reason": r.reason,
                        }
                        for r in rows
                    ],
                    "median_abs_error": errors,
                    "factors": {
                        "efficiency": cal.efficiency,
                        "correction": cal.correction,
                        "attention": cal.attention,
                        "memory_efficiency": cal.memory_efficiency,
                        "overhead_ms": cal.overhead_ms,
                        "op_ms": cal.op_ms,
                    },
                    "skipped": [{"what": s.what, "reason": s.reason} for s in published.skipped],
                }
            )
        )
        return 0
    md = args.markdown
    sep = " | " if md else "  "

    def line(*cells: str) -> str:
        return ("| " + sep.join(cells) + " |") if md else sep.join(cells)

    widths = (20, 16, 16, 10, 10, 7)
    head = ("model", "device", "class", "published", "predicted", "error")
    print(line(*(h.ljust(w) for h, w in zip(head, widths, strict=True))))
    if md:
        print("|" + "|".join("---" for _ in head) + "|")
    for r in rows:
        pred = "n/a" if r.predicted_ms is None else f"{r.predicted_ms:.3g} ms"
        cells = (r.model, r.device, r.klass, f"{r.published_ms:g} ms", pred, _pct(r.error))
        print(line(*(c.ljust(w) for c, w in zip(cells, widths, strict=True))) + (f"  ({r.reason})" if r.reason else ""))
    print()
    n = sum(r.error is not None for r in rows)
    print(f"median absolute error, leave-one-out, {n} figures: {100 * errors['all']:.1f} %")
    print(line("class".ljust(16), "figures", "median |error|", "efficiency e_k"))
    if md:
        print("|---|---|---|---|")
    for k, e in errors.items():
        if k != "all":
            figures = sum(r.klass == k for r in rows)
            eff = f"{cal.efficiency[k]:.3f}"
            print(line(k.ljust(16), str(figures).ljust(7), f"{100 * e:.1f} %".ljust(14), eff))
    print()
    print("fitted on all figures:")
    print("  attention factor a_r (attention matmuls this many times slower than dense):")
    print("   " + ", ".join(f"{k} {v:.2f}" for k, v in cal.attention.items()))
    print(
        f"  memory efficiency e_m {cal.memory_efficiency:.2f}; overhead {cal.overhead_ms:.3f} ms per inference"
        f" + {1000 * cal.op_ms:.2f} us per operator (at correction 1)"
    )
    print("  SoC unit corrections d (x published peak; x nominal 10 TOPS where none is published):")
    for k, v in cal.correction.items():
        soc, unit = k.split("/")
        peaked = any(p.unit == unit for p in published.device(soc).peaks)
        print(f"   {k:14s} {v:6.3f}{'' if peaked else '  (no published peak: fitted speed)'}")
    print()
    print("not modelled:")
    for s in published.skipped:
        print(f"  {s.what}: {s.reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
