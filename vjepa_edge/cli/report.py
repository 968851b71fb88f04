"""`vjepa-edge report`: a run folder's report as one self-contained HTML page and a Markdown file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from vjepa_edge.cli._common import JsonOpt, command, console


def _render(r: dict[str, Any]) -> None:
    console.print(f"report: {r['html']}\n        {r['md']}\n{r['figures']} figures in {len(r['sections'])} sections")


@command(_render)
def report(
    run_dir: Annotated[Path, typer.Argument(help="RUN_DIR: a distill run folder (it holds report.json).")],
    json_out: JsonOpt = False,
) -> dict[str, Any]:
    """Write RUN_DIR/report.html (one self-contained page: summary, accuracy, cosine, size, latency, intuitive
    physics, training curves, stage times, environment) and RUN_DIR/report.md with the same content. Parts of the
    pipeline not run yet are shown with the command that runs them."""
    from vjepa_edge.report import write_report

    return write_report(run_dir).to_dict()
