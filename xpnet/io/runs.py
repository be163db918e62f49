"""The run folder: what one training run leaves behind, each file written atomically.

``config.json`` (every resolved option, versions, backend and device) is written before the data
is loaded, so an unwritable folder fails at once; ``model.npz`` and ``confusion.json`` follow
training, and ``metrics.json`` is written last: its presence marks a finished run, which is never
overwritten. A folder holding anything but an unstarted run's ``config.json`` is never written into.

While a process trains in a run folder it holds the folder's lock (``.run.lock``, see ``xpnet.io.locks``):
a second ``train``, ``--resume`` or sweep trial in the same folder is refused, naming that process.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import platform
import shutil
from importlib import metadata
from pathlib import Path

import numpy as np

from xpnet.arrays.backend import Backend
from xpnet.errors import XpnetError
from xpnet.io import locks
from xpnet.io.atomic import atomic_write, leftovers
from xpnet.version import __version__

CONFIG_FILE = "config.json"
CHECKPOINT_FILE = "checkpoint.npz"
# The checkpoint's history, one epoch a line (see xpnet.io.journal).
HISTORY_FILE = "checkpoint-history.jsonl"
METRICS_FILE = "metrics.json"
MODEL_FILE = "model.npz"
CONFUSION_FILE = "confusion.json"
# Held (flock) by the process that trains in the folder; the kernel releases it when that process ends.
LOCK_FILE = ".run.lock"
# Files whose presence means the folder already holds a finished (or saved) run.
FINISHED_RUN_FILES = (METRICS_FILE, MODEL_FILE)
# What a run writes through this module and the checkpointer (the plots come from xpnet.report.plots).
RUN_FILES = (CONFIG_FILE, CHECKPOINT_FILE, HISTORY_FILE, MODEL_FILE, CONFUSION_FILE, METRICS_FILE)
DEFAULT_PARENT = Path("runs")
# An epoch's validation metrics, in metrics.json where the run held data out for validation.
VALIDATION_KEYS = ("val_loss", "val_accuracy")
VERSIONED_PACKAGES = ("xpnet", "numpy", "array-api-compat", "cupy-cuda12x", "cupy", "torch", "array-api-strict")


@contextlib.contextmanager
def new_run_dir(out: str | Path | None, keep_lock: contextlib.ExitStack | None = None):
    """Create the run folder (``out``, or ``runs/<timestamp>``), lock it, and yield it for the run's start.

    Only a new or empty folder, or one holding nothing but the ``config.json`` of an xpnet run that
    never trained (and the history of a first checkpoint it did not finish), is used: any other content
    is refused rather than overwritten, and a folder whose lock another process holds is refused naming
    it. If the block fails before the run's first checkpoint (the dataset cannot be loaded, a setting
    fits no data, the first epoch diverges), what the start wrote is removed again, with the folders this
    call created: there is nothing to resume. The lock is held for the block, or until ``keep_lock``
    closes when one is given (a run holds it until its results are written).
    """
    folder = Path(out) if out is not None else _timestamped(DEFAULT_PARENT)
    created = _topmost_missing(folder)
    make_folder(folder, "run folder")
    with contextlib.ExitStack() as block:
        try:
            _claim(folder, keep_lock or block)
        except BaseException:
            _remove_created(folder, created)
            raise
        try:
            yield folder
        except Exception:  # an interrupted start is started again into its folder, as a killed one is
            if not (folder / CHECKPOINT_FILE).exists():
                _remove_started(folder, created)
            raise


def make_folder(folder: Path, what: str) -> None:
    """Create ``folder`` (and its parents) if missing; an error naming ``what`` it is ("run folder")."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise XpnetError(f"cannot create {what} {folder}: {error.strerror or error}; choose a writable --out") from None


def lock(folder: Path):
    """Hold ``folder``'s run lock for a block; ``FolderInUse`` naming the process that holds it."""
    return locks.hold(Path(folder) / LOCK_FILE, f"run folder {folder}")


def _claim(folder: Path, holder: contextlib.ExitStack) -> None:
    """Lock ``folder`` into ``holder`` and check that it holds no run. A lock file already there is
    taken first, so a folder in use is refused as such; otherwise the content is checked before the
    lock file is made (a refused folder is left as it was), and again once it is held."""
    if (folder / LOCK_FILE).exists():
        holder.enter_context(lock(folder))
        _check_unused(folder, _content(folder))
        return
    _check_unused(folder, _content(folder))
    holder.enter_context(lock(folder))
    _check_unused(folder, _content(folder))


def _content(folder: Path) -> set[str]:
    """The names in ``folder`` that a run would have to overwrite (not its lock, nor killed writes)."""
    try:
        names = {entry.name for entry in folder.iterdir()}
    except OSError as error:
        raise XpnetError(f"cannot read run folder {folder}: {error.strerror or error}; choose another --out") from None
    return names - {LOCK_FILE} - {path.name for path in leftover_files(folder)}


def _check_unused(folder: Path, content: set[str]) -> None:
    existing = [name for name in FINISHED_RUN_FILES if name in content]
    if existing:
        raise XpnetError(
            f"run folder {folder} already holds a run ({existing[0]}); choose another --out or move that one away"
        )
    if CHECKPOINT_FILE in content:
        raise XpnetError(
            f"run folder {folder} holds an unfinished run; continue it with 'python -m xpnet --resume {folder}' "
            "or choose another --out"
        )
    # A start killed before its first checkpoint leaves its config.json, and maybe that checkpoint's history.
    if content and not (content - {HISTORY_FILE} == {CONFIG_FILE} and is_run_config(folder / CONFIG_FILE)):
        names = ", ".join(sorted(content)[:3]) + (", ..." if len(content) > 3 else "")
        raise XpnetError(
            f"run folder {folder} already holds other files ({names}), which a run would overwrite; "
            "choose another --out (a new or empty folder)"
        )


def is_run_config(path: Path) -> bool:
    """Whether ``path`` is a ``config.json`` that xpnet wrote (by its content, not its name)."""
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return (
        isinstance(record, dict)
        and isinstance(record.get("options"), dict)
        and isinstance(record.get("versions"), dict)
        and "xpnet" in record["versions"]
    )


def leftover_files(folder: Path, names=RUN_FILES) -> list[Path]:
    """Temporary files that a killed process left in ``folder`` while writing one of ``names``."""
    return [leftover for name in names for leftover in leftovers(folder / name)]


def _remove_started(folder: Path, created: Path | None) -> None:
    """Undo a start that failed before its first checkpoint: the folders it created, or in a folder
    that was there before, the files it wrote (its lock goes with the lock's holder)."""
    if created is not None:
        _remove_created(folder, created)
        return
    for path in (folder / CONFIG_FILE, folder / HISTORY_FILE, *leftover_files(folder)):
        with contextlib.suppress(OSError):
            path.unlink()


def _remove_created(folder: Path, created: Path | None) -> None:
    """Remove the run folder, and the parents up to ``created`` that nothing else has come into since
    (another run may be starting beside it in ``runs/``); nothing where the folder was there before."""
    if created is None:
        return
    shutil.rmtree(folder, ignore_errors=True)
    for parent in folder.parents:
        if not parent.is_relative_to(created):
            break
        with contextlib.suppress(OSError):  # not empty: keep it
            parent.rmdir()


def _topmost_missing(folder: Path) -> Path | None:
    """The outermost of ``folder`` and its parents that does not exist yet (None if ``folder`` does)."""
    missing = None
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            break
        missing = candidate
    return missing


def _timestamped(parent: Path) -> Path:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    folder = parent / stamp
    suffix = 1
    while folder.exists():
        suffix += 1
        folder = parent / f"{stamp}-{suffix}"
    return folder


def write_json(path: Path, data: dict) -> None:
    with atomic_write(path, "w") as handle:
        json.dump(data, handle, indent=2)
        handle.write("\n")


def read_json(path: Path) -> dict:
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise XpnetError(f"{path} does not exist: is {Path(path).parent} a run folder written by xpnet?") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise XpnetError(f"cannot read {path} ({error}); the run folder is damaged") from None
    if not isinstance(data, dict):
        raise XpnetError(f"{path} does not hold a JSON object; the run folder is damaged")
    return data


def device_label(backend: Backend) -> str:
    """A short device name for reports: ``cpu``, ``cuda:0``, or the library's own name."""
    device_id = getattr(backend.device, "id", None)
    if backend.name == "cupy" and isinstance(device_id, int):
        return f"cuda:{device_id}"
    return str(backend.device)


def versions() -> dict[str, str]:
    """Versions of Python and of the installed packages that matter to a run (absent ones left out)."""
    found = {"python": platform.python_version()}
    for package in VERSIONED_PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    if "xpnet" not in found:  # running from a source checkout
        found["xpnet"] = __version__
    return found


def config_record(options: dict, resolved: dict, backend: Backend) -> dict:
    """The content of ``config.json``: ``options`` as ``--resume`` reads them back, and ``resolved``,
    what the automatic ones (``init="auto"``, an unset ``momentum``) stood for in this run."""
    return {
        "options": options,
        "resolved": resolved,
        "seed": options["seed"],
        "backend": backend.name,
        "device": device_label(backend),
        "versions": versions(),
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def metrics_record(
    dataset: str, backend: Backend, dtype: str, history: list[dict], test: dict, warning_messages: list[str]
) -> dict:
    """The content of ``metrics.json``: exactly these keys, accuracies as fractions, ``seconds`` per
    epoch of training, and the warnings of the command that finished the run (shown or not). Each
    history record must carry ``test_loss`` and ``test_accuracy``; ``val_loss`` and ``val_accuracy``
    are recorded for runs with validation data (what a sweep chooses by)."""
    return {
        "dataset": dataset,
        "backend": backend.name,
        "device": device_label(backend),
        "dtype": dtype,
        "epochs": [_epoch_record(record) for record in history],
        "test_loss": test["loss"],
        "test_accuracy": test["accuracy"],
        "warnings": list(warning_messages),
    }


def _epoch_record(record: dict) -> dict:
    validation = {key: record[key] for key in VALIDATION_KEYS if key in record}
    return {
        "epoch": record["epoch"],
        "train_loss": record["train_loss"],
        "train_accuracy": record["train_accuracy"],
        **validation,
        "test_loss": record["test_loss"],
        "test_accuracy": record["test_accuracy"],
        "seconds": record["seconds"],
    }


def confusion_record(labels, predictions, n_classes: int) -> dict:
    """The content of ``confusion.json``: ``matrix[true][predicted]`` counts on the test set."""
    labels = np.asarray(labels, dtype=np.int64)
    predictions = np.asarray(predictions, dtype=np.int64)
    counts = np.bincount(labels * n_classes + predictions, minlength=n_classes * n_classes)
    return {"classes": list(range(n_classes)), "matrix": counts.reshape(n_classes, n_classes).tolist()}
