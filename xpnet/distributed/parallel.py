"""One epoch of data-parallel training: ``DataParallel`` takes ``train.loop.train_epoch``'s place
(``Model.epoch_runner``) and takes the same steps, each spread over the ranks of an MPI world.

Every rank holds the whole dataset and model and derives the same shuffle from the run's seed; the
batch size stays the global batch. Each minibatch is cut into slots (contiguous shares of its rows);
a rank computes the gradient of its slots, the slots' gradients are summed across the ranks, and
every rank takes the same optimizer step, so the ranks hold one model (compared once per epoch).

The two reductions:

- ``"ordered"`` (the default): the batch is cut into ``micro_batches`` slots whatever the number of
  ranks; every rank receives every slot's gradient (an allgather) and adds them in slot order. The
  arithmetic does not depend on how the slots are spread, so 1, 2 or 4 ranks (any number up to
  ``micro_batches``) end with bit-identical weights and metrics, and a run may resume on another
  number of ranks. The price: each step moves ``micro_batches`` gradient copies instead of one.
- ``"allreduce"``: one slot per rank, summed by MPI's (or NCCL's) allreduce. The least communication;
  the order of additions is the library's, so results are reproducible for a fixed number of ranks.

A slot's dropout masks come from a stream named by (seed, DROPOUT, epoch, batch, slot), so they do
not depend on which rank draws them. The buffer of a step also carries each rank's stop request (so a
signal to any rank stops every rank after the same step) and each slot's outputs, at the slot's rows of
the batch (zeros elsewhere, so the sum is exact): every rank keeps the whole batch's outputs, from which
the epoch's loss and correct count are summed as ``train_epoch`` sums them (the same numbers, the same
position for a checkpoint).
"""

from __future__ import annotations

import contextlib
import math

from array_api_compat import device

from xpnet import validation
from xpnet.arrays.backend import Backend, array_namespace, to_numpy
from xpnet.arrays.flat import Flat, Views
from xpnet.distributed import launcher
from xpnet.distributed.exchange import exchange_for
from xpnet.distributed.world import World
from xpnet.errors import SettingError, XpnetError
from xpnet.train.checkpoint import STOP_SIGNALS
from xpnet.train.loop import EpochInputs, EpochPosition, EpochResult, batch_bounds, check_position, gathered

REDUCTIONS = ("ordered", "allreduce")
DEFAULT_MICRO_BATCHES = 4


class DataParallel:
    """Trains one epoch like ``train.loop.train_epoch``, with each step shared by the ranks of ``world``
    (``MPI.COMM_WORLD`` by default). Give it to ``Model.epoch_runner``, or use ``fit``."""

    def __init__(
        self, world: World | None = None, *, reduction: str = "ordered", micro_batches: int = DEFAULT_MICRO_BATCHES
    ):
        self.world = world if world is not None else World()
        self.reduction = validation.choice("reduction", reduction, REDUCTIONS)
        self.micro_batches = validation.whole("micro_batches", micro_batches, minimum=1)
        if self.reduction == "ordered" and self.world.size > self.micro_batches:
            raise SettingError(
                f"{self.world.size} ranks cannot share {self.micro_batches} micro-batches per step: give at least "
                f"as many micro-batches as ranks (--micro-batches {self.world.size}), or --reduction allreduce"
            )
        # This rank's stop request (the signal it received) and the one every rank agreed on at the last step.
        self.stop_requested: int | None = None
        self.stop_agreed: int | None = None
        self._exchanges: dict = {}

    def fit(self, model, x, y, **fit_options) -> list[dict]:
        """``model.fit(x, y, **fit_options)`` with every step shared by the ranks: call it on every rank
        with the same data and settings (``xpnet.distributed.checkpoint.fit`` adds checkpoints)."""
        model.epoch_runner = self
        with self.one_blas_thread():
            return model.fit(x, y, **fit_options)

    def one_blas_thread(self) -> contextlib.AbstractContextManager:
        """A block in which this rank's BLAS (and OpenMP) run one thread, for the ordered reduction,
        unless the user chose a thread count: a BLAS may round a product differently on another number
        of threads (OpenBLAS does on some processors), and 1, 2 or 4 ranks on a node would otherwise each
        have another share of its cores, and other results."""
        if self.reduction != "ordered" or launcher.user_chose_threads():
            return contextlib.nullcontext()
        try:
            import threadpoolctl
        except ImportError:
            raise XpnetError(
                "the ordered reduction runs one BLAS thread per rank, which needs threadpoolctl: "
                "pip install 'xpnet[mpi]'"
            ) from None
        return threadpoolctl.threadpool_limits(limits=1)

    def device(self, requested="auto"):
        """The device this rank should train on: one GPU per rank for ``"cuda"`` (or ``"auto"`` where
        CuPy sees GPUs), chosen by the rank's place on its node; anything else as given."""
        return self.world.device(requested)

    @property
    def slots(self) -> int:
        """The number of shares each minibatch is cut into."""
        return self.micro_batches if self.reduction == "ordered" else self.world.size

    def __call__(
        self,
        network,
        optimizer,
        loss_function,
        x,
        y,
        *,
        lr: float,
        batch_size: int,
        order,
        dropout_rng,
        classify: bool,
        on_batch_end=None,
        position: EpochPosition | None = None,
        final_check: bool = False,
    ) -> EpochResult:
        """``train.loop.train_epoch`` on this rank's share of each step: the same arguments, the same
        results (device scalars: mean loss and correct count over the whole epoch, of every rank, and the
        final check's loss), and the same position, whose kept outputs are the whole batch's on every rank."""
        xp = array_namespace(x)
        position = position or EpochPosition(0)
        inputs, y = EpochInputs(x, order), gathered(y, order)
        targets = loss_function.targets(y, network.n_outputs, x.dtype)
        position.follow(loss_function, targets, y if classify else None)
        params = network.trained_parameters()
        shapes = [tuple(param.shape) for param in params]
        sizes = [math.prod(shape) for shape in shapes]
        n_gradients, n_outputs = sum(sizes), network.n_outputs
        per_rank = -(-self.slots // self.world.size)
        mine = range(min(self.world.rank * per_rank, self.slots), min((self.world.rank + 1) * per_rank, self.slots))
        bounds = batch_bounds(x.shape[0], batch_size)
        check_position(position, bounds, x.shape[0])
        # The epoch's buffers, reused by every step (fresh ones would cost a page fault per 4 KiB each time).
        # A slot's outputs go to its rows' stretch of the batch's outputs, zeros elsewhere, so that the
        # sum holds the whole batch's outputs exactly.
        first_output = n_gradients + len(STOP_SIGNALS)
        width = first_output + min(batch_size, x.shape[0]) * n_outputs
        rows = xp.zeros((per_rank, width), dtype=x.dtype, device=device(x))
        total = xp.zeros((width,), dtype=x.dtype, device=device(x))
        for batch in range(position.next_batch, len(bounds)):
            rows[:, n_gradients:] = 0
            batch_start, batch_stop = bounds[batch]
            for row, slot in enumerate(mine):
                start, stop = slot_bounds(batch_start, batch_stop, slot, self.slots)
                if start == stop:  # a batch smaller than the slots: this one is empty
                    rows[row, :] = 0
                    continue
                outputs = network.forward(inputs.rows(start, stop), training=True, rng=dropout_rng.child(batch, slot))
                grad_outputs = loss_function.gradient(outputs, targets[start:stop, ...])
                # The gradient of the slot's mean loss; weighted by the slot's share, the slots add up to the batch's.
                network.backward(grad_outputs * ((stop - start) / (batch_stop - batch_start)), input_gradient=False)
                gradients = network.trained_gradients()
                if isinstance(gradients, Views):
                    rows[row, :n_gradients] = gradients.flat.buffer
                else:
                    offset = 0
                    for gradient, size in zip(gradients, sizes):
                        rows[row, offset : offset + size] = xp.reshape(gradient, (-1,))
                        offset += size
                first, end = (first_output + (at - batch_start) * n_outputs for at in (start, stop))
                rows[row, first:end] = xp.reshape(outputs, (-1,))
            if self.stop_requested is not None:
                rows[0, n_gradients + STOP_SIGNALS.index(self.stop_requested)] = 1
            total = self._sum(self._exchange(dropout_rng.backend), rows, total)
            summed = Flat(total[:n_gradients], shapes).views()
            optimizer.step(params, summed if isinstance(params, Views) else list(summed), lr)
            batch_outputs = total[first_output : first_output + (batch_stop - batch_start) * n_outputs]
            position.outputs.append(xp.reshape(xp.asarray(batch_outputs, copy=True), (-1, n_outputs)))
            position.next_batch = batch + 1
            self.stop_agreed = _agreed_signal(to_numpy(total[n_gradients:first_output]))
            if on_batch_end is not None:
                on_batch_end(batch)
        self.world.check_parameters((to_numpy(param).tobytes() for param in params), position.epoch + 1)
        final = network.forward(inputs.rows(*bounds[0])) if final_check else None
        total_loss, correct, *final_loss = position.sums(final)
        return EpochResult(total_loss / x.shape[0], correct, *final_loss)

    def _sum(self, exchange, rows, total):
        """The sum of every rank's rows: the library's allreduce (of ``rows``' first, in place where it
        can), or all gathered and added in slot order into ``total``."""
        if self.reduction == "allreduce":
            return exchange.reduce_sum(rows[0, :])
        gathered = exchange.gather(rows)
        total[:] = gathered[0, :]
        for slot in range(1, self.slots):
            total += gathered[slot, :]
        return total

    def _exchange(self, backend: Backend):
        """The exchange for ``backend``'s arrays, made once (NCCL's communicator is made collectively)."""
        key = (backend.name, str(backend.device))
        if key not in self._exchanges:
            self._exchanges[key] = exchange_for(self.world, backend)
        return self._exchanges[key]


def slot_bounds(start: int, stop: int, slot: int, slots: int) -> tuple[int, int]:
    """Rows ``(first, end)`` of share ``slot`` of ``slots`` of the minibatch ``start:stop``: contiguous,
    sizes differing by at most one, empty where the batch has fewer rows than slots."""
    rows = stop - start
    return start + slot * rows // slots, start + (slot + 1) * rows // slots


def _agreed_signal(flags) -> int | None:
    """The stop signal the ranks agree on from the summed flags: the first in ``STOP_SIGNALS`` any asked for."""
    return next((signal for signal, count in zip(STOP_SIGNALS, flags) if count > 0), None)
