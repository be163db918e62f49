"""Reader for IDX files (the MNIST format), raw or gzip-compressed, validated before any allocation.

An IDX file is two zero bytes, a type code, a dimension count, one big-endian uint32 per dimension,
then the items in C order. The sizes in the header are checked against the file's length (gzip
inflates at most 1032-fold) and available memory, so a corrupt header claiming billions of items fails with
a clear message instead of allocating memory.
"""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path

import numpy as np

from xpnet.errors import DatasetError
from xpnet.io.npy import DEFLATE_MAX_RATIO, check_memory

# Type codes of the IDX format and the big-endian NumPy dtypes they name.
IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
CHUNK_BYTES = 1 << 20


def is_gzip(path: Path) -> bool:
    """Whether the file starts with the gzip magic bytes (its name may not say so)."""
    with open(path, "rb") as handle:
        return handle.read(2) == b"\x1f\x8b"


def read_idx(path) -> np.ndarray:
    """The array stored in the IDX file at ``path`` (``.gz`` or raw), in native byte order. The
    announced size is checked against what the file can hold and available memory, then read in place."""
    path = Path(path)
    try:
        compressed = is_gzip(path)
        file_length = path.stat().st_size
        with gzip.open(path, "rb") if compressed else open(path, "rb") as stream:
            big_endian, shape = _read_header(stream, path)
            expected = math.prod(shape) * big_endian.itemsize
            if compressed:
                _check_inflatable(path, file_length, expected)
            else:
                _check_length(path, file_length - 4 - 4 * len(shape), expected)
            check_memory(path, expected)
            array = np.empty(shape, dtype=big_endian.newbyteorder("="))
            filled = _read_into(stream, array.reshape(-1).view(np.uint8))
            _check_length(path, filled + len(stream.read(1)), expected)
    except FileNotFoundError:
        raise DatasetError(f"{path}: no such file; check the path") from None
    except (OSError, EOFError, zlib.error) as error:
        raise DatasetError(f"{path}: cannot read ({error}); fetch the file again") from None
    if not big_endian.isnative:
        array.byteswap(inplace=True)
    return array


def encode_idx(array: np.ndarray) -> bytes:
    """The IDX bytes of ``array`` (the inverse of :func:`read_idx`), for writing datasets and test files."""
    array = np.asarray(array)
    codes = {np.dtype(dtype).newbyteorder("="): code for code, dtype in IDX_DTYPES.items()}
    code = codes.get(array.dtype.newbyteorder("="))
    if code is None:
        raise DatasetError(
            f"cannot write {array.dtype} as IDX; convert to uint8, int8, int16, int32, float32 or float64"
        )
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    return header + array.astype(IDX_DTYPES[code]).tobytes()


def _read_header(stream, path: Path) -> tuple[np.dtype, tuple[int, ...]]:
    """The item dtype and the shape announced by the header, checked for consistency."""
    magic = stream.read(4)
    if len(magic) < 4 or magic[:2] != b"\x00\x00":
        raise DatasetError(f"{path}: not an IDX file (bad magic number); pass MNIST-format IDX files")
    type_code, ndim = magic[2], magic[3]
    if type_code not in IDX_DTYPES:
        raise DatasetError(
            f"{path}: unknown IDX type code 0x{type_code:02x}; the file is corrupt or not IDX, fetch it again"
        )
    if ndim == 0:
        raise DatasetError(f"{path}: IDX header has 0 dimensions; the file is corrupt, fetch it again")
    dims = stream.read(4 * ndim)
    if len(dims) < 4 * ndim:
        raise DatasetError(f"{path}: truncated IDX header ({ndim} dimensions announced); fetch the file again")
    shape = tuple(int(size) for size in np.frombuffer(dims, dtype=">u4"))
    return np.dtype(IDX_DTYPES[type_code]), shape


def _read_into(stream, buffer: np.ndarray) -> int:
    """Fill ``buffer`` (bytes) from ``stream`` in chunks, so no temporary exceeds a chunk; the count read."""
    view, filled = memoryview(buffer), 0
    while filled < len(view):
        count = stream.readinto(view[filled : filled + CHUNK_BYTES])
        if not count:
            break
        filled += count
    return filled


def _check_inflatable(path: Path, file_length: int, expected: int) -> None:
    """Fail unless a gzip file of ``file_length`` bytes can inflate to the ``expected`` data bytes."""
    if expected > file_length * DEFLATE_MAX_RATIO:
        raise DatasetError(
            f"{path}: truncated IDX file (the header announces {expected} data bytes but {file_length} gzip bytes "
            f"inflate to at most {file_length * DEFLATE_MAX_RATIO}); fetch it again"
        )


def _check_length(path: Path, actual: int, expected: int) -> None:
    """Fail unless the data after the header is exactly as long as the header announces."""
    if actual < expected:
        raise DatasetError(
            f"{path}: truncated IDX file ({actual} of {expected} data bytes the header announces); fetch it again"
        )
    if actual > expected:
        raise DatasetError(
            f"{path}: IDX file has more data than its header announces ({expected} bytes); the file is corrupt, "
            "fetch it again"
        )
