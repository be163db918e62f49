"""One trial: an ordinary run folder inside the sweep folder, trained by ``xpnet.runner`` like any
``xpnet train``, that reports its metric to Optuna after every epoch and stops when the pruner says so.

A trial's folder is ``trials/<number>``. A retry (a trial run again after its worker was lost) takes
over its original's folder: it resumes from the checkpoint there, or, where the original had finished
training before it was lost, only reads its results, so no trial trains twice to the end.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

from xpnet.errors import XpnetError, one_line
from xpnet.io import runs
from xpnet.runner import run as runner
from xpnet.runner.settings import resolve_values
from xpnet.runner.warning_log import NUMPY_FLOATING_POINT, WarningLog
from xpnet.sweep import budget, claims, engine
from xpnet.sweep.spec import Sweep
from xpnet.train import checkpoint
from xpnet.train.callbacks import Callback

TRIALS_DIR = "trials"
# Trial user attributes: the run folder (relative to the sweep folder), and why a trial failed.
RUN_DIR = "run_dir"
ERROR = "error"
# Options a trial's run always has: it prints nothing (the sweep shows progress) and runs where its worker does.
QUIET = {"quiet": True, "json": False}


class Surplus(XpnetError):
    """A trial with no place in the sweep (see ``budget``): it ends at once, before training."""


class ReportToTrial(Callback):
    """Reports the sweep's metric to the Optuna trial after every epoch (a resumed run's earlier epochs
    first) and stops training once the trial's pruner says it is hopeless."""

    def __init__(self, trial, metric: str):
        self.trial, self.metric = trial, metric
        self.pruned_after: int | None = None

    def on_train_begin(self, model, epochs):
        for record in model.history:
            self.trial.report(record[self.metric], record["epoch"])

    def on_epoch_end(self, record):
        self.trial.report(record[self.metric], record["epoch"])
        if self.trial.should_prune():
            self.pruned_after = record["epoch"]
            return True
        return False


def kept_epoch(epochs: list[dict], early_stopping: int | None) -> dict:
    """The record of the epoch whose weights the run kept: the last, or with early stopping the first
    of lowest validation loss, whose weights it restored."""
    return min(epochs, key=lambda record: record["val_loss"]) if early_stopping else epochs[-1]


def kept_value(epochs: list[dict], metric: str, early_stopping: int | None) -> float:
    """The metric of the epoch whose weights the run kept (``kept_epoch``)."""
    return kept_epoch(epochs, early_stopping)[metric]


@dataclass
class Objective:
    """What Optuna calls for each trial a worker runs; ``current`` is the number of the last one."""

    spec: Sweep
    sweep_dir: Path
    worker_id: str
    device: str | None = None
    current: int | None = None

    def __call__(self, trial) -> float:
        claims.claim(trial, self.worker_id)
        self.current = trial.number
        trials = trial.study.get_trials(deepcopy=False)
        frozen = next(other for other in trials if other.number == trial.number)
        if budget.is_surplus_trial(trials, frozen, self.spec.settings["trials"]):
            self._give_way(trial, "has no place left in the sweep")
        values = self._settings(trial, trials, frozen)
        run_dir = self._run_dir(frozen)
        trial.set_user_attr(RUN_DIR, str(run_dir.relative_to(self.sweep_dir)))
        reporter = ReportToTrial(trial, self.spec.settings["metric"])
        try:
            epochs, early_stopping = self._train(run_dir, values, reporter)
        except XpnetError as error:
            trial.set_user_attr(ERROR, one_line(error))
            raise
        if reporter.pruned_after is not None:
            raise engine.optuna().TrialPruned(f"pruned after epoch {reporter.pruned_after}")
        return kept_value(epochs, self.spec.settings["metric"], early_stopping)

    def _settings(self, trial, trials, frozen) -> dict:
        """The trial's settings, as the options take them: drawn by the sampler (a retry's are its
        original's), or a grid's first point that no other trial has."""
        grid = self.spec.settings["method"] == "grid" and not budget.is_retry(frozen)
        if grid:
            point = budget.free_grid_point(trials, trial.number, self.spec.grid())
            if point is None:
                self._give_way(trial, "finds every grid point taken")
            trial.study.sampler = engine.fixed_sampler(point)
        values = {parameter.name: parameter.suggest(trial) for parameter in self.spec.parameters}
        if grid and budget.repeats_an_earlier_point(trial.study.get_trials(deepcopy=False), trial):
            self._give_way(trial, "took a grid point at the same moment as an earlier trial")
        return values

    def _give_way(self, trial, reason: str):
        trial.set_user_attr(budget.SURPLUS, True)
        raise Surplus(f"trial {trial.number} {reason}")

    def _run_dir(self, frozen) -> Path:
        """The original's folder for a retry where it is here, else a new one named by the trial's number."""
        inherited = frozen.user_attrs.get(RUN_DIR)
        if budget.is_retry(frozen) and inherited and (self.sweep_dir / inherited).is_dir():
            return self.sweep_dir / inherited
        return self.sweep_dir / TRIALS_DIR / f"{frozen.number:04d}"

    def _train(self, run_dir: Path, values: dict, reporter: ReportToTrial) -> tuple[list[dict], int | None]:
        """Train (or resume, or read back) the trial's run; its epochs' records and its early stopping."""
        where = {"device": self.device} if self.device else {}
        return train_run(run_dir, {**self.spec.base, **values, **QUIET, **where}, [reporter])


def train_run(run_dir: Path, options: dict, callbacks=()) -> tuple[list[dict], int | None]:
    """Train the run of ``options`` into ``run_dir``; or resume it from its checkpoint there (``options``
    may change only how it is watched and where it runs); or, where it had trained to the end, only read
    its results, redrawing what the process that trained it left undrawn. Its epochs' records and its
    early stopping."""
    if (run_dir / runs.METRICS_FILE).exists():  # trained to the end before its process was lost
        with runs.lock(run_dir):  # the lost process may have been drawing its pictures
            runner.remove_leftovers(run_dir)
            runner.draw_pictures(run_dir)
        epochs = runs.read_json(run_dir / runs.METRICS_FILE)["epochs"]
        return epochs, resolve_values(runner.recorded_options(run_dir)).config.early_stopping
    log = WarningLog()
    with warnings.catch_warnings():
        warnings.simplefilter("default")  # each distinct warning once, recorded in metrics.json
        warnings.filterwarnings("ignore", message=NUMPY_FLOATING_POINT, category=RuntimeWarning)
        warnings.showwarning = log.show
        if (run_dir / checkpoint.CHECKPOINT_FILE).exists():
            changes = {name: options[name] for name in runner.RESUME_OVERRIDES if name in options}
            finished = runner.resume(run_dir, changes, log, callbacks)
        else:
            finished = runner.start(resolve_values({**options, "out": str(run_dir)}), log, callbacks)
    return finished.metrics["epochs"], finished.model.config.early_stopping
