"""The NumPy (chunked) and Numba (fused) variants of the optimizer updates against the array-API
reference, and the one dispatch in ``xpnet.optim.kernels`` that picks among them.

The variants apply the reference's operations in the same order, so the results must be identical to
the last bit, not merely close.
"""

import dataclasses

import numpy as np
import pytest

import xpnet
from xpnet import optim
from xpnet.arrays import compiled
from xpnet.optim import adam, kernels, sgd

# Larger than one chunk and not a multiple of it, so the last, partial chunk is exercised too.
SHAPES = [(300, 500), (500,), (7, 3)]

OPTIMIZERS = {
    "sgd": lambda: optim.make("sgd"),
    "sgd, weight decay": lambda: optim.make("sgd", weight_decay=0.01),
    "momentum": lambda: optim.make("momentum"),
    "nesterov, weight decay": lambda: optim.make("nesterov", weight_decay=0.01),
    "adam": lambda: optim.make("adam"),
    "adam, weight decay": lambda: optim.make("adam", weight_decay=0.01),
    "adamw": lambda: optim.make("adamw", weight_decay=0.01),
}


def _arrays(seed, dtype):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape).astype(dtype) for shape in SHAPES]


def _run_steps(make_optimizer, dtype, lrs=(0.1, 0.05, 0.02)):
    params = _arrays(0, dtype)
    optimizer = make_optimizer()
    for step, lr in enumerate(lrs):
        params = optimizer.step(params, _arrays(step + 1, dtype), lr)
    return params, optimizer.state


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_fast_updates_equal_the_reference_bit_for_bit(name, dtype):
    fast_params, fast_state = _run_steps(OPTIMIZERS[name], dtype)
    with compiled.disabled():
        reference_params, reference_state = _run_steps(OPTIMIZERS[name], dtype)
    for fast, reference in zip(fast_params, reference_params):
        assert fast.dtype == dtype
        np.testing.assert_array_equal(fast, reference)
    assert fast_state.keys() == reference_state.keys()
    for buffer in fast_state:
        for fast, reference in zip(fast_state[buffer], reference_state[buffer]):
            np.testing.assert_array_equal(fast, reference)


def test_fast_path_is_taken_for_numpy_arrays(monkeypatch):
    calls = []

    def record(settings, step, param, grad, *buffers):
        calls.append(param.shape)
        return param, *buffers

    fast = dataclasses.replace(optim.Adam.variants, chunked=record, fused=record)
    monkeypatch.setattr(optim.Adam, "variants", fast)
    _run_steps(OPTIMIZERS["adam"], np.float32, lrs=(0.1,))
    assert calls == SHAPES
    calls.clear()
    with compiled.disabled():
        params, _ = _run_steps(OPTIMIZERS["adam"], np.float32, lrs=(0.1,))
    assert calls == []
    assert not np.array_equal(params[0], _arrays(0, np.float32)[0])  # the reference did update


# Stand-ins for the three variants, so each test reads which one ``choose`` picked.
VARIANTS = kernels.Variants(reference="reference", chunked="chunked", fused="fused")


def test_the_fast_path_applies_only_to_contiguous_numpy_arrays_of_one_float_dtype():
    array = np.zeros((4, 6), dtype=np.float32)
    assert kernels.choose(VARIANTS, array, np.ones_like(array)) != "reference"
    assert kernels.choose(VARIANTS, array, array.T) == "reference"  # not C-contiguous
    assert kernels.choose(VARIANTS, array, array.astype(np.float64)) == "reference"
    assert kernels.choose(VARIANTS, np.zeros(3, dtype=np.int64)) == "reference"
    array_api_strict = pytest.importorskip("array_api_strict")
    assert kernels.choose(VARIANTS, array_api_strict.asarray(array)) == "reference"
    with compiled.disabled():
        assert kernels.choose(VARIANTS, array) == "reference"


def test_dispatch_picks_chunks_for_small_numpy_arrays_and_numba_once_wanted(monkeypatch):
    small, large = np.zeros(10, dtype=np.float32), np.zeros(compiled.MIN_SIZE, dtype=np.float32)
    monkeypatch.setattr(compiled, "available", True)
    monkeypatch.setattr(compiled, "_loaded", False)
    assert kernels.choose(VARIANTS, small, small.copy()) == "chunked"
    assert kernels.choose(VARIANTS, large, large.copy()) == "fused"
    monkeypatch.setattr(compiled, "_loaded", True)
    assert kernels.choose(VARIANTS, small, small.copy()) == "fused"
    monkeypatch.setattr(compiled, "available", False)
    assert kernels.choose(VARIANTS, large, large.copy()) == "chunked"
    monkeypatch.setattr(compiled, "available", True)
    with compiled.disabled():
        assert kernels.choose(VARIANTS, large, large.copy()) == "reference"


@pytest.mark.parametrize("library", ["array_api_strict", "torch"])
def test_dispatch_keeps_the_reference_for_other_libraries_even_once_numba_is_loaded(monkeypatch, library):
    xp = pytest.importorskip(library)
    monkeypatch.setattr(compiled, "available", True)
    monkeypatch.setattr(compiled, "_loaded", True)
    param, grad = (xp.asarray(np.full(compiled.MIN_SIZE, value, dtype=np.float32)) for value in (0.0, 1.0))
    assert kernels.choose(VARIANTS, param, grad) == "reference"


def test_training_with_and_without_the_fast_path_gives_identical_models():
    x_train, y_train, x_test, y_test = xpnet.load_digits()

    def train():
        model = xpnet.Model(hidden=[32], optimizer="adam", lr=3e-3, epochs=2, batch_size=64, device="cpu")
        model.fit(x_train[:600], y_train[:600])
        return model

    fast = train()
    with compiled.disabled():
        reference = train()
    for a, b in zip(fast.network.parameters(), reference.network.parameters()):
        np.testing.assert_array_equal(a, b)
    assert fast.history[-1]["train_loss"] == reference.history[-1]["train_loss"]
    assert fast.evaluate(x_test, y_test) == reference.evaluate(x_test, y_test)


@pytest.mark.parametrize("name", OPTIMIZERS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_updates_equal_the_reference_bit_for_bit(monkeypatch, name, dtype):
    """The Numba kernels (the ``fast`` extra) apply the reference's operations in its order."""
    pytest.importorskip("numba")
    monkeypatch.setattr(compiled, "_loaded", True)  # every parameter, however small, takes a kernel
    calls = []
    for rule in (sgd, adam):
        monkeypatch.setattr(rule, "_kernel", _counting(rule._kernel, calls))
    fast_params, fast_state = _run_steps(OPTIMIZERS[name], dtype)
    assert calls == [size for shape in SHAPES for size in [int(np.prod(shape))]] * 3
    with compiled.disabled():
        reference_params, reference_state = _run_steps(OPTIMIZERS[name], dtype)
    for fast, reference in zip(fast_params, reference_params, strict=True):
        np.testing.assert_array_equal(fast, reference)
    for buffer in reference_state:
        for fast, reference in zip(fast_state[buffer], reference_state[buffer], strict=True):
            np.testing.assert_array_equal(fast, reference)


def test_numba_is_loaded_only_for_a_large_parameter(monkeypatch):
    monkeypatch.setattr(compiled, "available", True)
    monkeypatch.setattr(compiled, "_loaded", False)
    assert not compiled.wanted(compiled.MIN_SIZE - 1)
    assert compiled.wanted(compiled.MIN_SIZE)
    monkeypatch.setattr(compiled, "_loaded", True)
    assert compiled.wanted(1)
    monkeypatch.setattr(compiled, "available", False)
    assert not compiled.wanted(compiled.MIN_SIZE)


def _counting(function, calls):
    def counted(*args):
        calls.append(args[0].size)
        return function(*args)

    return counted


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_the_reference_returns_new_arrays_and_writes_into_none(name):
    """The array-API reference is a pure function, so it trains libraries whose arrays cannot be
    written (JAX, Dask); the NumPy variants update in place and return the arrays they were given."""
    optimizer = OPTIMIZERS[name]()
    param, grad = _arrays(0, np.float32)[0], _arrays(1, np.float32)[0]
    buffers = [np.full_like(param, 0.5) for _ in optimizer.buffers]
    given = [array.copy() for array in (param, grad, *buffers)]
    step = optim.optimizer.Step(0.1, 3)
    new = optimizer.variants.reference(optimizer.settings, step, param, grad, *buffers)
    assert len(new) == 1 + len(buffers)
    assert all(out is not array for out, array in zip(new, (param, *buffers)))
    for array, before in zip((param, grad, *buffers), given, strict=True):
        np.testing.assert_array_equal(array, before)
    for variant in (optimizer.variants.chunked, optimizer.variants.fused):
        in_place = variant(optimizer.settings, step, param, grad, *buffers)
        assert all(out is array for out, array in zip(in_place, (param, *buffers), strict=True))
        for out, expected in zip(in_place, new, strict=True):
            np.testing.assert_array_equal(out, expected)
        param, buffers = given[0].copy(), [array.copy() for array in given[2:]]
