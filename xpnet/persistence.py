"""Saving and loading models in a portable, pickle-free file.

A model file is an ``.npz`` archive: plain numeric arrays (parameters and optimizer state, copied to
the host) plus one ``meta`` entry holding JSON (format version, settings, layer list, history and a
SHA-256 of the arrays). Loading never unpickles, checks the version and the checksum, and places the
arrays on whatever device the caller asks for, so a model trained on a GPU loads on a laptop.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import zipfile
from pathlib import Path

import numpy as np

from xpnet.atomic import atomic_write
from xpnet.backend import select, to_numpy
from xpnet.config import TrainConfig
from xpnet.errors import XpnetError
from xpnet.layers import Activation, Dense, Dropout
from xpnet.network import Network

FORMAT = "xpnet-model"
FORMAT_VERSION = 1
_META = "meta"


class ModelFileError(XpnetError):
    """A model file is missing, corrupt, tampered with, or from an unknown format version."""


def save(model, path) -> None:
    """Write ``model`` to ``path`` atomically."""
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
        "checksum": _checksum(arrays),
    }
    arrays[_META] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    with atomic_write(path) as handle:
        np.savez(handle, **arrays)


def load(path, device="cpu"):
    """Read a model saved by ``Model.save`` onto ``device`` (``"cpu"``, ``"cuda:0"``, a namespace...)."""
    from xpnet.model import Model

    arrays, meta = _read(Path(path))
    model = Model(TrainConfig.from_dict(meta["config"]), device=device)
    model.backend = select(device)
    model.n_classes = meta["n_classes"]
    model.history = meta["history"]
    to_device = model.backend.asarray
    try:
        model.network = _rebuild_network(meta["layers"], arrays, to_device, path)
        model.optimizer.steps = int(meta["optimizer_steps"])
        buffers = sorted({name.split("/")[1] for name in arrays if name.startswith("optimizer/")})
        parameters = model.network.parameters()
        model.optimizer.state = {
            buffer: [to_device(arrays[f"optimizer/{buffer}/{index}"]) for index in range(len(parameters))]
            for buffer in buffers
        }
    except KeyError as missing:
        raise ModelFileError(f"{path}: model file lacks the array {missing}; it is corrupt") from None
    for buffer, values in model.optimizer.state.items():
        _check_shapes(path, f"optimizer {buffer}", values, parameters)
    return model


def _read(path: Path) -> tuple[dict, dict]:
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except ValueError as error:  # numpy refuses object arrays when allow_pickle=False
        if "pickle" in str(error).lower():
            raise ModelFileError(f"{path}: model file contains pickled objects; refusing to load it") from None
        raise ModelFileError(f"{path}: not a readable xpnet model file ({error})") from None
    except (OSError, EOFError, zipfile.BadZipFile, zipfile.LargeZipFile, KeyError) as error:
        raise ModelFileError(f"{path}: not a readable xpnet model file (truncated or corrupt: {error})") from None
    if _META not in arrays:
        raise ModelFileError(f"{path}: not an xpnet model file (no '{_META}' entry)")
    try:
        meta = json.loads(arrays.pop(_META).tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ModelFileError(f"{path}: model metadata is not valid JSON; the file is corrupt") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not an xpnet model file")
    version = meta.get("version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ModelFileError(
            f"{path}: model format version {version} is newer than this xpnet reads ({FORMAT_VERSION}); upgrade xpnet"
        )
    if meta.get("checksum") != _checksum(arrays):
        raise ModelFileError(f"{path}: checksum mismatch: the arrays were changed or damaged after saving")
    return arrays, meta


def _rebuild_network(layer_configs: list[dict], arrays: dict, to_device, path) -> Network:
    layers = []
    for index, layer_config in enumerate(layer_configs):
        kind = layer_config.get("type")
        if kind == "Dense":
            weight = arrays[f"param/{index}.weight"]
            bias = arrays[f"param/{index}.bias"]
            if weight.ndim != 2 or bias.shape != (weight.shape[1],) or weight.dtype.kind != "f":
                raise ModelFileError(
                    f"{path}: layer {index} has weight {weight.shape} and bias {bias.shape}; the file is corrupt"
                )
            layers.append(Dense(to_device(weight), to_device(bias)))
        elif kind == "Activation":
            layers.append(Activation(layer_config["name"]))
        elif kind == "Dropout":
            layers.append(Dropout(layer_config["rate"]))
        else:
            raise ModelFileError(f"{path}: unknown layer type {kind!r}; it was saved by a newer or custom xpnet")
    dense = [layer for layer in layers if isinstance(layer, Dense)]
    for before, after in itertools.pairwise(dense):
        if before.params["weight"].shape[1] != after.params["weight"].shape[0]:
            raise ModelFileError(f"{path}: consecutive layers have mismatched shapes; the file is corrupt")
    return Network(layers)


def _check_shapes(path, what: str, arrays: list, parameters: list) -> None:
    for array, parameter in zip(arrays, parameters):
        if tuple(array.shape) != tuple(parameter.shape):
            raise ModelFileError(
                f"{path}: {what} has shape {tuple(array.shape)} for a parameter of shape {tuple(parameter.shape)}"
            )


def _checksum(arrays: dict) -> str:
    """SHA-256 over every array's name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()
