"""The models the exporters (ONNX, PyTorch) are tested on: digits classifiers for each activation and dtype,
and a model holding a layer of the user's own, which the exporters cannot express and must refuse by name."""

from __future__ import annotations

import functools

import numpy as np

import xpnet
from xpnet.arrays import streams
from xpnet.nn.layers import LAYER_TYPES


@functools.cache
def digits_model(activation: str, dtype: str, dropout: float = 0.0) -> xpnet.Model:
    """A 64-32-16-10 classifier trained on the CPU for two epochs, made once per set of arguments (tests
    only read it)."""
    x, y, _, _ = xpnet.load_digits()
    settings = {"activation": activation, "dtype": dtype, "dropout": dropout}
    model = xpnet.Model(hidden=[32, 16], epochs=2, batch_size=64, device="cpu", **settings)
    model.fit(x, y)
    return model


class Halve(xpnet.Layer):
    """Multiplies its input by one half: a forward pass only the user's own code knows."""

    def forward(self, x, *, training=False, rng=None):
        return 0.5 * x

    def backward(self, grad_output):
        return 0.5 * grad_output


def model_with_own_layer(monkeypatch) -> xpnet.Model:
    """A digits classifier whose layer 1 is a ``Halve``, registered until the test ends."""
    monkeypatch.setitem(LAYER_TYPES, "Halve", Halve)
    rng = streams.RandomStream(xpnet.select("cpu"), 0, streams.INIT)
    network = xpnet.Network(
        [
            xpnet.Dense.initialized(64, 16, "he_normal", np.float32, rng),
            Halve(),
            xpnet.Dense.initialized(16, 10, "glorot_uniform", np.float32, rng),
        ]
    )
    x, y, _, _ = xpnet.load_digits()
    model = xpnet.Model(network=network, epochs=1, batch_size=256, device="cpu")
    model.fit(x, y)
    return model
