"""A guard against networks too big for the machine: estimate what training will hold in memory and
refuse, with a clear message, before allocating anything.

On the host the limit is the tightest of the memory the kernel says is available, the container's
cgroup limit and the process's ``ulimit`` (address space, data segment); on a CUDA GPU it is CuPy's
free device memory.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import NamedTuple

from xpnet.arrays.backend import Backend
from xpnet.errors import XpnetError
from xpnet.train.loop import EVALUATION_BATCH_SIZE

try:
    import resource
except ImportError:  # not a POSIX system: no process limits to read
    resource = None

# Arrays kept per parameter besides the optimizer buffers: the parameter, its gradient, and the
# copy taken each epoch to roll back a diverged epoch (which also copies the optimizer buffers).
_COPIES_PER_PARAMETER = 3
# Arrays of batch x width per layer in a training step: pre-activation, activation, dropout mask and
# output, and in the backward pass the incoming gradient, the activation's derivative and their product.
_ARRAYS_PER_TRAINING_UNIT = 7
# Code and objects a run loads once it trains, whatever the network's size: Numba's compiler (the fast
# path for large parameters) alone takes about 25 MiB.
_RUNTIME_BYTES = 32 * 2**20
GIB = 2**30

# Where Linux tells the memory left; tests point these elsewhere.
MEMINFO = Path("/proc/meminfo")
STATM = Path("/proc/self/statm")
PROC_CGROUP = Path("/proc/self/cgroup")
CGROUP_ROOT = Path("/sys/fs/cgroup")
# Per cgroup version: the hierarchy's folder under CGROUP_ROOT, and a group's limit and usage files.
_CGROUP_FILES = {
    "v2": ("", "memory.max", "memory.current"),
    "v1": ("memory", "memory.limit_in_bytes", "memory.usage_in_bytes"),
}


class Limit(NamedTuple):
    """Bytes that new arrays may still take, and what sets that bound (for the error message)."""

    available: int
    source: str


def training_bytes(
    sizes: list[int], itemsize: int, n_optimizer_buffers: int, batch_size: int, evaluation_rows: int = 0
) -> int:
    """Peak bytes held while training an MLP with layer ``sizes``: parameters, gradients, optimizer
    state and rollback copies, plus the larger of one training step and one evaluation batch, plus
    what the run's code takes.

    A step computes each new weight gradient while the previous one is still held. Evaluation runs
    in batches of up to ``EVALUATION_BATCH_SIZE`` of ``evaluation_rows`` (the test or validation set)
    rows; each layer keeps its input and output until the next pass replaces them, so the layer being
    computed briefly holds its previous output as well.
    """
    layer_parameters = [n_in * n_out + n_out for n_in, n_out in itertools.pairwise(sizes)]
    widths = sizes[1:]
    per_parameter = _COPIES_PER_PARAMETER + 2 * n_optimizer_buffers
    step = max(layer_parameters) + _ARRAYS_PER_TRAINING_UNIT * batch_size * sum(widths)
    rows = min(max(evaluation_rows, batch_size), EVALUATION_BATCH_SIZE)
    evaluation = rows * (2 * sum(widths) + max(widths))
    return itemsize * (sum(layer_parameters) * per_parameter + max(step, evaluation)) + _RUNTIME_BYTES


def memory_limit(backend: Backend) -> Limit | None:
    """The tightest bound on new arrays on the device training runs on; None where none can be told."""
    if backend.name == "cupy":
        import cupy

        with backend.device:
            # Blocks cached by CuPy's pool count as used for the driver but are free for new arrays.
            free = int(cupy.cuda.runtime.memGetInfo()[0]) + cupy.get_default_memory_pool().free_bytes()
        return Limit(free, f"free memory on the GPU {backend.device}")
    if backend.name == "torch" and getattr(backend.device, "type", "cpu") != "cpu":
        return None
    return min(host_limits(), default=None)


def available_bytes(backend: Backend) -> int | None:
    """Bytes new arrays may take on ``backend``'s device; None where it cannot be told."""
    limit = memory_limit(backend)
    return None if limit is None else limit.available


def host_limits() -> list[Limit]:
    """Every bound on new host memory that can be read here."""
    return [limit for limit in (_available_memory(), _cgroup_headroom(), *_ulimit_headroom()) if limit is not None]


def _available_memory() -> Limit | None:
    """MemAvailable (free memory plus caches the kernel can drop), else all physical memory."""
    try:
        for line in MEMINFO.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return Limit(int(line.split()[1]) * 1024, "available memory (MemAvailable)")
    except (OSError, ValueError, IndexError):
        pass
    try:
        return Limit(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"), "physical memory")
    except (ValueError, OSError, AttributeError):  # not a POSIX system
        return None


def _cgroup_headroom() -> Limit | None:
    """The memory a container (or systemd slice) still allows: the smallest limit minus usage over
    this process's control group and the groups above it, in either cgroup version."""
    try:
        lines = PROC_CGROUP.read_text().splitlines()
    except OSError:
        return None
    headrooms = []
    for line in lines:
        fields = line.split(":", 2)  # hierarchy id, controllers (empty in v2), group path
        if len(fields) != 3:
            continue
        _, controllers, group = fields
        version = "v2" if controllers == "" else "v1" if "memory" in controllers.split(",") else None
        if version is None:
            continue
        hierarchy, limit_file, usage_file = _CGROUP_FILES[version]
        top = CGROUP_ROOT / hierarchy
        folder = top / group.strip().lstrip("/")
        for level in (folder, *folder.parents):
            headroom = _group_headroom(level, limit_file, usage_file)
            if headroom is not None:
                headrooms.append(headroom)
            if level == top:
                break
    return Limit(min(headrooms), "the container's memory limit (cgroup)") if headrooms else None


def _group_headroom(folder: Path, limit_file: str, usage_file: str) -> int | None:
    try:
        limit = (folder / limit_file).read_text().strip()
        usage = int((folder / usage_file).read_text())
    except (OSError, ValueError):
        return None
    return None if not limit.isdigit() else max(int(limit) - usage, 0)  # "max": no limit


def _ulimit_headroom() -> list[Limit]:
    """What the process's address-space and data-segment limits leave, from its current sizes."""
    if resource is None:
        return []
    try:
        fields = STATM.read_text().split()
        page = os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return []
    # /proc/self/statm counts pages: total size first, data and stack sixth.
    limits = []
    for kind, field, source in (
        (resource.RLIMIT_AS, 0, "the address-space limit, ulimit -v"),
        (resource.RLIMIT_DATA, 5, "the data-segment limit, ulimit -d"),
    ):
        soft, _ = resource.getrlimit(kind)
        if soft != resource.RLIM_INFINITY:
            limits.append(Limit(max(soft - int(fields[field]) * page, 0), source))
    return limits


def check_fits(
    sizes: list[int],
    itemsize: int,
    n_optimizer_buffers: int,
    batch_size: int,
    backend: Backend,
    *,
    evaluation_rows: int = 0,
) -> None:
    """Raise ``XpnetError`` if training this network (and evaluating ``evaluation_rows`` rows) would
    need more memory than the device allows."""
    needed = training_bytes(sizes, itemsize, n_optimizer_buffers, batch_size, evaluation_rows)
    limit = memory_limit(backend)
    if limit is not None and needed > limit.available:
        raise XpnetError(
            f"a network with layer sizes {sizes} needs about {needed / GIB:.1f} GiB to train "
            f"(parameters, gradients, optimizer state, and one batch or evaluation batch of activations), "
            f"but {backend} has {limit.available / GIB:.1f} GiB left, limited by {limit.source}: "
            "use fewer or narrower hidden layers, or a smaller batch size"
        )
