"""A distributed run that cannot start says why in one line, once (rank 0 speaks for the job), exits
with code 2 and leaves no run folder behind."""

from __future__ import annotations

import sys

import pytest

from xpnet.cli import main

mpi4py = pytest.importorskip("mpi4py")

from mpi_jobs import MPIEXEC, ROOT, environment  # noqa: E402

pytestmark = pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec (pip install mpich)")


def launch(*arguments: str):
    import subprocess

    return subprocess.run(
        [MPIEXEC, *arguments], env=environment(), capture_output=True, text=True, timeout=120, check=False, cwd=ROOT
    )


def test_without_mpi4py_distributed_names_the_extra_to_install(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # import mpi4py now fails as if it were not installed
    monkeypatch.setitem(sys.modules, "mpi4py.MPI", None)
    assert main(["--distributed", "--epochs", "1", "--out", str(tmp_path / "run")]) == 2
    captured = capsys.readouterr()
    assert captured.err == (
        "xpnet: error: data-parallel training needs mpi4py and an MPI library: pip install 'xpnet[mpi]'\n"
    )
    assert not (tmp_path / "run").exists()


def test_ranks_given_different_options_are_refused_in_one_line(tmp_path):
    out = str(tmp_path / "run")
    xpnet = [sys.executable, "-m", "xpnet", "--distributed", "--out", out]
    result = launch("-n", "1", *xpnet, "--epochs", "2", ":", "-n", "1", *xpnet, "--epochs", "3")
    assert result.returncode == 2
    assert result.stderr == (
        f"xpnet: error: the ranks were started with different command lines: rank 0 has 'train --distributed "
        f"--out {out} --epochs 2', rank 1 has 'train --distributed --out {out} --epochs 3'; launch every rank with "
        "the same command\n"
    )
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            ["--epochs", "1"],
            "this process is one of 2 ranks of an MPI job, but --distributed was not given: add it to train one "
            "model over them, or start a single process",
        ),
        (
            ["--distributed", "--micro-batches", "1"],
            "2 ranks cannot share 1 micro-batches per step: give at least as many micro-batches as ranks "
            "(--micro-batches 2), or --reduction allreduce",
        ),
        (["--distributed", "--dataset", "missing.csv"], "missing.csv: no such file or folder; check the path"),
    ],
)
def test_a_launch_every_rank_refuses_is_reported_once(options, message, tmp_path):
    result = launch("-n", "2", sys.executable, "-m", "xpnet", *options, "--out", str(tmp_path / "run"))
    assert result.returncode == 2
    assert result.stderr == f"xpnet: error: {message}\n"
    assert not (tmp_path / "run").exists()


def test_distributed_settings_without_distributed_are_refused(capsys, tmp_path):
    assert main(["--reduction", "allreduce", "--out", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err == "xpnet: error: --reduction applies to --distributed runs: add --distributed\n"


def test_resuming_a_run_started_without_distributed_under_mpiexec_says_how_it_resumes(capsys, tmp_path):
    """The way the message names is the one that works: --distributed beside --resume is refused."""
    run_dir = tmp_path / "run"
    assert main(["--epochs", "1", "--hidden", "8", "--quiet", "--out", str(run_dir)]) == 0
    (run_dir / "metrics.json").unlink()  # training ended, results missing: a run to resume
    result = launch("-n", "2", sys.executable, "-m", "xpnet", "--resume", str(run_dir))
    assert result.returncode == 2
    assert result.stderr == (
        f"xpnet: error: the run in {run_dir} was started without --distributed, so it continues in one process: "
        f"python -m xpnet --resume {run_dir} (without mpiexec)\n"
    )
    assert main(["--resume", str(run_dir), "--quiet"]) == 0
    assert (run_dir / "metrics.json").is_file()
