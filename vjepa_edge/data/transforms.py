"""Clip transforms: uint8 frames [T, H, W, 3] -> normalised float [3, T, size, size].

The same crop and flip apply to every frame of a clip, as in V-JEPA. Randomness comes from an explicit
`torch.Generator`, so a sample is a pure function of (seed, epoch, index) and resumed runs see the same data.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from vjepa_edge.data.config import AugmentConfig

Mode = Literal["train", "eval", "none"]


def sample_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """The generator of one sample's random draws: the same for (seed, epoch, index) in every process and run."""
    state = np.random.SeedSequence([seed, epoch, index]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def _rrc_box(
    height: int, width: int, scale: tuple[float, float], ratio: tuple[float, float], g: torch.Generator
) -> tuple[int, int, int, int]:
    """torchvision's RandomResizedCrop.get_params with an explicit generator: (top, left, h, w)."""
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        u = torch.rand(2, generator=g).tolist()
        target_area = area * (scale[0] + u[0] * (scale[1] - scale[0]))
        aspect = math.exp(log_ratio[0] + u[1] * (log_ratio[1] - log_ratio[0]))
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(torch.randint(0, height - h + 1, (1,), generator=g))
            left = int(torch.randint(0, width - w + 1, (1,), generator=g))
            return top, left, h, w
    # Fallback: the largest centred crop within the aspect range.
    in_ratio = width / height
    if in_ratio < ratio[0]:
        w, h = width, int(round(width / ratio[0]))
    elif in_ratio > ratio[1]:
        h, w = height, int(round(height * ratio[1]))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear, antialiased resize of [T, C, H, W] float frames."""
    if tuple(x.shape[-2:]) == size:
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)


class ClipTransform:
    """Crop, resize, flip and normalise a clip.

    `train`: V-JEPA's random-resized crop + horizontal flip. `eval`: resize the short side to
    `size * eval_resize_ratio` and centre-crop. `none`: resize to `size` (frames that are already the right
    size pass through) and normalise; the physics generator renders at the model's size and uses this.
    """

    def __init__(self, size: int, mode: Mode = "eval", augment: AugmentConfig | None = None) -> None:
        if mode not in ("train", "eval", "none"):
            raise ValueError(f"mode must be train, eval or none, not {mode!r}")
        self.size = size
        self.mode = mode
        self.augment = augment or AugmentConfig()
        self._mean = torch.tensor(self.augment.mean).view(3, 1, 1, 1) * 255.0
        self._std = torch.tensor(self.augment.std).view(3, 1, 1, 1) * 255.0

    def __call__(
        self, frames: np.ndarray | torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, bool]:
        """Return (clip [3, T, size, size] float32, flipped)."""
        x = torch.as_tensor(frames)
        if x.ndim != 4 or x.shape[-1] != 3:
            raise ValueError(f"expected frames [T, H, W, 3], got {tuple(x.shape)}")
        x = x.permute(0, 3, 1, 2).float()  # [T, 3, H, W]
        height, width = x.shape[-2:]
        flipped = False
        if self.mode == "train":
            g = generator if generator is not None else torch.Generator().manual_seed(0)
            top, left, h, w = _rrc_box(height, width, self.augment.rrc_scale, self.augment.rrc_ratio, g)
            x = _resize(x[..., top : top + h, left : left + w], (self.size, self.size))
            flipped = bool(torch.rand(1, generator=g).item() < self.augment.hflip)
            if flipped:
                x = x.flip(-1)
        elif self.mode == "eval":
            short = round(self.size * self.augment.eval_resize_ratio)
            scale = short / min(height, width)
            x = _resize(x, (max(self.size, round(height * scale)), max(self.size, round(width * scale))))
            top = (x.shape[-2] - self.size) // 2
            left = (x.shape[-1] - self.size) // 2
            x = x[..., top : top + self.size, left : left + self.size]
        else:
            x = _resize(x, (self.size, self.size))
        x = x.permute(1, 0, 2, 3)  # [3, T, H, W]
        return ((x - self._mean) / self._std).contiguous(), flipped
