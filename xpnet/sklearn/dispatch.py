"""scikit-learn's ``array_api_dispatch`` for the estimators: with it on, arrays of another library
(torch, CuPy...) are answered in their own namespace and on their own device, and with ``device="auto"``
the network trains there too.

scikit-learn's checks, label encoding and splits run on NumPy copies (``on_host``); ``placement`` says
where a caller's arrays live, as plain strings that pickle and compare, and ``like`` hands results back
there.
"""

from __future__ import annotations

import array_api_compat
import numpy as np
from sklearn import get_config

from xpnet.arrays.backend import is_foreign_array, to_numpy


def placement(X) -> tuple[str, str] | None:
    """``(namespace, device)`` of ``X`` when dispatch is on and ``X`` is another library's array, else None."""
    if not get_config()["array_api_dispatch"] or not is_foreign_array(X):
        return None
    return array_api_compat.array_namespace(X).__name__, str(array_api_compat.device(X))


def on_host(array):
    """``array`` as NumPy where it is another library's (None and host data as they are)."""
    return to_numpy(array) if is_foreign_array(array) else array


def like(result: np.ndarray, X):
    """``result`` in the namespace and on the device of ``X``, where ``placement(X)`` names one (labels
    that are not numbers, strings say, stay NumPy: array libraries hold numbers only)."""
    if placement(X) is None or result.dtype.kind not in "biuf":
        return result
    return array_api_compat.array_namespace(X).asarray(result, device=array_api_compat.device(X))


def check_same_placement(estimator, X, method: str) -> None:
    """Refuse, as scikit-learn's array-API estimators do, inputs elsewhere than those ``fit`` was given."""
    where, fitted_on = placement(X), getattr(estimator, "_fitted_on", None)
    if get_config()["array_api_dispatch"] and where != fitted_on:
        raise ValueError(
            f"Inputs passed to {type(estimator).__name__}.{method}() must use the same namespace and the same "
            f"device as those passed to fit(): fitted on {fitted_on or 'NumPy'}, got {where or 'NumPy'}; "
            "move X there first, or fit again"
        )
