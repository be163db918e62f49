"""Building valid and hostile model files for the safety and fuzz tests."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np

import xpnet
from xpnet import checkpoint, persistence
from xpnet.callbacks import Callback


def trained_model(**settings) -> xpnet.Model:
    """A small model trained for one epoch on the digits (Adam, so the file has optimizer state)."""
    x, y, _, _ = xpnet.load_digits()
    model = xpnet.Model(**{"hidden": [8], "epochs": 1, "batch_size": 256, **settings})
    model.fit(x, y)
    return model


class Crash(Callback):
    """Stop training with an exception after ``steps`` optimizer steps of this fit call."""

    def __init__(self, steps: int):
        self.steps = steps

    def on_batch_end(self, batch):
        self.steps -= 1
        if self.steps == 0:
            raise RuntimeError("simulated crash")


def checkpoint_file(run_dir) -> Path:
    """A checkpoint written in the middle of an epoch, with optimizer state, early-stopping state and
    its best weights: every kind of entry a model file can hold."""
    x, y, _, _ = xpnet.load_digits()
    settings = {"hidden": [8], "dropout": 0.1, "batch_size": 256, "epochs": 3, "early_stopping": 2, "val_split": 0.2}
    model = xpnet.Model(**settings)
    model.fit(x, y, epochs=1)
    with contextlib.suppress(RuntimeError):
        model.fit(x, y, epochs=1, callbacks=[checkpoint.Checkpointer(run_dir, every_steps=1), Crash(2)])
    return Path(run_dir) / checkpoint.CHECKPOINT_FILE


def write_archive(path, arrays: dict, meta: dict, *, checksum: bool = True, compressed: bool = False) -> None:
    """Write an .npz the way ``persistence.save`` does, with any arrays and metadata; ``checksum``
    recomputes the metadata's checksum so the file passes that check and tests what follows."""
    meta = dict(meta)
    if checksum:
        meta["checksum"] = persistence._checksum(arrays)
    entries = {**arrays, "meta": np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)}
    (np.savez_compressed if compressed else np.savez)(path, **entries)


def npy_bytes(header: dict, data: bytes) -> bytes:
    """An .npy entry with a hand-written header, which may lie about the data that follows."""
    stream = io.BytesIO()
    np.lib.format.write_array_header_1_0(stream, header)
    return stream.getvalue() + data
