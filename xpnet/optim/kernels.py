"""The one place that decides how an optimizer update runs on the arrays it is given.

Each rule is written once in array-API code, the reference: a pure function that returns new arrays,
so it runs on every library, immutable ones included. A rule may add in-place variants for NumPy, the
one library they are chosen for here, which writes through every array it hands out. The array API
has no ``out=``, so the reference makes a parameter-sized temporary for each operation and streams it
through main memory; the ``chunked`` variant applies the same operations in the same order (so with
the same rounding) in place, one cache-sized chunk at a time, and the ``fused`` variant is one pass
compiled by Numba (the ``fast`` extra). Both return the arrays they were given, updated. ``choose``
picks one; ``tests/optim/test_optim_kernels.py`` checks all three give the same bits.
``XPNET_FASTPATH=0`` in the environment, or ``xpnet.arrays.compiled.disabled()``, keeps the reference.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from xpnet.arrays import compiled

# Elements per chunk: the chunk of each operand and the scratch buffer (256 KiB each in float32)
# fit together in a 1 MiB L2 cache.
CHUNK = 65536

# Called as ``(settings, step, param, grad, *buffers)``, returns ``(param, *buffers)``.
Update = Callable[..., tuple]


@dataclass(frozen=True)
class Variants:
    """One update rule up to three ways: ``reference`` (array API, returns new arrays), and optionally
    ``chunked`` (NumPy) and ``fused`` (Numba), which update their arguments in place and return them."""

    reference: Update
    chunked: Update | None = None
    fused: Update | None = None


def choose(variants: Variants, param, *others) -> Update:
    """The variant for these arrays: the reference unless ``compiled.takes`` them (fast paths on, each a
    C-contiguous NumPy array of the parameter's dtype, float32 or float64); then the Numba kernel where
    ``compiled.wanted``, the NumPy chunks otherwise, as far as the rule has them."""
    if not compiled.takes(param, *others):
        return variants.reference
    if variants.fused is not None and compiled.wanted(param.size):
        return variants.fused
    return variants.chunked or variants.reference


def chunks(*arrays) -> Iterator[tuple]:
    """Matching flat chunks of same-sized arrays, plus a scratch chunk of the same length."""
    size = arrays[0].size
    scratch = np.empty(min(size, CHUNK), dtype=arrays[0].dtype)
    if size <= CHUNK:  # one chunk: the arrays themselves (an element-wise update needs no flattening)
        yield (*arrays, scratch.reshape(arrays[0].shape))
        return
    flat = [array.reshape(-1) for array in arrays]
    for start in range(0, size, CHUNK):
        stop = min(start + CHUNK, size)
        yield (*(array[start:stop] for array in flat), scratch[: stop - start])
