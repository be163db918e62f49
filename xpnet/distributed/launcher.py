"""What an MPI launcher tells each process through its environment, read before MPI or NumPy load.

``mpiexec`` (MPICH's Hydra, Open MPI) and Slurm's ``srun`` name each process's rank and how many
ranks share its node. Two uses need that before anything heavy is imported: BLAS libraries read
their thread count once, when NumPy loads them, so N ranks on a node must be told to use their
share of its cores first (else each starts a thread per core and they oversubscribe it; 2 ranks
were measured 40x slower that way); and when mpi4py is missing, only rank 0 should say so.
"""

from __future__ import annotations

import os

# Per launcher, the variables naming a process's rank, its rank on the node and the ranks on the node.
RANK_VARIABLES = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "SLURM_PROCID")
SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "SLURM_NTASKS")
LOCAL_SIZE_VARIABLES = ("MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE", "SLURM_NTASKS_PER_NODE")
# The thread-count variables of OpenBLAS, MKL, BLIS, Apple Accelerate and OpenMP; NumPy's BLAS reads one.
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
)


def _first_whole(names) -> int | None:
    for name in names:
        value = os.environ.get(name, "").strip()
        if value.isdigit():
            return int(value)
    return None


def launched_rank() -> int | None:
    """This process's rank as the launcher gave it, or None when no launcher started it."""
    return _first_whole(RANK_VARIABLES)


def launched_size() -> int:
    """How many ranks the launcher started (1 when no launcher started this process)."""
    return _first_whole(SIZE_VARIABLES) or 1


def threads_per_rank(local_size: int, cores: int | None = None) -> int:
    """The BLAS threads each of ``local_size`` ranks on a node of ``cores`` cores may use (at least 1)."""
    if cores is None:
        affinity = getattr(os, "sched_getaffinity", None)  # Linux: the cores this process may run on
        cores = len(affinity(0)) if affinity else os.cpu_count() or 1
    return max(1, cores // max(1, local_size))


def share_cores_among_ranks() -> int | None:
    """Under a launcher that puts several ranks on this node, set every BLAS thread-count variable to
    this rank's share of the cores, unless the user set any of them (their choice wins). Returns the
    count set, or None. It works only before NumPy is imported (``xpnet/__init__.py`` calls it first
    thing); where NumPy came first, ``world.World`` limits the threads with threadpoolctl."""
    local_size = _first_whole(LOCAL_SIZE_VARIABLES)
    if local_size is None or local_size < 2 or user_chose_threads():
        return None
    threads = threads_per_rank(local_size)
    for name in THREAD_VARIABLES:
        os.environ[name] = _SET_HERE[name] = str(threads)
    return threads


def user_chose_threads() -> bool:
    """Whether a thread-count variable holds a value that this module did not put there."""
    return any(name in os.environ and os.environ[name] != _SET_HERE.get(name) for name in THREAD_VARIABLES)


# The thread counts share_cores_among_ranks set, told apart from the user's own.
_SET_HERE: dict[str, str] = {}
