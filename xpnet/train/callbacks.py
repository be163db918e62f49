"""Small objects that watch training: early stopping, test-set metrics, and your own.

``Model.fit`` calls each hook at the matching moment. ``on_epoch_end`` receives the epoch's record
(the dict appended to the history) and may return True to stop training after that epoch.
"""

from __future__ import annotations

import math

import numpy as np

from xpnet import validation
from xpnet.arrays.backend import array_namespace
from xpnet.errors import StateError, XpnetError
from xpnet.train.config import EARLY_STOPPING_PATIENCE

# A model's state names the best weights so: ``best/<layer>.<name>``.
BEST_PREFIX = "best/"
NEEDS_VALIDATION = "early stopping needs validation data: set val_split (e.g. 0.1) or pass validation_data"


class Callback:
    """Base class with no-op hooks; override the ones you need and pass the object to ``Model.fit``."""

    def on_train_begin(self, model, epochs: int) -> None:
        """Called once before the first epoch of a ``fit`` call, with the model and the epochs it will train."""

    def on_epoch_begin(self, epoch: int, n_batches: int) -> None:
        """Called before each epoch, with its number (counted from 1 over the model's life) and its batches."""

    def on_batch_end(self, batch: int) -> None:
        """Called after each optimizer step, with the batch's index within the epoch."""

    def on_epoch_end(self, record: dict) -> bool | None:
        """Called after each epoch with its record (the dict appended to the history).

        Returns:
            True to stop training after this epoch; None or False to go on.
        """

    def on_train_end(self, model) -> None:
        """Called once when the ``fit`` call's training ends (all epochs, or stopped)."""


class EarlyStopping(Callback):
    """Stop when the validation loss has not improved for ``patience`` epochs, then put back the best weights.

    ``Model`` adds one itself for the ``early_stopping`` setting.

    Args:
        patience: Epochs without improvement before stopping.
        restore_best: Put back the weights of the best epoch when training stops.
        min_delta: The least decrease of the validation loss that counts as an improvement.

    Raises:
        SettingError: ``patience`` is not a whole number of at least 1.
    """

    def __init__(self, patience: int, *, restore_best: bool = True, min_delta: float = 0.0):
        self.patience = validation.whole(EARLY_STOPPING_PATIENCE, patience, minimum=1)
        self.restore_best = restore_best
        self.min_delta = min_delta
        # Kept across fit calls (and saved in checkpoints), so a resumed run keeps counting.
        self.best_loss = math.inf
        self.best_epoch = None
        self.best_parameters = None
        self.epochs_without_improvement = 0

    def state_dict(self) -> dict:
        """What a resumed run needs to keep counting: the best loss and its epoch, the epochs since,
        and the best weights (arrays, or None before the first improvement or without restore_best)."""
        return {
            "best_loss": self.best_loss,
            "best_epoch": self.best_epoch,
            "epochs_without_improvement": self.epochs_without_improvement,
            "best_parameters": self.best_parameters,
        }

    def load_state_dict(self, state: dict, place) -> None:
        """Adopt ``state_dict()``'s values, checked; ``place`` puts the best weights on the device (their
        shapes are the caller's to check against the network)."""
        if (
            not {"best_loss", "best_epoch", "epochs_without_improvement"} <= state.keys()
            or type(state.get("best_loss")) not in (int, float)
            or (state.get("best_epoch") is not None and type(state.get("best_epoch")) is not int)
            or type(state.get("epochs_without_improvement")) is not int
            or state["epochs_without_improvement"] < 0
        ):
            raise StateError("the early-stopping state is malformed; the file is corrupt")
        self.best_loss = state["best_loss"]
        self.best_epoch = state["best_epoch"]
        self.epochs_without_improvement = state["epochs_without_improvement"]
        best = state.get("best_parameters")
        self.best_parameters = None if best is None else [place(array) for array in best]

    def state_arrays(self, parameter_names: list[str]) -> dict:
        """``state_dict()`` as a model's state holds it: the counters under ``early_stopping``, and the best
        weights as ``best/<parameter name>`` arrays."""
        counters = self.state_dict()
        best = counters.pop("best_parameters")
        arrays = {} if best is None else {BEST_PREFIX + name: array for name, array in zip(parameter_names, best)}
        return {"early_stopping": counters, **arrays}

    def load_state_arrays(self, state: dict, parameters: dict, place) -> set[str]:
        """Adopt what ``state_arrays`` wrote into ``state`` (host arrays from a file), the best weights
        checked against ``parameters`` (name to host array); returns the names used."""
        counters = state.get("early_stopping")
        if counters is None:
            return set()
        if not isinstance(counters, dict):
            raise StateError("the early-stopping state is malformed; the file is corrupt")
        names = [BEST_PREFIX + name for name in parameters]
        best = [state.get(name) for name in names]
        if all(array is None for array in best):
            best = None
        else:
            for array, parameter in zip(best, parameters.values()):
                if not (
                    isinstance(array, np.ndarray) and array.shape == parameter.shape and array.dtype == parameter.dtype
                ):
                    raise StateError("the best weights kept by early stopping do not match the model")
        self.load_state_dict({**counters, "best_parameters": best}, place)
        return set(names) if best is not None else set()

    @property
    def stopped(self) -> bool:
        """True once ``patience`` epochs passed without improvement."""
        return self.epochs_without_improvement >= self.patience

    def on_train_begin(self, model, epochs):
        self.network = model.network

    def on_train_end(self, model):
        if self.restore_best and self.best_parameters is not None:
            # Copies: training may continue in place, and the best weights must stay as they were.
            model.network.set_parameters([array_namespace(p).asarray(p, copy=True) for p in self.best_parameters])
        self.network = None

    def on_epoch_end(self, record):
        if record.get("val_loss") is None:
            raise XpnetError(NEEDS_VALIDATION)
        if record["val_loss"] < self.best_loss - self.min_delta:
            self.best_loss = record["val_loss"]
            self.best_epoch = record["epoch"]
            self.epochs_without_improvement = 0
            if self.restore_best:
                self.best_parameters = self.network.copy_parameters()
            return False
        self.epochs_without_improvement += 1
        return self.stopped


class Convergence(Callback):
    """scikit-learn's stopping rule: an epoch whose ``monitor`` value is not better than the best so far
    by more than ``tol`` counts as no improvement (any other resets the count); once more than
    ``patience`` epochs in a row count, training stops (``converged``), or with ``adaptive`` the
    learning rate is divided by 5 instead (``lr_scale``) until it is at most ``MIN_ADAPTIVE_LR``.

    The training loss is lower-is-better; a score (``higher_is_better``, such as scikit-learn's
    validation accuracy) is the other way, and then the best epoch's weights are put back at the end."""

    MIN_ADAPTIVE_LR = 1e-6

    def __init__(self, tol: float, patience: float, *, monitor="train_loss", higher_is_better=False, adaptive=False):
        self.tol = validation.non_negative("tol", tol)
        self.patience = patience
        self.monitor, self.sign, self.adaptive = monitor, -1.0 if higher_is_better else 1.0, adaptive
        # Kept across fit calls, as scikit-learn keeps them across warm starts and partial_fit calls.
        self.best = math.inf
        self.no_improvement_count = 0
        self.lr_scale = 1.0
        self.converged = False
        self.best_parameters = None

    @property
    def best_value(self) -> float:
        """The best value of ``monitor`` seen, in its own sign."""
        return self.sign * self.best

    def on_train_begin(self, model, epochs):
        self.model, self.converged = model, False

    def on_epoch_end(self, record):
        value = self.sign * record[self.monitor]
        if value > self.best - self.tol:
            self.no_improvement_count += 1
        else:
            self.no_improvement_count = 0
        if value < self.best:
            self.best = value
            if self.sign < 0:
                self.best_parameters = self.model.network.copy_parameters()
        if self.no_improvement_count <= self.patience:
            return False
        if self.adaptive and self.model.config.lr * self.lr_scale > self.MIN_ADAPTIVE_LR:
            self.lr_scale /= 5.0
            self.no_improvement_count = 0
            return False
        self.converged = True
        return True

    def on_train_end(self, model):
        if self.best_parameters is not None:
            model.network.set_parameters([array_namespace(p).asarray(p, copy=True) for p in self.best_parameters])
        self.model = None


class TestSetMetrics(Callback):
    """Adds ``test_loss`` and ``test_accuracy`` to each epoch's record: a held-out test set measured
    after every epoch, never trained or early-stopped on. Its arrays are placed on the device once."""

    def __init__(self, x_test, y_test):
        self.x_test, self.y_test = x_test, y_test

    def on_train_begin(self, model, epochs):
        self.model = model
        self.x_test = model.backend.asarray(self.x_test, dtype=model.dtype)
        self.y_test = model.backend.asarray(self.y_test)

    def on_epoch_end(self, record):
        result = self.model.evaluate(self.x_test, self.y_test)
        record["test_loss"], record["test_accuracy"] = result["loss"], result["accuracy"]
