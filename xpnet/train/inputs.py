"""Checking and placing what ``fit``, ``evaluate`` and ``predict`` are given: inputs as a finite 2-D
float array, class labels as numbers ``0..K-1`` of the library's default integer dtype (from labels or
one-hot rows), regression targets as floats; each error says what was wrong and how to fix it."""

from __future__ import annotations

import math

from xpnet.arrays.backend import Backend, default_integer
from xpnet.errors import XpnetError


def checked_inputs(backend: Backend, x, dtype, role: str, n_inputs: int | None = None):
    """``x`` on the backend as ``dtype``: 2-D, at least one sample, finite, ``n_inputs`` features."""
    x = backend.asarray(x, dtype=dtype)
    if x.ndim != 2 or x.shape[0] == 0:
        fix = (
            "for one sample use x.reshape(1, -1)" if x.ndim == 1 else "flatten images first, e.g. x.reshape(len(x), -1)"
        )
        raise XpnetError(
            f"{role} inputs must be a 2-D array (samples, features) with at least one sample, "
            f"got shape {tuple(x.shape)}; {fix}"
        )
    if x.shape[1] and not all_finite(backend, x):
        raise XpnetError(f"{role} inputs contain NaN or infinite values: clean or impute them first")
    if n_inputs is not None and x.shape[1] != n_inputs:
        raise XpnetError(f"{role} inputs have {x.shape[1]} features but the model expects {n_inputs}")
    return x


def all_finite(backend: Backend, x) -> bool:
    """Whether ``x`` holds no NaN or infinity. NaN propagates through max and min, as the array API
    requires: two reads and no boolean copy of ``x``, for the libraries that honour it (NumPy, CuPy,
    PyTorch, array-api-strict). JAX's CPU reductions can skip a NaN, so other libraries test each value."""
    xp = backend.xp
    if backend.name in ("numpy", "cupy", "torch", "array_api_strict"):
        return math.isfinite(float(xp.max(x))) and math.isfinite(float(xp.min(x)))
    return bool(xp.all(xp.isfinite(x)))


def checked_labels(backend: Backend, y, role: str, n_classes: int | None):
    """``(labels, one_hot_width)``: ``y`` as class numbers of the default integer dtype on the backend,
    and the number of columns when ``y`` came as one-hot rows (which states the classes, even those
    absent here)."""
    xp = backend.xp
    y = backend.asarray(y)
    width = None
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]  # a column of labels, not one-hot rows of a single class
    elif y.ndim == 2:
        width = y.shape[1]
        if n_classes is not None and width != n_classes:
            raise XpnetError(f"{role} one-hot rows have {width} columns but the model has {n_classes} classes")
        n_classes = width
        y = xp.argmax(y, axis=1)
    if y.ndim != 1:
        raise XpnetError(f"{role} labels must be 1-D class indices or 2-D one-hot rows, got shape {tuple(y.shape)}")
    if xp.isdtype(y.dtype, "real floating"):
        if not bool(xp.all(y == xp.round(y))):
            raise XpnetError(f"{role} labels must be whole numbers 0..K-1; for real-valued targets use loss='mse'")
    elif not xp.isdtype(y.dtype, "integral"):
        raise XpnetError(
            f"{role} labels must be integers 0..K-1, got dtype {y.dtype}: map them first, "
            "e.g. classes, y = numpy.unique(y, return_inverse=True)"
        )
    y = xp.astype(y, default_integer(xp, backend.device), copy=False)
    lowest, highest = int(xp.min(y)), int(xp.max(y))
    if lowest < 0:
        raise XpnetError(
            f"{role} labels must be 0..K-1 but include {lowest}: map them first, "
            "e.g. numpy.unique(y, return_inverse=True)"
        )
    if n_classes is not None and highest >= n_classes:
        raise XpnetError(f"{role} labels include {highest} but the model has {n_classes} classes (0..{n_classes - 1})")
    return y, width


def checked_weights(backend: Backend, weights, n_samples: int, dtype):
    """``weights`` on the backend as ``dtype``: one finite, non-negative number per sample, not all zero."""
    weights = backend.asarray(weights, dtype=dtype)
    if weights.ndim != 1 or weights.shape[0] != n_samples:
        raise XpnetError(
            f"sample_weight must hold one number per sample ({n_samples}), got shape {tuple(weights.shape)}"
        )
    xp = backend.xp
    if not all_finite(backend, weights) or float(xp.min(weights)) < 0 or not float(xp.max(weights)) > 0:
        raise XpnetError("sample_weight must be finite and non-negative, and not all zero")
    return weights


def check_target_widths(y, y_val, n_outputs: int) -> None:
    """Regression targets need one column per output, in training and validation alike: checked
    before training, which would otherwise stop at the first mismatched loss."""
    for role, targets in (("training", y), ("validation", y_val)):
        if targets is not None and target_width(targets) != n_outputs:
            raise XpnetError(
                f"{role} targets have {target_width(targets)} columns but the model has {n_outputs} outputs"
            )


def class_count(xp, y, y_val) -> int:
    """Classes the labels show: the highest label + 1, and at least two."""
    highest = max(int(xp.max(labels)) for labels in (y, y_val) if labels is not None)
    return max(highest + 1, 2)


def target_width(y) -> int:
    return 1 if y.ndim == 1 else y.shape[1]
