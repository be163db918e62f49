"""What every exporter reads of a model: its layers as host data (NumPy parameters), each of a type
the target can express, and the optional library that writes the target's format."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

import numpy as np

from xpnet.arrays.backend import to_numpy
from xpnet.errors import XpnetError
from xpnet.nn.network import PARAMETER_PREFIX

# The layer types an exporter writes: the built-in ones, whose forward passes it knows.
EXPORTABLE = ("Dense", "Activation", "Dropout")


@dataclass(frozen=True)
class HostLayer:
    """One layer of a model's state: its index, registered type name, settings and parameters."""

    index: int
    kind: str
    settings: dict
    parameters: dict[str, np.ndarray]


def host_layers(state: dict, target: str) -> list[HostLayer]:
    """The layers that ``state`` (``Model.state_dict()``) describes, with NumPy parameters (on the CPU,
    the live arrays themselves: read them, never write); a layer of another type (a user's own) is
    refused by index and type name."""
    layers = []
    for index, config in enumerate(state["layers"]):
        settings = dict(config)
        kind = settings.pop("type")
        if kind not in EXPORTABLE:
            raise XpnetError(
                f"layer {index} is a {kind}, which the {target} export cannot express: it writes only "
                f"{', '.join(EXPORTABLE[:-1])} and {EXPORTABLE[-1]} layers"
            )
        prefix = f"{PARAMETER_PREFIX}{index}."
        parameters = {
            name.removeprefix(prefix): to_numpy(array) for name, array in state.items() if name.startswith(prefix)
        }
        layers.append(HostLayer(index, kind, settings, parameters))
    return layers


def optional_module(name: str, purpose: str, install: str) -> ModuleType:
    """The library ``name``, imported on first use; where it is missing, one line naming the fix."""
    try:
        return importlib.import_module(name)
    except ImportError:
        raise XpnetError(f"{purpose} needs {name}, which is not installed: {install}") from None
