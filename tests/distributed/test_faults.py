"""Faults of a distributed run: SIGTERM to the job stops every rank after the same step with one
checkpoint written by rank 0; a rank killed outright ends the job and leaves the last checkpoint
whole. Either run, resumed (on another number of ranks, which the ordered reduction allows), ends
bit-identical to an uninterrupted one."""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path

import pytest

pytest.importorskip("mpi4py")

from mpi_jobs import MPIEXEC, TIMEOUT, assert_same_run, error_lines, finished_run, run, start

from xpnet.io import model_file
from xpnet.runner import jobs

pytestmark = pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec (pip install mpich)")

OPTIONS = ("--distributed", "--hidden", "64", "--epochs", "25", "--checkpoint-every", "10", "--quiet")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    return finished_run(tmp_path_factory.mktemp("whole"), None, *OPTIONS)


def wait_for_checkpoint(run_dir: Path, job) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not (run_dir / "checkpoint.npz").exists():
        assert job.poll() is None, job.communicate()[1]
        assert time.monotonic() < deadline, "no checkpoint was written"
        time.sleep(0.02)


def rank_process(marker: str, rank: int) -> int:
    """The process id of ``rank`` of the job whose environment carries ``marker``."""
    for entry in Path("/proc").iterdir():
        try:
            variables = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, ValueError):
            continue
        if f"XPNET_TEST_JOB={marker}".encode() in variables and f"PMI_RANK={rank}".encode() in variables:
            return int(entry.name)
    raise AssertionError(f"rank {rank} of job {marker} not found")


def test_sigterm_stops_every_rank_at_one_step_and_the_run_resumes_on_one_rank(uninterrupted, tmp_path):
    run_dir = tmp_path / "run"
    job = start(2, *OPTIONS, "--out", str(run_dir))
    wait_for_checkpoint(run_dir, job)
    job.send_signal(signal.SIGTERM)  # mpiexec passes it on to every rank
    _, stderr = job.communicate(timeout=TIMEOUT)
    assert job.returncode == 128 + signal.SIGTERM
    [line] = error_lines(stderr)
    assert line.startswith("xpnet: stopped by SIGTERM in epoch ")
    assert line.endswith(f"checkpoint saved in {run_dir}; resume with: mpiexec -n 2 python -m xpnet --resume {run_dir}")
    assert not (run_dir / "metrics.json").exists()
    resumed = run(None, "--resume", str(run_dir), "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert_same_run(run_dir, uninterrupted)


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds the rank's process in /proc")
def test_a_killed_rank_ends_the_job_and_leaves_the_checkpoint_whole(uninterrupted, tmp_path):
    run_dir, marker = tmp_path / "run", uuid.uuid4().hex
    job = start(2, *OPTIONS, "--out", str(run_dir), XPNET_TEST_JOB=marker)
    wait_for_checkpoint(run_dir, job)
    os.kill(rank_process(marker, 1), signal.SIGKILL)
    job.communicate(timeout=TIMEOUT)
    assert job.returncode != 0
    _state, progress = model_file.read(run_dir / "checkpoint.npz")  # whole: every check of the reader passes
    assert isinstance(progress, dict) and not progress["finished"]
    resumed = run(4, "--resume", str(run_dir), "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert_same_run(run_dir, uninterrupted)


class SurvivingRank:
    """Rank 1 of 2 as ``jobs`` sees it, with the real MPI module; ``abort`` records its exit code."""

    rank, size, aborted = 1, 2, None

    def __init__(self):
        from mpi4py import MPI

        self.mpi = MPI

    def abort(self, exit_code):
        self.aborted = exit_code


@pytest.mark.parametrize("checkpointed", [True, False])
def test_a_rank_that_loses_another_says_on_one_line_how_to_go_on(tmp_path, capsys, checkpointed):
    """mpi4py raises MPI's failure, its message MPICH's error stack over several lines: the rank
    that survives a killed one says instead what happened and how to go on, and ends the job."""
    if checkpointed:
        (tmp_path / "checkpoint.npz").touch()
    world = SurvivingRank()
    with jobs.rank_errors_end_the_job(world, tmp_path):
        raise world.mpi.Exception(world.mpi.ERR_OTHER)
    assert world.aborted == jobs.USAGE_ERROR
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("xpnet: error: rank 1: lost contact with the other ranks (")
    assert line.endswith(
        f"its last checkpoint is whole: resume with: mpiexec -n 2 python -m xpnet --resume {tmp_path}"
        if checkpointed
        else "no checkpoint was written yet: start the run again with the same command"
    )
