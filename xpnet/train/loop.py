"""The inner loops: one epoch of minibatch training, and batched evaluation.

Both keep everything on the device. A training step keeps its outputs, and the epoch's loss and
correct predictions are computed from them once, at its end (or when a callback asks), so the batch
loop does no more than train and never waits for the device.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import array_api_compat
import numpy as np
from array_api_compat import device

from xpnet.arrays.backend import array_namespace, default_integer
from xpnet.arrays.flat import copied
from xpnet.arrays.streams import RandomStream
from xpnet.errors import StateError, XpnetError
from xpnet.nn import losses
from xpnet.nn.losses import Loss
from xpnet.nn.network import Network
from xpnet.optim import Optimizer

EVALUATION_BATCH_SIZE = 4096


class EpochResult(NamedTuple):
    """An epoch's training, as device scalars: the mean loss over its samples (each taken before the
    step that learned from it), the number of correct predictions (None for regression), if asked
    for, the summed loss of its first batch under the weights it ends with, which the training loss
    never saw (its last step can break them), and for a model's first epoch, whether its first step
    left every parameter unchanged although a gradient was not zero (``stalled``: an array library
    that did not take the update)."""

    mean_loss: object
    correct: object
    final_loss: object = None
    stalled: object = None


@dataclass
class EpochPosition:
    """How far training is into ``epoch`` (0-based): the batches done, and the outputs the steps kept,
    from which the epoch's loss and correct predictions are summed, all at once, whenever asked. So a
    run stopped after any step continues bit for bit: the sums are taken over the same outputs, in one
    piece, however the epoch was cut.

    ``carried`` holds the sums ``(total_loss, correct)`` of the first ``carried_rows`` samples, whose
    outputs were not kept: what a checkpoint written before outputs were kept held instead."""

    epoch: int
    next_batch: int = 0
    outputs: list = field(default_factory=list)
    carried: tuple | None = None
    carried_rows: int = 0

    def follow(self, loss: Loss, targets, labels) -> None:
        """The loss and the epoch's targets and labels (None for regression), in its order, that the
        sums are taken against."""
        self._against = loss, targets, labels

    @property
    def total_loss(self):
        """The loss summed over the batches done, as a device scalar (reading it waits for the device)."""
        return self.sums()[0]

    @property
    def correct(self):
        """The number of correct predictions in the batches done (None for regression)."""
        return self.sums()[1]

    def sums(self, final=None) -> tuple:
        """``(total_loss, correct)`` over the batches done, from the kept outputs and any carried sums;
        with ``final``, outputs for the epoch's first rows (under the weights it ends with), also their
        summed loss, from the same pass over the outputs."""
        loss, targets, labels = self._against
        pieces = self.outputs if final is None else [*self.outputs, final]
        if not pieces:  # every batch done was carried
            return self.carried
        outputs = pieces[0] if len(pieces) == 1 else array_namespace(pieces[0]).concat(pieces, axis=0)
        kept_rows = outputs.shape[0] - (0 if final is None else final.shape[0])
        start, stop = self.carried_rows, self.carried_rows + kept_rows
        parts = [targets[start:stop, ...]] + ([] if final is None else [targets[: final.shape[0], ...]])
        total, *final_total = loss.totals(outputs, *parts)
        correct = None if labels is None else count_correct(outputs[:kept_rows, ...], labels[start:stop])
        if self.carried is not None:
            total = self.carried[0] + total
            correct = None if labels is None else self.carried[1] + correct
        return total, correct, *final_total

    def kept(self):
        """The kept outputs as one array (which then replaces the pieces)."""
        if len(self.outputs) > 1:
            self.outputs = [array_namespace(self.outputs[0]).concat(self.outputs, axis=0)]
        return self.outputs[0]

    def state_dict(self) -> dict:
        """Epoch and batch as numbers; the kept outputs and any carried sums as arrays (None where absent,
        ``correct`` None for regression)."""
        total_loss, correct = self.carried or (None, None)
        outputs = self.kept() if self.outputs else None
        return {
            "epoch": self.epoch,
            "next_batch": self.next_batch,
            "total_loss": total_loss,
            "correct": correct,
            "outputs": outputs,
        }

    @classmethod
    def from_state(
        cls, state: dict, *, epochs_done: int, dtype: str, classify: bool, batch_size: int, n_outputs: int, place
    ) -> EpochPosition:
        """The position ``state_dict()`` described, checked against the run it belongs to: it is inside
        the epoch after ``epochs_done``, its outputs are ``(rows, n_outputs)`` of the model's dtype for
        the last batches done, and any carried sums are scalars of that dtype (and int64 counts for a
        classifier) for the batches before; arrays are placed on the device by ``place``. Whether the
        rows match the data is ``train_epoch``'s to check."""
        next_batch = state.get("next_batch")
        if state.get("epoch") != epochs_done or type(next_batch) is not int or next_batch < 1:
            raise StateError("the position inside the epoch is invalid; the file is corrupt")
        total_loss, correct, outputs = state.get("total_loss"), state.get("correct"), state.get("outputs")
        carried = total_loss is not None or correct is not None
        if carried and not (_is_scalar(total_loss, dtype) and (not classify or _is_scalar(correct, "int64"))):
            raise StateError("the running sums of the epoch are missing or malformed; the file is corrupt")
        rows = outputs.shape[0] if isinstance(outputs, np.ndarray) and outputs.ndim == 2 else 0
        kept_batches = -(-rows // batch_size)  # whole batches, but for a last one that may be short
        if outputs is not None and not (
            rows
            and outputs.dtype == np.dtype(dtype)
            and outputs.shape[1] == n_outputs
            and (kept_batches < next_batch if carried else kept_batches == next_batch)
        ):
            raise StateError("the outputs kept in the epoch are malformed; the file is corrupt")
        if not (carried or rows):
            raise StateError("the running sums of the epoch are missing or malformed; the file is corrupt")
        return cls(
            epochs_done,
            next_batch,
            [place(outputs)] if rows else [],
            (place(total_loss), None if correct is None else place(correct)) if carried else None,
            (next_batch - kept_batches) * batch_size,
        )


def batch_bounds(n_samples: int, batch_size: int) -> list[tuple[int, int]]:
    """``(start, stop)`` of each minibatch; the last may be smaller (no sample is dropped). Stops never
    pass the end: the array API leaves out-of-bounds slices unspecified."""
    return [(start, min(start + batch_size, n_samples)) for start in range(0, n_samples, batch_size)]


class LocalGradients:
    """How ``train_epoch`` gets each batch's gradient: computed here, by this process alone. Another
    way of getting it (``xpnet.distributed.DataParallel`` shares each batch among MPI processes and
    sums their gradients) is the one difference between single-process and data-parallel training."""

    def begin(self, network: Network, inputs: EpochInputs, bounds: list, position: EpochPosition, dropout_rng):
        """Before the epoch's first step: a resumed epoch replays the forward passes it skips, so that
        dropout draws the same masks."""
        for start, stop in bounds[: position.next_batch]:
            network.forward(inputs.rows(start, stop), training=True, rng=dropout_rng)

    def batch(self, network: Network, loss: Loss, inputs: EpochInputs, targets, bounds: list, batch: int, dropout_rng):
        """``(gradients, outputs)`` of minibatch ``batch``: the mean loss's gradient for every trained
        parameter, and the network's outputs for its rows, which the epoch keeps."""
        start, stop = bounds[batch]
        outputs = network.forward(inputs.rows(start, stop), training=True, rng=dropout_rng)
        network.backward(loss.gradient(outputs, targets[start:stop, ...]), input_gradient=False)
        return network.trained_gradients(), outputs

    def end(self, network: Network, position: EpochPosition) -> None:
        """After the epoch's last step (a shared epoch checks that every process holds one model)."""


def train_epoch(
    network: Network,
    optimizer: Optimizer,
    loss: Loss,
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
    final_check: bool = False,
    gradients: LocalGradients | None = None,
    sample_weight=None,
) -> EpochResult:
    """Train on every sample once, in ``order``; return its ``EpochResult`` (with ``final_check``, the
    final loss too). ``position`` is updated after every step; an epoch resumed from it skips the
    batches already done. ``gradients`` says how a batch's gradient is computed (here, by default).
    ``sample_weight`` (one per sample, or None) makes each batch's loss its weighted mean.

    The epoch's targets (a classifier's one-hot rows) are built once in its order, and its inputs are
    gathered in it once (``EpochInputs``), so that each batch is a slice of them. A step computes the
    loss's gradient only and keeps its outputs; the loss and the correct predictions are summed from
    those at the end. The optimizer's step returns the new parameters and the network assigns them:
    nothing relies on an array library writing through its arrays."""
    gradients = gradients or LocalGradients()
    position = position or EpochPosition(0)
    inputs, y = EpochInputs(x, order), gathered(y, order)
    targets = loss.targets(y, network.n_outputs, x.dtype)
    if sample_weight is not None:
        loss, targets = losses.weighted(loss, targets, gathered(sample_weight, order))
    position.follow(loss, targets, y if classify else None)
    params = network.trained_parameters()
    bounds = batch_bounds(x.shape[0], batch_size)
    check_position(position, bounds, x.shape[0])
    gradients.begin(network, inputs, bounds, position, dropout_rng)
    stalled = None
    for batch in range(position.next_batch, len(bounds)):
        batch_gradients, outputs = gradients.batch(network, loss, inputs, targets, bounds, batch, dropout_rng)
        first_step = position.epoch == 0 and batch == 0
        before = copied(params) if first_step else None
        params = optimizer.step(params, batch_gradients, lr)
        network.assign(params)
        if first_step:
            stalled = stalled_step(before, params, batch_gradients)
        position.outputs.append(outputs)
        position.next_batch = batch + 1
        if on_batch_end is not None:
            on_batch_end(batch)
    gradients.end(network, position)
    final = network.forward(inputs.rows(*bounds[0])) if final_check else None
    total_loss, correct, *final_loss = position.sums(final)
    return EpochResult(total_loss / x.shape[0], correct, final_loss[0] if final_loss else None, stalled)


def stalled_step(before: list, after: list, gradients: list):
    """A device boolean: whether a step left every parameter as it was (``before``) although a gradient
    was not zero. Computed on the device and read with the epoch's loss, so the batch loop never waits."""
    xp = array_namespace(after[0])
    unchanged = xp.stack([xp.all(old == new) for old, new in zip(before, after)])
    moving = xp.stack([xp.any(gradient != 0) for gradient in gradients])
    return xp.logical_and(xp.all(unchanged), xp.any(moving))


def check_position(position: EpochPosition, bounds: list[tuple[int, int]], n_samples: int) -> None:
    """Refuse to resume an epoch at ``position`` on data whose batches (``bounds`` of ``n_samples``
    samples) do not end where the batches done ended."""
    done = position.carried_rows + sum(outputs.shape[0] for outputs in position.outputs)
    if position.next_batch > len(bounds) or done != (bounds[position.next_batch - 1][1] if position.next_batch else 0):
        raise XpnetError(
            f"the epoch under way stopped after {done} samples, which the {n_samples} samples given do not "
            "match: resume it with the data it was trained on"
        )


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


def evaluate(network: Network, loss: Loss, x, y, *, classify: bool):
    """Mean loss and number of correct predictions (None for regression) over ``x``, as device scalars."""
    xp = array_namespace(x)
    total_loss = xp.zeros((), dtype=x.dtype, device=device(x))
    correct = xp.zeros((), dtype=default_integer(xp, device(x)), device=device(x)) if classify else None
    for start, stop in batch_bounds(x.shape[0], EVALUATION_BATCH_SIZE):
        outputs = network.forward(x[start:stop, ...])
        total_loss += loss.total(outputs, loss.targets(y[start:stop, ...], outputs.shape[1], outputs.dtype))
        if classify:
            correct += count_correct(outputs, y[start:stop, ...])
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
    """Number of rows whose highest output is at the label (class numbers, as ``Model`` gives them)."""
    return array_namespace(outputs).count_nonzero(losses.predicted_classes(outputs) == labels)
