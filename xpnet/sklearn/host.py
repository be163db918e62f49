"""A trained ``Model`` as plain host objects and back, so estimators pickle by the standard protocol.

Pickles (which joblib and scikit-learn's checks rely on) must not hold GPU arrays or array-library
modules. ``to_host`` keeps the model's state description (``Model.state_dict``) with every array copied
to NumPy, and its ``device`` setting; ``from_host`` rebuilds the model with ``Model.from_state`` on that
setting as resolved where the pickle is loaded (``"auto"``: CUDA when CuPy sees a GPU there, else the
CPU). A model pickled on a GPU machine still loads where there is none: on the CPU, with a warning.
"""

from __future__ import annotations

import warnings

import array_api_compat

from xpnet.arrays.backend import numpy_backend, select, to_numpy
from xpnet.errors import BackendError, XpnetWarning
from xpnet.train.config import TrainConfig
from xpnet.train.model import Model


def to_host(model: Model) -> dict:
    """``model`` as its device setting and its state with NumPy arrays (settings alone if untrained)."""
    if model.network is None:
        return {"device": model.device, "config": model.config.to_dict()}
    state = model.state_dict()
    return {
        "device": model.device,
        "state": {
            name: to_numpy(value) if array_api_compat.is_array_api_obj(value) else value
            for name, value in state.items()
        },
    }


def from_host(record: dict) -> Model:
    """The inverse of ``to_host``: a working model with its arrays on its ``device``."""
    device = record["device"]
    if "state" not in record:
        return Model(TrainConfig.from_dict(record["config"]), device=device)
    try:
        backend = select(device)
    except BackendError as error:
        warnings.warn(
            f"the model was pickled for device {device!r}, which is not available here ({error}); "
            "it runs on the CPU instead",
            XpnetWarning,
            stacklevel=2,
        )
        backend = numpy_backend()
    model = Model.from_state(record["state"], backend)
    model.device = device
    return model
