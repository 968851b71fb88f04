"""`write_report`: check a run folder, read it, draw every figure once and write report.html (self-contained) and
report.md (+ report_files/*.png) atomically."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from vjepa_edge.report.collect import check_run, collect
from vjepa_edge.report.document import Document
from vjepa_edge.runinfo import atomic_open
from vjepa_edge.runs import RunDir

log = logging.getLogger(__name__)

FILES = "report_files"


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportResult:
    html: Path
    md: Path
    figures: int
    sections: tuple[str, ...]

    def to_dict(self) -> dict[str, object]:
        return {"html": str(self.html), "md": str(self.md), "figures": self.figures, "sections": list(self.sections)}


def write_report(run_dir: str | os.PathLike[str]) -> ReportResult:
    """Write RUN/report.html and RUN/report.md. Raises CheckpointError (before any work) for a folder that is no
    finished distill run."""
    from vjepa_edge.report.sections import build_document

    run = check_run(run_dir)
    doc = build_document(collect(run))
    figures, links = _draw(doc, run)
    from vjepa_edge.report.html import render_html
    from vjepa_edge.report.markdown import render_markdown

    with atomic_open(run.report_html, "w") as f:
        f.write(render_html(doc, figures))
    with atomic_open(run.report_md, "w") as f:
        f.write(render_markdown(doc, links))
    log.info("wrote %s and %s (%d figures)", run.report_html, run.report_md, len(figures))
    return ReportResult(
        html=run.report_html, md=run.report_md, figures=len(figures), sections=tuple(s.key for s in doc.sections)
    )


def _draw(doc: Document, run: RunDir) -> tuple[dict[str, tuple[str, bytes]], dict[str, str]]:
    """Every figure as (inline svg, png bytes) for the page, and its relative path for the Markdown; drawn PNGs go
    to report_files/ (stale ones from an earlier report removed), existing PNGs are linked where they are."""
    from vjepa_edge.report.plots import to_png, to_svg

    files = run.root / FILES
    figures: dict[str, tuple[str, bytes]] = {}
    links: dict[str, str] = {}
    for fig in doc.figures:
        if fig.name in figures:
            raise ValueError(f"two figures named {fig.name}")
        if fig.png is not None:
            figures[fig.name] = ("", fig.png.read_bytes())
            links[fig.name] = Path(os.path.relpath(fig.png, run.root)).as_posix()
            continue
        assert fig.draw is not None
        drawn = fig.draw()
        png = to_png(drawn)
        figures[fig.name] = (to_svg(drawn), png)
        with atomic_open(files / f"{fig.name}.png", "wb") as f:
            f.write(png)
        links[fig.name] = f"{FILES}/{fig.name}.png"
    if files.is_dir():
        for old in files.glob("*.png"):
            if f"{FILES}/{old.name}" not in links.values():
                old.unlink()
    return figures, links
