"""Layers with hand-written backward passes.

A layer's ``forward`` keeps what its ``backward`` needs; ``backward`` takes the gradient of the loss
with respect to the layer's output and returns the gradient with respect to its input, storing the
gradients of its parameters in ``self.grads`` under the same names as ``self.params``. Arrays are
laid out samples-first: ``x`` is ``(batch, features)``, so every gradient has its parameter's shape.
"""

from __future__ import annotations

from xpnet.arrays.backend import array_namespace
from xpnet.arrays.streams import RandomStream
from xpnet.errors import XpnetError
from xpnet.nn import activations
from xpnet.nn.initializers import initial_weights


class Layer:
    """Base class: a layer without parameters that passes its input through unchanged."""

    def __init__(self):
        self.params: dict[str, object] = {}
        self.grads: dict[str, object] = {}

    def forward(self, x, *, training: bool = False, rng: RandomStream | None = None):
        return x

    def backward(self, grad_output):
        return grad_output

    def parameter_backward(self, grad_output) -> None:
        """Fill ``self.grads`` without returning the input gradient (training never uses the first
        layer's, and for a Dense layer it costs a matrix multiply)."""
        self.backward(grad_output)

    def config(self) -> dict:
        """What is needed, besides the parameters, to rebuild this layer (saved with the model)."""
        return {"type": type(self).__name__}


class Dense(Layer):
    """Affine map ``x @ weight + bias`` with ``weight`` of shape ``(n_inputs, n_outputs)``."""

    def __init__(self, weight, bias):
        super().__init__()
        if weight.ndim != 2 or bias.shape != (weight.shape[1],):
            raise XpnetError(f"Dense needs weight (n_in, n_out) and bias (n_out,), got {weight.shape} and {bias.shape}")
        self.params = {"weight": weight, "bias": bias}

    @classmethod
    def initialized(cls, n_inputs: int, n_outputs: int, init: str, dtype, rng: RandomStream):
        xp = rng.backend.xp
        weight = initial_weights(init, n_inputs, n_outputs, dtype, rng)
        bias = xp.zeros((n_outputs,), dtype=dtype, device=rng.backend.device)
        return cls(weight, bias)

    def forward(self, x, *, training=False, rng=None):
        self._input = x
        outputs = x @ self.params["weight"]
        outputs += self.params["bias"]  # in place on the fresh product: one pass, no second array
        return outputs

    def backward(self, grad_output):
        self.parameter_backward(grad_output)
        return grad_output @ self.params["weight"].T

    def parameter_backward(self, grad_output):
        xp = array_namespace(grad_output)
        self.grads["weight"] = self._input.T @ grad_output
        self.grads["bias"] = xp.sum(grad_output, axis=0)


class Activation(Layer):
    """An element-wise nonlinearity from the ``activations`` table."""

    def __init__(self, name: str):
        super().__init__()
        self.name = name
        self._function, self._derivative = activations.get(name)

    def forward(self, x, *, training=False, rng=None):
        self._input = x
        self._output = self._function(x)
        return self._output

    def backward(self, grad_output):
        return grad_output * self._derivative(self._input, self._output)

    def config(self):
        return {"type": "Activation", "name": self.name}


class Dropout(Layer):
    """Inverted dropout: zeroes a fraction ``rate`` of units in training and rescales the rest."""

    def __init__(self, rate: float):
        super().__init__()
        if not 0.0 <= rate < 1.0:
            raise XpnetError(f"dropout rate must be in [0, 1), got {rate}")
        self.rate = rate

    def forward(self, x, *, training=False, rng=None):
        if not training or self.rate == 0.0:
            self._mask = None
            return x
        if rng is None:
            raise XpnetError("Dropout in training mode needs a random stream (rng=...)")
        xp = array_namespace(x)
        keep = rng.uniform(x.shape, x.dtype) >= self.rate
        self._mask = xp.astype(keep, x.dtype) * (1.0 / (1.0 - self.rate))
        return x * self._mask

    def backward(self, grad_output):
        return grad_output if self._mask is None else grad_output * self._mask

    def config(self):
        return {"type": "Dropout", "rate": self.rate}
