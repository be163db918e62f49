"""One trial's run: a retry whose lost original had already trained to the end only reads its results
(no trial trains twice), removing what the lost worker left half-written and drawing what it did not;
and the value a trial reports is that of the epoch whose weights its model kept."""

from __future__ import annotations

from xpnet.cli import main
from xpnet.io import runs
from xpnet.report import plots
from xpnet.sweep import spec
from xpnet.sweep.trial import Objective, kept_value

OPTIONS = ["--epochs", "2", "--hidden", "8", "--val-split", "0.2", "--quiet", "--device", "cpu"]


def test_a_retry_of_a_run_that_had_finished_reads_its_results_without_training(tmp_path):
    run_dir = tmp_path / "trials" / "0000"
    assert main(["--out", str(run_dir), *OPTIONS]) == 0
    model_bytes = (run_dir / runs.MODEL_FILE).read_bytes()
    (run_dir / plots.CONFUSION_PLOT_FILE).unlink()  # the lost worker was drawing it
    leftover = run_dir / f".{plots.CONFUSION_PLOT_FILE}.x1y2z3w4.tmp"
    leftover.write_bytes(b"half a picture")
    tables = {"sweep": {"method": "random", "trials": 1}, "base": {"val-split": 0.2}}
    sweep = spec.parse({**tables, "parameters": {"lr": {"values": [0.01]}}}, "test")
    epochs, early_stopping = Objective(sweep, tmp_path, "worker")._train(run_dir, {"lr": 0.01}, reporter=None)
    assert epochs == runs.read_json(run_dir / runs.METRICS_FILE)["epochs"] and len(epochs) == 2
    assert early_stopping is None
    assert (run_dir / runs.MODEL_FILE).read_bytes() == model_bytes  # not trained again
    assert (run_dir / plots.CONFUSION_PLOT_FILE).read_bytes().startswith(b"\x89PNG")
    assert not leftover.exists()
    assert not (run_dir / runs.LOCK_FILE).exists()


def test_a_trial_reports_the_epoch_its_model_kept():
    epochs = [
        {"epoch": 1, "val_loss": 0.5, "val_accuracy": 0.8},
        {"epoch": 2, "val_loss": 0.3, "val_accuracy": 0.9},
        {"epoch": 3, "val_loss": 0.3, "val_accuracy": 0.91},
        {"epoch": 4, "val_loss": 0.4, "val_accuracy": 0.92},
    ]
    assert kept_value(epochs, "val_accuracy", early_stopping=None) == 0.92  # the last epoch's weights
    assert kept_value(epochs, "val_accuracy", early_stopping=2) == 0.9  # the first of lowest validation loss
    assert kept_value(epochs, "val_loss", early_stopping=2) == 0.3
