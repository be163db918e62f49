"""A feed-forward network: an ordered list of layers with one forward and one backward pass."""

from __future__ import annotations

import itertools

from xpnet.arrays.backend import array_namespace
from xpnet.arrays.streams import RandomStream
from xpnet.errors import XpnetError
from xpnet.nn.layers import Activation, Dense, Dropout, Layer

# Activations whose scale suits He initialisation; the rest (tanh, sigmoid) get Glorot.
_RELU_LIKE = ("relu", "leaky_relu", "gelu")


def resolved_init(init: str, activation: str) -> str:
    """The initialiser ``init="auto"`` stands for with ``activation``; any other name as it is."""
    if init != "auto":
        return init
    return "he_normal" if activation in _RELU_LIKE else "glorot_uniform"


class Network:
    """Layers applied in order. Parameters and gradients are exposed as flat lists, in a fixed
    order, for optimizers and for saving."""

    def __init__(self, layers: list[Layer]):
        self.layers = list(layers)

    @classmethod
    def mlp(
        cls,
        sizes: list[int],
        rng: RandomStream,
        *,
        activation: str = "relu",
        init: str = "auto",
        dropout: float = 0.0,
        dtype=None,
    ) -> Network:
        """A multi-layer perceptron ``sizes[0] -> ... -> sizes[-1]`` with ``activation`` and optional
        dropout after each hidden layer and a linear output layer."""
        if len(sizes) < 2 or any(int(size) < 1 for size in sizes):
            raise XpnetError(f"layer sizes must be positive integers, got {list(sizes)}")
        init = resolved_init(init, activation)
        dtype = rng.backend.xp.float32 if dtype is None else dtype
        layers: list[Layer] = []
        for index, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
            layers.append(Dense.initialized(n_in, n_out, init, dtype, rng))
            if index < len(sizes) - 2:
                layers.append(Activation(activation))
                if dropout:
                    layers.append(Dropout(dropout))
        return cls(layers)

    def forward(self, x, *, training: bool = False, rng: RandomStream | None = None):
        for layer in self.layers:
            x = layer.forward(x, training=training, rng=rng)
        return x

    def backward(self, grad_output, *, input_gradient: bool = True):
        """Backpropagate ``d loss / d output``; fills every layer's ``grads`` and returns d loss / d x,
        or None with ``input_gradient=False`` (training needs only the parameters' gradients)."""
        first, *rest = self.layers
        for layer in reversed(rest):
            grad_output = layer.backward(grad_output)
        if input_gradient:
            return first.backward(grad_output)
        first.parameter_backward(grad_output)
        return None

    def parameters(self) -> list:
        return [layer.params[name] for layer in self.layers for name in layer.params]

    def gradients(self) -> list:
        return [layer.grads[name] for layer in self.layers for name in layer.params]

    def parameter_names(self) -> list[str]:
        return [f"{index}.{name}" for index, layer in enumerate(self.layers) for name in layer.params]

    def set_parameters(self, arrays: list) -> None:
        """Replace every parameter (same order as ``parameters()``), checking shapes."""
        arrays = list(arrays)
        current = self.parameters()
        if len(arrays) != len(current):
            raise XpnetError(f"expected {len(current)} parameter arrays, got {len(arrays)}")
        iterator = iter(arrays)
        for layer in self.layers:
            for name, old in layer.params.items():
                new = next(iterator)
                if tuple(new.shape) != tuple(old.shape):
                    raise XpnetError(f"parameter {name} has shape {tuple(new.shape)}, expected {tuple(old.shape)}")
                layer.params[name] = new

    def copy_parameters(self) -> list:
        """Independent copies of the parameters (the optimizer updates the originals in place)."""
        return [array_namespace(p).asarray(p, copy=True) for p in self.parameters()]

    @property
    def n_inputs(self) -> int:
        return self._dense_layers()[0].params["weight"].shape[0]

    @property
    def n_outputs(self) -> int:
        return self._dense_layers()[-1].params["weight"].shape[1]

    def _dense_layers(self) -> list[Dense]:
        return [layer for layer in self.layers if isinstance(layer, Dense)]
