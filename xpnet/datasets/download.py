"""Cached, checksum-verified downloads: each file is fetched once, tried mirror after mirror, and
reaches the cache only complete and verified (written through ``xpnet.io.atomic.atomic_write``)."""

from __future__ import annotations

import hashlib
import http.client
import sys
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from xpnet.errors import DatasetError
from xpnet.io.atomic import atomic_write

CHUNK_BYTES = 1 << 16
TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class RemoteFile:
    """One file on the mirrors and the digest its publisher gives for it.

    With ``gunzip`` the file is stored decompressed, without its ``.gz``, and the digest is of the
    decompressed content (as published for MNIST); otherwise the digest is of the bytes as served.
    """

    name: str
    digest: str
    algorithm: str = "sha256"
    gunzip: bool = False

    @property
    def stored_name(self) -> str:
        return self.name.removesuffix(".gz") if self.gunzip else self.name


@dataclass(frozen=True)
class Source:
    """Where a dataset's files are published: base URLs tried in order, and the files to fetch; ``hint``
    ends the could-not-download error with another way to get them (a system package, say)."""

    mirrors: tuple[str, ...]
    files: tuple[RemoteFile, ...]
    hint: str = ""


class _MirrorFailed(Exception):
    """This mirror could not deliver a verified file; the next one is tried."""


def fetch(name: str, source: Source, folder: Path, *, quiet: bool = False) -> Path:
    """Make ``folder`` hold every file of ``source``, verified, downloading only what is missing or wrong.
    A progress bar shows on a terminal (stderr) unless ``quiet``."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DatasetError(
            f"cannot create the cache folder {folder} ({error.strerror or error}); set XPNET_DATA to a writable folder"
        ) from None
    for remote in source.files:
        target = folder / remote.stored_name
        if not (target.is_file() and file_digest(target, remote.algorithm) == remote.digest):
            _download(name, source, remote, target, quiet=quiet)
    return folder


def file_digest(path: Path, algorithm: str) -> str:
    """The hex digest of the file at ``path``."""
    digest = hashlib.new(algorithm, usedforsecurity=False)
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _download(name: str, source: Source, remote: RemoteFile, target: Path, *, quiet: bool) -> None:
    """Fetch ``remote`` from the first mirror that delivers it intact; say what to do when none does."""
    failures = []
    for mirror in source.mirrors:
        url = f"{mirror.rstrip('/')}/{remote.name}"
        try:
            _download_from(url, remote, target, quiet=quiet)
            return
        except _MirrorFailed as failure:
            failures.append(f"{url}: {failure}")
    wanted = ", ".join(file.stored_name for file in source.files)
    decompressed = " (decompressed)" if any(file.gunzip for file in source.files) else ""
    hint = f"; {source.hint}" if source.hint else ""
    raise DatasetError(
        f"cannot download {name} ({'; '.join(failures)}); get {', '.join(file.name for file in source.files)} "
        f"from {source.mirrors[0]} and put {wanted}{decompressed} into {target.parent}, "
        f"or pass --data-dir FOLDER holding the four files (raw or .gz){hint}"
    )


def _download_from(url: str, remote: RemoteFile, target: Path, *, quiet: bool) -> None:
    """Stream ``url`` into ``target`` while hashing; a failure or a wrong digest leaves ``target`` untouched."""
    try:
        response = urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS)
    except urllib.error.HTTPError as error:
        raise _MirrorFailed(f"HTTP {error.code} {error.reason}") from None
    except urllib.error.URLError as error:
        raise _MirrorFailed(str(error.reason)) from None
    except (OSError, ValueError, http.client.HTTPException) as error:
        raise _MirrorFailed(str(error) or type(error).__name__) from None
    digest = hashlib.new(remote.algorithm, usedforsecurity=False)
    inflater = zlib.decompressobj(wbits=31) if remote.gunzip else None
    length = response.headers.get("Content-Length", "")
    size = int(length) if length.isdigit() else None
    received = 0
    progress = tqdm(
        total=size,
        desc=remote.name,
        unit="B",
        unit_scale=True,
        leave=False,
        disable=quiet or not sys.stderr.isatty(),
    )
    with response, progress, atomic_write(target) as out:
        while chunk := _read(response):
            received += len(chunk)
            progress.update(len(chunk))
            data = _inflate(inflater, chunk) if inflater else chunk
            digest.update(data)
            out.write(data)
        if size is not None and received < size:
            raise _MirrorFailed(f"connection lost after {received} of {size} bytes")
        if inflater and not inflater.eof:
            raise _MirrorFailed("the gzip stream ended early")
        if digest.hexdigest() != remote.digest:
            raise _MirrorFailed(f"{remote.algorithm} checksum mismatch, got {digest.hexdigest()}")


def _read(response) -> bytes:
    """The next chunk of the response; a dropped connection makes this mirror fail, not the run."""
    try:
        return response.read(CHUNK_BYTES)
    except (OSError, http.client.HTTPException) as error:
        raise _MirrorFailed(f"connection lost ({error})") from None


def _inflate(inflater, chunk: bytes) -> bytes:
    """Decompress one chunk of a gzip stream; corrupt data makes this mirror fail."""
    try:
        return inflater.decompress(chunk)
    except zlib.error as error:
        raise _MirrorFailed(f"corrupt gzip data ({error})") from None
