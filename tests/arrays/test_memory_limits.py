"""What a device has free: the tightest limit (available memory, the container's cgroup, ulimit) is
the one used and named."""

from __future__ import annotations

import os
import resource
from pathlib import Path

import pytest

from xpnet.arrays import memory
from xpnet.arrays.backend import numpy_backend

GIB = 2**30
PAGE = os.sysconf("SC_PAGE_SIZE")


class FakeLinux:
    """/proc and /sys files and process limits under a test's control; each source starts absent."""

    def __init__(self, root: Path, monkeypatch):
        self.root = root
        self.limits = {}
        for name in ("MEMINFO", "STATM", "PROC_CGROUP"):
            monkeypatch.setattr(memory, name, root / name.lower())
        monkeypatch.setattr(memory, "CGROUP_ROOT", root / "cgroup")
        infinite = (resource.RLIM_INFINITY, resource.RLIM_INFINITY)
        monkeypatch.setattr(memory.resource, "getrlimit", lambda kind: self.limits.get(kind, infinite))

    def available(self, size: int) -> None:
        (self.root / "meminfo").write_text(f"MemTotal: 99999999 kB\nMemAvailable: {size // 1024} kB\n")

    def cgroup(self, line: str, hierarchy: str, groups: dict[str, tuple[str, str]]) -> None:
        """This process in the group of ``line`` (a /proc/self/cgroup line); ``groups`` maps a group's
        folder to its (limit file, usage file) contents."""
        limit_file, usage_file = memory._CGROUP_FILES["v1" if hierarchy else "v2"][1:]
        with (self.root / "proc_cgroup").open("a") as handle:
            handle.write(line + "\n")
        for group, (limit, usage) in groups.items():
            folder = self.root / "cgroup" / hierarchy / group
            folder.mkdir(parents=True, exist_ok=True)
            (folder / limit_file).write_text(limit + "\n")
            (folder / usage_file).write_text(usage + "\n")

    def ulimit(self, kind: int, soft: int, statm: str) -> None:
        self.limits[kind] = (soft, resource.RLIM_INFINITY)
        (self.root / "statm").write_text(statm)


@pytest.fixture
def linux(tmp_path, monkeypatch) -> FakeLinux:
    return FakeLinux(tmp_path, monkeypatch)


def every_source(linux: FakeLinux, *, available, container, address_space, data) -> None:
    """All four sources set, each leaving the given bytes."""
    linux.available(available)
    linux.cgroup("0::/job", "", {"job": (str(container + GIB), str(GIB))})
    statm = f"{GIB // PAGE} 100 50 10 0 {GIB // PAGE} 0\n"  # 1 GiB of address space, 1 GiB of data
    linux.ulimit(resource.RLIMIT_AS, address_space + GIB, statm)
    linux.ulimit(resource.RLIMIT_DATA, data + GIB, statm)


@pytest.mark.parametrize(
    ("tightest", "source"),
    [
        ("available", "available memory (MemAvailable)"),
        ("container", "the container's memory limit (cgroup)"),
        ("address_space", "the address-space limit, ulimit -v"),
        ("data", "the data-segment limit, ulimit -d"),
    ],
)
def test_the_tightest_limit_is_the_one_used_and_named(linux, tightest, source):
    sizes = {"available": 8 * GIB, "container": 6 * GIB, "address_space": 5 * GIB, "data": 7 * GIB}
    sizes[tightest] = 2 * GIB
    every_source(linux, **sizes)
    assert memory.memory_limit(numpy_backend()) == memory.Limit(2 * GIB, source)
    assert memory.available_bytes(numpy_backend()) == 2 * GIB


def test_a_cgroup_limit_higher_up_counts_and_max_means_unlimited(linux):
    linux.available(64 * GIB)
    linux.cgroup("0::/slice/job", "", {"slice/job": ("max", str(GIB)), "slice": (str(3 * GIB), str(GIB))})
    assert memory.memory_limit(numpy_backend()) == memory.Limit(2 * GIB, "the container's memory limit (cgroup)")


def test_cgroup_version_1_is_read_from_its_memory_controller(linux):
    linux.available(64 * GIB)
    linux.cgroup("7:cpu,cpuacct:/job", "cpu", {"job": (str(GIB), "0")})  # not the memory controller
    linux.cgroup("4:memory:/job", "memory", {"job": (str(4 * GIB), str(3 * GIB))})
    assert memory.memory_limit(numpy_backend()) == memory.Limit(GIB, "the container's memory limit (cgroup)")


def test_without_proc_the_limit_is_physical_memory(linux):
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert memory.memory_limit(numpy_backend()) == memory.Limit(physical, "physical memory")


# -- a CUDA GPU, through the stand-in for CuPy (tests/cupy_standin.py: it does not prove what CuPy reports) --


def test_a_gpu_offers_its_free_memory_and_the_blocks_cupys_pool_holds_free(monkeypatch):
    from cupy_standin import install

    standin = install(monkeypatch, free_on_gpu=6 * GIB)
    standin.pool.used, standin.pool.free = 2 * GIB, GIB
    assert memory.memory_limit(standin.backend(0)) == memory.Limit(7 * GIB, "free memory on the GPU <CUDA Device 0>")


def test_cupys_pool_limit_bounds_a_gpu_below_its_free_memory(monkeypatch):
    from cupy_standin import install

    standin = install(monkeypatch, free_on_gpu=60 * GIB)
    standin.pool.used, standin.pool.limit = 3 * GIB, 4 * GIB  # CUPY_GPU_MEMORY_LIMIT=4GiB, 3 GiB in use
    assert memory.memory_limit(standin.backend(0)) == memory.Limit(
        GIB, "CuPy's memory pool limit (CUPY_GPU_MEMORY_LIMIT)"
    )
