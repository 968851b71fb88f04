"""The report's figures, each a function from plain numbers to a matplotlib Figure, and the two ways to embed one:
an SVG string (HTML) or PNG bytes (Markdown's report_files/).

matplotlib is imported inside the functions (`import vjepa_edge` stays free of it), and figures are built with
`matplotlib.figure.Figure` rather than pyplot: no global state, no GUI backend, nothing to close.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

from vjepa_edge.profile.plot import FITS, OVER

PALETTE = ("#1565c0", "#ef6c00", "#2e7d32", "#6a1b9a", "#c62828", "#00838f", "#8d6e63", "#546e7a", "#ad1457")
MUTED = "#9e9e9e"


def _figure(width: float, height: float, ncols: int = 1) -> tuple[Any, list[Any]]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    for ax in axes:
        ax.spines[["top", "right"]].set_visible(False)
        ax.tick_params(labelsize=8)
    return fig, list(axes)


def to_svg(fig: Any) -> str:
    """The figure as an inline <svg> element (no XML prolog), text kept as text."""
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none"}):
        fig.savefig(buf, format="svg", metadata={"Date": None})  # the same run gives the same page
    svg = buf.getvalue()
    return svg[svg.index("<svg") :]


def to_png(fig: Any, dpi: int = 100) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def grouped_bars(
    groups: Sequence[str],
    series: dict[str, Sequence[float | None]],
    *,
    ylabel: str,
    chance: float | None = None,
    chance_label: str = "chance",
    percent: bool = True,
    notes: Sequence[str] | None = None,
    colours: Sequence[str] | None = None,
) -> Any:
    """Bars of several series side by side per group (accuracy per stage and label, VoE accuracy per kind and
    model), with a dashed chance line and an optional note above each group. `colours`: one per series (a model's
    colour across the report), else the palette in order."""
    fig, (ax,) = _figure(max(6.0, 0.9 * len(groups) * max(len(series), 1) ** 0.5 + 2), 3.4)
    n = max(len(series), 1)
    width = 0.8 / n
    for i, (name, values) in enumerate(series.items()):
        xs = [g + (i - (n - 1) / 2) * width for g in range(len(groups))]
        ys = [v if v is not None else 0.0 for v in values]
        colour = colours[i] if colours and i < len(colours) else PALETTE[i % len(PALETTE)]
        bars = ax.bar(xs, ys, width, label=name, color=colour)
        for bar, v in zip(bars, values, strict=True):
            if v is not None and n * len(groups) <= 24:
                label = f"{v:.0%}" if percent else f"{v:.2f}"
                ax.annotate(label, (bar.get_x() + bar.get_width() / 2, v), ha="center", va="bottom", fontsize=6)
    if chance is not None:
        ax.axhline(chance, color="black", linestyle="--", linewidth=1, label=chance_label)
    if notes:
        for g, note in enumerate(notes):
            if note:
                ax.annotate(note, (g, 1.0), ha="center", va="bottom", fontsize=7, color="#424242")
    ax.set_xticks(range(len(groups)), groups, fontsize=8)
    ax.set_ylabel(ylabel, fontsize=9)
    if percent:
        ax.set_ylim(0, 1.1)
        ax.yaxis.set_major_formatter(lambda v, _: f"{v:.0%}")
    ax.legend(fontsize=7, ncols=min(n + 1, 5), loc="upper center", bbox_to_anchor=(0.5, -0.12), frameon=False)
    return fig


def hbars(
    labels: Sequence[str],
    values: Sequence[float],
    *,
    xlabel: str,
    fmt: str = "{:.2f}",
    colours: Sequence[str] | None = None,
    zoom_to_one: bool = False,
) -> Any:
    """One horizontal bar per row with its value written beside it. `zoom_to_one`: cosines near 1 would all
    look full, so the axis starts just below the smallest one (and says so)."""
    fig, (ax,) = _figure(7.5, 0.42 * max(len(labels), 2) + 1.1)
    ys = list(range(len(labels)))
    ax.barh(ys, values, color=list(colours) if colours else PALETTE[0])
    for y, v in zip(ys, values, strict=True):
        ax.annotate(fmt.format(v), (v, y), xytext=(4, -3), textcoords="offset points", fontsize=7)
    ax.set_yticks(ys, labels, fontsize=8)
    ax.invert_yaxis()
    if zoom_to_one and values:
        lo = min(values)
        start = max(0.0, lo - max(1.0 - lo, 1e-4) * 1.5) if lo > 0.5 else 0.0
        ax.set_xlim(start, 1.0 + (1.0 - start) * 0.12)
        xlabel += f" (axis starts at {start:.4g})" if start > 0 else ""
    else:
        ax.set_xlim(0, max(values, default=1.0) * 1.18 or 1.0)
    ax.set_xlabel(xlabel, fontsize=9)
    return fig


def latency(rows: Sequence[dict[str, Any]]) -> Any:
    """Latency per device against its budget: measured p50 solid with p90 as whisker, estimates hatched with their
    calibration error as whisker, the budget as a black tick; green within budget, red over. Log axis."""
    fig, (ax,) = _figure(8.0, 0.5 * max(len(rows), 3) + 1.3)
    ys = list(range(len(rows)))
    for y, r in zip(ys, rows, strict=True):
        ms, colour = r["ms"], FITS if r["fits"] else OVER
        if r["measured"]:
            hi = max((r.get("p90_ms") or ms) - ms, 0.0)
            ax.barh(y, ms, color=colour, xerr=[[0], [hi]], capsize=3)
            end = ms + hi
        else:
            err = (r.get("error") or 0.0) * ms
            ax.barh(y, ms, color="white", edgecolor=colour, hatch="//", xerr=err, capsize=3)
            end = ms + err
        if r.get("budget_ms"):
            ax.plot([r["budget_ms"]] * 2, [y - 0.42, y + 0.42], color="black", linewidth=2)
        ax.annotate(f"{ms:.1f} ms", (end, y), xytext=(5, -3), textcoords="offset points", fontsize=7)
    ax.set_yticks(ys, [f"{r['device']}\n{r['target']} ({'measured' if r['measured'] else 'estimate'})" for r in rows])
    ax.tick_params(axis="y", labelsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    _plain_log_ticks(ax, [r["ms"] for r in rows] + [r["budget_ms"] for r in rows if r.get("budget_ms")])
    ax.set_xlabel("ms per clip (log); black tick: the device's budget; green fits, red over", fontsize=9)
    return fig


def _plain_log_ticks(ax: Any, values: Sequence[float]) -> None:
    """Ticks of a log axis at 1-2-5 steps written as plain numbers (matplotlib's 10^x minor labels overlap)."""
    from matplotlib.ticker import FixedLocator, NullFormatter

    lo, hi = min(values, default=1.0), max(values, default=1.0)
    ticks = [m * 10.0**e for e in range(-3, 7) for m in (1, 2, 5) if lo / 2.5 <= m * 10.0**e <= hi * 2.5]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(lambda v, _: f"{v:g}")
    ax.xaxis.set_minor_formatter(NullFormatter())


def curves(panels: Sequence[tuple[str, Sequence[float], Sequence[float]]], *, title: str = "") -> Any:
    """Training curves: one panel per (name, steps, values)."""
    fig, axes = _figure(3.3 * len(panels), 2.8, ncols=len(panels))
    for i, (ax, (name, xs, ys)) in enumerate(zip(axes, panels, strict=True)):
        ax.plot(xs, ys, color=PALETTE[i % len(PALETTE)], linewidth=1.5, marker="." if len(xs) < 40 else None)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        if name == "lr":
            ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


SURPRISE_DIFF = "surprise(impossible) − surprise(possible)"


def _difference_axis(ax: Any, lines: Sequence[tuple[str, str, Sequence[float]]], differ_from: int | None) -> None:
    """Per model (label, colour, values per future step) the impossible-minus-possible surprise, a zero line, and
    the future steps where the two clips differ shaded from `differ_from` (1-based) on."""
    from matplotlib.ticker import MaxNLocator

    steps = max((len(ys) for _, _, ys in lines), default=0)
    if differ_from is not None and steps and differ_from <= steps:
        ax.axvspan(max(differ_from, 1) - 0.5, steps + 0.5, color=OVER, alpha=0.08, linewidth=0, label="clips differ")
    ax.axhline(0.0, color="black", linewidth=0.8)
    for label, colour, ys in lines:
        if ys:
            ax.plot(range(1, len(ys) + 1), ys, color=colour, label=label, linewidth=1.6, marker="o", markersize=3)
    if steps:
        ax.set_xlim(0.5, steps + 0.5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3), useOffset=False)
    ax.yaxis.get_offset_text().set_fontsize(7)
    ax.set_xlabel("future step (predicted from the context)", fontsize=8)
    ax.set_ylabel(SURPRISE_DIFF, fontsize=8)
    ax.tick_params(labelsize=7)
    if lines:  # the models first, the shading last
        handles, names = ax.get_legend_handles_labels()
        order = sorted(range(len(names)), key=lambda i: names[i] == "clips differ")
        ax.legend(
            [handles[i] for i in order],
            [names[i] for i in order],
            fontsize=7,
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
            frameon=False,
        )


def voe_difference(lines: Sequence[tuple[str, str, Sequence[float]]], *, differ_from: int | None = None) -> Any:
    """The VoE summary: per model (label, colour, values) the mean over pairs of impossible-minus-possible surprise
    per future step; above zero the model is surprised by the violation."""
    fig, (ax,) = _figure(9.0, 3.2)
    _difference_axis(ax, lines, differ_from)
    return fig


def voe_example(
    possible: Any,
    impossible: Any,
    lines: Sequence[tuple[str, str, Sequence[float]]],
    *,
    title: str,
    diverge_frame: int | None,
    differ_from: int | None = None,
    max_frames: int = 8,
) -> Any:
    """One possible/impossible pair: two filmstrips (frames [T, H, W, 3] uint8, or None) and below them each
    model's surprise difference, impossible minus possible, per future step (`lines`: label, colour, values),
    with the future steps where the clips differ shaded from `differ_from` (1-based) on."""
    from matplotlib.figure import Figure

    strips = [(n, f) for n, f in (("possible", possible), ("impossible", impossible)) if f is not None]
    cols = max_frames if strips else 1
    fig = Figure(figsize=(9.0, 1.15 * len(strips) + 2.8), layout="constrained")
    grid = fig.add_gridspec(len(strips) + 1, cols, height_ratios=[1.0] * len(strips) + [2.2])
    for row, (name, frames) in enumerate(strips):
        t = len(frames)
        picks = sorted({round(i * (t - 1) / max(cols - 1, 1)) for i in range(cols)}) if t else []
        for col, idx in enumerate(picks):
            ax = fig.add_subplot(grid[row, col])
            ax.imshow(frames[idx], interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            late = diverge_frame is not None and idx >= diverge_frame
            for s in ax.spines.values():
                s.set_color(OVER if late and name == "impossible" else "#bdbdbd")
            ax.set_title(f"t={idx}", fontsize=6, pad=2)
            if col == 0:
                ax.set_ylabel(name, fontsize=8)
    ax = fig.add_subplot(grid[len(strips), :])
    ax.spines[["top", "right"]].set_visible(False)
    _difference_axis(ax, lines, differ_from)
    fig.suptitle(title, fontsize=9)
    return fig


def stage_times(labels: Sequence[str], seconds: Sequence[float], ok: Sequence[bool]) -> Any:
    """Seconds per pipeline stage; a failed deploy stage in red."""
    fig = hbars(
        labels,
        seconds,
        xlabel="seconds",
        fmt="{:.1f} s",
        colours=[PALETTE[0] if good else OVER for good in ok],
    )
    return fig
