"""Physics clips rendered once and memory-mapped, so rendering never costs a training loop.

A physics clip is a pure function of (stream seed, index, frames, size, fps, generator config), so the clips
of one stream are rendered once, by every core in parallel, into `clips/KEY-COUNT/` under the user cache:
`frames.npy` (uint8 [COUNT, T, H, W, 3]), `labels.npy` (int8 [COUNT, 3]: event, num_objects, direction) and
`manifest.json` (the key, the count, a sha256 per file). A store is written under a temporary name and
renamed, and its hashes are checked once per process when it is opened; a damaged store is rendered again.
A request for the first N clips of a stream is served by any store of that stream that holds at least N,
so teacher pretraining, the feature cache and every evaluation read the same rendered clips.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from vjepa_edge.config import digest
from vjepa_edge.data.physics import PhysicsConfig, generate_clip
from vjepa_edge.runinfo import cache_root, file_sha256, write_json

log = logging.getLogger(__name__)

# Bump when the generator's output changes for the same arguments: old stores are then never reused.
GENERATOR_VERSION = 2
_CHUNK = 16  # clips per task sent to a render process
_verified: set[str] = set()  # stores whose hashes this process has checked


@dataclass(frozen=True, kw_only=True, slots=True)
class RenderKey:
    """What determines a stream's clips."""

    seed: int
    frames: int
    size: int
    fps: float
    config: PhysicsConfig

    def to_dict(self) -> dict[str, Any]:
        config = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self.config).items()}
        return {
            "version": GENERATOR_VERSION,
            "seed": self.seed,
            "frames": self.frames,
            "size": self.size,
            "fps": float(self.fps),
            "config": config,
        }

    def digest(self) -> str:
        return digest(self.to_dict(), 16)

    @property
    def clip_shape(self) -> tuple[int, int, int, int]:
        return (self.frames, self.size, self.size, 3)


def _render_chunk(key: RenderKey, start: int, stop: int) -> tuple[int, np.ndarray, np.ndarray]:
    frames = np.empty((stop - start, *key.clip_shape), np.uint8)
    labels = np.empty((stop - start, 3), np.int8)
    for i in range(start, stop):
        c = generate_clip(i, seed=key.seed, frames=key.frames, size=key.size, fps=key.fps, config=key.config)
        frames[i - start] = c.frames
        lab = c.labels()
        labels[i - start] = (lab["event"], lab["num_objects"], lab["direction"])
    return start, frames, labels


class RenderedClips:
    """A verified store of the first `count` clips of one stream; `frames(i)` and `labels(i)` read clip i."""

    def __init__(self, path: Path, manifest: dict[str, Any]) -> None:
        self.path, self.count = path, int(manifest["count"])
        self.shape = tuple(manifest["shape"])
        self._frames: np.ndarray | None = None
        self._labels: np.ndarray | None = None

    def _open(self) -> None:
        self._frames = np.load(self.path / "frames.npy", mmap_mode="r")
        self._labels = np.load(self.path / "labels.npy")

    def frames(self, index: int) -> np.ndarray:
        if self._frames is None:
            self._open()
        return np.array(self._frames[index])  # a writable copy of one clip

    def labels(self, index: int) -> tuple[int, int, int]:
        if self._labels is None:
            self._open()
        return tuple(int(v) for v in self._labels[index])

    def __getstate__(self) -> dict[str, Any]:  # data-loader workers map the file themselves
        return {"path": self.path, "count": self.count, "shape": self.shape, "_frames": None, "_labels": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    # ------------------------------------------------------------------ finding, checking, rendering

    @staticmethod
    def root() -> Path:
        return cache_root() / "clips"

    @classmethod
    def find(cls, key: RenderKey, count: int) -> RenderedClips | None:
        """A verified store of `key` with at least `count` clips, or None (a damaged one is removed)."""
        digest = key.digest()
        candidates = []
        for path in cls.root().glob(f"{digest}-*"):
            manifest_path = path / "manifest.json"
            if not manifest_path.is_file():
                continue
            try:
                manifest = json.loads(manifest_path.read_text())
            except (OSError, ValueError):
                continue
            if manifest.get("key") == key.to_dict() and int(manifest.get("count", 0)) >= count:
                candidates.append((int(manifest["count"]), path, manifest))
        for _, path, manifest in sorted(candidates, key=lambda c: c[0]):
            if str(path) not in _verified:
                bad = [f for f, sha in manifest["sha256"].items() if file_sha256(path / f) != sha]
                if bad:
                    log.warning("rendered clips in %s are damaged (%s); rendering them again", path, ", ".join(bad))
                    shutil.rmtree(path, ignore_errors=True)
                    continue
                _verified.add(str(path))
            return cls(path, manifest)
        return None

    @classmethod
    def ensure(
        cls, key: RenderKey, count: int, *, progress: Callable[..., Any] | None = None, workers: int | None = None
    ) -> RenderedClips:
        """The store of `key` holding at least `count` clips, rendered now (on every core) when missing."""
        found = cls.find(key, count)
        if found is not None:
            return found
        root = cls.root()
        root.mkdir(parents=True, exist_ok=True)
        final = root / f"{key.digest()}-{count}"
        tmp = root / f".{final.name}.{uuid.uuid4().hex[:8]}.tmp"
        tmp.mkdir()
        try:
            frames = np.lib.format.open_memmap(tmp / "frames.npy", "w+", np.uint8, (count, *key.clip_shape))
            labels = np.empty((count, 3), np.int8)
            chunks = [(s, min(count, s + _CHUNK)) for s in range(0, count, _CHUNK)]
            workers = max(1, min(workers or os.cpu_count() or 1, len(chunks)))
            if workers == 1:
                done = (_render_chunk(key, a, b) for a, b in chunks)
                _fill(done, frames, labels, progress)
            else:
                with ProcessPoolExecutor(workers, mp_context=get_context("fork")) as pool:
                    done = pool.map(_render_chunk, [key] * len(chunks), *zip(*chunks, strict=True))
                    _fill(done, frames, labels, progress)
            frames.flush()
            del frames
            np.save(tmp / "labels.npy", labels)
            manifest = {
                "key": key.to_dict(),
                "count": count,
                "shape": list(key.clip_shape),
                "sha256": {f: file_sha256(tmp / f) for f in ("frames.npy", "labels.npy")},
            }
            write_json(tmp / "manifest.json", manifest)
            os.replace(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        _verified.add(str(final))
        for other in root.glob(f"{key.digest()}-*"):  # smaller stores of the stream are now redundant
            if other != final and other.name.split("-")[-1].isdigit() and int(other.name.split("-")[-1]) < count:
                shutil.rmtree(other, ignore_errors=True)
        return cls(final, manifest)


def _fill(done, frames: np.ndarray, labels: np.ndarray, progress: Callable[..., Any] | None) -> None:
    for start, f, lab in done:
        frames[start : start + len(f)] = f
        labels[start : start + len(f)] = lab
        if progress is not None:
            progress(advance=len(f))
