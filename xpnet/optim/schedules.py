"""Learning-rate schedules: the learning rate of each epoch as a pure function of the epoch number.

Being pure functions of ``epoch`` (counted from 0 over the whole training, warm starts included), a
schedule has no state to lose: a resumed or warm-started run continues exactly where it was.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from xpnet import validation

SCHEDULES = ("constant", "step", "cosine", "invscaling", "adaptive")


@dataclass(frozen=True)
class Schedule:
    """``kind`` is constant, step (multiply by ``gamma`` every ``step_size`` epochs), cosine (decay to
    ``min_lr`` over ``total_epochs``) or invscaling (scikit-learn's: divide by ``(t + 1) ** power_t``,
    ``t`` the samples seen, ``samples_per_epoch`` an epoch); ``warmup_epochs`` ramps linearly up first.
    adaptive is constant here: its cuts depend on the loss, so ``xpnet.train.callbacks.Convergence``
    makes them."""

    kind: str = "constant"
    total_epochs: int = 1
    warmup_epochs: int = 0
    step_size: int = 10
    gamma: float = 0.1
    min_lr: float = 0.0
    power_t: float = 0.5
    samples_per_epoch: int = 1

    def __post_init__(self):
        validation.choice("schedule", self.kind, SCHEDULES)
        validation.whole("warmup_epochs", self.warmup_epochs, minimum=0)
        validation.whole("step_size", self.step_size, minimum=1)
        validation.whole("total_epochs", self.total_epochs, minimum=1)
        validation.non_negative("power_t", self.power_t)
        validation.whole("samples_per_epoch", self.samples_per_epoch, minimum=1)

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
        if self.kind == "invscaling":
            return base_lr / (after_warmup * self.samples_per_epoch + 1) ** self.power_t
        return base_lr
