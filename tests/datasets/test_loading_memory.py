"""What loading a dataset holds in memory: the final arrays plus one chunk, and a file whose final arrays
would not fit is refused, naming it, before they are allocated (not by what it stores, which may be 4x
smaller for 1-byte pixels, or 1000x smaller deflated)."""

from __future__ import annotations

import tracemalloc
import zipfile

import numpy as np
import pytest

from xpnet import datasets
from xpnet.errors import DatasetError
from xpnet.io import npy

ROWS, FEATURES = 2**18, 64
FINAL_BYTES = ROWS * FEATURES * 4 + 2 * ROWS * 8  # float32 inputs, int64 labels


def deflated_dataset(path, dtype) -> str:
    """Zeros, deflated to a few hundred kilobytes; the labels alternate between two classes."""
    labels = np.arange(ROWS) % 2
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for key, array in {"x_train": np.zeros((ROWS, FEATURES), dtype), "y_train": labels}.items():
            with archive.open(f"{key}.npy", "w", force_zip64=True) as entry:
                np.lib.format.write_array(entry, array)
        for key, array in {"x_test": np.zeros((2, FEATURES), dtype), "y_test": labels[:2]}.items():
            with archive.open(f"{key}.npy", "w") as entry:
                np.lib.format.write_array(entry, array)
    return str(path)


def traced_peak(action) -> int:
    tracemalloc.start()
    try:
        action()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("dtype", [np.float32, np.uint8])
def test_loading_holds_the_final_arrays_and_one_chunk(tmp_path, dtype):
    path = deflated_dataset(tmp_path / "zeros.npz", dtype)
    peak = traced_peak(lambda: datasets.load(path))
    assert FINAL_BYTES <= peak <= FINAL_BYTES + npy.CHUNK_OVERHEAD * npy.CHUNK_BYTES, peak / 2**20


@pytest.mark.parametrize("dtype", [np.float32, np.uint8])
def test_a_dataset_whose_final_arrays_do_not_fit_is_refused_before_they_are_allocated(tmp_path, monkeypatch, dtype):
    """The uint8 file stores a quarter of what it loads into: counting what it stores would let it through."""
    path = deflated_dataset(tmp_path / "zeros.npz", dtype)
    monkeypatch.setattr(npy.memory, "available_bytes", lambda backend: FINAL_BYTES - 2**20)
    failures = []

    def load():
        with pytest.raises(DatasetError) as failure:
            datasets.load(path)
        failures.append(str(failure.value))

    assert traced_peak(load) < 2**20
    assert failures[0].startswith(f"{path}: reading it needs 0.0") and "GiB of memory but only" in failures[0]


def test_splits_that_disagree_are_refused_from_their_headers_before_anything_is_read(tmp_path):
    path = tmp_path / "uneven.npz"
    np.savez(
        path,
        x_train=np.zeros((ROWS, FEATURES), np.float32),
        y_train=np.zeros(10),
        x_test=np.zeros((2, 3)),
        y_test=[0, 1],
    )
    failures = []

    def load():
        with pytest.raises(DatasetError) as failure:
            datasets.load(str(path))
        failures.append(str(failure.value))

    assert traced_peak(load) < 2**20
    assert failures == [f"{path}: {ROWS} training images but 10 training labels; the counts must match"]
