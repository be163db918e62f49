"""The GPU each rank of a data-parallel job takes (``World.device``): one per rank, by place on the node,
or the one GPU a launcher gave each rank; never one GPU for two ranks.

The ranks are threads (``thread_ranks``) and each sees the GPUs the test says: ``cuda_device_count`` and the
first GPU's PCI bus id are stand-ins here. What this does not prove: that CuPy reports those numbers as
it does on a real node (``Device.pci_bus_id``); ``tests/distributed/test_nccl.py`` trains on two GPUs."""

from __future__ import annotations

import threading

import pytest
from thread_ranks import ThreadJob, no_mpi

from xpnet.arrays import backend as backend_module
from xpnet.distributed import world as world_module
from xpnet.errors import BackendError

seen = threading.local()  # the bus ids of the GPUs the current rank (thread) sees


@pytest.fixture
def job_with_gpus(monkeypatch):
    """``devices(nodes, gpus, requested)``: each rank's ``World.device(requested)``, where rank r runs on
    ``nodes[r]`` and sees the GPUs whose bus ids are ``gpus[r]``."""
    no_mpi(monkeypatch)
    monkeypatch.setattr(backend_module, "cuda_device_count", lambda: len(seen.bus_ids))
    monkeypatch.setattr(world_module, "_first_gpu_bus_id", lambda: seen.bus_ids[0])

    def devices(nodes, gpus, requested="cuda"):
        job = ThreadJob(nodes)

        def rank_device(rank):
            seen.bus_ids = gpus[rank]
            return job.world_of(rank).device(requested)

        return job.run(rank_device)

    return devices


def test_ranks_share_a_nodes_gpus_one_each(job_with_gpus):
    both = ["0000:01:00.0", "0000:41:00.0"]
    assert job_with_gpus(["a", "a"], [both, both]) == ["cuda:0", "cuda:1"]


def test_a_rank_given_one_gpu_of_its_own_by_the_launcher_trains_on_it(job_with_gpus):
    # CUDA_VISIBLE_DEVICES per rank (Slurm's --gpus-per-task=1): each rank sees one GPU, another one.
    assert job_with_gpus(["a", "a"], [["0000:01:00.0"], ["0000:41:00.0"]]) == ["cuda:0", "cuda:0"]
    assert job_with_gpus(["a", "a"], [["0000:01:00.0"], ["0000:41:00.0"]], "auto") == ["cuda:0", "cuda:0"]


def test_ranks_on_two_nodes_may_each_hold_the_gpu_at_the_same_bus_id(job_with_gpus):
    assert job_with_gpus(["a", "b"], [["0000:01:00.0"], ["0000:01:00.0"]]) == ["cuda:0", "cuda:0"]


def test_two_ranks_seeing_the_same_single_gpu_are_refused(job_with_gpus):
    results = job_with_gpus(["a", "a"], [["0000:01:00.0"], ["0000:01:00.0"]])
    for rank, result in enumerate(results):
        assert isinstance(result, BackendError)
        assert str(result).startswith(f"2 ranks share this node but rank {rank} sees 1 GPU(s) and shares it with")
        assert "give each rank a GPU of its own (CUDA_VISIBLE_DEVICES, Slurm's --gpus-per-task=1)" in str(result)


def test_more_ranks_than_gpus_on_a_node_are_refused(job_with_gpus):
    both = ["0000:01:00.0", "0000:41:00.0"]
    results = job_with_gpus(["a", "a", "a"], [both, both, both])
    assert all(isinstance(result, BackendError) for result in results)
    assert "3 ranks share this node but rank 2 sees 2 GPU(s): " in str(results[2])
    assert "start at most 2 rank(s) per node" in str(results[2])


def test_cpu_and_auto_without_a_gpu_are_kept_as_given(job_with_gpus):
    assert job_with_gpus(["a", "a"], [[], []], "auto") == ["auto", "auto"]
    assert job_with_gpus(["a", "a"], [[], []], "cpu") == ["cpu", "cpu"]
