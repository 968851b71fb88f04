"""The report as plain data: sections of blocks (text, tables, figures, "not run yet"), rendered alike to HTML and
Markdown, so both files say the same things."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True, kw_only=True)
class Text:
    """A paragraph of plain text (escaped by the renderers); `code` parts are shown as code."""

    text: str
    code: str | None = None  # a command or path shown after the text


@dataclass(frozen=True, slots=True, kw_only=True)
class Missing:
    """A part of the run that is not there yet, and the command that produces it."""

    what: str
    command: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    classes: tuple[str, ...] = ()  # per row: "" or a CSS class ("fits", "over") the HTML renderer applies
    code: tuple[int, ...] = ()  # columns shown as code (commands, paths)


@dataclass(frozen=True, slots=True, kw_only=True)
class Figure:
    """A figure: drawn by `draw` (returns a matplotlib Figure), or an existing PNG file (`png`)."""

    name: str  # a file stem, unique in the report: report_files/NAME.png
    caption: str
    draw: Callable[[], Any] | None = None
    png: Path | None = None

    def __post_init__(self) -> None:
        if (self.draw is None) == (self.png is None):
            raise ValueError(f"figure {self.name}: give exactly one of draw and png")


Block = Text | Missing | Table | Figure


@dataclass(frozen=True, slots=True, kw_only=True)
class Section:
    key: str  # an HTML id and the name in the --json list
    title: str
    blocks: tuple[Block, ...] = field(default_factory=tuple)

    @property
    def figures(self) -> list[Figure]:
        return [b for b in self.blocks if isinstance(b, Figure)]


@dataclass(frozen=True, slots=True, kw_only=True)
class Document:
    title: str
    subtitle: str
    sections: tuple[Section, ...]

    @property
    def figures(self) -> list[Figure]:
        return [f for s in self.sections for f in s.figures]
