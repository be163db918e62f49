"""Which worker runs which trial, and which running trials have lost their worker.

Each worker process holds a lock file of its own, ``workers/<id>.lock`` in the sweep folder, for as long
as it lives, and claims each trial it runs by writing its id into the trial (a user attribute). The
kernel frees the lock of a worker that dies in any way, SIGKILL included, so a running trial whose
worker's lock file is there but free has lost its worker: it is failed and queued again with the same
parameters (Optuna's retry callback), and the retry takes over the trial's run folder, continuing from
its checkpoint. A lock file that is not there at all belongs to a machine that does not share this
folder; such trials are left to that machine's workers (and to the heartbeat of a database storage).

A worker writes its claim as the trial begins; a trial that stays unclaimed past a grace period was
asked for by a worker that died in that moment.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

from xpnet.io import locks
from xpnet.sweep import engine

WORKERS_DIR = "workers"
CLAIM = "claim"
UNCLAIMED_GRACE_SECONDS = 60


@contextlib.contextmanager
def worker_identity(sweep_dir: Path) -> Iterator[str]:
    """A new worker id, its lock held for the block."""
    folder = Path(sweep_dir) / WORKERS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    worker_id = uuid.uuid4().hex[:12]
    with locks.hold(folder / f"{worker_id}.lock", f"sweep worker {worker_id}"):
        yield worker_id


def claim(trial, worker_id: str) -> None:
    """Mark ``trial`` as run by this worker (its process id and host too, for people reading it)."""
    trial.set_user_attr(
        CLAIM, {"trial": trial.number, "worker": worker_id, "pid": os.getpid(), "host": socket.gethostname()}
    )


def is_abandoned(trial, sweep_dir: Path, now: datetime.datetime) -> bool:
    """Whether the running ``trial`` (a FrozenTrial) has lost its worker. A retry inherits its original's
    claim, which names another trial number: until it is claimed anew it counts as unclaimed."""
    found = trial.user_attrs.get(CLAIM)
    if not isinstance(found, dict) or found.get("trial") != trial.number:
        started = trial.datetime_start
        return started is not None and (now - started).total_seconds() > UNCLAIMED_GRACE_SECONDS
    lock = Path(sweep_dir) / WORKERS_DIR / f"{found.get('worker')}.lock"
    return lock.exists() and not locks.is_held(lock)


def fail_abandoned(study, sweep_dir: Path) -> list[int]:
    """Fail each running trial that lost its worker and queue it again; return their numbers. Several
    processes may find the same trial: the storage lets one of them fail it, and only that one queues it."""
    library = engine.optuna()
    running = study.get_trials(deepcopy=False, states=(library.trial.TrialState.RUNNING,))
    now = datetime.datetime.now()
    failed = []
    for trial in running:
        if is_abandoned(trial, sweep_dir, now) and fail(study, trial):
            failed.append(trial.number)
    return failed


def fail(study, trial) -> bool:
    """Fail the running ``trial`` and queue it again; False where another process finished it first.
    Through the storage, as ``optuna.storages.fail_stale_trials`` does: ``Study.tell`` would also tell
    the sampler, which may only be told from inside ``optimize``."""
    library = engine.optuna()
    storage = study._storage
    try:
        storage.set_trial_state_values(trial._trial_id, state=library.trial.TrialState.FAIL)
    except library.exceptions.UpdateFinishedTrialError:
        return False
    engine.retry_callback()(study, storage.get_trial(trial._trial_id))
    return True


def queue_again(study, number: int | None) -> None:
    """Queue the trial ``number`` again if it failed: its own worker stopped it (on a signal)."""
    failed = engine.optuna().trial.TrialState.FAIL
    for trial in study.get_trials(deepcopy=False, states=(failed,)):
        if trial.number == number:
            engine.retry_callback()(study, trial)
