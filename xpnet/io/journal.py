"""Journals: a list of JSON records that only grows (a training history), kept one line per record in a
file beside the snapshots (checkpoints) that refer to it, so that a snapshot writes only the records
added since the one before, not the whole list again.

A snapshot keeps a reference to the journal as it stood: the file's name, how many of its bytes are the
records, and their SHA-256. Bytes after those (an append cut off by a crash, or one whose snapshot then
failed) belong to no snapshot and are overwritten by the next append. An append is on disk before the
snapshot that refers to it is written, so no snapshot refers to records a crash lost; the first write
of a ``Journal`` replaces the file atomically, and its records start with the bytes an earlier
snapshot of the same list refers to, so that snapshot stays readable throughout.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from xpnet.errors import ModelFileError, XpnetError
from xpnet.io.atomic import atomic_write


class Journal:
    """The writer of the journal at ``path``: its first ``extend`` writes the whole list, later ones
    append what the list gained since."""

    def __init__(self, path):
        self.path = Path(path)
        self._count: int | None = None  # records written by this writer; None before its first write
        self._size = 0
        self._digest = hashlib.sha256()

    def extend(self, records: list) -> dict:
        """Make the file hold ``records`` (the list given before, grown at its end), on disk; the
        reference a snapshot keeps to them."""
        if self._count is None:
            data = _encoded(records)
            with atomic_write(self.path) as handle:
                handle.write(data)
            self._size, self._digest = 0, hashlib.sha256()
            self._added(data, len(records))
        elif len(records) > self._count:
            data = _encoded(records[self._count :])
            self._append(data)
            self._added(data, len(records))
        return {"file": self.path.name, "bytes": self._size, "sha256": self._digest.hexdigest()}

    def _append(self, data: bytes) -> None:
        """Write ``data`` after the records, over whatever a failed append left there, durably."""
        try:
            with open(self.path, "r+b") as handle:
                handle.seek(self._size)
                handle.write(data)
                handle.truncate()
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as error:
            raise XpnetError(f"cannot write {self.path}: {error.strerror or error}") from None

    def _added(self, data: bytes, count: int) -> None:
        self._size += len(data)
        self._digest.update(data)
        self._count = count


def read(snapshot: Path, reference) -> list:
    """The records that ``snapshot`` (a file beside the journal) refers to by ``reference``;
    ``ModelFileError`` naming the file where they are not all there, exactly as written."""
    if not (
        isinstance(reference, dict)
        and isinstance(reference.get("file"), str)
        and reference["file"] not in ("", ".", "..")
        and Path(reference["file"]).name == reference["file"]
        and type(reference.get("bytes")) is int
        and reference["bytes"] >= 0
        and isinstance(reference.get("sha256"), str)
    ):
        raise ModelFileError(f"{snapshot}: its reference to its training history is invalid; the file is corrupt")
    path, size = snapshot.parent / reference["file"], reference["bytes"]
    try:
        with open(path, "rb") as handle:
            held = os.fstat(handle.fileno()).st_size
            data = handle.read(size) if held >= size else b""
    except FileNotFoundError:
        raise ModelFileError(
            f"{path} is missing: {snapshot} keeps its training history there; keep the two files together"
        ) from None
    except OSError as error:
        raise ModelFileError(f"cannot read {path}: {error.strerror or error}") from None
    if held < size:
        raise ModelFileError(f"{path} holds {held} bytes but {snapshot} records {size} of history; it was truncated")
    if hashlib.sha256(data).hexdigest() != reference["sha256"]:
        raise ModelFileError(
            f"{path}: its first {size} bytes are not the history {snapshot} recorded (SHA-256 mismatch); "
            "the file was changed or damaged"
        )
    try:
        return [json.loads(line) for line in data.decode().splitlines()]
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ModelFileError(f"{path}: the history is not JSON lines; the file is corrupt") from None


def _encoded(records: list) -> bytes:
    return "".join(json.dumps(record) + "\n" for record in records).encode()
