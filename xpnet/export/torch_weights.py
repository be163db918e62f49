"""A model's weights both ways with a PyTorch ``torch.nn.Sequential``, so a network can move between the two.

The layers sit at the same indices in both (xpnet's Activation and Dropout take an index each, as torch's
modules do): Dense is Linear, its weight ``(n_inputs, n_outputs)`` transposed to Linear's
``(n_outputs, n_inputs)``. Plain tensors go out and come in; nothing here pickles or unpickles (torch.save
is the caller's choice, not xpnet's). torch is no dependency of xpnet: it is imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from xpnet.arrays.backend import to_numpy
from xpnet.errors import XpnetError
from xpnet.export.layers import HostLayer, host_layers, optional_module
from xpnet.nn.activations import LEAKY_RELU_SLOPE
from xpnet.nn.layers import Activation, Dense, Dropout, Layer
from xpnet.nn.network import Network
from xpnet.train.model import Model

if TYPE_CHECKING:
    import torch

# Every activation in nn.activations.ACTIVATIONS as a torch.nn module: its class and the settings that
# make it compute what xpnet computes.
TORCH_ACTIVATIONS = {
    "gelu": ("GELU", {"approximate": "tanh"}),
    "identity": ("Identity", {}),
    "leaky_relu": ("LeakyReLU", {"negative_slope": LEAKY_RELU_SLOPE}),
    "relu": ("ReLU", {}),
    "sigmoid": ("Sigmoid", {}),
    "tanh": ("Tanh", {}),
}


def torch_state_dict(model: Model) -> dict[str, torch.Tensor]:
    """``model``'s weights as the state dict of ``torch_sequential(model)``.

    Args:
        model: A trained or loaded model of ``Dense``, ``Activation`` and ``Dropout`` layers.

    Returns:
        ``"<index>.weight"`` ``(n_outputs, n_inputs)`` and ``"<index>.bias"`` of each Dense layer, CPU tensors
        of the model's dtype (copies: changing them leaves the model alone).

    Raises:
        XpnetError: torch is not installed, the model is not trained, or it holds a layer PyTorch's
            ``Sequential`` cannot express (one of your own), named.
    """
    return _tensors(_torch(), host_layers(model.state_dict(), "PyTorch"))


def torch_sequential(model: Model) -> torch.nn.Sequential:
    """A ``torch.nn.Sequential`` computing what ``model`` computes.

    Args:
        model: A trained or loaded model of ``Dense``, ``Activation`` and ``Dropout`` layers.

    Returns:
        The ``Sequential``, with the model's weights, in eval mode (dropout off, as xpnet predicts).

    Raises:
        XpnetError: As for ``torch_state_dict``.
    """
    torch = _torch()
    layers = host_layers(model.state_dict(), "PyTorch")
    sequential = torch.nn.Sequential(*[_module(torch, layer) for layer in layers])
    sequential.load_state_dict(_tensors(torch, layers))
    return sequential.eval()


def from_torch(sequential: torch.nn.Sequential, *, device="cpu", **settings) -> Model:
    """An xpnet ``Model`` with the layers and weights of a PyTorch ``Sequential``.

    Args:
        sequential: ``Linear``, ``Dropout``, ``ReLU``, ``LeakyReLU(0.01)``, ``Tanh``, ``Sigmoid``,
            ``GELU(approximate="tanh")`` and ``Identity`` modules.
        device: Where the model's arrays go, as for ``Model``.
        **settings: Those of ``Model(network=...)`` (``loss="mse"`` for a regression network, say).

    Returns:
        The model, ready to predict, save or train on.

    Raises:
        XpnetError: torch is not installed, ``sequential`` is not a ``Sequential``, or it holds another
            module, named.
    """
    torch = _torch()
    if not isinstance(sequential, torch.nn.Sequential):
        raise XpnetError(f"from_torch takes a torch.nn.Sequential, got {type(sequential).__name__}")
    layers = [_layer(torch.nn, index, module) for index, module in enumerate(sequential)]
    return Model.from_network(Network(layers), device=device, **settings)


def _torch():
    return optional_module("torch", "moving weights to or from PyTorch", "pip install torch")


def _tensors(torch, layers: list[HostLayer]) -> dict:
    tensors = {}
    for layer in layers:
        if layer.kind == "Dense":
            tensors[f"{layer.index}.weight"] = torch.tensor(layer.parameters["weight"].T)
            tensors[f"{layer.index}.bias"] = torch.tensor(layer.parameters["bias"])
    return tensors


def _module(torch, layer: HostLayer):
    """The torch module of one xpnet layer (a Linear's weights are filled in afterwards)."""
    if layer.kind == "Dense":
        weight = layer.parameters["weight"]
        return torch.nn.Linear(*weight.shape, dtype=getattr(torch, weight.dtype.name))
    if layer.kind == "Dropout":
        return torch.nn.Dropout(layer.settings["rate"])
    class_name, settings = TORCH_ACTIVATIONS[layer.settings["name"]]
    return getattr(torch.nn, class_name)(**settings)


def _layer(nn, index: int, module) -> Layer:
    """The xpnet layer of one torch module, its weights copied; a module xpnet has no layer for is refused."""
    if type(module) is nn.Linear and module.bias is not None:
        return Dense(np.array(to_numpy(module.weight).T, order="C"), np.array(to_numpy(module.bias)))
    if type(module) is nn.Dropout:
        return Dropout(module.p)
    for name, (class_name, settings) in TORCH_ACTIVATIONS.items():
        same = all(getattr(module, key, None) == value for key, value in settings.items())
        if type(module) is getattr(nn, class_name) and same:
            return Activation(name)
    known = ", ".join(_spelled(class_name, settings) for class_name, settings in TORCH_ACTIVATIONS.values())
    raise XpnetError(
        f"module {index} of the Sequential, {type(module).__name__}({module.extra_repr()}), has no xpnet layer: "
        f"xpnet takes Linear (with a bias), Dropout, {known}"
    )


def _spelled(class_name: str, settings: dict) -> str:
    return f"{class_name}({', '.join(f'{key}={value!r}' for key, value in settings.items())})"
