"""A sweep worker: one process that runs the sweep's trials one after another until the whole sweep is
done. ``xpnet sweep`` starts its workers as ``python -m xpnet sweep --worker SWEEP_DIR``, each with its
own device and its share of the CPU threads set in its environment before NumPy loads.

A worker asks for a trial while the sweep has places left or a trial queued again; when none is left
but other trials still run, it waits, so that a trial whose worker is lost meanwhile is run again.
Ctrl-C or SIGTERM stop the trial under way with a checkpoint and queue it again, for the next run of
the same command to continue. A worker started by ``xpnet sweep`` stops that way when the command that
started it dies (it watches its standard input, which that command holds open).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

from xpnet.errors import XpnetError
from xpnet.sweep import budget, claims, engine, folder
from xpnet.sweep.trial import Objective

POLL_SECONDS = 1.0
# Sampler seeds of the workers of one command, and of later runs of it, are this far apart.
SEED_STRIDE = 1000


def work(sweep_dir, *, device: str | None = None, index: int = 0, watch_parent: bool = False) -> int:
    """Run trials of the sweep in ``sweep_dir`` until it is done; return the exit code (0)."""
    sweep_dir = Path(sweep_dir)
    spec = folder.read_spec(sweep_dir)
    if watch_parent:
        _stop_with_parent()
    places = spec.settings["trials"]
    with claims.worker_identity(sweep_dir) as worker_id:
        study = engine.open_study(spec, sweep_dir, spec.settings["seed"])
        # Workers started together differ by index, later runs of the command by the trials done so far.
        study.sampler = engine.sampler(spec, spec.settings["seed"] + SEED_STRIDE * index + len(study.trials))
        objective = Objective(spec, sweep_dir, worker_id, device)
        while True:
            claims.fail_abandoned(study, sweep_dir)
            progress = budget.progress(study.get_trials(deepcopy=False), spec.settings["goal"])
            if progress.finished(places):
                return 0
            if not progress.waiting and progress.places_taken >= places:
                time.sleep(POLL_SECONDS)  # the last trials run elsewhere; one may yet have to run again
                continue
            try:
                study.optimize(objective, n_trials=1, catch=(XpnetError, MemoryError))
            except KeyboardInterrupt:  # TrainingInterrupted (a checkpoint is written) among them
                claims.queue_again(study, objective.current)
                raise
            objective.current = None


def _stop_with_parent() -> None:
    """SIGTERM this process once its standard input closes: the command that started it has ended."""

    def watch():
        # The descriptor itself, not sys.stdin, whose buffer lock would hold up the interpreter's exit.
        while os.read(sys.stdin.fileno(), 4096):
            pass
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="xpnet-parent-watch", daemon=True).start()
