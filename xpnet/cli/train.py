"""``xpnet train``: train on a dataset and leave a run folder (config, metrics, model, plots)."""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import time
from pathlib import Path

from xpnet import datasets
from xpnet.arrays.backend import Backend, select
from xpnet.cli import options
from xpnet.cli.warning_log import WarningLog
from xpnet.errors import XpnetError
from xpnet.io import runs
from xpnet.nn import network
from xpnet.report import plots
from xpnet.report.console import console_progress
from xpnet.train import checkpoint, memory
from xpnet.train.callbacks import TestSetMetrics
from xpnet.train.config import TrainConfig
from xpnet.train.model import Model

NAME = "train"
# Options that describe where and how a run is watched, not what it computes: --resume may change them.
RESUME_OVERRIDES = ("device", "data_dir", "quiet", "json")
# Everything a run folder receives; temporary files a killed run left of these are removed on (re)start.
OUTPUT_FILES = (*runs.RUN_FILES, plots.CURVES_FILE, plots.CONFUSION_PLOT_FILE)


def add_parser(subcommands) -> None:
    parser = subcommands.add_parser(
        NAME,
        help="train a network and write a run folder (the default command)",
        description="Train a multi-layer perceptron and write a run folder: config.json, metrics.json, "
        "model.npz, and with matplotlib curves.png and confusion.png.",
        epilog="Example: python -m xpnet --dataset mnist --hidden 800 --epochs 20 --device cuda",
    )
    options.add_training_options(parser)


def run(args: argparse.Namespace) -> int:
    if args.resume:
        settings = resumed_settings(args)
        starting = contextlib.nullcontext(Path(args.resume))
    else:
        settings = options.resolve(args)
        starting = runs.new_run_dir(settings.run["out"])
    run_options = settings.run
    args.warnings.quiet = run_options["quiet"]
    backend = select(run_options["device"])  # an unavailable device fails before anything is written or loaded
    # The folder is claimed and config.json written before the data loads (a download can take
    # minutes); a failed start removes the folder again.
    with starting as run_dir:
        if not args.resume:
            recorded = {**settings.options(), "out": str(run_dir)}
            record = runs.config_record(recorded, resolved_options(settings.config), backend)
            runs.write_json(run_dir / runs.CONFIG_FILE, record)
        data = datasets.load(run_options["dataset"], data_dir=run_options["data_dir"], quiet=run_options["quiet"])
        check_memory(settings.config, data, backend)
    for leftover in runs.leftover_files(run_dir, OUTPUT_FILES):
        with contextlib.suppress(OSError):
            leftover.unlink()
    if args.resume:
        model, epochs_left = checkpoint.resume(run_dir, run_options["device"])
    else:
        model, epochs_left = Model(settings.config, device=run_options["device"]), settings.config.epochs
    return train_and_report(model, epochs_left, data, run_dir, run_options, args.warnings)


def train_and_report(
    model: Model, epochs_left: int, data, run_dir: Path, run_options: dict, warning_log: WarningLog
) -> int:
    """Train the epochs left, write the results and print the summary. Ctrl-C and SIGTERM stop
    training after a step with a checkpoint; once training has ended they wait for the results."""
    console = sys.stderr if run_options["json"] else sys.stdout
    progress = console_progress(console, quiet=run_options["quiet"])
    x_train, y_train, x_test, y_test = data
    checkpointer = checkpoint.Checkpointer(run_dir, every_steps=run_options["checkpoint_every"])
    started = time.perf_counter()
    with checkpoint.stop_on_signals(checkpointer):
        if epochs_left:
            callbacks = [TestSetMetrics(x_test, y_test), *filter(None, [progress]), checkpointer]
            model.fit(x_train, y_train, epochs=epochs_left, callbacks=callbacks)
        seconds = time.perf_counter() - started
        metrics = write_results(run_dir, model, run_options["dataset"], x_test, y_test, warning_log.messages)
        plot_note = _plot(run_dir)
    if checkpointer.stop_signal is not None:
        name = signal.Signals(checkpointer.stop_signal).name
        raise checkpoint.TrainingInterrupted(
            f"stopped by {name} after training had ended, once the results were written: "
            f"the run in {run_dir} is complete",
            checkpointer.stop_signal,
        )
    summary = {
        "test_accuracy": metrics["test_accuracy"],
        "test_loss": metrics["test_loss"],
        "epochs": len(model.history),
        "seconds": seconds,
        "dataset": metrics["dataset"],
        "backend": metrics["backend"],
        "device": metrics["device"],
        "run_dir": str(run_dir),
        "warnings": metrics["warnings"],
    }
    if run_options["json"]:
        print(json.dumps(summary))
    elif not run_options["quiet"]:
        print(
            f"test accuracy {100 * summary['test_accuracy']:.2f}% (loss {summary['test_loss']:.4f}) after "
            f"{summary['epochs']} epochs in {seconds:.1f}s on {summary['backend']} {summary['device']}; "
            f"run folder: {run_dir}"
        )
    if plot_note and not run_options["quiet"]:
        print(f"xpnet: note: {plot_note}", file=sys.stderr)
    return 0


def resumed_settings(args: argparse.Namespace) -> options.Resolved:
    """The options a run was started with (from its config.json), with the few that may change on
    resume; refused where another option is given, or where there is nothing to resume."""
    given = [
        option.flag
        for option in options.OPTIONS
        if option.name not in RESUME_OVERRIDES and getattr(args, option.name, None) is not None
    ]
    if args.config is not None:
        given.append("--config")
    if given:
        allowed = ", ".join(options.BY_NAME[name].flag for name in RESUME_OVERRIDES)
        raise XpnetError(
            f"--resume continues a run with the options it was started with, so {', '.join(given)} cannot be "
            f"given with it (only {allowed} can); to change the others, start a new run with another --out"
        )
    run_dir = Path(args.resume)
    recorded = runs.read_json(run_dir / runs.CONFIG_FILE).get("options")
    if not isinstance(recorded, dict):
        raise XpnetError(f"{run_dir}/{runs.CONFIG_FILE} records no options: it is not an xpnet run folder")
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
    changeable = {name: getattr(args, name) for name in RESUME_OVERRIDES if getattr(args, name, None) is not None}
    return options.resolve_values({**recorded, **changeable})


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
    memory.check_model_fits(config, x_train.shape[1], n_classes, backend, evaluation_rows, len(x_train))


def _plot(run_dir) -> str | None:
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
