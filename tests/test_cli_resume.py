"""``python -m xpnet --resume RUN_DIR``: a run stopped by SIGTERM continues to the same result."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from xpnet.cli import main

ROOT = Path(__file__).resolve().parents[1]
OPTIONS = ["--epochs", "60", "--hidden", "32", "--dropout", "0.1", "--checkpoint-every", "7", "--quiet"]


def _metrics(run_dir: Path) -> dict:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for epoch in metrics["epochs"]:
        del epoch["seconds"]  # wall time differs; everything else must be identical
    return metrics


def test_sigterm_then_resume_matches_an_uninterrupted_run(tmp_path):
    assert main(["--out", str(tmp_path / "whole"), *OPTIONS]) == 0
    stopped = tmp_path / "stopped"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "xpnet", "--out", str(stopped), *OPTIONS],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not (stopped / "checkpoint.npz").exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    if process.poll() is not None:
        pytest.skip("the run ended before it could be interrupted")
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    if process.returncode == 0:
        pytest.skip("the run ended before the signal arrived")
    assert process.returncode == 128 + signal.SIGTERM
    assert f"resume with: python -m xpnet --resume {stopped}" in stderr
    assert not (stopped / "metrics.json").exists()

    assert main(["--resume", str(stopped), "--quiet"]) == 0
    assert _metrics(stopped) == _metrics(tmp_path / "whole")


def test_new_run_into_an_interrupted_folder_points_at_resume(tmp_path, capsys):
    (tmp_path / "checkpoint.npz").write_bytes(b"")
    assert main(["--out", str(tmp_path), "--epochs", "1"]) == 2
    assert f"continue it with 'python -m xpnet --resume {tmp_path}'" in capsys.readouterr().err


def test_resume_of_a_folder_without_a_run_is_one_clear_line(tmp_path, capsys):
    assert main(["--resume", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("xpnet: error:") and error.count("\n") == 1


def test_run_files_are_readable_like_any_new_file(tmp_path):
    assert main(["--out", str(tmp_path / "run"), "--epochs", "1", "--quiet"]) == 0
    umask = os.umask(0)
    os.umask(umask)
    for name in ("config.json", "metrics.json", "model.npz", "checkpoint.npz"):
        assert (tmp_path / "run" / name).stat().st_mode & 0o777 == 0o666 & ~umask
