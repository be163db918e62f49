"""Hypothesis feeds the dataset readers (IDX, gzip IDX, CSV, NPZ, NPY) random bytes and mutated valid
files, each reader its own examples. Each read either succeeds with arrays of the promised shape and
dtype or raises xpnet's own ``DatasetError``: never another exception, a hang, or memory blown by a
header's claims."""

from __future__ import annotations

import gzip
import io
import os
import tempfile
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xpnet import datasets
from xpnet.datasets.idx import encode_idx, read_idx
from xpnet.errors import DatasetError

# Examples per reader and test; XPNET_FUZZ_EXAMPLES raises it for a longer campaign.
FUZZ = settings(
    max_examples=int(os.environ.get("XPNET_FUZZ_EXAMPLES", "100")),
    deadline=5000,
    suppress_health_check=[HealthCheck.too_slow],
)
PEAK_BYTES = 20_000_000  # far above what a few-kilobyte file can legitimately need
RNG = np.random.default_rng(0)
IMAGES = RNG.integers(0, 256, size=(12, 4, 4), dtype=np.uint8)
LABELS = np.arange(12, dtype=np.uint8) % 3  # every class in the training part of any split


def _csv_bytes() -> bytes:
    header = "label," + ",".join(f"pixel{i}" for i in range(16))
    rows = [",".join(map(str, [label, *image.ravel()])) for label, image in zip(LABELS, IMAGES, strict=True)]
    return ("\n".join([header, *rows]) + "\n").encode()


def _npz_bytes() -> bytes:
    buffer = io.BytesIO()
    flat = IMAGES.reshape(12, -1).astype(np.float32) / 255
    np.savez(buffer, x_train=flat[:8], y_train=LABELS[:8], x_test=flat[8:], y_test=LABELS[8:])
    return buffer.getvalue()


def _npy_bytes() -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, IMAGES)
    return buffer.getvalue()


VALID = {
    ".idx": encode_idx(IMAGES),
    ".gz": gzip.compress(encode_idx(IMAGES)),
    ".csv": _csv_bytes(),
    ".npz": _npz_bytes(),
    ".npy": _npy_bytes(),
}
READERS = sorted(VALID)


def _mutated(data: bytes, edits) -> bytes:
    mutable = bytearray(data)
    for position, value, kind in edits:
        if not mutable:
            break
        position %= len(mutable)
        if kind == "set":
            mutable[position] = value
        elif kind == "cut":
            del mutable[position:]
        else:
            mutable[position:position] = bytes([value]) * (value % 9 + 1)
    return bytes(mutable)


EDITS = st.lists(
    st.tuples(st.integers(0, 10**6), st.integers(0, 255), st.sampled_from(["set", "cut", "insert"])),
    min_size=1,
    max_size=6,
)


def _read(suffix: str, data: bytes):
    """Write ``data`` to a file of that kind and read it as xpnet would, bounding peak memory whether
    the read succeeds or fails."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"data{suffix}"
        path.write_bytes(data)
        tracemalloc.start()
        try:
            if suffix in (".idx", ".gz"):
                result = read_idx(path)
            elif suffix == ".npy":
                result = datasets.read_inputs(path)
            else:
                result = datasets.load(str(path))
        except DatasetError as error:
            assert "\n" not in str(error)
            result = None
        finally:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
    assert peak < PEAK_BYTES
    return result


def _check_loaded(suffix: str, result) -> None:
    if result is None:
        return
    if suffix in (".idx", ".gz"):
        assert isinstance(result, np.ndarray)
        return
    if suffix == ".npy":
        assert result.dtype == np.float32 and result.ndim == 2 and np.isfinite(result).all()
        return
    x_train, y_train, x_test, y_test = result
    for x, y in ((x_train, y_train), (x_test, y_test)):
        assert x.dtype == np.float32 and y.dtype == np.int64
        assert x.ndim == 2 and y.shape == (x.shape[0],)
        assert np.isfinite(x).all() and (y >= 0).all()


@pytest.mark.parametrize("suffix", READERS)
def test_the_unmutated_files_load(suffix):
    result = _read(suffix, VALID[suffix])
    assert result is not None
    _check_loaded(suffix, result)


@pytest.mark.parametrize("suffix", READERS)
@FUZZ
@given(edits=EDITS)
def test_mutated_files_load_or_fail_with_one_clear_line(suffix, edits):
    _check_loaded(suffix, _read(suffix, _mutated(VALID[suffix], edits)))


@pytest.mark.parametrize("suffix", READERS)
@FUZZ
@given(data=st.binary(max_size=512))
def test_random_bytes_load_or_fail_with_one_clear_line(suffix, data):
    _check_loaded(suffix, _read(suffix, data))


@FUZZ
@given(prefix=st.binary(min_size=4, max_size=4), counts=st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=3))
def test_idx_headers_claiming_huge_sizes_never_allocate_them(prefix, counts):
    header = bytes([0, 0, 0x08, len(counts)]) + b"".join(c.to_bytes(4, "big") for c in counts)
    _check_loaded(".idx", _read(".idx", header + prefix))


def _peak_of_refusal(read, match: str) -> int:
    """Peak bytes traced while ``read()`` fails with a ``DatasetError`` matching ``match``."""
    tracemalloc.start()
    try:
        with pytest.raises(DatasetError, match=match) as caught:
            read()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "\n" not in str(caught.value)
    return peak


def _npy_header(shape: tuple, descr: str = "<f4") -> bytes:
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": descr, "fortran_order": False, "shape": shape})
    return header.getvalue()


def test_an_npz_entry_claiming_billions_of_items_is_refused_before_allocating(tmp_path):
    lying = _npy_header((10**10, 784)) + bytes(64)
    path = tmp_path / "huge.npz"
    with zipfile.ZipFile(path, "w") as archive:
        for key in ("x_train", "y_train", "x_test", "y_test"):
            archive.writestr(f"{key}.npy", lying)
    match = r"cannot read x_train \(its header claims shape \(10000000000, 784\) of float32 \(31360000000000 bytes\)"
    assert _peak_of_refusal(lambda: datasets.load(str(path)), match) < 1_000_000


@pytest.mark.parametrize("shape", [(10**12, 3), (10**8, 3)])
def test_an_npy_header_claiming_more_than_the_file_holds_is_refused_before_allocating(tmp_path, shape):
    path = tmp_path / "inputs.npy"
    path.write_bytes(_npy_header(shape) + bytes(12))
    match = rf"inputs\.npy: cannot read as \.npy \(its header claims shape \({shape[0]}, 3\) of float32 .* 12 bytes"
    assert _peak_of_refusal(lambda: datasets.read_inputs(path), match) < 1_000_000


def test_an_npy_header_length_claiming_gigabytes_is_not_read(tmp_path):
    path = tmp_path / "inputs.npy"
    path.write_bytes(b"\x93NUMPY\x02\x00" + (2**32 - 1).to_bytes(4, "little") + bytes(100))
    match = r"cannot read as \.npy \(EOF: reading array header, expected 4294967295 bytes got 100\)"
    assert _peak_of_refusal(lambda: datasets.read_inputs(path), match) < 1_000_000


@pytest.mark.parametrize(
    ("compression", "match"),
    [
        (zipfile.ZIP_STORED, r"x is stored uncompressed in 192 bytes but claims 1000000128"),
        (zipfile.ZIP_DEFLATED, r"x claims 1000000128 bytes, more than its \d+ compressed bytes can expand to"),
    ],
)
def test_an_npz_entry_whose_zip_sizes_lie_is_refused_before_allocating(tmp_path, compression, match):
    """The .npy header and the zip directory agree on a gigabyte, but the entry holds 64 bytes."""
    header = _npy_header((10**9,), "|u1")
    path = tmp_path / "inputs.npz"
    with zipfile.ZipFile(path, "w", compression) as archive:
        archive.writestr("x.npy", header + bytes(64))
    data = bytearray(path.read_bytes())
    claimed = (len(header) + 10**9).to_bytes(4, "little")
    directory = bytes(data).index(b"PK\x01\x02")
    data[22:26] = data[directory + 24 : directory + 28] = claimed  # local and central uncompressed sizes
    path.write_bytes(bytes(data))
    assert _peak_of_refusal(lambda: datasets.read_inputs(path), match) < 1_000_000
