"""The real command killed with SIGKILL at random moments, or stopped by SIGTERM/SIGINT, and resumed
with ``python -m xpnet --resume``: its model.npz equals an uninterrupted run's bit for bit, and its
metrics.json in everything but wall time.

The kill moments come from a seed printed in every failure; ``XPNET_KILL_SEED=N`` replays one.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from xpnet.io import model_file, runs
from xpnet.train import checkpoint

REPO = Path(__file__).resolve().parents[2]
# 45 steps per epoch; a checkpoint every 20 steps and after each epoch.
OPTIONS = ["--dataset", "digits", "--hidden", "32", "--dropout", "0.1", "--epochs", "100"]
OPTIONS += ["--checkpoint-every", "20", "--device", "cpu"]
KILLS = 6
ENV = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}  # epoch lines as they happen


def xpnet_command(run_dir: Path) -> list[str]:
    """Resume the run in ``run_dir``, or start it (again, into the same folder) if it has no checkpoint."""
    if (run_dir / checkpoint.CHECKPOINT_FILE).exists():
        return [sys.executable, "-m", "xpnet", "--resume", str(run_dir)]
    return [sys.executable, "-m", "xpnet", *OPTIONS, "--out", str(run_dir)]


class Reference:
    """The uninterrupted run: its folder, and when (seconds from the start) it trained."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        started = time.monotonic()
        process = subprocess.Popen(xpnet_command(run_dir), stdout=subprocess.PIPE, text=True, env=ENV)
        epochs = [time.monotonic() - started for line in process.stdout if line.startswith("epoch")]
        assert process.wait() == 0
        self.finished = time.monotonic() - started
        self.training = epochs[-1] - epochs[0]
        self.starting = epochs[0] - self.training / (len(epochs) - 1)  # until the first step

    def assert_same_results(self, run_dir: Path, context: str) -> None:
        arrays, meta = model_file.read_archive(run_dir / runs.MODEL_FILE)
        expected_arrays, expected_meta = model_file.read_archive(self.run_dir / runs.MODEL_FILE)
        assert sorted(arrays) == sorted(expected_arrays), context
        for name, array in arrays.items():
            assert array.dtype == expected_arrays[name].dtype, f"{name}; {context}"
            assert np.array_equal(array, expected_arrays[name]), f"{name} differs; {context}"
        assert meta["optimizer_steps"] == expected_meta["optimizer_steps"], context
        assert without_seconds(run_dir) == without_seconds(self.run_dir), context
        confusion = (run_dir / runs.CONFUSION_FILE).read_text()
        assert confusion == (self.run_dir / runs.CONFUSION_FILE).read_text(), context


def without_seconds(run_dir: Path) -> dict:
    metrics = json.loads((run_dir / runs.METRICS_FILE).read_text())
    for epoch in metrics["epochs"]:
        del epoch["seconds"]  # wall time differs; everything else must be identical
    return metrics


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Reference:
    return Reference(tmp_path_factory.mktemp("uninterrupted") / "run")


def test_sigkill_at_random_moments_then_resume_ends_like_an_uninterrupted_run(tmp_path, reference):
    seed = int(os.environ.get("XPNET_KILL_SEED", random.randrange(2**32)))
    chooser = random.Random(seed)
    run_dir = tmp_path / "run"
    events = []
    # Each of the first KILLS kills lands late in the start-up or within a share of the training that
    # leaves the run unfinished; the last may land anywhere, the final writes included.
    latest = [reference.starting + reference.training / (KILLS + 1)] * KILLS + [reference.finished]
    for limit in latest:
        if (run_dir / runs.METRICS_FILE).exists():
            break
        command = xpnet_command(run_dir)
        delay = chooser.uniform(reference.starting / 2, limit)
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=ENV)
        time.sleep(delay)
        process.kill()
        _, errors = process.communicate()
        action = "resume" if "--resume" in command else "start"
        events.append(f"{action} killed after {delay:.2f}s: exit {process.returncode}")
        assert process.returncode in (0, -signal.SIGKILL), f"{errors}; seed {seed}: {events}"
    context = f"seed {seed} (XPNET_KILL_SEED={seed} replays it): {'; '.join(events)}"
    kills = sum(event.endswith(f"exit {-signal.SIGKILL}") for event in events)
    assert kills >= KILLS, f"only {kills} kills landed; {context}"
    if not (run_dir / runs.METRICS_FILE).exists():
        final = subprocess.run(xpnet_command(run_dir), capture_output=True, text=True, env=ENV, check=False)
        assert final.returncode == 0, f"{final.stderr}; {context}"
    reference.assert_same_results(run_dir, context)


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_finishes_the_step_checkpoints_and_says_how_to_resume(tmp_path, reference, stop_signal):
    run_dir = tmp_path / "run"
    process = subprocess.Popen(
        xpnet_command(run_dir), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=ENV
    )
    deadline = time.monotonic() + 60
    while not (run_dir / checkpoint.CHECKPOINT_FILE).exists() and time.monotonic() < deadline:
        time.sleep(0.01)  # the first checkpoint: training, and its signal handlers, have begun
    process.send_signal(stop_signal)
    _, errors = process.communicate()
    assert process.returncode == 128 + stop_signal, errors
    assert errors.startswith(f"xpnet: stopped by {signal.Signals(stop_signal).name} ")
    assert errors.endswith(f"resume with: python -m xpnet --resume {run_dir}\n")
    assert errors.count("\n") == 1
    _, meta = model_file.read_archive(run_dir / checkpoint.CHECKPOINT_FILE)
    assert not meta["run"]["finished"]
    assert not (run_dir / runs.METRICS_FILE).exists()
    resumed = subprocess.run(xpnet_command(run_dir), capture_output=True, text=True, env=ENV, check=False)
    assert resumed.returncode == 0, resumed.stderr
    reference.assert_same_results(run_dir, "stopped once")
