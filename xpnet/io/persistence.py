"""Saving and loading models in a portable, pickle-free file.

A model file is an ``.npz`` archive: plain numeric arrays (parameters and optimizer state, copied to
the host) plus one ``meta`` entry holding JSON (format version, settings, layer list, history and a
SHA-256 of the arrays). Loading never unpickles, checks the version and the checksum, and places the
arrays on whatever device the caller asks for, so a model trained on a GPU loads on a laptop.

Files may come from strangers, so the reader trusts nothing: it parses each entry's header itself,
checks every claimed size against the file's length before allocating, accepts only plain numeric
arrays, and checks every shape and dtype against the layer list before building anything.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import math
import reprlib
import zipfile
from pathlib import Path

import numpy as np

from xpnet.arrays.backend import select, to_numpy
from xpnet.errors import XpnetError
from xpnet.io.atomic import atomic_write
from xpnet.io.npy import READ_ERRORS, read_npy_header
from xpnet.nn.layers import Activation, Dense, Dropout
from xpnet.nn.network import Network
from xpnet.train import loop
from xpnet.train.config import TrainConfig

FORMAT = "xpnet-model"
FORMAT_VERSION = 1
_META = "meta"
_ARRAY_SUFFIX = ".npy"
# Plain numbers only: booleans, signed and unsigned integers, floats. Never objects (pickles).
_NUMERIC_KINDS = "biuf"
# The keys of a history record and their types, as Model.fit writes them (the accuracies are None for
# regression; lr is whatever the settings hold). The val_ pair comes with validation data and the
# test_ pair from the train command, which measures the test set every epoch. Callbacks may add keys.
_FRACTION = (float, type(None))
_RECORD_TYPES = {
    "epoch": (int,),
    "train_loss": (float,),
    "seconds": (float,),
    "train_accuracy": _FRACTION,
    "lr": (int, float),
    "val_loss": (float,),
    "val_accuracy": _FRACTION,
    "test_loss": (float,),
    "test_accuracy": _FRACTION,
}
_RECORD_PAIRS = (("val_loss", "val_accuracy"), ("test_loss", "test_accuracy"))
_REQUIRED_KEYS = [key for key in _RECORD_TYPES if not any(key in pair for pair in _RECORD_PAIRS)]


class ModelFileError(XpnetError):
    """A model file is missing, corrupt, tampered with, or from an unknown format version."""


def save(model, path, *, run: dict | None = None) -> None:
    """Write ``model`` to ``path`` atomically; ``run`` is extra JSON kept with it (checkpoints use it).

    A model stopped inside an epoch (``model.progress``) also keeps its position and running sums.
    """
    model._require_trained()
    arrays = {
        f"param/{name}": to_numpy(p) for name, p in zip(model.network.parameter_names(), model.network.parameters())
    }
    for buffer, values in model.optimizer.state.items():
        arrays.update({f"optimizer/{buffer}/{index}": to_numpy(v) for index, v in enumerate(values)})
    meta = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "config": model.config.to_dict(),
        "layers": [layer.config() for layer in model.network.layers],
        "n_classes": model.n_classes,
        "optimizer_steps": model.optimizer.steps,
        "history": model.history,
        "trained_on": str(model.backend),
    }
    progress = model.progress
    if progress is not None and progress.next_batch > 0:
        meta["progress"] = {"epoch": progress.epoch, "next_batch": progress.next_batch}
        arrays["progress/total_loss"] = to_numpy(progress.total_loss)
        if progress.correct is not None:
            arrays["progress/correct"] = to_numpy(progress.correct)
    stopper = model.early_stopping
    if stopper is not None:
        meta["early_stopping"] = {
            "best_loss": stopper.best_loss,
            "best_epoch": stopper.best_epoch,
            "epochs_without_improvement": stopper.epochs_without_improvement,
        }
        if stopper.best_parameters is not None:
            names = model.network.parameter_names()
            arrays.update({f"best/{name}": to_numpy(p) for name, p in zip(names, stopper.best_parameters)})
    if run is not None:
        meta["run"] = run
    meta["checksum"] = _checksum(arrays)
    arrays[_META] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    with atomic_write(path) as handle:
        np.savez(handle, **arrays)


def load(path, device="cpu"):
    """Read a model saved by ``Model.save`` onto ``device`` (``"cpu"``, ``"cuda:0"``, a namespace...)."""
    arrays, meta = read(path)
    return model_from(arrays, meta, path, device)


def read(path) -> tuple[dict, dict]:
    """The arrays and the checked metadata of a model file, on the host; nothing is built yet."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
    arrays = _read_arrays(path)
    if _META not in arrays:
        raise ModelFileError(f"{path}: not an xpnet model file (no '{_META}' entry)")
    meta_bytes = arrays.pop(_META)
    if meta_bytes.dtype != np.uint8 or meta_bytes.ndim != 1:
        raise ModelFileError(f"{path}: model metadata has the wrong type; the file is corrupt")
    try:
        meta = json.loads(meta_bytes.tobytes().decode())
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ModelFileError(f"{path}: model metadata is not valid JSON; the file is corrupt") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not an xpnet model file")
    version = meta.get("version")
    if type(version) is not int or version < 1:
        raise ModelFileError(f"{path}: model format version {version!r} is not valid; the file is corrupt")
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"{path}: model format version {version} is newer than this xpnet reads ({FORMAT_VERSION}); upgrade xpnet"
        )
    if meta.get("checksum") != _checksum(arrays):
        raise ModelFileError(f"{path}: checksum mismatch: the arrays were changed or damaged after saving")
    return arrays, meta


def model_from(arrays: dict, meta: dict, path, device="cpu"):
    """Build a ``Model`` from what ``read`` returned, checking every shape and dtype first."""
    from xpnet.train.model import Model

    config = _config(meta, path)
    _check_run_counts(meta, path)
    layers = _layers(meta, arrays, config, path)
    parameters = [array for layer in layers if isinstance(layer, tuple) for array in layer]
    optimizer = config.make_optimizer()
    buffers = _optimizer_buffers(arrays, optimizer.buffers, parameters, path)
    progress = _progress(meta, arrays, config, path)
    stopper = _early_stopping(meta, arrays, config, parameters, path)
    _check_nothing_else(arrays, meta, buffers, len(parameters), progress, stopper, path)

    model = Model(config, device=device)
    model.backend = select(device)
    to_device = model.backend.asarray
    model.n_classes = meta.get("n_classes")
    model.history = meta["history"]
    model.network = Network(
        [Dense(to_device(layer[0]), to_device(layer[1])) if isinstance(layer, tuple) else layer for layer in layers]
    )
    model.optimizer = optimizer
    model.optimizer.steps = meta["optimizer_steps"]
    model.optimizer.state = {
        buffer: [to_device(arrays[f"optimizer/{buffer}/{index}"]) for index in range(len(parameters))]
        for buffer in buffers
    }
    if stopper is not None:
        for name in ("best_loss", "best_epoch", "epochs_without_improvement"):
            setattr(model.early_stopping, name, stopper[name])
        if stopper["best_parameters"]:
            model.early_stopping.best_parameters = [to_device(array) for array in stopper["best_parameters"]]
    if progress is not None:
        correct = arrays.get("progress/correct")
        model.progress = loop.EpochProgress(
            progress["epoch"],
            progress["next_batch"],
            to_device(arrays["progress/total_loss"]),
            None if correct is None else to_device(correct),
        )
    return model


# -- reading the archive without trusting it ------------------------------------------------------


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every entry of the archive as a NumPy array, refusing anything but plain stored numeric arrays."""
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            _check_entry_sizes(infos, path.stat().st_size, path)
            arrays = {}
            for info in infos:
                name = info.filename.removesuffix(_ARRAY_SUFFIX)
                arrays[name] = _parse_array(archive.read(info), name, path)
    except ModelFileError:
        raise
    except READ_ERRORS as error:
        raise ModelFileError(f"{path}: not a readable xpnet model file (truncated or corrupt: {error})") from None
    return arrays


def _check_entry_sizes(infos: list[zipfile.ZipInfo], file_size: int, path: Path) -> None:
    """Refuse, before reading any entry, a compressed entry or sizes the file cannot hold. Entries
    may overlap (zipfile does not check), so their sizes together, not one by one, must fit."""
    for info in infos:
        name = info.filename.removesuffix(_ARRAY_SUFFIX)
        if info.compress_type != zipfile.ZIP_STORED:
            raise ModelFileError(f"{path}: entry {name!r} is compressed; xpnet model files store arrays plainly")
        if max(info.file_size, info.compress_size) > file_size:
            raise ModelFileError(
                f"{path}: entry {name!r} claims {info.file_size} bytes but the file has only {file_size}; "
                "it is truncated or corrupt"
            )
    claimed = sum(max(info.file_size, info.compress_size) for info in infos)
    if claimed > file_size:
        raise ModelFileError(
            f"{path}: its entries claim {claimed} bytes in all but the file has only {file_size}; they overlap "
            "or the file is corrupt"
        )


def _parse_array(data: bytes, name: str, path: Path) -> np.ndarray:
    """One ``.npy`` entry; its header's shape and dtype must account for exactly the bytes present."""
    stream = io.BytesIO(data)
    shape, fortran_order, dtype = read_npy_header(stream)
    if dtype.hasobject:
        raise ModelFileError(f"{path}: entry {name!r} holds pickled Python objects; refusing to load it")
    if dtype.kind not in _NUMERIC_KINDS or dtype.fields is not None or dtype.subdtype is not None or not dtype.isnative:
        raise ModelFileError(f"{path}: entry {name!r} has dtype {dtype.str}; only plain numeric arrays are allowed")
    if any(size < 0 for size in shape):
        raise ModelFileError(f"{path}: entry {name!r} claims the impossible shape {shape}; the file is corrupt")
    count = math.prod(shape)
    offset = stream.tell()
    if count * dtype.itemsize != len(data) - offset:
        raise ModelFileError(
            f"{path}: entry {name!r} claims shape {shape} of {dtype} ({count * dtype.itemsize} bytes) "
            f"but holds {len(data) - offset} bytes; it is truncated or corrupt"
        )
    flat = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
    return flat.reshape(shape, order="F" if fortran_order else "C").copy(order="C")


# -- checking the metadata against the arrays ------------------------------------------------------


def _config(meta: dict, path) -> TrainConfig:
    settings = meta.get("config")
    if not isinstance(settings, dict):
        raise ModelFileError(f"{path}: model settings are missing; the file is corrupt")
    try:
        config = TrainConfig.from_dict(settings)
        config.make_optimizer()
        if type(config.seed) is not int:
            raise XpnetError(f"seed {config.seed!r} is not an integer")
    except (XpnetError, TypeError, ValueError, OverflowError) as error:
        raise ModelFileError(f"{path}: model settings are invalid ({_one_line(error)}); the file is corrupt") from None
    return config


def _check_run_counts(meta: dict, path) -> None:
    """History, optimizer step count and number of classes have the types training relies on."""
    _check_history(meta.get("history"), path)
    steps = meta.get("optimizer_steps")
    if type(steps) is not int or steps < 0:
        raise ModelFileError(f"{path}: optimizer step count {steps!r} is invalid; the file is corrupt")
    n_classes = meta.get("n_classes")
    if n_classes is not None and (type(n_classes) is not int or n_classes < 1):
        raise ModelFileError(f"{path}: number of classes {n_classes!r} is invalid; the file is corrupt")


def _check_history(history, path) -> None:
    """Every record holds the keys ``Model.fit`` writes, of the types it writes, numbered 1, 2, 3...;
    the validation and test pairs are whole, and the test pair (the train command's) in all or none."""
    if not isinstance(history, list):
        raise ModelFileError(f"{path}: training history is missing or malformed; the file is corrupt")
    for number, record in enumerate(history, start=1):
        where = f"{path}: history record {number}"
        if not isinstance(record, dict):
            raise ModelFileError(f"{where} is not a mapping of names to numbers; the file is corrupt")
        for first, second in _RECORD_PAIRS:
            if (first in record) != (second in record):
                present, missing = (first, second) if first in record else (second, first)
                raise ModelFileError(f"{where} has {present} but lacks {missing}; the file is corrupt")
        missing = [key for key in _REQUIRED_KEYS if key not in record]
        if missing:
            raise ModelFileError(f"{where} lacks {missing[0]}; the file is corrupt")
        for key, types in _RECORD_TYPES.items():
            if key in record and type(record[key]) not in types:
                value = record[key]
                raise ModelFileError(
                    f"{where} has {key} {reprlib.repr(value)} ({type(value).__name__}); the file is corrupt"
                )
        if record["epoch"] != number:
            raise ModelFileError(f"{where} is for epoch {record['epoch']}; the file is corrupt")
    tested = ["test_loss" in record for record in history]
    if any(tested) and not all(tested):
        number = tested.index(False) + 1
        raise ModelFileError(
            f"{path}: history record {number} lacks test_loss and test_accuracy, which other records have; "
            "the file is corrupt"
        )


def _layers(meta: dict, arrays: dict, config: TrainConfig, path) -> list:
    """The layer list with each Dense layer as its checked host ``(weight, bias)`` pair."""
    layer_configs = meta.get("layers")
    if not isinstance(layer_configs, list) or not all(isinstance(item, dict) for item in layer_configs):
        raise ModelFileError(f"{path}: the layer list is missing or malformed; the file is corrupt")
    dtype = np.dtype(config.dtype)
    layers: list = []
    for index, layer_config in enumerate(layer_configs):
        kind = layer_config.get("type")
        try:
            if kind == "Dense":
                layers.append(_dense_arrays(arrays, index, dtype, path))
            elif kind == "Activation":
                layers.append(Activation(str(layer_config.get("name"))))
            elif kind == "Dropout":
                rate = layer_config.get("rate")
                if type(rate) not in (int, float):
                    raise XpnetError(f"dropout rate {rate!r} is not a number")
                layers.append(Dropout(rate))
            else:
                raise ModelFileError(f"{path}: unknown layer type {kind!r}; it was saved by a newer or custom xpnet")
        except ModelFileError:
            raise
        except XpnetError as error:
            raise ModelFileError(
                f"{path}: layer {index} is invalid ({_one_line(error)}); the file is corrupt"
            ) from None
    dense = [layer for layer in layers if isinstance(layer, tuple)]
    if not dense:
        raise ModelFileError(f"{path}: the model has no Dense layer; the file is corrupt")
    for before, after in itertools.pairwise(dense):
        if before[0].shape[1] != after[0].shape[0]:
            raise ModelFileError(f"{path}: consecutive layers have mismatched shapes; the file is corrupt")
    n_outputs = dense[-1][0].shape[1]
    expected_classes = n_outputs if config.loss == "cross_entropy" else None
    if meta.get("n_classes") != expected_classes:
        classes = meta.get("n_classes")
        raise ModelFileError(
            f"{path}: {classes} classes for {n_outputs} outputs with loss {config.loss}; the file is corrupt"
        )
    return layers


def _dense_arrays(arrays: dict, index: int, dtype: np.dtype, path) -> tuple:
    try:
        weight, bias = arrays[f"param/{index}.weight"], arrays[f"param/{index}.bias"]
    except KeyError as missing:
        raise ModelFileError(f"{path}: model file lacks the array {missing}; it is corrupt") from None
    if weight.ndim != 2 or min(weight.shape) < 1 or bias.shape != (weight.shape[1],):
        raise ModelFileError(
            f"{path}: layer {index} has weight {weight.shape} and bias {bias.shape}; the file is corrupt"
        )
    for array in (weight, bias):
        if array.dtype != dtype:
            raise ModelFileError(f"{path}: layer {index} holds {array.dtype} but the model uses {dtype}")
        if not np.all(np.isfinite(array)):
            raise ModelFileError(f"{path}: layer {index} holds NaN or infinite weights; the file is corrupt")
    return weight, bias


def _optimizer_buffers(arrays: dict, buffers: tuple, parameters: list, path) -> tuple:
    """The optimizer's buffers present in the file (all or none), each checked against its parameter."""
    present = {name.split("/")[1] for name in arrays if name.startswith("optimizer/") and name.count("/") == 2}
    if not present:
        return ()
    if present != set(buffers):
        raise ModelFileError(
            f"{path}: optimizer state has buffers {sorted(present)} but the optimizer uses {sorted(buffers)}"
        )
    for buffer in buffers:
        for index in range(len(parameters)):
            state = arrays.get(f"optimizer/{buffer}/{index}")
            if state is None:
                raise ModelFileError(f"{path}: model file lacks the array 'optimizer/{buffer}/{index}'; it is corrupt")
            if state.shape != parameters[index].shape or state.dtype != parameters[index].dtype:
                raise ModelFileError(
                    f"{path}: optimizer {buffer} {index} is {state.dtype} {state.shape} for a parameter of "
                    f"{parameters[index].dtype} {parameters[index].shape}"
                )
    return buffers


def _progress(meta: dict, arrays: dict, config: TrainConfig, path) -> dict | None:
    progress = meta.get("progress")
    if progress is None:
        return None
    epoch = progress.get("epoch") if isinstance(progress, dict) else None
    next_batch = progress.get("next_batch") if isinstance(progress, dict) else None
    if epoch != len(meta["history"]) or type(next_batch) is not int or next_batch < 1:
        raise ModelFileError(f"{path}: the position inside the epoch is invalid; the file is corrupt")
    total_loss = arrays.get("progress/total_loss")
    correct = arrays.get("progress/correct")
    classify = config.loss == "cross_entropy"
    if (
        total_loss is None
        or total_loss.shape != ()
        or total_loss.dtype != np.dtype(config.dtype)
        or (classify and (correct is None or correct.shape != () or correct.dtype != np.int64))
    ):
        raise ModelFileError(f"{path}: the running sums of the epoch are missing or malformed; the file is corrupt")
    return progress


def _early_stopping(meta: dict, arrays: dict, config: TrainConfig, parameters: list, path) -> dict | None:
    """The early-stopping state (best loss and epoch, epochs without improvement, best weights)."""
    state = meta.get("early_stopping")
    if state is None or not config.early_stopping:
        return None
    if (
        not isinstance(state, dict)
        or not {"best_loss", "best_epoch", "epochs_without_improvement"} <= state.keys()
        or type(state["best_loss"]) not in (int, float)
        or (state.get("best_epoch") is not None and type(state.get("best_epoch")) is not int)
        or type(state.get("epochs_without_improvement")) is not int
        or state["epochs_without_improvement"] < 0
    ):
        raise ModelFileError(f"{path}: the early-stopping state is malformed; the file is corrupt")
    best = [arrays.get(f"best/{name.removeprefix('param/')}") for name in _parameter_entries(meta)]
    if all(array is None for array in best):
        return {**state, "best_parameters": None}
    for array, parameter in zip(best, parameters):
        if array is None or array.shape != parameter.shape or array.dtype != parameter.dtype:
            raise ModelFileError(f"{path}: the best weights kept by early stopping do not match the model")
    return {**state, "best_parameters": best}


def _check_nothing_else(arrays, meta, buffers, n_params: int, progress, stopper, path) -> None:
    """Refuse arrays that no part of the model accounts for."""
    expected = set(_parameter_entries(meta))
    expected |= {f"optimizer/{buffer}/{index}" for buffer in buffers for index in range(n_params)}
    if progress is not None:
        expected |= {"progress/total_loss", "progress/correct"}
    if stopper is not None and stopper["best_parameters"]:
        expected |= {name.replace("param/", "best/", 1) for name in _parameter_entries(meta)}
    unexpected = sorted(set(arrays) - expected)
    if unexpected:
        raise ModelFileError(f"{path}: unexpected array {unexpected[0]!r}; the file is corrupt or from a custom xpnet")


def _parameter_entries(meta: dict) -> list[str]:
    """Names of the parameter arrays in network order, from the (already checked) layer list."""
    return [
        f"param/{index}.{name}"
        for index, layer in enumerate(meta["layers"])
        if layer.get("type") == "Dense"
        for name in ("weight", "bias")
    ]


def _one_line(error: Exception) -> str:
    """An error's message on one line: names taken from a hostile file may hold line breaks."""
    return " ".join(str(error).split())


def _checksum(arrays: dict) -> str:
    """SHA-256 over every array's name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()
