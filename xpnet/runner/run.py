"""One run, start to finish: claim and lock the run folder, write ``config.json``, load the data, train
with test-set metrics, progress and checkpoints, and write the results. ``xpnet train`` and every trial
of a sweep go through ``start`` and ``resume``; what they print about it is theirs.

The folder stays locked from the claim until the results are written, so no two processes train in
one folder. Ctrl-C and SIGTERM stop training after a step with a checkpoint; once training has ended
they wait for the results.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from xpnet import datasets
from xpnet.arrays.backend import Backend, select
from xpnet.errors import XpnetError
from xpnet.io import runs
from xpnet.nn import network
from xpnet.report import plots
from xpnet.report.console import console_progress
from xpnet.runner.settings import Resolved, resolve_values
from xpnet.runner.warning_log import WarningLog
from xpnet.train import checkpoint, memory
from xpnet.train.callbacks import Callback, TestSetMetrics
from xpnet.train.config import TrainConfig
from xpnet.train.model import Model

# Options that describe where and how a run is watched, not what it computes: a resume may change them.
RESUME_OVERRIDES = ("device", "data_dir", "quiet", "json")
# Everything a run folder receives; temporary files a killed run left of these are removed on (re)start.
OUTPUT_FILES = (*runs.RUN_FILES, plots.CURVES_FILE, plots.CONFUSION_PLOT_FILE)


@dataclass(frozen=True)
class Finished:
    """A run whose training ended (all its epochs, or stopped by a callback) and whose results are
    written: its run settings (``Resolved.run``), the model, ``metrics.json``'s content, the seconds it
    trained in this process, and a note when its pictures could not be drawn."""

    run_dir: Path
    run_options: dict
    model: Model
    metrics: dict
    seconds: float
    plot_note: str | None


def start(settings: Resolved, warning_log: WarningLog, callbacks: Sequence[Callback] = ()) -> Finished:
    """Train a new run into ``settings.run["out"]`` (a new folder, or one left by a run that never
    trained). ``callbacks`` watch training beside the run's own (before its checkpointer)."""
    run_options = settings.run
    warning_log.quiet = run_options["quiet"]
    backend = select(run_options["device"])  # an unavailable device fails before anything is written or loaded
    with contextlib.ExitStack() as locked:
        # The folder is claimed and config.json written before the data loads (a download can take
        # minutes); a failed start removes the folder again.
        with runs.new_run_dir(run_options["out"], keep_lock=locked) as run_dir:
            recorded = {**settings.options(), "out": str(run_dir)}
            record = runs.config_record(recorded, resolved_options(settings.config), backend)
            runs.write_json(run_dir / runs.CONFIG_FILE, record)
            data = _load(settings, backend)
        model = Model(settings.config, device=run_options["device"])
        return _train(model, settings.config.epochs, data, run_dir, run_options, warning_log, callbacks)


def resume(run_dir, changes: dict, warning_log: WarningLog, callbacks: Sequence[Callback] = ()) -> Finished:
    """Continue the run in ``run_dir`` from its checkpoint with the options it was started with, less
    ``changes`` (only those named in ``RESUME_OVERRIDES``); refused where there is nothing to resume."""
    run_dir = Path(run_dir)
    recorded = recorded_options(run_dir)
    with runs.lock(run_dir):
        check_resumable(run_dir)
        settings = resolve_values({**recorded, **changes})
        warning_log.quiet = settings.run["quiet"]
        backend = select(settings.run["device"])
        data = _load(settings, backend)
        model, epochs_left = checkpoint.resume(run_dir, settings.run["device"])
        return _train(model, epochs_left, data, run_dir, settings.run, warning_log, callbacks)


def recorded_options(run_dir: Path) -> dict:
    """The options the run in ``run_dir`` was started with, from its ``config.json``."""
    recorded = runs.read_json(run_dir / runs.CONFIG_FILE).get("options")
    if not isinstance(recorded, dict):
        raise XpnetError(f"{run_dir}/{runs.CONFIG_FILE} records no options: it is not an xpnet run folder")
    return recorded


def check_resumable(run_dir: Path) -> None:
    """Refuse a run that already finished, or that stopped before its first checkpoint."""
    if (run_dir / runs.METRICS_FILE).exists():
        raise XpnetError(
            f"the run in {run_dir} already finished ({runs.METRICS_FILE} is there): nothing to resume; "
            f"start a new run with another --out, or redraw its plots with 'xpnet plot {run_dir}'"
        )
    if not (run_dir / checkpoint.CHECKPOINT_FILE).exists():
        raise XpnetError(
            f"the run in {run_dir} stopped before its first checkpoint: nothing to resume; "
            f"start it again with the same options and --out {run_dir}"
        )


def _load(settings: Resolved, backend: Backend):
    """The run's dataset, once the network is known to fit in memory beside it."""
    run_options = settings.run
    data = datasets.load(run_options["dataset"], data_dir=run_options["data_dir"], quiet=run_options["quiet"])
    check_memory(settings.config, data, backend)
    return data


def _train(
    model: Model,
    epochs_left: int,
    data,
    run_dir: Path,
    run_options: dict,
    warning_log: WarningLog,
    callbacks: Sequence[Callback],
) -> Finished:
    """Train the epochs left and write the results."""
    remove_leftovers(run_dir)
    console = sys.stderr if run_options["json"] else sys.stdout
    progress = console_progress(console, quiet=run_options["quiet"])
    x_train, y_train, x_test, y_test = data
    checkpointer = checkpoint.Checkpointer(run_dir, every_steps=run_options["checkpoint_every"])
    started = time.perf_counter()
    with checkpoint.stop_on_signals(checkpointer):
        if epochs_left:
            watching = [TestSetMetrics(x_test, y_test), *filter(None, [progress]), *callbacks, checkpointer]
            model.fit(x_train, y_train, epochs=epochs_left, callbacks=watching)
        seconds = time.perf_counter() - started
        metrics = write_results(run_dir, model, run_options["dataset"], x_test, y_test, warning_log.messages)
        plot_note = draw_pictures(run_dir)
    if checkpointer.stop_signal is not None:
        name = signal.Signals(checkpointer.stop_signal).name
        raise checkpoint.TrainingInterrupted(
            f"stopped by {name} after training had ended, once the results were written: "
            f"the run in {run_dir} is complete",
            checkpointer.stop_signal,
        )
    return Finished(run_dir, run_options, model, metrics, seconds, plot_note)


def remove_leftovers(run_dir: Path) -> None:
    """Remove the temporary files that a killed process left while writing the run's files."""
    for leftover in runs.leftover_files(run_dir, OUTPUT_FILES):
        with contextlib.suppress(OSError):
            leftover.unlink()


def write_results(run_dir, model: Model, dataset: str, x_test, y_test, warning_messages: list[str]) -> dict:
    """Save the model and confusion counts, then ``metrics.json`` last (it marks a finished run)."""
    test = model.evaluate(x_test, y_test)
    model.save(run_dir / runs.MODEL_FILE)
    confusion = runs.confusion_record(y_test, model.predict(x_test), model.n_classes)
    runs.write_json(run_dir / runs.CONFUSION_FILE, confusion)
    metrics = runs.metrics_record(dataset, model.backend, model.config.dtype, model.history, test, warning_messages)
    runs.write_json(run_dir / runs.METRICS_FILE, metrics)
    return metrics


def resolved_options(config: TrainConfig) -> dict:
    """What ``init="auto"`` and an unset ``momentum`` stood for in this run (``Network.mlp`` and
    ``optim.make`` decide; ``config.json`` records both)."""
    init = network.resolved_init(config.init, config.activation)
    return {"init": init, "momentum": config.make_optimizer().hyperparameters().get("momentum")}


def check_memory(config: TrainConfig, data, backend: Backend) -> None:
    """Refuse a network whose training, or whose evaluation of the test (or validation) set, would not
    fit in memory: before the model or its checkpoint is allocated."""
    x_train, y_train, x_test, y_test = data
    n_classes = int(max(y_train.max(), y_test.max())) + 1
    evaluation_rows = max(len(x_test), round(config.val_split * len(x_train)))
    memory.check_model_fits(config, x_train.shape[1], n_classes, backend, evaluation_rows)


def draw_pictures(run_dir) -> str | None:
    """Draw the run's pictures when matplotlib is there; otherwise say how to get them. The results
    are written by then, so a failure here says they are safe and how to draw the pictures later."""
    if not plots.available():
        return f"curves.png and confusion.png skipped: {plots.INSTALL_HINT}, then run 'xpnet plot {run_dir}'"
    try:
        plots.plot_run(run_dir)
    except XpnetError as error:
        raise XpnetError(
            f"the run's results are saved in {run_dir} ({runs.METRICS_FILE}, {runs.MODEL_FILE}); only its plots "
            f"failed: {error}; once that is fixed, draw them with 'xpnet plot {run_dir}'"
        ) from None
    return None
