"""A custom layer: subclass ``xpnet.Layer``, keep parameters in ``params`` and their gradients in
``grads`` under the same names, and prove the backward pass with ``xpnet.gradcheck``.

The layer is PReLU, a ReLU whose negative slope is learned per feature.
"""

import os

from array_api_compat import array_namespace

import xpnet
from xpnet import optim
from xpnet.arrays import streams
from xpnet.nn import losses
from xpnet.train import loop

EPOCHS = 2 if os.environ.get("XPNET_EXAMPLE_QUICK") else 30  # XPNET_EXAMPLE_QUICK=1: a smoke test


class PReLU(xpnet.Layer):
    """``x`` where positive, ``slope * x`` elsewhere, with one learned slope per feature."""

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
x_train, y_train, x_test, y_test = (backend.asarray(a) for a in xpnet.load_digits())

# 1. Prove the backward pass: every gradient against central finite differences, in float64.
errors = xpnet.gradcheck(digits_network(PReLU, backend), x_train[:16], y_train[:16])
print(f"PReLU passes gradcheck: largest relative error {max(errors.values()):.1e}")
try:
    xpnet.gradcheck(digits_network(PReLUWithABug, backend), x_train[:16], y_train[:16])
except xpnet.GradientMismatch as mismatch:
    print(f"the buggy PReLU is caught: {mismatch}")

# 2. Train with it, using the same inner loop as xpnet.Model.
network = digits_network(PReLU, backend)
optimizer = optim.make("adam")
for epoch in range(EPOCHS):
    order = streams.RandomStream(backend, 0, streams.SHUFFLE, epoch).permutation(x_train.shape[0])
    dropout_rng = streams.RandomStream(backend, 0, streams.DROPOUT, epoch)
    loop.train_epoch(
        network, optimizer, losses.softmax_cross_entropy, x_train, y_train,
        lr=1e-3, batch_size=32, order=order, dropout_rng=dropout_rng, classify=True,
    )  # fmt: skip
_, correct = loop.evaluate(network, losses.softmax_cross_entropy, x_test, y_test, classify=True)
slopes, xp = network.layers[1].params["slope"], backend.xp
print(f"test accuracy {100 * int(correct) / y_test.shape[0]:.2f}% after {EPOCHS} epochs")
print(f"learned negative slopes range from {float(xp.min(slopes)):.2f} to {float(xp.max(slopes)):.2f}")
