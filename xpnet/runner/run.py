"""One run, start to finish: claim and lock the run folder, write ``config.json``, load the data, train
with test-set metrics, progress and checkpoints, and write the results. ``xpnet train`` and every trial
of a sweep go through ``start`` and ``resume``; what they print about it is theirs.

The folder stays locked from the claim until the results are written, so no two processes train in
one folder. Ctrl-C and SIGTERM stop training after a step with a checkpoint; once training has ended
they wait for the results.

A ``--distributed`` run is one job of several ranks (``world``, see ``xpnet.runner.jobs``): every rank
runs the same steps, rank 0 alone claims and locks the folder, writes ``config.json`` (with the number
of ranks) and the results; the other ranks train only, and ``start`` and ``resume`` give them None.
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
from xpnet.distributed.checkpoint import RankCheckpointer
from xpnet.distributed.exchange import agreed_exchange
from xpnet.distributed.parallel import DataParallel
from xpnet.errors import DatasetError, XpnetError, one_line
from xpnet.io import runs
from xpnet.nn import network
from xpnet.report import plots
from xpnet.report.console import console_progress
from xpnet.runner import jobs, resumed_checks
from xpnet.runner.settings import BY_NAME, RUN_DEFAULTS, Resolved, checked_value, resolve_values
from xpnet.runner.warning_log import WarningLog
from xpnet.train import checkpoint, memory
from xpnet.train.callbacks import Callback, TestSetMetrics
from xpnet.train.config import TrainConfig
from xpnet.train.model import Model

# Options that describe where and how a run is watched, not what it computes: a resume may change them.
RESUME_OVERRIDES = ("device", "data_dir", "quiet", "json")
# Everything a run folder receives; temporary files a killed run left of these are removed on (re)start.
OUTPUT_FILES = (*runs.RUN_FILES, plots.CURVES_FILE, plots.CONFUSION_PLOT_FILE)
# What config.json records of a distributed run beyond its options: the number of ranks.
RANKS_KEY = "ranks"


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


def start(
    settings: Resolved, warning_log: WarningLog, callbacks: Sequence[Callback] = (), world=jobs.LONE
) -> Finished | None:
    """Train a new run into ``settings.run["out"]`` (a new folder, or one left by a run that never
    trained). ``callbacks`` watch training beside the run's own (before its checkpointer). ``world``:
    the MPI job this process is a rank of (``jobs.join``); None on a rank other than 0."""
    run_options = settings.run
    warning_log.quiet = run_options["quiet"] or not world.is_root
    world, parallel, device, backend = _placed(world, run_options, resumed=None)
    with contextlib.ExitStack() as locked:
        # The folder is claimed and config.json written (by rank 0) before the data loads (a download
        # can take minutes); a start that fails before its first checkpoint removes the folder again.
        claimed = runs.new_run_dir(run_options["out"], keep_lock=locked)
        with jobs.entered_on_root(world, claimed) as run_dir:
            if world.is_root:
                recorded = {**settings.options(), "out": str(run_dir)}
                record = runs.config_record(recorded, resolved_options(settings.config), backend)
                runs.write_json(run_dir / runs.CONFIG_FILE, {**record, **_ranks(parallel)})
            data = _load(settings, backend, world)
            model = Model(settings.config, device=device)
            with jobs.rank_errors_end_the_job(world, run_dir):
                return _train(
                    model, settings.config.epochs, data, run_dir, run_options, warning_log, callbacks, parallel
                )


def resume(
    run_dir, changes: dict, warning_log: WarningLog, callbacks: Sequence[Callback] = (), world=jobs.LONE
) -> Finished | None:
    """Continue the run in ``run_dir`` from its checkpoint with the options it was started with, less
    ``changes`` (only those named in ``RESUME_OVERRIDES``); refused where there is nothing to resume.
    ``world`` as for ``start``: rank 0 alone locks the folder."""
    run_dir = Path(run_dir)
    recorded = world.together(lambda: recorded_options(run_dir))
    with jobs.entered_on_root(world, runs.lock(run_dir)):
        world.together(lambda: check_resumable(run_dir))
        settings = world.together(lambda: recorded_settings(run_dir, recorded, changes))
        warning_log.quiet = settings.run["quiet"] or not world.is_root
        world, parallel, device, backend = _placed(world, settings.run, resumed=run_dir)
        data = _load(settings, backend, world)
        model, epochs_left = world.together(lambda: checkpoint.resume(run_dir, device))
        world.together(lambda: resumed_checks.check_agrees(run_dir, settings.config, model))
        with jobs.rank_errors_end_the_job(world, run_dir):
            return _train(model, epochs_left, data, run_dir, settings.run, warning_log, callbacks, parallel)


def recorded_options(run_dir: Path) -> dict:
    """The options the run in ``run_dir`` was started with, from its ``config.json``."""
    if run_dir.exists() and not run_dir.is_dir():
        raise XpnetError(f"{run_dir} is a file, not a run folder: give the folder that holds it (the run's --out)")
    path = run_dir / runs.CONFIG_FILE
    try:
        recorded = runs.read_json(path).get("options")
    except XpnetError as error:
        if not path.exists():
            raise
        raise XpnetError(f"{error}: {resumed_checks.PUT_BACK.format(path=path)}") from None
    if not isinstance(recorded, dict):
        raise XpnetError(f"{path} records no options: it is not an xpnet run folder")
    return recorded


def recorded_settings(run_dir: Path, recorded: dict, changes: dict) -> Resolved:
    """The settings of the run in ``run_dir``: its recorded options, less ``changes``; errors name its
    ``config.json``, where a value was edited or damaged."""
    path = run_dir / runs.CONFIG_FILE
    try:
        for name, value in recorded.items():
            if name in BY_NAME and value is not None:
                checked_value(BY_NAME[name], value, "options")
        return resolve_values({**recorded, **changes})
    except XpnetError as error:
        raise XpnetError(f"{path}: {one_line(error)}; {resumed_checks.PUT_BACK.format(path=path)}") from None


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


def _placed(world, run_options: dict, resumed: Path | None) -> tuple:
    """The world the run trains over, its ``DataParallel`` epoch runner (None unless distributed), its
    device (a rank's own GPU) and backend: an unavailable device fails before anything is written. A
    distributed run says how its ranks sum their gradients (``exchange.agreed_exchange``)."""
    world = world.together(lambda: jobs.world_for(world, run_options["distributed"], resumed))
    parallel = world.together(lambda: data_parallel(world, run_options, resumed))
    device = world.together(lambda: parallel.world.device(run_options["device"]) if parallel else run_options["device"])
    backend = world.together(lambda: select(device))
    if parallel is not None:
        choice = agreed_exchange(parallel.world, backend)
        if world.is_root and not run_options["quiet"]:
            print(f"{parallel.world.size} ranks, {choice.describe()}", file=_console(run_options), flush=True)
    return world, parallel, device, backend


def _console(run_options: dict):
    """Where a run's progress goes: stdout, unless that is kept for ``--json``'s summary."""
    return sys.stderr if run_options["json"] else sys.stdout


def data_parallel(world, run_options: dict, resumed: Path | None) -> DataParallel | None:
    """The epoch runner of a ``--distributed`` run (None otherwise). A run summed by a plain allreduce
    resumes only on the number of ranks it started on, whose order of additions it depends on."""
    if not run_options["distributed"]:
        for name in ("reduction", "micro_batches"):
            if run_options[name] != RUN_DEFAULTS[name]:
                raise XpnetError(f"{BY_NAME[name].flag} applies to --distributed runs: add --distributed")
        return None
    parallel = DataParallel(world, reduction=run_options["reduction"], micro_batches=run_options["micro_batches"])
    if resumed and parallel.reduction == "allreduce":
        started_on = runs.read_json(resumed / runs.CONFIG_FILE).get(RANKS_KEY)
        if started_on != world.size:
            raise XpnetError(
                f"the run in {resumed} sums gradients with --reduction allreduce on {started_on} ranks, whose order "
                f"of additions depends on their number: resume it with mpiexec -n {started_on}"
            )
    return parallel


def _ranks(parallel: DataParallel | None) -> dict:
    """What config.json records of a distributed run beyond its options."""
    return {} if parallel is None else {RANKS_KEY: parallel.world.size}


def _load(settings: Resolved, backend: Backend, world):
    """The run's dataset, once the network is known to fit in memory beside it (on every rank)."""
    run_options = settings.run
    quiet = run_options["quiet"] or not world.is_root
    data = world.together(lambda: load_dataset(run_options, quiet))
    world.together(lambda: check_memory(settings.config, data, backend))
    return data


def load_dataset(run_options: dict, quiet: bool):
    """The run's dataset; running out of memory while loading it names the dataset, not the network."""
    try:
        return datasets.load(run_options["dataset"], data_dir=run_options["data_dir"], quiet=quiet)
    except MemoryError:
        raise DatasetError(
            f"out of memory while loading the dataset {run_options['dataset']}: free memory, or use a smaller dataset"
        ) from None


def _train(
    model: Model,
    epochs_left: int,
    data,
    run_dir: Path,
    run_options: dict,
    warning_log: WarningLog,
    callbacks: Sequence[Callback],
    parallel: DataParallel | None = None,
) -> Finished | None:
    """Train the epochs left and write the results. With ``parallel``, every rank trains and rank 0
    alone writes the results (the other ranks return None)."""
    is_root = parallel is None or parallel.world.is_root
    if is_root:
        remove_leftovers(run_dir)
    progress = console_progress(_console(run_options), quiet=run_options["quiet"] or not is_root)
    x_train, y_train, x_test, y_test = data
    every_steps = run_options["checkpoint_every"]
    if parallel is None:
        checkpointer = checkpoint.Checkpointer(run_dir, every_steps=every_steps)
    else:
        model.epoch_runner = parallel
        resume_command = jobs.resume_command(parallel.world)
        checkpointer = RankCheckpointer(run_dir, parallel, every_steps=every_steps, resume_command=resume_command)
    started = time.perf_counter()
    threads = contextlib.nullcontext() if parallel is None else parallel.one_blas_thread()
    with checkpoint.stop_on_signals(checkpointer), threads:
        if epochs_left:
            watching = [TestSetMetrics(x_test, y_test), *filter(None, [progress]), *callbacks, checkpointer]
            model.fit(x_train, y_train, epochs=epochs_left, callbacks=watching)
        seconds = time.perf_counter() - started
        if not is_root:
            return None
        metrics = write_results(
            run_dir, model, run_options["dataset"], x_test, y_test, warning_log.messages, checkpointer.resume_command
        )
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


def write_results(
    run_dir,
    model: Model,
    dataset: str,
    x_test,
    y_test,
    warning_messages: list[str],
    resume_command: str = checkpoint.RESUME_COMMAND,
) -> dict:
    """Save the model and confusion counts, then ``metrics.json`` last (it marks a finished run); a
    write that fails says that ``resume_command`` writes them once the cause is fixed."""
    test = model.evaluate(x_test, y_test)
    metrics = runs.metrics_record(dataset, model.backend, model.config.dtype, model.history, test, warning_messages)
    confusion = runs.confusion_record(y_test, model.predict(x_test), model.n_classes)
    try:
        model.save(run_dir / runs.MODEL_FILE)
        runs.write_json(run_dir / runs.CONFUSION_FILE, confusion)
        runs.write_json(run_dir / runs.METRICS_FILE, metrics)
    except XpnetError as error:
        raise XpnetError(
            f"{error}; training ended and its checkpoint is saved: once that is fixed (free disk space, say), "
            f"write the results with: {resume_command.format(run_dir=run_dir)}"
        ) from None
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
