"""The MPI world of a data-parallel run: its ranks, which of them share a node, and the few
collective decisions every rank must take together (same command line, one error, one device each).

mpi4py is an optional dependency (``pip install 'xpnet[mpi]'``); without a launcher it gives a world
of one, which trains like any other. Errors every rank raises together are ``JobError``s, so that
only rank 0 reports them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from xpnet.distributed import launcher
from xpnet.errors import BackendError, XpnetError, one_line

MPI_INSTALL = "pip install 'xpnet[mpi]'"


class JobError(XpnetError):
    """An error every rank of the job raises at the same point with the same message: rank 0 alone
    reports it, and no rank needs to abort the others."""


def load_mpi():
    """mpi4py's ``MPI`` module (which initialises MPI), or an error naming the fix."""
    try:
        from mpi4py import MPI
    except ImportError:
        raise XpnetError(f"data-parallel training needs mpi4py and an MPI library: {MPI_INSTALL}") from None
    except RuntimeError as error:  # mpi4py is there but cannot load its MPI library
        raise XpnetError(f"mpi4py cannot load an MPI library ({one_line(error)}): {MPI_INSTALL}") from None
    return MPI


class World:
    """The processes of one job (``MPI.COMM_WORLD`` unless ``comm`` is given), with each one's rank,
    its rank among those on the same node, and how many share that node."""

    def __init__(self, comm=None):
        mpi = load_mpi()
        self.mpi = mpi
        self.comm = comm if comm is not None else mpi.COMM_WORLD
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        # The ranks on this node: they share its GPUs (see ``device``).
        self.node = self.comm.Split_type(mpi.COMM_TYPE_SHARED)
        self.local_rank, self.local_size = self.node.Get_rank(), self.node.Get_size()
        limit_blas_threads(self.local_size)

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    def require_same(self, what: str, value: str) -> None:
        """Refuse a job whose ranks hold different ``value``s (their command lines, say): a ``JobError``
        on every rank naming the first that differs from rank 0."""
        values = self.comm.allgather(value)
        differing = next((rank for rank, other in enumerate(values) if other != values[0]), None)
        if differing is not None:
            raise JobError(
                f"the ranks were started with different {what}: rank 0 has {values[0]!r}, rank {differing} has "
                f"{values[differing]!r}; launch every rank with the same command"
            )

    def together(self, action: Callable[[], object]):
        """``action()`` on every rank; if it fails on any, every rank raises that failure (the lowest
        rank's, naming the rank where not all failed alike) as a ``JobError``."""
        result, failure = None, None
        try:
            result = action()
        except XpnetError as error:
            failure = one_line(error)
        self._raise_any(self.comm.allgather(failure))
        return result

    def from_root(self, action: Callable[[], object]):
        """``action()`` on rank 0 alone, its result sent to every rank; its failure raised on every rank
        as a ``JobError``. For what one rank decides for all: reading a checkpoint, claiming a folder."""
        result, failure = None, None
        if self.is_root:
            try:
                result = action()
            except XpnetError as error:
                failure = one_line(error)
        result, failure = self.comm.bcast((result, failure), root=0)
        if failure is not None:
            raise JobError(failure)
        return result

    def _raise_any(self, failures: list) -> None:
        found = [(rank, failure) for rank, failure in enumerate(failures) if failure is not None]
        if not found:
            return
        rank, failure = found[0]
        everywhere = len(found) == len(failures) and all(message == failure for _, message in found)
        raise JobError(failure if everywhere else f"rank {rank}: {failure}")

    def check_parameters(self, parameters_bytes, epoch: int) -> None:
        """Every rank's parameters must be the same after each epoch: compare their SHA-256 digests and
        raise a ``JobError`` on every rank if any differs (a bug, or ranks on different libraries)."""
        digest = hashlib.sha256()
        for chunk in parameters_bytes:
            digest.update(chunk)
        digests = self.comm.allgather(digest.hexdigest())
        differing = [rank for rank, other in enumerate(digests) if other != digests[0]]
        if differing:
            raise JobError(
                f"after epoch {epoch} the parameters of rank(s) {', '.join(map(str, differing))} differ from rank "
                "0's: the ranks no longer train one model; check that every rank runs the same xpnet, NumPy and "
                "BLAS, then resume from the last checkpoint"
            )

    def device(self, requested: str) -> str:
        """The device this rank trains on: ``"cuda"`` (and ``"auto"`` where CuPy sees a GPU) become one GPU per
        rank, the rank's place among its node's GPUs, or the one GPU it sees where the launcher gave each rank
        its own (Slurm's ``--gpus-per-task=1``, ``CUDA_VISIBLE_DEVICES`` per rank); anything else as given.
        Every rank of the job calls it: the ranks of a node compare the GPUs they see."""
        from xpnet.arrays.backend import cuda_device_count

        spec = requested.strip().lower() if isinstance(requested, str) else requested
        if spec not in ("cuda", "auto"):
            return requested
        gpus = cuda_device_count()
        # Every rank of the node joins this, whatever it sees, so that none waits for another in vain.
        seen = self.node.allgather(_first_gpu_bus_id() if gpus == 1 else None)
        if gpus == 0:  # "auto" trains on the CPU; for "cuda", selecting the backend says why there is no GPU
            return requested
        if gpus >= self.local_size:
            return f"cuda:{self.local_rank}"
        if gpus == 1 and seen.count(seen[self.local_rank]) == 1:  # a GPU of its own
            return "cuda:0"
        raise BackendError(
            f"{self.local_size} ranks share this node but rank {self.rank} sees {gpus} GPU(s)"
            f"{' and shares it with another rank' if gpus == 1 else ''}: data-parallel training puts one rank on "
            f"each GPU; start at most {max(gpus, 1)} rank(s) per node, give each rank a GPU of its own "
            "(CUDA_VISIBLE_DEVICES, Slurm's --gpus-per-task=1), or train with --device cpu"
        )

    def abort(self, exit_code: int) -> None:
        """End every rank of the job now (the launcher stops the others)."""
        self.comm.Abort(exit_code)


def _first_gpu_bus_id() -> str:
    """The PCI bus id of the first GPU CuPy sees: the same GPU has the same id in every process."""
    import cupy

    return cupy.cuda.Device(0).pci_bus_id


def limit_blas_threads(local_size: int) -> None:
    """Unless the user chose a thread count, limit BLAS threads to this rank's share of the node's cores
    with threadpoolctl, if it is installed (it is optional: ``pip install threadpoolctl``). This covers
    what ``launcher`` cannot: a launcher it does not know, or NumPy imported before xpnet."""
    if local_size < 2 or launcher.user_chose_threads():
        return
    try:
        import threadpoolctl
    except ImportError:
        return
    threadpoolctl.threadpool_limits(launcher.threads_per_rank(local_size), user_api="blas")
