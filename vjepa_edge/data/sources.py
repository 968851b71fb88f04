"""Where clips come from: a SOURCE string names the embedded generator, a folder, a CSV or one video.

`open_source("physics" | DIR | FILE.csv | VIDEO, spec=ClipSpec(...), train=...)` returns a map-style
dataset whose items are dicts: `clip` [3, T, S, S] float, `label` (int, -1 when unlabelled), `labels`
(named integer labels; the physics source has event / num_objects / direction), `index`, `path`, and
`skipped` (unreadable files passed over to find this item, as (where, reason) pairs).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from vjepa_edge.data.config import AugmentConfig, ClipSpec
from vjepa_edge.data.physics import EVENTS, LABELS, PhysicsConfig, generate_clip
from vjepa_edge.data.transforms import ClipTransform, sample_generator
from vjepa_edge.errors import DataError

PHYSICS = "physics"
SOURCE_HINT = (
    "SOURCE is `physics` (the embedded generator), a directory of videos, a CSV (`path label` per line) or a video file"
)
# Held-out physics clips come from their own random stream, so they never repeat a training clip.
_SPLIT_STREAM = {"train": 0, "val": 1, "test": 2}


class PhysicsDataset(Dataset):
    """`length` generated clips; item i is a pure function of (seed, split, i, spec, config).

    Training augmentation (random-resized crop, flip) draws from (seed, epoch, i); a flip mirrors the
    `direction` label too, so labels stay true of the clip the model sees. `render()` renders the clips once
    into a memory-mapped store (`vjepa_edge.data.rendered`) that every later read uses; until then each item
    is rendered when it is read.
    """

    label_names = EVENTS

    def __init__(
        self,
        spec: ClipSpec,
        *,
        length: int = 1024,
        seed: int = 0,
        split: str = "train",
        train: bool = False,
        augment: AugmentConfig | None = None,
        config: PhysicsConfig | None = None,
    ) -> None:
        if split not in _SPLIT_STREAM:
            raise DataError(f"unknown physics split {split!r}", hint=f"use one of {', '.join(_SPLIT_STREAM)}")
        if length < 1:
            raise DataError(f"physics length={length}: need at least one clip")
        self.spec, self.length, self.seed, self.split, self.train = spec, length, seed, split, train
        self.config = config or PhysicsConfig()
        self.fps = float(spec.fps or self.config.fps)
        self.transform = ClipTransform(spec.size, "train" if train else "none", augment)
        self.epoch = 0
        self.store = None

    def render_key(self):
        from vjepa_edge.data.rendered import RenderKey

        return RenderKey(
            seed=self.clip_seed(), frames=self.spec.frames, size=self.spec.size, fps=self.fps, config=self.config
        )

    def rendered(self) -> bool:
        """Whether the store already holds these clips (it is then attached, so reads are memory-mapped)."""
        from vjepa_edge.data.rendered import RenderedClips

        if self.store is None:
            self.store = RenderedClips.find(self.render_key(), self.length)
        return self.store is not None

    def render(self, progress: Callable[..., Any] | None = None) -> PhysicsDataset:
        """Render every clip once into the shared store (or find it there); later reads are memory-mapped."""
        from vjepa_edge.data.rendered import RenderedClips

        if self.store is None:
            self.store = RenderedClips.ensure(self.render_key(), self.length, progress=progress)
        return self

    def __len__(self) -> int:
        return self.length

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def clip_seed(self) -> int:
        return self.seed * len(_SPLIT_STREAM) + _SPLIT_STREAM[self.split]

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < self.length:
            raise IndexError(index)
        if self.store is not None:
            frames = self.store.frames(index)
            labels = dict(zip(("event", "num_objects", "direction"), self.store.labels(index), strict=True))
        else:
            c = generate_clip(
                index,
                seed=self.clip_seed(),
                frames=self.spec.frames,
                size=self.spec.size,
                fps=self.fps,
                config=self.config,
            )
            frames, labels = c.frames, c.labels()
        clip, flipped = self.transform(frames, sample_generator(self.seed, self.epoch, index))
        direction = LABELS["direction"][labels["direction"]]
        if flipped and direction in ("left", "right"):
            labels["direction"] = LABELS["direction"].index("right" if direction == "left" else "left")
        return {
            "clip": clip,
            "label": labels["event"],
            "labels": labels,
            "index": index,
            "path": f"physics:{self.split}/{index}",
            "skipped": [],
        }


def check_source(source: str) -> None:
    """Fail early, with the accepted forms, when SOURCE names nothing."""
    if source != PHYSICS and not Path(source).expanduser().exists():
        raise DataError(f"no such data source: {source!r}", hint=SOURCE_HINT)


def source_problems(source: str, *, batch_size: int = 1, what: str = "data.source") -> list[str]:
    """What can be known about SOURCE before training: it exists, it holds at least one video that opens and
    decodes (the search stops at the first), and at least `batch_size` videos. Cheap: headers and one frame."""
    if source == PHYSICS:
        return []
    try:
        entries = video_entries(source)
    except DataError as e:
        return [f"{what}={source!r}: {e.message}"]
    if not entries:
        return [f"{what}={source!r}: no video files in it (extensions: {' '.join(_video_extensions())})"]
    from vjepa_edge.data.video import probe

    reasons = []
    for e in entries:
        try:
            probe(e.path)
            break
        except DataError as err:
            reasons.append(f"{e.path.name}: {getattr(err, 'reason', err.message)}")
    else:
        return [f"{what}={source!r}: none of its {len(entries)} videos can be read (first: {reasons[0]})"]
    if len(entries) < batch_size:
        return [f"{what}={source!r}: {len(entries)} videos, fewer than one batch of {batch_size}"]
    return []


def _video_extensions() -> tuple[str, ...]:
    from vjepa_edge.data.folders import VIDEO_EXTENSIONS

    return VIDEO_EXTENSIONS


def video_entries(source: str):
    from vjepa_edge.data.folders import VIDEO_EXTENSIONS, VideoEntry, read_csv, scan_directory

    path = Path(source).expanduser()
    if not path.exists():
        raise DataError(f"no such data source: {source!r}", hint=SOURCE_HINT)
    if path.is_dir():
        return scan_directory(path)
    if path.suffix.lower() == ".csv":
        return read_csv(path)
    if path.suffix.lower() in VIDEO_EXTENSIONS:
        return [VideoEntry(path=path, label=None, line=None)]
    raise DataError(
        f"{source!r} is neither a directory, a .csv nor a video file ({path.suffix or 'no extension'})",
        hint=SOURCE_HINT + f"; video extensions: {' '.join(VIDEO_EXTENSIONS)}",
    )


def open_source(
    source: str,
    *,
    spec: ClipSpec | None = None,
    train: bool = False,
    seed: int = 0,
    augment: AugmentConfig | None = None,
    physics: PhysicsConfig | None = None,
    length: int = 1024,
    split: str = "train",
) -> Dataset:
    """A dataset over SOURCE. `length` and `split` apply to the physics generator (real sources are what they
    are; hold out real videos with a separate folder or CSV)."""
    spec = spec or ClipSpec()
    if source == PHYSICS:
        return PhysicsDataset(spec, length=length, seed=seed, split=split, train=train, augment=augment, config=physics)
    from vjepa_edge.data.folders import VideoDataset

    transform = ClipTransform(spec.size, "train" if train else "eval", augment)
    return VideoDataset(video_entries(source), spec, transform, train=train, seed=seed)


def describe_source(
    source: str,
    *,
    spec: ClipSpec | None = None,
    deep: bool = False,
    length: int = 1024,
    progress=None,
) -> dict[str, Any]:
    """What `vjepa-edge data info` prints: counts, durations, resolutions, fps, labels, unreadable files."""
    spec = spec or ClipSpec()
    if source != PHYSICS:
        from vjepa_edge.data.folders import summarize_videos

        return {
            "source": source,
            "kind": "videos",
            **summarize_videos(video_entries(source), deep=deep, progress=progress),
        }
    from collections import Counter

    config = PhysicsConfig()
    fps = float(spec.fps or config.fps)
    hist: dict[str, Counter] = {name: Counter() for name in LABELS}
    for i in range(length):  # labels come from the simulation; rendering is cheap at 16 px
        c = generate_clip(i, frames=spec.frames, size=16, fps=fps, config=config)
        hist["event"][c.event] += 1
        hist["num_objects"][str(c.num_objects)] += 1
        hist["direction"][c.direction] += 1
        if progress is not None:
            progress(advance=1)
    duration = spec.frames / fps
    return {
        "source": PHYSICS,
        "kind": "generated",
        "clips": length,
        "readable": length,
        "unreadable": [],
        "duration_s": {"min": duration, "mean": duration, "max": duration, "total": duration * length},
        "frames": {"min": spec.frames, "max": spec.frames},
        "resolutions": {f"{spec.size}x{spec.size}": length},
        "fps": {f"{fps:g}": length},
        "codecs": {"generated": length},
        "labels": dict(sorted(hist["event"].items(), key=lambda kv: EVENTS.index(kv[0]))),
        "label_sets": {name: {k: hist[name][k] for k in LABELS[name] if k in hist[name]} for name in LABELS},
        "note": "clips are rendered on demand at any size, frame count and fps; labels are counted from the "
        f"first {length} clips of seed 0",
    }
