"""Building valid and hostile model files for the safety and fuzz tests."""

from __future__ import annotations

import io
import json

import numpy as np

import xpnet
from xpnet import persistence


def trained_model(**settings) -> xpnet.Model:
    """A small model trained for one epoch on the digits (Adam, so the file has optimizer state)."""
    x, y, _, _ = xpnet.load_digits()
    model = xpnet.Model(**{"hidden": [8], "epochs": 1, "batch_size": 256, **settings})
    model.fit(x, y)
    return model


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
