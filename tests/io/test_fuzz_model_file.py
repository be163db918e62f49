"""Hypothesis feeds the model-file reader random bytes, mutated valid files, mutated array entries and
mutated metadata; the valid file is a mid-epoch checkpoint, so it holds every kind of entry. A load
either succeeds (and the model then predicts and trains) or raises xpnet's own error: never another
exception, a hang, or a large allocation."""

from __future__ import annotations

import copy
import io
import json
import os
import tracemalloc
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from model_files import checkpoint_file, write_archive

import xpnet
from xpnet.io import model_file

# Generous per-example time limit: a hang, not a slow machine, should trip it. XPNET_FUZZ_EXAMPLES
# raises the number of cases per test for a longer campaign.
FUZZ = settings(
    max_examples=int(os.environ.get("XPNET_FUZZ_EXAMPLES", "100")),
    deadline=5000,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
PEAK_BYTES = 20_000_000  # far above what a few-kilobyte file can legitimately need


class Valid(tuple):
    """A valid file's bytes, arrays and metadata, a scratch path, and a little data to use a model on."""

    def __repr__(self) -> str:  # keeps Hypothesis's reports short
        return "valid"


@pytest.fixture(scope="module")
def valid(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz")
    valid_file = checkpoint_file(folder)
    arrays, meta = model_file.read_archive(valid_file)
    assert {"progress", "early_stopping", "run"} <= set(meta) and "best/0.weight" in arrays
    x, y, _, _ = xpnet.load_digits()
    return Valid((valid_file.read_bytes(), arrays, meta, folder / "case.npz", (x[:64], y[:64])))


def load_is_safe(path, data) -> None:
    """Load ``path``; only success or an XpnetError may come out, within a bounded allocation either way."""
    tracemalloc.start()
    try:
        model = xpnet.load(path)
    except xpnet.XpnetError as error:
        assert "\n" not in str(error)
        model = None
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < PEAK_BYTES
    if model is None:
        return
    x, y = data
    try:
        model.predict(x)
        model.fit(x, y, epochs=1)
    except xpnet.XpnetError:
        pass


mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 2**31), st.integers(1, 255)),
    st.tuples(st.just("truncate"), st.integers(0, 2**31)),
    st.tuples(st.just("insert"), st.integers(0, 2**31), st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("delete"), st.integers(0, 2**31), st.integers(1, 64)),
    st.tuples(st.just("overwrite"), st.integers(0, 2**31), st.binary(min_size=1, max_size=8)),
)


def mutate(data: bytes, mutations) -> bytes:
    data = bytearray(data)
    for kind, position, *rest in mutations:
        if not data:
            break
        position %= len(data)
        if kind == "flip":
            data[position] ^= rest[0]
        elif kind == "truncate":
            del data[position:]
        elif kind == "insert":
            data[position:position] = rest[0]
        elif kind == "delete":
            del data[position : position + rest[0]]
        else:
            data[position : position + len(rest[0])] = rest[0]
    return bytes(data)


@FUZZ
@given(content=st.binary(max_size=2048))
def test_random_bytes(valid, content):
    _, _, _, path, data = valid
    path.write_bytes(content)
    load_is_safe(path, data)


@FUZZ
@given(mutations=st.lists(mutation, min_size=1, max_size=6))
def test_mutated_valid_files(valid, mutations):
    original, _, _, path, data = valid
    path.write_bytes(mutate(original, mutations))
    load_is_safe(path, data)


@FUZZ
@given(choice=st.data(), mutations=st.lists(mutation, min_size=1, max_size=4))
def test_mutated_array_entries_in_a_well_formed_archive(valid, choice, mutations):
    """The zip layer is intact (fresh CRCs) but one .npy entry, header or data, is damaged."""
    _, arrays, meta, path, data = valid
    entries = {**arrays, "meta": np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)}
    target = choice.draw(st.sampled_from(sorted(entries)))
    with zipfile.ZipFile(path, "w") as archive:
        for name, array in entries.items():
            stream = io.BytesIO()
            np.save(stream, array)
            content = stream.getvalue()
            archive.writestr(f"{name}.npy", mutate(content, mutations) if name == target else content)
    load_is_safe(path, data)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


def paths(value, prefix=()):
    """Every place in a JSON tree, as a tuple of keys and indices."""
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from paths(child, (*prefix, index))


@FUZZ
@given(choice=st.data())
def test_mutated_metadata_with_a_valid_checksum(valid, choice):
    """The arrays and checksum are intact; the metadata (settings, layers, history...) is not."""
    _, arrays, meta, path, data = valid
    meta = copy.deepcopy(meta)
    for _ in range(choice.draw(st.integers(1, 3))):
        place = choice.draw(st.sampled_from([p for p in paths(meta) if p and p[0] != "checksum"]))
        parent = meta
        for key in place[:-1]:
            parent = parent[key]
        if isinstance(parent, dict) and choice.draw(st.booleans()):
            del parent[place[-1]]
        else:
            parent[place[-1]] = choice.draw(json_values)
    write_archive(path, arrays, meta)
    load_is_safe(path, data)


def test_the_memory_bound_is_checked_when_a_load_fails(valid, monkeypatch):
    """A refused file that allocated more than the bound still fails ``load_is_safe``."""
    _, _, _, path, data = valid
    path.write_bytes(b"not a model file")
    monkeypatch.setitem(globals(), "PEAK_BYTES", 0)
    with pytest.raises(AssertionError, match=r"assert \d+ < 0"):
        load_is_safe(path, data)
