"""Summing the ranks' gradient buffers: MPI collectives on host buffers, or NCCL between GPUs.

A step's buffer holds one row per slot (a share of the minibatch): every parameter's gradient,
flattened, then a few numbers about the step (see ``parallel``). ``gather`` gives every rank every
rank's rows, in rank order, for a sum in a fixed order; ``reduce_sum`` adds the ranks' single rows
with the library's own allreduce (faster, but its order of additions depends on the rank count).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from xpnet.arrays.backend import Backend, to_numpy
from xpnet.distributed.world import World


class HostExchange:
    """MPI collectives on host (NumPy) buffers; arrays of another library go through a host copy."""

    def __init__(self, world: World, backend: Backend):
        self.world, self.backend = world, backend
        self._received = np.empty((0, 0))

    def gather(self, rows):
        """``(ranks * len(rows), width)``: every rank's rows, rank 0's first, in a buffer reused by the
        next call (a fresh one would cost a page fault per 4 KiB every step)."""
        send = np.ascontiguousarray(to_numpy(rows))
        shape = (self.world.size * send.shape[0], send.shape[1])
        if self._received.shape != shape or self._received.dtype != send.dtype:
            self._received = np.empty(shape, dtype=send.dtype)
        self.world.comm.Allgather(send, self._received)
        return self.backend.asarray(self._received)

    def reduce_sum(self, row):
        """The element-wise sum of every rank's ``row`` (in place, for a NumPy row)."""
        buffer = np.ascontiguousarray(to_numpy(row))
        self.world.comm.Allreduce(self.world.mpi.IN_PLACE, buffer)
        return self.backend.asarray(buffer)


class NcclExchange:
    """NCCL collectives between the ranks' GPUs through CuPy; the communicator's unique id travels
    from rank 0 to the others over MPI. Buffers stay on the GPU, on CuPy's current stream."""

    def __init__(self, world: World, backend: Backend):
        from cupy.cuda import nccl

        self.nccl, self.backend = nccl, backend
        unique_id = world.comm.bcast(nccl.get_unique_id() if world.is_root else None, root=0)
        with backend.device:
            self.comm = nccl.NcclCommunicator(world.size, unique_id, world.rank)
        self.size = world.size

    def _dtype(self, array) -> int:
        return self.nccl.NCCL_FLOAT32 if array.dtype == self.backend.xp.float32 else self.nccl.NCCL_FLOAT64

    def gather(self, rows):
        import cupy

        send = cupy.ascontiguousarray(rows)
        received = cupy.empty((self.size * send.shape[0], send.shape[1]), dtype=send.dtype)
        stream = cupy.cuda.get_current_stream().ptr
        self.comm.allGather(send.data.ptr, received.data.ptr, send.size, self._dtype(send), stream)
        return received

    def reduce_sum(self, row):
        import cupy

        buffer = cupy.ascontiguousarray(row)
        stream = cupy.cuda.get_current_stream().ptr
        count, dtype = buffer.size, self._dtype(buffer)
        self.comm.allReduce(buffer.data.ptr, buffer.data.ptr, count, dtype, self.nccl.NCCL_SUM, stream)
        return buffer


def nccl_available() -> bool:
    """Whether CuPy can load NCCL (the ``cupy-cuda12x`` wheels load it from the nvidia-nccl-cu12 wheel)."""
    try:
        from cupy.cuda import nccl
    except ImportError:
        return False
    return getattr(nccl, "available", True)


class ExchangeChoice(NamedTuple):
    """The exchange all ranks use (``"nccl"`` or ``"host"``), and the ranks on CuPy that lack NCCL."""

    kind: str
    without_nccl: tuple[int, ...]

    def describe(self) -> str:
        """One line for the run's output."""
        if self.kind == "nccl":
            return "gradients are summed by NCCL between the ranks' GPUs"
        if not self.without_nccl:
            return "gradients are summed by MPI in host memory"
        ranks = ", ".join(map(str, self.without_nccl))
        return (
            f"gradients are summed by MPI in host memory, through a copy from each GPU every step: CuPy cannot load "
            f"NCCL on rank(s) {ranks} (pip install 'xpnet[cuda]' brings it)"
        )


def agreed_exchange(world: World, backend: Backend) -> ExchangeChoice:
    """The exchange every rank uses for ``backend``'s arrays, decided together from each rank's view (an
    allgather): NCCL only where every rank has it, so that no two ranks enter different collectives."""
    has_nccl = world.comm.allgather(nccl_available() if backend.name == "cupy" else None)  # None: not on CuPy
    if all(has_nccl):
        return ExchangeChoice("nccl", ())
    return ExchangeChoice("host", tuple(rank for rank, has in enumerate(has_nccl) if has is False))


def exchange_for(world: World, backend: Backend):
    """NCCL for CuPy arrays where every rank's CuPy has it, else MPI on host buffers; every rank calls it."""
    if agreed_exchange(world, backend).kind == "nccl":
        return NcclExchange(world, backend)
    return HostExchange(world, backend)
