"""Hand-written backward passes, checked two independent ways on every backend: against central finite
differences (``xpnet.gradcheck``, float64) and against PyTorch autograd on the same weights."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_array, float64, import_torch, on, torch_activations

from xpnet import Activation, Dense, Dropout, GradientMismatch, Layer, Network, gradcheck
from xpnet.arrays.backend import numpy_backend
from xpnet.arrays.backend import to_numpy as to_host
from xpnet.arrays.streams import RandomStream
from xpnet.nn import losses
from xpnet.nn.activations import ACTIVATIONS

torch = import_torch()
TORCH_ACTIVATIONS = torch_activations()

ACTIVATION_NAMES = sorted(ACTIVATIONS)
N_SAMPLES, N_INPUTS, N_HIDDEN, N_OUTPUTS = 6, 4, 5, 3


def host_problem(seed: int = 0) -> dict[str, np.ndarray]:
    """Weights, inputs and targets of a 4-5-3 network, in float64 on the host."""
    rng = np.random.default_rng(seed)
    return {
        "w1": rng.normal(size=(N_INPUTS, N_HIDDEN)),
        "b1": rng.normal(size=N_HIDDEN) * 0.5,
        "w2": rng.normal(size=(N_HIDDEN, N_OUTPUTS)),
        "b2": rng.normal(size=N_OUTPUTS) * 0.5,
        "x": rng.normal(size=(N_SAMPLES, N_INPUTS)),
        "labels": rng.integers(0, N_OUTPUTS, size=N_SAMPLES),
        "targets": rng.normal(size=(N_SAMPLES, N_OUTPUTS)),
    }


def xpnet_network(backend, problem, activation: str, dtype, *, dropout: float = 0.0) -> Network:
    layers = [
        Dense(on(backend, problem["w1"], dtype), on(backend, problem["b1"], dtype)),
        Activation(activation),
    ]
    if dropout:
        layers.append(Dropout(dropout))
    layers.append(Dense(on(backend, problem["w2"], dtype), on(backend, problem["b2"], dtype)))
    return Network(layers)


def torch_gradients(problem, activation: str, loss: str, dtype) -> dict[str, np.ndarray]:
    """The loss gradients of the same network, by PyTorch autograd."""
    tensors = {
        name: torch.tensor(problem[name], dtype=dtype, requires_grad=True) for name in ("w1", "b1", "w2", "b2", "x")
    }
    hidden = TORCH_ACTIVATIONS[activation](tensors["x"] @ tensors["w1"] + tensors["b1"])
    outputs = hidden @ tensors["w2"] + tensors["b2"]
    if loss == "cross_entropy":
        value = torch.nn.functional.cross_entropy(outputs, torch.tensor(problem["labels"]))
    else:
        value = torch.nn.functional.mse_loss(outputs, torch.tensor(problem["targets"], dtype=dtype))
    value.backward()
    gradients = {name: tensor.grad.numpy() for name, tensor in tensors.items()}
    gradients["loss"] = value.detach().numpy()
    return gradients


@pytest.mark.parametrize("activation", ACTIVATION_NAMES)
def test_backward_matches_finite_differences(backend, activation):
    problem = host_problem()
    network = xpnet_network(backend, problem, activation, float64(backend))
    errors = gradcheck(network, on(backend, problem["x"]), on(backend, problem["labels"]), tolerance=1e-6)
    assert set(errors) == {"0.weight", "0.bias", "2.weight", "2.bias", "input"}
    assert max(errors.values()) <= 1e-6


@pytest.mark.parametrize("activation", ["tanh", "sigmoid"])
def test_mse_backward_matches_finite_differences(backend, activation):
    problem = host_problem(1)
    network = xpnet_network(backend, problem, activation, float64(backend))
    errors = gradcheck(network, on(backend, problem["x"]), on(backend, problem["targets"]), loss="mse")
    assert max(errors.values()) <= 1e-6


def test_gradcheck_of_a_network_with_dropout_checks_the_evaluation_pass(backend):
    float64(backend)
    problem = host_problem(2)
    network = xpnet_network(backend, problem, "relu", backend.xp.float32, dropout=0.5)
    errors = gradcheck(network, on(backend, problem["x"]), on(backend, problem["labels"]))
    assert max(errors.values()) <= 1e-6
    assert network.parameters()[0].dtype == backend.xp.float32  # gradcheck works on a float64 copy


@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
@pytest.mark.parametrize("activation", ACTIVATION_NAMES)
def test_backward_matches_torch_autograd(backend, activation, loss):
    xp = backend.xp
    problem = host_problem(3)
    expected = torch_gradients(problem, activation, loss, torch.float32)
    network = xpnet_network(backend, problem, activation, xp.float32)
    x = on(backend, problem["x"], xp.float32)
    targets = on(backend, problem["labels"]) if loss == "cross_entropy" else on(backend, problem["targets"], xp.float32)
    value, grad_outputs = losses.get(loss)(network.forward(x), targets)
    grad_input = network.backward(grad_outputs)
    tolerance = {"rtol": 1e-4, "atol": 1e-6}
    assert_array(value, expected["loss"], backend, dtype=xp.float32, **tolerance)
    assert_array(grad_input, expected["x"], backend, dtype=xp.float32, **tolerance)
    weights = dict(zip(["w1", "b1", "w2", "b2"], network.gradients()))
    for name, gradient in weights.items():
        assert_array(gradient, expected[name], backend, dtype=xp.float32, **tolerance)


def test_dropout_backward_passes_gradients_through_the_kept_units_only(backend):
    xp = backend.xp
    rate = 0.25
    x = on(backend, np.random.default_rng(4).uniform(1.0, 2.0, size=(200, 10)), xp.float32)
    layer = Dropout(rate)
    outputs = layer.forward(x, training=True, rng=RandomStream(backend, 0, 1))
    mask = outputs / x
    kept = xp.astype(mask > 0, xp.float32)
    assert_array(mask, 1.0 / (1.0 - rate) * to_host(kept), backend, dtype=xp.float32, rtol=1e-6)
    assert 0.2 < 1.0 - float(xp.mean(kept)) < 0.3
    grad_output = on(backend, np.random.default_rng(5).normal(size=(200, 10)), xp.float32)
    assert_array(layer.backward(grad_output), to_host(grad_output * mask), backend, dtype=xp.float32, rtol=1e-6)


def test_dropout_is_the_identity_outside_training(backend):
    x = on(backend, np.random.default_rng(6).normal(size=(5, 3)), backend.xp.float32)
    layer = Dropout(0.5)
    assert_array(layer.forward(x), to_host(x), backend, dtype=backend.xp.float32, rtol=0)
    assert_array(layer.backward(x), to_host(x), backend, dtype=backend.xp.float32, rtol=0)


class WrongTanh(Layer):
    """tanh whose backward forgets the derivative: gradcheck must catch it."""

    def forward(self, x, *, training=False, rng=None):
        return Activation("tanh").forward(x)


def test_gradcheck_catches_a_wrong_backward_pass(backend):
    problem = host_problem(7)
    network = xpnet_network(backend, problem, "identity", float64(backend))
    network.layers[1] = WrongTanh()
    with pytest.raises(GradientMismatch, match="differs from finite differences"):
        gradcheck(network, on(backend, problem["x"]), on(backend, problem["labels"]))


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
