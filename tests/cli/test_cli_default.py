"""The default command, ``python -m xpnet`` with no arguments, and the exit code and single stderr line
of ``main`` for bad values: the first thing a new user runs must work and explain its own mistakes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from xpnet.arrays.backend import cuda_available
from xpnet.cli import main

REPOSITORY = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def default_run(tmp_path_factory) -> subprocess.CompletedProcess:
    """``python -m xpnet`` run as a user would, from a directory other than the repository."""
    environment = {**os.environ, "PYTHONPATH": str(REPOSITORY)}
    return subprocess.run(
        [sys.executable, "-m", "xpnet"],
        capture_output=True,
        text=True,
        cwd=tmp_path_factory.mktemp("user"),
        env=environment,
        timeout=300,
        check=False,
    )


def test_the_default_run_prints_every_epoch_and_reaches_97_percent(default_run):
    assert default_run.returncode == 0, default_run.stderr
    assert "Traceback" not in default_run.stderr
    lines = default_run.stdout.strip().splitlines()
    epochs = [int(match.group(1)) for line in lines if (match := re.match(r"epoch\s+(\d+)/30\s+train loss", line))]
    assert epochs == list(range(1, 31))
    final = re.fullmatch(
        r"test accuracy (\d+\.\d+)% \(loss (\d+\.\d+)\) after 30 epochs in .*s on numpy cpu; run folder: .*",
        lines[-1],
    )
    assert final, lines[-1]
    assert float(final.group(1)) >= 97.0
    assert float(final.group(2)) < 0.2


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--lr", "-0.1"], "learning rate must be positive, got -0.1; try 0.001 with adam"),
        (["--epochs", "0"], "epochs must be a positive integer, got 0"),
        (["--activation", "swish"], "unknown activation 'swish': choose one of"),
        (["--optimizer", "adagrad"], "unknown optimizer 'adagrad': choose one of"),
        (["--dtype", "float16"], "unknown dtype 'float16': choose one of float32, float64"),
        (["--dropout", "1.0"], r"dropout must be in \[0, 1\), got 1.0"),
        (["--device", "gpu"], "unknown device 'gpu': use 'cpu', 'cuda', 'cuda:N' or 'auto'"),
        (["--dataset", "cifar"], "unknown dataset 'cifar': choose digits, mnist, fashion-mnist, or a path"),
    ],
)
def test_bad_values_exit_2_with_one_line_on_stderr(capsys, arguments, message):
    assert main(["--epochs", "1", "--quiet", *arguments]) == 2  # the last --epochs given wins
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(captured.err.splitlines()) == 1
    assert re.match(r"xpnet: error: " + message, captured.err), captured.err


@pytest.mark.skipif(cuda_available(), reason="CUDA is usable here: asking for it is not an error")
def test_cuda_without_a_usable_gpu_exits_2_saying_what_to_do(capsys):
    assert main(["--device", "cuda", "--epochs", "1", "--quiet"]) == 2
    error = capsys.readouterr().err
    assert len(error.splitlines()) == 1
    assert re.match(
        r"xpnet: error: (CUDA was requested but CuPy is not installed|CUDA was requested but no usable)", error
    )
    assert "--device cpu" in error


def test_a_value_argparse_cannot_read_exits_2_with_one_line(capsys):
    assert main(["--lr", "fast"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert "argument --lr: invalid float value: 'fast'" in error
