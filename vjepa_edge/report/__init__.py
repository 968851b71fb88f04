"""Run reports: `write_report(RUN_DIR)` reads a run folder (report.json, metrics, env, quant/, export/, profile/,
eval/) and writes a self-contained report.html and a report.md with the same content.

Lean on import: matplotlib and numpy are imported only when a report is drawn.
"""

from vjepa_edge.report.write import ReportResult, write_report

__all__ = ["ReportResult", "write_report"]
