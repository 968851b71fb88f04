"""V-JEPA's schedules as pure functions of the step: learning rate, weight decay, EMA momentum, clipping.

A resumed run needs nothing but the step to be back on schedule. The formulas are those of
`src/utils/schedulers.py` (WarmupCosineSchedule, CosineWDSchedule) and the momentum generator of
`app/vjepa/train.py` in facebookresearch/jepa, and V-JEPA 2's constant lr with a linear cooldown.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from teacher.config import OptimConfig


@dataclass(frozen=True, slots=True)
class Schedule:
    """lr, weight decay and EMA momentum at any step of a run of `optim.steps` steps."""

    optim: OptimConfig

    @property
    def horizon(self) -> float:
        """Steps the vjepa1 schedules are computed over (`ipe_scale` times longer than the run)."""
        return self.optim.ipe_scale * self.optim.steps

    def lr(self, step: int) -> float:
        o = self.optim
        if step < o.warmup_steps:
            return o.start_lr + (o.lr - o.start_lr) * step / o.warmup_steps
        if o.schedule == "vjepa2":
            decay_start = o.steps - o.cooldown_steps
            if o.cooldown_steps and step >= decay_start:
                return o.lr + (o.final_lr - o.lr) * min(1.0, (step - decay_start) / o.cooldown_steps)
            return o.lr
        progress = (step - o.warmup_steps) / max(1.0, self.horizon - o.warmup_steps)
        return max(o.final_lr, o.final_lr + (o.lr - o.final_lr) * 0.5 * (1.0 + math.cos(math.pi * progress)))

    def weight_decay(self, step: int) -> float:
        o = self.optim
        if o.schedule == "vjepa2":
            return o.weight_decay
        progress = step / self.horizon
        wd = o.final_weight_decay + (o.weight_decay - o.final_weight_decay) * 0.5 * (1.0 + math.cos(math.pi * progress))
        return (
            min(o.final_weight_decay, wd) if o.final_weight_decay >= o.weight_decay else max(o.final_weight_decay, wd)
        )

    def momentum(self, step: int) -> float:
        o = self.optim
        if o.schedule == "vjepa2":
            return o.ema[0]
        return o.ema[0] + step * (o.ema[1] - o.ema[0]) / self.horizon

    def clip_grad(self, step: int) -> float | None:
        """V-JEPA 1 clips only after warmup (`epoch > warmup`); 0 turns clipping off."""
        o = self.optim
        if not o.clip_grad or step < o.warmup_steps:
            return None
        return o.clip_grad
