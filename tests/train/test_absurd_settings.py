"""Absurd settings give a clear message or a guarded run: never a crash or a silent NaN model."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import xpnet
from xpnet.arrays import compiled
from xpnet.arrays.backend import select
from xpnet.arrays.memory import Limit
from xpnet.errors import TrainingDiverged, XpnetError, XpnetWarning
from xpnet.train import memory


@pytest.fixture(scope="module")
def digits():
    return xpnet.load_digits()


def all_finite(model) -> bool:
    return all(np.all(np.isfinite(parameter)) for parameter in model.network.parameters())


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_a_learning_rate_of_1e9_diverges_with_a_clear_message_and_finite_weights(digits):
    x, y, _, _ = digits
    targets = np.eye(10, dtype=np.float32)[y]
    model = xpnet.Model(hidden=[32], epochs=3, lr=1e9, loss="mse")
    with pytest.raises(TrainingDiverged, match=r"learning rate 1e\+09 .*Try a learning rate 10x smaller \(lr=1e\+08\)"):
        model.fit(x, targets)
    assert all_finite(model)


def test_a_learning_rate_of_1e9_that_stays_finite_is_flagged_as_not_learning(digits):
    x, y, _, _ = digits
    model = xpnet.Model(hidden=[32], epochs=3, lr=1e9)
    with pytest.warns(XpnetWarning, match=r"about chance level .*learning rate 1e\+09 may be too high"):
        model.fit(x, y)
    assert all_finite(model)


def test_a_batch_larger_than_the_data_trains_as_one_full_batch(digits):
    x, y, _, _ = digits
    huge = xpnet.Model(hidden=[16], epochs=2, batch_size=10**6, lr=0.01)
    huge.fit(x, y)
    exact = xpnet.Model(hidden=[16], epochs=2, batch_size=len(x), lr=0.01)
    exact.fit(x, y)
    assert huge.optimizer.steps == 2
    for parameter, expected in zip(huge.network.parameters(), exact.network.parameters()):
        assert np.array_equal(parameter, expected)


def test_zero_epochs_are_refused(digits):
    x, y, _, _ = digits
    with pytest.raises(XpnetError, match="epochs must be a positive integer, got 0"):
        xpnet.Model(epochs=0)
    with pytest.raises(XpnetError, match="epochs must be a positive integer, got 0"):
        xpnet.Model(hidden=[8]).fit(x, y, epochs=0)


def test_a_million_hidden_units_on_a_small_machine_are_refused_before_allocating(digits, monkeypatch):
    x, y, _, _ = digits
    monkeypatch.setattr(memory, "memory_limit", lambda backend: Limit(2**30, "available memory (MemAvailable)"))
    model = xpnet.Model(hidden=[10**6], epochs=1)
    tracemalloc.start()
    try:
        refused = (
            r"layer sizes \[64, 1000000, 10\] needs about 3\.1 GiB .* has 1\.0 GiB left, limited by available memory"
        )
        with pytest.raises(XpnetError, match=refused):
            model.fit(x, y)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 50 * 2**20
    assert model.network is None


def test_two_million_unit_layers_are_refused_on_any_machine(digits):
    x, y, _, _ = digits
    with pytest.raises(XpnetError, match=r"needs about 29806\.0 GiB to train .*use fewer or narrower hidden layers"):
        xpnet.Model(hidden=[10**6, 10**6], epochs=1).fit(x, y)


def test_the_memory_estimate_counts_parameters_state_and_the_larger_of_a_step_and_an_evaluation():
    runtime = 32 * 2**20
    # sizes 2 -> 3 -> 1: 13 parameters, each held 3 times plus 2 Adam buffers twice (7 copies). A step
    # of 5 rows: the largest layer's 9 parameters (its new gradient) and 7 arrays for each of 3 + 1 units.
    assert memory.training_bytes([2, 3, 1], 4, 2, 5) == 4 * (13 * 7 + 9 + 5 * 7 * 4) + runtime
    # Evaluating 100 rows: each keeps 2 arrays per unit, and the widest layer's new output (3) besides.
    assert memory.training_bytes([2, 3, 1], 4, 2, 5, evaluation_rows=100) == 4 * (13 * 7 + 100 * (2 * 4 + 3)) + runtime
    # Evaluation goes in batches of EVALUATION_BATCH_SIZE rows, however many there are.
    assert memory.training_bytes([2, 3, 1], 4, 2, 5, evaluation_rows=10**6) == 4 * (13 * 7 + 4096 * 11) + runtime
    # With the activation written over the product (the compiled passes), one array per unit.
    in_place = memory.training_bytes([2, 3, 1], 4, 2, 5, evaluation_rows=100, activations_in_place=True)
    assert in_place == 4 * (13 * 7 + 100 * (4 + 3)) + runtime


def test_evaluation_is_sized_with_the_activation_in_place_only_where_the_compiled_passes_run(monkeypatch):
    cpu = select("cpu")
    large = [64, compiled.MIN_SIZE, 10]  # Numba is loaded at the first step
    monkeypatch.setattr(compiled, "available", True)
    monkeypatch.setattr(compiled, "_loaded", False)
    assert memory.activations_in_place(large, "relu", cpu, 359)
    assert memory.activations_in_place([64, 100, 10], "relu", cpu, -(-compiled.MIN_SIZE // 100))  # a large output
    assert not memory.activations_in_place([64, 100, 10], "relu", cpu, 359)  # neither: NumPy's passes
    assert not memory.activations_in_place(large, "tanh", cpu, 359)
    with compiled.disabled():
        assert not memory.activations_in_place(large, "relu", cpu, 359)
    monkeypatch.setattr(compiled, "available", False)
    assert not memory.activations_in_place(large, "relu", cpu, 359)


def test_the_memory_estimate_counts_an_epochs_copy_of_the_training_data():
    """Each epoch gathers the samples in its order (inputs, a target per output, an int64 label) and
    keeps the outputs of its steps."""
    without = memory.training_bytes([2, 3, 1], 4, 2, 5)
    assert memory.training_bytes([2, 3, 1], 4, 2, 5, training_rows=100) == without + 100 * (4 * (2 + 1 + 1) + 8)
