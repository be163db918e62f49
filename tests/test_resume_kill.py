"""Real training processes killed with SIGKILL at random moments, or stopped by SIGTERM/SIGINT, and
resumed: the final weights, optimizer state and metrics equal an uninterrupted run's, bit for bit."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import resume_worker

from xpnet import checkpoint, persistence

REPO = Path(__file__).resolve().parent.parent
WORKER = Path(__file__).parent / "resume_worker.py"
KILLS = 8


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run's final arrays and metadata, and how long it trained (seconds)."""
    run_dir = tmp_path_factory.mktemp("uninterrupted")
    started = time.perf_counter()
    assert resume_worker.train(run_dir) == 0
    seconds = time.perf_counter() - started
    return (*persistence.read(run_dir / resume_worker.FINAL_FILE), seconds)


def start_worker(run_dir: Path) -> subprocess.Popen:
    """Start the worker and return once it trains (imports and resuming done, signal handlers set)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        [sys.executable, str(WORKER), str(run_dir)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    if process.stdout.readline() != "training\n":  # it had no epochs left: it finishes without training
        assert process.wait() == 0, process.communicate()[1]
    return process


def assert_same_run(final_file: Path, reference) -> None:
    arrays, meta = persistence.read(final_file)
    reference_arrays, reference_meta, _ = reference
    assert sorted(arrays) == sorted(reference_arrays)
    for name, array in arrays.items():
        assert array.dtype == reference_arrays[name].dtype
        assert np.array_equal(array, reference_arrays[name]), name
    assert meta["optimizer_steps"] == reference_meta["optimizer_steps"]

    def metrics(history):
        return [{key: value for key, value in record.items() if key != "seconds"} for record in history]

    assert metrics(meta["history"]) == metrics(reference_meta["history"])


def checkpoint_steps(run_dir: Path) -> int:
    path = run_dir / checkpoint.CHECKPOINT_FILE
    return persistence.read(path)[1]["optimizer_steps"] if path.exists() else 0


def test_sigkill_at_random_moments_loses_nothing(tmp_path, reference):
    chooser = random.Random(20261124)
    # Kill moments scaled to this machine's speed, so that most kills land before training ends.
    longest_wait = 1.5 * reference[2] / KILLS
    run_dir = tmp_path / "run"
    killed_at_steps = []
    for _ in range(KILLS):
        process = start_worker(run_dir)
        time.sleep(chooser.uniform(0.0, longest_wait))
        process.send_signal(signal.SIGKILL)
        process.communicate()
        if process.returncode == 0:  # it finished before the kill landed: nothing left to interrupt
            break
        assert process.returncode == -signal.SIGKILL
        killed_at_steps.append(checkpoint_steps(run_dir))
        half_written = list(run_dir.glob(".checkpoint.npz.*.tmp"))
        print(f"killed; last checkpoint at step {killed_at_steps[-1]}{'; a write was cut short' * bool(half_written)}")
    final = start_worker(run_dir)
    _, errors = final.communicate()
    assert final.returncode == 0, errors
    assert len(killed_at_steps) >= KILLS // 2, f"only {len(killed_at_steps)} kills landed during training"
    assert killed_at_steps == sorted(killed_at_steps), "a resumed run went back in time"
    assert_same_run(run_dir / resume_worker.FINAL_FILE, reference)


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_finishes_the_step_checkpoints_and_says_how_to_resume(tmp_path, reference, stop_signal):
    run_dir = tmp_path / "run"
    process = start_worker(run_dir)
    time.sleep(reference[2] / 3)  # a third of the way into training
    process.send_signal(stop_signal)
    _, errors = process.communicate()
    assert process.returncode == 128 + stop_signal
    assert f"stopped by {signal.Signals(stop_signal).name}" in errors
    assert f"resume with: python -m xpnet --resume {run_dir}" in errors
    assert "Traceback" not in errors
    _, meta = persistence.read(run_dir / checkpoint.CHECKPOINT_FILE)
    assert not meta["run"]["finished"]
    assert resume_worker.train(run_dir) == 0
    assert_same_run(run_dir / resume_worker.FINAL_FILE, reference)
