"""Render a report `Document` as Markdown: the same sections, tables and figures as the HTML page, with each
figure a PNG under report_files/ (or an existing PNG of the run) linked by a path relative to the run folder."""

from __future__ import annotations

from vjepa_edge.report.document import Block, Document, Figure, Missing, Section, Table, Text


def cell(s: str) -> str:
    return str(s).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def render_markdown(doc: Document, links: dict[str, str]) -> str:
    """The Markdown text; `links` maps each figure's name to its image path relative to the run folder."""
    toc = " · ".join(f"[{s.title}](#{s.key})" for s in doc.sections)
    parts = [f"# {doc.title}", "", f"`{doc.subtitle}`", "", toc, ""]
    for s in doc.sections:
        parts.append(_section(s, links))
    return "\n".join(parts).rstrip() + "\n"


def _section(s: Section, links: dict[str, str]) -> str:
    out = [f'<a id="{s.key}"></a>', "", f"## {s.title}", ""]
    for b in s.blocks:
        out.extend([_block(b, links), ""])
    return "\n".join(out)


def _block(b: Block, links: dict[str, str]) -> str:
    if isinstance(b, Text):
        return b.text + (f" `{b.code}`" if b.code else "")
    if isinstance(b, Missing):
        return f"> **not run yet:** {b.what}. Run `{b.command}`"
    if isinstance(b, Table):
        header = b.header if any(b.header) else tuple(" " for _ in b.header)
        lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "---|" * len(header)]
        lines += [
            "| " + " | ".join(f"`{cell(c)}`" if j in b.code else cell(c) for j, c in enumerate(row)) + " |"
            for row in b.rows
        ]
        return "\n".join(lines)
    if isinstance(b, Figure):
        alt = b.caption.replace("[", "(").replace("]", ")")
        return f"![{alt}]({links[b.name]})\n\n*{b.caption}*"
    raise TypeError(f"unknown block {b!r}")
