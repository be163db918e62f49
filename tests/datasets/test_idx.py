"""The IDX reader: round trips, gzip, and every malformed header or length rejected by message."""

from __future__ import annotations

import gzip
import tracemalloc

import numpy as np
import pytest

from xpnet.arrays import memory
from xpnet.datasets.idx import CHUNK_BYTES, encode_idx, read_idx
from xpnet.errors import DatasetError, XpnetError


@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "int32", "float32", "float64"])
def test_round_trip_every_type(tmp_path, dtype):
    array = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype)
    path = tmp_path / "x-idx3"
    path.write_bytes(encode_idx(array))
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype) and back.shape == (2, 3, 4)
    np.testing.assert_array_equal(back, array)


def test_header_layout_matches_mnist(tmp_path):
    """The bytes follow the published layout: magic 0x00000803, then big-endian sizes."""
    data = encode_idx(np.zeros((5, 28, 28), dtype=np.uint8))
    assert data[:4] == b"\x00\x00\x08\x03"
    assert int.from_bytes(data[4:8], "big") == 5 and int.from_bytes(data[8:12], "big") == 28
    assert len(data) == 16 + 5 * 28 * 28


def test_gzip_detected_by_content(tmp_path):
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    path = tmp_path / "labels-without-gz-suffix"
    path.write_bytes(gzip.compress(encode_idx(labels)))
    np.testing.assert_array_equal(read_idx(path), labels)


def write(tmp_path, data: bytes, compress: bool = False):
    path = tmp_path / "bad-idx"
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x01\x02\x08\x01" + b"\x00" * 8, "not an IDX file"),
        (b"\x00\x00", "not an IDX file"),
        (b"\x00\x00\x07\x01\x00\x00\x00\x01\x00", "unknown IDX type code 0x07"),
        (b"\x00\x00\x08\x00", "0 dimensions"),
        (b"\x00\x00\x08\x03\x00\x00\x00\x01", r"truncated IDX header \(3 dimensions"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x05" + b"\x01\x02", r"truncated IDX file \(2 of 5 data bytes"),
        (b"\x00\x00\x0c\x01\x00\x00\x00\x02" + b"\x00" * 7, r"truncated IDX file \(7 of 8 data bytes"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x02" + b"\x00" * 3, "more data than its header announces"),
    ],
)
def test_malformed_files_rejected(tmp_path, data, message, compress):
    path = write(tmp_path, data, compress)
    with pytest.raises(DatasetError, match=message) as caught:
        read_idx(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)
    assert isinstance(caught.value, XpnetError)


def traced_peak(read) -> int:
    """Peak bytes traced while ``read()`` runs, whether it returns or raises."""
    tracemalloc.start()
    try:
        read()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("sizes", [(4_000_000_000, 4_000_000_000), (100_000_000,)])
def test_header_claiming_more_than_the_file_holds_does_not_allocate(tmp_path, compress, sizes):
    """Billions (or, gzipped, more than 10 bytes can inflate to) announced, 10 bytes present: rejected
    with little memory used."""
    data = bytes([0, 0, 0x08, len(sizes)]) + np.array(sizes, dtype=">u4").tobytes() + b"\x00" * 10
    path = write(tmp_path, data, compress)

    def read():
        with pytest.raises(DatasetError, match="truncated IDX file"):
            read_idx(path)

    assert traced_peak(read) < 1_000_000


GZIPPED_ITEMS = 30_000_000


@pytest.fixture(scope="module")
def gzipped_zeros(tmp_path_factory):
    """A 30 KB gzip holding 30 million zero bytes, a thousand times its size."""
    path = tmp_path_factory.mktemp("idx") / "zeros-idx1.gz"
    path.write_bytes(gzip.compress(encode_idx(np.zeros(GZIPPED_ITEMS, dtype=np.uint8))))
    return path


def test_a_gzipped_file_is_read_into_one_array_without_a_second_copy(gzipped_zeros):
    loaded = []
    peak = traced_peak(lambda: loaded.append(read_idx(gzipped_zeros)))
    assert loaded[0].shape == (GZIPPED_ITEMS,) and not loaded[0].any()
    assert peak < GZIPPED_ITEMS + 4 * CHUNK_BYTES  # the array, and a few chunks in flight: not a second copy


def test_a_gzipped_file_bigger_than_memory_is_refused_before_allocating(gzipped_zeros, monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda backend: 10 * 2**20)

    def read():
        with pytest.raises(DatasetError, match=r"zeros-idx1\.gz: reading it needs 0\.0279 GiB .* only 0\.00977 GiB is"):
            read_idx(gzipped_zeros)

    assert traced_peak(read) < 1_000_000


def test_big_endian_types_are_swapped_to_native_order(tmp_path):
    values = np.array([[1, -2], [70000, -(2**31)]], dtype=np.int32)
    path = write(tmp_path, encode_idx(values), compress=True)
    back = read_idx(path)
    assert back.dtype == np.dtype("=i4") and back.dtype.isnative
    np.testing.assert_array_equal(back, values)


def test_corrupt_gzip_rejected(tmp_path):
    path = tmp_path / "broken.gz"
    path.write_bytes(gzip.compress(encode_idx(np.zeros(100, dtype=np.uint8)))[:-12])
    with pytest.raises(DatasetError, match=r"broken\.gz: cannot read .*fetch the file again"):
        read_idx(path)


def test_missing_file(tmp_path):
    with pytest.raises(DatasetError, match="no such file"):
        read_idx(tmp_path / "absent")


def test_encode_rejects_unsupported_dtype():
    with pytest.raises(DatasetError, match="cannot write int64 as IDX"):
        encode_idx(np.zeros(3, dtype=np.int64))
