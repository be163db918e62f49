"""Datasets as host arrays ``(x_train, y_train, x_test, y_test)``: the embedded digits, MNIST and
Fashion-MNIST downloaded once, and files (IDX folders, Kaggle CSVs, ``.npz``)."""

from xpnet.datasets.loaders import cache_dir, load, load_digits, read_inputs
from xpnet.errors import DatasetError

__all__ = ["DatasetError", "cache_dir", "load", "load_digits", "read_inputs"]
