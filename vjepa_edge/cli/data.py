"""`vjepa-edge data ...`: look at a data source before training on it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from vjepa_edge.cli._common import JsonOpt, check_counts, command, console, err_console
from vjepa_edge.errors import DataError

app = typer.Typer(no_args_is_help=True, help="Inspect and preview clip sources: physics, a folder, a CSV or a video.")

SourceArg = Annotated[
    str, typer.Argument(help="`physics`, a directory of videos, a CSV (`path label` per line) or a video file.")
]
FramesOpt = Annotated[int, typer.Option(help="Frames per clip.")]
SizeOpt = Annotated[int, typer.Option(help="Clip size in pixels (square).")]
FpsOpt = Annotated[float | None, typer.Option(help="Sample at this frame rate (V-JEPA 2) instead of --frame-step.")]
StepOpt = Annotated[int, typer.Option("--frame-step", help="Source frames between sampled frames (V-JEPA 1).")]


def _spec(frames: int, size: int, fps: float | None, frame_step: int):
    from vjepa_edge.data.config import ClipSpec

    return ClipSpec(frames=frames, size=size, fps=fps, frame_step=None if fps else frame_step)


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
    )


def _hist(counts: dict[str, int], width: int = 30) -> str:
    top = max(counts.values(), default=1)
    return "\n".join(f"{k:>12} {'#' * max(1, round(width * v / top))} {v}" for k, v in counts.items())


def _fmt(d: dict[str, int], limit: int = 6) -> str:
    items = list(d.items())
    more = f", ... ({len(items) - limit} more)" if len(items) > limit else ""
    return ", ".join(f"{k} ({v})" for k, v in items[:limit]) + more


def _render_info(info: dict[str, Any]) -> None:
    t = Table(title=info["source"], show_header=False, title_justify="left")
    t.add_column(style="bold")
    t.add_column()
    t.add_row("clips", f"{info['clips']} ({info['readable']} readable, {len(info['unreadable'])} unreadable)")
    d = info["duration_s"]
    if d["min"] is not None:
        t.add_row(
            "duration",
            f"{d['min']:.2f} / {d['mean']:.2f} / {d['max']:.2f} s (min / mean / max), {d['total'] / 3600:.2f} h in all",
        )
    if info["frames"]["min"] is not None:
        t.add_row("frames", f"{info['frames']['min']} to {info['frames']['max']}")
    t.add_row("resolutions", _fmt(info["resolutions"]))
    t.add_row("fps", _fmt(info["fps"]))
    t.add_row("codecs", _fmt(info["codecs"]))
    for name, counts in info.get("label_sets", {"labels": info["labels"]}).items():
        t.add_row(name, _hist(counts) if counts else "(unlabelled)")
    if info.get("note"):
        t.add_row("note", info["note"])
    console.print(t)
    if info["unreadable"]:
        u = Table(title=f"unreadable ({len(info['unreadable'])})", title_justify="left")
        u.add_column("file", overflow="fold")
        u.add_column("reason")
        root = Path(info["source"]).expanduser()
        root = root if root.is_dir() else root.parent
        for item in info["unreadable"]:
            path = os.path.relpath(item["path"], root) if Path(item["path"]).is_relative_to(root) else item["path"]
            where = f"{path} (line {item['line']})" if item.get("line") else path
            u.add_row(where, item["reason"])
        console.print(u)


@app.command()
@command(_render_info)
def info(
    source: SourceArg,
    deep: Annotated[
        bool, typer.Option(help="Decode every frame of every video (slow; finds damage past the header).")
    ] = False,
    clips: Annotated[int, typer.Option(help="Physics only: how many generated clips to count labels over.")] = 512,
    frames: FramesOpt = 16,
    size: SizeOpt = 64,
    fps: FpsOpt = None,
    frame_step: StepOpt = 4,
    json_out: JsonOpt = False,
) -> dict[str, Any]:
    """Count clips, durations, resolutions, fps, codecs and labels, and list every unreadable file."""
    from vjepa_edge.data.sources import PHYSICS, check_source, describe_source

    spec = _spec(frames, size, fps, frame_step)
    check_counts(("--clips", clips, 1_000_000))
    check_source(source)
    with _progress() as bar:
        task = bar.add_task("reading" if source != PHYSICS else "simulating", total=None)

        def advance(advance: int = 1) -> None:
            bar.advance(task, advance)

        summary = describe_source(source, spec=spec, deep=deep, length=clips, progress=advance)
    if summary["clips"] and not summary["readable"]:
        raise DataError(
            f"none of the {summary['clips']} videos in {source!r} could be read "
            f"(first: {summary['unreadable'][0]['path']}: {summary['unreadable'][0]['reason']})",
            hint="check the files with `ffprobe`, or point SOURCE at another folder or CSV",
        )
    return summary


def _physics_rows(count: int, spec, seed: int, voe: bool) -> list[tuple[Any, str]]:
    from vjepa_edge.data.physics import generate_clip, generate_voe_pair

    rows = []
    for i in range(count):
        if voe:
            p = generate_voe_pair(i, seed=seed, frames=spec.frames, size=spec.size, fps=spec.fps)
            rows.append((p.possible, f"#{i} {p.kind}: possible (diverges at frame {p.diverge_frame})"))
            rows.append((p.impossible, f"#{i} {p.kind}: impossible"))
        else:
            c = generate_clip(i, seed=seed, frames=spec.frames, size=spec.size, fps=spec.fps)
            rows.append((c.frames, f"#{i} {c.event}, {c.num_objects} objects, heads {c.direction}"))
    return rows


def _video_rows(source: str, count: int, spec) -> tuple[list[tuple[Any, str]], list[str]]:
    from vjepa_edge.data.sources import video_entries
    from vjepa_edge.data.video import probe, read_frames, sample_indices

    entries = video_entries(source)
    picks = sorted({round(i * (len(entries) - 1) / max(1, count - 1)) for i in range(min(count, len(entries)))})
    rows, failed = [], []
    for i in picks:
        e = entries[i]
        try:
            vi = probe(e.path)
            frames = read_frames(e.path, sample_indices(vi.frames, vi.fps, spec, random=False, generator=None), vi)
        except DataError as err:
            failed.append(f"{e.where}: {getattr(err, 'reason', err.message)}")
            continue
        label = f" [{e.label}]" if e.label else ""
        rows.append((frames, f"{e.path.name}{label} {vi.width}x{vi.height} {vi.fps:.3g} fps {vi.duration_s:.1f} s"))
    return rows, failed


def _render_preview(r: dict[str, Any]) -> None:
    for f in r["skipped"]:
        err_console.print(f"skipped {f}", highlight=False)
    console.print(f"wrote {r['out']} ({r['rows']} rows of {r['columns']} frames)")


@app.command()
@command(_render_preview)
def preview(
    source: SourceArg,
    out: Annotated[Path, typer.Option(help="Image to write: .png, .jpg or .webp.")] = Path("preview.png"),
    clips: Annotated[int, typer.Option(help="Clips to show, one row each.")] = 6,
    columns: Annotated[int, typer.Option(help="Frames shown per clip.")] = 8,
    voe: Annotated[bool, typer.Option(help="Physics only: show violation-of-expectation pairs.")] = False,
    seed: Annotated[int, typer.Option(help="Physics only: generator seed.")] = 0,
    frames: FramesOpt = 16,
    size: SizeOpt = 128,
    fps: FpsOpt = None,
    frame_step: StepOpt = 4,
    json_out: JsonOpt = False,
) -> dict[str, Any]:
    """Write a contact sheet: a row of evenly spaced frames for each of a few clips, with captions."""
    from vjepa_edge.data.preview import IMAGE_FORMATS, save_contact_sheet
    from vjepa_edge.data.sources import PHYSICS, check_source
    from vjepa_edge.paths import ensure, out_file_problems

    spec = _spec(frames, size, fps, frame_step)
    check_counts(("--clips", clips, 256), ("--columns", columns, 64))
    ensure(out_file_problems(out, suffixes=tuple(IMAGE_FORMATS)), hint="pass --out NAME.png (or .jpg, .webp)")
    if voe and source != PHYSICS:
        raise DataError("--voe needs the physics source", hint="run `vjepa-edge data preview physics --voe`")
    check_source(source)
    failed: list[str] = []
    if source == PHYSICS:
        rows = _physics_rows(clips, spec, seed, voe)
    else:
        rows, failed = _video_rows(source, clips, spec)
    if not rows:
        raise DataError(
            f"no readable clip to preview in {source!r}: " + "; ".join(failed[:3]),
            hint="`vjepa-edge data info SOURCE` lists which videos can be read and why the others cannot",
        )
    path = save_contact_sheet(rows, out, columns=columns)
    return {"out": str(path), "rows": len(rows), "columns": columns, "skipped": failed}
