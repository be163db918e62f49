"""Lock files: one process at a time in a folder, and a way to ask whether a process still holds one.

A lock is ``fcntl.flock`` on a small file, taken without waiting. The kernel releases it when its
process ends in any way, SIGKILL and power loss included, so a lock is never left stale. The holder
removes the file before it lets go, and a process that gets the lock checks that the file it locked
is still the one at the path (else it locked a removed file, and tries again): so a folder is left as
it was, and only a killed holder leaves its lock file behind, for the next holder to take over.

The holder writes its process id, host and a random token into the file, so that a refusal names the
process to wait for or stop, and so that ``is_held_by`` can tell the holder from a later one. Locks
cover processes on one machine, or several machines sharing the folder over a file system with
working locks (a Docker volume, NFSv4).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

from xpnet.errors import FolderInUse, XpnetError

# Attempts to lock a file that its holders keep removing as they let go: each removal needs a new holder.
ATTEMPTS = 100


@contextlib.contextmanager
def hold(path, what: str) -> Iterator[str]:
    """Hold the lock file ``path`` (created if missing) for the block and yield this holder's token;
    ``FolderInUse`` naming the process that holds it already. ``what`` names the thing locked in
    messages ("run folder runs/a")."""
    path = Path(path)
    descriptor = _lock(path, what)
    try:
        token = uuid.uuid4().hex
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "token": token}
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, json.dumps(holder).encode(), 0)
        yield token
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
        os.close(descriptor)  # releases the lock


def _lock(path: Path, what: str) -> int:
    """An open descriptor of ``path`` that holds its lock."""
    for _ in range(ATTEMPTS):
        try:
            descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise XpnetError(f"cannot lock {what}: {error.strerror or error}; choose a writable folder") from None
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            raise FolderInUse(
                f"{what} is in use by {describe_holder(path)}; wait for it to end, or stop it, then try again"
            ) from None
        if _same_file(descriptor, path):
            return descriptor
        os.close(descriptor)  # its holder removed it while we waited for it: lock the one there now
    raise FolderInUse(f"{what} is being locked and released over and over by other processes; try again")


def _same_file(descriptor: int, path: Path) -> bool:
    try:
        here, there = os.fstat(descriptor), os.stat(path)
    except OSError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def holder(path) -> dict:
    """What the lock file at ``path`` says of its holder ({} if unreadable or not yet written)."""
    try:
        found = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return found if isinstance(found, dict) else {}


def describe_holder(path) -> str:
    """``process 1234 on host box`` for the holder of the lock at ``path``, as far as it is known."""
    found = holder(path)
    if "pid" not in found:
        return "another process"
    return f"process {found['pid']} on host {found.get('host', '?')}"


def is_held(path) -> bool:
    """Whether some process holds the lock file ``path`` now (False if there is no such file)."""
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(descriptor)
    return False


def is_held_by(path, token: str) -> bool:
    """Whether the lock at ``path`` is held, and by the holder that was given ``token``: a later holder
    writes its own token, so a lock taken again after its holder died does not count."""
    return is_held(path) and holder(path).get("token") == token
