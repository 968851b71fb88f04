"""Render a report `Document` as one self-contained HTML page: CSS inline, every figure an inline <svg> or a
data: URI <img> (class "figure"), no network, no external script. A Content-Security-Policy allowing only inline
styles, inline script and data: images makes a browser refuse anything else, so a page that renders complete is
self-contained. One small inline script counts the figures on load and writes the count, and how many loaded,
into `<body data-figures=... data-figures-loaded=...>` (a headless browser test reads them back).
"""

from __future__ import annotations

import base64
import html
from typing import Any

from vjepa_edge.report.document import Block, Document, Figure, Missing, Section, Table, Text

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #212121;
       max-width: 1100px; margin: 0 auto; padding: 24px; background: #fafafa; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 0 0 12px; border-bottom: 1px solid #e0e0e0; padding-bottom: 4px; }
.sub { color: #757575; margin: 0 0 12px; font-family: ui-monospace, monospace; font-size: 12px; }
nav a { margin-right: 12px; color: #1565c0; text-decoration: none; font-size: 13px; }
section { background: #fff; border: 1px solid #e0e0e0; border-radius: 6px; padding: 16px 20px; margin: 18px 0; }
table { border-collapse: collapse; margin: 8px 0 12px; font-size: 13px; }
th, td { border-bottom: 1px solid #eeeeee; padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: #f5f5f5; }
tr.fits td:last-child { color: #2e7d32; font-weight: 600; }
tr.over td:last-child { color: #c62828; font-weight: 600; }
tr.missing td:nth-child(2) { color: #ef6c00; font-weight: 600; }
tr.done td:nth-child(2) { color: #2e7d32; }
code { font-family: ui-monospace, monospace; font-size: 12px; background: #f5f5f5; padding: 1px 4px;
       border-radius: 3px; }
.missing { border-left: 4px solid #ef6c00; background: #fff8e1; padding: 6px 10px; margin: 8px 0; }
figure { margin: 10px 0 16px; }
.figure { max-width: 100%; height: auto; display: block; }
figcaption { color: #616161; font-size: 12px; margin-top: 4px; }
"""

SCRIPT = """
window.addEventListener("load", function () {
  var figs = document.querySelectorAll(".figure"), loaded = 0;
  for (var i = 0; i < figs.length; i++) {
    var f = figs[i];
    if (f.tagName.toLowerCase() === "img") { if (f.complete && f.naturalWidth > 0) loaded++; }
    else if (f.getBoundingClientRect().width > 0) loaded++;
  }
  document.body.setAttribute("data-figures", String(figs.length));
  document.body.setAttribute("data-figures-loaded", String(loaded));
});
"""


def esc(s: Any) -> str:
    return html.escape(str(s), quote=True)


def render_html(doc: Document, figures: dict[str, tuple[str, bytes]]) -> str:
    """The page; `figures` maps each figure's name to (inline svg or "", png bytes)."""
    nav = " ".join(f'<a href="#{esc(s.key)}">{esc(s.title)}</a>' for s in doc.sections)
    body = "\n".join(_section(s, figures) for s in doc.sections)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(doc.title)}</title>\n<style>{CSS}</style>\n</head>\n"
        f'<body data-figures-expected="{len(doc.figures)}">\n'
        f'<header><h1>{esc(doc.title)}</h1><p class="sub">{esc(doc.subtitle)}</p><nav>{nav}</nav></header>\n'
        f"{body}\n<script>{SCRIPT}</script>\n</body>\n</html>\n"
    )


def _section(s: Section, figures: dict[str, tuple[str, bytes]]) -> str:
    inner = "\n".join(_block(b, figures) for b in s.blocks)
    return f'<section id="{esc(s.key)}">\n<h2>{esc(s.title)}</h2>\n{inner}\n</section>'


def _block(b: Block, figures: dict[str, tuple[str, bytes]]) -> str:
    if isinstance(b, Text):
        code = f" <code>{esc(b.code)}</code>" if b.code else ""
        return f"<p>{esc(b.text)}{code}</p>"
    if isinstance(b, Missing):
        return f'<p class="missing"><strong>not run yet:</strong> {esc(b.what)}. Run <code>{esc(b.command)}</code></p>'
    if isinstance(b, Table):
        return _table(b)
    if isinstance(b, Figure):
        svg, png = figures[b.name]
        if svg:
            el = svg.replace("<svg", f'<svg class="figure" role="img" aria-label="{esc(b.caption)}"', 1)
        else:
            uri = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
            el = f'<img class="figure" alt="{esc(b.caption)}" src="{uri}">'
        return f'<figure id="fig-{esc(b.name)}">{el}<figcaption>{esc(b.caption)}</figcaption></figure>'
    raise TypeError(f"unknown block {b!r}")


def _table(t: Table) -> str:
    head = "" if not any(t.header) else "<tr>" + "".join(f"<th>{esc(h)}</th>" for h in t.header) + "</tr>"
    rows = []
    for i, row in enumerate(t.rows):
        cls = t.classes[i] if i < len(t.classes) and t.classes[i] else ""
        attr = f' class="{esc(cls)}"' if cls else ""
        cells = (f"<code>{esc(c)}</code>" if j in t.code else esc(c) for j, c in enumerate(row))
        rows.append(f"<tr{attr}>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return "<table>" + head + "".join(rows) + "</table>"
