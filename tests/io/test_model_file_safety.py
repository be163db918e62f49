"""Model files never execute code and never trust their own claims: pickles, truncation, wrong
shapes or dtypes, newer versions, damaged arrays and lying headers are refused with one clear line."""

from __future__ import annotations

import pickle
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from model_files import npy_bytes, overlapping_archive, trained_model, write_archive

import xpnet
from xpnet.errors import ModelFileError
from xpnet.io import model_file


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A valid model file, its arrays and metadata, and the model it came from."""
    path = tmp_path_factory.mktemp("model") / "model.npz"
    model = trained_model()
    model.save(path)
    arrays, meta = model_file.read_archive(path)
    return path, arrays, meta, model


def refused(path, match: str) -> str:
    with pytest.raises(ModelFileError, match=match) as caught:
        xpnet.load(path)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message
    return message


class Payload:
    """Unpickling this would create a file: proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_valid_file_loads_and_predicts_the_same(saved):
    path, _, _, model = saved
    _, _, x_test, _ = xpnet.load_digits()
    loaded = xpnet.load(path)
    assert np.array_equal(loaded.predict_proba(x_test), model.predict_proba(x_test))
    assert loaded.optimizer.steps == model.optimizer.steps


def test_loading_and_saving_never_use_pickle(saved, tmp_path, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("pickle was used")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, forbidden)
    path, _, _, model = saved
    model.save(tmp_path / "again.npz")
    xpnet.load(tmp_path / "again.npz")
    xpnet.load(path)


@pytest.mark.parametrize("entry", ["param/0.weight", "meta", "optimizer/first_moment/0", "extra"])
def test_a_pickle_payload_is_refused_without_running_it(saved, tmp_path, entry):
    _, arrays, meta, _ = saved
    marker = tmp_path / "code-ran"
    hostile = {**arrays, entry: np.array([Payload(marker)], dtype=object)}
    path = tmp_path / "hostile.npz"
    if entry == "meta":
        np.savez(path, **arrays, meta=np.array([Payload(marker)], dtype=object))
    else:
        write_archive(path, hostile, meta, checksum=False)
    refused(path, "holds pickled Python objects; refusing to load it")
    assert not marker.exists()


@pytest.mark.parametrize("keep", [0, 1, 22, 100, 0.25, 0.5, 0.9, -1])
def test_a_truncated_file_is_refused(saved, tmp_path, keep):
    path, *_ = saved
    data = path.read_bytes()
    cut = keep if isinstance(keep, int) and keep >= 0 else len(data) - 1 if keep == -1 else int(keep * len(data))
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(data[:cut])
    refused(truncated, "truncated or corrupt|not a readable")


def test_a_flipped_bit_in_the_array_bytes_is_caught(saved, tmp_path):
    path, arrays, _, _ = saved
    data = bytearray(path.read_bytes())
    offset = bytes(data).index(arrays["param/0.weight"].tobytes()[:64]) + 7
    data[offset] ^= 0x10
    damaged = tmp_path / "damaged.npz"
    damaged.write_bytes(bytes(data))
    refused(damaged, "truncated or corrupt: Bad CRC-32 for file 'param/0.weight.npy'")


def test_arrays_changed_after_saving_fail_the_checksum(saved, tmp_path):
    _, arrays, meta, _ = saved
    changed = arrays["param/0.weight"].copy()
    changed[3, 4] += 1.0
    write_archive(tmp_path / "changed.npz", {**arrays, "param/0.weight": changed}, meta, checksum=False)
    refused(tmp_path / "changed.npz", "checksum mismatch: the arrays were changed or damaged after saving")


def test_a_newer_format_version_is_refused(saved, tmp_path):
    _, arrays, meta, _ = saved
    write_archive(tmp_path / "future.npz", arrays, {**meta, "version": model_file.FORMAT_VERSION + 1})
    newest = model_file.FORMAT_VERSION
    refused(tmp_path / "future.npz", rf"version {newest + 1} is newer than this xpnet reads \({newest}\); upgrade")


@pytest.mark.parametrize(
    ("name", "replacement", "match"),
    [
        ("param/0.weight", lambda a: a.T.copy(), r"mismatched shapes|layer 0 is invalid: .*got weight \(8, 64\)"),
        ("param/0.bias", lambda a: a[:-1].copy(), r"layer 0 is invalid: .*got weight \(64, 8\) and bias \(7,\)"),
        ("param/2.weight", lambda a: a[None].copy(), r"layer 2 is invalid: .*got weight \(1, 8, 10\)"),
        ("param/0.weight", lambda a: a.astype(np.float64), "layer 0 holds float64 but the model uses float32"),
        ("param/2.bias", lambda a: a.astype(np.int32), "layer 2 holds int32 but the model uses float32"),
        ("param/0.weight", lambda a: np.full_like(a, np.nan), "NaN or infinite weights"),
        ("optimizer/first_moment/1", lambda a: a[:3].copy(), r"optimizer first_moment 1 is float32 \(3,\)"),
        ("optimizer/second_moment/0", lambda a: a.astype(np.float16), "optimizer second_moment 0 is float16"),
    ],
)
def test_wrong_shapes_and_dtypes_are_refused_even_with_a_valid_checksum(saved, tmp_path, name, replacement, match):
    _, arrays, meta, _ = saved
    write_archive(tmp_path / "wrong.npz", {**arrays, name: replacement(arrays[name])}, meta)
    refused(tmp_path / "wrong.npz", match)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda arrays: arrays.pop("param/2.bias"), r"lacks the array 'param/2\.bias'"),
        (lambda arrays: arrays.pop("optimizer/first_moment/3"), r"lacks the array 'optimizer/first_moment/3'"),
        (lambda arrays: arrays.update(surprise=np.zeros(3)), "unexpected array 'surprise'"),
    ],
)
def test_missing_or_extra_arrays_are_refused(saved, tmp_path, change, match):
    _, arrays, meta, _ = saved
    arrays = dict(arrays)
    change(arrays)
    write_archive(tmp_path / "odd.npz", arrays, meta)
    refused(tmp_path / "odd.npz", match)


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("format", "something-else", "not an xpnet model file"),
        ("version", "1", "format version '1' is not valid"),
        ("version", 0, "format version 0 is not valid"),
        ("layers", [{"type": "Conv2D"}], "unknown layer type 'Conv2D'"),
        ("layers", "Dense", "layer list is missing or malformed"),
        ("config", {"hidden": [8], "optimizer": "adagrad"}, "model settings are invalid .*unknown optimizer"),
        ("config", {"lr": "fast"}, "model settings are invalid"),
        ("config", [], "model settings are missing"),
        ("history", {"epoch": 1}, "training history is missing or malformed"),
        ("optimizer_steps", -1, "optimizer step count -1 is invalid"),
        ("n_classes", 3, "3 classes for 10 outputs with loss cross_entropy"),
        ("n_classes", None, "None classes for 10 outputs"),
    ],
)
def test_malformed_metadata_is_refused(saved, tmp_path, field, value, match):
    _, arrays, meta, _ = saved
    write_archive(tmp_path / "meta.npz", arrays, {**meta, field: value})
    refused(tmp_path / "meta.npz", match)


def test_a_header_claiming_billions_of_items_is_refused_before_allocating(saved, tmp_path):
    path = tmp_path / "liar.npz"
    header = {"descr": "<f4", "fortran_order": False, "shape": (10**10,)}
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("param/0.weight.npy", npy_bytes(header, b"\x00" * 16))
    claim = r"claims shape \(10000000000,\) of float32 \(40000000000 bytes\) but holds 16 bytes"
    refused_without_allocating(path, claim)


def test_overlapping_entries_are_refused_before_any_is_read(tmp_path):
    """20 stored entries each spanning the rest of a 1 MB file would expand to 20 MB."""
    path = tmp_path / "bomb.npz"
    overlapping_archive(path, n_entries=20, payload_bytes=2**20)
    refused_without_allocating(path, r"its entries claim \d+ bytes in all but the file has only \d+; they overlap")


def refused_without_allocating(path, match):
    """``path`` is refused with ``match`` before anything near its claimed size is allocated."""
    tracemalloc.start()
    try:
        refused(path, match)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000


@pytest.mark.parametrize("shape", [(-1, 0), (-2, -2), (-4,)])
def test_a_header_with_a_negative_shape_is_refused(tmp_path, shape):
    path = tmp_path / "negative.npz"
    header = {"descr": "<f4", "fortran_order": False, "shape": shape}
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("param/0.weight.npy", npy_bytes(header, b"\x00" * 16))
    refused(path, "claims the impossible shape")


def test_a_zip_entry_claiming_more_bytes_than_the_file_has_is_refused(saved, tmp_path):
    path, *_ = saved
    data = bytearray(path.read_bytes())
    directory = bytes(data).index(b"PK\x01\x02")
    data[directory + 24 : directory + 28] = (0xFFFFFFF0).to_bytes(4, "little")  # uncompressed size
    liar = tmp_path / "liar.npz"
    liar.write_bytes(bytes(data))
    refused(liar, "claims 4294967280 bytes but the file has only")


def test_compressed_entries_are_refused(saved, tmp_path):
    _, arrays, meta, _ = saved
    write_archive(tmp_path / "zipped.npz", arrays, meta, compressed=True)
    refused(tmp_path / "zipped.npz", "is compressed; xpnet model files store arrays plainly")


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", "not a readable xpnet model file"),
        (b"hello, I am a model", "not a readable xpnet model file"),
        (None, "no 'meta' entry"),
    ],
)
def test_files_that_are_not_model_files_are_refused(tmp_path, content, match):
    path = tmp_path / "other.npz"
    if content is None:
        np.savez(path, weights=np.zeros(3))
    else:
        path.write_bytes(content)
    refused(path, match)


def test_missing_files_and_folders_are_refused(tmp_path):
    refused(tmp_path / "absent.npz", "no such model file")
    refused(tmp_path, "no such model file")


def test_a_structured_dtype_is_refused(saved, tmp_path):
    _, arrays, meta, _ = saved
    record = np.zeros(3, dtype=[("a", "<f4"), ("b", "<i4")])
    write_archive(tmp_path / "record.npz", {**arrays, "param/0.bias": record}, meta)
    refused(tmp_path / "record.npz", "only plain numeric arrays are allowed")


# Two epochs as the train command records them: training's keys, validation's, and the test set's.
RECORDS = [
    {
        "epoch": epoch,
        "train_loss": 0.5,
        "seconds": 0.25,
        "train_accuracy": 0.75,
        "val_loss": 0.6,
        "val_accuracy": 0.7,
        "lr": 0.001,
        "test_loss": 0.55,
        "test_accuracy": 0.72,
    }
    for epoch in (1, 2)
]


def test_a_full_history_loads(saved, tmp_path):
    _, arrays, meta, _ = saved
    write_archive(tmp_path / "history.npz", arrays, {**meta, "history": RECORDS})
    assert xpnet.load(tmp_path / "history.npz").history == RECORDS


@pytest.mark.parametrize(
    ("record", "change", "match"),
    [
        (1, lambda record: record.pop("test_loss"), r"history record 2 has test_accuracy but lacks test_loss"),
        (0, lambda record: record.pop("val_accuracy"), r"history record 1 has val_loss but lacks val_accuracy"),
        (0, lambda record: record.pop("train_loss"), r"history record 1 lacks train_loss"),
        (1, lambda record: record.pop("lr"), r"history record 2 lacks lr"),
        (1, lambda record: [record.pop("test_loss"), record.pop("test_accuracy")], r"record 2 lacks test_loss"),
        (0, lambda record: record.update(epoch=3), r"history record 1 is for epoch 3"),
        (0, lambda record: record.update(epoch=1.0), r"history record 1 has epoch 1\.0 \(float\)"),
        (1, lambda record: record.update(train_loss="low"), r"history record 2 has train_loss 'low' \(str\)"),
        (1, lambda record: record.update(train_accuracy=True), r"history record 2 has train_accuracy True"),
        (0, lambda record: record.update(seconds=None), r"history record 1 has seconds None"),
        (0, lambda record: record.update(val_accuracy=[0.5]), r"history record 1 has val_accuracy \[0\.5\]"),
    ],
)
def test_a_malformed_history_record_is_refused(saved, tmp_path, record, change, match):
    _, arrays, meta, _ = saved
    history = [dict(item) for item in RECORDS]
    change(history[record])
    write_archive(tmp_path / "history.npz", arrays, {**meta, "history": history})
    refused(tmp_path / "history.npz", match)


@pytest.mark.parametrize("record", [None, [1, 2], "epoch 1"])
def test_a_history_record_that_is_not_a_mapping_is_refused(saved, tmp_path, record):
    _, arrays, meta, _ = saved
    write_archive(tmp_path / "history.npz", arrays, {**meta, "history": [RECORDS[0], record]})
    refused(tmp_path / "history.npz", r"history record 2 is not a mapping of names to numbers")
