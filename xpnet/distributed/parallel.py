"""One epoch of data-parallel training: ``DataParallel`` takes ``train.loop.train_epoch``'s place
(``Model.epoch_runner``) and runs it with one difference: each step's gradient is spread over the
ranks of an MPI world (``SharedGradients``).

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
not depend on which rank draws them. The buffer of a step also carries each slot's outputs, at the
slot's rows of the batch (zeros elsewhere, so the sum is exact): every rank keeps the whole batch's
outputs, from which the epoch's loss and correct count are summed as ``train_epoch`` sums them (the
same numbers, the same position for a checkpoint). Each step the ranks also agree, on the host, on
any rank's stop request, so a signal to any rank stops every rank after the same step.
"""

from __future__ import annotations

import contextlib
import math

from array_api_compat import device

from xpnet import validation
from xpnet.arrays.backend import Backend, array_namespace, to_numpy
from xpnet.arrays.flat import Flat, Views, gives_writable_views
from xpnet.distributed import launcher
from xpnet.distributed.exchange import exchange_for
from xpnet.distributed.world import World
from xpnet.errors import SettingError, XpnetError
from xpnet.train.checkpoint import STOP_SIGNALS
from xpnet.train.loop import EpochResult, LocalGradients, train_epoch

REDUCTIONS = ("ordered", "allreduce")
DEFAULT_MICRO_BATCHES = 4


class DataParallel:
    """Trains one epoch like ``train.loop.train_epoch``, with each step shared by the ranks of ``world``.

    Give it to ``Model.epoch_runner``, or use ``fit``. Started without an MPI launcher, it is a world of
    one.

    Args:
        world: The ranks (``xpnet.distributed.world.World``); ``None`` for ``MPI.COMM_WORLD``.
        reduction: ``"ordered"`` (the same bits on any number of ranks up to ``micro_batches``) or
            ``"allreduce"`` (MPI's or NCCL's sum, one slot per rank).
        micro_batches: The slots each minibatch is cut into under the ordered reduction.

    Raises:
        SettingError: An unknown reduction, or more ranks than micro-batches under the ordered one.
    """

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
        """``model.fit(x, y, **fit_options)`` with every step shared by the ranks.

        Call it on every rank with the same data and settings (``xpnet.distributed.checkpoint.fit`` adds
        checkpoints); every rank ends with the same model.

        Args:
            model: The model to train (the same settings on every rank).
            x: Inputs, the same on every rank.
            y: Labels or targets, the same on every rank.
            **fit_options: As for ``Model.fit``.

        Returns:
            The model's history, as ``Model.fit`` returns it.

        Raises:
            XpnetError: As ``Model.fit``, or the ranks' parameters differ after an epoch (naming the ranks).
        """
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

    def __call__(self, network, optimizer, loss_function, x, y, **epoch_options) -> EpochResult:
        """``train.loop.train_epoch`` with this rank's share of each step: the same arguments, the same
        results (device scalars: mean loss and correct count over the whole epoch, of every rank, and the
        final check's loss), and the same position, whose kept outputs are the whole batch's on every rank.
        Only the gradient of each batch is computed otherwise (``SharedGradients``)."""
        if not gives_writable_views(x):
            raise XpnetError(
                f"data-parallel training writes each step's gradients into a buffer it exchanges, which "
                f"{array_namespace(x).__name__} arrays do not allow: train on NumPy, CuPy or PyTorch arrays"
            )
        if epoch_options.get("sample_weight") is not None:  # a slot's weighted mean is over its own weights
            raise XpnetError(
                "data-parallel training takes no sample_weight yet (each slot would weigh its rows by its own "
                "total weight, not the batch's): train in one process, or repeat rows in proportion instead"
            )
        gradients = SharedGradients(self, network, x, epoch_options["batch_size"])
        return train_epoch(network, optimizer, loss_function, x, y, gradients=gradients, **epoch_options)

    def agree_on_stop(self) -> int | None:
        """The stop signal every rank agrees on after this step, from each rank's request: the first in
        ``STOP_SIGNALS`` any rank asked for. Agreed on the host, so no step waits for its device."""
        requested = sum(1 << index for index, signal in enumerate(STOP_SIGNALS) if signal == self.stop_requested)
        agreed = self.world.comm.allreduce(requested, op=self.world.mpi.BOR)  # a bit per signal any rank asked for
        self.stop_agreed = next((signal for index, signal in enumerate(STOP_SIGNALS) if agreed >> index & 1), None)
        return self.stop_agreed

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


class SharedGradients(LocalGradients):
    """A batch's gradient as the sum of its slots' gradients, each slot computed by one rank and the
    sums exchanged (``DataParallel``): ``train_epoch``'s one difference in data-parallel training.

    The epoch's buffers are reused by every step (fresh ones would cost a page fault per 4 KiB each
    time). A slot's outputs go to its rows' stretch of the batch's outputs, zeros elsewhere, so that
    the sum holds the whole batch's outputs exactly."""

    def __init__(self, parallel: DataParallel, network, x, batch_size: int):
        xp = array_namespace(x)
        self.parallel, self.world = parallel, parallel.world
        self.shapes = [tuple(param.shape) for param in network.trained_parameters()]
        self.sizes = [math.prod(shape) for shape in self.shapes]
        self.n_gradients, self.n_outputs = sum(self.sizes), network.n_outputs
        slots, rank = parallel.slots, self.world.rank
        per_rank = -(-slots // self.world.size)
        self.mine = range(min(rank * per_rank, slots), min((rank + 1) * per_rank, slots))
        width = self.n_gradients + min(batch_size, x.shape[0]) * self.n_outputs
        self.rows = xp.zeros((per_rank, width), dtype=x.dtype, device=device(x))
        self.total = xp.zeros((width,), dtype=x.dtype, device=device(x))

    def begin(self, network, inputs, bounds, position, dropout_rng):
        """Nothing to replay: a slot's dropout stream is named by its batch and slot."""

    def batch(self, network, loss, inputs, targets, bounds, batch, dropout_rng):
        xp, rows, n_gradients = array_namespace(self.rows), self.rows, self.n_gradients
        rows[:, n_gradients:] = 0
        batch_start, batch_stop = bounds[batch]
        for row, slot in enumerate(self.mine):
            start, stop = slot_bounds(batch_start, batch_stop, slot, self.parallel.slots)
            if start == stop:  # a batch smaller than the slots: this one is empty
                rows[row, :] = 0
                continue
            outputs = network.forward(inputs.rows(start, stop), training=True, rng=dropout_rng.child(batch, slot))
            grad_outputs = loss.gradient(outputs, targets[start:stop, ...])
            # The gradient of the slot's mean loss; weighted by the slot's share, the slots add up to the batch's.
            network.backward(grad_outputs * ((stop - start) / (batch_stop - batch_start)), input_gradient=False)
            gradients = network.trained_gradients()
            if isinstance(gradients, Views):
                rows[row, :n_gradients] = gradients.flat.buffer
            else:
                offset = 0
                for gradient, size in zip(gradients, self.sizes):
                    rows[row, offset : offset + size] = xp.reshape(gradient, (-1,))
                    offset += size
            first, end = (n_gradients + (at - batch_start) * self.n_outputs for at in (start, stop))
            rows[row, first:end] = xp.reshape(outputs, (-1,))
        self.parallel.agree_on_stop()
        self.total = self.parallel._sum(self.parallel._exchange(dropout_rng.backend), rows, self.total)
        summed = Flat(self.total[:n_gradients], self.shapes).views()
        batch_outputs = self.total[n_gradients : n_gradients + (batch_stop - batch_start) * self.n_outputs]
        outputs = xp.reshape(xp.asarray(batch_outputs, copy=True), (-1, self.n_outputs))
        return summed if isinstance(network.trained_parameters(), Views) else list(summed), outputs

    def end(self, network, position):
        """Every rank must hold one model: compared once per epoch."""
        parameters = network.trained_parameters()
        self.world.check_parameters((to_numpy(param).tobytes() for param in parameters), position.epoch + 1)


def slot_bounds(start: int, stop: int, slot: int, slots: int) -> tuple[int, int]:
    """Rows ``(first, end)`` of share ``slot`` of ``slots`` of the minibatch ``start:stop``: contiguous,
    sizes differing by at most one, empty where the batch has fewer rows than slots."""
    rows = stop - start
    return start + slot * rows // slots, start + (slot + 1) * rows // slots
