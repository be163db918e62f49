"""The command's run folder: what config.json records, which folders a run may use, what a failed
start leaves behind, leftovers of killed writes, and a plot that fails after the results are saved."""

from __future__ import annotations

import errno
import os
import signal

import numpy as np
import pytest

from xpnet import datasets
from xpnet.arrays.backend import numpy_backend
from xpnet.arrays.streams import INIT, RandomStream
from xpnet.cli import main
from xpnet.io import runs
from xpnet.nn import activations
from xpnet.nn.network import Network
from xpnet.report import plots
from xpnet.runner import run as runner
from xpnet.train.config import TrainConfig

OPTIONS = ["--epochs", "2", "--hidden", "8", "--quiet", "--device", "cpu"]


def one_error_line(capsys) -> str:
    error = capsys.readouterr().err
    assert error.startswith("xpnet: error: ") and error.count("\n") == 1, error
    return error


def test_config_records_the_folder_and_what_automatic_options_stood_for(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["--activation", "tanh", "--optimizer", "momentum", *OPTIONS]) == 0
    (run_dir,) = (tmp_path / "runs").iterdir()
    record = runs.read_json(run_dir / runs.CONFIG_FILE)
    assert record["options"]["out"] == str(runs.DEFAULT_PARENT / run_dir.name)
    assert record["options"]["init"] == "auto" and record["options"]["momentum"] is None  # as --resume reads them
    assert record["resolved"] == {"init": "glorot_uniform", "momentum": 0.9}


@pytest.mark.parametrize("activation", activations.ACTIVATIONS)
def test_the_recorded_init_is_the_one_the_network_was_drawn_with(activation):
    resolved = runner.resolved_options(TrainConfig(activation=activation))["init"]

    def first_weights(init):
        rng = RandomStream(numpy_backend(), 0, INIT)
        return Network.mlp([6, 5, 3], rng, activation=activation, init=init).parameters()[0]

    assert np.array_equal(first_weights("auto"), first_weights(resolved))


@pytest.mark.parametrize(
    ("optimizer", "momentum"), [("sgd", 0.0), ("nesterov", 0.9), ("adam", None)], ids=["sgd", "nesterov", "adam"]
)
def test_the_recorded_momentum_is_the_one_the_optimizer_uses(optimizer, momentum):
    assert runner.resolved_options(TrainConfig(optimizer=optimizer))["momentum"] == momentum


@pytest.mark.parametrize("name", ["config.json", "curves.png"])
def test_a_folder_with_files_of_its_own_is_refused_and_left_alone(tmp_path, capsys, name):
    (tmp_path / name).write_text('{"mine": true}')
    assert main(["--out", str(tmp_path), *OPTIONS]) == 2
    error = one_error_line(capsys)
    assert f"run folder {tmp_path} already holds other files ({name})" in error
    assert "choose another --out" in error
    assert [path.name for path in tmp_path.iterdir()] == [name]
    assert (tmp_path / name).read_text() == '{"mine": true}'


def test_a_bad_out_is_refused_before_the_data_is_loaded(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(datasets, "load", lambda *arguments, **options: pytest.fail("the data was loaded"))
    (tmp_path / "a file").write_text("")
    assert main(["--out", str(tmp_path / "a file" / "run"), *OPTIONS]) == 2
    assert "cannot create run folder" in one_error_line(capsys)


def test_an_unwritable_out_is_refused_before_the_data_is_loaded(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(datasets, "load", lambda *arguments, **options: pytest.fail("the data was loaded"))

    def read_only(source, target):  # what a folder mounted read-only (or another user's) answers
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(os, "replace", read_only)
    assert main(["--out", str(tmp_path / "run"), *OPTIONS]) == 2
    assert f"cannot write {tmp_path / 'run' / runs.CONFIG_FILE}: Read-only file system" in one_error_line(capsys)
    assert list(tmp_path.iterdir()) == []


def test_a_start_that_fails_leaves_no_folder_behind(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["--dataset", "missing.csv", *OPTIONS]) == 2  # into runs/<timestamp>
    assert main(["--dataset", "missing.csv", "--out", "new/run", *OPTIONS]) == 2
    assert "missing.csv: no such file" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("interval", ["0", "-1"])
def test_a_bad_checkpoint_interval_is_refused_before_the_folder_is_claimed(tmp_path, monkeypatch, capsys, interval):
    monkeypatch.setattr(datasets, "load", lambda *arguments, **options: pytest.fail("the data was loaded"))
    assert main(["--checkpoint-every", interval, "--out", str(tmp_path / "run"), *OPTIONS]) == 2
    error = one_error_line(capsys)
    assert (
        f"--checkpoint-every, the checkpoint interval (in optimizer steps), must be a positive integer, got {interval}"
        in error
    )
    assert list(tmp_path.iterdir()) == []


def zero_feature_npz(folder) -> str:
    path = folder / "no-features.npz"
    labels = np.array([0, 1, 0, 1])
    np.savez(path, x_train=np.zeros((4, 0), np.float32), y_train=labels, x_test=np.zeros((4, 0)), y_test=labels)
    return str(path)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (lambda data: ["--val-split", "0.9999"], "val_split 0.9999 leaves no training data: use a smaller fraction"),
        (lambda data: ["--dataset", zero_feature_npz(data)], "x_train has shape (4, 0): no features per sample"),
        (lambda data: ["--lr", "1e30"], "training diverged in epoch 1"),
    ],
    ids=["val-split", "zero-features", "diverges-in-epoch-1"],
)
@pytest.mark.parametrize("out", ["new/run", "empty"])
def test_a_start_that_fails_before_its_first_checkpoint_leaves_nothing(tmp_path, capsys, options, message, out):
    """Nothing to resume, so nothing left: a new folder is removed, a folder that was there is left empty."""
    data, work = tmp_path / "data", tmp_path / "work"
    data.mkdir()
    (work / "empty").mkdir(parents=True)
    assert main([*options(data), "--out", str(work / out), *OPTIONS]) == 2
    assert message in one_error_line(capsys)
    assert [path.name for path in work.rglob("*")] == ["empty"]


def test_leftovers_of_killed_writes_are_removed_when_the_run_continues(tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    with monkeypatch.context() as patches:
        measure = runner.TestSetMetrics.on_epoch_end

        def measure_then_stop(self, record):
            measure(self, record)
            os.kill(os.getpid(), signal.SIGINT)

        patches.setattr(runner.TestSetMetrics, "on_epoch_end", measure_then_stop)
        assert main(["--out", str(run_dir), *OPTIONS]) == 128 + signal.SIGINT
    leftovers = [f".{name}.x1y2z3w4.tmp" for name in runner.OUTPUT_FILES]
    others = [".model.npz.x1y2z3w4.bak", ".notes.x1y2z3w4.tmp", "model.npz.tmp"]
    for name in leftovers + others:
        (run_dir / name).write_bytes(b"half")
    assert main(["--resume", str(run_dir)]) == 0
    assert not [name for name in leftovers if (run_dir / name).exists()]
    assert all((run_dir / name).read_bytes() == b"half" for name in others)


def test_a_plot_failing_on_a_full_disk_says_the_results_are_saved(tmp_path, monkeypatch, capsys):
    if not plots.available():
        pytest.skip("plots need matplotlib")
    run_dir = tmp_path / "run"
    replace = os.replace

    def full_for_pictures(source, target):
        if str(target).endswith(".png"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        replace(source, target)

    monkeypatch.setattr(os, "replace", full_for_pictures)
    assert main(["--out", str(run_dir), *OPTIONS]) == 2
    error = one_error_line(capsys)
    assert error.startswith(
        f"xpnet: error: the run's results are saved in {run_dir} (metrics.json, model.npz); only its plots failed: "
        f"cannot write {run_dir / plots.CURVES_FILE}: No space left on device"
    )
    assert error.endswith(f"once that is fixed, draw them with 'xpnet plot {run_dir}'\n")
    assert len(runs.read_json(run_dir / runs.METRICS_FILE)["epochs"]) == 2
    monkeypatch.undo()
    assert main(["plot", str(run_dir)]) == 0
    assert (run_dir / plots.CURVES_FILE).is_file() and (run_dir / plots.CONFUSION_PLOT_FILE).is_file()
