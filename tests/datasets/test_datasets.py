"""Loading datasets from names and files: shapes, dtypes, scaling, the CSV split, and every bad input
rejected with a one-line message naming the file."""

from __future__ import annotations

import dataclasses
import gzip
from pathlib import Path

import numpy as np
import pytest
from real_data import real_mnist_folder

from xpnet import datasets
from xpnet.datasets import loaders
from xpnet.datasets.idx import encode_idx
from xpnet.errors import DatasetError, XpnetError

RNG = np.random.default_rng(7)
IMAGES = RNG.integers(0, 256, size=(12, 3, 2), dtype=np.uint8)
LABELS = np.array([0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3], dtype=np.uint8)


def write_idx_folder(folder, arrays=None, compress=()):
    """The four standard IDX files; those named in ``compress`` gzip-compressed with a .gz suffix."""
    arrays = arrays or {
        "train-images-idx3-ubyte": IMAGES[:9],
        "train-labels-idx1-ubyte": LABELS[:9],
        "t10k-images-idx3-ubyte": IMAGES[9:],
        "t10k-labels-idx1-ubyte": LABELS[9:],
    }
    folder.mkdir(exist_ok=True)
    for name, array in arrays.items():
        data = encode_idx(array)
        if name in compress:
            (folder / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)
    return folder


def write_csv(path, rows, header=None):
    lines = ([",".join(header)] if header else []) + [",".join(str(cell) for cell in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def kaggle_header(pixels):
    return ["label", *(f"pixel{index}" for index in range(pixels))]


def assert_one_line(error, path):
    message = str(error.value)
    assert "\n" not in message and str(path) in message
    assert isinstance(error.value, XpnetError)


def test_digits_unchanged():
    x_train, y_train, x_test, y_test = datasets.load("digits")
    assert x_train.shape == (1438, 64) and x_test.shape == (359, 64)
    assert x_train.dtype == np.float32 and y_train.dtype == np.int64
    assert x_train.min() == 0.0 and x_train.max() == 1.0 and set(np.unique(y_test)) == set(range(10))


def test_unknown_name_and_missing_path(tmp_path):
    with pytest.raises(DatasetError, match=r"unknown dataset 'mnits': choose digits, mnist, fashion-mnist, or a path"):
        datasets.load("mnits")
    for empty in ("", "  "):  # not the current folder, which Path("") would mean
        with pytest.raises(DatasetError, match=r"^the dataset name is empty; pass digits, mnist, fashion-mnist, or a"):
            datasets.load(empty)
    with pytest.raises(DatasetError, match=r"absent\.csv: no such file or folder; check the path"):
        datasets.load(str(tmp_path / "absent.csv"))


@pytest.mark.parametrize("compress", [(), ("train-images-idx3-ubyte", "t10k-labels-idx1-ubyte")])
def test_idx_folder(tmp_path, compress):
    folder = write_idx_folder(tmp_path / "idx", compress=compress)
    x_train, y_train, x_test, y_test = datasets.load(str(folder))
    assert x_train.dtype == np.float32 and x_train.shape == (9, 6) and x_test.shape == (3, 6)
    np.testing.assert_array_equal(x_train, IMAGES[:9].reshape(9, 6).astype(np.float32) / np.float32(255))
    assert y_train.dtype == np.int64
    np.testing.assert_array_equal(y_test, LABELS[9:])


def test_idx_float_images_taken_as_they_are(tmp_path):
    images = (IMAGES / 255).astype(np.float32)
    arrays = {
        "train-images-idx3-ubyte": images[:9],
        "train-labels-idx1-ubyte": LABELS[:9],
        "t10k-images-idx3-ubyte": images[9:],
        "t10k-labels-idx1-ubyte": LABELS[9:],
    }
    x_train, _, x_test, _ = datasets.load(str(write_idx_folder(tmp_path / "idx", arrays)))
    assert x_train.dtype == np.float32
    np.testing.assert_array_equal(x_test, images[9:].reshape(3, 6))


def test_idx_folder_missing_file(tmp_path):
    folder = write_idx_folder(tmp_path / "idx")
    (folder / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DatasetError, match=r"missing t10k-labels-idx1-ubyte \(or t10k-labels-idx1-ubyte\.gz\)"):
        datasets.load(str(folder))


def test_idx_image_label_count_mismatch(tmp_path):
    folder = write_idx_folder(tmp_path / "idx")
    (folder / "train-labels-idx1-ubyte").write_bytes(encode_idx(LABELS[:8]))
    with pytest.raises(DatasetError, match="9 training images but 8 training labels") as caught:
        datasets.load(str(folder))
    assert_one_line(caught, folder)


def test_idx_truncated_file_in_folder(tmp_path):
    folder = write_idx_folder(tmp_path / "idx")
    path = folder / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(DatasetError, match="truncated IDX file") as caught:
        datasets.load(str(folder))
    assert_one_line(caught, path)


def test_idx_feature_counts_differ(tmp_path):
    folder = write_idx_folder(tmp_path / "idx")
    (folder / "t10k-images-idx3-ubyte").write_bytes(encode_idx(np.zeros((3, 2, 2), dtype=np.uint8)))
    with pytest.raises(DatasetError, match="training samples have 6 features but test samples 4"):
        datasets.load(str(folder))


def test_idx_test_label_out_of_range(tmp_path):
    folder = write_idx_folder(tmp_path / "idx")
    (folder / "t10k-labels-idx1-ubyte").write_bytes(encode_idx(np.array([0, 9, 1], dtype=np.uint8)))
    with pytest.raises(DatasetError, match=r"test label 9 is out of range: the training labels are 0\.\.3"):
        datasets.load(str(folder))


@pytest.mark.parametrize(
    ("train_labels", "message"),
    [
        (
            [0, 1, 2, 3, 0, 1, 2, 3, 99],
            r"the training labels run to 99 but 95 of the classes 0\.\.99 never appear "
            r"\(4, 5, 6, 7, 8, \.\.\.\); relabel the classes as 0\.\.K-1, each with training samples",
        ),
        ([0, 1, 3, 0, 1, 3, 0, 1, 3], r"run to 3 but 1 of the classes 0\.\.3 never appear \(2\); relabel"),
        ([0] * 9, r"every training label is 0; a classifier needs at least 2 classes"),
        ([4] * 9, r"every training label is 4; a classifier needs at least 2 classes"),
        ([0, 2, 4, 6, 8, 10, 12, 14, 255], r"247 of the classes 0\.\.255 never appear \(1, 3, 5, 7, 9, \.\.\.\)"),
    ],
)
def test_training_labels_must_hold_every_class(tmp_path, train_labels, message):
    """A label is a class number: a gap would silently add classes the model can never learn."""
    folder = write_idx_folder(tmp_path / "idx")
    (folder / "train-labels-idx1-ubyte").write_bytes(encode_idx(np.array(train_labels, dtype=np.uint8)))
    (folder / "t10k-labels-idx1-ubyte").write_bytes(encode_idx(np.array(train_labels[:3], dtype=np.uint8)))
    with pytest.raises(DatasetError, match=message) as caught:
        datasets.load(str(folder))
    assert_one_line(caught, folder)


def test_a_label_of_a_billion_is_refused_without_listing_a_billion_classes(tmp_path):
    path = tmp_path / "data.npz"
    labels = np.array([0, 1, 10**9])
    np.savez(path, x_train=np.zeros((3, 2)), y_train=labels, x_test=np.zeros((1, 2)), y_test=labels[:1])
    with pytest.raises(
        DatasetError, match=r"999999998 of the classes 0\.\.1000000000 never appear \(2, 3, 4, 5, 6, \.\.\.\)"
    ):
        datasets.load(str(path))


def test_idx_labels_given_as_images(tmp_path):
    folder = write_idx_folder(tmp_path / "idx")
    (folder / "train-labels-idx1-ubyte").write_bytes(encode_idx(IMAGES[:9]))
    with pytest.raises(DatasetError, match="labels must be one number per sample"):
        datasets.load(str(folder))


# Kaggle layout CSVs.


def kaggle_rows(count, pixels=4):
    return [[index % 3, *((index * 7 + column) % 256 for column in range(pixels))] for index in range(count)]


def test_csv_split_is_fixed_and_complete(tmp_path):
    rows = kaggle_rows(60)
    path = write_csv(tmp_path / "train.csv", rows, kaggle_header(4))
    x_train, y_train, x_test, y_test = datasets.load(str(path))
    assert x_train.shape == (50, 4) and x_test.shape == (10, 4) and y_train.dtype == np.int64
    # Every row lands in exactly one part, with its own label, scaled by 1/255.
    table = np.array(rows, dtype=np.float64)
    together = np.concatenate([np.column_stack([y_train, x_train]), np.column_stack([y_test, x_test])])
    expected = np.column_stack([table[:, 0], (table[:, 1:].astype(np.float32) / np.float32(255))])
    assert sorted(map(tuple, together.tolist())) == sorted(map(tuple, expected.tolist()))
    order = np.random.default_rng(loaders.CSV_SPLIT_SEED).permutation(60)
    np.testing.assert_array_equal(y_test, table[order[:10], 0])
    again = datasets.load(str(path))
    np.testing.assert_array_equal(again[2], x_test)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the CSV file is empty"),
        ("label,pixel0,pixel1\n", "the CSV has a header but no data rows"),
        ("label,pixel0,pixel1\n1,2,3\n1,2\n", "line 3 has 2 columns but the first row has 3"),
        ("label,pixel0,pixel1\n1,2,3\n1,x,3\n", "line 3, column pixel0: 'x' is not a number"),
        ("label,pixel0,pixel1\n1,2,3\n1,,3\n", "line 3, column pixel0: '' is not a number"),
        ("pixel0,pixel1\n" + "2,3\n" * 6, "first column must be 'label'"),
        ("label,pixel0\n" + "1,3\n" * 5, "only 5 rows; at least 6"),
        ("label,pixel0\n" + "1,3\n" * 5 + "-1,3\n", "include -1; labels must be class numbers 0..K-1, not negative"),
        ("label,pixel0\n" + "1,3\n" * 5 + "1.5,3\n", "are not whole numbers"),
        ("label,pixel0\n" + "1,3\n" * 5 + "1,nan\n", r"NaN or infinite values \(first in sample 5\)"),
        ("label,pixel0\n" + "1,3\n" * 5 + "1,inf\n", "NaN or infinite values"),
        (
            "label,pixel0\n" + "1,3\n" * 5 + "1,256\n",
            r"pixel values from 3 to 256; integer and CSV pixels must be 0\.\.255",
        ),
    ],
)
def test_csv_problems(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(DatasetError, match=message) as caught:
        datasets.load(str(path))
    assert_one_line(caught, path)


def test_csv_from_a_spreadsheet_bom_and_crlf(tmp_path):
    path = tmp_path / "train.csv"
    path.write_bytes(b"\xef\xbb\xbflabel,pixel0\r\n" + b"".join(b"%d,%d\r\n" % (row % 2, row) for row in range(6)))
    x_train, y_train, x_test, y_test = datasets.load(str(path))
    assert sorted(np.concatenate([x_train, x_test])[:, 0] * 255) == pytest.approx(range(6))
    assert sorted(np.concatenate([y_train, y_test])) == [0, 0, 0, 1, 1, 1]
    unlabelled = tmp_path / "test.csv"
    unlabelled.write_bytes(b"\xef\xbb\xbf51,102\r\n0,255\r\n")
    expected = np.array([[51, 102], [0, 255]], dtype=np.float32) / np.float32(255)
    np.testing.assert_array_equal(datasets.read_inputs(unlabelled), expected)


def test_csv_with_decimal_pixels(tmp_path):
    path = write_csv(tmp_path / "train.csv", [[index % 2, 127.5, index] for index in range(6)], kaggle_header(2))
    x_train, _, x_test, _ = datasets.load(str(path))
    assert np.all(np.concatenate([x_train, x_test])[:, 0] == np.float32(127.5) / np.float32(255))


def test_csv_test_label_unseen_in_training(tmp_path):
    """Class 5 appears once; when the split puts it in the test part, it is out of range."""
    rows = [[0, 1], [1, 1], [0, 2], [1, 3], [0, 4], [1, 5]]
    order = np.random.default_rng(loaders.CSV_SPLIT_SEED).permutation(6)
    rows[order[0]][0] = 5
    path = write_csv(tmp_path / "train.csv", rows, ["label", "pixel0"])
    with pytest.raises(DatasetError, match="test label 5 is out of range"):
        datasets.load(str(path))


# .npz datasets.


def test_npz_float_taken_as_is_and_uint8_scaled(tmp_path):
    path = tmp_path / "data.npz"
    x_train = RNG.random((6, 2, 2)).astype(np.float64)
    np.savez(path, x_train=x_train, y_train=np.arange(6) % 2, x_test=IMAGES[:3, :2, :2], y_test=np.array([1, 0, 1]))
    loaded_x_train, y_train, x_test, y_test = datasets.load(str(path))
    np.testing.assert_array_equal(loaded_x_train, x_train.reshape(6, 4).astype(np.float32))
    np.testing.assert_array_equal(x_test, IMAGES[:3, :2, :2].reshape(3, 4) / np.float32(255))
    assert y_train.dtype == y_test.dtype == np.int64


def test_npz_missing_key(tmp_path):
    path = tmp_path / "data.npz"
    np.savez(path, x_train=np.zeros((2, 2)), y_train=np.zeros(2))
    with pytest.raises(DatasetError, match=r"missing x_test, y_test \(found x_train, y_train\)") as caught:
        datasets.load(str(path))
    assert_one_line(caught, path)


def test_npz_object_array_not_unpickled(tmp_path):
    path = tmp_path / "data.npz"
    objects = np.array([{"a": 1}, None], dtype=object)
    np.savez(path, x_train=objects, y_train=np.zeros(2), x_test=np.zeros((1, 1)), y_test=np.zeros(1))
    with pytest.raises(DatasetError, match="holds Python objects, which xpnet does not unpickle"):
        datasets.load(str(path))


def test_npz_string_array(tmp_path):
    path = tmp_path / "data.npz"
    np.savez(path, x_train=np.array([["a"]]), y_train=np.zeros(1), x_test=np.zeros((1, 1)), y_test=np.zeros(1))
    with pytest.raises(DatasetError, match="x_train has dtype <U1; store plain numbers"):
        datasets.load(str(path))


def test_npz_nan_and_feature_mismatch(tmp_path):
    path = tmp_path / "data.npz"
    x_train = np.zeros((2, 3))
    x_train[1, 2] = np.nan
    np.savez(path, x_train=x_train, y_train=np.zeros(2), x_test=np.zeros((1, 3)), y_test=np.zeros(1))
    with pytest.raises(DatasetError, match=r"x_train hold NaN or infinite values \(first in sample 1\)"):
        datasets.load(str(path))
    np.savez(path, x_train=np.zeros((2, 3)), y_train=np.zeros(2), x_test=np.zeros((1, 2)), y_test=np.zeros(1))
    with pytest.raises(DatasetError, match="3 features but test samples 2"):
        datasets.load(str(path))


def test_not_an_npz(tmp_path):
    path = tmp_path / "data.npz"
    path.write_text("hello")
    with pytest.raises(DatasetError, match=r"cannot read as \.npz"):
        datasets.load(str(path))


def test_unsupported_file_and_data_dir_with_path(tmp_path):
    path = tmp_path / "data.txt"
    path.write_text("1")
    with pytest.raises(DatasetError, match="unsupported dataset file"):
        datasets.load(str(path))
    with pytest.raises(DatasetError, match="--data-dir only applies to mnist, fashion-mnist"):
        datasets.load(str(path), data_dir=tmp_path)
    with pytest.raises(DatasetError, match="drop it when loading digits"):
        datasets.load("digits", data_dir=tmp_path)


def test_data_dir_missing_files(tmp_path):
    with pytest.raises(DatasetError, match=r"missing train-images-idx3-ubyte .*put the four IDX files"):
        datasets.load("fashion-mnist", data_dir=tmp_path)


# read_inputs: inputs to predict.


def test_read_inputs_kaggle_test_csv_and_labelled_csv(tmp_path):
    pixels = [[0, 255, 51], [102, 0, 0]]
    unlabelled = write_csv(tmp_path / "test.csv", pixels, ["pixel0", "pixel1", "pixel2"])
    expected = np.array(pixels, dtype=np.float32) / np.float32(255)
    np.testing.assert_array_equal(datasets.read_inputs(unlabelled), expected)
    labelled = write_csv(tmp_path / "train.csv", [[7, *row] for row in pixels], kaggle_header(3))
    inputs = datasets.read_inputs(labelled)
    assert inputs.dtype == np.float32 and inputs.shape == (2, 3)
    np.testing.assert_array_equal(inputs, expected)


def test_read_inputs_idx_gz_npy_npz(tmp_path):
    idx = tmp_path / "images.gz"
    idx.write_bytes(gzip.compress(encode_idx(IMAGES)))
    expected = IMAGES.reshape(12, 6).astype(np.float32) / np.float32(255)
    np.testing.assert_array_equal(datasets.read_inputs(idx), expected)
    np.save(tmp_path / "x.npy", IMAGES)
    np.testing.assert_array_equal(datasets.read_inputs(tmp_path / "x.npy"), expected)
    np.savez(tmp_path / "x.npz", x=IMAGES)
    np.testing.assert_array_equal(datasets.read_inputs(tmp_path / "x.npz"), expected)
    np.savez(tmp_path / "t.npz", x_test=np.ones((2, 3), dtype=np.float64) / 2)
    np.testing.assert_array_equal(datasets.read_inputs(tmp_path / "t.npz"), np.full((2, 3), 0.5, np.float32))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: np.save(p / "x.npy", np.zeros(3)), r"shape \(3,\), not \(samples, features...\)"),
        (lambda p: np.save(p / "x.npy", np.array([[1.0, np.inf]])), "NaN or infinite values"),
        (lambda p: np.save(p / "x.npy", np.array([[300]], dtype=np.int32)), "pixel values from 300 to 300"),
        (lambda p: np.save(p / "x.npy", np.array([[-1]], dtype=np.int8)), "integer and CSV pixels must be 0..255"),
        (lambda p: np.save(p / "x.npy", np.array([[None]], dtype=object)), "cannot read as .npy .*Python objects"),
        (lambda p: np.save(p / "x.npy", np.zeros((0, 4))), "holds no samples"),
        (lambda p: (p / "x.npy").write_bytes(b"junk"), r"cannot read as \.npy"),
        (lambda p: np.savez(p / "x.npz", y=np.zeros(3)), r"missing x_test \(found y\)"),
    ],
)
def test_read_inputs_problems(tmp_path, make, message):
    make(tmp_path)
    path = next(tmp_path.iterdir())
    with pytest.raises(DatasetError, match=message) as caught:
        datasets.read_inputs(path)
    assert_one_line(caught, path)


def test_read_inputs_rejects_folder_and_label_file(tmp_path):
    with pytest.raises(DatasetError, match="is a folder; pass one file"):
        datasets.read_inputs(tmp_path)
    labels = tmp_path / "t10k-labels-idx1-ubyte"
    labels.write_bytes(encode_idx(LABELS))
    with pytest.raises(DatasetError, match="pass the inputs, not the labels"):
        datasets.read_inputs(labels)


@pytest.mark.slow
def test_real_mnist():
    folder = real_mnist_folder()
    for data in (datasets.load(folder), datasets.load("mnist", data_dir=folder)):
        x_train, y_train, x_test, y_test = data
        assert x_train.shape == (60000, 784) and x_test.shape == (10000, 784)
        assert y_train.shape == (60000,) and y_test.shape == (10000,)
        assert x_train.dtype == np.float32 and y_train.dtype == np.int64
        assert x_train.min() == 0.0 and x_train.max() == 1.0
        assert set(np.unique(y_train)) == set(range(10))
    assert datasets.read_inputs(f"{folder}/t10k-images-idx3-ubyte").shape == (10000, 784)


DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.slow
@pytest.mark.skipif(not DEBIAN_FASHION_MNIST.is_dir(), reason="apt-get install dataset-fashion-mnist")
def test_fashion_mnist_from_the_debian_package():
    """The folder the offline error and the README point to reads as Fashion-MNIST, nothing downloaded."""
    x_train, y_train, x_test, y_test = datasets.load("fashion-mnist", data_dir=DEBIAN_FASHION_MNIST)
    assert x_train.shape == (60000, 784) and x_test.shape == (10000, 784)
    assert np.bincount(y_train).tolist() == [6000] * 10 and np.bincount(y_test).tolist() == [1000] * 10


@pytest.mark.slow
def test_real_mnist_download_verified_by_published_checksums(tmp_path, monkeypatch):
    """The real files, gzip-compressed as the mirrors serve them, from a local server: the SHA-256
    registered for MNIST accepts them and the cache then holds the decompressed files."""
    from test_download import Server

    source = real_mnist_folder()
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for name in loaders.IDX_NAMES.values():
        (mirror / f"{name}.gz").write_bytes(gzip.compress((source / name).read_bytes(), compresslevel=1))
    server = Server(mirror)
    try:
        real = loaders.SOURCES["mnist"]
        monkeypatch.setitem(loaders.SOURCES, "mnist", dataclasses.replace(real, mirrors=(server.url,)))
        monkeypatch.setenv("XPNET_DATA", str(tmp_path / "cache"))
        x_train, _, x_test, _ = datasets.load("mnist")
    finally:
        server.close()
    assert x_train.shape == (60000, 784) and x_test.shape == (10000, 784)
    for name in loaders.IDX_NAMES.values():
        assert (tmp_path / "cache" / "mnist" / name).read_bytes() == (source / name).read_bytes()


def test_a_csv_whose_later_bytes_are_not_utf8_is_refused_in_one_line(tmp_path):
    """The first row decodes, a later byte does not (found by the fuzz test): a DatasetError, not a
    UnicodeDecodeError from NumPy's parser."""
    path = tmp_path / "broken.csv"
    path.write_bytes(b"\x00\r\x00\xc2")
    with pytest.raises(DatasetError, match=r"broken\.csv: cannot read as CSV text \('utf-8' codec can't decode"):
        datasets.load(str(path))
