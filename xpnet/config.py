"""Every training setting in one validated, JSON-friendly record.

The library, the command line (``--hidden``, ``--lr``, ...), TOML config files and saved models all
use these names, so a setting means the same thing wherever it is written.
"""

from __future__ import annotations

import dataclasses
import operator
from dataclasses import dataclass

from xpnet import activations, losses, optimizers, schedules
from xpnet.errors import XpnetError
from xpnet.initializers import INITIALIZERS

DTYPES = ("float32", "float64")


@dataclass
class TrainConfig:
    """Network shape, optimizer and training-loop settings (see the README for each one)."""

    hidden: tuple[int, ...] = (128,)
    activation: str = "relu"
    init: str = "auto"
    dropout: float = 0.0
    loss: str = "cross_entropy"
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float | None = None
    weight_decay: float = 0.0
    schedule: str = "constant"
    warmup_epochs: int = 0
    batch_size: int = 32
    epochs: int = 30
    early_stopping: int | None = None
    val_split: float = 0.0
    seed: int = 0
    dtype: str = "float32"
    tf32: bool = False

    def __post_init__(self):
        self.hidden = _as_sizes(self.hidden)
        self.seed = _whole("seed", self.seed, minimum=0)
        _check_choice("activation", self.activation, activations.ACTIVATIONS)
        _check_choice("init", self.init, ("auto", *INITIALIZERS))
        _check_choice("loss", self.loss, losses.LOSSES)
        _check_choice("optimizer", self.optimizer, optimizers.OPTIMIZERS)
        _check_choice("schedule", self.schedule, schedules.SCHEDULES)
        _check_choice("dtype", self.dtype, DTYPES)
        if not 0.0 <= self.dropout < 1.0:
            raise XpnetError(f"dropout must be in [0, 1), got {self.dropout}")
        if not self.lr > 0:
            raise XpnetError(f"learning rate must be positive, got {self.lr}; try 0.001 with adam")
        if self.momentum is not None and not 0.0 <= self.momentum < 1.0:
            raise XpnetError(f"momentum must be in [0, 1), got {self.momentum}")
        if self.weight_decay < 0:
            raise XpnetError(f"weight decay must be >= 0, got {self.weight_decay}")
        self.batch_size = _whole("batch size", self.batch_size, minimum=1)
        self.epochs = _whole("epochs", self.epochs, minimum=1)
        if self.early_stopping is not None and self.early_stopping < 1:
            raise XpnetError(f"early stopping patience must be >= 1 epoch, got {self.early_stopping}")
        if not 0.0 <= self.val_split < 1.0:
            raise XpnetError(f"val_split must be in [0, 1), got {self.val_split}")
        if not isinstance(self.tf32, bool):
            raise XpnetError(f"tf32 must be true or false, got {self.tf32!r}")
        if self.warmup_epochs < 0:
            raise XpnetError(f"warmup_epochs must be >= 0, got {self.warmup_epochs}")

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["hidden"] = list(self.hidden)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        """Build from a mapping, naming any unknown key instead of ignoring it."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise XpnetError(f"unknown setting(s) {', '.join(unknown)}: valid settings are {', '.join(sorted(known))}")
        return cls(**data)

    def replace(self, **changes) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def make_optimizer(self) -> optimizers.Optimizer:
        return optimizers.make(self.optimizer, momentum=self.momentum, weight_decay=self.weight_decay)

    def make_schedule(self) -> schedules.Schedule:
        return schedules.Schedule(self.schedule, total_epochs=self.epochs, warmup_epochs=self.warmup_epochs)


def _as_sizes(hidden) -> tuple[int, ...]:
    if isinstance(hidden, int):
        hidden = (hidden,)
    try:
        sizes = tuple(int(size) for size in hidden)
    except (TypeError, ValueError):
        raise XpnetError(f"hidden must be a list of layer widths such as [128, 64], got {hidden!r}") from None
    if any(size < 1 for size in sizes) or any(int(s) != s for s in hidden):
        raise XpnetError(f"hidden layer widths must be positive integers, got {list(hidden)}")
    return sizes


def _whole(label: str, value, *, minimum: int) -> int:
    """``value`` as a plain int (NumPy integers too, so settings stay JSON-friendly), at least ``minimum``."""
    kind = "a positive integer" if minimum == 1 else "a non-negative integer"
    try:
        whole = operator.index(value)
    except TypeError:
        raise XpnetError(f"{label} must be {kind}, got {value!r}") from None
    if whole < minimum:
        raise XpnetError(f"{label} must be {kind}, got {value!r}")
    return whole


def _check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise XpnetError(f"unknown {name} {value!r}: choose one of {', '.join(choices)}")
