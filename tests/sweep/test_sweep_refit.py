"""``refit = true``: once the trials are done, the best trial's settings train once more on every
training row (no validation split) into ``refit/``, an ordinary run folder; the summary reports its test
accuracy and model beside the chosen trial; running the command again does not train it again, and
continues one that was stopped from its checkpoint; a refit of other settings is never overwritten."""

from __future__ import annotations

import json
import os
import signal

import pytest

import xpnet
from xpnet import datasets
from xpnet.cli import main
from xpnet.errors import TrainingInterrupted, XpnetError
from xpnet.io import runs
from xpnet.runner import run as runner
from xpnet.sweep import refit, run_sweep, spec, summary
from xpnet.sweep.trial import train_run
from xpnet.train import checkpoint
from xpnet.train.callbacks import Callback

pytest.importorskip("optuna")

TINY_BASE = '[base]\ndevice = "cpu"\nhidden = [8]\nbatch-size = 64\nval-split = 0.2\nepochs = 3\nseed = 5\n'
GRID = "[parameters]\nlr = { values = [0.003, 0.03] }\n"


def sweep_file(tmp_path, refit_line: str):
    path = tmp_path / "search.toml"
    path.write_text(f'[sweep]\nmethod = "grid"\nmetric = "val_accuracy"\n{refit_line}\n{TINY_BASE}{GRID}')
    return path


def test_the_best_trial_is_refit_once_on_every_training_row(tmp_path, capsys):
    out = tmp_path / "sweep"
    result = run_sweep(sweep_file(tmp_path, "refit = false"), out=out, jobs=1, quiet=True)
    assert result.refit is None and not (out / refit.REFIT_DIR).exists()  # off by default, and when false
    assert "refit" not in json.loads((out / summary.BEST_FILE).read_text())

    # Turned on for the same sweep (it decides no trial), the command refits and does nothing else.
    path = sweep_file(tmp_path, "refit = true")
    result = run_sweep(path, out=out, jobs=1, quiet=True)
    run_dir = out / refit.REFIT_DIR
    best = json.loads((out / summary.BEST_FILE).read_text())
    assert best["refit"] == result.refit and best["trial"] == result.rows[0]["trial"]
    assert result.refit["run_dir"] == "refit" and result.refit["model"] == "refit/model.npz"

    options = runs.read_json(run_dir / runs.CONFIG_FILE)["options"]
    assert options["val_split"] == 0.0 and options["early_stopping"] is None
    assert options["lr"] == best["parameters"]["lr"] and options["seed"] == 5 and options["epochs"] == 3
    metrics = runs.read_json(run_dir / runs.METRICS_FILE)
    assert [record["epoch"] for record in metrics["epochs"]] == [1, 2, 3]
    assert not any(key.startswith("val_") for record in metrics["epochs"] for key in record)

    # Its model is where the summary says, and its reported accuracy is that model's on the test set.
    model = xpnet.load(out / best["refit"]["model"])
    _, _, x_test, y_test = datasets.load("digits")
    assert model.evaluate(x_test, y_test)["accuracy"] == result.refit["test_accuracy"] == metrics["test_accuracy"]
    assert len(model.history) == 3 and "val_loss" not in model.history[-1]

    written = {name: (run_dir / name).read_bytes() for name in (runs.MODEL_FILE, runs.METRICS_FILE)}
    assert main(["sweep", str(path), "--out", str(out)]) == 0
    printed = capsys.readouterr()
    assert "refit: training" not in printed.err  # finished: not trained again
    assert {name: (run_dir / name).read_bytes() for name in written} == written
    for text in (printed.out, (out / summary.SUMMARY_MARKDOWN).read_text()):
        assert (
            f"Refit: trial {best['trial']} trained again on the whole training set (no validation split, 3 epochs)"
            in text
        )
    assert printed.out.strip().endswith(f"model: {run_dir / runs.MODEL_FILE}")
    assert main(["sweep", "--summary", str(out)]) == 0
    assert f"refit: trial {best['trial']} trained again" in capsys.readouterr().out


class SignalAfterEpoch(Callback):
    """Sends this process SIGTERM at the end of one epoch, as a Ctrl-C or a shutdown would."""

    def __init__(self, epoch: int):
        self.epoch = epoch

    def on_epoch_end(self, record):
        if record["epoch"] == self.epoch:
            os.kill(os.getpid(), signal.SIGTERM)
        return False


def test_a_stopped_refit_continues_from_its_checkpoint_with_the_same_command(tmp_path, monkeypatch):
    out = tmp_path / "sweep"
    result = run_sweep(sweep_file(tmp_path, "refit = false"), out=out, jobs=1, quiet=True)
    run_dir = out / refit.REFIT_DIR
    with pytest.raises(TrainingInterrupted, match="stopped by SIGTERM"):
        train_run(run_dir, refit.options(result.sweep, out, result.rows[0]), [SignalAfterEpoch(2)])
    assert (run_dir / checkpoint.CHECKPOINT_FILE).exists() and not (run_dir / runs.METRICS_FILE).exists()
    calls = []
    resume = runner.resume
    monkeypatch.setattr(runner, "start", lambda *args, **kwargs: calls.append("start"))
    monkeypatch.setattr(runner, "resume", lambda *args, **kwargs: calls.append("resume") or resume(*args, **kwargs))
    result = run_sweep(sweep_file(tmp_path, "refit = true"), out=out, jobs=1, quiet=True)
    assert calls == ["resume"]
    assert [record["epoch"] for record in runs.read_json(run_dir / runs.METRICS_FILE)["epochs"]] == [1, 2, 3]
    assert result.refit["trial"] == result.rows[0]["trial"]
    # A better trial found later (the sweep was given more trials) does not overwrite this refit.
    other = {**result.rows[1], "trial": 7}
    with pytest.raises(XpnetError, match=r"refit holds the refit of other settings than the best trial's \(trial 7\)"):
        refit.fit(result.sweep, out, other)


def test_a_trial_that_stopped_early_is_refit_for_the_epochs_its_model_kept(tmp_path):
    sweep = spec.parse(
        {
            "sweep": {"method": "random", "trials": 1, "refit": True},
            "base": {"epochs": 30, "early-stopping": 2, "val-split": 0.2},
            "parameters": {"lr": {"values": [0.01]}},
        },
        "test",
    )
    trial_dir = tmp_path / "trials" / "0000"
    trial_dir.mkdir(parents=True)
    losses = [0.5, 0.3, 0.3, 0.4, 0.5]
    epochs = [{"epoch": number, "val_loss": loss} for number, loss in enumerate(losses, start=1)]
    runs.write_json(trial_dir / runs.METRICS_FILE, {"epochs": epochs})
    best = {"trial": 0, "run_dir": "trials/0000", "lr": 0.01}
    options = refit.options(sweep, tmp_path, best)
    assert options["epochs"] == 2 and options["early_stopping"] is None and options["val_split"] == 0.0
    assert options["lr"] == 0.01
