"""Summing the ranks' gradient buffers: MPI collectives on host buffers, or NCCL between GPUs.

A step's buffer holds one row per slot (a share of the minibatch): every parameter's gradient,
flattened, then a few numbers about the step (see ``parallel``). ``gather`` gives every rank every
rank's rows, in rank order, for a sum in a fixed order; ``reduce_sum`` adds the ranks' single rows
with the library's own allreduce (faster, but its order of additions depends on the rank count).
"""

from __future__ import annotations

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
    """Whether CuPy was built with NCCL (the ``cupy-cuda12x`` wheels load it from the nvidia-nccl package)."""
    try:
        from cupy.cuda import nccl
    except ImportError:
        return False
    return getattr(nccl, "available", True)


def exchange_for(world: World, backend: Backend):
    """NCCL for CuPy arrays where CuPy has it, else MPI on host buffers."""
    if backend.name == "cupy" and nccl_available():
        return NcclExchange(world, backend)
    return HostExchange(world, backend)
