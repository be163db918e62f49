"""MPI jobs whose ranks are threads of the test process: the collectives ``xpnet.distributed.world.World``
uses (allgather, bcast, Split_type by node), for tests of what the ranks decide together, without mpiexec.
A rank that skips a collective the others enter does not hang the test: the others fail after a timeout.

What it does not prove: anything about a real MPI library; ``tests/distributed`` runs those under mpiexec.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from types import SimpleNamespace

from xpnet.distributed import world as world_module

TIMEOUT_SECONDS = 10


class _Group:
    """Ranks that take part in one communicator's collectives, and what each last contributed."""

    def __init__(self, ranks: Sequence[int]):
        self.ranks = list(ranks)
        self.barrier = threading.Barrier(len(self.ranks), timeout=TIMEOUT_SECONDS)
        self.values: dict[int, object] = {}


class ThreadComm:
    """One rank's view of a communicator of a ``ThreadJob``: the mpi4py methods ``World`` calls."""

    def __init__(self, job: ThreadJob, group: _Group, rank: int):
        self.job, self.group, self.rank = job, group, rank

    def Get_rank(self) -> int:
        return self.group.ranks.index(self.rank)

    def Get_size(self) -> int:
        return len(self.group.ranks)

    def allgather(self, value) -> list:
        self.group.values[self.rank] = value
        self.group.barrier.wait()
        gathered = [self.group.values[rank] for rank in self.group.ranks]
        self.group.barrier.wait()  # no rank contributes to the next collective before all have read this one
        return gathered

    def bcast(self, value, root: int = 0):
        return self.allgather(value)[root]

    def Split_type(self, kind) -> ThreadComm:
        return ThreadComm(self.job, self.job.node_groups[self.job.nodes[self.rank]], self.rank)


class ThreadJob:
    """A job with one rank per entry of ``nodes`` (the name of the node each rank runs on)."""

    def __init__(self, nodes: Sequence[str]):
        self.nodes = list(nodes)
        self.world = _Group(range(len(self.nodes)))
        self.node_groups = {
            node: _Group([rank for rank, other in enumerate(self.nodes) if other == node]) for node in set(self.nodes)
        }

    def run(self, action: Callable[[int], object]) -> list:
        """``action(rank)`` on every rank at once, each in its own thread: each rank's result, or the
        exception it raised, in rank order."""
        results: list = [None] * len(self.nodes)

        def one(rank: int) -> None:
            try:
                results[rank] = action(rank)
            except Exception as error:
                results[rank] = error

        threads = [threading.Thread(target=one, args=(rank,)) for rank in range(len(self.nodes))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(4 * TIMEOUT_SECONDS)
        return results

    def world_of(self, rank: int) -> world_module.World:
        """This rank's ``World``; call within ``run``, with ``no_mpi`` in place."""
        return world_module.World(ThreadComm(self, self.world, rank))


def no_mpi(monkeypatch) -> None:
    """Let ``World`` be made on a ``ThreadComm``: no MPI library loaded, and the test process's BLAS threads
    left as they are."""
    monkeypatch.setattr(world_module, "load_mpi", lambda: SimpleNamespace(COMM_TYPE_SHARED="shared"))
    monkeypatch.setattr(world_module, "limit_blas_threads", lambda local_size: None)
