"""A ``Model``'s whole state as one flat description, and the model rebuilt from it.

The description is a dict of arrays and JSON values: the settings, whether the model was given its
network (where not, the settings describe its layers, and loading checks that they do), the number of
classes, the history, the network's layers and parameters (``param/<layer>.<name>``), the optimizer's
step count and buffers (``optimizer/<buffer>/<index>``), early stopping's counters and best weights
(``best/<layer>.<name>``), and, inside an epoch, the position and the outputs its steps kept
(``progress/...``; files written before outputs were kept hold the running sums instead). Each part
describes itself (``Network``, the optimizer, ``EarlyStopping``, ``EpochPosition``); this module only
gathers them.
Model files, checkpoints and pickled estimators all go through it, and so they share one layout: the
model file format, version 1, or version 2 where a position holds kept outputs, which xpnet before
that format reads as a corrupt file, or version 3 where the history is kept in a journal beside the file
(checkpoints: each then writes the epochs since the last, not the whole history); ``write`` stamps it.

A description may come from a stranger's file, so ``settings_of`` and ``load_state`` check every value
against the others before they place a single array on the device, and raise ``StateError`` naming what
is wrong. ``Model.from_state`` builds the model from the settings and assigns what ``load_state`` returns
(its optimizer and early stopping load their own parts), so this module imports the model module only
for its type hints, and the two never import each other when they run.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import array_api_compat
import numpy as np

from xpnet.arrays.backend import Backend, select
from xpnet.errors import StateError, XpnetError, one_line
from xpnet.io import journal, model_file
from xpnet.nn.network import PARAMETER_PREFIX, Network
from xpnet.train.config import TrainConfig
from xpnet.train.history import check_history
from xpnet.train.loop import EpochPosition

if TYPE_CHECKING:
    from xpnet.train.model import Model

POSITION_PREFIX = "progress/"
# Whether the model was given its network; where not, its settings describe its layers.
NETWORK_GIVEN = "network_given"
# TrainConfig's default hidden widths before files recorded NETWORK_GIVEN (see _network_given).
UNRECORDED_GIVEN_HIDDEN = (128,)
# The run record's reference to the journal that holds the history (checkpoints), in place of the state's.
HISTORY_REFERENCE = "history"
# A position's arrays: the outputs the epoch's steps kept, and sums carried for batches before them.
POSITION_ARRAYS = ("outputs", "total_loss", "correct")


class Loaded(NamedTuple):
    """What ``load_state`` read for a model: its backend, network, classes, history, position, and
    whether it was given its network (the optimizer and early stopping, the model's own, have loaded
    their parts themselves)."""

    backend: Backend
    network: Network
    n_classes: int | None
    history: list[dict]
    position: EpochPosition | None
    network_given: bool


def state_of(model: Model) -> dict:
    """``model``'s state: the live arrays (not copies) and JSON values, laid out as described above, each
    part described by its owner."""
    state = {
        "config": model.config.to_dict(),
        "n_classes": model.n_classes,
        "history": model.history,
        "trained_on": str(model.backend),
        NETWORK_GIVEN: model.network_given,
        **model.network.state_dict(),
        **model.optimizer.state_arrays(),
    }
    if model.early_stopping is not None:
        state |= model.early_stopping.state_arrays(model.network.parameter_names())
    position = model.position
    if position is not None and position.next_batch > 0:
        position = position.state_dict()
        arrays = {name: position.pop(name) for name in POSITION_ARRAYS}
        state["progress"] = position
        state |= {POSITION_PREFIX + name: array for name, array in arrays.items() if array is not None}
    return state


def write(path, model: Model, *, run: dict | None = None, history: journal.Journal | None = None) -> None:
    """Write ``model``'s state as a model file (see ``xpnet.io.model_file``), stamped with the oldest
    format version that reads it: 3 where its history is kept in the journal ``history`` (whose
    reference the run record holds), 2 where it holds kept outputs, else 1, which every xpnet reads."""
    state = model.state_dict()
    version = 2 if POSITION_PREFIX + "outputs" in state else 1
    if history is not None:
        run = {**(run or {}), HISTORY_REFERENCE: history.extend(state.pop("history"))}
        version = 3
    model_file.write(path, state, version=version, run=run)


def read(path) -> tuple[dict, dict | None]:
    """The state and run record of the model file at ``path`` (see ``xpnet.io.model_file.read``), its
    history read back from the journal beside it where the run record refers to one."""
    state, run = model_file.read(path)
    if isinstance(run, dict) and HISTORY_REFERENCE in run:
        state["history"] = journal.read(Path(path), run[HISTORY_REFERENCE])
    return state, run


def load_state(state: dict, config: TrainConfig, device, optimizer, early_stopping) -> Loaded:
    """What ``state`` describes (host arrays, as a file or a pickle gives them) for a model of ``config``
    on ``device``: the parts the model assigns, while ``optimizer`` and ``early_stopping`` (None when the
    model does not stop early) adopt theirs. ``StateError`` where the description is not that of a valid
    model; every value is checked before an array is placed on the device."""
    check_history(state.get("history"))
    n_classes = state.get("n_classes")
    if n_classes is not None and (type(n_classes) is not int or n_classes < 1):
        raise StateError(f"number of classes {n_classes!r} is invalid; the file is corrupt")
    _check_parameters(state, config.dtype)
    network = Network.from_state(state)
    parameters = dict(zip(network.parameter_names(), network.parameters()))  # on the host, for the checks
    _check_outputs(network, config, n_classes)
    network_given = _network_given(state, config)
    if not network_given:
        _check_hidden(network, config)
    backend = select(device)

    def place(array):  # a copy: the model owns its arrays
        return backend.asarray(array, copy=True)

    used = {PARAMETER_PREFIX + name for name in parameters}
    used |= optimizer.load_state_arrays(state, list(parameters.values()), place)
    if early_stopping is not None:
        used |= early_stopping.load_state_arrays(state, parameters, place)
    network.set_parameters([place(array) for array in parameters.values()])
    position, position_names = _load_position(state, config, network, len(state["history"]), place)
    unexpected = sorted(name for name, value in state.items() if _is_array(value) and name not in used | position_names)
    if unexpected:
        raise StateError(f"unexpected array {unexpected[0]!r}; the file is corrupt or from a custom xpnet")
    history = [dict(record) for record in state["history"]]  # its own, as it owns its arrays
    return Loaded(backend, network, n_classes, history, position, network_given)


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
    if not network.dense_layers():
        raise StateError("the model has no Dense layer; the file is corrupt")
    expected = network.n_outputs if config.loss == "cross_entropy" else None
    if n_classes != expected:
        raise StateError(
            f"{n_classes} classes for {network.n_outputs} outputs with loss {config.loss}; the file is corrupt"
        )


def _network_given(state: dict, config: TrainConfig) -> bool:
    """Whether the model was given its network (``Model(network=...)``), rather than built it from its
    settings. Files written before models recorded it are read by their hidden widths: a given network's
    settings could only hold the default widths then."""
    given = state.get(NETWORK_GIVEN)
    if given is None:
        return config.hidden == UNRECORDED_GIVEN_HIDDEN
    if type(given) is not bool:
        raise StateError(f"{NETWORK_GIVEN} {given!r} is not true or false; the file is corrupt")
    return given


def _check_hidden(network: Network, config: TrainConfig) -> None:
    """A network built from the settings has the hidden widths they record."""
    widths = [layer.params["weight"].shape[1] for layer in network.dense_layers()][:-1]
    if list(config.hidden) != widths:
        raise StateError(
            f"the settings record hidden {list(config.hidden)} but the layers are {widths} wide; "
            "the file was altered or is corrupt"
        )


def _load_position(state: dict, config: TrainConfig, network: Network, epochs_done: int, place) -> tuple:
    """Where an epoch stopped and its kept outputs (or running sums), for a model stopped inside one, or
    None; with the names used."""
    values = state.get("progress")
    if values is None:
        return None, set()
    if not isinstance(values, dict):
        raise StateError("the position inside the epoch is invalid; the file is corrupt")
    arrays = {name: state.get(POSITION_PREFIX + name) for name in POSITION_ARRAYS}
    position = EpochPosition.from_state(
        {**values, **arrays},
        epochs_done=epochs_done,
        dtype=config.dtype,
        classify=config.loss == "cross_entropy",
        batch_size=config.batch_size,
        n_outputs=network.n_outputs,
        place=place,
    )
    return position, {POSITION_PREFIX + name for name in arrays}


def _is_array(value) -> bool:
    return array_api_compat.is_array_api_obj(value)
