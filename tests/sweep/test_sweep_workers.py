"""Sweeps run for real, by worker processes on the embedded digits with tiny networks: two workers on one
journal file run each trial once; a worker SIGKILLed mid-trial has its trial run again from its
checkpoint (no trial trains to the end twice); a grid is covered exactly; a pruner stops a hopeless
trial; an SQLite database serves as the storage; the summary is written and printed."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import xpnet
from xpnet.cli import main
from xpnet.io import locks, runs
from xpnet.sweep import claims, engine, folder, run_sweep, summary
from xpnet.train import checkpoint

optuna = pytest.importorskip("optuna")

REPO = Path(__file__).resolve().parents[2]
TINY_BASE = '[base]\ndevice = "cpu"\nhidden = [8]\nbatch-size = 64\nval-split = 0.2\n'


def sweep_file(tmp_path, sweep: str, parameters: str, base: str = TINY_BASE + "epochs = 3\n") -> Path:
    path = tmp_path / "search.toml"
    path.write_text(f"[sweep]\n{sweep}\n{base}\n[parameters]\n{parameters}\n")
    return path


def trials_of(sweep_dir: Path) -> list:
    """The sweep's trials as its storage holds them."""
    sweep = folder.read_spec(sweep_dir)
    study = optuna.load_study(study_name=sweep.settings["name"], storage=engine.storage(sweep, sweep_dir))
    return study.get_trials()


def complete(trials) -> list:
    return [trial for trial in trials if trial.state == optuna.trial.TrialState.COMPLETE]


def epochs_in(run_dir: Path) -> list[int]:
    return [record["epoch"] for record in runs.read_json(run_dir / runs.METRICS_FILE)["epochs"]]


def assert_each_trial_trained_once(sweep_dir: Path, trials, places: int, epochs: int) -> None:
    """``places`` trials completed, each in a run folder of its own that trained every epoch once; any
    other trial in the storage is a surplus that never trained, or a trial whose retry completed."""
    finished = complete(trials)
    assert len(finished) == places
    folders = [trial.user_attrs["run_dir"] for trial in finished]
    assert len(set(folders)) == places, folders
    for name in folders:
        assert epochs_in(sweep_dir / name) == list(range(1, epochs + 1)), name
    retried = {number for trial in trials for number in trial.system_attrs.get("retry_history", [])}
    for trial in trials:
        if trial not in finished:
            assert trial.user_attrs.get("surplus") or trial.number in retried, trial


def test_two_workers_on_one_journal_run_each_trial_once_and_summarise_it(tmp_path, capsys):
    path = sweep_file(
        tmp_path, 'method = "random"\ntrials = 6\nseed = 3', "lr = { min = 1e-3, max = 3e-2, log = true }"
    )
    out = tmp_path / "sweep"
    result = run_sweep(path, out=out, jobs=2, quiet=True)
    trials = trials_of(out)
    assert_each_trial_trained_once(out, trials, places=6, epochs=3)
    assert (out / engine.JOURNAL_FILE).is_file()
    workers = {trial.user_attrs[claims.CLAIM]["worker"] for trial in complete(trials)}
    assert len(workers) == 2  # both workers took trials from the one journal
    # The summary: ranked by the metric, one row per trial, the best trial's model where best.json says.
    values = [row["val_loss"] for row in result.rows]
    assert values == sorted(values) and len(values) == 6
    assert [row["state"] for row in result.rows] == ["complete"] * 6
    csv_lines = (out / summary.SUMMARY_CSV).read_text().splitlines()
    assert csv_lines[0] == "rank,trial,state,val_loss,seconds,run_dir,lr,note" and len(csv_lines) == 7
    best = json.loads((out / summary.BEST_FILE).read_text())
    assert best["trial"] == result.rows[0]["trial"] and best["value"] == values[0]
    model = xpnet.load(out / best["model"])
    assert model.history[-1]["val_loss"] == pytest.approx(best["value"])
    for picture in (summary.HISTORY_PLOT, summary.IMPORTANCE_PLOT):
        assert (out / picture).read_bytes().startswith(b"\x89PNG")
    assert main(["sweep", "--summary", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| rank | trial | state | val_loss | seconds | run_dir | lr | note |" in printed
    assert printed.count("| complete |") == 6
    assert printed.strip().endswith(f"model: {out / best['run_dir'] / runs.MODEL_FILE}")


def test_a_worker_killed_mid_trial_has_its_trial_run_again_from_its_checkpoint(tmp_path):
    epochs = 40
    path = sweep_file(
        tmp_path,
        'method = "random"\ntrials = 4',
        "lr = { min = 1e-3, max = 1e-2, log = true }",
        base=TINY_BASE.replace("[8]", "[64]") + f"epochs = {epochs}\n",
    )
    out = tmp_path / "sweep"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "xpnet", "sweep", str(path), "--out", str(out), "--jobs", "2", "--quiet"]
    driver = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env)
    try:
        victim = wait_for_a_checkpoint(out, deadline=time.monotonic() + 120)
        holder = locks.holder(victim / runs.LOCK_FILE)
        os.kill(holder["pid"], signal.SIGKILL)
        _, errors = driver.communicate(timeout=300)
    finally:
        driver.kill()
    assert driver.returncode == 0, errors
    trials = trials_of(out)
    assert_each_trial_trained_once(out, trials, places=4, epochs=epochs)
    name = str(victim.relative_to(out))
    killed = [trial for trial in trials if trial.user_attrs.get("run_dir") == name]
    states = sorted(trial.state.name for trial in killed)
    assert states == ["COMPLETE", "FAIL"], states  # lost once, then finished by its retry in the same folder
    retry = next(trial for trial in killed if trial.state.name == "COMPLETE")
    assert retry.system_attrs["failed_trial"] == min(trial.number for trial in killed)


def wait_for_a_checkpoint(out: Path, deadline: float) -> Path:
    """The first trial folder whose run has checkpointed but not finished (its worker is training)."""
    while time.monotonic() < deadline:
        for run_dir in sorted((out / "trials").glob("*")) if (out / "trials").is_dir() else []:
            training = (run_dir / checkpoint.CHECKPOINT_FILE).exists() and not (run_dir / runs.METRICS_FILE).exists()
            if training and locks.holder(run_dir / runs.LOCK_FILE).get("pid"):
                return run_dir
        time.sleep(0.02)
    raise AssertionError("no trial checkpointed in time")


def test_a_grid_is_covered_exactly_by_two_workers(tmp_path):
    path = sweep_file(
        tmp_path,
        'method = "grid"',
        "lr = { values = [0.01, 0.003] }\nhidden = { values = [[8], [16, 8]] }",
        base=TINY_BASE.replace("hidden = [8]\n", "") + "epochs = 3\n",
    )
    out = tmp_path / "sweep"
    run_sweep(path, out=out, jobs=2, quiet=True)
    trials = trials_of(out)
    assert_each_trial_trained_once(out, trials, places=4, epochs=3)
    points = sorted((trial.params["lr"], trial.params["hidden"]) for trial in complete(trials))
    assert points == sorted(itertools.product([0.01, 0.003], ["[8]", "[16, 8]"]))


def test_the_median_pruner_stops_hopeless_trials(tmp_path):
    epochs = 5
    # A grid's points run in the order of its values: the first trial finishes (the pruner's one start-up
    # trial), and the two hopeless learning rates after it are judged against it from epoch 2 on.
    path = sweep_file(
        tmp_path,
        'method = "grid"\npruner = "median"\npruner-startup-trials = 1\npruner-warmup-epochs = 1',
        "lr = { values = [0.03, 1e-6, 1e-7] }",
        base=TINY_BASE + f"epochs = {epochs}\n",
    )
    out = tmp_path / "sweep"
    result = run_sweep(path, out=out, jobs=1, quiet=True)
    states = {row["lr"]: row["state"] for row in result.rows}
    assert states == {0.03: "complete", 1e-6: "pruned", 1e-7: "pruned"}, result.rows
    finished = runs.read_json(out / result.rows[0]["run_dir"] / runs.METRICS_FILE)["epochs"]
    for row in result.rows[1:]:  # stopped after epoch 2, and still an ordinary run folder with its results
        assert epochs_in(out / row["run_dir"]) == [1, 2]
        assert row["note"] == "pruned after epoch 2"
        assert row["val_loss"] > finished[1]["val_loss"]
        assert (out / row["run_dir"] / runs.MODEL_FILE).is_file()


def test_an_sqlite_database_holds_the_study(tmp_path):
    database = tmp_path / "studies.db"
    path = sweep_file(
        tmp_path, f'method = "tpe"\ntrials = 3\nstorage = "sqlite:///{database}"', "lr = { min = 1e-3, max = 1e-2 }"
    )
    out = tmp_path / "sweep"
    run_sweep(path, out=out, jobs=2, quiet=True)
    assert database.is_file() and not (out / engine.JOURNAL_FILE).exists()
    assert_each_trial_trained_once(out, trials_of(out), places=3, epochs=3)


def test_import_xpnet_does_not_import_optuna():
    code = "import sys, xpnet, xpnet.cli, xpnet.sweep; print('optuna' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)}
    )
    assert result.stdout.strip() == "False", result.stderr
