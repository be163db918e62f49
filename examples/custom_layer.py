"""A custom layer: subclass ``xpnet.Layer``, keep parameters in ``params`` and their gradients in
``grads`` under the names listed in ``PARAMETERS``, prove the backward pass with ``xpnet.gradcheck``,
then train it with ``Model.fit`` and save it like any model (``xpnet.register_layer`` makes the type
known by name, so a saved file can be loaded again without running anything from it).

The layer is PReLU, a ReLU whose negative slope is learned per feature.
"""

import os
import tempfile
from pathlib import Path

import numpy as np
from array_api_compat import array_namespace

import xpnet
from xpnet.arrays import streams

EPOCHS = 2 if os.environ.get("XPNET_EXAMPLE_QUICK") else 30  # XPNET_EXAMPLE_QUICK=1: a smoke test


@xpnet.register_layer
class PReLU(xpnet.Layer):
    """``x`` where positive, ``slope * x`` elsewhere, with one learned slope per feature."""

    PARAMETERS = ("slope",)

    def __init__(self, slope):
        super().__init__()
        self.params = {"slope": slope}

    def forward(self, x, *, training=False, rng=None):
        self._input = x
        xp = array_namespace(x)
        return xp.where(x > 0, x, self.params["slope"] * x)

    def backward(self, grad_output):
        xp = array_namespace(grad_output)
        x, zero = self._input, xp.zeros_like(grad_output)
        self.grads["slope"] = xp.sum(xp.where(x > 0, zero, x * grad_output), axis=0)
        return xp.where(x > 0, grad_output, self.params["slope"] * grad_output)


class PReLUWithABug(PReLU):
    """The same layer with a classic slip: the input gradient forgets the slope."""

    def backward(self, grad_output):
        super().backward(grad_output)
        return grad_output


def digits_network(layer_class, backend, seed=0):
    """64 -> 32 -> custom layer -> 10, initialised like xpnet's own networks."""
    rng = streams.RandomStream(backend, seed, streams.INIT)
    xp, dtype = backend.xp, backend.xp.float32
    slope = xp.full((32,), 0.25, dtype=dtype, device=backend.device)
    return xpnet.Network(
        [
            xpnet.Dense.initialized(64, 32, "he_normal", dtype, rng),
            layer_class(slope),
            xpnet.Dense.initialized(32, 10, "glorot_uniform", dtype, rng),
        ]
    )


backend = xpnet.select("cpu")
x_train, y_train, x_test, y_test = xpnet.load_digits()

# 1. Prove the backward pass: every gradient against central finite differences, in float64.
x_check, y_check = backend.asarray(x_train[:16]), backend.asarray(y_train[:16])
errors = xpnet.gradcheck(digits_network(PReLU, backend), x_check, y_check)
print(f"PReLU passes gradcheck: largest relative error {max(errors.values()):.1e}")
try:
    xpnet.gradcheck(digits_network(PReLUWithABug, backend), x_check, y_check)
except xpnet.GradientMismatch as mismatch:
    print(f"the buggy PReLU is caught: {mismatch}")

# 2. Train it like any model: Model.fit runs the same loop, checks and callbacks as the built-in MLP.
model = xpnet.Model(network=digits_network(PReLU, backend), optimizer="adam", lr=1e-3, epochs=EPOCHS)
model.fit(x_train, y_train)
print(f"test accuracy {100 * model.evaluate(x_test, y_test)['accuracy']:.2f}% after {EPOCHS} epochs")
slopes = np.asarray(model.network.layers[1].params["slope"])
print(f"learned negative slopes range from {slopes.min():.2f} to {slopes.max():.2f}")

# 3. Save and load it: the file names the layer type "PReLU", which the registry knows.
with tempfile.TemporaryDirectory() as folder:
    path = Path(folder) / "prelu.npz"
    model.save(path)
    same = xpnet.load(path)
    assert np.array_equal(same.predict_proba(x_test), model.predict_proba(x_test))
    print(f"saved and loaded: {type(same.network.layers[1]).__name__} layer, same predictions")
