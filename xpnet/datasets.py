"""Datasets as host arrays ``(x_train, y_train, x_test, y_test)``, inputs scaled to [0, 1].

``digits`` ships inside the package (see ``xpnet/data/README.md``), so the default run needs no
network and no scikit-learn.
"""

from __future__ import annotations

from importlib import resources

import numpy as np

from xpnet.errors import XpnetError

DIGITS_PIXEL_MAX = 16.0


def load_digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The UCI handwritten digits (8x8 images, 10 classes) with xpnet's fixed split: 1,438 training
    and 359 test images, 20% of each class held out. Pixels are float32 in [0, 1]."""
    with (
        resources.files("xpnet.data").joinpath("digits.npz").open("rb") as handle,
        np.load(handle) as archive,
    ):
        x_train, y_train, x_test, y_test = (archive[k] for k in ("x_train", "y_train", "x_test", "y_test"))
    scale = np.float32(1.0 / DIGITS_PIXEL_MAX)
    return (
        x_train.astype(np.float32) * scale,
        y_train.astype(np.int64),
        x_test.astype(np.float32) * scale,
        y_test.astype(np.int64),
    )


LOADERS = {"digits": load_digits}


def load(name: str, *, data_dir=None):
    """Load a dataset by name as ``(x_train, y_train, x_test, y_test)``; ``data_dir`` points at files
    already on disk for datasets that are otherwise downloaded."""
    try:
        loader = LOADERS[name]
    except KeyError:
        raise XpnetError(f"unknown dataset {name!r}: choose one of {', '.join(LOADERS)}") from None
    return loader()
