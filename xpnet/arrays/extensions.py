"""What NumPy, CuPy and PyTorch offer beyond the array API, each behind one function that falls back to
the standard elsewhere, so that the math keeps one form for every library.

- ``out=``: the standard has none, so a result meant for an existing array (a gradient going into
  its view of the flat gradient buffer) would be computed into a temporary and then copied, one
  operation more (on a GPU, a second kernel). The three libraries write the result in place.
- Multiplying a float array by a boolean mask: the standard leaves promotion between booleans and
  floats unspecified (array-api-strict refuses it), so the mask would be cast to floats first, one
  operation more. Libraries whose ``result_type`` accepts the pair multiply directly, with the same
  result as multiplying by a float mask, bit for bit.
"""

from __future__ import annotations

import functools

import array_api_compat
import numpy as np
from array_api_compat import is_cupy_namespace, is_numpy_namespace, is_torch_namespace

from xpnet.arrays.backend import array_namespace
from xpnet.arrays.flat import gives_writable_views


def matmul(x1, x2, *, out=None):
    """``x1 @ x2``, written into ``out`` (of the product's shape and dtype) when it is given and its
    library writes through; callers use the returned array, which is ``out`` or a new one."""
    if out is None:
        return x1 @ x2
    if type(out) is np.ndarray:  # NumPy's own, without array-api-compat's wrapper: 1.4 us less a call
        return np.matmul(x1, x2, out=out)
    if _takes_out(out):
        return array_namespace(out).matmul(x1, x2, out=out)
    return _written(out, x1 @ x2)


def column_sums(x, *, out=None):
    """The sum of ``x`` over its first axis, written into ``out`` when it is given and its library
    writes through; callers use the returned array."""
    xp = array_namespace(x)
    if out is None:
        return xp.sum(x, axis=0)
    if _takes_out(out):
        return xp.sum(x, axis=0, out=out)
    return _written(out, xp.sum(x, axis=0))


def _written(out, result):
    """``result`` copied into ``out`` where ``out``'s library writes through its views, else ``result``
    itself (array-api-extra's ``at(...).set`` does the same)."""
    if not gives_writable_views(out):
        return result
    out[...] = result
    return out


def masked(x, mask):
    """``x`` where ``mask`` (a boolean array) is true, zero (of ``x``'s sign) elsewhere: ``x`` times the
    mask."""
    xp = array_namespace(x)
    if not _promotes_booleans(xp, x.dtype):
        mask = xp.astype(mask, x.dtype)
    return x * mask


def _takes_out(array) -> bool:
    return (
        array_api_compat.is_numpy_array(array)
        or array_api_compat.is_cupy_array(array)
        or array_api_compat.is_torch_array(array)
    )


@functools.cache
def _promotes_booleans(xp, dtype) -> bool:
    """Whether ``xp`` multiplies ``dtype`` arrays by boolean arrays (to ``dtype``) as by a float mask, to
    the bit: NumPy, CuPy and PyTorch, checked in ``tests/arrays/test_extensions.py`` (JAX promotes, but
    gives +0 where a float mask gives -0)."""
    known = any(check(xp) for check in (is_numpy_namespace, is_cupy_namespace, is_torch_namespace))
    try:
        return known and xp.result_type(xp.bool, dtype) == dtype
    except TypeError:
        return False
