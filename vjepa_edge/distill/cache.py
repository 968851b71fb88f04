"""The teacher-feature cache: a frozen teacher's output tokens for every (view, clip), computed once.

Distillation reads the teacher's tokens instead of running the teacher every epoch. Datasets here are
deterministic, so an item is named by (view, index): `dataset.set_epoch(view)` regenerates the clip, and the
cache holds only features. On disk, `<root>/<key.digest()>/` holds `manifest.json` and fp16 shards
`shard_00000.npy`, ... of shape [items, N, D] over the global items `view * num_clips + index`. Shards and the
manifest are written atomically, so a killed build leaves whole shards, which the next `build_cache` verifies
and keeps. Shards are memory-mapped on first use in each process (DataLoader workers included).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from vjepa_edge.data.loader import collate_clips
from vjepa_edge.errors import CacheError, ConfigError
from vjepa_edge.runinfo import file_sha256, temp_beside, write_json

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SHARD_BYTES = 256 << 20  # default shard size: big enough for few files, small enough to rewrite after a kill
_DTYPE = np.float16


def _json_default(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        from vjepa_edge.config import to_dict

        return to_dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON data")


def _plain(value: Any, name: str, problems: list[str]) -> Any:
    """Mappings and dataclasses (nested too) as canonical JSON data (tuples become lists), so keys compare and
    hash the same after a round trip through the manifest."""
    try:
        return json.loads(json.dumps(value, sort_keys=True, default=_json_default))
    except (TypeError, ValueError) as e:
        problems.append(f"{name}={value!r}: need JSON data ({e})")
        return None


@dataclass(frozen=True, kw_only=True, slots=True)
class CacheKey:
    """What the cached features depend on; the cache directory is named by `digest()`.

    `teacher` is a digest of the teacher weights that the caller computes (`state_dict_digest`, or the sha256
    of its safetensors file). The data: `source` string, `clip` spec, `augment` (None when clips are not
    augmented), dataset `seed`, `num_clips`, and `extra` (anything else the clips depend on, e.g. the physics
    split and generator config). `views` augmented passes over the clips; the teacher's token `grid` (T', H', W')
    and width `dim`; features are stored as `dtype` (float16 only).
    """

    teacher: str
    source: str
    clip: dict[str, Any]
    augment: dict[str, Any] | None
    seed: int
    num_clips: int
    views: int
    grid: tuple[int, int, int]
    dim: int
    extra: dict[str, Any] = field(default_factory=dict)
    dtype: str = "float16"

    def __post_init__(self) -> None:
        p: list[str] = []
        for name in ("teacher", "source"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                p.append(f"{name}={getattr(self, name)!r}: need a non-empty string")
        object.__setattr__(self, "clip", _plain(self.clip, "clip", p))
        object.__setattr__(self, "augment", None if self.augment is None else _plain(self.augment, "augment", p))
        object.__setattr__(self, "extra", _plain(self.extra, "extra", p))
        for name in ("clip", "extra"):
            if not isinstance(getattr(self, name), dict | type(None)):
                p.append(f"{name}: need a mapping, got {type(getattr(self, name)).__name__}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            p.append(f"seed={self.seed!r}: need an integer")
        for name in ("num_clips", "views", "dim"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                p.append(f"{name}={v!r}: need a positive integer")
        grid = tuple(self.grid) if isinstance(self.grid, list | tuple) else ()
        if len(grid) != 3 or not all(isinstance(g, int) and g > 0 for g in grid):
            p.append(f"grid={self.grid!r}: need three positive integers (T', H', W')")
        object.__setattr__(self, "grid", grid)
        if self.dtype != "float16":
            p.append(f"dtype={self.dtype!r}: only 'float16' is supported")
        if p:
            raise ConfigError("invalid teacher-cache key", problems=p)

    def __hash__(self) -> int:
        return hash(self.digest())

    @property
    def num_items(self) -> int:
        return self.views * self.num_clips

    @property
    def item_shape(self) -> tuple[int, int]:
        """(N, D): tokens per clip and their width."""
        return math.prod(self.grid), self.dim

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["grid"] = list(self.grid)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CacheKey:
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise ConfigError(f"unknown keys in a teacher-cache key: {', '.join(unknown)}", hint=f"allowed: {names}")
        try:
            return cls(**data)
        except TypeError as e:  # a missing required key
            raise ConfigError(f"invalid teacher-cache key record: {e}") from None

    def digest(self) -> str:
        """16 hex digits of the sha256 of the key's canonical JSON."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @classmethod
    def for_dataset(
        cls, dataset: Any, *, teacher: str, source: str, views: int, grid: tuple[int, int, int], dim: int
    ) -> CacheKey:
        """The key of a PhysicsDataset or VideoDataset (reads its spec, seed, length and augmentation)."""
        missing = [a for a in ("spec", "seed", "train", "transform") if not hasattr(dataset, a)]
        if missing:
            raise CacheError(
                f"cannot describe a {type(dataset).__name__} for a teacher cache (it has no {', '.join(missing)})",
                hint="build the CacheKey yourself from the data's source, clip spec, augmentation and seed",
            )
        extra: dict[str, Any] = {}
        if hasattr(dataset, "split") and hasattr(dataset, "config"):  # the physics generator
            extra = {"split": dataset.split, "physics": dataset.config}
        if hasattr(dataset, "entries"):  # real videos: a changed, added or removed file changes the key
            files = hashlib.sha256()
            for entry in dataset.entries:
                path = Path(entry.path)
                stat = path.stat() if path.exists() else None
                files.update(f"{path}|{stat.st_size if stat else -1}|{stat.st_mtime_ns if stat else -1}\n".encode())
            extra = {"files": files.hexdigest()[:16]}
        return cls(
            teacher=teacher,
            source=source,
            clip=dataset.spec,
            augment=dataset.transform.augment if dataset.train else None,
            seed=dataset.seed,
            num_clips=len(dataset),
            views=views,
            grid=grid,
            dim=dim,
            extra=extra,
        )


def state_dict_digest(state_dict: dict[str, Tensor]) -> str:
    """sha256 over the names, dtypes, shapes and bytes of a state dict: the `teacher` field of a CacheKey."""
    h = hashlib.sha256()
    for name in sorted(state_dict):
        t = state_dict[name].detach().cpu().contiguous().reshape(-1)
        h.update(f"{name}|{t.dtype}|{list(state_dict[name].shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


class _HashingWriter:
    """A file wrapper that hashes what `np.save` writes, so a shard is not read back to be hashed."""

    def __init__(self, f: Any) -> None:
        self.f, self.sha, self.size = f, hashlib.sha256(), 0

    def write(self, data: Any) -> int:
        data = memoryview(data).cast("B")
        self.sha.update(data)
        self.size += len(data)
        return self.f.write(data)


def _write_shard(directory: Path, name: str, array: np.ndarray, start: int) -> dict[str, Any]:
    """Write one shard atomically (temp file in the same directory, then rename); return its manifest entry."""
    fd, tmp = temp_beside(directory / name)
    try:
        with os.fdopen(fd, "wb") as f:
            w = _HashingWriter(f)
            np.save(w, array)  # type: ignore[arg-type]
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, directory / name)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return {"file": name, "start": start, "stop": start + len(array), "bytes": w.size, "sha256": w.sha.hexdigest()}


def _shard_problem(directory: Path, entry: dict[str, Any], item_shape: tuple[int, int]) -> str | None:
    """What is wrong with one shard on disk, or None when its size, sha256, shape and dtype match."""
    path = directory / entry["file"]
    if not path.is_file():
        return "is missing"
    if path.stat().st_size != entry["bytes"]:
        return f"has {path.stat().st_size} bytes, the manifest says {entry['bytes']} (truncated?)"
    if file_sha256(path) != entry["sha256"]:
        return "does not match its sha256 in the manifest (corrupt)"
    try:
        arr = np.load(path, mmap_mode="r")
    except (ValueError, OSError) as e:
        return f"cannot be read as .npy ({e})"
    want = (entry["stop"] - entry["start"], *item_shape)
    if arr.shape != want or arr.dtype != _DTYPE:
        return f"holds {arr.dtype}{list(arr.shape)}, expected float16{list(want)}"
    return None


def _bad_shard(directory: Path, name: str, problem: str) -> CacheError:
    return CacheError(
        f"teacher cache {directory}: shard {name} {problem}",
        hint=f"delete {directory} or rebuild the cache (build_cache(..., rebuild=True))",
    )


def _read_manifest(directory: Path, key: CacheKey) -> dict[str, Any] | None:
    """The directory's manifest (None when there is none), checked against the format version and `key`."""
    path = directory / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
        fmt, stored = manifest["format"], manifest["key"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CacheError(f"unreadable teacher-cache manifest {path}: {e}", hint=f"delete {directory}") from None
    if fmt != FORMAT_VERSION:
        raise CacheError(
            f"teacher cache {directory} has format {fmt!r}; this version reads format {FORMAT_VERSION}",
            hint=f"delete {directory} or rebuild the cache (build_cache(..., rebuild=True))",
        )
    if stored != key.to_dict():
        diff = sorted(k for k in set(stored) | set(key.to_dict()) if stored.get(k) != key.to_dict().get(k))
        raise CacheError(
            f"teacher cache {directory} was built for another key (differs in: {', '.join(diff)})",
            hint=f"delete {directory}; a cache directory is named by its key's digest, so this is a stray copy",
        )
    return manifest


class FeatureCache:
    """A complete teacher-feature cache: `cache[i]` is item `view * num_clips + index` as fp16 [N, D]."""

    def __init__(self, path: Path, manifest: dict[str, Any]) -> None:
        self.path = Path(path)
        self.key = CacheKey.from_dict(manifest["key"])
        self.shard_size: int = manifest["shard_size"]
        self.shards: list[dict[str, Any]] = manifest["shards"]
        covered = [(s["start"], s["stop"]) for s in self.shards]
        expected = [(a, min(a + self.shard_size, self.key.num_items)) for a in range(0, len(self), self.shard_size)]
        if covered != expected:
            raise CacheError(
                f"teacher cache {self.path}: the manifest's shards do not cover items 0..{len(self)}",
                hint=f"delete {self.path} or rebuild the cache (build_cache(..., rebuild=True))",
            )
        self._arrays: list[np.ndarray | None] = [None] * len(self.shards)

    @classmethod
    def open(cls, root: str | Path, key: CacheKey, *, verify: bool = True) -> FeatureCache | None:
        """The cache of `key` under `root`; None when absent or incomplete. `verify` checks every shard first."""
        directory = Path(root) / key.digest()
        manifest = _read_manifest(directory, key)
        if manifest is None or not manifest.get("complete"):
            return None
        cache = cls(directory, manifest)
        if verify:
            cache.verify()
        return cache

    def verify(self) -> None:
        """Check every shard's size, sha256, shape and dtype against the manifest; CacheError names a bad one."""
        for entry in self.shards:
            if problem := _shard_problem(self.path, entry, self.key.item_shape):
                raise _bad_shard(self.path, entry["file"], problem)

    @property
    def views(self) -> int:
        return self.key.views

    @property
    def num_clips(self) -> int:
        return self.key.num_clips

    @property
    def nbytes(self) -> int:
        """Bytes of the shard files on disk."""
        return sum(s["bytes"] for s in self.shards)

    def __len__(self) -> int:
        return self.key.num_items

    def _array(self, shard: int) -> np.ndarray:
        arr = self._arrays[shard]
        if arr is None:  # opened lazily, so each DataLoader worker maps the files itself
            arr = self._arrays[shard] = np.load(self.path / self.shards[shard]["file"], mmap_mode="r")
        return arr

    def __getitem__(self, i: int) -> Tensor:
        if not 0 <= i < len(self):
            raise IndexError(f"item {i} is outside the cache's {len(self)} items")
        row = self._array(i // self.shard_size)[i % self.shard_size]
        return torch.from_numpy(np.array(row))  # a copy: the map is read-only

    def features(self, view: int, indices: Sequence[int] | Tensor | np.ndarray) -> Tensor:
        """Features of clips `indices` in `view` as fp16 [B, N, D]."""
        if not 0 <= view < self.views:
            raise IndexError(f"view {view} is outside the cache's {self.views} views")
        idx = np.asarray(indices.cpu() if isinstance(indices, Tensor) else indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= self.num_clips):
            raise IndexError(f"clip indices must lie in [0, {self.num_clips}), got {idx.min()}..{idx.max()}")
        items = view * self.num_clips + idx
        out = np.empty((len(items), *self.key.item_shape), dtype=_DTYPE)
        shards = items // self.shard_size
        for s in np.unique(shards):
            sel = shards == s
            out[sel] = self._array(int(s))[items[sel] % self.shard_size]
        return torch.from_numpy(out)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_arrays"] = [None] * len(self.shards)  # never pickle open maps; workers reopen them
        return state

    def __repr__(self) -> str:
        return f"FeatureCache({str(self.path)!r}, items={len(self)}, nbytes={self.nbytes})"


def _stack_clips(samples: list[dict[str, Any]]) -> Tensor:
    return torch.stack([s["clip"] for s in samples])


def _batches(start: int, key: CacheKey, shard_size: int, batch_size: int) -> Iterator[tuple[int, list[int]]]:
    """(view, clip indices) batches from global item `start`: none crosses a shard or a view boundary, so the
    batches of a resumed build are the batches of an uninterrupted one."""
    n = key.num_clips
    for a in range(start, key.num_items, shard_size):
        b = min(a + shard_size, key.num_items)
        while a < b:
            view, stop = a // n, min(b, (a // n + 1) * n)
            for c in range(a, stop, batch_size):
                yield view, [i - view * n for i in range(c, min(c + batch_size, stop))]
            a = stop


def _kept_shards(directory: Path, manifest: dict[str, Any], key: CacheKey) -> list[dict[str, Any]]:
    """The leading shards that are whole and match the manifest; the rest are recomputed."""
    kept: list[dict[str, Any]] = []
    for entry in manifest["shards"]:
        expected_start = kept[-1]["stop"] if kept else 0
        problem = "starts at the wrong item" if entry.get("start") != expected_start else None
        if problem := problem or _shard_problem(directory, entry, key.item_shape):
            logger.warning(
                "teacher cache %s: shard %s %s; recomputing from item %d",
                directory,
                entry["file"],
                problem,
                expected_start,
            )
            break
        kept.append(entry)
    return kept


def build_cache(
    encode: Callable[[Tensor], Tensor],
    dataset: Dataset,
    key: CacheKey,
    root: str | Path,
    *,
    batch_size: int,
    num_workers: int = 0,
    progress: Callable[..., Any] | None = None,
    rebuild: bool = False,
    shard_size: int | None = None,
) -> FeatureCache:
    """Run `encode(clips [B, 3, T, H, W]) -> [B, N, D]` over every (view, clip) of `dataset` and store fp16 features.

    Resumes a killed build: shards in the manifest whose sha256 matches are kept, the rest are recomputed.
    `rebuild` discards what is there. `shard_size` (items per shard) defaults to about 256 MiB per shard; a
    resumed build keeps the size it started with. `progress(advance=n)` is called per batch (and once for
    the items already cached). The caller wraps the teacher in no_grad / autocast / device moves.
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size={batch_size!r}: need a positive integer")
    if len(dataset) != key.num_clips:  # type: ignore[arg-type]
        raise CacheError(
            f"the dataset has {len(dataset)} clips but the cache key says num_clips={key.num_clips}",  # type: ignore[arg-type]
            hint="build the key from the dataset the cache is for (CacheKey.for_dataset)",
        )
    if key.views > 1 and key.augment is None:
        logger.warning("teacher cache: %d views of unaugmented clips are identical copies", key.views)
    directory = Path(root) / key.digest()
    if rebuild and directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob(".*.tmp"):  # left by a build killed mid-write
        stale.unlink()

    item_bytes = math.prod(key.item_shape) * 2
    manifest = _read_manifest(directory, key)
    if manifest is None:
        size = shard_size or max(1, SHARD_BYTES // item_bytes)
        if not isinstance(size, int) or size < 1:
            raise ConfigError(f"shard_size={shard_size!r}: need a positive integer")
        manifest = {"format": FORMAT_VERSION, "key": key.to_dict(), "num_items": key.num_items, "shard_size": size}
        manifest["shards"], manifest["complete"] = [], False
    else:
        if shard_size is not None and shard_size != manifest["shard_size"]:
            logger.info("teacher cache %s: resuming with its shard size %d", directory, manifest["shard_size"])
        manifest["shards"] = _kept_shards(directory, manifest, key)
        if manifest["complete"] and manifest["shards"] and manifest["shards"][-1]["stop"] == key.num_items:
            logger.info("teacher cache %s is complete", directory)
            return FeatureCache(directory, manifest)
        manifest["complete"] = False
    size = manifest["shard_size"]
    done = manifest["shards"][-1]["stop"] if manifest["shards"] else 0
    if done:
        logger.info("teacher cache %s: resuming after %d of %d items", directory, done, key.num_items)
        if progress is not None:
            progress(advance=done)
    write_json(directory / MANIFEST, manifest)

    buffer, cursor = None, done
    for view, batch in _view_batches(_batches(done, key, size, batch_size)):
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(view)
        loader = DataLoader(dataset, batch_sampler=batch, num_workers=num_workers, collate_fn=_stack_clips)
        for clips in loader:
            feats = _encode(encode, clips, key, view, cursor)
            start = cursor - cursor % size
            if buffer is None:
                buffer = np.empty((min(size, key.num_items - start), *key.item_shape), dtype=_DTYPE)
            buffer[cursor - start : cursor - start + len(feats)] = feats
            cursor += len(feats)
            if cursor - start == len(buffer):
                name = f"shard_{start // size:05d}.npy"
                manifest["shards"].append(_write_shard(directory, name, buffer, start))
                write_json(directory / MANIFEST, manifest)
                buffer = None
            if progress is not None:
                progress(advance=len(feats))
    manifest["complete"] = True
    write_json(directory / MANIFEST, manifest)
    cache = FeatureCache(directory, manifest)
    logger.info(
        "teacher cache %s: %d items (%d views x %d clips) of %s, %.1f MiB",
        directory, len(cache), key.views, key.num_clips, list(key.item_shape), cache.nbytes / 2**20,
    )  # fmt: skip
    return cache


def _view_batches(batches: Iterator[tuple[int, list[int]]]) -> Iterator[tuple[int, list[list[int]]]]:
    """Group consecutive batches of one view (each view gets its own DataLoader after `set_epoch`)."""
    view, group = None, []
    for v, batch in batches:
        if v != view and group:
            yield view, group  # type: ignore[misc]
            group = []
        view = v
        group.append(batch)
    if group:
        yield view, group  # type: ignore[misc]


def _encode(encode: Callable[[Tensor], Tensor], clips: Tensor, key: CacheKey, view: int, item: int) -> np.ndarray:
    """One batch of teacher features as fp16 numpy, checked against the key's shape and for overflow."""
    with torch.no_grad():
        out = encode(clips)
    want = (len(clips), *key.item_shape)
    if not isinstance(out, Tensor) or tuple(out.shape) != want:
        got = list(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise CacheError(
            f"the teacher returned {got} for a batch of {len(clips)} clips; the cache key expects {list(want)}",
            hint="set the key's grid (T', H', W') and dim to the teacher's token grid and width",
        )
    feats = out.detach().to("cpu", torch.float16).numpy()
    if not np.isfinite(feats).all():
        raise CacheError(
            f"teacher features of view {view}, items from {item} are not finite in float16 (overflow or NaN)",
            hint="check the teacher checkpoint and its input normalisation",
        )
    return feats


class CachedTeacherDataset(Dataset):
    """`dataset`'s items plus `teacher`: the cached fp16 [N, D] features of the same (view, clip).

    `set_epoch(e)` sets the wrapped dataset's epoch to `e % views`, so epoch e sees view `e % views`'s clips and
    features. Picklable for DataLoader workers: the cache's memory maps are reopened in each process.
    """

    def __init__(self, dataset: Dataset, cache: FeatureCache) -> None:
        if len(dataset) != cache.num_clips:  # type: ignore[arg-type]
            raise CacheError(
                f"the dataset has {len(dataset)} clips, the teacher cache {cache.path} has {cache.num_clips}",  # type: ignore[arg-type]
                hint="use the dataset the cache was built from",
            )
        self.dataset, self.cache = dataset, cache
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        self.epoch, self.view = epoch, epoch % self.cache.views
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(self.view)

    def __len__(self) -> int:
        return self.cache.num_clips

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = dict(self.dataset[index])
        item["teacher"] = self.cache[self.view * self.cache.num_clips + index]
        return item


def collate_with_teacher(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """`collate_clips` plus the stacked `teacher` features [B, N, D] (the collate for CachedTeacherDataset)."""
    return collate_clips(samples) | {"teacher": torch.stack([s["teacher"] for s in samples])}
