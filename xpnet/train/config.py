"""Every training setting in one validated, JSON-friendly record.

The library, the command line (``--hidden``, ``--lr``, ...), TOML config files and saved models all
use these names, so a setting means the same thing wherever it is written.
"""

from __future__ import annotations

import dataclasses
import math
import operator
from dataclasses import dataclass

import numpy as np

from xpnet import optim
from xpnet.errors import SettingError
from xpnet.nn import activations, losses
from xpnet.nn.initializers import INITIALIZERS
from xpnet.optim import schedules

DTYPES = ("float32", "float64")
# The fraction of the training data held out when early stopping is asked for without a validation
# split (scikit-learn's validation_fraction default).
EARLY_STOPPING_VAL_SPLIT = 0.1


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
        _check_choice("optimizer", self.optimizer, optim.OPTIMIZERS)
        _check_choice("schedule", self.schedule, schedules.SCHEDULES)
        _check_choice("dtype", self.dtype, DTYPES)
        for name in ("dropout", "lr", "weight_decay", "val_split"):
            _finite(name, getattr(self, name))
        if self.momentum is not None:
            _finite("momentum", self.momentum)
        if not 0.0 <= self.dropout < 1.0:
            raise SettingError(f"dropout must be in [0, 1), got {self.dropout}")
        if not self.lr > 0:
            raise SettingError(f"learning rate must be positive, got {self.lr}; try 0.001 with adam")
        if self.momentum is not None and not 0.0 <= self.momentum < 1.0:
            raise SettingError(f"momentum must be in [0, 1), got {self.momentum}")
        if self.weight_decay < 0:
            raise SettingError(f"weight decay must be >= 0, got {self.weight_decay}")
        self.batch_size = _whole("batch size", self.batch_size, minimum=1)
        self.epochs = _whole("epochs", self.epochs, minimum=1)
        if self.early_stopping is not None:
            self.early_stopping = _whole("early stopping patience (in epochs)", self.early_stopping, minimum=1)
        if not 0.0 <= self.val_split < 1.0:
            raise SettingError(f"val_split must be in [0, 1), got {self.val_split}")
        self.tf32 = _flag("tf32", self.tf32)
        self.warmup_epochs = _whole("warmup_epochs", self.warmup_epochs, minimum=0)

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
            valid = ", ".join(sorted(known))
            raise SettingError(f"unknown setting(s) {', '.join(unknown)}: valid settings are {valid}")
        return cls(**data)

    def replace(self, **changes) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def with_early_stopping_split(self) -> TrainConfig:
        """These settings, holding out ``EARLY_STOPPING_VAL_SPLIT`` of the training data when early
        stopping is on without a validation split (the command and the estimators have no other source
        of validation data)."""
        if self.early_stopping is None or self.val_split:
            return self
        return self.replace(val_split=EARLY_STOPPING_VAL_SPLIT)

    def make_optimizer(self) -> optim.Optimizer:
        return optim.make(self.optimizer, momentum=self.momentum, weight_decay=self.weight_decay)

    def make_schedule(self) -> schedules.Schedule:
        return schedules.Schedule(self.schedule, total_epochs=self.epochs, warmup_epochs=self.warmup_epochs)


def _as_sizes(hidden) -> tuple[int, ...]:
    if isinstance(hidden, int):
        hidden = (hidden,)
    try:
        sizes = tuple(int(size) for size in hidden)
    except (TypeError, ValueError):
        raise SettingError(f"hidden must be a list of layer widths such as [128, 64], got {hidden!r}") from None
    if any(size < 1 for size in sizes) or any(int(s) != s for s in hidden):
        raise SettingError(f"hidden layer widths must be positive integers, got {list(hidden)}")
    return sizes


def _whole(label: str, value, *, minimum: int) -> int:
    """``value`` as a plain int (NumPy integers too, so settings stay JSON-friendly), at least ``minimum``.
    Booleans are refused: ``True`` is an int to Python but never a count the user meant."""
    kind = "a positive integer" if minimum == 1 else "a non-negative integer"
    try:
        whole = operator.index(value)
    except TypeError:
        raise SettingError(f"{label} must be {kind}, got {value!r}") from None
    if isinstance(value, bool | np.bool_):
        raise SettingError(f"{label} must be {kind}, got {value!r}")
    if whole < minimum:
        raise SettingError(f"{label} must be {kind}, got {value!r}")
    return whole


def _finite(name: str, value) -> None:
    """Refuse NaN and infinity, which pass every range check below them (``nan < 0`` is false)."""
    try:
        finite = math.isfinite(value)
    except TypeError:
        raise SettingError(f"{name} must be a number, got {value!r}") from None
    if not finite:
        raise SettingError(f"{name} must be a finite number, got {value!r}")


def _flag(name: str, value) -> bool:
    """``value`` as a plain bool (NumPy's ``bool_`` too, as grid searches over arrays produce)."""
    if isinstance(value, bool | np.bool_):
        return bool(value)
    raise SettingError(f"{name} must be true or false, got {value!r}")


def _check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise SettingError(f"unknown {name} {value!r}: choose one of {', '.join(choices)}")
