"""`InputSpec`: the input contract a model owns (frames, size, tubelet, patch, channels, mean/std, layout).

Data transforms, calibration, export, verification and profiling read it from the model (`model.input_spec`)
instead of repeating numbers from a recipe. It validates itself, round-trips through a dict, makes the model's
example inputs and adapts a clip of another input (the teacher's) to the one the model takes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from vjepa_edge.errors import ConfigError
from vjepa_edge.models.arch import IMAGENET_MEAN, IMAGENET_STD, AnyEncoderArch, TimmEncoderArch, _Record

LAYOUTS = ("BCTHW",)  # what every encoder's forward takes; listed so that a record of another is refused


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


@dataclass(frozen=True, kw_only=True, slots=True)
class InputSpec(_Record):
    """Clips of `frames` frames at `size` x `size` px with `channels` channels, normalised with `mean`/`std`.

    `tubelet` x `patch` x `patch` pixels make one token. A ViT's token grid is (frames/tubelet, size/patch,
    size/patch). A timm backbone has no patch: `patch` is its measured stride and `feature_grid` the (h, w) of
    its feature map at `size`, which the grid then uses (a CNN's map need not be size/stride on a side).
    """

    frames: int
    size: int
    tubelet: int
    patch: int
    channels: int = 3
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    layout: str = "BCTHW"
    feature_grid: tuple[int, ...] | None = None  # timm students only; None: size // patch on both sides

    def __post_init__(self) -> None:
        p = [
            f"{name} must be a positive integer, got {getattr(self, name)!r}"
            for name in ("frames", "size", "tubelet", "patch", "channels")
            if not _positive_int(getattr(self, name))
        ]
        if p:
            raise ConfigError("invalid input spec", problems=p)
        if self.frames % self.tubelet:
            p.append(f"frames {self.frames} is not a multiple of tubelet {self.tubelet}")
        if self.feature_grid is None and self.size % self.patch:
            p.append(f"size {self.size} is not a multiple of patch {self.patch}")
        if self.feature_grid is not None and (
            len(self.feature_grid) != 2 or not all(_positive_int(g) for g in self.feature_grid)
        ):
            p.append(f"feature_grid must be two positive integers (h, w), got {self.feature_grid!r}")
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            p.append(
                f"mean and std need {self.channels} values (one per channel), got {len(self.mean)} and {len(self.std)}"
            )
        elif any(s <= 0 for s in self.std):
            p.append(f"std values must be positive, got {list(self.std)}")
        if self.layout not in LAYOUTS:
            p.append(f"layout must be one of {', '.join(map(repr, LAYOUTS))}, got {self.layout!r}")
        if p:
            raise ConfigError("invalid input spec", problems=p)

    @classmethod
    def from_arch(cls, arch: AnyEncoderArch) -> InputSpec:
        """The input contract of an encoder architecture record (a ViT's, or a timm student's)."""
        if isinstance(arch, TimmEncoderArch):
            patch, grid = arch.stride, tuple(arch.feature_grid)
        else:
            patch, grid = arch.patch_size, None
        return cls(
            frames=arch.num_frames,
            size=arch.img_size,
            tubelet=arch.tubelet_size,
            patch=patch,
            channels=arch.in_chans,
            mean=tuple(arch.mean),
            std=tuple(arch.std),
            feature_grid=grid,
        )

    def shape(self, batch: int = 1) -> tuple[int, ...]:
        """The input shape [B, C, T, H, W]."""
        return (batch, self.channels, self.frames, self.size, self.size)

    @property
    def grid(self) -> tuple[int, int, int]:
        """Token grid (T', H', W') of this input."""
        h, w = self.feature_grid or (self.size // self.patch, self.size // self.patch)
        return self.frames // self.tubelet, h, w

    @property
    def num_tokens(self) -> int:
        t, h, w = self.grid
        return t * h * w

    def example_inputs(self, batch: int = 1, *, seed: int = 0) -> tuple[Tensor]:
        """A random float32 clip of `shape(batch)`, the same for the same seed (export and verification compare)."""
        g = torch.Generator().manual_seed(seed)
        return (torch.randn(self.shape(batch), generator=g, dtype=torch.float32),)

    def adapt(self, clip: Tensor) -> Tensor:
        """A clip [B, C, T, H, W] of another input (the teacher's) as this model sees it: every (T/frames)-th
        frame, resized (bilinear, antialiased) to `size` when H, W differ; contiguous."""
        if clip.dim() != 5:
            raise ValueError(f"expected a clip [B, C, T, H, W], got shape {list(clip.shape)}")
        B, C, T, H, W = clip.shape
        frames, size = self.frames, self.size
        if T == 0 or T % frames:
            divisors = ", ".join(str(d) for d in range(1, T + 1) if T % d == 0)
            other = f", or a model of {divisors} frames" if T else ""
            raise ConfigError(
                f"this model takes {frames} frames, which do not divide the clip's {T}",
                hint=f"use clips of a multiple of {frames} frames{other}",
            )
        x = clip[:, :, :: T // frames]
        if (H, W) != (size, size):
            x = x.transpose(1, 2).reshape(B * frames, C, H, W)
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
            x = x.reshape(B, frames, C, size, size).transpose(1, 2)
        return x.contiguous()
