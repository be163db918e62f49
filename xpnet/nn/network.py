"""A feed-forward network: an ordered list of layers with one forward and one backward pass, its
parameters kept for training in one flat buffer, and its state (layer types, settings and parameters)
for saving and rebuilding it."""

from __future__ import annotations

import itertools

from xpnet import validation
from xpnet.arrays.backend import array_namespace
from xpnet.arrays.flat import Flat, Views, copied, gives_writable_views
from xpnet.arrays.streams import RandomStream
from xpnet.errors import SettingError, StateError, XpnetError, one_line
from xpnet.nn import fused
from xpnet.nn.layers import Activation, Dense, Dropout, Layer, registered_layer

# Parameter arrays in a network's state are named PARAMETER_PREFIX + "<layer index>.<name>".
PARAMETER_PREFIX = "param/"
# Activations whose scale suits He initialisation; the rest (tanh, sigmoid) get Glorot.
_RELU_LIKE = ("relu", "leaky_relu", "gelu")


def resolved_init(init: str, activation: str) -> str:
    """The initialiser ``init="auto"`` stands for with ``activation``; any other name as it is."""
    if init != "auto":
        return init
    return "he_normal" if activation in _RELU_LIKE else "glorot_uniform"


class Network:
    """Layers applied in order. Parameters and gradients are exposed as lists, in a fixed order, for
    optimizers and for saving.

    For training, the parameters live in one flat buffer and their gradients in another, each layer's
    arrays being views of them (``trained_parameters``), so that an optimizer updates the whole network
    with a handful of operations. Saving and loading keep one array per parameter.

    Args:
        layers: The layers, first to last (``Dense``, ``Activation``, ``Dropout`` or registered layers of
            your own).

    Raises:
        XpnetError: Consecutive ``Dense`` layers whose shapes do not chain.
    """

    def __init__(self, layers: list[Layer]):
        self.layers = list(layers)
        self._flat: tuple[Views, Views] | None = None  # parameters and gradients, once trained
        self._staged: tuple[tuple, list] | None = None  # the layers, and the stages made of them
        dense = self.dense_layers()
        for before, after in itertools.pairwise(dense):
            n_out, n_in = before.params["weight"].shape[1], after.params["weight"].shape[0]
            if n_out != n_in:
                raise XpnetError(
                    f"consecutive Dense layers have mismatched shapes: {n_out} outputs feed a layer of {n_in} inputs"
                )

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
        """A multi-layer perceptron ``sizes[0] -> ... -> sizes[-1]``, as ``Model`` builds it.

        Args:
            sizes: Input features, hidden widths, outputs.
            rng: The random stream the weights are drawn from, on its backend's device.
            activation: After each hidden layer (see ``Activation``).
            init: The weights' initializer (see ``Dense.initialized``); ``auto``: He for ReLU-like
                activations, Glorot otherwise.
            dropout: Dropout rate after each hidden layer (0: none).
            dtype: The floating dtype; ``None`` for float32.

        Returns:
            The network: ``Dense``, ``Activation`` (and ``Dropout``) per hidden layer, a linear output layer.

        Raises:
            SettingError: Fewer than two sizes, or a size, activation or initializer that is not valid.
        """
        if len(sizes) < 2:
            raise SettingError(f"an MLP needs at least an input and an output size, got {list(sizes)}")
        sizes = [validation.whole("layer size", size, minimum=1) for size in sizes]
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
        """The outputs of every layer in turn (see ``Layer.forward``); the last one's are returned. A
        Dense layer and the ReLU-like activation after it run as one stage (``xpnet.nn.fused``)."""
        for stage in self._stages():
            x = stage.forward(x, training=training, rng=rng)
        return x

    def backward(self, grad_output, *, input_gradient: bool = True):
        """Backpropagate ``d loss / d output``; fills every layer's ``grads`` and returns d loss / d x,
        or None with ``input_gradient=False`` (training needs only the parameters' gradients). The array
        given is left as it is."""
        given = grad_output
        first, *rest = self._stages()
        for stage in reversed(rest):
            grad_output = stage.backward(_own(grad_output, given, stage))
        grad_output = _own(grad_output, given, first)
        if input_gradient:
            grad_output = first.backward(grad_output)
        else:
            first.parameter_backward(grad_output)
            grad_output = None
        if self._flat is not None:
            self._gather_gradients()
        return grad_output

    def _stages(self) -> list:
        """The layers as the passes run them (``fused.stages``), made again whenever the layers change."""
        if self._staged is None or not _same(self._staged[0], self.layers):
            self._staged = tuple(self.layers), fused.stages(self.layers)
        return self._staged[1]

    def parameters(self) -> list:
        """Every parameter array, layer by layer, in the order of ``parameter_names()``."""
        return [layer.params[name] for layer in self.layers for name in layer.params]

    def gradients(self) -> list:
        """The gradient of each of ``parameters()``, after a backward pass."""
        return [layer.grads[name] for layer in self.layers for name in layer.params]

    def trained_parameters(self) -> list:
        """The parameters as training updates them: views of one flat buffer (``Views``), packed now
        unless the layers hold them already, where the library gives writable views and the parameters
        share a dtype; else the parameter arrays. ``trained_gradients()`` matches it."""
        first, *rest = self.parameters()
        if not (gives_writable_views(first) and all(type(p) is type(first) and p.dtype == first.dtype for p in rest)):
            self._unpack()
            return self.parameters()
        if self._current() is None:
            self._unpack()
            parameters = Flat.of(self.parameters()).views()
            self._flat = parameters, parameters.flat.zeros().views()
            for (layer, name), parameter, gradient in zip(self._named(), *self._flat):
                layer.params[name] = parameter
                layer.gradient_buffers[name] = gradient
        return self._flat[0]

    def assign(self, params: list) -> None:
        """Take ``params``, the new values of ``trained_parameters()`` (an optimizer step's result), as the
        parameters: nothing to do where the step updated them in place, else each layer holds its new
        array (views of the new flat buffer, when training flat)."""
        if self._flat is not None:
            if params is self._flat[0]:
                return
            self._flat = params, self._flat[1]
        for (layer, name), parameter in zip(self._named(), params, strict=True):
            layer.params[name] = parameter

    def trained_gradients(self) -> list:
        """The gradients of ``trained_parameters()``, after a backward pass."""
        return self._flat[1] if self._flat is not None else self.gradients()

    def parameter_names(self) -> list[str]:
        """``"<layer index>.<name>"`` for each of ``parameters()``: ``0.weight``, ``0.bias``, ``2.weight``..."""
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

    def state_dict(self) -> dict:
        """The layer list (type and settings of each) and every parameter array under its name."""
        parameters = {PARAMETER_PREFIX + name: p for name, p in zip(self.parameter_names(), self.parameters())}
        return {"layers": [layer.config() for layer in self.layers], **parameters}

    @classmethod
    def from_state(cls, state: dict) -> Network:
        """Rebuild a network from ``state_dict()``'s description, with the arrays it holds. Only
        registered layer types are built; a malformed description raises ``StateError`` naming the layer."""
        configs = state.get("layers")
        if not isinstance(configs, list) or not configs or not all(isinstance(item, dict) for item in configs):
            raise StateError("the layer list is missing or malformed; the file is corrupt")
        layers = []
        for index, config in enumerate(configs):
            layer_type = registered_layer(config.get("type"))
            names = [f"{PARAMETER_PREFIX}{index}.{name}" for name in layer_type.PARAMETERS]
            missing = [name for name in names if name not in state]
            if missing:
                raise StateError(f"model state lacks the array {missing[0]!r}; the file is corrupt")
            parameters = {name: state[key] for name, key in zip(layer_type.PARAMETERS, names)}
            settings = {key: value for key, value in config.items() if key != "type"}
            try:
                layers.append(layer_type.from_config(settings, parameters))
            except Exception as error:  # a registered layer refusing what a file claims, in its own words
                raise StateError(f"layer {index} is invalid: {one_line(error)}; the file is corrupt") from None
        try:
            return cls(layers)
        except XpnetError as error:
            raise StateError(f"{one_line(error)}; the file is corrupt") from None

    def copy_parameters(self) -> list:
        """Independent copies of the parameters (the optimizer updates the originals in place): views of
        one copy of the flat buffer when the layers hold its views, one operation."""
        return copied(self._current() or self.parameters())

    def _current(self) -> Views | None:
        """The parameters' views of the flat buffer, if every layer still holds them (none replaced)."""
        if self._flat is None:
            return None
        named, views = self._named(), self._flat[0]
        current = len(named) == len(views) and all(
            layer.params[name] is view for (layer, name), view in zip(named, views)
        )
        return views if current else None

    def _unpack(self) -> None:
        self._flat = None
        for layer in self.layers:
            layer.gradient_buffers = {}

    def _named(self) -> list[tuple[Layer, str]]:
        return [(layer, name) for layer in self.layers for name in layer.params]

    def _gather_gradients(self) -> None:
        """Copy into the flat gradient buffer the gradients a layer stored as new arrays."""
        for (layer, name), view in zip(self._named(), self._flat[1]):
            gradient = layer.grads[name]
            if gradient is not view:
                view[...] = gradient

    @property
    def n_inputs(self) -> int:
        """The input features of the first ``Dense`` layer."""
        return self.dense_layers()[0].params["weight"].shape[0]

    @property
    def n_outputs(self) -> int:
        """The outputs of the last ``Dense`` layer."""
        return self.dense_layers()[-1].params["weight"].shape[1]

    def dense_layers(self) -> list[Dense]:
        """The ``Dense`` layers, first to last."""
        return [layer for layer in self.layers if isinstance(layer, Dense)]


def _own(gradient, given, stage):
    """``gradient`` for ``stage``: a copy if it is the caller's array (``given``) and the stage writes
    over its incoming gradient."""
    if gradient is given and getattr(stage, "overwrites_gradient", False):
        return array_namespace(given).asarray(given, copy=True)
    return gradient


def _same(kept: tuple, layers: list) -> bool:
    """Whether ``layers`` are the very layers ``kept``, in order."""
    return len(kept) == len(layers) and all(old is new for old, new in zip(kept, layers))
