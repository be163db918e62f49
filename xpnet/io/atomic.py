"""Atomic file writes: a file is either its old content or its complete new content, never half."""

from __future__ import annotations

import contextlib
import glob
import os
import tempfile
from pathlib import Path

from xpnet.errors import XpnetError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# What open() would have given a new file: read-write for all, less the process's umask.
_DEFAULT_MODE = 0o666 & ~_umask()
_TEMPORARY_SUFFIX = ".tmp"


def _temporary_prefix(path: Path) -> str:
    return f".{path.name}."


def leftovers(path) -> list[Path]:
    """Temporary files that ``atomic_write(path)`` left beside ``path`` when its process was killed
    before the rename: safe to delete, ``path`` itself is whole."""
    path = Path(path)
    pattern = glob.escape(_temporary_prefix(path)) + "*" + _TEMPORARY_SUFFIX
    return sorted(path.parent.glob(pattern))


@contextlib.contextmanager
def atomic_write(path, mode: str = "wb"):
    """Yield a file object whose content replaces ``path`` only once the block completes.

    The data goes to a temporary file in the same folder, is flushed to disk, and is then renamed
    over ``path``: a crash or a full disk at any instant leaves the previous file intact.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    try:
        handle = tempfile.NamedTemporaryFile(
            mode, dir=folder, prefix=_temporary_prefix(path), suffix=_TEMPORARY_SUFFIX, delete=False
        )
    except OSError as error:
        raise XpnetError(f"cannot write {path}: {error.strerror or error}; choose a writable folder") from None
    try:
        with handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
            os.chmod(handle.name, _DEFAULT_MODE)  # temporary files are private; results are not
        os.replace(handle.name, path)
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.unlink(handle.name)
        if isinstance(error, OSError):
            raise XpnetError(f"cannot write {path}: {error.strerror or error}; nothing was overwritten") from None
        raise
    _sync_folder(folder)


def _sync_folder(folder: Path) -> None:
    """Make the rename itself durable (where the platform allows opening a folder)."""
    with contextlib.suppress(OSError):
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
