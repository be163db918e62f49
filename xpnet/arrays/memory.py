"""What a device has free for new arrays: on the host the tightest of the memory the kernel says is
available, the container's cgroup limit and the process's ``ulimit``; on a CUDA GPU, the tighter of its
free memory and CuPy's memory pool limit.

Training and the file readers ask it first, so that work too big for the machine fails before allocating.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

from xpnet.arrays.backend import Backend

try:
    import resource
except ImportError:  # not a POSIX system: no process limits to read
    resource = None

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


def memory_limit(backend: Backend) -> Limit | None:
    """The tightest bound on new arrays on ``backend``'s device; None where none can be told."""
    if backend.name == "cupy":
        import cupy

        with backend.device:
            pool = cupy.get_default_memory_pool()
            # Blocks cached by CuPy's pool count as used for the driver but are free for new arrays.
            free = Limit(
                int(cupy.cuda.runtime.memGetInfo()[0]) + pool.free_bytes(), f"free memory on the GPU {backend.device}"
            )
            limit = pool.get_limit()  # 0 unless set, by CUPY_GPU_MEMORY_LIMIT or set_limit
        if not limit:
            return free
        return min(free, Limit(max(limit - pool.used_bytes(), 0), "CuPy's memory pool limit (CUPY_GPU_MEMORY_LIMIT)"))
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
