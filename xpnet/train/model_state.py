"""A ``Model``'s whole state as one flat description, and the model rebuilt from it.

The description is a dict of arrays and JSON values: the settings, the number of classes, the history,
the network's layers and parameters (``param/<layer>.<name>``), the optimizer's step count and buffers
(``optimizer/<buffer>/<index>``), early stopping's counters and best weights (``best/<layer>.<name>``),
and, inside an epoch, the position and the outputs its steps kept (``progress/...``; files written before
outputs were kept hold the running sums instead). Each part describes itself
(``Network``, the optimizer, ``EarlyStopping``, ``EpochPosition``); this module only gathers them.
Model files, checkpoints and pickled estimators all go through it, and so they share one layout: the
model file format, version 1, or version 2 where a position holds kept outputs, which xpnet before
that format reads as a corrupt file (``write`` stamps it).

A description may come from a stranger's file, so ``settings_of`` and ``load_state`` check every value
against the others before they place a single array on the device, and raise ``StateError`` naming what
is wrong. ``Model.from_state`` builds the model from the settings and has it filled here, so this module
imports the model module only for its type hints, and the two never import each other when they run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import array_api_compat
import numpy as np

from xpnet.arrays.backend import select
from xpnet.errors import StateError, XpnetError, one_line
from xpnet.io import model_file
from xpnet.nn.layers import Dense
from xpnet.nn.network import PARAMETER_PREFIX, Network
from xpnet.train.config import TrainConfig
from xpnet.train.history import check_history
from xpnet.train.loop import EpochPosition

if TYPE_CHECKING:
    from xpnet.train.model import Model

OPTIMIZER_PREFIX = "optimizer/"
BEST_PREFIX = "best/"
POSITION_PREFIX = "progress/"
# A position's arrays: the outputs the epoch's steps kept, and sums carried for batches before them.
POSITION_ARRAYS = ("outputs", "total_loss", "correct")


def state_of(model: Model) -> dict:
    """``model``'s state: the live arrays (not copies) and JSON values, laid out as described above."""
    state = {
        "config": model.config.to_dict(),
        "n_classes": model.n_classes,
        "history": model.history,
        "trained_on": str(model.backend),
        **model.network.state_dict(),
    }
    optimizer = model.optimizer.state_dict()
    state["optimizer_steps"] = optimizer["steps"]
    for buffer, arrays in optimizer["buffers"].items():
        state |= {f"{OPTIMIZER_PREFIX}{buffer}/{index}": array for index, array in enumerate(arrays)}
    if model.early_stopping is not None:
        stopper = model.early_stopping.state_dict()
        best = stopper.pop("best_parameters")
        state["early_stopping"] = stopper
        if best is not None:
            state |= {BEST_PREFIX + name: array for name, array in zip(model.network.parameter_names(), best)}
    position = model.position
    if position is not None and position.next_batch > 0:
        position = position.state_dict()
        arrays = {name: position.pop(name) for name in POSITION_ARRAYS}
        state["progress"] = position
        state |= {POSITION_PREFIX + name: array for name, array in arrays.items() if array is not None}
    return state


def write(path, model: Model, *, run: dict | None = None) -> None:
    """Write ``model``'s state as a model file (see ``xpnet.io.model_file``), stamped with the oldest
    format version that reads it: 2 where it holds kept outputs, else 1, which every xpnet reads."""
    state = model.state_dict()
    version = 2 if POSITION_PREFIX + "outputs" in state else 1
    model_file.write(path, state, version=version, run=run)


def load_state(model: Model, state: dict) -> None:
    """Fill ``model``, new and built from ``settings_of(state)``, with what ``state`` describes (host
    arrays, as a file or a pickle gives them), on the model's device; ``StateError`` where the description
    is not that of a valid model."""
    config = model.config
    check_history(state.get("history"))
    steps, n_classes = state.get("optimizer_steps"), state.get("n_classes")
    if type(steps) is not int or steps < 0:
        raise StateError(f"optimizer step count {steps!r} is invalid; the file is corrupt")
    if n_classes is not None and (type(n_classes) is not int or n_classes < 1):
        raise StateError(f"number of classes {n_classes!r} is invalid; the file is corrupt")
    _check_parameters(state, config.dtype)
    network = Network.from_state(state)
    parameters = dict(zip(network.parameter_names(), network.parameters()))  # on the host, for the checks
    _check_outputs(network, config, n_classes)

    model.backend = select(model.device)

    def place(array):  # a copy: the model owns its arrays, and trains them in place
        return model.backend.asarray(array, copy=True)

    network.set_parameters([place(array) for array in parameters.values()])
    model.network = network
    model.n_classes = n_classes
    model.history = [dict(record) for record in state["history"]]  # its own, as it owns its arrays
    used = {PARAMETER_PREFIX + name for name in parameters}
    used |= _load_optimizer(model, state, steps, list(parameters.values()), place)
    used |= _load_early_stopping(model, state, parameters, place)
    used |= _load_position(model, state, config, place)
    unexpected = sorted(name for name, value in state.items() if _is_array(value) and name not in used)
    if unexpected:
        raise StateError(f"unexpected array {unexpected[0]!r}; the file is corrupt or from a custom xpnet")


def settings_of(state: dict) -> TrainConfig:
    """The model settings ``state`` holds; ``StateError`` where they are missing or invalid."""
    settings = state.get("config")
    if not isinstance(settings, dict):
        raise StateError("model settings are missing; the file is corrupt")
    try:
        config = TrainConfig.from_dict(settings)
        config.make_optimizer()
        if type(config.seed) is not int:
            raise XpnetError(f"seed {config.seed!r} is not an integer")
    except (XpnetError, TypeError, ValueError, OverflowError) as error:
        raise StateError(f"model settings are invalid ({one_line(error)}); the file is corrupt") from None
    return config


def _check_parameters(state: dict, dtype: str) -> None:
    """Every parameter array is of the model's dtype and finite, before any layer is built of it."""
    for name, array in state.items():
        if not name.startswith(PARAMETER_PREFIX) or not isinstance(array, np.ndarray):
            continue
        layer = name.removeprefix(PARAMETER_PREFIX).split(".")[0]
        if array.dtype != np.dtype(dtype):
            raise StateError(f"layer {layer} holds {array.dtype} but the model uses {dtype}")
        if not np.all(np.isfinite(array)):
            raise StateError(f"layer {layer} holds NaN or infinite weights; the file is corrupt")


def _check_outputs(network: Network, config: TrainConfig, n_classes) -> None:
    """A classifier has one output per class; a regression model has no classes."""
    if not any(isinstance(layer, Dense) for layer in network.layers):
        raise StateError("the model has no Dense layer; the file is corrupt")
    expected = network.n_outputs if config.loss == "cross_entropy" else None
    if n_classes != expected:
        raise StateError(
            f"{n_classes} classes for {network.n_outputs} outputs with loss {config.loss}; the file is corrupt"
        )


def _load_optimizer(model: Model, state: dict, steps: int, parameters: list, place) -> set[str]:
    """The optimizer's buffers (all or none), each checked against its parameter; the names used."""
    buffers = model.optimizer.buffers
    names = [name for name in state if name.startswith(OPTIMIZER_PREFIX) and name.count("/") == 2]
    present = {name.split("/")[1] for name in names}
    if present and present != set(buffers):
        raise StateError(f"optimizer state has buffers {sorted(present)} but the optimizer uses {sorted(buffers)}")
    arrays = {buffer: [] for buffer in buffers} if present else {}
    for buffer in arrays:
        for index, parameter in enumerate(parameters):
            name = f"{OPTIMIZER_PREFIX}{buffer}/{index}"
            array = state.get(name)
            if not isinstance(array, np.ndarray):
                raise StateError(f"model state lacks the array {name!r}; the file is corrupt")
            if array.shape != parameter.shape or array.dtype != parameter.dtype:
                raise StateError(
                    f"optimizer {buffer} {index} is {array.dtype} {array.shape} for a parameter of "
                    f"{parameter.dtype} {parameter.shape}"
                )
            arrays[buffer].append(place(array))
    model.optimizer.load_state_dict({"steps": steps, "buffers": arrays})
    return {f"{OPTIMIZER_PREFIX}{buffer}/{index}" for buffer in arrays for index in range(len(parameters))}


def _load_early_stopping(model: Model, state: dict, parameters: dict, place) -> set[str]:
    """Early stopping's counters and best weights, for a model that stops early; the names used."""
    values = state.get("early_stopping")
    if values is None or model.early_stopping is None:
        return set()
    if not isinstance(values, dict):
        raise StateError("the early-stopping state is malformed; the file is corrupt")
    names = [BEST_PREFIX + name for name in parameters]
    best = [state.get(name) for name in names]
    if all(array is None for array in best):
        best = None
    else:
        for array, parameter in zip(best, parameters.values()):
            if not isinstance(array, np.ndarray) or array.shape != parameter.shape or array.dtype != parameter.dtype:
                raise StateError("the best weights kept by early stopping do not match the model")
    model.early_stopping.load_state_dict({**values, "best_parameters": best}, place)
    return set(names) if best is not None else set()


def _load_position(model: Model, state: dict, config: TrainConfig, place) -> set[str]:
    """Where an epoch stopped and its kept outputs (or running sums), for a model stopped inside one; the
    names used."""
    values = state.get("progress")
    if values is None:
        return set()
    if not isinstance(values, dict):
        raise StateError("the position inside the epoch is invalid; the file is corrupt")
    arrays = {name: state.get(POSITION_PREFIX + name) for name in POSITION_ARRAYS}
    model.position = EpochPosition.from_state(
        {**values, **arrays},
        epochs_done=len(model.history),
        dtype=config.dtype,
        classify=config.loss == "cross_entropy",
        batch_size=config.batch_size,
        n_outputs=model.network.n_outputs,
        place=place,
    )
    return {POSITION_PREFIX + name for name in arrays}


def _is_array(value) -> bool:
    return array_api_compat.is_array_api_obj(value)
