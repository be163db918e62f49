"""Building valid and hostile model files for the safety and fuzz tests."""

from __future__ import annotations

import contextlib
import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np

import xpnet
from xpnet.io import model_file
from xpnet.train import checkpoint
from xpnet.train.callbacks import Callback


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
    """Write an .npz the way ``model_file.write`` does, with any arrays and metadata; ``checksum``
    recomputes the metadata's checksum so the file passes that check and tests what follows."""
    meta = dict(meta)
    if checksum:
        meta["checksum"] = model_file._checksum(arrays)
    entries = {**arrays, "meta": np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)}
    (np.savez_compressed if compressed else np.savez)(path, **entries)


def npy_bytes(header: dict, data: bytes) -> bytes:
    """An .npy entry with a hand-written header, which may lie about the data that follows."""
    stream = io.BytesIO()
    np.lib.format.write_array_header_1_0(stream, header)
    return stream.getvalue() + data


def overlapping_archive(path, n_entries: int, payload_bytes: int) -> None:
    """A zip of stored entries that overlap: each is a valid uint8 ``.npy`` running from its own header
    to the end of the file, over every later entry (a zip bomb Python's zipfile does not detect)."""
    names = [f"e{index:03d}.npy".encode() for index in range(n_entries)]
    local_size = 30 + len(names[0])
    npy_size = len(npy_bytes({"descr": "|u1", "fortran_order": False, "shape": (payload_bytes,)}, b""))
    step = local_size + npy_size
    lengths = [npy_size + (n_entries - 1 - index) * step + payload_bytes for index in range(n_entries)]
    body = bytearray()
    for name, length in zip(names, lengths):
        header = npy_bytes({"descr": "|u1", "fortran_order": False, "shape": (length - npy_size,)}, b"")
        assert len(header) == npy_size, "every .npy header must be the same size for the offsets to hold"
        body += struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 0, 0, 0, 0, length, length, len(name), 0) + name
        body += header
    body += bytes(payload_bytes)
    directory = bytearray()
    for index, (name, length) in enumerate(zip(names, lengths)):
        start = index * step + local_size
        crc = zlib.crc32(body[start : start + length])
        sizes = (crc, length, length, len(name))
        directory += struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 0, 0, 0, *sizes, 0, 0, 0, 0, 0, index * step)
        directory += name
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, n_entries, n_entries, len(directory), len(body), 0)
    Path(path).write_bytes(bytes(body + directory + end))
