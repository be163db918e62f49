"""``mpiexec -n N python -m xpnet --distributed`` trains the model one process trains: with the default
ordered reduction, 2 ranks and an oversubscribed 4 end with the same weights, optimizer state and
metrics as a world of one, bit for bit (dropout on, a last batch that the slots split unevenly)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("mpi4py")

from mpi_jobs import MPIEXEC, assert_same_run, finished_run, run

pytestmark = pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec (pip install mpich)")

# 1,438 training rows in batches of 40: the last batch holds 38, cut into slots of 9 and 10 rows.
OPTIONS = ("--distributed", "--hidden", "16", "--epochs", "2", "--batch-size", "40", "--dropout", "0.2", "--quiet")


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    return finished_run(tmp_path_factory.mktemp("one"), None, *OPTIONS)


@pytest.mark.parametrize("ranks", [2, 4])
def test_ranks_train_the_model_of_one_process_bit_for_bit(one_process, ranks, tmp_path):
    run_dir = tmp_path / "run"
    result = run(ranks, *OPTIONS, "--out", str(run_dir))
    assert result.returncode == 0, result.stderr
    assert_same_run(run_dir, one_process)
    assert sorted(path.name for path in run_dir.iterdir()) == sorted(path.name for path in one_process.iterdir())
    assert json.loads((run_dir / "config.json").read_text())["ranks"] == ranks


def test_allreduce_is_reproducible_on_a_fixed_number_of_ranks_and_resumes_only_on_it(one_process, tmp_path):
    runs = [tmp_path / "first", tmp_path / "second"]
    for run_dir in runs:
        result = run(2, *OPTIONS, "--reduction", "allreduce", "--out", str(run_dir))
        assert result.returncode == 0, result.stderr
    assert_same_run(runs[1], runs[0])
    # A run that lost its results after training resumes; on another number of ranks it is refused.
    for name in ("metrics.json", "model.npz"):
        (runs[0] / name).unlink()
    result = run(None, "--resume", str(runs[0]))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"xpnet: error: the run in {runs[0]} sums gradients with --reduction allreduce on 2 ranks, whose order "
        "of additions depends on their number: resume it with mpiexec -n 2"
    )
