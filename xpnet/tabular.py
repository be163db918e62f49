"""Readers for CSV, ``.npy`` and ``.npz`` files, with one-line errors that say where the file is wrong.

They return the numbers as stored; labels, scaling and the train/test layout are ``xpnet.datasets``'s job.
"""

from __future__ import annotations

import csv
import math
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np

from xpnet import memory
from xpnet.backend import numpy_backend
from xpnet.errors import DatasetError

# UTF-8, with or without the byte-order mark that spreadsheet programs put first.
CSV_ENCODING = "utf-8-sig"


def read_csv(path) -> tuple[list[str] | None, np.ndarray]:
    """The header (``None`` when the first row is numeric) and the cells as a (rows, columns) array:
    int64 when every cell is a whole number, else float64."""
    path = Path(path)
    first = _first_row(path)
    header = None if all(_is_number(cell) for cell in first) else [cell.strip() for cell in first]
    skip = 1 if header else 0
    try:
        try:
            values = _loadtxt(path, skip, np.int64)
        except (ValueError, OverflowError):
            values = _loadtxt(path, skip, np.float64)
    except ValueError as error:
        _raise_first_bad_cell(path, header, len(first))
        raise DatasetError(f"{path}: cannot read as CSV ({_reason(error)}); pass comma-separated numbers") from None
    if values.shape[0] == 0:
        raise DatasetError(f"{path}: the CSV has a header but no data rows; add one row per sample")
    return header, values


def _loadtxt(path: Path, skip: int, dtype) -> np.ndarray:
    """NumPy's C parser; whole numbers parse about ten times faster as int64 than as float64."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "input contained no data": reported by read_csv instead
        return np.loadtxt(path, delimiter=",", skiprows=skip, ndmin=2, dtype=dtype, encoding=CSV_ENCODING)


def read_npy(path) -> np.ndarray:
    """The array in a ``.npy`` file (object arrays refused: loading them would run pickled code)."""
    path = Path(path)
    try:
        return _numeric(path, "the array", np.load(path, allow_pickle=False))
    except (ValueError, OSError) as error:
        raise DatasetError(f"{path}: cannot read as .npy ({_reason(error)}); save it with numpy.save") from None


def read_npz(path, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The arrays ``keys`` from a ``.npz`` archive; a missing key or an object array is an error.
    Each entry's header is checked against its stored size before NumPy allocates anything."""
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
            claimed = sum(_checked_entry_size(path, key, archive, entries[key]) for key in keys)
            _check_memory(path, claimed)
            return {key: _numeric(path, key, _load_entry(archive, entries[key])) for key in keys}
    except DatasetError:
        raise
    except _NPZ_ERRORS as error:
        raise DatasetError(f"{path}: cannot read as .npz ({_reason(error)}); save it with numpy.savez") from None


def npz_keys(path) -> list[str]:
    """The names of the arrays in a ``.npz`` archive."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            return [info.filename.removesuffix(".npy") for info in archive.infolist()]
    except _NPZ_ERRORS as error:
        raise DatasetError(f"{path}: cannot read as .npz ({_reason(error)}); save it with numpy.savez") from None


# What a damaged archive can raise from zipfile, zlib or NumPy's .npy header parser.
_NPZ_ERRORS = (
    ValueError,
    OSError,
    EOFError,
    SyntaxError,
    KeyError,
    NotImplementedError,
    zipfile.BadZipFile,
    zlib.error,
)


def _checked_entry_size(path: Path, key: str, archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> int:
    """Bytes the entry's array will take, after checking that its header accounts for exactly the
    entry's stored size (so a header claiming billions of items is refused, not allocated)."""
    with archive.open(info) as stream:
        version = np.lib.format.read_magic(stream)
        with warnings.catch_warnings():  # a damaged header may hold odd escapes; the checks below decide
            warnings.simplefilter("ignore")
            read_header = {(1, 0): np.lib.format.read_array_header_1_0}.get(
                version, np.lib.format.read_array_header_2_0
            )
            shape, _, dtype = read_header(stream)
        header_size = stream.tell()
    if dtype.hasobject:
        raise DatasetError(f"{path}: {key} holds Python objects, which xpnet does not unpickle; store plain numbers")
    if any(size < 0 for size in shape) or math.prod(shape) * dtype.itemsize != info.file_size - header_size:
        raise DatasetError(
            f"{path}: {key} claims shape {shape}, which does not match its stored size; the file is corrupt"
        )
    return info.file_size


def _check_memory(path: Path, claimed: int) -> None:
    available = memory.available_bytes(numpy_backend())
    if available is not None and claimed > available:
        raise DatasetError(
            f"{path}: its arrays need {claimed / 2**30:.1f} GiB but only {available / 2**30:.1f} GiB of memory is free"
        )


def _load_entry(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray:
    with archive.open(info) as stream:
        return np.lib.format.read_array(stream, allow_pickle=False)


def _numeric(path: Path, name: str, array: np.ndarray) -> np.ndarray:
    """``array`` if it holds booleans, integers or floats; otherwise a clear error."""
    if array.dtype.kind not in "biuf":
        raise DatasetError(f"{path}: {name} has dtype {array.dtype}; store plain numbers (integers or floats)")
    return array


def _reason(error: Exception) -> str:
    """A short, one-line reason; NumPy's pickle refusal is reworded to say what it means here."""
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return "it holds Python objects, which xpnet does not unpickle" if "allow_pickle" in text else text


def _first_row(path: Path) -> list[str]:
    """The first non-blank CSV row; an empty file or a missing one is an error."""
    try:
        with open(path, newline="", encoding=CSV_ENCODING) as handle:
            for row in csv.reader(handle):
                if row:
                    return row
    except FileNotFoundError:
        raise DatasetError(f"{path}: no such file; check the path") from None
    except (OSError, UnicodeDecodeError) as error:
        raise DatasetError(f"{path}: cannot read as CSV text ({error}); pass a comma-separated text file") from None
    raise DatasetError(f"{path}: the CSV file is empty; it needs a header row and one row per sample")


def _raise_first_bad_cell(path: Path, header: list[str] | None, width: int) -> None:
    """Find the first row of the wrong width or the first non-numeric cell, and say where it is."""
    with open(path, newline="", encoding=CSV_ENCODING) as handle:
        rows = csv.reader(handle)
        if header:
            next(rows)
        for row in rows:
            if not row:
                continue
            line = rows.line_num
            if len(row) != width:
                raise DatasetError(
                    f"{path}: line {line} has {len(row)} columns but the first row has {width}; "
                    "every row needs the same columns"
                )
            for column, cell in enumerate(row):
                if not _is_number(cell):
                    name = header[column] if header else f"{column + 1}"
                    raise DatasetError(
                        f"{path}: line {line}, column {name}: {cell!r} is not a number; every cell must be a number"
                    )


def _is_number(cell: str) -> bool:
    """Whether the CSV cell parses as a float (NaN and infinities included; they are refused later)."""
    try:
        float(cell)
    except ValueError:
        return False
    return True
