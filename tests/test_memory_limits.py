"""The memory guard: it reads the tightest limit (available memory, the container's cgroup, ulimit),
its estimate covers what a run really allocates, and a run over the limit is one clear line."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

from xpnet.arrays.backend import numpy_backend
from xpnet.cli import main
from xpnet.report import plots
from xpnet.train import memory

GIB = 2**30
PAGE = os.sysconf("SC_PAGE_SIZE")
REPO = Path(__file__).resolve().parent.parent


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


def test_the_estimate_covers_what_a_run_allocates_without_exceeding_it_much(tmp_path, monkeypatch):
    """Measured with tracemalloc (which sees NumPy's allocations) over a whole command, from the check
    on: training, the test set evaluated each epoch, the results evaluated and predicted after it."""
    monkeypatch.setattr(plots, "available", lambda: False)  # matplotlib's objects are not the network's
    in_use_at_check = []
    check_fits = memory.check_fits

    def recording_check_fits(*arguments, **options):
        in_use_at_check.append(tracemalloc.get_traced_memory()[0])
        check_fits(*arguments, **options)

    monkeypatch.setattr(memory, "check_fits", recording_check_fits)
    hidden = 20000
    tracemalloc.start()
    try:
        assert main(["--hidden", str(hidden), "--epochs", "1", "--out", str(tmp_path / "run"), "--quiet"]) == 0
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    needed = peak - in_use_at_check[0]  # the command's own check comes first, before the model's
    # 64 inputs, 10 classes, float32, Adam's 2 buffers, batches of 32, the digits' 359 test images.
    estimate = memory.training_bytes([64, hidden, 10], 4, 2, 32, evaluation_rows=359)
    assert needed <= estimate <= 1.5 * needed, (needed / 2**20, estimate / 2**20)


def test_a_million_hidden_units_under_a_real_address_space_limit_are_one_clear_line(tmp_path):
    """``ulimit -v 4 GiB``: training would fit (3 GiB), but evaluating the test set would not."""

    def limit_address_space():
        resource.setrlimit(resource.RLIMIT_AS, (4 * GIB, 4 * GIB))

    run_dir = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "xpnet", "--hidden", "1000000", "--epochs", "1", "--out", str(run_dir)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO), "OPENBLAS_NUM_THREADS": "1"},
        preexec_fn=limit_address_space,
        timeout=300,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("xpnet: error: a network with layer sizes [64, 1000000, 10] needs about 6.0 GiB")
    assert result.stderr.count("\n") == 1, result.stderr
    assert "use fewer or narrower hidden layers" in result.stderr
    assert not run_dir.exists()  # a run refused before it started leaves no folder behind
