"""Small objects that watch training: early stopping, progress output, and your own.

``Model.fit`` calls each hook at the matching moment. ``on_epoch_end`` receives the epoch's record
(the dict appended to the history) and may return True to stop training after that epoch.
"""

from __future__ import annotations

import math
import sys

from xpnet.arrays.backend import array_namespace
from xpnet.errors import XpnetError

NEEDS_VALIDATION = "early stopping needs validation data: set val_split (e.g. 0.1) or pass validation_data"


class Callback:
    """Base class with no-op hooks; override the ones you need."""

    def on_train_begin(self, model, epochs: int) -> None:
        pass

    def on_epoch_begin(self, epoch: int, n_batches: int) -> None:
        pass

    def on_batch_end(self, batch: int) -> None:
        pass

    def on_epoch_end(self, record: dict) -> bool | None:
        pass

    def on_train_end(self, model) -> None:
        pass


class EarlyStopping(Callback):
    """Stop when the validation loss has not improved for ``patience`` epochs, then put back the
    weights of the best epoch (``restore_best``)."""

    def __init__(self, patience: int, *, restore_best: bool = True, min_delta: float = 0.0):
        if patience < 1:
            raise XpnetError(f"early stopping patience must be >= 1 epoch, got {patience}")
        self.patience = patience
        self.restore_best = restore_best
        self.min_delta = min_delta
        # Kept across fit calls (and saved in checkpoints), so a resumed run keeps counting.
        self.best_loss = math.inf
        self.best_epoch = None
        self.best_parameters = None
        self.epochs_without_improvement = 0

    def __getstate__(self) -> dict:
        """Copies and pickles leave out the model being trained (it holds the array library, and
        ``on_train_begin`` sets it again)."""
        state = dict(vars(self))
        state.pop("model", None)
        return state

    @property
    def stopped(self) -> bool:
        """True once ``patience`` epochs passed without improvement."""
        return self.epochs_without_improvement >= self.patience

    def on_train_begin(self, model, epochs):
        self.model = model

    def on_epoch_end(self, record):
        if record.get("val_loss") is None:
            raise XpnetError(NEEDS_VALIDATION)
        if record["val_loss"] < self.best_loss - self.min_delta:
            self.best_loss = record["val_loss"]
            self.best_epoch = record["epoch"]
            self.epochs_without_improvement = 0
            if self.restore_best:
                self.best_parameters = self.model.network.copy_parameters()
            return False
        self.epochs_without_improvement += 1
        return self.stopped

    def on_train_end(self, model):
        if self.restore_best and self.best_parameters is not None:
            # Copies: training may continue in place, and the best weights must stay as they were.
            model.network.set_parameters([array_namespace(p).asarray(p, copy=True) for p in self.best_parameters])


class EpochPrinter(Callback):
    """One line per epoch: losses, accuracies, learning rate and time."""

    def __init__(self, stream=None):
        self.stream = stream

    def on_epoch_end(self, record):
        parts = [f"epoch {record['epoch']:>3}"]
        for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy"):
            value = record.get(key)
            if value is not None:
                shown = f"{100 * value:6.2f}%" if key.endswith("accuracy") else f"{value:.4f}"
                parts.append(f"{key} {shown}")
        parts.append(f"lr {record['lr']:.3g}")
        parts.append(f"{record['seconds']:.2f}s")
        print("  ".join(parts), file=self.stream or sys.stdout, flush=True)
