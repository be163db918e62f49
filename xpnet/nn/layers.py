"""Layers with hand-written backward passes.

A layer's ``forward`` keeps what its ``backward`` needs; ``backward`` takes the gradient of the loss
with respect to the layer's output and returns the gradient with respect to its input, storing the
gradients of its parameters in ``self.grads`` under the same names as ``self.params``. Arrays are
laid out samples-first: ``x`` is ``(batch, features)``, so every gradient has its parameter's shape.
A network that keeps its gradients in one flat buffer puts each one's view in ``gradient_buffers``; a
layer may write its gradients there (``Dense`` does, without a copy), or store new arrays in ``grads``,
which the network then copies in.

Layer types are known by name (``register_layer``): a model file names each layer's type and settings,
and only registered types are ever built from one, with nothing imported or executed from the file.
"""

from __future__ import annotations

from xpnet import validation
from xpnet.arrays import extensions
from xpnet.arrays.backend import array_namespace
from xpnet.arrays.streams import RandomStream
from xpnet.errors import SettingError, StateError, XpnetError
from xpnet.nn import activations, passes
from xpnet.nn.initializers import initial_weights


class Layer:
    """Base class: a layer without parameters that passes its input through unchanged.

    A subclass names its parameters in ``PARAMETERS`` and takes them, and the settings ``settings()``
    returns, as keyword arguments of its constructor: that is how a saved layer is rebuilt.

    Attributes:
        PARAMETERS: The names of the parameter arrays, the keys of ``params`` and ``grads``.
        params: The parameter arrays by name.
        grads: Their gradients by name, filled by ``backward``.
    """

    PARAMETERS: tuple[str, ...] = ()

    def __init__(self):
        self.params: dict[str, object] = {}
        self.grads: dict[str, object] = {}
        self.gradient_buffers: dict[str, object] = {}

    def forward(self, x, *, training: bool = False, rng: RandomStream | None = None):
        """The layer's output, keeping what ``backward`` needs.

        Args:
            x: The batch's inputs, ``(rows, features)``.
            training: True while training (dropout drops then), False to predict.
            rng: The random stream of this step, for layers that draw (dropout).

        Returns:
            The outputs, ``(rows, output features)``.
        """
        return x

    def backward(self, grad_output):
        """Fill ``grads`` (one array per name in ``PARAMETERS``) and return the input gradient.

        Args:
            grad_output: The gradient of the loss with respect to the last ``forward``'s outputs.

        Returns:
            The gradient of the loss with respect to the last ``forward``'s inputs: a new array, or the
            one given, never one the layer keeps, since the layer before may write over it (a Dense
            layer and its activation do, ``xpnet.nn.fused``).
        """
        return grad_output

    def parameter_backward(self, grad_output) -> None:
        """Fill ``self.grads`` without returning the input gradient (training never uses the first
        layer's, and for a Dense layer it costs a matrix multiply)."""
        self.backward(grad_output)

    def settings(self) -> dict:
        """The constructor's arguments besides the parameters, as JSON values (saved with the model)."""
        return {}

    def config(self) -> dict:
        """The layer's registered type name and its settings: what a model file records of it."""
        return {"type": type(self).__name__, **self.settings()}

    @classmethod
    def from_config(cls, settings: dict, parameters: dict) -> Layer:
        """The layer rebuilt from its ``settings()`` and its parameter arrays."""
        return cls(**settings, **parameters)


# Layer types by name, for rebuilding saved networks: xpnet's own, and any a user registers.
LAYER_TYPES: dict[str, type[Layer]] = {}


def register_layer(layer_type: type[Layer]) -> type[Layer]:
    """Make ``layer_type`` known by its class name, so models holding it can be saved and loaded.

    Use it as a class decorator: ``@xpnet.register_layer``.

    Args:
        layer_type: A subclass of ``Layer``.

    Returns:
        ``layer_type`` itself.

    Raises:
        SettingError: ``layer_type`` is not a ``Layer`` subclass, or another class holds its name already.
    """
    if not (isinstance(layer_type, type) and issubclass(layer_type, Layer)):
        raise SettingError(f"register_layer takes a subclass of xpnet.Layer, got {layer_type!r}")
    name = layer_type.__name__
    known = LAYER_TYPES.get(name)
    if known is not None and _qualified(known) != _qualified(layer_type):
        raise SettingError(
            f"a layer type named {name!r} is registered already ({_qualified(known)}); rename {_qualified(layer_type)}"
        )
    LAYER_TYPES[name] = layer_type
    return layer_type


def registered_layer(name) -> type[Layer]:
    """The layer type registered as ``name``; an unknown name is refused by name."""
    layer_type = LAYER_TYPES.get(name) if isinstance(name, str) else None
    if layer_type is None:
        raise StateError(
            f"unknown layer type {name!r}: xpnet knows {', '.join(sorted(LAYER_TYPES))}; a layer of your own "
            "must be registered with xpnet.register_layer before a model holding it is loaded"
        )
    return layer_type


def _qualified(layer_type: type) -> str:
    return f"{layer_type.__module__}.{layer_type.__qualname__}"


@register_layer
class Dense(Layer):
    """Affine map ``x @ weight + bias`` with ``weight`` of shape ``(n_inputs, n_outputs)``.

    ``l2`` adds scikit-learn's penalty ``l2 / 2 * sum(weight**2)`` per batch, divided by the batch's rows
    like the mean loss: its gradient ``l2 * weight / rows`` joins the weight's (never the bias's) in
    ``backward``, and ``penalty`` gives its value, which the loss of the outputs cannot see.

    Args:
        weight: ``(n_inputs, n_outputs)``.
        bias: ``(n_outputs,)``.
        l2: The L2 penalty's factor (0: none).

    Raises:
        XpnetError: The shapes do not match or are empty.
        SettingError: ``l2`` is negative.
    """

    PARAMETERS = ("weight", "bias")

    def __init__(self, weight, bias, l2: float = 0.0):
        super().__init__()
        self.l2 = validation.non_negative("l2", l2)
        if weight.ndim != 2 or 0 in weight.shape or tuple(bias.shape) != (weight.shape[1],):
            raise XpnetError(
                "Dense needs weight (n_inputs, n_outputs) and bias (n_outputs,), both non-empty, got weight "
                f"{tuple(weight.shape)} and bias {tuple(bias.shape)}"
            )
        self.params = {"weight": weight, "bias": bias}

    @classmethod
    def initialized(cls, n_inputs: int, n_outputs: int, init: str, dtype, rng: RandomStream):
        """A layer with weights drawn as xpnet's own networks draw them, and zero biases.

        Args:
            n_inputs: Input features.
            n_outputs: Output features.
            init: ``he_normal``, ``he_uniform``, ``glorot_normal`` or ``glorot_uniform``.
            dtype: The floating dtype, of the stream's namespace.
            rng: The random stream to draw from, on its backend's device
                (``xpnet.arrays.streams.RandomStream(backend, seed, streams.INIT)``).

        Returns:
            The layer, on the stream's device.
        """
        xp = rng.backend.xp
        # On the backend's device: CuPy computes and creates on the current GPU (array-api-compat drops
        # zeros' device= for CuPy), which need not be the backend's.
        with rng.backend.active():
            weight = initial_weights(init, n_inputs, n_outputs, dtype, rng)
            bias = xp.zeros((n_outputs,), dtype=dtype, device=rng.backend.device)
        return cls(weight, bias)

    def forward(self, x, *, training=False, rng=None):
        outputs = self.product(x)
        outputs += self.params["bias"]  # in place on the fresh product: one pass, no second array
        return outputs

    def product(self, x):
        """``x @ weight``, the forward pass without the bias, keeping ``x`` for the backward pass."""
        self._input = x
        return x @ self.params["weight"]

    def backward(self, grad_output):
        self.parameter_backward(grad_output)
        return self.input_gradient(grad_output)

    def input_gradient(self, grad_output):
        """``grad_output @ weight.T``: the gradient with respect to the layer's input."""
        return grad_output @ self.params["weight"].T

    def parameter_backward(self, grad_output):
        self.weight_backward(grad_output)
        self.grads["bias"] = passes.bias_gradient(grad_output, out=self.gradient_buffers.get("bias"))

    def weight_backward(self, grad_output) -> None:
        """Fill ``grads["weight"]``, the L2 penalty's share included (``parameter_backward`` without the bias)."""
        self.grads["weight"] = extensions.matmul(self._input.T, grad_output, out=self.gradient_buffers.get("weight"))
        if self.l2:
            self.grads["weight"] += (self.l2 / self._input.shape[0]) * self.params["weight"]

    def penalty(self):
        """``l2 / 2 * sum(weight**2)``, as a device scalar: the L2 term of one batch times its rows."""
        weight = self.params["weight"]
        xp = array_namespace(weight)
        return (0.5 * self.l2) * xp.sum(weight * weight)

    def settings(self):
        return {"l2": self.l2} if self.l2 else {}


@register_layer
class Activation(Layer):
    """An element-wise nonlinearity.

    Args:
        name: ``relu``, ``leaky_relu`` (slope 0.01), ``tanh``, ``sigmoid``, ``gelu`` (tanh approximation)
            or ``identity``.

    Raises:
        SettingError: An unknown name.
    """

    def __init__(self, name: str):
        super().__init__()
        self.name = name
        self._function, _ = activations.get(name)
        self._backward = activations.backward(name)

    def forward(self, x, *, training=False, rng=None):
        self.keep(x, self._function(x))
        return self._output

    def keep(self, x, outputs) -> None:
        """Keep the input ``x`` and the ``outputs`` it gave for ``backward``: what ``forward`` keeps, for
        a pass that computed them itself (``xpnet.nn.fused``)."""
        self._input, self._output = x, outputs

    @property
    def outputs(self):
        """The outputs of the last ``forward``."""
        return self._output

    def backward(self, grad_output):
        return self._backward(grad_output, self._input, self._output)

    def settings(self):
        return {"name": self.name}


@register_layer
class Dropout(Layer):
    """Inverted dropout: zeroes a fraction ``rate`` of units in training and rescales the rest.

    Args:
        rate: The fraction dropped, in [0, 1).

    Raises:
        SettingError: ``rate`` is not a fraction below 1.
    """

    def __init__(self, rate: float):
        super().__init__()
        self.rate = validation.fraction("dropout", rate)

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

    def settings(self):
        return {"rate": self.rate}


def weight_penalty(layers: list[Layer]):
    """The L2 penalty (``Dense.penalty``) summed over the layers that have one; 0.0 when none does."""
    return sum((layer.penalty() for layer in layers if isinstance(layer, Dense) and layer.l2), 0.0)
