"""Ranks on one node share its cores: each rank's BLAS gets its share of threads (set before NumPy
loads, or by threadpoolctl where NumPy came first), unless the user chose a thread count."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import xpnet
from xpnet.distributed import launcher

pytest.importorskip("mpi4py")
pytest.importorskip("threadpoolctl")

from mpi_jobs import MPIEXEC, environment

# One write per rank, so that the launcher cannot interleave the ranks' lines.
BLAS_THREADS = (
    "import sys, threadpoolctl; sys.stdout.write("
    "f\"{max(pool['num_threads'] for pool in threadpoolctl.threadpool_info() if pool['user_api'] == 'blas')}\\n\")"
)


def rank_threads(code: str, **extra: str) -> list[int]:
    """What each of 2 ranks prints after running ``code``, then ``BLAS_THREADS``."""
    env = {name: value for name, value in environment(**extra).items() if name not in launcher.THREAD_VARIABLES}
    result = subprocess.run(
        [MPIEXEC, "-n", "2", sys.executable, "-c", f"{code}; {BLAS_THREADS}"],
        env={**env, **extra},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return [int(line) for line in result.stdout.split()]


@pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec (pip install mpich)")
@pytest.mark.parametrize(
    "code",
    ["import xpnet", "import numpy; from xpnet.distributed.world import World; World()"],
    ids=["xpnet-before-numpy", "numpy-first"],
)
def test_two_ranks_each_get_half_the_cores(code):
    assert rank_threads(code) == [launcher.threads_per_rank(2)] * 2


@pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec (pip install mpich)")
def test_a_thread_count_the_user_chose_wins():
    # Two threads on each of two ranks (OpenBLAS caps a count at the cores it sees, which a rank's share is not).
    chosen = min(2, launcher.threads_per_rank(1))
    assert rank_threads("from xpnet.distributed.world import World; World()", OPENBLAS_NUM_THREADS="2") == [chosen] * 2


def test_threads_are_shared_only_under_a_launcher_of_several_local_ranks(monkeypatch):
    # The launcher sets os.environ itself: a copy keeps its thread counts from the tests that follow.
    monkeypatch.setattr(os, "environ", os.environ.copy())
    monkeypatch.setattr(launcher, "_SET_HERE", {})
    for name in launcher.THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MPI_LOCALNRANKS", "1")
    assert launcher.share_cores_among_ranks() is None
    monkeypatch.setenv("MPI_LOCALNRANKS", "4")
    assert launcher.share_cores_among_ranks() == launcher.threads_per_rank(4)
    assert launcher.threads_per_rank(4, cores=16) == 4 and launcher.threads_per_rank(4, cores=2) == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "8")
    assert launcher.user_chose_threads()
    assert launcher.share_cores_among_ranks() is None


def blas_threads() -> int:
    import threadpoolctl

    return max(pool["num_threads"] for pool in threadpoolctl.threadpool_info() if pool["user_api"] == "blas")


def test_the_ordered_reduction_trains_on_one_blas_thread_whatever_the_ranks_share(monkeypatch):
    """A BLAS may round a product differently on another number of threads (OpenBLAS's Haswell kernels
    do), and ranks get another share of a node's cores on another number of ranks: the ordered
    reduction, bit-identical on any number of ranks, computes on one thread, unless the user chose a
    count; the allreduce, reproducible only for a fixed number of ranks, keeps the share."""
    from xpnet.distributed.parallel import DataParallel

    for name in launcher.THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    before = blas_threads()
    if before < 2:
        pytest.skip("this process's BLAS runs one thread: nothing to pin")
    seen = []

    class Threads(xpnet.Callback):
        def on_epoch_end(self, record):
            seen.append(blas_threads())

    x, y, _, _ = xpnet.load_digits()
    for reduction in ("ordered", "allreduce"):
        model = xpnet.Model(hidden=[16], epochs=1)
        DataParallel(reduction=reduction).fit(model, x, y, callbacks=[Threads()])
    assert seen == [1, before] and blas_threads() == before
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", str(before))
    with DataParallel().one_blas_thread():
        assert blas_threads() == before


def test_the_ordered_reduction_without_threadpoolctl_names_the_extra(monkeypatch):
    from xpnet.distributed.parallel import DataParallel

    for name in launcher.THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setitem(sys.modules, "threadpoolctl", None)  # an import of it raises ImportError
    with pytest.raises(
        xpnet.XpnetError, match=r"one BLAS thread per rank, which needs threadpoolctl: pip install 'xpnet\[mpi\]'"
    ):
        DataParallel().one_blas_thread()
    with DataParallel(reduction="allreduce").one_blas_thread():
        pass
