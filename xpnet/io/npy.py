"""Bounded reading of ``.npy`` files and ``.npz`` (zip) archives that may come from strangers.

Every size a header or zip entry claims is checked against the file and free memory before anything is
allocated, so a damaged or hostile file fails with one ``DatasetError`` line, never by exhausting memory.
"""

from __future__ import annotations

import io
import math
import os
import struct
import tokenize
import warnings
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np

from xpnet.arrays import memory
from xpnet.arrays.backend import numpy_backend
from xpnet.errors import DatasetError, one_line

# Samples are read and converted about this many bytes (as stored) at a time; a chunk's temporaries
# (its bytes, and a float32 copy of up to 4 times as many for 1-byte pixels) are counted as this many chunks.
CHUNK_BYTES = 2**20
CHUNK_OVERHEAD = 6
# Deflate turns at most 1032 bytes into one (258-byte matches in two bits), so a deflated stream
# claiming more than this many times its own size is lying.
DEFLATE_MAX_RATIO = 1032
# The magic string, version and length field of a .npy file, then the longest header NumPy reads
# (its default max_header_size).
_NPY_PREFIX_BYTES = 12 + 10_000


def read_npy(path) -> np.ndarray:
    """The array in a ``.npy`` file (object arrays refused: loading them would run pickled code).
    Its header is checked against the file's length and available memory before NumPy allocates anything."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            check_memory(path, _stored_bytes(*_array_header(handle, os.fstat(handle.fileno()).st_size)))
            handle.seek(0)
            array = np.lib.format.read_array(handle, allow_pickle=False)
    except READ_ERRORS as error:
        raise DatasetError(
            f"{path}: cannot read as .npy ({one_line(error, first_line=True)}); save it with numpy.save"
        ) from None
    return _numeric(path, "the array", array)


class Conversion(NamedTuple):
    """How to read an array from its header on: each sample becomes ``row_shape`` of ``dtype`` by
    ``convert(rows, first)`` (``rows`` a chunk of samples as stored, ``first`` the number of its first),
    which also refuses what it must."""

    dtype: np.dtype
    row_shape: tuple[int, ...]
    convert: Callable[[np.ndarray, int], np.ndarray]


# What the caller of ``read_npz`` makes of an array, given its name, shape and dtype (checked there).
Reader = Callable[[str, tuple[int, ...], np.dtype], Conversion]


def read_npz(path, keys: tuple[str, ...], reader: Reader | None = None) -> dict[str, np.ndarray]:
    """The arrays ``keys`` from a ``.npz`` archive; a missing key or an object array is an error.
    Each entry's header and zip sizes are checked against the file's length before anything is read:
    the archive's own size claims are not trusted. With a ``reader``, each array is read in chunks of
    samples straight into what ``reader`` makes of it, so the memory needed (checked before allocating)
    is the results plus one chunk, not the arrays as stored and their conversions."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            entries = {info.filename.removesuffix(".npy"): info for info in archive.infolist()}
            missing = [key for key in keys if key not in entries]
            if missing:
                found = ", ".join(entries) or "nothing"
                raise DatasetError(
                    f"{path}: missing {', '.join(missing)} (found {found}); save it with "
                    f"numpy.savez(path, {', '.join(f'{key}=...' for key in keys)})"
                )
            file_length = path.stat().st_size
            headers = {key: _entry_header(path, key, archive, entries[key], file_length) for key in keys}
            if reader is None:
                check_memory(path, sum(_stored_bytes(*headers[key]) for key in keys))
                return {key: _load_entry(archive, entries[key]) for key in keys}
            conversions = {key: reader(key, headers[key][0], headers[key][2]) for key in keys}
            results = (_converted_bytes(headers[key][0], conversions[key]) for key in keys)
            check_memory(path, sum(results) + CHUNK_OVERHEAD * CHUNK_BYTES)
            return {key: _read_converted(archive, entries[key], headers[key], conversions[key]) for key in keys}
    except DatasetError:
        raise
    except READ_ERRORS as error:
        raise DatasetError(
            f"{path}: cannot read as .npz ({one_line(error, first_line=True)}); save it with numpy.savez"
        ) from None


def convert_rows(path, array: np.ndarray, conversion: Conversion) -> np.ndarray:
    """``array`` (in memory, read from ``path``) converted chunk by chunk as ``conversion`` says: the
    result and one chunk at a time, checked against available memory first; where the array already has
    the result's dtype, it is only checked, and kept."""
    rows, step = array.shape[0], _chunk_rows(array.shape, array.dtype)
    kept = array.dtype == conversion.dtype and array.flags.c_contiguous
    if not kept:
        check_memory(Path(path), _converted_bytes(array.shape, conversion) + CHUNK_OVERHEAD * CHUNK_BYTES)
    result = (
        array.reshape(rows, *conversion.row_shape)
        if kept
        else np.empty((rows, *conversion.row_shape), dtype=conversion.dtype)
    )
    for first in range(0, rows, step):
        converted = conversion.convert(array[first : first + step], first)
        if not kept:
            result[first : first + converted.shape[0]] = converted
    return result


def npz_keys(path) -> list[str]:
    """The names of the arrays in a ``.npz`` archive."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            return [info.filename.removesuffix(".npy") for info in archive.infolist()]
    except READ_ERRORS as error:
        raise DatasetError(
            f"{path}: cannot read as .npz ({one_line(error, first_line=True)}); save it with numpy.savez"
        ) from None


# What a damaged file or archive can raise from zipfile, zlib or NumPy's .npy header parser (which
# tokenizes a header it cannot evaluate); the model-file reader catches the same.
READ_ERRORS = (
    OSError,
    EOFError,
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    OverflowError,
    SyntaxError,
    RecursionError,
    NotImplementedError,
    struct.error,
    tokenize.TokenError,
)


def check_memory(path: Path, needed: int) -> None:
    """Refuse, before allocating, a file whose data would need more host memory than is available."""
    available = memory.available_bytes(numpy_backend())
    if available is not None and needed > available:
        raise DatasetError(
            f"{path}: reading it needs {needed / memory.GIB:.3g} GiB of memory but only "
            f"{available / memory.GIB:.3g} GiB is available; use a smaller file or free some memory"
        )


def _entry_header(path: Path, key: str, archive: zipfile.ZipFile, info: zipfile.ZipInfo, file_length: int) -> tuple:
    """Shape, Fortran order and dtype of the entry's array, once the zip sizes are shown possible for a
    file of ``file_length`` bytes and the entry's .npy header accounts for exactly its uncompressed size."""
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise DatasetError(
            f"{path}: {key} uses zip compression method {info.compress_type}; save it with numpy.savez or "
            "numpy.savez_compressed"
        )
    if info.compress_size > file_length:
        raise DatasetError(
            f"{path}: {key} claims {info.compress_size} compressed bytes but the file has only {file_length}; "
            "it is truncated or corrupt"
        )
    if info.compress_type == zipfile.ZIP_STORED and info.file_size != info.compress_size:
        raise DatasetError(
            f"{path}: {key} is stored uncompressed in {info.compress_size} bytes but claims {info.file_size}; "
            "the file is corrupt"
        )
    if info.file_size > info.compress_size * DEFLATE_MAX_RATIO:
        raise DatasetError(
            f"{path}: {key} claims {info.file_size} bytes, more than its {info.compress_size} compressed bytes "
            "can expand to; the file is corrupt"
        )
    with archive.open(info) as stream:
        try:
            header = _array_header(stream, info.file_size)
        except READ_ERRORS as error:
            reason = one_line(error, first_line=True)
            raise DatasetError(f"{path}: cannot read {key} ({reason}); save plain numbers with numpy.savez") from None
    if header[2].kind not in "biuf":
        raise DatasetError(f"{path}: {key} has dtype {header[2]}; store plain numbers (integers or floats)")
    return header


def read_npy_header(stream) -> tuple[tuple[int, ...], bool, np.dtype]:
    """Shape, Fortran order and dtype from the .npy header (version 1.0 or 2.0) that starts ``stream``,
    read by NumPy's own parser without allocating the array; damaged headers raise ValueError and kin."""
    version = np.lib.format.read_magic(stream)
    if version not in ((1, 0), (2, 0)):
        raise ValueError(f"unsupported .npy version {version}")
    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    with warnings.catch_warnings():  # a damaged header may hold odd escapes; the caller's checks decide
        warnings.simplefilter("ignore")
        return read_header(stream)


def _array_header(stream, stored: int) -> tuple[tuple[int, ...], bool, np.dtype]:
    """Shape, Fortran order and dtype of the array whose .npy header starts ``stream``, once the header
    is shown to account for exactly the ``stored`` bytes of the file or entry: a header claiming billions
    of items is refused, not allocated (ValueError, with the reason)."""
    # Parsed from a bounded prefix: reading a file, Python allocates whatever a damaged length field asks.
    header = io.BytesIO(stream.read(min(stored, _NPY_PREFIX_BYTES)))
    shape, fortran_order, dtype = read_npy_header(header)
    if dtype.hasobject:
        raise ValueError("it holds Python objects, which xpnet does not unpickle")
    data_bytes, held = _stored_bytes(shape, fortran_order, dtype), stored - header.tell()
    if any(size < 0 for size in shape) or data_bytes != held:
        raise ValueError(f"its header claims shape {shape} of {dtype} ({data_bytes} bytes) but it holds {held} bytes")
    return shape, fortran_order, dtype


def _stored_bytes(shape: tuple[int, ...], fortran_order: bool, dtype: np.dtype) -> int:
    return math.prod(shape) * dtype.itemsize


def _converted_bytes(shape: tuple[int, ...], conversion: Conversion) -> int:
    return shape[0] * math.prod(conversion.row_shape) * conversion.dtype.itemsize


def _chunk_rows(shape: tuple[int, ...], dtype: np.dtype) -> int:
    """Samples per chunk: about ``CHUNK_BYTES`` of them as stored, at least one."""
    return max(1, CHUNK_BYTES // max(1, math.prod(shape[1:]) * dtype.itemsize))


def _load_entry(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray:
    with archive.open(info) as stream:
        return np.lib.format.read_array(stream, allow_pickle=False)


def _read_converted(archive: zipfile.ZipFile, info: zipfile.ZipInfo, header: tuple, conversion: Conversion):
    """The entry read chunk by chunk into its conversion (a Fortran-order array, whose samples are not
    contiguous, is read whole first: NumPy writes none such, and its copy is the price)."""
    shape, fortran_order, dtype = header
    if fortran_order or not shape:
        return convert_rows(archive.filename, _load_entry(archive, info), conversion)
    rows, step = shape[0], _chunk_rows(shape, dtype)
    result = np.empty((rows, *conversion.row_shape), dtype=conversion.dtype)
    with archive.open(info) as stream:
        read_npy_header(stream)
        for first in range(0, rows, step):
            count = min(step, rows - first)
            data = stream.read(count * math.prod(shape[1:]) * dtype.itemsize)
            chunk = np.frombuffer(data, dtype=dtype).reshape(count, *shape[1:])
            result[first : first + count] = conversion.convert(chunk, first)
    return result


def _numeric(path: Path, name: str, array: np.ndarray) -> np.ndarray:
    """``array`` if it holds booleans, integers or floats; otherwise a clear error."""
    if array.dtype.kind not in "biuf":
        raise DatasetError(f"{path}: {name} has dtype {array.dtype}; store plain numbers (integers or floats)")
    return array
