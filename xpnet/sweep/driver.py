"""``run_sweep``: a sweep file's trials run by worker processes on this machine, watched with a progress
bar, and summarised in the sweep folder.

Each worker is a process of its own (``python -m xpnet sweep --worker``), not a thread or a fork: its
BLAS threads are set in its environment before NumPy loads (this machine's cores shared out between
the workers), it gets a GPU of its own where there are several (``cuda:0..k`` in turn), and a worker
killed in any way takes nothing but its own trial with it. Workers started the same way on other
machines or containers, pointed at the same sweep folder (a shared volume) or the same database, work
through the same study.

Everything that can be checked is checked before the first worker starts: the sweep file, the folder,
the device, the dataset (downloaded here once, not by every worker) and the storage.

With ``refit = true``, once every trial is done this process trains the best trial's settings once more
on the whole training set (``xpnet.sweep.refit``), or continues a refit that was stopped.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from xpnet import datasets, validation
from xpnet.arrays.backend import cuda_device_count, select
from xpnet.errors import TrainingInterrupted, XpnetError
from xpnet.runner.settings import resolve_values
from xpnet.sweep import budget, claims, engine, folder, refit, spec, summary

# Each worker's share of the cores, set before it loads NumPy (and Numba, for the fused optimizer updates).
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
POLL_SECONDS = 0.5
# After Ctrl-C, how long workers get to checkpoint on their own before they are told to stop.
STOP_WAIT_SECONDS = 10
# The folder that holds the xpnet package, so that workers import the same code (a source checkout included).
SOURCE_ROOT = str(Path(__file__).resolve().parents[2])


@dataclass(frozen=True)
class Worker:
    process: subprocess.Popen
    log: Path


def run_sweep(path, out=None, jobs: int | None = None, *, quiet: bool = False) -> summary.Result:
    """Run a sweep file's trials in worker processes, as ``xpnet sweep`` does.

    Run again, it continues the sweep: finished trials are kept, and a trial that was running is run again
    from its checkpoint.

    Args:
        path: The sweep file (TOML).
        out: The sweep folder; ``None`` for ``sweeps/<name>``.
        jobs: Trials at once on this machine; ``None`` for the file's ``jobs``.
        quiet: Show no progress bar.

    Returns:
        The sweep's summary, rows best first.

    Raises:
        XpnetError: The sweep file, its device or dataset, or the sweep folder is not valid (checked before
            any trial), or the sweep stopped unfinished (naming the failures).
        TrainingInterrupted: Ctrl-C stopped it; its running trials were checkpointed and queued again.
    """
    sweep = spec.read(path)
    jobs = validation.whole("jobs", sweep.settings["jobs"] if jobs is None else jobs, minimum=1)
    base = resolve_values(sweep.base).run
    select(base["device"])  # a device that is not here fails now, not in every trial
    datasets.load(base["dataset"], data_dir=base["data_dir"], quiet=quiet)
    sweep_dir = folder.prepare(sweep, out)
    study = engine.open_study(sweep, sweep_dir, sweep.settings["seed"])
    claims.fail_abandoned(study, sweep_dir)  # the trials of a previous run's lost workers
    devices = worker_devices(base["device"], jobs)
    threads = max(1, len(os.sched_getaffinity(0)) // jobs)
    workers = [start_worker(sweep_dir, index, devices[index], threads) for index in range(jobs)]
    try:
        watch(study, sweep, sweep_dir, workers, quiet=quiet)
    except KeyboardInterrupt:
        stop(workers)
        raise TrainingInterrupted(
            "sweep stopped; its running trials were checkpointed and queued again: run the same command to continue",
            signal.SIGINT,
        ) from None
    result = summary.write(study, sweep, sweep_dir, pictures=True)
    if result.note and not quiet:
        print(f"xpnet: note: {result.note}", file=sys.stderr)
    progress = budget.progress(study.get_trials(deepcopy=False), sweep.settings["goal"])
    if not progress.finished(sweep.settings["trials"]):
        raise XpnetError(f"the sweep in {sweep_dir} stopped unfinished: {_failures(workers)}")
    if sweep.settings["refit"] and result.refit is None:
        refit_best(result, quiet=quiet)
        result = summary.write(study, sweep, sweep_dir, pictures=False)
    return result


def refit_best(result: summary.Result, *, quiet: bool) -> None:
    """Train the best trial's settings once more on the whole training set (``xpnet.sweep.refit``), in
    this process, once the trials are done; a refit that was stopped resumes from its checkpoint."""
    best = summary.best_row(result.rows)
    if best is None:
        raise XpnetError(f"the sweep in {result.sweep_dir} has no finished trial to refit; see its summary.md")
    if not quiet:
        print(
            f"xpnet: refit: training trial {best['trial']}'s settings on the whole training set into "
            f"{result.sweep_dir / refit.REFIT_DIR}",
            file=sys.stderr,
        )
    try:
        refit.fit(result.sweep, result.sweep_dir, best, quiet=quiet)
    except TrainingInterrupted as stopped:
        raise TrainingInterrupted(
            f"refit {stopped}; or run the same sweep command, which continues the refit", stopped.signal_number
        ) from None


def worker_devices(device: str, jobs: int) -> list[str | None]:
    """Each worker's device: the GPUs in turn where the sweep runs on CUDA and there are any, else the
    sweep's own device (None: as ``[base]`` says)."""
    count = cuda_device_count() if device in ("auto", "cuda") else 0
    return [f"cuda:{index % count}" for index in range(jobs)] if count else [None] * jobs


def start_worker(sweep_dir: Path, index: int, device: str | None, threads: int) -> Worker:
    """Start worker ``index``, its output going to a log file in the sweep folder."""
    logs = sweep_dir / claims.WORKERS_DIR
    logs.mkdir(exist_ok=True)
    # By host as well: the commands of several containers sharing the folder are all process 1.
    log = logs / f"{socket.gethostname()}-{os.getpid()}-{index}.log"
    command = [sys.executable, "-m", "xpnet", "sweep", "--worker", str(sweep_dir), "--index", str(index)]
    if device is not None:
        command += ["--device", device]
    env = {**{name: str(threads) for name in THREAD_VARIABLES}, **os.environ}  # a setting of one's own wins
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [SOURCE_ROOT, os.environ.get("PYTHONPATH")]))
    with log.open("ab") as output:
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=output, stderr=subprocess.STDOUT, env=env)
    return Worker(process, log)


def watch(study, sweep: spec.Sweep, sweep_dir: Path, workers: list[Worker], *, quiet: bool) -> None:
    """Show progress until every worker has exited, and rewrite the tables whenever a trial finishes."""
    view = ProgressView(sys.stderr, sweep.settings["trials"], f"sweep {sweep.settings['name']}", quiet=quiet)
    done = None
    with view:
        while True:
            running = any(worker.process.poll() is None for worker in workers)
            progress = budget.progress(study.get_trials(deepcopy=False), sweep.settings["goal"])
            view.show(progress.done, describe(progress, sweep.settings["metric"]))
            if progress.done != done:
                summary.write(study, sweep, sweep_dir, pictures=False)
                done = progress.done
            if not running:
                break
            time.sleep(POLL_SECONDS)
    for worker in workers:
        worker.process.stdin.close()


class ProgressView:
    """Trials done out of all, with what ``describe`` says: a bar on a terminal, else a line whenever it
    changes (for logs and pipes); nothing when quiet."""

    def __init__(self, stream, total: int, title: str, *, quiet: bool):
        self.stream, self.total, self.title, self.quiet = stream, total, title, quiet
        self.bar = None if quiet or not stream.isatty() else tqdm(total=total, unit="trial", desc=title, file=stream)
        self.shown = None

    def show(self, done: int, text: str) -> None:
        if self.bar is not None:
            self.bar.n = done
            self.bar.set_postfix_str(text)
        elif not self.quiet and (done, text) != self.shown:
            print(f"{self.title}: {done}/{self.total} trials done, {text}", file=self.stream, flush=True)
            self.shown = done, text

    def __enter__(self):
        return self

    def __exit__(self, *exception):
        if self.bar is not None:
            self.bar.close()


def describe(progress: budget.Progress, metric: str) -> str:
    """``running 2, pruned 1, failed 0, best val_loss 0.0712 (trial 4)``."""
    text = f"running {progress.running}, pruned {progress.pruned}, failed {progress.failed}"
    if progress.best is not None:
        text += f", best {metric} {progress.best.value:.4g} (trial {progress.best.number})"
    return text


def stop(workers: list[Worker]) -> None:
    """Let the workers checkpoint and exit (a Ctrl-C reached them too); those still running after
    ``STOP_WAIT_SECONDS`` are told to stop by closing their standard input."""
    deadline = time.monotonic() + STOP_WAIT_SECONDS
    for worker in workers:
        try:
            worker.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            worker.process.stdin.close()
            worker.process.wait()


def _failures(workers: list[Worker]) -> str:
    """Why the workers stopped early, from the first that failed: its exit code and last log line."""
    for worker in workers:
        code = worker.process.returncode
        if code:
            lines = worker.log.read_text(errors="replace").strip().splitlines()
            last = lines[-1] if lines else "(its log is empty)"
            return f"a worker exited with code {code} ({last}; log: {worker.log}); run the same command to continue"
    return "run the same command to continue"
