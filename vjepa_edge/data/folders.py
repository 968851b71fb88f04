"""Sources of real videos: a folder tree or a V-JEPA CSV, the dataset over them, and `data info`'s summary.

A folder follows torchvision's ImageFolder convention (the first-level subfolder is the label). A CSV follows
V-JEPA's: one `path label` per line, no header. Unreadable videos do not stop training: the dataset skips to
the next entry and reports what it skipped, so `health.BadDataTracker` can count them and stop the run when
too many are bad.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from vjepa_edge.data.config import ClipSpec
from vjepa_edge.data.transforms import ClipTransform, sample_generator
from vjepa_edge.data.video import VideoInfo, VideoReadError, probe, read_frames, sample_indices
from vjepa_edge.errors import DataError

VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".ts", ".gif")

# `path label`: the label is the last field, after a space, tab or comma; the path may contain spaces.
_CSV_LINE = re.compile(r"^(?P<path>.*?)[ \t]*[,\t ][ \t]*(?P<label>[^,\t ]+)$")


@dataclass(frozen=True, slots=True)
class VideoEntry:
    """One video of a source: its path, its label (None when unlabelled) and, for a CSV, where it is listed."""

    path: Path
    label: str | None = None
    line: int | None = None
    source: Path | None = None

    @property
    def where(self) -> str:
        """How messages name this entry: `videos.csv line 7: clips/a.mp4` for a CSV, else the path."""
        if self.line is None or self.source is None:
            return str(self.path)
        try:
            shown = self.path.relative_to(self.source.parent)
        except ValueError:
            shown = self.path
        return f"{self.source.name} line {self.line}: {shown}"


def scan_directory(root: str | os.PathLike) -> list[VideoEntry]:
    """Every video under `root`, sorted by path; the label is the first-level subfolder (ImageFolder).

    Videos directly in `root` get no label. Hidden files and folders (macOS `._x.mp4` and the like) are left out.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        what = "a file, not a folder" if root.exists() else "no such folder"
        raise DataError(
            f"video folder {root}: {what}", hint="pass a folder of videos, or a .csv file listing `path label`"
        )
    entries, seen = [], set()
    for folder, dirs, files in os.walk(root, followlinks=True):
        # Datasets are often folders of symlinks: follow them, but only once per real folder (no loops).
        real = os.path.realpath(folder)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if name.startswith(".") or not name.lower().endswith(VIDEO_EXTENSIONS):
                continue
            path = Path(folder) / name
            parts = path.relative_to(root).parts
            entries.append(VideoEntry(path, parts[0] if len(parts) > 1 else None))
    if not entries:
        raise DataError(
            f"video folder {root}: no videos found",
            hint=f"put videos (extensions {' '.join(VIDEO_EXTENSIONS)}) in it, one subfolder per label",
        )
    return sorted(entries, key=lambda e: e.path)


def read_csv(path: str | os.PathLike) -> list[VideoEntry]:
    """The videos a V-JEPA CSV lists: `path label` per line (space, tab or comma between), no header.

    Blank lines and `#` comments are skipped; relative paths resolve against the CSV's folder. Every
    malformed line is reported at once. A listed file that does not exist is kept (the dataset skips and
    counts it, naming its line) so one missing file does not stop a run.
    """
    path = Path(path).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"video list {path}: no such file", hint="check the path of the CSV") from None
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"video list {path}: cannot read: {err}", hint="the CSV must be UTF-8 text") from err
    entries, problems = [], []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _CSV_LINE.match(line)
        if match is None or not match["path"]:
            problems.append(f"line {number}: {line!r}: need `path label`")
            continue
        if match["label"].lower().endswith(VIDEO_EXTENSIONS):
            problems.append(f"line {number}: {line!r}: the label {match['label']!r} looks like a file name")
            continue
        video = Path(match["path"]).expanduser()
        entries.append(VideoEntry(video if video.is_absolute() else path.parent / video, match["label"], number, path))
    if problems:
        raise DataError(
            f"video list {path}: {len(problems)} malformed line(s):\n" + "\n".join(f"  {p}" for p in problems),
            hint="write one `path label` per line, e.g. `clips/a.mp4 3` (no header; # starts a comment)",
        )
    if not entries:
        raise DataError(f"video list {path}: lists no videos", hint="add `path label` lines")
    return entries


def _sorted_labels(labels: set[str]) -> list[str]:
    # Integer class ids (V-JEPA CSVs) sort as numbers, so label "10" comes after "9" and ids keep their order.
    if all(label.lstrip("-").isdigit() for label in labels):
        return sorted(labels, key=int)
    return sorted(labels)


class VideoDataset(Dataset):
    """Clips from real videos, one per entry, skipping unreadable files.

    `train=True` draws the clip's window at random, `train=False` takes the centred window; `transform`
    crops, flips and normalises. All randomness comes from a generator seeded from (seed, epoch, index), so
    a sample is the same in every run and in every DataLoader worker. Call `set_epoch` before creating each
    epoch's iterator (workers get a copy of the dataset when the iterator starts).

    When entry i cannot be read, entries i+1, i+2, ... are tried (at most `max_retries` more) and the sample
    lists the skipped ones as (where, reason) in `skipped`.
    """

    def __init__(
        self,
        entries: Sequence[VideoEntry],
        spec: ClipSpec,
        transform: ClipTransform,
        *,
        train: bool,
        seed: int = 0,
        max_retries: int = 20,
        label_names: Sequence[str] | None = None,
    ) -> None:
        if not entries:
            raise DataError("the video dataset has no entries", hint="check the folder or CSV it was built from")
        if not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, not {seed!r}")
        if not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(f"max_retries must be a non-negative integer, not {max_retries!r}")
        self.entries = list(entries)
        self.spec, self.transform, self.train = spec, transform, train
        self.seed, self.max_retries, self.epoch = seed, max_retries, 0
        labels = {e.label for e in self.entries if e.label is not None}
        if label_names is None:
            # `label_names` from the training split keeps a validation split's ids the same.
            label_names = _sorted_labels(labels) if labels else None
        elif unknown := labels - set(label_names):
            raise DataError(f"labels {sorted(unknown)} are not in label_names", hint="pass the full list of labels")
        self.label_names = list(label_names) if label_names is not None else None
        self._label_index = {name: i for i, name in enumerate(self.label_names or [])}
        self._infos: dict[Path, VideoInfo | VideoReadError] = {}

    def __len__(self) -> int:
        return len(self.entries)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _info(self, path: Path) -> VideoInfo:
        # Probing is a pure function of the file: cache it (per worker) so each file is probed once.
        if path not in self._infos:
            try:
                self._infos[path] = probe(path)
            except VideoReadError as err:
                self._infos[path] = err
        info = self._infos[path]
        if isinstance(info, VideoReadError):
            raise info
        return info

    def _clip(self, entry: VideoEntry, generator: torch.Generator) -> torch.Tensor:
        info = self._info(entry.path)
        indices = sample_indices(info.frames, info.fps, self.spec, random=self.train, generator=generator)
        clip, _ = self.transform(read_frames(entry.path, indices, info), generator)
        return clip

    def __getitem__(self, index: int) -> dict[str, Any]:
        skipped: list[tuple[str, str]] = []
        for attempt in range(min(self.max_retries + 1, len(self.entries))):
            entry = self.entries[(index + attempt) % len(self.entries)]
            try:
                clip = self._clip(entry, sample_generator(self.seed, self.epoch, index))
            except DataError as err:
                skipped.append((entry.where, getattr(err, "reason", err.message)))
                continue
            return {
                "clip": clip,
                "label": -1 if entry.label is None else self._label_index[entry.label],
                "labels": {},
                "index": index,
                "path": str(entry.path),
                "skipped": skipped,
            }
        tried = "\n".join(f"  {where}: {reason}" for where, reason in skipped)
        raise DataError(
            f"{len(skipped)} videos in a row are unreadable (from index {index}):\n{tried}",
            hint="fix or remove these files (`vjepa-edge data info SOURCE` lists every unreadable one)",
        )


def _fps_key(fps: float) -> str:
    return f"{fps:.2f}".rstrip("0").rstrip(".")


def _stats(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"min": None, "mean": None, "max": None, "total": None}
    return {"min": min(values), "mean": sum(values) / len(values), "max": max(values), "total": sum(values)}


def summarize_videos(
    entries: Sequence[VideoEntry], *, deep: bool = False, progress: Callable[..., Any] | None = None
) -> dict[str, Any]:
    """What `vjepa-edge data info` prints: counts, durations, sizes, frame rates, codecs, labels, and every
    unreadable file with its reason. `deep=True` decodes every frame (slow, finds damage past the first
    frame). `progress(advance=1)` is called after each file."""
    infos: list[VideoInfo] = []
    unreadable = []
    for entry in entries:
        try:
            infos.append(probe(entry.path, deep=deep))
        except DataError as err:
            reason = getattr(err, "reason", err.message)
            unreadable.append({"path": str(entry.path), "line": entry.line, "reason": reason})
        if progress is not None:
            progress(advance=1)
    frames = [i.frames for i in infos]
    return {
        "clips": len(entries),
        "readable": len(infos),
        "unreadable": unreadable,
        "duration_s": _stats([i.duration_s for i in infos]),
        "frames": {"min": min(frames, default=None), "max": max(frames, default=None)},
        "resolutions": dict(Counter(f"{i.width}x{i.height}" for i in infos).most_common()),
        "fps": dict(Counter(_fps_key(i.fps) for i in infos).most_common()),
        "codecs": dict(Counter(i.codec for i in infos).most_common()),
        "labels": dict(Counter(e.label for e in entries if e.label is not None).most_common()),
    }
