"""A fused Adam update compiled by Numba (the optional ``fast`` extra), for large NumPy parameters.

The chunked NumPy update in ``fastpath`` still makes eleven passes over each chunk; this kernel
makes one, reading parameter, gradient and both moments once and writing them once. It applies
the reference's float operations in the reference's order, in the parameter's own dtype (no fused
multiply-add, no fast-math), so its results are the same to the last bit (``tests/test_fast_path.py``).
Without Numba, ``available`` is False and ``fastpath`` keeps its NumPy chunks.
"""

from __future__ import annotations

import functools
import importlib.util
import math

# Parameters smaller than this are left to NumPy: compiling (or loading the cached kernel) costs
# more than it saves on small networks, such as the default digits run.
MIN_SIZE = 1 << 18

# Numba is imported only when a parameter this large is first updated: importing it costs ~0.4 s.
available = importlib.util.find_spec("numba") is not None


@functools.cache
def _adam_kernel():
    import numba

    # error_model="numpy": IEEE division instead of Python's zero checks, which block vectorisation.
    @numba.njit(cache=True, nogil=True, error_model="numpy")
    def kernel(param, grad, first, second, decay, weight_decay, beta1, beta1_rest, beta2, beta2_rest, root2, eps, step):
        for i in range(param.size):
            p = param[i] * decay
            g = grad[i] + weight_decay * p if weight_decay != 0 else grad[i]
            m = first[i] * beta1 + g * beta1_rest
            v = second[i] * beta2 + (g * g) * beta2_rest
            first[i] = m
            second[i] = v
            param[i] = p - (m / (math.sqrt(v) / root2 + eps)) * step

    return kernel


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
