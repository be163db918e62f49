"""The NumPy fast path (xpnet.fastpath) against the array-API reference it replaces.

The fast updates apply the reference's operations in the same order, so the results must be
identical to the last bit, not merely close.
"""

import numpy as np
import pytest

import xpnet
from xpnet.arrays.backend import numpy_backend
from xpnet.arrays.streams import RandomStream
from xpnet.nn.network import Network
from xpnet.optim import fastpath, optimizers

# Larger than one chunk and not a multiple of it, so the last, partial chunk is exercised too.
SHAPES = [(300, 500), (500,), (7, 3)]

OPTIMIZERS = {
    "sgd": lambda: optimizers.make("sgd"),
    "sgd, weight decay": lambda: optimizers.make("sgd", weight_decay=0.01),
    "momentum": lambda: optimizers.make("momentum"),
    "nesterov, weight decay": lambda: optimizers.make("nesterov", weight_decay=0.01),
    "adam": lambda: optimizers.make("adam"),
    "adam, weight decay": lambda: optimizers.make("adam", weight_decay=0.01),
    "adamw": lambda: optimizers.make("adamw", weight_decay=0.01),
}


def _arrays(seed, dtype):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape).astype(dtype) for shape in SHAPES]


def _run_steps(make_optimizer, dtype, lrs=(0.1, 0.05, 0.02)):
    params = _arrays(0, dtype)
    optimizer = make_optimizer()
    for step, lr in enumerate(lrs):
        optimizer.step(params, _arrays(step + 1, dtype), lr)
    return params, optimizer.state


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_fast_updates_equal_the_reference_bit_for_bit(name, dtype):
    fast_params, fast_state = _run_steps(OPTIMIZERS[name], dtype)
    with fastpath.disabled():
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
    monkeypatch.setattr(fastpath, "adam_update", lambda *args, **kwargs: calls.append(args[0].shape))
    _run_steps(OPTIMIZERS["adam"], np.float32, lrs=(0.1,))
    assert calls == SHAPES
    calls.clear()
    with fastpath.disabled():
        params, _ = _run_steps(OPTIMIZERS["adam"], np.float32, lrs=(0.1,))
    assert calls == []
    assert not np.array_equal(params[0], _arrays(0, np.float32)[0])  # the reference did update


def test_applies_only_to_contiguous_numpy_arrays_of_one_float_dtype():
    array = np.zeros((4, 6), dtype=np.float32)
    assert fastpath.applies(array, np.ones_like(array))
    assert not fastpath.applies(array, array.T)  # not C-contiguous
    assert not fastpath.applies(array, array.astype(np.float64))
    assert not fastpath.applies(np.zeros(3, dtype=np.int64))
    array_api_strict = pytest.importorskip("array_api_strict")
    assert not fastpath.applies(array_api_strict.asarray(array))
    with fastpath.disabled():
        assert not fastpath.applies(array)


def test_training_with_and_without_the_fast_path_gives_identical_models():
    x_train, y_train, x_test, y_test = xpnet.load_digits()

    def train():
        model = xpnet.Model(hidden=[32], optimizer="adam", lr=3e-3, epochs=2, batch_size=64, device="cpu")
        model.fit(x_train[:600], y_train[:600])
        return model

    fast = train()
    with fastpath.disabled():
        reference = train()
    for a, b in zip(fast.network.parameters(), reference.network.parameters()):
        np.testing.assert_array_equal(a, b)
    assert fast.history[-1]["train_loss"] == reference.history[-1]["train_loss"]
    assert fast.evaluate(x_test, y_test) == reference.evaluate(x_test, y_test)


def test_backward_without_input_gradient_fills_the_same_parameter_gradients():
    network = Network.mlp([5, 8, 3], RandomStream(numpy_backend(), 0, 0), dtype=np.float64)
    x = np.random.default_rng(1).standard_normal((6, 5))
    grad_output = np.random.default_rng(2).standard_normal((6, 3))
    network.forward(x, training=True)
    grad_input = network.backward(grad_output)
    full = [np.copy(g) for g in network.gradients()]
    network.forward(x, training=True)
    assert network.backward(grad_output, input_gradient=False) is None
    assert grad_input.shape == x.shape
    for a, b in zip(full, network.gradients()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", OPTIMIZERS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_updates_equal_the_reference_bit_for_bit(monkeypatch, name, dtype):
    """The Numba kernels (the ``fast`` extra) apply the reference's operations in its order."""
    pytest.importorskip("numba")
    from xpnet.optim import fused

    monkeypatch.setattr(fused, "_loaded", True)  # every parameter, however small, takes a kernel
    calls = []
    for factory in ("_sgd_kernel", "_adam_kernel"):
        kernel = getattr(fused, factory)()
        monkeypatch.setattr(fused, factory, lambda kernel=kernel: _counting(kernel, calls))
    fast_params, fast_state = _run_steps(OPTIMIZERS[name], dtype)
    assert calls == [size for shape in SHAPES for size in [int(np.prod(shape))]] * 3
    with fastpath.disabled():
        reference_params, reference_state = _run_steps(OPTIMIZERS[name], dtype)
    for fast, reference in zip(fast_params, reference_params, strict=True):
        np.testing.assert_array_equal(fast, reference)
    for buffer in reference_state:
        for fast, reference in zip(fast_state[buffer], reference_state[buffer], strict=True):
            np.testing.assert_array_equal(fast, reference)


def test_numba_is_loaded_only_for_a_large_parameter(monkeypatch):
    from xpnet.optim import fused

    monkeypatch.setattr(fused, "available", True)
    monkeypatch.setattr(fused, "_loaded", False)
    assert not fused.wanted(fused.MIN_SIZE - 1)
    assert fused.wanted(fused.MIN_SIZE)
    monkeypatch.setattr(fused, "_loaded", True)
    assert fused.wanted(1)
    monkeypatch.setattr(fused, "available", False)
    assert not fused.wanted(fused.MIN_SIZE)


def _counting(function, calls):
    def counted(*args):
        calls.append(args[0].size)
        return function(*args)

    return counted
