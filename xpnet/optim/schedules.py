"""Learning-rate schedules: the learning rate of each epoch as a pure function of the epoch number.

Being pure functions of ``epoch`` (counted from 0 over the whole training, warm starts included), a
schedule has no state to lose: a resumed or warm-started run continues exactly where it was.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from xpnet import validation

SCHEDULES = ("constant", "step", "cosine")


@dataclass(frozen=True)
class Schedule:
    """``kind`` is constant, step (multiply by ``gamma`` every ``step_size`` epochs) or cosine
    (decay to ``min_lr`` over ``total_epochs``); ``warmup_epochs`` ramps linearly up first."""

    kind: str = "constant"
    total_epochs: int = 1
    warmup_epochs: int = 0
    step_size: int = 10
    gamma: float = 0.1
    min_lr: float = 0.0

    def __post_init__(self):
        validation.choice("schedule", self.kind, SCHEDULES)
        validation.whole("warmup_epochs", self.warmup_epochs, minimum=0)
        validation.whole("step_size", self.step_size, minimum=1)
        validation.whole("total_epochs", self.total_epochs, minimum=1)

    def lr(self, base_lr: float, epoch: int) -> float:
        """Learning rate for ``epoch`` (0-based)."""
        if epoch < self.warmup_epochs:
            return base_lr * (epoch + 1) / (self.warmup_epochs + 1)
        after_warmup = epoch - self.warmup_epochs
        if self.kind == "step":
            return base_lr * self.gamma ** (after_warmup // self.step_size)
        if self.kind == "cosine":
            span = max(self.total_epochs - self.warmup_epochs, 1)
            progress = min(after_warmup / span, 1.0)
            return self.min_lr + (base_lr - self.min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))
        return base_lr
