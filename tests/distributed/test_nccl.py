"""The GPU path: one GPU per rank, gradients summed by NCCL through CuPy. Needs two GPUs (run with
``-m cuda``); two ranks must train what one process trains, bit for bit, as on the CPU."""

from __future__ import annotations

import pytest
from mpi_jobs import MPIEXEC, assert_same_run, finished_run

pytestmark = pytest.mark.cuda


def gpus() -> int:
    cupy = pytest.importorskip("cupy")
    try:
        return cupy.cuda.runtime.getDeviceCount()
    except cupy.cuda.runtime.CUDARuntimeError:
        return 0


@pytest.fixture(scope="module")
def two_gpus():
    pytest.importorskip("mpi4py")
    if MPIEXEC is None or gpus() < 2:
        pytest.skip("needs mpiexec and two CUDA GPUs")
    from xpnet.distributed.exchange import nccl_available

    if not nccl_available():
        pytest.skip("CuPy has no NCCL here (pip install nvidia-nccl-cu12)")


OPTIONS = ("--distributed", "--device", "cuda", "--hidden", "64", "--epochs", "2", "--dropout", "0.2", "--quiet")


def test_two_gpus_train_the_model_of_one_bit_for_bit(two_gpus, tmp_path):
    one = finished_run(tmp_path / "one", None, *OPTIONS)
    two = finished_run(tmp_path / "two", 2, *OPTIONS)
    assert_same_run(two, one)


def test_allreduce_over_nccl_is_reproducible(two_gpus, tmp_path):
    first = finished_run(tmp_path / "first", 2, *OPTIONS, "--reduction", "allreduce")
    second = finished_run(tmp_path / "second", 2, *OPTIONS, "--reduction", "allreduce")
    assert_same_run(second, first)
