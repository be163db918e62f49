"""Optuna behind a sweep: its import (with the install hint where it is missing), the storage, sampler and
pruner that a sweep file names, and the study, created once and checked to be this sweep's.

The default storage is a journal file in the sweep folder (``study.journal``): an append-only log that
processes on one machine, or on machines sharing the folder, write under a file lock. A URL
(``sqlite:///...``, ``postgresql://...``, ``mysql://...``) is a database through SQLAlchemy, for a
cluster; there Optuna's heartbeat also fails, and reruns, a trial whose worker stopped answering, which
covers workers whose sweep folders are not shared (``claims`` covers those that are).
"""

from __future__ import annotations

import contextlib
import json
import re
import warnings
from pathlib import Path

from xpnet.errors import XpnetError, one_line
from xpnet.sweep.spec import Sweep

INSTALL_HINT = "pip install 'xpnet[sweep]' (Optuna)"
JOURNAL_FILE = "study.journal"
# The study's record of the search it runs (Sweep.search_record), set when the study is created.
SWEEP_ATTRIBUTE = "xpnet_sweep"
# A trial whose worker is gone is run again this many times at most (a trial that kills its worker each
# time, by running out of memory say, must not loop forever).
MAX_RETRIES = 3
# Database storages only: each running trial's worker writes a heartbeat this often, and a trial
# without one for the grace period is failed and run again.
HEARTBEAT_SECONDS = 30
HEARTBEAT_GRACE_SECONDS = 120


def optuna():
    """The ``optuna`` module, logging only errors (the summary says how each trial ended, and why one
    failed); a one-line error naming the extra where it is missing."""
    try:
        import optuna
    except ImportError:
        raise XpnetError(f"sweeps need Optuna, which is not installed: {INSTALL_HINT}") from None
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    return optuna


def retry_callback():
    """Optuna's callback that queues a failed trial again with the same parameters (``MAX_RETRIES``)."""
    library = optuna()
    with _stable_enough(library):
        return library.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRIES)


@contextlib.contextmanager
def _stable_enough(library):
    """Optuna calls its retries, heartbeats (since 2.8) and fixed samplers (2.4) experimental; xpnet relies
    on them as they are."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", library.exceptions.ExperimentalWarning)
        yield


def storage(spec: Sweep, sweep_dir: Path):
    """The storage the sweep names: a journal file (by default ``study.journal`` in the sweep folder), or
    a database URL; one line saying why where it cannot be opened or reached."""
    library = optuna()
    location = spec.settings["storage"]
    if "://" not in location:
        path = Path(location) if location else Path(sweep_dir) / JOURNAL_FILE
        try:
            backend = library.storages.journal.JournalFileBackend(str(path))
        except OSError as error:
            raise XpnetError(f"cannot open the sweep's journal {path}: {error.strerror or error}") from None
        return library.storages.JournalStorage(backend)
    try:
        with _stable_enough(library):
            return library.storages.RDBStorage(
                location,
                heartbeat_interval=HEARTBEAT_SECONDS,
                grace_period=HEARTBEAT_GRACE_SECONDS,
                heartbeat_stale_trial_callback=retry_callback(),
            )
    except Exception as error:  # SQLAlchemy's: a bad URL, a missing driver, a server that does not answer
        raise XpnetError(
            f"cannot reach the sweep's storage {without_password(location)}: {one_line(error, first_line=True)}; "
            "check the URL, that its database driver is installed, and that the server runs and lets this "
            "machine in"
        ) from None


def without_password(url: str) -> str:
    """``url`` with any password in it masked, for messages."""
    return re.sub(r"//([^:/@]*):[^@/]*@", r"//\1:***@", url)


def fixed_sampler(values: dict):
    """A sampler that gives a trial exactly ``values`` (a grid's point)."""
    library = optuna()
    with _stable_enough(library):
        return library.samplers.PartialFixedSampler(values, library.samplers.RandomSampler())


def sampler(spec: Sweep, seed: int):
    """The sampler of the sweep's method, seeded with ``seed``: TPE, or random (a grid's points are
    handed out by ``budget.free_grid_point``, each trial's fixed before it draws)."""
    samplers = optuna().samplers
    return samplers.TPESampler(seed=seed) if spec.settings["method"] == "tpe" else samplers.RandomSampler(seed=seed)


def pruner(spec: Sweep):
    """The pruner the sweep names, judging trials by the metric each reports after every epoch."""
    pruners = optuna().pruners
    settings = spec.settings
    # Steps are epoch numbers, from 1: the first epoch a trial may be pruned after is the one past its warm-up.
    first_prunable = settings["pruner_warmup_epochs"] + 1
    if settings["pruner"] == "median":
        return pruners.MedianPruner(n_startup_trials=settings["pruner_startup_trials"], n_warmup_steps=first_prunable)
    if settings["pruner"] == "hyperband":
        return pruners.HyperbandPruner(min_resource=first_prunable)
    return pruners.NopPruner()


def open_study(spec: Sweep, sweep_dir: Path, seed: int):
    """The sweep's study in its storage, created by the first process to get there; refused where the
    storage already holds a study of that name that searches otherwise."""
    library = optuna()
    try:
        study = library.create_study(
            study_name=spec.settings["name"],
            storage=storage(spec, sweep_dir),
            direction=spec.settings["goal"],
            sampler=sampler(spec, seed),
            pruner=pruner(spec),
            load_if_exists=True,
        )
    except ValueError as error:  # a study of that name whose direction differs
        raise XpnetError(f"{_elsewhere(spec)}: {one_line(error)}; give the sweep another name") from None
    wanted = json.loads(json.dumps(spec.search_record()))
    stored = study.user_attrs.get(SWEEP_ATTRIBUTE)
    if stored is None:
        study.set_user_attr(SWEEP_ATTRIBUTE, wanted)
    elif stored != wanted:
        raise XpnetError(
            f"{_elsewhere(spec)} searches otherwise ({_first_difference(stored, wanted)}); continuing it would mix "
            "two searches: give this sweep another name (or --out), or put the settings back"
        )
    return study


def _elsewhere(spec: Sweep) -> str:
    where = without_password(spec.settings["storage"]) or "the sweep folder's journal"
    return f"the study {spec.settings['name']!r} in {where}"


def _first_difference(stored: dict, wanted: dict) -> str:
    for section in sorted(set(stored) | set(wanted)):
        old, new = stored.get(section, {}), wanted.get(section, {})
        for key in sorted(set(old) | set(new)):
            if old.get(key) != new.get(key):
                return f"[{section}] {key} was {old.get(key)!r}, now {new.get(key)!r}"
    return "its settings differ"
