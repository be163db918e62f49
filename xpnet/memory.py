"""A guard against networks too big for the machine: estimate what training will hold in memory and
refuse, with a clear message, before allocating anything."""

from __future__ import annotations

import itertools
import os

from xpnet.backend import Backend
from xpnet.errors import XpnetError

# Arrays kept per parameter besides the optimizer buffers: the parameter, its gradient, and the
# copy taken each epoch to roll back a diverged epoch (which also copies the optimizer buffers).
_COPIES_PER_PARAMETER = 3
# Arrays of batch x width kept per layer in a training step: output, activation, mask and gradient.
_ARRAYS_PER_ACTIVATION = 4
GIB = 2**30


def training_bytes(sizes: list[int], itemsize: int, n_optimizer_buffers: int, batch_size: int) -> int:
    """Bytes held while training an MLP with layer ``sizes``: parameters, gradients, optimizer state,
    rollback copies, and the activations of one batch."""
    n_parameters = sum(n_in * n_out + n_out for n_in, n_out in itertools.pairwise(sizes))
    per_parameter = _COPIES_PER_PARAMETER + 2 * n_optimizer_buffers
    activations = _ARRAYS_PER_ACTIVATION * batch_size * sum(sizes[1:])
    return itemsize * (n_parameters * per_parameter + activations)


def available_bytes(backend: Backend) -> int | None:
    """Memory of the device training runs on: physical memory for host libraries, free memory on a
    CUDA GPU; None where it cannot be told."""
    if backend.name == "cupy":
        import cupy

        with backend.device:
            # Blocks cached by CuPy's pool count as used for the driver but are free for new arrays.
            return int(cupy.cuda.runtime.memGetInfo()[0]) + cupy.get_default_memory_pool().free_bytes()
    if backend.name == "torch" and getattr(backend.device, "type", "cpu") != "cpu":
        return None
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not a POSIX system
        return None


def check_fits(sizes: list[int], itemsize: int, n_optimizer_buffers: int, batch_size: int, backend: Backend) -> None:
    """Raise ``XpnetError`` if training this network would need more memory than the device has."""
    needed = training_bytes(sizes, itemsize, n_optimizer_buffers, batch_size)
    available = available_bytes(backend)
    if available is not None and needed > available:
        raise XpnetError(
            f"a network with layer sizes {sizes} needs about {needed / GIB:.1f} GiB to train "
            f"(parameters, gradients, optimizer state and one batch), but {backend} has "
            f"{available / GIB:.1f} GiB: use fewer or narrower hidden layers"
        )
