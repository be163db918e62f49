"""Optimizers: each update rule as array-API reference with its NumPy and Numba variants, chosen in one
place (``kernels``), and learning-rate schedules. Like ``nn``, it knows nothing of training loops or files."""

from __future__ import annotations

from xpnet import validation
from xpnet.optim.adam import Adam
from xpnet.optim.optimizer import Optimizer
from xpnet.optim.sgd import SGD

__all__ = ["OPTIMIZERS", "SGD", "Adam", "Optimizer", "make"]

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam", "adamw")


def make(name: str, *, momentum: float | None = None, weight_decay: float = 0.0, **adam_options) -> Optimizer:
    """Build an optimizer by name. ``momentum`` defaults to 0 for "sgd" and 0.9 for "momentum" and
    "nesterov"; the Adam options (beta1, beta2, eps) apply to "adam" and "adamw"."""
    validation.choice("optimizer", name, OPTIMIZERS)
    if name == "sgd":
        return SGD(momentum=momentum or 0.0, weight_decay=weight_decay)
    if name in ("momentum", "nesterov"):
        momentum = 0.9 if momentum is None else momentum
        return SGD(momentum=momentum, nesterov=name == "nesterov", weight_decay=weight_decay)
    return Adam(weight_decay=weight_decay, decoupled=name == "adamw", **adam_options)
