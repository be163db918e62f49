"""``xpnet.gradcheck`` itself, on every backend: it passes a correct custom layer, names the parameter of
each classic hand-written backprop mistake (the wrong-axes bugs of the posts behind xpnet), and leaves
the network and the inputs it checks untouched."""

from __future__ import annotations

import numpy as np
import pytest
from array_api_compat import array_namespace
from conftest import float64, on, writable

from xpnet import Activation, Dense, GradientMismatch, Layer, Network, XpnetError, gradcheck
from xpnet.arrays.backend import numpy_backend, to_numpy

N_SAMPLES = N_UNITS = 5  # square weights and as many samples as units: wrong axes keep the right shapes


class Scale(Layer):
    """A user's layer: multiplies each feature by a learnable factor."""

    def __init__(self, factors):
        super().__init__()
        self.params = {"factors": factors}

    def forward(self, x, *, training=False, rng=None):
        self._input = x
        return x * self.params["factors"]

    def backward(self, grad_output):
        xp = array_namespace(grad_output)
        self.grads["factors"] = xp.sum(self._input * grad_output, axis=0)
        return grad_output * self.params["factors"]


class TransposedWeightGradient(Dense):
    """``dW = (x.T @ dY).T``: the right shape only because the weights are square."""

    def backward(self, grad_output):
        grad_input = super().backward(grad_output)
        self.grads["weight"] = self.grads["weight"].T
        return grad_input


class BiasSummedOverUnits(Dense):
    """``db = sum(dY, axis=1)``: sums over the units instead of over the samples."""

    def backward(self, grad_output):
        grad_input = super().backward(grad_output)
        self.grads["bias"] = array_namespace(grad_output).sum(grad_output, axis=1)
        return grad_input


class InputGradientWithoutTranspose(Dense):
    """``dX = dY @ W`` instead of ``dY @ W.T``."""

    def backward(self, grad_output):
        super().backward(grad_output)
        return grad_output @ self.params["weight"]


def problem(backend, first_layer=Dense, seed: int = 0):
    rng = np.random.default_rng(seed)

    def dense(kind):
        return kind(
            on(backend, rng.normal(size=(N_UNITS, N_UNITS)), float64(backend)),
            on(backend, rng.normal(size=N_UNITS), float64(backend)),
        )

    network = Network(
        [
            dense(Dense),
            Activation("tanh"),
            dense(first_layer),
            Scale(on(backend, rng.uniform(0.5, 1.5, size=N_UNITS), float64(backend))),
            Activation("sigmoid"),
            dense(Dense),
        ]
    )
    x = on(backend, rng.normal(size=(N_SAMPLES, N_UNITS)), float64(backend))
    labels = on(backend, rng.integers(0, N_UNITS, size=N_SAMPLES))
    return network, x, labels


def test_a_correct_custom_layer_passes_and_every_parameter_is_checked(backend):
    network, x, labels = problem(backend)
    errors = gradcheck(network, x, labels, max_entries=N_UNITS * N_UNITS)
    assert set(errors) == {f"{i}.{name}" for i in (0, 2, 5) for name in ("weight", "bias")} | {"3.factors", "input"}
    assert max(errors.values()) <= 1e-6


@pytest.mark.parametrize(
    ("mistake", "blamed"),
    [
        (TransposedWeightGradient, "2.weight"),
        (BiasSummedOverUnits, "2.bias"),
        (InputGradientWithoutTranspose, "0.weight"),  # the first layer receives the wrong gradient
    ],
)
def test_each_wrong_axes_mistake_is_caught_and_its_parameter_named(backend, mistake, blamed):
    network, x, labels = problem(backend, mistake)
    with pytest.raises(GradientMismatch, match=rf"gradient of {blamed} differs from finite differences by"):
        gradcheck(network, x, labels, max_entries=N_UNITS * N_UNITS)


def test_mse_and_one_hot_targets_are_checked_too(backend):
    network, x, labels = problem(backend, seed=1)
    one_hot = on(backend, np.eye(N_UNITS)[to_numpy(labels)], backend.xp.float32)
    assert max(gradcheck(network, x, one_hot).values()) <= 1e-6
    targets = on(backend, np.random.default_rng(2).normal(size=(N_SAMPLES, N_UNITS)), backend.xp.float32)
    assert max(gradcheck(network, x, targets, loss="mse").values()) <= 1e-6


def test_the_checked_network_and_inputs_are_left_untouched(backend):
    network, x, labels = problem(backend, seed=3)
    parameters, inputs = [to_numpy(p).copy() for p in network.parameters()], to_numpy(x).copy()
    gradcheck(network, x, labels)
    for after, before in zip(network.parameters(), parameters):
        np.testing.assert_array_equal(to_numpy(after), before)
    np.testing.assert_array_equal(to_numpy(x), inputs)


def test_a_network_packed_for_training_is_checked_in_float64_and_left_untouched(backend):
    writable(backend)
    network, x, labels = problem(backend, seed=4)
    network.trained_parameters()  # parameters and gradient buffers packed, as training leaves them
    buffers = [to_numpy(g).copy() for g in network.trained_gradients()]
    assert max(gradcheck(network, x, labels).values()) <= 1e-6
    for after, before in zip(network.trained_gradients(), buffers, strict=True):
        np.testing.assert_array_equal(to_numpy(after), before)


class CountingScale(Scale):
    """Scale that counts its forward passes (in a list, which gradcheck's copy of the layer shares)."""

    def __init__(self, factors, calls: list):
        super().__init__(factors)
        self.calls = calls

    def forward(self, x, *, training=False, rng=None):
        self.calls.append(1)
        return super().forward(x, training=training, rng=rng)


@pytest.mark.parametrize(("n_features", "max_entries"), [(100, 64), (10, 64), (300, 7)])
def test_at_most_max_entries_of_each_array_are_perturbed(n_features, max_entries):
    rng = np.random.default_rng(4)
    calls = []
    network = Network([CountingScale(rng.uniform(0.5, 1.5, size=n_features), calls)])
    x, labels = rng.normal(size=(3, n_features)), rng.integers(0, n_features, size=3)
    gradcheck(network, x, labels, max_entries=max_entries)
    perturbed = (len(calls) - 1) // 2  # one forward pass for the gradients, then two per perturbed entry
    expected = sum(min(size, max_entries) for size in (n_features, 3 * n_features))  # the factors, the inputs
    assert expected / 2 < perturbed <= expected


@pytest.mark.parametrize(("options", "shown"), [({"max_entries": 0}, "0 and 1e-06"), ({"eps": 0.0}, "64 and 0.0")])
def test_settings_that_check_nothing_are_refused(options, shown):
    network, x, labels = problem(numpy_backend())
    with pytest.raises(XpnetError, match=rf"gradcheck needs max_entries >= 1 and eps > 0, got {shown}"):
        gradcheck(network, x, labels, **options)


class HalfWrongScale(Scale):
    """A layer whose backward pass forgets the gradient of the second half of its factors."""

    def backward(self, grad_output):
        grad_input = super().backward(grad_output)
        half = self.grads["factors"].shape[0] // 2
        self.grads["factors"][half:] = 0.0
        return grad_input


def test_the_perturbed_entries_are_spread_over_the_array_so_a_wrong_far_end_is_caught():
    """Four of 64 factors are checked: evenly spread ones reach the wrong second half, the first four would not."""
    rng = np.random.default_rng(5)
    network = Network([HalfWrongScale(rng.uniform(0.5, 1.5, size=64))])
    x, labels = rng.normal(size=(3, 64)), rng.integers(0, 64, size=3)
    with pytest.raises(GradientMismatch, match=r"gradient of 0\.factors differs from finite differences"):
        gradcheck(network, x, labels, max_entries=4)
