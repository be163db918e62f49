"""Running xpnet as an MPI job in the tests: ``mpiexec`` from beside this interpreter (the mpich wheel of
the ``test`` extra) or the PATH, with this repository's source first on every rank's import path."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MPIEXEC = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which("mpiexec")
TIMEOUT = 180


def environment(**extra: str) -> dict:
    search_path = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(search_path), **extra}


def command(ranks: int | None, *options: str) -> list[str]:
    """``python -m xpnet OPTIONS`` as a lone process (``ranks`` None) or under ``mpiexec -n ranks``."""
    xpnet = [sys.executable, "-m", "xpnet", *options]
    return xpnet if ranks is None else [MPIEXEC, "-n", str(ranks), *xpnet]


def run(ranks: int | None, *options: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        command(ranks, *options), env=environment(), capture_output=True, text=True, timeout=TIMEOUT, check=False
    )


def start(ranks: int | None, *options: str, **extra_environment: str) -> subprocess.Popen:
    return subprocess.Popen(
        command(ranks, *options),
        env=environment(**extra_environment),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def error_lines(stderr: str) -> list[str]:
    """xpnet's own lines on stderr (the launcher may add its own around them)."""
    return [line for line in stderr.splitlines() if line.startswith("xpnet:")]


def arrays(run_dir: Path) -> dict[str, np.ndarray]:
    """The numeric arrays of the run's model file: weights and optimizer buffers (not ``meta``, the JSON
    that also holds each epoch's seconds)."""
    with np.load(run_dir / "model.npz") as archive:
        return {name: archive[name] for name in archive.files if name != "meta"}


def metrics(run_dir: Path) -> dict:
    """metrics.json without the seconds each epoch took."""
    record = json.loads((run_dir / "metrics.json").read_text())
    for epoch in record["epochs"]:
        del epoch["seconds"]
    return record


def assert_same_run(run_dir: Path, reference: Path) -> None:
    """The two runs ended with the same model, optimizer state and metrics, bit for bit."""
    got, expected = arrays(run_dir), arrays(reference)
    assert got.keys() == expected.keys()
    for name, array in expected.items():
        assert got[name].dtype == array.dtype and np.array_equal(got[name], array), name
    assert metrics(run_dir) == metrics(reference)


def finished_run(folder: Path, ranks: int | None, *options: str) -> Path:
    """The run folder of ``python -m xpnet OPTIONS`` (under ``mpiexec -n ranks``), checked to have finished."""
    run_dir = folder / "run"
    result = run(ranks, *options, "--out", str(run_dir))
    assert result.returncode == 0, result.stderr
    return run_dir
