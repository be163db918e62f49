"""Reading a CSV file of numbers, with one-line errors that name the line and column that is wrong.

Datasets from Kaggle and spreadsheets come as CSV; which column is the label is ``xpnet.datasets.loaders``'s job.
"""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import numpy as np

from xpnet.errors import DatasetError, one_line

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
    except UnicodeDecodeError as error:  # past the first row, which _first_row decoded
        raise DatasetError(
            f"{path}: cannot read as CSV text ({one_line(error, first_line=True)}); pass a comma-separated text file"
        ) from None
    except ValueError as error:
        _raise_first_bad_cell(path, header, len(first))
        raise DatasetError(
            f"{path}: cannot read as CSV ({one_line(error, first_line=True)}); pass comma-separated numbers"
        ) from None
    if values.shape[0] == 0:
        raise DatasetError(f"{path}: the CSV has a header but no data rows; add one row per sample")
    return header, values


def _loadtxt(path: Path, skip: int, dtype) -> np.ndarray:
    """NumPy's C parser; whole numbers parse about ten times faster as int64 than as float64."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "input contained no data": reported by read_csv instead
        return np.loadtxt(path, delimiter=",", skiprows=skip, ndmin=2, dtype=dtype, encoding=CSV_ENCODING)


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
