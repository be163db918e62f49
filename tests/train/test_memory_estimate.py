"""The memory guard: its estimate covers what a run really allocates, and a run over the limit is one
clear line."""

from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

from xpnet.arrays.backend import select
from xpnet.cli import main
from xpnet.datasets import load_digits
from xpnet.errors import XpnetError
from xpnet.optim import OPTIMIZERS
from xpnet.report import plots
from xpnet.train import memory
from xpnet.train.model import Model

GIB = 2**30
REPO = Path(__file__).resolve().parents[2]


def test_the_estimate_covers_what_a_run_allocates_without_exceeding_it_much(tmp_path, monkeypatch):
    """Measured with tracemalloc (which sees NumPy's allocations) over a whole command, from the check
    on: training, the test set evaluated each epoch, the results evaluated and predicted after it. The
    command runs once before it is measured, so that the code it loads once per process (Numba's
    compiler and kernels, which the estimate counts as its runtime) is loaded whatever ran before."""
    monkeypatch.setattr(plots, "available", lambda: False)  # matplotlib's objects are not the network's
    hidden = 20000
    command = ["--hidden", str(hidden), "--epochs", "1", "--quiet"]
    assert main([*command, "--out", str(tmp_path / "first")]) == 0
    in_use_at_check = []
    check_fits = memory.check_fits

    def recording_check_fits(*arguments, **options):
        in_use_at_check.append(tracemalloc.get_traced_memory()[0])
        check_fits(*arguments, **options)

    monkeypatch.setattr(memory, "check_fits", recording_check_fits)
    tracemalloc.start()
    try:
        assert main([*command, "--out", str(tmp_path / "run")]) == 0
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    needed = peak - in_use_at_check[0]  # the command's own check comes first, before the model's
    # 64 inputs, 10 classes, float32, Adam's 2 buffers, batches of 32, the digits' 359 test images;
    # ReLU written over its product where the compiled passes run (as check_fits decides it), and no
    # runtime, loaded by the first run.
    sizes = [64, hidden, 10]
    in_place = memory.activations_in_place(sizes, "relu", select("cpu"), 359)
    estimate = memory.training_bytes(sizes, 4, 2, 32, evaluation_rows=359, activations_in_place=in_place)
    estimate -= memory.RUNTIME_BYTES
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
    # about 4.7 GiB where ReLU is written over its product (the compiled passes), 6.0 elsewhere
    refusal = r"xpnet: error: a network with layer sizes \[64, 1000000, 10\] needs about \d\.\d GiB"
    assert re.match(refusal, result.stderr), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert "use fewer or narrower hidden layers" in result.stderr
    assert not run_dir.exists()  # a run refused before it started leaves no folder behind


@pytest.mark.parametrize(("optimizer", "weight_decay"), [*((name, 0.0) for name in OPTIMIZERS), ("adam", 1e-4)])
def test_the_estimate_covers_the_temporaries_of_the_reference_update(optimizer, weight_decay):
    """On array-api-strict, as on CuPy, a step runs the array-API reference update, each of whose
    element-wise operations makes a model-sized temporary (NumPy updates in place). Measured over a
    one-step epoch of a model already trained: the epoch's rollback copy of the parameters and optimizer
    buffers, the step's activations, and the update."""
    strict = pytest.importorskip("array_api_strict")
    x_train, y_train, _, _ = load_digits()
    hidden, batch = 50000, 16
    model = Model(hidden=[hidden], optimizer=optimizer, weight_decay=weight_decay, batch_size=batch, device=strict)
    model.fit(x_train[:batch], y_train[:batch], epochs=1)
    model_bytes = 4 * sum(parameter.size for parameter in model.network.parameters())
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        model.fit(x_train[:batch], y_train[:batch], epochs=1)
        needed = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    rollback = 1 + len(model.config.make_optimizer().buffers)
    temporaries = memory.step_temporaries(model.optimizer, select(strict))
    activations = 7 * batch * (hidden + 10) * 4  # training_bytes' bound on a step's activations
    assert needed <= (rollback + temporaries) * model_bytes + activations, (needed / model_bytes, temporaries)


def test_a_gpu_run_counts_its_random_generators_states(monkeypatch):
    """A network whose parameters, step and runtime fit CuPy's pool limit to the byte, but not beside the
    Philox states of its random streams, is refused (on the stand-in for CuPy, tests/cupy_standin.py)."""
    from cupy_standin import install

    standin = install(monkeypatch)
    sizes = [64, 32, 10]
    standin.pool.limit = memory.training_bytes(sizes, 4, 2, 32, epoch_inputs=True)
    with pytest.raises(XpnetError, match=r"limited by CuPy's memory pool limit \(CUPY_GPU_MEMORY_LIMIT\): use fewer"):
        memory.check_fits(sizes, 4, 2, 32, standin.backend(0))


def test_a_batch_larger_than_the_training_set_is_sized_as_the_batch_it_trains(tmp_path, monkeypatch, capsys):
    """--batch-size 10**12 trains the 1,438 digits in one batch of 1,438 rows, and is sized as such."""
    monkeypatch.setattr(plots, "available", lambda: False)
    sized = []
    check_fits = memory.check_fits

    def recording_check_fits(sizes, itemsize, buffers, batch_size, backend, **options):
        sized.append(batch_size)
        check_fits(sizes, itemsize, buffers, batch_size, backend, **options)

    monkeypatch.setattr(memory, "check_fits", recording_check_fits)
    argv = ["--batch-size", str(10**12), "--epochs", "1", "--out", str(tmp_path / "run"), "--quiet"]
    assert main(argv) == 0, capsys.readouterr().err
    assert sized == [1438, 1438]  # the command's check (before loading), then the model's (before building)
