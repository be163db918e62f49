"""The GPU benchmark script, run end to end in its CPU smoke mode on tiny generated MNIST files, so
that it is known to work before it reaches a GPU."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_benchmark.py"


@pytest.fixture(scope="module")
def benchmark():
    spec = importlib.util.spec_from_file_location("gpu_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the script loads
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(size.to_bytes(4, "big") for size in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def tiny_mnist(tmp_path) -> Path:
    """Images whose brightest row is their label: learnable in a few epochs."""
    rng = np.random.default_rng(0)
    for prefix, n_images in (("train", 300), ("t10k", 100)):
        labels = rng.integers(0, 10, n_images)
        images = rng.integers(0, 60, (n_images, 28, 28))
        images[np.arange(n_images), labels + 5, :] = 255
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte", images)
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte", labels)
    return tmp_path


def test_idx_files_are_read_with_their_declared_shape(benchmark, tiny_mnist):
    x_train, y_train, x_test, y_test = benchmark.load_mnist(tiny_mnist, limit=None)
    assert x_train.shape == (300, 784) and x_test.shape == (100, 784)
    assert x_train.dtype == np.float32 and float(x_train.max()) == 1.0
    assert y_train.dtype == np.int64 and set(np.unique(y_test)) <= set(range(10))


def test_a_truncated_idx_file_is_refused(benchmark, tiny_mnist):
    path = tiny_mnist / "t10k-labels-idx1-ubyte"
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(SystemExit, match="truncated"):
        benchmark.load_mnist(tiny_mnist, limit=None)


def test_the_cpu_smoke_run_writes_a_results_table(benchmark, tiny_mnist, tmp_path):
    results = tmp_path / "results.md"
    args = ["--device", "cpu", "--data-dir", str(tiny_mnist), "--epochs", "2", "--results", str(results)]
    assert benchmark.main(args) == 0
    table = results.read_text()
    assert "CPU:" in table
    rows = [line for line in table.splitlines() if re.match(r"\| [SL] \|", line)]
    assert [row.split("|")[2].strip() for row in rows] == ["784-128-10", "784-1024-1024-10"]
    for row in rows:
        cells = [cell.strip() for cell in row.split("|")[1:-1]]
        xpnet_seconds, torch_seconds, ratio = (float(cell) for cell in cells[4:7])
        assert xpnet_seconds > 0 and torch_seconds > 0
        assert ratio == pytest.approx(xpnet_seconds / torch_seconds, rel=0.05, abs=0.01)  # from 4-decimal seconds
        xpnet_accuracy, torch_accuracy = (float(cell.rstrip("%")) for cell in cells[7:9])
        assert xpnet_accuracy > 50 and torch_accuracy > 50, "both learn the brightest-row rule"
