"""scikit-learn's L2 penalty on Dense weights: its value and its gradient against PyTorch autograd."""

from __future__ import annotations

import numpy as np
from conftest import assert_array, float64, import_torch, on

from xpnet.nn.layers import Activation, Dense, weight_penalty
from xpnet.nn.losses import LOSSES
from xpnet.nn.network import Network

torch = import_torch()


def test_penalty_adds_alpha_weight_over_rows_to_weight_gradients_only(backend):
    """Loss ``half squared error + alpha / (2 * rows) * sum of squared weights``: the network's
    gradients and ``weight_penalty`` equal PyTorch's, and the biases get no penalty."""
    float64(backend)
    rng = np.random.default_rng(0)
    alpha, rows = 0.3, 5
    weights = [rng.normal(size=(4, 3)), rng.normal(size=(3, 2))]
    biases = [rng.normal(size=3), rng.normal(size=2)]
    x, y = rng.normal(size=(rows, 4)), rng.normal(size=(rows, 2))
    first, second = (Dense(on(backend, w), on(backend, b), l2=alpha) for w, b in zip(weights, biases))
    network = Network([first, Activation("tanh"), second])
    loss = LOSSES["squared_error"]
    outputs = network.forward(on(backend, x))
    value, gradient = loss(outputs, on(backend, y))
    network.backward(gradient)
    total = value + weight_penalty(network.layers) / rows

    tensors = [torch.tensor(array, requires_grad=True) for array in (*weights, *biases)]
    w1, w2, b1, b2 = tensors
    hidden = torch.tanh(torch.tensor(x) @ w1 + b1)
    expected = torch.nn.functional.mse_loss(hidden @ w2 + b2, torch.tensor(y)) / 2
    expected = expected + alpha / (2 * rows) * (w1.square().sum() + w2.square().sum())
    expected.backward()
    assert_array(total, expected.detach().numpy(), backend, dtype=backend.xp.float64, rtol=1e-12)
    gradients = network.gradients()
    for actual, tensor in zip([gradients[0], gradients[2], gradients[1], gradients[3]], tensors):
        assert_array(actual, tensor.grad.numpy(), backend, dtype=backend.xp.float64, rtol=1e-10, atol=1e-14)


def test_a_penalised_layer_keeps_its_l2_in_its_saved_settings_and_others_save_none(backend):
    rng = np.random.default_rng(1)
    weight, bias = on(backend, rng.normal(size=(2, 2))), on(backend, rng.normal(size=2))
    assert Dense(weight, bias, l2=0.5).config() == {"type": "Dense", "l2": 0.5}
    assert Dense(weight, bias).config() == {"type": "Dense"}
    assert weight_penalty([Dense(weight, bias)]) == 0.0
