"""The order that sorts an epoch's shuffle draws, as a compiled fast path for NumPy.

A shuffle is the stable ``argsort`` of uniform float32 draws (``streams.RandomStream.permutation``).
NumPy's stable sort of 60,000 floats (a timsort) takes about 5 ms, a noticeable part of a small
network's epoch; a float in [0, 1) sorts as its bits do as an unsigned integer, so a radix sort of
those bits, which keeps equal draws in their order as a stable sort does, gives the same permutation
in a tenth of the time (``tests/arrays/test_ordering.py``).
"""

from __future__ import annotations

import numpy as np

from xpnet.arrays import compiled

# Bits of the key sorted in each pass: three passes of 11 bits cover a float32, and 2,048 counts fit in
# the processor's first-level cache.
_DIGIT_BITS = 11


def takes(draws) -> bool:
    """Whether ``stable_order`` takes ``draws``: fast paths on, a C-contiguous NumPy float32 vector, and
    Numba wanted for its size (``compiled.wanted``)."""
    return compiled.takes(draws) and draws.dtype == np.float32 and draws.ndim == 1 and compiled.wanted(draws.size)


def stable_order(draws):
    """The indices that sort ``draws`` (floats in [0, 1)), equal ones in their order: ``xp.argsort``'s
    result (stable by default in the array API), as an int64 vector."""
    size = draws.shape[0]
    keys = draws.view(np.uint32).copy()  # the passes write over their keys
    return _radix_order(keys, np.empty(size, np.int64), np.empty(size, np.uint32), np.empty(size, np.int64))


@compiled.kernel
def _radix_order(keys, order, scratch_keys, scratch_order):
    # Least significant digit first; each pass moves keys and indices, in their order, into the other
    # pair of arrays. The first pass reads the indices as they start (0, 1, ...).
    size, buckets = keys.size, 1 << _DIGIT_BITS
    counts = np.empty(buckets + 1, dtype=np.int64)
    for i in range(size):
        order[i] = i
    for shift in range(0, 32, _DIGIT_BITS):
        counts[:] = 0
        for i in range(size):
            counts[((keys[i] >> shift) & (buckets - 1)) + 1] += 1
        for bucket in range(buckets):
            counts[bucket + 1] += counts[bucket]
        for i in range(size):
            bucket = (keys[i] >> shift) & (buckets - 1)
            scratch_keys[counts[bucket]] = keys[i]
            scratch_order[counts[bucket]] = order[i]
            counts[bucket] += 1
        keys, scratch_keys = scratch_keys, keys
        order, scratch_order = scratch_order, order
    return order
