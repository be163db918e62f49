"""The inner loops: one epoch of minibatch training, and batched evaluation.

Both keep everything on the device. Loss and correct-prediction counts are accumulated as device
scalars and only read by the caller once per epoch, so the batch loop never waits for the device.
"""

from __future__ import annotations

from dataclasses import dataclass

import array_api_compat
import numpy as np
from array_api_compat import device

from xpnet.arrays.backend import array_namespace
from xpnet.arrays.streams import RandomStream
from xpnet.errors import StateError
from xpnet.nn import losses
from xpnet.nn.network import Network
from xpnet.optim import Optimizer

EVALUATION_BATCH_SIZE = 4096


@dataclass
class EpochPosition:
    """How far training is into ``epoch`` (0-based): the batches done and their running sums, so a run
    stopped after any step continues bit for bit. The sums are device scalars (None before any batch)."""

    epoch: int
    next_batch: int = 0
    total_loss: object = None
    correct: object = None

    def state_dict(self) -> dict:
        """Epoch and batch as numbers, the running sums as arrays (``correct`` None for regression)."""
        return {
            "epoch": self.epoch,
            "next_batch": self.next_batch,
            "total_loss": self.total_loss,
            "correct": self.correct,
        }

    @classmethod
    def from_state(cls, state: dict, *, epochs_done: int, dtype: str, classify: bool, place) -> EpochPosition:
        """The position ``state_dict()`` described, checked against the run it belongs to: it is inside
        the epoch after ``epochs_done``, and its sums are scalars of the model's dtype (and int64 counts
        for a classifier), placed on the device by ``place``."""
        next_batch = state.get("next_batch")
        if state.get("epoch") != epochs_done or type(next_batch) is not int or next_batch < 1:
            raise StateError("the position inside the epoch is invalid; the file is corrupt")
        total_loss, correct = state.get("total_loss"), state.get("correct")
        if not _is_scalar(total_loss, dtype) or (classify and not _is_scalar(correct, "int64")):
            raise StateError("the running sums of the epoch are missing or malformed; the file is corrupt")
        return cls(epochs_done, next_batch, place(total_loss), None if correct is None else place(correct))


def batch_bounds(n_samples: int, batch_size: int) -> list[tuple[int, int]]:
    """``(start, stop)`` of each minibatch; the last may be smaller (no sample is dropped). Stops never
    pass the end: the array API leaves out-of-bounds slices unspecified."""
    return [(start, min(start + batch_size, n_samples)) for start in range(0, n_samples, batch_size)]


def train_epoch(
    network: Network,
    optimizer: Optimizer,
    loss_function,
    x,
    y,
    *,
    lr: float,
    batch_size: int,
    order,
    dropout_rng: RandomStream,
    classify: bool,
    on_batch_end=None,
    position: EpochPosition | None = None,
):
    """Train on every sample once, in ``order``; return device scalars (mean loss, number of correct
    predictions or None for regression). ``position`` is updated after every step; an epoch resumed
    from it skips the batches already done.

    A classifier's one-hot targets are built once in the epoch's order, and its inputs gathered in it
    once (``EpochInputs``), so that each batch is a slice of them."""
    xp = array_namespace(x)
    position = position or EpochPosition(0)
    if position.total_loss is None:
        position.total_loss = xp.zeros((), dtype=x.dtype, device=device(x))
        position.correct = xp.zeros((), dtype=xp.int64, device=device(x)) if classify else None
    inputs, y = EpochInputs(x, order), gathered(y, order)
    targets = losses.one_hot(y, network.n_outputs, x.dtype) if classify else y
    params = network.trained_parameters()
    bounds = batch_bounds(x.shape[0], batch_size)
    for start, stop in bounds[: position.next_batch]:
        # A resumed epoch replays the forward passes it skips, so dropout draws the same masks.
        network.forward(inputs.rows(start, stop), training=True, rng=dropout_rng)
    for batch in range(position.next_batch, len(bounds)):
        start, stop = bounds[batch]
        outputs = network.forward(inputs.rows(start, stop), training=True, rng=dropout_rng)
        loss, grad_outputs = loss_function(outputs, targets[start:stop, ...])
        network.backward(grad_outputs, input_gradient=False)
        optimizer.step(params, network.trained_gradients(), lr)
        position.total_loss += loss * (stop - start)
        if classify:
            position.correct += count_correct(outputs, y[start:stop])
        position.next_batch = batch + 1
        if on_batch_end is not None:
            on_batch_end(batch)
    return position.total_loss / x.shape[0], position.correct


class EpochInputs:
    """The inputs in the epoch's order, by rows. Gathered once for the whole epoch, so that a batch is a
    slice (one operation an epoch, where each operation is a kernel launch); on NumPy, each batch is
    gathered just before its step instead, while its rows stay in the CPU's cache: a gathered epoch
    goes out to memory and back, which costs config S about 8% of its epoch."""

    def __init__(self, x, order):
        self._x, self._order = x, order
        xp = array_namespace(x)
        self._gathered = None if gathers_per_batch(xp) else xp.take(x, order, axis=0)

    def rows(self, start: int, stop: int):
        if self._gathered is not None:
            return self._gathered[start:stop, ...]
        return array_namespace(self._x).take(self._x, self._order[start:stop], axis=0)


def gathers_per_batch(xp) -> bool:
    """Whether an epoch's inputs in namespace ``xp`` are gathered batch by batch (NumPy), not at once."""
    return array_api_compat.is_numpy_namespace(xp)


def gathered(array, order):
    """``array``'s rows in ``order``: one operation for a vector (integer-array indexing), a ``take``
    for a matrix (the array API indexes a matrix by integer arrays only with one per axis)."""
    if array.ndim == 1:
        return array[order]
    return array_namespace(array).take(array, order, axis=0)


def evaluate(network: Network, loss_function, x, y, *, classify: bool):
    """Mean loss and number of correct predictions (None for regression) over ``x``, as device scalars."""
    xp = array_namespace(x)
    total_loss = xp.zeros((), dtype=x.dtype, device=device(x))
    correct = xp.zeros((), dtype=xp.int64, device=device(x)) if classify else None
    for start, stop in batch_bounds(x.shape[0], EVALUATION_BATCH_SIZE):
        x_batch = x[start:stop, ...]
        y_batch = y[start:stop, ...]
        outputs = network.forward(x_batch)
        loss, _ = loss_function(outputs, y_batch)
        total_loss += loss * x_batch.shape[0]
        if classify:
            correct += count_correct(outputs, y_batch)
    return total_loss / x.shape[0], correct


def predict_outputs(network: Network, x):
    """Network outputs for ``x``, computed in evaluation-sized batches to bound memory."""
    xp = array_namespace(x)
    parts = [network.forward(x[start:stop, ...]) for start, stop in batch_bounds(x.shape[0], EVALUATION_BATCH_SIZE)]
    return parts[0] if len(parts) == 1 else xp.concat(parts, axis=0)


def _is_scalar(array, dtype: str) -> bool:
    """Whether ``array`` is a host scalar array of ``dtype`` (a NumPy array read from a file or pickle)."""
    return isinstance(array, np.ndarray) and array.shape == () and array.dtype == np.dtype(dtype)


def count_correct(outputs, labels):
    """Number of rows whose highest output is at the label (integer or one-hot labels)."""
    xp = array_namespace(outputs)
    if labels.ndim == 2:
        labels = xp.argmax(labels, axis=1)
    return xp.count_nonzero(xp.argmax(outputs, axis=1) == labels)
