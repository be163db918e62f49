"""Datasets as host arrays ``(x_train, y_train, x_test, y_test)``: x float32 (samples, features) in [0, 1],
y int64 class numbers 0..K-1.

``digits`` ships inside the package (see ``digits.md`` beside this file), so the default run needs no network.
``mnist`` and ``fashion-mnist`` are downloaded once into :func:`cache_dir` and verified against their
publishers' checksums. Any other name is a path: a folder of IDX files, a Kaggle-layout CSV or an ``.npz``.
"""

from __future__ import annotations

import math
import os
from importlib import resources
from pathlib import Path

import numpy as np

from xpnet.datasets import download
from xpnet.datasets.csv_file import read_csv
from xpnet.datasets.download import RemoteFile, Source
from xpnet.datasets.idx import read_idx
from xpnet.errors import DatasetError
from xpnet.io.npy import Conversion, convert_rows, npz_keys, read_npy, read_npz

DIGITS_PIXEL_MAX = 16.0
PIXEL_MAX = 255.0
SPLIT_KEYS = ("x_train", "y_train", "x_test", "y_test")
# The standard IDX file name of each split; each may also be gzip-compressed with a ".gz" suffix.
IDX_NAMES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
# A CSV holds no test part: every sixth row of a permutation drawn with this seed becomes the test set.
CSV_TEST_FRACTION = 1 / 6
CSV_SPLIT_SEED = 0
CSV_LABEL_COLUMN = "label"
# What a dataset argument may be, for the errors that say so.
DATASET_CHOICES = "digits, mnist, fashion-mnist, or a path to an IDX folder, .csv or .npz"
# How many missing class numbers an error lists before it says "...".
LISTED_CLASSES = 5


def _mnist_file(name: str, sha256: str) -> RemoteFile:
    return RemoteFile(f"{name}.gz", sha256, algorithm="sha256", gunzip=True)


def _fashion_file(name: str, md5: str) -> RemoteFile:
    return RemoteFile(f"{name}.gz", md5, algorithm="md5")


# What each named dataset downloads. MNIST is checked by the SHA-256 of the decompressed files,
# Fashion-MNIST by the MD5 of the .gz files that its publisher's README lists.
SOURCES: dict[str, Source] = {
    "mnist": Source(
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
            "http://yann.lecun.com/exdb/mnist/",
        ),
        files=(
            _mnist_file(IDX_NAMES["x_train"], "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
            _mnist_file(IDX_NAMES["y_train"], "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
            _mnist_file(IDX_NAMES["x_test"], "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
            _mnist_file(IDX_NAMES["y_test"], "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
        ),
    ),
    "fashion-mnist": Source(
        mirrors=(
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
            "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
        ),
        files=(
            _fashion_file(IDX_NAMES["x_train"], "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
            _fashion_file(IDX_NAMES["y_train"], "25c81989df183df01b3e8a0aad5dffbe"),
            _fashion_file(IDX_NAMES["x_test"], "bef4ecab320f06d8554ea6380940ec79"),
            _fashion_file(IDX_NAMES["y_test"], "bb300cfdad3c16e7a12a480ee83cd310"),
        ),
        # Debian recompresses the .gz files, so their MD5 is not the publisher's: read them in place.
        hint="on Debian or Ubuntu, apt-get install dataset-fashion-mnist and pass --data-dir "
        "/usr/share/datasets/fashion-mnist",
    ),
}

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def cache_dir() -> Path:
    """Where downloads are kept: ``$XPNET_DATA``, else ``$XDG_CACHE_HOME/xpnet``, else ``~/.cache/xpnet``."""
    if os.environ.get("XPNET_DATA"):
        return Path(os.environ["XPNET_DATA"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "xpnet"


def load_digits() -> Arrays:
    """The UCI handwritten digits (8x8 images, 10 classes) that ship inside the package.

    Returns:
        ``(x_train, y_train, x_test, y_test)``, NumPy arrays: xpnet's fixed split of 1,438 training and
        359 test images (20% of each class held out), pixels float32 in [0, 1], labels int64.
    """
    with (
        resources.files("xpnet.datasets").joinpath("digits.npz").open("rb") as handle,
        np.load(handle) as archive,
    ):
        x_train, y_train, x_test, y_test = (archive[k] for k in SPLIT_KEYS)
    scale = np.float32(1.0 / DIGITS_PIXEL_MAX)
    return (
        x_train.astype(np.float32) * scale,
        y_train.astype(np.int64),
        x_test.astype(np.float32) * scale,
        y_test.astype(np.int64),
    )


def load(name_or_path: str, *, data_dir=None, quiet: bool = False) -> Arrays:
    """Load a named dataset or a dataset file.

    Args:
        name_or_path: ``digits``, ``mnist``, ``fashion-mnist`` (downloaded once into ``cache_dir()``), a
            folder of the four IDX files, a Kaggle-layout ``.csv`` or an ``.npz`` file.
        data_dir: A folder already holding a named dataset's IDX files; nothing is downloaded then.
        quiet: Hide the download progress bar (errors are still raised).

    Returns:
        ``(x_train, y_train, x_test, y_test)``, NumPy arrays: inputs float32 ``(samples, features)``, labels
        int64 class numbers ``0..K-1``.

    Raises:
        DatasetError: The name is unknown, a download fails, or a file is missing, corrupt, malformed or too
            big for memory; the message names the file and the fix.
    """
    name = str(name_or_path)
    if not name.strip():
        raise DatasetError(f"the dataset name is empty; pass {DATASET_CHOICES}")
    if name in SOURCES:
        if data_dir is not None:
            return load_idx_folder(Path(data_dir))
        return load_idx_folder(download.fetch(name, SOURCES[name], cache_dir() / name, quiet=quiet))
    if data_dir is not None:
        raise DatasetError(f"--data-dir only applies to {', '.join(SOURCES)}; drop it when loading {name}")
    if name == "digits":
        return load_digits()
    path = Path(name)
    if not path.exists() and (path.suffix or len(path.parts) > 1):
        raise DatasetError(f"{path}: no such file or folder; check the path")
    if not path.exists():
        raise DatasetError(f"unknown dataset {name!r}: choose {DATASET_CHOICES}")
    if path.is_dir():
        return load_idx_folder(path)
    if path.suffix.lower() == ".csv":
        return load_csv(path)
    if path.suffix.lower() == ".npz":
        return load_npz(path)
    raise DatasetError(f"{path}: unsupported dataset file; pass a folder of IDX files, a .csv or an .npz")


def load_idx_folder(folder: Path) -> Arrays:
    """The four standard IDX files of ``folder`` (each raw or ``.gz``), checked and scaled."""
    folder = Path(folder)
    files = {key: _idx_file(folder, name) for key, name in IDX_NAMES.items()}
    return _splits(folder, {key: read_idx(path) for key, path in files.items()}, files)


def load_csv(path: Path) -> Arrays:
    """A Kaggle digit-recognizer CSV (``label,pixel0,...``, pixels 0..255), split into train and test.

    The file has no test part, so a fixed 1/6 of the rows (a permutation seeded with ``CSV_SPLIT_SEED``)
    is held out: the same file always gives the same split.
    """
    header, values = read_csv(path)
    if not header or header[0].lower() != CSV_LABEL_COLUMN:
        raise DatasetError(
            f"{path}: first column must be {CSV_LABEL_COLUMN!r} with a header row (Kaggle layout label,pixel0,...); "
            "a CSV without labels can only be used for predictions"
        )
    rows = len(values)
    test_rows = int(rows * CSV_TEST_FRACTION)
    if test_rows == 0:
        raise DatasetError(f"{path}: only {rows} rows; at least 6 are needed to hold out a 1/6 test part")
    x, y = _features(path, values[:, 1:], pixels=True), _labels(path, values[:, 0])
    order = np.random.default_rng(CSV_SPLIT_SEED).permutation(rows)
    test, train = order[:test_rows], order[test_rows:]
    return _checked(path, x[train], y[train], x[test], y[test])


def load_npz(path: Path) -> Arrays:
    """An ``.npz`` with ``x_train, y_train, x_test, y_test``, each read in chunks into its final form."""
    x_train, y_train, x_test, y_test = read_npz(path, SPLIT_KEYS, _split_rows(path)).values()
    return _checked(path, x_train, y_train, x_test, y_test)


def _splits(source: Path, arrays: dict[str, np.ndarray], files: dict[str, Path]) -> Arrays:
    """The four arrays keyed by ``SPLIT_KEYS`` as scaled inputs and labels, checked against each other;
    ``files`` names the file each came from in errors."""
    x_train, y_train, x_test, y_test = (
        (_labels if key.startswith("y") else _features)(files[key], arrays[key], name=key) for key in SPLIT_KEYS
    )
    return _checked(source, x_train, y_train, x_test, y_test)


def read_inputs(path) -> np.ndarray:
    """Read inputs to predict, scaled like the datasets.

    Args:
        path: IDX images, a CSV (a ``label`` column is dropped), ``.npy``, or ``.npz`` holding ``x`` or
            ``x_test``.

    Returns:
        float32 ``(samples, features)``.

    Raises:
        DatasetError: The file is missing, a folder, corrupt or malformed; the message names it.
    """
    path = Path(path)
    if path.is_dir():
        raise DatasetError(f"{path}: is a folder; pass one file of inputs (IDX images, .csv, .npy or .npz)")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        header, values = read_csv(path)
        has_labels = bool(header) and header[0].lower() == CSV_LABEL_COLUMN
        return _features(path, values[:, 1:] if has_labels else values, pixels=True)
    if suffix == ".npy":
        return _features(path, read_npy(path))
    if suffix == ".npz":
        key = "x" if "x" in npz_keys(path) else "x_test"
        return read_npz(path, (key,), _split_rows(path))[key]
    return _features(path, read_idx(path))


def _idx_file(folder: Path, name: str) -> Path:
    """``folder/name`` or ``folder/name.gz``, whichever exists; a clear error when neither does."""
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    wanted = ", ".join(IDX_NAMES.values())
    raise DatasetError(
        f"{folder}: missing {name} (or {name}.gz); put the four IDX files {wanted} (raw or .gz) in that folder"
    )


def _features(path: Path, array: np.ndarray, *, pixels: bool = False, name: str = "the inputs") -> np.ndarray:
    """``array`` as float32 (samples, features), as ``_feature_rows`` says, one chunk at a time."""
    return convert_rows(path, array, _feature_rows(path, name, array.shape, array.dtype, pixels=pixels))


def _feature_rows(path: Path, name: str, shape: tuple, dtype: np.dtype, *, pixels: bool = False) -> Conversion:
    """Inputs of ``shape`` and ``dtype`` as float32 (samples, features): integer arrays (IDX uint8 images,
    say) and ``pixels`` are 0..255 and divided by 255, float arrays are taken as they are; NaN,
    infinities and out-of-range pixels are refused."""
    if len(shape) < 2:
        raise DatasetError(
            f"{path}: {name} has shape {shape}, not (samples, features...); pass the inputs, not the labels"
        )
    if shape[0] == 0:
        raise DatasetError(f"{path}: {name} holds no samples; pass a file with at least one")
    features = math.prod(shape[1:])
    if features == 0:
        raise DatasetError(f"{path}: {name} has shape {shape}: no features per sample; store at least one")
    integer = pixels or dtype.kind in "biu"

    def convert(rows: np.ndarray, first: int) -> np.ndarray:
        values = rows.reshape(rows.shape[0], features)
        _check_finite(path, values, name, first)
        if not integer:
            return values.astype(np.float32, copy=False)
        low, high = values.min(), values.max()
        if low < 0 or high > PIXEL_MAX:
            raise DatasetError(
                f"{path}: {name} has pixel values from {low} to {high}; integer and CSV pixels must be 0..255 "
                "(store floats in a .npy/.npz to use other scales)"
            )
        scaled = values.astype(np.float32)
        scaled /= np.float32(PIXEL_MAX)  # in place: one float32 copy of the chunk, not two
        return scaled

    return Conversion(np.dtype(np.float32), (features,), convert)


def _labels(path: Path, array: np.ndarray, *, name: str = "the labels") -> np.ndarray:
    """``array`` as int64 class numbers (``_label_rows``), one chunk at a time."""
    return convert_rows(path, array, _label_rows(path, name, array.shape, array.dtype))


def _label_rows(path: Path, name: str, shape: tuple, dtype: np.dtype) -> Conversion:
    """Labels of ``shape`` as int64 class numbers: one whole, non-negative number per sample."""
    if len(shape) != 1:
        raise DatasetError(f"{path}: {name} has shape {shape}; labels must be one number per sample")

    def convert(rows: np.ndarray, first: int) -> np.ndarray:
        _check_finite(path, rows, name, first)
        if dtype.kind == "f" and np.any(rows != np.round(rows)):
            raise DatasetError(f"{path}: {name} are not whole numbers; labels must be class numbers 0..K-1")
        if rows.size and rows.min() < 0:
            raise DatasetError(
                f"{path}: {name} include {rows.min()}; labels must be class numbers 0..K-1, not negative"
            )
        return rows.astype(np.int64, copy=False)

    return Conversion(np.dtype(np.int64), (), convert)


def _split_rows(path: Path):
    """The ``read_npz`` reader of a dataset's splits: inputs as ``_feature_rows``, labels as ``_label_rows``;
    the counts and feature numbers of the splits are checked from their headers, before anything is read."""
    shapes = {}

    def reader(key: str, shape: tuple, dtype: np.dtype) -> Conversion:
        rows = _label_rows if key.startswith("y") else _feature_rows
        conversion = rows(path, key, shape, dtype)
        shapes[key] = (shape[0], *conversion.row_shape)
        if shapes.keys() >= set(SPLIT_KEYS):
            _check_shapes(path, *(shapes[key] for key in SPLIT_KEYS))
        return conversion

    return reader


def _check_finite(path: Path, array: np.ndarray, name: str, first: int = 0) -> None:
    """Refuse NaN and infinite values, naming the first sample that holds one (``array`` starting at
    sample ``first``)."""
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        sample = first + int(np.argwhere(~np.isfinite(array))[0][0])
        raise DatasetError(f"{path}: {name} hold NaN or infinite values (first in sample {sample}); remove or fix them")


def _checked(path: Path, x_train, y_train, x_test, y_test) -> Arrays:
    """The four arrays, once their counts, feature numbers and classes agree: the training labels
    hold every class 0..K-1 (K >= 2), and the test labels no other."""
    _check_shapes(path, x_train.shape, y_train.shape, x_test.shape, y_test.shape)
    classes = _class_count(path, y_train)
    if y_test.size and y_test.max() >= classes:
        raise DatasetError(
            f"{path}: test label {int(y_test.max())} is out of range: the training labels are 0..{classes - 1}; "
            "relabel so that every class appears in training"
        )
    return x_train, y_train, x_test, y_test


def _check_shapes(path: Path, x_train: tuple, y_train: tuple, x_test: tuple, y_test: tuple) -> None:
    """The splits' shapes (samples, features) and (samples,) agree: as many labels as samples, and as
    many features in training as in test."""
    for part, x, y in (("training", x_train, y_train), ("test", x_test, y_test)):
        if x[0] != y[0]:
            raise DatasetError(f"{path}: {x[0]} {part} images but {y[0]} {part} labels; the counts must match")
    if x_train[1] != x_test[1]:
        raise DatasetError(
            f"{path}: training samples have {x_train[1]} features but test samples {x_test[1]}; "
            "both must come from the same kind of input"
        )


def _class_count(path: Path, y_train: np.ndarray) -> int:
    """K, once the training labels hold at least two classes and every class number 0..K-1: a label
    is a class number, so one stray 99 among 0..9 would otherwise make a 100-class model."""
    present = np.unique(y_train)
    if present.size < 2:
        raise DatasetError(
            f"{path}: every training label is {int(present[0])}; a classifier needs at least 2 classes: "
            "include samples of each class, numbered 0..K-1"
        )
    classes = int(present[-1]) + 1
    if present.size < classes:
        missing = _first_missing(present, LISTED_CLASSES)
        listed = ", ".join(map(str, missing)) + (", ..." if classes - present.size > len(missing) else "")
        raise DatasetError(
            f"{path}: the training labels run to {classes - 1} but {classes - present.size} of the classes "
            f"0..{classes - 1} never appear ({listed}); relabel the classes as 0..K-1, each with training samples"
        )
    return classes


def _first_missing(present: np.ndarray, limit: int) -> list[int]:
    """Up to ``limit`` of the smallest non-negative integers absent from the sorted ``present``
    (without building the full range, which a label like 10**9 would make huge)."""
    missing, expected = [], 0
    for value in present.tolist():
        while expected < value and len(missing) < limit:
            missing.append(expected)
            expected += 1
        if len(missing) == limit:
            break
        expected = value + 1
    return missing
