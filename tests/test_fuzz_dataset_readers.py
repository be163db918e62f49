"""Hypothesis feeds the dataset readers (IDX, CSV, NPZ, NPY) random bytes and mutated valid files.
Each read either succeeds with arrays of the promised shape and dtype or raises xpnet's own
``DatasetError``: never another exception, a hang, or memory blown by a header's claims."""

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
from xpnet.errors import DatasetError
from xpnet.idx import encode_idx, read_idx

FUZZ = settings(
    max_examples=int(os.environ.get("XPNET_FUZZ_EXAMPLES", "100")),
    deadline=5000,
    suppress_health_check=[HealthCheck.too_slow],
)
PEAK_BYTES = 20_000_000  # far above what a few-kilobyte file can legitimately need
RNG = np.random.default_rng(0)
IMAGES = RNG.integers(0, 256, size=(12, 4, 4), dtype=np.uint8)
LABELS = RNG.integers(0, 10, size=12, dtype=np.uint8)


def _csv_bytes() -> bytes:
    header = "label," + ",".join(f"pixel{i}" for i in range(16))
    rows = [",".join(map(str, [label, *image.ravel()])) for label, image in zip(LABELS, IMAGES, strict=True)]
    return ("\n".join([header, *rows]) + "\n").encode()


def _npz_bytes() -> bytes:
    buffer = io.BytesIO()
    flat = IMAGES.reshape(12, -1).astype(np.float32) / 255
    np.savez(buffer, x_train=flat[:8], y_train=LABELS[:8], x_test=flat[8:], y_test=LABELS[8:])
    return buffer.getvalue()


VALID = {
    ".idx": encode_idx(IMAGES),
    ".gz": gzip.compress(encode_idx(IMAGES)),
    ".csv": _csv_bytes(),
    ".npz": _npz_bytes(),
}


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
    """Write ``data`` to a file of that kind and read it as xpnet would, bounding peak memory."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"data{suffix}"
        path.write_bytes(data)
        tracemalloc.start()
        try:
            if suffix in (".idx", ".gz"):
                result = read_idx(path)
            elif suffix == ".csv":
                result = datasets.load(str(path))
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
    x_train, y_train, x_test, y_test = result
    for x, y in ((x_train, y_train), (x_test, y_test)):
        assert x.dtype == np.float32 and y.dtype == np.int64
        assert x.ndim == 2 and y.shape == (x.shape[0],)
        assert np.isfinite(x).all() and (y >= 0).all()


def test_the_unmutated_files_load():
    for suffix, data in VALID.items():
        result = _read(suffix, data)
        assert result is not None, suffix
        _check_loaded(suffix, result)


@FUZZ
@given(suffix=st.sampled_from(sorted(VALID)), edits=EDITS)
def test_mutated_files_load_or_fail_with_one_clear_line(suffix, edits):
    _check_loaded(suffix, _read(suffix, _mutated(VALID[suffix], edits)))


@FUZZ
@given(suffix=st.sampled_from(sorted(VALID)), data=st.binary(max_size=512))
def test_random_bytes_load_or_fail_with_one_clear_line(suffix, data):
    _check_loaded(suffix, _read(suffix, data))


@FUZZ
@given(prefix=st.binary(min_size=4, max_size=4), counts=st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=3))
def test_idx_headers_claiming_huge_sizes_never_allocate_them(prefix, counts):
    header = bytes([0, 0, 0x08, len(counts)]) + b"".join(c.to_bytes(4, "big") for c in counts)
    _check_loaded(".idx", _read(".idx", header + prefix))


def test_an_npz_entry_claiming_billions_of_items_is_refused_before_allocating(tmp_path):
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (10**10, 784)})
    lying = header.getvalue() + bytes(64)
    path = tmp_path / "huge.npz"
    with zipfile.ZipFile(path, "w") as archive:
        for key in ("x_train", "y_train", "x_test", "y_test"):
            archive.writestr(f"{key}.npy", lying)
    tracemalloc.start()
    try:
        with pytest.raises(DatasetError, match=r"x_train claims shape \(10000000000, 784\), which does not match"):
            datasets.load(str(path))
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < 1_000_000
