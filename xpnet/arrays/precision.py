"""TensorFloat-32 matrix multiplies, only when asked for.

On NVIDIA GPUs from Ampere on, float32 matrix multiplies can run on tensor cores in TF32: inputs
rounded to a 10-bit mantissa (relative error up to about 5e-4 instead of 6e-8), products summed in
float32. Large layers multiply several times faster; the rounding makes results differ from full
float32 in the third or fourth digit, so two runs that differ only in TF32 drift apart in training.
xpnet keeps full float32 unless ``tf32=True``. The setting is process-wide in CuPy and PyTorch, so
it is switched for the duration of training only.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import array_api_compat

from xpnet.arrays.backend import Backend


@contextmanager
def tf32_matmuls(backend: Backend, enabled: bool) -> Iterator[None]:
    """Allow (or forbid) TF32 float32 matrix multiplies on ``backend`` inside the block, then restore
    the library's previous setting. CPU libraries have no TF32 mode and are left alone."""
    if array_api_compat.is_cupy_namespace(backend.xp):
        restore = _switch_cupy(backend, enabled)
    elif array_api_compat.is_torch_namespace(backend.xp) and backend.device.type == "cuda":
        restore = _switch_torch(enabled)
    else:
        yield
        return
    try:
        yield
    finally:
        restore()


def _switch_cupy(backend: Backend, enabled: bool):
    import cupy
    from cupy._core import _routines_linalg as linalg

    # CuPy reads CUPY_TF32 once, at its first float32 matmul; this is the switch that variable sets,
    # usable at any time.
    previous = linalg.get_compute_type(cupy.float32)
    wanted = linalg.COMPUTE_TYPE_TF32 if enabled else linalg.COMPUTE_TYPE_DEFAULT

    def set_compute_type(compute_type):
        with backend.device:  # TF32 needs compute capability 8.0; CuPy checks the current device
            linalg.set_compute_type(cupy.float32, compute_type)

    set_compute_type(wanted)
    return lambda: set_compute_type(previous)


def _switch_torch(enabled: bool):
    import torch

    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = enabled

    def restore():
        torch.backends.cuda.matmul.allow_tf32 = previous

    return restore
