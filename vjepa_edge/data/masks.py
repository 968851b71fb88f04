"""Multiblock-3D masks of V-JEPA: which tokens the context encoder sees and which the predictor predicts.

Follows `src/masks/multiblock3d.py` of facebookresearch/jepa (same logic as vjepa2's multiseq version):
per batch and per `MaskSpec` one block size (t, h, w) is drawn; every sample then gets `num_blocks` blocks
of that size at random places; the targets are the union of the blocks, the context is the rest; every
sample's index lists are cut to the batch's shortest so they stack into `LongTensor[B, K]` / `[B, M]`.
Token indices are in (t, h, w) order, as the encoder flattens them.

Deviations from the official code, all on purpose:
- Placement is drawn from a generator seeded by (seed, step) instead of the global RNG, so a step's masks
  are a pure function of (seed, step) and a resumed run draws the same masks.
- Block height and width are at least 1 token (the official formula gives 0 for tiny grids and scales).
- A spec whose blocks cover the whole grid raises after a bounded number of redraws instead of looping.
"""

from __future__ import annotations

import difflib
import math
import multiprocessing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from numbers import Real
from typing import Any

import torch
from torch import Tensor

from vjepa_edge.errors import ConfigError

_MASK64 = (1 << 64) - 1
# Rounds of redrawing the samples whose context came out empty before giving up.
_MAX_REDRAWS = 100


@dataclass(frozen=True, kw_only=True, slots=True)
class MaskSpec:
    """One mask generator of a V-JEPA config (`cfgs_mask` entry): `num_blocks` blocks per sample.

    A block covers a fraction `spatial_scale` of each frame's tokens with height/width ratio in `aspect_ratio`,
    and a fraction `temporal_scale` of the time steps. `max_temporal_keep < 1` limits the context to the first
    frames (the later ones become targets); `max_keep` caps the context length.
    """

    num_blocks: int
    spatial_scale: tuple[float, float]
    temporal_scale: tuple[float, float] = (1.0, 1.0)
    aspect_ratio: tuple[float, float] = (0.75, 1.5)
    max_temporal_keep: float = 1.0
    max_keep: int | None = None

    def __post_init__(self) -> None:
        problems: list[str] = []
        if not _is_int(self.num_blocks) or self.num_blocks < 1:
            problems.append(f"num_blocks={self.num_blocks!r}: need a positive integer")
        _pair("spatial_scale", self.spatial_scale, 1.0, problems)
        _pair("temporal_scale", self.temporal_scale, 1.0, problems)
        _pair("aspect_ratio", self.aspect_ratio, math.inf, problems)
        if not _is_real(self.max_temporal_keep) or not 0.0 < self.max_temporal_keep <= 1.0:
            problems.append(f"max_temporal_keep={self.max_temporal_keep!r}: need a number in (0, 1]")
        if self.max_keep is not None and (not _is_int(self.max_keep) or self.max_keep < 1):
            problems.append(f"max_keep={self.max_keep!r}: need a positive integer or None")
        if problems:
            raise ConfigError("invalid mask spec", problems=problems)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MaskSpec:
        """Build from a TOML/JSON table; an unknown key is an error that names the closest field."""
        names = [f.name for f in fields(cls)]
        unknown = [k for k in data if k not in names]
        if unknown:
            hints = []
            for key in unknown:
                close = difflib.get_close_matches(key, names, n=1)
                hints.append(f"{key!r} (did you mean {close[0]!r}?)" if close else repr(key))
            raise ConfigError(f"unknown keys in mask spec: {', '.join(hints)}", hint=f"allowed: {', '.join(names)}")
        if "num_blocks" not in data or "spatial_scale" not in data:
            raise ConfigError("mask spec needs num_blocks and spatial_scale")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def _pair(name: str, value: object, hi: float, problems: list[str]) -> None:
    ok = isinstance(value, tuple) and len(value) == 2 and all(_is_real(v) for v in value)
    if not ok or not 0.0 < value[0] <= value[1] <= hi:  # type: ignore[index]
        bound = "" if math.isinf(hi) else f" <= {hi}"
        problems.append(f"{name}={value!r}: need a tuple (lo, hi) with 0 < lo <= hi{bound}")


# The two mask generators of every V-JEPA 1 and V-JEPA 2 pretraining config.
SHORT_RANGE = MaskSpec(num_blocks=8, spatial_scale=(0.15, 0.15))
LONG_RANGE = MaskSpec(num_blocks=2, spatial_scale=(0.7, 0.7))
VJEPA_MASKS = (SHORT_RANGE, LONG_RANGE)


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def _generator(*values: int) -> torch.Generator:
    """A CPU generator seeded by a hash of `values`.

    Hashed rather than packed into one integer because torch's CPU generator keeps only the low 32 bits of a
    seed: `seed << 32 | step` would give every seed the same masks.
    """
    h = 0
    for v in values:
        h = _splitmix64(h ^ (v & _MASK64))
    return torch.Generator().manual_seed(h & 0xFFFFFFFF)


class MultiBlock3DMasker:
    """Draws V-JEPA's multiblock-3D context/target token indices for a token grid (duration, height, width).

    `grid` is (frames // tubelet, size // patch, size // patch). `masker(batch_size)` uses and advances an
    internal step counter (kept in `state_dict()`); `sample(batch_size, step)` is the pure function behind it.
    In distributed training give each rank its own `seed` (e.g. seed + rank), or ranks draw the same masks.
    """

    def __init__(self, grid: tuple[int, int, int], specs: Sequence[MaskSpec] = VJEPA_MASKS, *, seed: int = 0) -> None:
        problems = []
        if not (isinstance(grid, tuple | list) and len(grid) == 3 and all(_is_int(g) and g >= 1 for g in grid)):
            problems.append(f"grid={grid!r}: need three positive integers (frames//tubelet, size//patch, size//patch)")
        if not (isinstance(specs, Sequence) and specs and all(isinstance(s, MaskSpec) for s in specs)):
            problems.append(f"specs={specs!r}: need a non-empty sequence of MaskSpec")
        if not _is_int(seed) or seed < 0:
            problems.append(f"seed={seed!r}: need a non-negative integer")
        if problems:
            raise ConfigError("invalid multiblock-3D masker", problems=problems)
        self.grid = tuple(grid)
        self.specs = tuple(specs)
        self.seed = seed
        self.step = 0

    @property
    def num_tokens(self) -> int:
        return math.prod(self.grid)

    def __call__(self, batch_size: int) -> tuple[list[Tensor], list[Tensor]]:
        """(masks_enc, masks_pred) for the next step: one `LongTensor[B, K]` / `[B, M]` per spec."""
        out = self.sample(batch_size, self.step)
        self.step += 1
        return out

    def state_dict(self) -> dict[str, int]:
        return {"step": self.step}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.step = int(state["step"])

    def block_sizes(self, step: int) -> list[tuple[int, int, int]]:
        """The (t, h, w) of each spec's blocks at `step`, the same for every sample of that batch."""
        return [self._block_size(spec, _generator(self.seed, step, 0)) for spec in self.specs]

    def _block_size(self, spec: MaskSpec, g: torch.Generator) -> tuple[int, int, int]:
        # The official `_sample_block_size`: three draws in this order (time, space, aspect). Every spec starts
        # from a fresh generator with the same seed, as the official per-spec counters all hold the same value.
        duration, height, width = self.grid
        lo, hi = spec.temporal_scale
        t = max(1, int(duration * (lo + torch.rand(1, generator=g).item() * (hi - lo))))
        lo, hi = spec.spatial_scale
        keep = int(height * width * (lo + torch.rand(1, generator=g).item() * (hi - lo)))
        lo, hi = spec.aspect_ratio
        ar = lo + torch.rand(1, generator=g).item() * (hi - lo)
        h = min(max(1, round(math.sqrt(keep * ar))), height)
        w = min(max(1, round(math.sqrt(keep / ar))), width)
        return t, h, w

    def target_masks(self, batch_size: int, step: int) -> list[Tensor]:
        """Untruncated targets per spec: bool `[B, duration, height, width]`, True where a token is predicted."""
        if not _is_int(batch_size) or batch_size < 1:
            raise ConfigError(f"batch_size={batch_size!r}: need a positive integer")
        if not _is_int(step) or step < 0:
            raise ConfigError(f"step={step!r}: need a non-negative integer")
        place = _generator(self.seed, step, 1)
        sizes = self.block_sizes(step)
        masks = []
        for spec, size in zip(self.specs, sizes, strict=True):
            target = self._place(batch_size, spec, size, place)
            empty, redraws = target.flatten(1).all(dim=1), 0
            while empty.any():  # the official code redraws a sample whose context is empty
                if redraws == _MAX_REDRAWS:
                    raise ConfigError(
                        f"mask spec {spec} leaves no context on grid {self.grid}: its blocks of (t, h, w) = {size} "
                        "cover every token",
                        hint="lower spatial_scale, temporal_scale or num_blocks",
                    )
                target[empty] = self._place(int(empty.sum()), spec, size, place)
                empty, redraws = target.flatten(1).all(dim=1), redraws + 1
            masks.append(target)
        return masks

    def _place(self, n: int, spec: MaskSpec, size: tuple[int, int, int], g: torch.Generator) -> Tensor:
        """Targets of `n` samples: the union of `num_blocks` blocks of `size` at uniform random places."""
        (t, h, w), (duration, height, width) = size, self.grid
        shape = (n, spec.num_blocks, 1)
        start = torch.randint(0, duration - t + 1, shape, generator=g)
        top = torch.randint(0, height - h + 1, shape, generator=g)
        left = torch.randint(0, width - w + 1, shape, generator=g)
        # A block is (time interval) x (spatial rectangle). Summing over blocks with one batched matmul,
        # [n, T, blocks] @ [n, blocks, H*W], counts the blocks covering each token: nonzero = in the union.
        # Several times faster than any() over a [n, blocks, T, H, W] outer product on a busy CPU.
        in_t = _interval(duration, start, t).transpose(1, 2).float()
        in_hw = _interval(height, top, h)[:, :, :, None] & _interval(width, left, w)[:, :, None, :]
        target = (torch.bmm(in_t, in_hw.flatten(2).float()) > 0).view(n, duration, height, width)
        context_frames = max(1, int(duration * spec.max_temporal_keep))
        target[:, context_frames:] = True  # the context spans only the first frames; the rest is predicted
        return target

    def sample(self, batch_size: int, step: int) -> tuple[list[Tensor], list[Tensor]]:
        """(masks_enc, masks_pred) of `step`: ascending token indices cut to the batch's shortest list."""
        masks_enc, masks_pred = [], []
        for spec, target in zip(self.specs, self.target_masks(batch_size, step), strict=True):
            target = target.flatten(1)
            context = ~target
            keep_enc = int(context.sum(1).min())
            if spec.max_keep is not None:
                keep_enc = min(keep_enc, spec.max_keep)
            masks_enc.append(_first_indices(context, keep_enc))
            masks_pred.append(_first_indices(target, int(target.sum(1).min())))
        return masks_enc, masks_pred


def _interval(length: int, start: Tensor, size: int) -> Tensor:
    positions = torch.arange(length)
    return (positions >= start) & (positions < start + size)


def _first_indices(mask: Tensor, k: int) -> Tensor:
    """The `k` smallest indices where each row of bool `mask [B, N]` is True, as `LongTensor[B, k]`."""
    first = mask & (mask.cumsum(dim=1) <= k)
    return first.nonzero()[:, 1].view(mask.shape[0], k)


class MaskCollator:
    """`DataLoader` collate_fn: `samples -> (batch, masks_enc, masks_pred)`, as the official MaskCollator.

    The step counter lives in shared memory (`multiprocessing.Value`, like the official `_itr_counter`), so
    all worker processes and all epochs draw from one sequence of steps and no two batches repeat masks. With
    several workers the order in which they take steps is not fixed, so which batch gets which step may differ
    between runs; the masks themselves are still a function of (seed, step). The collator pickles into
    DataLoader workers (fork and spawn), but not elsewhere (a shared counter cannot be copied): save
    `state_dict()` instead. It counts batches collated, prefetched ones included, so a run resumed from it
    skips a few steps rather than repeating any. The masker's own counter is not used.
    """

    def __init__(
        self, masker: MultiBlock3DMasker, base_collate: Callable[[list[Any]], Any] = torch.utils.data.default_collate
    ) -> None:
        if not isinstance(masker, MultiBlock3DMasker):
            raise ConfigError(f"masker={masker!r}: need a MultiBlock3DMasker")
        self.masker = masker
        self.base_collate = base_collate
        # A spawn-context lock can be shared with fork, spawn and forkserver workers; a fork-context one
        # (the Linux default) refuses to be pickled into spawned workers.
        self._step = multiprocessing.get_context("spawn").Value("q", masker.step)

    def __call__(self, samples: list[Any]) -> tuple[Any, list[Tensor], list[Tensor]]:
        with self._step.get_lock():
            step = self._step.value
            self._step.value += 1
        masks_enc, masks_pred = self.masker.sample(len(samples), step)
        return self.base_collate(samples), masks_enc, masks_pred

    def state_dict(self) -> dict[str, int]:
        return {"step": self._step.value}

    def load_state_dict(self, state: dict[str, int]) -> None:
        with self._step.get_lock():
            self._step.value = int(state["step"])


def mask_stats(masks_enc: Sequence[Tensor], masks_pred: Sequence[Tensor], num_tokens: int) -> dict[str, float]:
    """Per spec i: `mask{i}/context_tokens`, `target_tokens`, `masking_ratio` (1 - K/N), `target_ratio` (M/N)."""
    stats: dict[str, float] = {}
    for i, (enc, pred) in enumerate(zip(masks_enc, masks_pred, strict=True)):
        k, m = enc.shape[-1], pred.shape[-1]
        stats[f"mask{i}/context_tokens"] = k
        stats[f"mask{i}/target_tokens"] = m
        stats[f"mask{i}/masking_ratio"] = 1.0 - k / num_tokens
        stats[f"mask{i}/target_ratio"] = m / num_tokens
    return stats
