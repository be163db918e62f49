"""How the ranks sum their gradients (``exchange.agreed_exchange``): NCCL only where every rank's CuPy has
it, decided together so that no two ranks enter different collectives, and said in the run's output.

The agreement runs on ranks that are threads (``thread_ranks``), on a backend named "cupy" over NumPy arrays
with NCCL's presence set per rank. What it does not prove: that NCCL itself works (``test_nccl.py``, two GPUs).
"""

from __future__ import annotations

import threading

import pytest
from thread_ranks import ThreadJob, no_mpi

from xpnet.arrays.backend import Backend, numpy_backend
from xpnet.distributed import exchange

has_nccl = threading.local()


class NcclStandIn:
    """Takes ``NcclExchange``'s place: no communicator is made, only the choice is seen."""

    def __init__(self, world, backend):
        pass


@pytest.fixture
def agree(monkeypatch):
    """``agree(nccl_by_rank, backend)``: every rank's ``agreed_exchange`` and ``exchange_for`` results."""
    no_mpi(monkeypatch)
    monkeypatch.setattr(exchange, "nccl_available", lambda: has_nccl.value)
    monkeypatch.setattr(exchange, "NcclExchange", NcclStandIn)

    def run(nccl_by_rank, backend):
        job = ThreadJob(["node"] * len(nccl_by_rank))

        def rank_choice(rank):
            has_nccl.value = nccl_by_rank[rank]
            world = job.world_of(rank)
            return exchange.agreed_exchange(world, backend), type(exchange.exchange_for(world, backend)).__name__

        return job.run(rank_choice)

    return run


def cupy_named() -> Backend:
    """NumPy under CuPy's name: enough for the choice, which asks only the backend's name."""
    numpy = numpy_backend()
    return Backend(numpy.xp, numpy.device, "cupy")


def test_ranks_use_nccl_when_every_one_has_it(agree):
    results = agree([True, True], cupy_named())
    assert results == [(exchange.ExchangeChoice("nccl", ()), "NcclStandIn")] * 2
    assert results[0][0].describe() == "gradients are summed by NCCL between the ranks' GPUs"


def test_one_rank_without_nccl_puts_every_rank_on_the_host_exchange(agree):
    results = agree([True, False, True], cupy_named())
    assert results == [(exchange.ExchangeChoice("host", (1,)), "HostExchange")] * 3
    assert results[0][0].describe() == (
        "gradients are summed by MPI in host memory, through a copy from each GPU every step: CuPy cannot load "
        "NCCL on rank(s) 1 (pip install 'xpnet[cuda]' brings it)"
    )


def test_arrays_on_the_host_use_mpi(agree):
    results = agree([False, False], numpy_backend())
    assert results == [(exchange.ExchangeChoice("host", ()), "HostExchange")] * 2
    assert results[0][0].describe() == "gradients are summed by MPI in host memory"


def test_a_distributed_run_says_how_it_sums_gradients_once(tmp_path):
    pytest.importorskip("mpi4py")
    from mpi_jobs import MPIEXEC, run

    if MPIEXEC is None:
        pytest.skip("no mpiexec (pip install mpich)")
    result = run(2, "--distributed", "--hidden", "8", "--epochs", "1", "--json", "--out", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr
    said = [line for line in result.stderr.splitlines() if "gradients are summed" in line]
    assert said == ["2 ranks, gradients are summed by MPI in host memory"]
    assert result.stdout.startswith("{"), "--json keeps stdout for the summary alone"
