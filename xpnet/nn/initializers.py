"""Weight initialisation schemes (He for ReLU-like activations, Glorot for tanh and sigmoid).

Each scheme fixes the variance of the initial weights from the layer's fan-in and fan-out, so that
activations neither vanish nor explode through depth; "normal" and "uniform" draw with that variance.
"""

from __future__ import annotations

import math

from xpnet import validation
from xpnet.arrays.streams import RandomStream


def _he_variance(fan_in: int, fan_out: int) -> float:
    return 2.0 / fan_in


def _glorot_variance(fan_in: int, fan_out: int) -> float:
    return 2.0 / (fan_in + fan_out)


_VARIANCES = {"he": _he_variance, "glorot": _glorot_variance}
INITIALIZERS = tuple(f"{scheme}_{shape}" for scheme in _VARIANCES for shape in ("normal", "uniform"))


def initial_weights(name: str, fan_in: int, fan_out: int, dtype, rng: RandomStream):
    """A ``(fan_in, fan_out)`` weight matrix drawn by the scheme ``name``, e.g. ``"he_normal"``."""
    scheme, _, distribution = validation.choice("init", name, INITIALIZERS).partition("_")
    std = math.sqrt(_VARIANCES[scheme](fan_in, fan_out))
    shape = (fan_in, fan_out)
    if distribution == "normal":
        return std * rng.normal(shape, dtype)
    limit = math.sqrt(3.0) * std  # a uniform on [-limit, limit] has variance limit**2 / 3
    return (2.0 * limit) * rng.uniform(shape, dtype) - limit
