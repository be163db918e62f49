"""NumPy-only in-place versions of the optimizer updates, used when every array is a NumPy array.

The array API has no ``out=``, so the reference updates in ``optimizers.py`` create a temporary
the size of the parameter for each operation and stream it through main memory. These functions
apply the same operations, in the same order (so with the same rounding), in place, one chunk at a
time with one small scratch buffer that stays in the CPU cache. ``tests/test_fast_path.py`` checks
that both paths give identical results; ``XPNET_FASTPATH=0`` in the environment, or ``disabled()``,
turns this module off.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from xpnet.optim import fused

# Elements per chunk: the chunk of each operand and the scratch buffer (256 KiB each in float32)
# fit together in a 1 MiB L2 cache.
CHUNK = 65536

_enabled = os.environ.get("XPNET_FASTPATH", "1") != "0"


def applies(*arrays) -> bool:
    """True when the fast path is on and can update these arrays in place: C-contiguous NumPy
    arrays of one floating dtype."""
    if not _enabled:
        return False
    dtype = getattr(arrays[0], "dtype", None)
    for array in arrays:
        if type(array) is not np.ndarray or array.dtype != dtype or not array.flags.c_contiguous:
            return False
    return dtype.kind == "f"


@contextmanager
def disabled() -> Iterator[None]:
    """Use the reference (array API) updates inside the ``with`` block."""
    global _enabled
    previous, _enabled = _enabled, False
    try:
        yield
    finally:
        _enabled = previous


def _chunks(*arrays) -> Iterator[tuple]:
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


def sgd_update(param, grad, velocity, *, lr: float, momentum: float, nesterov: bool, weight_decay: float) -> None:
    """``optimizers.SGD._update`` in place (``velocity`` is None without momentum); in one fused pass
    when Numba is installed (see ``fused``)."""
    if fused.wanted(param.size):
        fused.sgd_update(param, grad, velocity, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)
        return
    operands = (param, grad) if velocity is None else (param, grad, velocity)
    for param_chunk, grad_chunk, *rest in _chunks(*operands):
        *velocity_chunk, scratch = rest
        step = _decayed(param_chunk, grad_chunk, weight_decay)
        if velocity is not None:
            (velocity_chunk,) = velocity_chunk
            velocity_chunk *= momentum
            velocity_chunk += step
            if nesterov:
                np.multiply(velocity_chunk, momentum, out=scratch)
                scratch += step
                step = scratch
            else:
                step = velocity_chunk
        np.multiply(step, lr, out=scratch)
        param_chunk -= scratch


def adam_update(
    param,
    grad,
    first,
    second,
    *,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    decoupled: bool,
    correction1: float,
    correction2: float,
) -> None:
    """``optimizers.Adam._update`` in place, given the bias corrections of this step (in one fused
    pass when Numba is installed and the parameter is large, see ``fused``)."""
    if fused.wanted(param.size):
        fused.adam_update(
            param,
            grad,
            first,
            second,
            lr=lr,
            beta1=beta1,
            beta2=beta2,
            eps=eps,
            weight_decay=weight_decay,
            decoupled=decoupled,
            correction1=correction1,
            correction2=correction2,
        )
        return
    root_correction2 = math.sqrt(correction2)
    step_size = lr / correction1
    for param_chunk, grad_chunk, first_chunk, second_chunk, scratch in _chunks(param, grad, first, second):
        if decoupled:
            param_chunk *= 1.0 - lr * weight_decay
            step = grad_chunk
        else:
            step = _decayed(param_chunk, grad_chunk, weight_decay)
        first_chunk *= beta1
        np.multiply(step, 1.0 - beta1, out=scratch)
        first_chunk += scratch
        second_chunk *= beta2
        np.multiply(step, step, out=scratch)
        scratch *= 1.0 - beta2
        second_chunk += scratch
        np.sqrt(second_chunk, out=scratch)
        scratch /= root_correction2
        scratch += eps
        np.divide(first_chunk, scratch, out=scratch)
        scratch *= step_size
        param_chunk -= scratch


def _decayed(param_chunk, grad_chunk, weight_decay: float):
    """``grad + weight_decay * param`` as in ``Optimizer._decayed`` (a new chunk only with decay)."""
    return grad_chunk + weight_decay * param_chunk if weight_decay else grad_chunk
