"""A network trains its parameters as views of one flat buffer and their gradients as views of another:
layers write into them or have their gradients copied in, and whatever replaces a parameter is packed
anew before the next epoch."""

from __future__ import annotations

import numpy as np
from conftest import assert_array, on, writable

from xpnet.arrays.backend import array_namespace, to_numpy
from xpnet.arrays.flat import Views
from xpnet.arrays.streams import RandomStream
from xpnet.nn.layers import Activation, Dense
from xpnet.nn.network import Network


class NewArrays(Dense):
    """A Dense layer that stores its gradients as new arrays, as layers of your own do."""

    def parameter_backward(self, grad_output):
        self.grads["weight"] = self._input.T @ grad_output
        self.grads["bias"] = array_namespace(grad_output).sum(grad_output, axis=0)


def network_and_batch(backend):
    rng = np.random.default_rng(0)
    network = Network.mlp([4, 5, 3], RandomStream(backend, 0, 0))
    last = network.layers[-1]
    network.layers[-1] = NewArrays(last.params["weight"], last.params["bias"])
    x = on(backend, rng.standard_normal((6, 4)), backend.xp.float32)
    return network, x, on(backend, rng.standard_normal((6, 3)), backend.xp.float32)


def test_parameters_and_gradients_are_views_of_flat_buffers_with_the_same_values(backend):
    writable(backend)
    network, x, grad_output = network_and_batch(backend)
    before = [to_numpy(p).copy() for p in network.parameters()]
    network.forward(x, training=True)
    network.backward(grad_output)
    expected = [to_numpy(g).copy() for g in network.gradients()]  # before packing: arrays of their own
    params = network.trained_parameters()
    assert isinstance(params, Views) and all(a is b for a, b in zip(params, network.parameters(), strict=True))
    for param, value in zip(params, before, strict=True):
        assert_array(param, value, backend, dtype=backend.xp.float32, rtol=0)
    network.forward(x, training=True)
    network.backward(grad_output, input_gradient=False)
    gradients = network.trained_gradients()
    assert isinstance(gradients, Views)
    for gradient, value in zip(gradients, expected, strict=True):  # written in, or copied in
        assert_array(gradient, value, backend, dtype=backend.xp.float32, rtol=0)
    assert network.trained_parameters() is params  # packed once


def test_a_replaced_parameter_is_packed_anew_and_copies_are_independent(backend):
    writable(backend)
    network, _, _ = network_and_batch(backend)
    params = network.trained_parameters()
    copies = network.copy_parameters()
    params[0][...] = on(backend, np.zeros(tuple(params[0].shape), np.float32))
    assert float(backend.xp.max(backend.xp.abs(copies[0]))) > 0
    network.set_parameters(copies)
    repacked = network.trained_parameters()
    assert repacked is not params and repacked[0] is network.parameters()[0]
    for param, copy in zip(repacked, copies, strict=True):
        assert_array(param, to_numpy(copy), backend, dtype=backend.xp.float32, rtol=0)


def test_a_network_of_mixed_dtypes_trains_its_arrays_one_by_one():
    import array_api_compat.numpy as xp

    network = Network([Dense(xp.ones((2, 3), dtype=xp.float32), xp.zeros(3, dtype=xp.float64)), Activation("relu")])
    params = network.trained_parameters()
    assert not isinstance(params, Views) and params == network.parameters()
