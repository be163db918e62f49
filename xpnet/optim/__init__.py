"""Optimizers: each update rule as an array-API reference that returns new values, with optional
in-place variants for NumPy chosen in one place (``kernels``), and learning-rate schedules. Like ``nn``,
it knows nothing of training loops or files.

A rule lives in a module of its own here and registers its names (``optimizer.register``); every module
of this package is imported below, so a new rule is one new file."""

from __future__ import annotations

import importlib
import pkgutil

from xpnet.optim.optimizer import FULL_BATCH, OPTIMIZERS, Optimizer, make, names, register

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

from xpnet.optim.adam import Adam  # noqa: E402  (after the rules registered themselves)
from xpnet.optim.rmsprop import RMSprop  # noqa: E402
from xpnet.optim.sgd import SGD  # noqa: E402

__all__ = ["FULL_BATCH", "OPTIMIZERS", "SGD", "Adam", "Optimizer", "RMSprop", "make", "names", "register"]
