"""Files written before the restructure still load, predict and resume exactly as they did."""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from model_files import Crash

import xpnet
from xpnet.train import checkpoint

FIXTURES = Path(__file__).parents[1] / "fixtures" / "format_v1"


def regression_targets(x):
    """The targets the regressor fixture was trained on (see the fixtures' README)."""
    return np.stack([x[:, :8].sum(axis=1), x[:, 8:16].mean(axis=1)], axis=1).astype(np.float32)


# Predictions are matrix products, whose last bits depend on the BLAS kernel of the machine (OpenBLAS
# picks one per processor): the expected outputs, written on another machine, hold to float32 rounding;
# the weights a file holds load bit for bit everywhere.
FLOAT32_ROUNDING = {"rtol": 2e-6, "atol": 1e-7}


def forward_in_float64(path, x):
    """The MLP a fixture holds (Dense layers with ``activation`` between them), run in float64 by
    plain NumPy from the archive's own entries: a reference independent of xpnet's reader and math."""
    archive = np.load(path)
    meta = json.loads(archive["meta"].tobytes())
    dense = [index for index, layer in enumerate(meta["layers"]) if layer["type"] == "Dense"]
    activation = {"tanh": np.tanh, "relu": lambda z: np.maximum(z, 0.0)}[meta["config"]["activation"]]
    out = x.astype(np.float64)
    for position, index in enumerate(dense):
        out = out @ archive[f"param/{index}.weight"].astype(np.float64) + archive[f"param/{index}.bias"]
        if position < len(dense) - 1:
            out = activation(out)
    return out


def loaded(path) -> xpnet.Model:
    """The model file at ``path`` loaded, its weights shown equal, bit for bit, to the archive's own entries."""
    model = xpnet.load(path)
    archive = np.load(path)
    for name, parameter in zip(model.network.parameter_names(), model.network.parameters()):
        np.testing.assert_array_equal(parameter, archive[f"param/{name}"])
    return model


def test_an_old_classifier_file_predicts_what_it_did():
    expected = np.load(FIXTURES / "expected.npz")
    _, _, x_test, _ = xpnet.load_digits()
    model = loaded(FIXTURES / "classifier.npz")
    probabilities = model.predict_proba(x_test)
    np.testing.assert_allclose(probabilities, expected["classifier_proba"], **FLOAT32_ROUNDING)
    logits = forward_in_float64(FIXTURES / "classifier.npz", x_test)
    reference = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose(probabilities, reference / reference.sum(axis=1, keepdims=True), **FLOAT32_ROUNDING)
    np.testing.assert_array_equal(model.predict(x_test), expected["classifier_labels"])
    assert model.optimizer.steps == 2 * 23  # 1,438 samples in batches of 64, two epochs
    assert [record["epoch"] for record in model.history] == [1, 2]


def test_an_old_regressor_file_predicts_what_it_did():
    expected = np.load(FIXTURES / "expected.npz")
    _, _, x_test, _ = xpnet.load_digits()
    model = loaded(FIXTURES / "regressor.npz")
    outputs = model.predict(x_test)
    np.testing.assert_allclose(outputs, expected["regressor_outputs"], **FLOAT32_ROUNDING)
    np.testing.assert_allclose(outputs, forward_in_float64(FIXTURES / "regressor.npz", x_test), **FLOAT32_ROUNDING)
    assert model.n_classes is None


def test_an_old_regressor_file_keeps_training_like_a_new_one():
    """Its momentum buffers load where the optimizer looks for them: one more epoch equals the same
    epoch of a run trained in one go with today's code, to the float32 rounding by which the file's
    first two epochs (on another machine) differ from this machine's; losing the buffers would put
    it a hundred times further off."""
    x, _, _, _ = xpnet.load_digits()
    targets = regression_targets(x)
    resumed = xpnet.load(FIXTURES / "regressor.npz")
    resumed.fit(x, targets, epochs=1)
    forgetful = xpnet.load(FIXTURES / "regressor.npz")
    for buffer in forgetful.optimizer.state.values():
        for array in buffer:
            array[...] = 0
    forgetful.fit(x, targets, epochs=1)
    settings = dict(hidden=[10], loss="mse", optimizer="nesterov", lr=0.01, epochs=3, batch_size=64, seed=4)
    fresh = xpnet.Model(**settings)
    fresh.fit(x, targets)
    tolerance = {"rtol": 1e-5, "atol": 1e-6}
    for got, want in zip(resumed.network.parameters(), fresh.network.parameters()):
        np.testing.assert_allclose(got, want, **tolerance)
    worst_lost = max(
        np.max(np.abs(lost - want)) for lost, want in zip(forgetful.network.parameters(), fresh.network.parameters())
    )
    assert worst_lost > 100 * tolerance["atol"]


def resumed_to_the_end(run_dir, *, crash_after: int | None = None) -> xpnet.Model:
    """The fixture's checkpoint resumed to the end of its run in ``run_dir``; with ``crash_after``, the
    resumed run first stops after that many steps (checkpointing every step) and is resumed again."""
    shutil.copytree(FIXTURES / "run", run_dir)
    x, y, _, _ = xpnet.load_digits()
    if crash_after is not None:
        model, epochs_left = checkpoint.resume(run_dir)
        with contextlib.suppress(RuntimeError):
            checkpoint.fit(model, x, y, run_dir, epochs=epochs_left, every_steps=1, callbacks=[Crash(crash_after)])
    model, epochs_left = checkpoint.resume(run_dir)
    checkpoint.fit(model, x, y, run_dir, epochs=epochs_left)
    return model


def without_seconds(history):
    return [{key: value for key, value in record.items() if key != "seconds"} for record in history]


def test_an_old_mid_epoch_checkpoint_resumes_where_the_old_code_went(tmp_path):
    """The file is read as it was written: the epochs left, the step count and the history carry on.
    Since the fewer-operations step (issue 14) the softmax cross-entropy gradient and the epoch's loss
    are computed by fewer operations, which round differently in float32's last bit, so the weights and
    losses agree with the old code's uninterrupted run to float32 rounding; bit for bit holds within
    today's code (below)."""
    shutil.copytree(FIXTURES / "run", tmp_path / "probe")
    assert checkpoint.resume(tmp_path / "probe").epochs_left == 2  # epoch 2 stopped half-way counts as one
    model = resumed_to_the_end(tmp_path / "run")
    uninterrupted = xpnet.load(FIXTURES / "run-uninterrupted.npz")
    assert model.optimizer.steps == uninterrupted.optimizer.steps
    for got, want in zip(model.network.parameters(), uninterrupted.network.parameters()):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    got, want = without_seconds(model.history), without_seconds(uninterrupted.history)
    assert [sorted(record) for record in got] == [sorted(record) for record in want]
    for got_record, want_record in zip(got, want):
        assert got_record["epoch"] == want_record["epoch"] and got_record["lr"] == want_record["lr"]
        for key in ("train_loss", "val_loss", "train_accuracy", "val_accuracy"):
            assert got_record[key] == pytest.approx(want_record[key], rel=1e-6, abs=1e-6), key


def test_an_old_checkpoint_stopped_again_after_its_resume_ends_bit_for_bit(tmp_path):
    """Resumed, stopped a second time mid-epoch, and resumed again, the old file's run ends exactly as
    one resume straight through does."""
    straight = resumed_to_the_end(tmp_path / "straight")
    twice = resumed_to_the_end(tmp_path / "twice", crash_after=5)
    for got, want in zip(twice.network.parameters(), straight.network.parameters()):
        np.testing.assert_array_equal(got, want)
    assert without_seconds(twice.history) == without_seconds(straight.history)
    assert twice.optimizer.steps == straight.optimizer.steps
