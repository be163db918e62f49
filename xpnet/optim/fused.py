"""Fused SGD and Adam updates compiled by Numba (the optional ``fast`` extra), for NumPy parameters.

The chunked NumPy updates in ``fastpath`` still make up to eleven passes over each chunk; these
kernels make one, reading each array once and writing it once. They apply
the reference's float operations in the reference's order, in the parameter's own dtype (no fused
multiply-add, no fast-math), so its results are the same to the last bit (``tests/test_fast_path.py``).
Without Numba, ``available`` is False and ``fastpath`` keeps its NumPy chunks.
"""

from __future__ import annotations

import functools
import importlib.util
import math

# Numba is imported (about 0.4 s) only once a parameter of at least MIN_SIZE elements is updated, so
# small networks such as the default digits run never pay for it; after that every parameter,
# however small, takes the kernels, which also saves NumPy's per-call overhead on biases.
MIN_SIZE = 1 << 16

available = importlib.util.find_spec("numba") is not None
_loaded = False


def wanted(size: int) -> bool:
    """Whether a parameter of ``size`` elements should be updated by a compiled kernel."""
    return available and (_loaded or size >= MIN_SIZE)


def _njit(function):
    """Compile ``function`` with Numba: cached on disk, no GIL, and IEEE division (``error_model``
    "numpy"; Python's zero-division checks would stop vectorisation)."""
    global _loaded
    import numba

    _loaded = True
    return numba.njit(cache=True, nogil=True, error_model="numpy")(function)


@functools.cache
def _sgd_kernel():
    def kernel(param, grad, velocity, weight_decay, momentum, nesterov, lr):
        for i in range(param.size):
            p = param[i]
            g = grad[i] + weight_decay * p if weight_decay != 0 else grad[i]
            if momentum != 0:
                v = velocity[i] * momentum + g
                velocity[i] = v
                g = v * momentum + g if nesterov else v
            param[i] = p - g * lr

    return _njit(kernel)


def sgd_update(param, grad, velocity, *, lr, momentum, nesterov, weight_decay):
    """``optimizers.SGD._update`` in one pass (same arguments as ``fastpath.sgd_update``)."""
    scalar = param.dtype.type
    _sgd_kernel()(
        param.reshape(-1),
        grad.reshape(-1),
        (grad if velocity is None else velocity).reshape(-1),  # not read without momentum
        scalar(weight_decay),
        scalar(momentum if velocity is not None else 0.0),
        nesterov,
        scalar(lr),
    )


@functools.cache
def _adam_kernel():
    def kernel(param, grad, first, second, decay, weight_decay, beta1, beta1_rest, beta2, beta2_rest, root2, eps, step):
        for i in range(param.size):
            p = param[i] * decay
            g = grad[i] + weight_decay * p if weight_decay != 0 else grad[i]
            m = first[i] * beta1 + g * beta1_rest
            v = second[i] * beta2 + (g * g) * beta2_rest
            first[i] = m
            second[i] = v
            param[i] = p - (m / (math.sqrt(v) / root2 + eps)) * step

    return _njit(kernel)


def adam_update(
    param, grad, first, second, *, lr, beta1, beta2, eps, weight_decay, decoupled, correction1, correction2
):
    """``optimizers.Adam._update`` in one pass (same arguments as ``fastpath.adam_update``)."""
    scalar = param.dtype.type
    decay = 1.0 - lr * weight_decay if decoupled else 1.0
    _adam_kernel()(
        param.reshape(-1),
        grad.reshape(-1),
        first.reshape(-1),
        second.reshape(-1),
        scalar(decay),
        scalar(0.0 if decoupled else weight_decay),
        scalar(beta1),
        scalar(1.0 - beta1),
        scalar(beta2),
        scalar(1.0 - beta2),
        scalar(math.sqrt(correction2)),
        scalar(eps),
        scalar(lr / correction1),
    )
