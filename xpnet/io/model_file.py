"""Model files: a model's state (``Model.state_dict()``) in a portable, pickle-free ``.npz`` archive.

The state's arrays become the archive's entries, copied to the host; its other values, with the
format version, the run's own record (checkpoints) and a SHA-256 of the arrays, become one ``meta``
entry of JSON. The layout is the state's own, so this module names no field of a model.

Files may come from strangers, so the reader trusts nothing: it parses each entry's header itself,
checks every claimed size against the file's length before allocating, accepts only plain numeric
arrays, and checks the version and the checksum. What the state says is checked by whoever it
describes (``Model.from_state``).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import zipfile
from pathlib import Path

import array_api_compat
import numpy as np

from xpnet.arrays.backend import to_numpy
from xpnet.errors import ModelFileError
from xpnet.io.atomic import atomic_write
from xpnet.io.npy import READ_ERRORS, read_npy_header

FORMAT = "xpnet-model"
# The newest format version this xpnet reads. A writer stamps each file with the oldest version that
# reads it (``write``'s ``version``), so that older xpnet refuses by version what it would misread.
FORMAT_VERSION = 3
_META = "meta"
_ARRAY_SUFFIX = ".npy"
# The archive's own keys in ``meta``; every other key is one of the state's values.
_CONTAINER_KEYS = ("format", "version", "checksum", "run")
# Plain numbers only: booleans, signed and unsigned integers, floats. Never objects (pickles).
_NUMERIC_KINDS = "biuf"


def write(path, state: dict, *, version: int, run: dict | None = None) -> None:
    """Write ``state`` (arrays on any device, and JSON values) to ``path`` atomically as format
    ``version``; ``run`` is extra JSON kept beside it (checkpoints record whether the run finished)."""
    if not 1 <= version <= FORMAT_VERSION:
        raise ValueError(f"model format version {version} is not one this xpnet writes (1..{FORMAT_VERSION})")
    arrays = {name: to_numpy(value) for name, value in state.items() if array_api_compat.is_array_api_obj(value)}
    meta = {"format": FORMAT, "version": version}
    meta |= {name: value for name, value in state.items() if name not in arrays}
    if run is not None:
        meta["run"] = run
    meta["checksum"] = _checksum(arrays)
    arrays[_META] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    with atomic_write(path) as handle:
        np.savez(handle, **arrays)


def read(path) -> tuple[dict, dict | None]:
    """The state a file holds (host arrays and JSON values, unchecked beyond the archive) and its run
    record (None in a plain model file)."""
    arrays, meta = read_archive(path)
    values = {name: value for name, value in meta.items() if name not in _CONTAINER_KEYS and name not in arrays}
    return {**values, **arrays}, meta.get("run")


def read_archive(path) -> tuple[dict, dict]:
    """The arrays and the metadata of a model file, on the host, once the archive, its format version
    and its checksum are shown sound."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
    arrays = _read_arrays(path)
    if _META not in arrays:
        raise ModelFileError(f"{path}: not an xpnet model file (no '{_META}' entry)")
    meta_bytes = arrays.pop(_META)
    if meta_bytes.dtype != np.uint8 or meta_bytes.ndim != 1:
        raise ModelFileError(f"{path}: model metadata has the wrong type; the file is corrupt")
    try:
        meta = json.loads(meta_bytes.tobytes().decode())
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ModelFileError(f"{path}: model metadata is not valid JSON; the file is corrupt") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not an xpnet model file")
    version = meta.get("version")
    if type(version) is not int or version < 1:
        raise ModelFileError(f"{path}: model format version {version!r} is not valid; the file is corrupt")
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"{path}: model format version {version} is newer than this xpnet reads ({FORMAT_VERSION}); upgrade xpnet"
        )
    if meta.get("checksum") != _checksum(arrays):
        raise ModelFileError(f"{path}: checksum mismatch: the arrays were changed or damaged after saving")
    return arrays, meta


# -- reading the archive without trusting it ------------------------------------------------------


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every entry of the archive as a NumPy array, refusing anything but plain stored numeric arrays."""
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            _check_entry_sizes(infos, path.stat().st_size, path)
            arrays = {}
            for info in infos:
                name = info.filename.removesuffix(_ARRAY_SUFFIX)
                arrays[name] = _parse_array(archive.read(info), name, path)
    except ModelFileError:
        raise
    except READ_ERRORS as error:
        raise ModelFileError(f"{path}: not a readable xpnet model file (truncated or corrupt: {error})") from None
    return arrays


def _check_entry_sizes(infos: list[zipfile.ZipInfo], file_size: int, path: Path) -> None:
    """Refuse, before reading any entry, a compressed entry or sizes the file cannot hold. Entries
    may overlap (zipfile does not check), so their sizes together, not one by one, must fit."""
    for info in infos:
        name = info.filename.removesuffix(_ARRAY_SUFFIX)
        if info.compress_type != zipfile.ZIP_STORED:
            raise ModelFileError(f"{path}: entry {name!r} is compressed; xpnet model files store arrays plainly")
        if max(info.file_size, info.compress_size) > file_size:
            raise ModelFileError(
                f"{path}: entry {name!r} claims {info.file_size} bytes but the file has only {file_size}; "
                "it is truncated or corrupt"
            )
    claimed = sum(max(info.file_size, info.compress_size) for info in infos)
    if claimed > file_size:
        raise ModelFileError(
            f"{path}: its entries claim {claimed} bytes in all but the file has only {file_size}; they overlap "
            "or the file is corrupt"
        )


def _parse_array(data: bytes, name: str, path: Path) -> np.ndarray:
    """One ``.npy`` entry; its header's shape and dtype must account for exactly the bytes present."""
    stream = io.BytesIO(data)
    shape, fortran_order, dtype = read_npy_header(stream)
    if dtype.hasobject:
        raise ModelFileError(f"{path}: entry {name!r} holds pickled Python objects; refusing to load it")
    if dtype.kind not in _NUMERIC_KINDS or dtype.fields is not None or dtype.subdtype is not None or not dtype.isnative:
        raise ModelFileError(f"{path}: entry {name!r} has dtype {dtype.str}; only plain numeric arrays are allowed")
    if any(size < 0 for size in shape):
        raise ModelFileError(f"{path}: entry {name!r} claims the impossible shape {shape}; the file is corrupt")
    count = math.prod(shape)
    offset = stream.tell()
    if count * dtype.itemsize != len(data) - offset:
        raise ModelFileError(
            f"{path}: entry {name!r} claims shape {shape} of {dtype} ({count * dtype.itemsize} bytes) "
            f"but holds {len(data) - offset} bytes; it is truncated or corrupt"
        )
    flat = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
    return flat.reshape(shape, order="F" if fortran_order else "C").copy(order="C")


def _checksum(arrays: dict) -> str:
    """SHA-256 over every array's name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()
