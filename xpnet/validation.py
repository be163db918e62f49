"""One rule for each kind of setting, used wherever a setting enters: ``TrainConfig``, an optimizer, a
layer, a schedule, a callback, the command line. A bad value raises ``SettingError`` (a ``ValueError``)
with the same words from every door, naming the setting, the value and what it must be."""

from __future__ import annotations

import math
import operator

import numpy as np

from xpnet.errors import SettingError


def whole(label: str, value, *, minimum: int) -> int:
    """``value`` as a plain int (NumPy integers too, so settings stay JSON-friendly), at least ``minimum``.
    Booleans are refused: ``True`` is an int to Python but never a count the user meant."""
    kind = (
        "a positive integer"
        if minimum == 1
        else "a non-negative integer"
        if minimum == 0
        else f"an integer >= {minimum}"
    )
    try:
        number = operator.index(value)
    except TypeError:
        raise SettingError(f"{label} must be {kind}, got {value!r}") from None
    if isinstance(value, bool | np.bool_) or number < minimum:
        raise SettingError(f"{label} must be {kind}, got {value!r}")
    return number


def finite(label: str, value) -> float:
    """``value`` as a float; NaN and infinity are refused, since they pass every range check after them
    (``nan < 0`` is false)."""
    try:
        is_finite = math.isfinite(value)
    except TypeError:
        raise SettingError(f"{label} must be a number, got {value!r}") from None
    if not is_finite:
        raise SettingError(f"{label} must be a finite number, got {value!r}")
    return value


def fraction(label: str, value) -> float:
    """A finite number in [0, 1): a dropout rate, a momentum, an Adam beta, a validation split."""
    if not 0.0 <= finite(label, value) < 1.0:
        raise SettingError(f"{label} must be in [0, 1), got {value}")
    return value


def non_negative(label: str, value) -> float:
    """A finite number >= 0 (weight decay)."""
    if finite(label, value) < 0:
        raise SettingError(f"{label} must be >= 0, got {value}")
    return value


def learning_rate(value) -> float:
    """A finite learning rate above 0, with a value to start from."""
    if not finite("lr", value) > 0:
        raise SettingError(f"learning rate must be positive, got {value}; try 0.001 with adam")
    return value


def flag(label: str, value) -> bool:
    """``value`` as a plain bool (NumPy's ``bool_`` too, as grid searches over arrays produce)."""
    if isinstance(value, bool | np.bool_):
        return bool(value)
    raise SettingError(f"{label} must be true or false, got {value!r}")


def choice(label: str, value, choices) -> str:
    """One of the names ``choices``; anything else is refused with the list."""
    if not isinstance(value, str) or value not in choices:
        raise SettingError(f"unknown {label} {value!r}: choose one of {', '.join(choices)}")
    return value
