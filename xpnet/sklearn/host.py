"""Moving a trained ``Model`` to plain host objects and back, so estimators pickle by the standard protocol.

Pickles (which joblib and scikit-learn's checks rely on) must not hold GPU arrays or array-library
modules. ``to_host`` copies the model with every parameter and optimizer buffer as a NumPy array and
without the backend or the activations cached by the last forward pass; ``from_host`` places the
arrays on the model's ``device`` setting as resolved where the pickle is loaded (``"auto"``: CUDA when
CuPy sees a GPU there, else the CPU). A model pickled on a GPU machine still loads where there is none:
on the CPU, with a warning.
"""

from __future__ import annotations

import copy
import warnings

import array_api_compat

from xpnet.arrays.backend import BackendError, numpy_backend, select, to_numpy
from xpnet.errors import XpnetWarning
from xpnet.nn.layers import Layer
from xpnet.nn.network import Network
from xpnet.train.model import Model


def to_host(model: Model) -> Model:
    """A copy of ``model`` that holds only NumPy arrays and no backend, ready to pickle."""
    return _moved(model, backend=None, move=to_numpy)


def from_host(model: Model) -> Model:
    """The inverse of ``to_host``: a working model with its arrays on its ``device``."""
    try:
        backend = select(model.device)
    except BackendError as error:
        warnings.warn(
            f"the model was pickled for device {model.device!r}, which is not available here ({error}); "
            "it runs on the CPU instead",
            XpnetWarning,
            stacklevel=2,
        )
        backend = numpy_backend()
    return _moved(model, backend=backend, move=backend.asarray)


def _moved(model: Model, *, backend, move) -> Model:
    moved = copy.copy(model)
    moved.backend = backend
    if model.network is not None:
        moved.network = Network([_moved_layer(layer, move) for layer in model.network.layers])
    moved.optimizer = copy.copy(model.optimizer)
    moved.optimizer.state = {name: [move(a) for a in arrays] for name, arrays in model.optimizer.state.items()}
    if model.early_stopping is not None:
        moved.early_stopping = copy.copy(model.early_stopping)  # without the live model it points to
        if model.early_stopping.best_parameters is not None:
            moved.early_stopping.best_parameters = [move(a) for a in model.early_stopping.best_parameters]
    return moved


def _moved_layer(layer: Layer, move) -> Layer:
    """A copy of ``layer`` with its parameters moved; gradients and forward-pass caches are left out
    (they are rebuilt by the next step)."""
    moved = copy.copy(layer)
    for name, value in vars(layer).items():
        if array_api_compat.is_array_api_obj(value):
            setattr(moved, name, None)
    moved.params = {name: move(value) for name, value in layer.params.items()}
    moved.grads = {}
    return moved
