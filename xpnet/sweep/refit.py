"""The refit (``[sweep] refit = true``), as scikit-learn's ``GridSearchCV`` refits: once the trials are done,
the best trial's settings are trained once more on the whole training set, with no validation split,
into ``refit/``, an ordinary run folder (locked and checkpointed like a trial's).

It trains the trial's epochs with the trial's seed. A trial that stopped early was chosen by the data it
held out, which the refit trains on: its refit trains, without early stopping, as many epochs as the
weights the trial kept had seen. The test set is measured, as in every run, and chooses nothing: the
trial was chosen on its validation split before the refit began.
"""

from __future__ import annotations

from pathlib import Path

from xpnet.errors import XpnetError
from xpnet.io import runs
from xpnet.runner import run as runner
from xpnet.runner.settings import resolve_values
from xpnet.sweep.spec import Sweep
from xpnet.sweep.trial import kept_epoch, train_run

REFIT_DIR = "refit"


def options(spec: Sweep, sweep_dir: Path, best: dict, *, quiet: bool = True) -> dict:
    """The refit's options: the sweep's ``[base]`` and the ``best`` row's parameters (a summary row),
    validating on nothing."""
    values = {**spec.base, **{parameter.name: best[parameter.name] for parameter in spec.parameters}}
    early_stopping = resolve_values(values).config.early_stopping
    if early_stopping:
        trained = runs.read_json(Path(sweep_dir) / best["run_dir"] / runs.METRICS_FILE)["epochs"]
        values.update(early_stopping=None, epochs=kept_epoch(trained, early_stopping)["epoch"])
    return {**values, "val_split": 0.0, "quiet": quiet, "json": False}


def fit(spec: Sweep, sweep_dir: Path, best: dict, *, quiet: bool = True) -> None:
    """Train the refit of the ``best`` row into ``refit/``, resume one that was stopped, or leave a
    finished one as it is. A refit of other settings (the sweep has gained a better trial since) is
    refused rather than overwritten."""
    run_dir = Path(sweep_dir) / REFIT_DIR
    wanted = options(spec, sweep_dir, best, quiet=quiet)
    if (run_dir / runs.CONFIG_FILE).exists() and not _same_training(runner.recorded_options(run_dir), wanted):
        raise XpnetError(
            f"{run_dir} holds the refit of other settings than the best trial's (trial {best['trial']}): "
            "move that folder away and run the same command to refit the best trial"
        )
    train_run(run_dir, wanted)


def record(spec: Sweep, sweep_dir: Path, best: dict | None) -> dict | None:
    """The finished refit of the ``best`` row (None where there is none): the trial it refits, its test
    accuracy and loss, and its run folder and model relative to the sweep folder."""
    run_dir = Path(sweep_dir) / REFIT_DIR
    if best is None or not (run_dir / runs.METRICS_FILE).exists():
        return None
    if not _same_training(runner.recorded_options(run_dir), options(spec, sweep_dir, best)):
        return None
    metrics = runs.read_json(run_dir / runs.METRICS_FILE)
    return {
        "trial": best["trial"],
        "test_accuracy": metrics["test_accuracy"],
        "test_loss": metrics["test_loss"],
        "epochs": len(metrics["epochs"]),
        "run_dir": REFIT_DIR,
        "model": str(Path(REFIT_DIR) / runs.MODEL_FILE),
    }


def _same_training(recorded: dict, wanted: dict) -> bool:
    """Whether two runs' options train the same model on the same data (where and how they are watched aside)."""
    first, second = resolve_values(recorded), resolve_values(wanted)
    return first.config == second.config and first.run["dataset"] == second.run["dataset"]
