"""The switch for xpnet's compiled fast paths, and their compilation by Numba (the ``fast`` extra).

A fast path is an in-place variant, for NumPy, of something written once in array-API code (an
optimizer's update, a pass over a layer's outputs), chosen where it pays and giving the same bits.
``XPNET_FASTPATH=0`` in the environment, or ``disabled()``, keeps the array-API reference everywhere.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np

# Numba is imported (about 0.4 s) only once an array of at least MIN_SIZE elements takes a compiled
# path (a network's flat buffer of all its parameters, or a large layer's outputs), so small networks
# such as the default digits run never pay for it; after that every array, however small, takes them.
MIN_SIZE = 1 << 16

available = importlib.util.find_spec("numba") is not None
_loaded = False
_enabled = os.environ.get("XPNET_FASTPATH", "1") != "0"


def enabled() -> bool:
    """Whether fast paths may be chosen (neither ``XPNET_FASTPATH=0`` nor inside ``disabled()``)."""
    return _enabled


@contextmanager
def disabled() -> Iterator[None]:
    """Use the array-API reference everywhere inside the ``with`` block."""
    global _enabled
    previous, _enabled = _enabled, False
    try:
        yield
    finally:
        _enabled = previous


# The dtypes the kernels are compiled for: Numba has no arithmetic for float16 or long double.
DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def takes(*arrays) -> bool:
    """Whether a fast path may take ``arrays``: fast paths on, and each a C-contiguous NumPy array of the
    first's dtype, float32 or float64, as an in-place NumPy kernel needs them."""
    first = arrays[0]
    return (
        _enabled
        and all(type(array) is np.ndarray and array.flags.c_contiguous for array in arrays)
        and first.dtype in DTYPES
        and all(array.dtype == first.dtype for array in arrays)
    )


def wanted(size: int) -> bool:
    """Whether an array of ``size`` elements should go through a compiled kernel."""
    return available and (_loaded or size >= MIN_SIZE)


def kernel(function: Callable) -> Callable:
    """``function`` compiled by Numba at its first call, so that only a run that uses a kernel imports
    Numba: cached on disk, no GIL, and IEEE division (``error_model="numpy"``: Python's zero-division
    checks would stop vectorisation)."""

    @functools.cache
    def build():
        global _loaded
        import numba

        _loaded = True
        return numba.njit(cache=True, nogil=True, error_model="numpy")(function)

    @functools.wraps(function)
    def call(*args):
        return build()(*args)

    return call
