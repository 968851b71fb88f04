"""What a clip is: frames, crop size, temporal sampling, and the augmentation applied to it.

Frozen, keyword-only dataclasses that validate every field at once (torchao's config style). Recipes and
teacher configs embed them; the data sources, transforms and benchmarks read them.
"""

from __future__ import annotations

from dataclasses import dataclass

from vjepa_edge.config import MAX_FPS, MAX_FRAMES, MAX_SIZE, check_count, check_number
from vjepa_edge.errors import ConfigError


def _range(name: str, value: tuple[float, float], lo: float, hi: float, problems: list[str]) -> None:
    if len(value) != 2 or not (lo <= value[0] <= value[1] <= hi):
        problems.append(f"{name}={value!r}: need two numbers lo <= hi within [{lo}, {hi}]")


@dataclass(frozen=True, kw_only=True, slots=True)
class ClipSpec:
    """The clip a model takes: `frames` frames of `size`x`size` pixels.

    Temporal sampling follows V-JEPA: either a fixed `frame_step` between sampled source frames (V-JEPA 1,
    default 4) or a target `fps` (V-JEPA 2; the step becomes `ceil(video_fps) // fps`). Exactly one is set.
    The physics generator renders at `fps` when it is set and at its own default otherwise.
    """

    frames: int = 16
    size: int = 64
    frame_step: int | None = 4
    fps: float | None = None

    def __post_init__(self) -> None:
        problems: list[str] = []
        check_count("frames", self.frames, problems, maximum=MAX_FRAMES)
        check_count("size", self.size, problems, minimum=8, maximum=MAX_SIZE)
        if (self.frame_step is None) == (self.fps is None):
            problems.append(f"frame_step={self.frame_step!r}, fps={self.fps!r}: set exactly one of frame_step and fps")
        if self.frame_step is not None:
            check_count("frame_step", self.frame_step, problems, maximum=1000)
        if self.fps is not None:
            check_number("fps", self.fps, problems, maximum=MAX_FPS)
        if problems:
            raise ConfigError("invalid clip spec", problems=problems)

    def step_for(self, video_fps: float) -> int:
        """Source frames between two sampled frames for a video at `video_fps` (V-JEPA 2's rule for fps)."""
        if self.frame_step is not None:
            return self.frame_step
        import math

        return max(1, math.ceil(video_fps) // max(1, round(self.fps)))


@dataclass(frozen=True, kw_only=True, slots=True)
class AugmentConfig:
    """Training augmentation of V-JEPA pretraining (`app/vjepa/transforms.py`) and the evaluation resize.

    Training: one random-resized crop for the whole clip (area `rrc_scale`, aspect `rrc_ratio`), horizontal
    flip with probability `hflip`, ImageNet normalisation. Evaluation: resize the short side to
    `size * eval_resize_ratio`, then centre-crop `size`.
    """

    rrc_scale: tuple[float, float] = (0.3, 1.0)
    rrc_ratio: tuple[float, float] = (0.75, 1.35)
    hflip: float = 0.5
    eval_resize_ratio: float = 256 / 224
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)

    def __post_init__(self) -> None:
        problems: list[str] = []
        _range("rrc_scale", self.rrc_scale, 0.01, 1.0, problems)
        _range("rrc_ratio", self.rrc_ratio, 0.1, 10.0, problems)
        check_number("hflip", self.hflip, problems, positive=False, maximum=1.0)
        if not 1.0 <= self.eval_resize_ratio <= 2.0:
            problems.append(f"eval_resize_ratio={self.eval_resize_ratio!r}: need a number in [1, 2]")
        if len(self.mean) != 3 or len(self.std) != 3 or any(s <= 0 for s in self.std):
            problems.append("mean/std: need three numbers each, std positive")
        if problems:
            raise ConfigError("invalid augmentation", problems=problems)
