"""The epoch loop's pieces: the epoch's inputs by rows, and a position inside an epoch that keeps its
steps' outputs, or carries the running sums that files written before outputs were kept hold."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_array, on
from model_files import Crash

import xpnet
from xpnet.arrays import streams
from xpnet.arrays.backend import numpy_backend
from xpnet.errors import StateError
from xpnet.nn import losses
from xpnet.train import checkpoint, model_state
from xpnet.train.loop import EpochInputs, count_correct

SETTINGS = {"hidden": [16], "batch_size": 64, "epochs": 2, "seed": 3}  # 23 steps per epoch on the digits


def test_the_epochs_inputs_are_the_rows_in_its_order_however_gathered(backend):
    """Gathered batch by batch on NumPy, at once elsewhere: the same rows either way."""
    x = np.arange(40, dtype=np.float32).reshape(10, 4)
    order = np.random.default_rng(0).permutation(10)
    inputs = EpochInputs(on(backend, x), on(backend, order))
    for start, stop in [(0, 4), (4, 8), (8, 10)]:
        assert_array(inputs.rows(start, stop), x[order[start:stop]], backend, dtype=backend.xp.float32, rtol=0)


@pytest.fixture
def mid_epoch_state(tmp_path):
    """The state of a run stopped after step 28 (5 batches into epoch 2), and the uninterrupted run."""
    x, y, _, _ = xpnet.load_digits()
    reference = xpnet.Model(**SETTINGS)
    reference.fit(x, y)
    with pytest.raises(RuntimeError, match="simulated crash"):
        xpnet.Model(**SETTINGS).fit(x, y, callbacks=[checkpoint.Checkpointer(tmp_path, every_steps=4), Crash(28)])
    state, _ = model_state.read(tmp_path / checkpoint.CHECKPOINT_FILE)
    return state, reference, (x, y)


def test_a_mid_epoch_state_holds_the_outputs_of_the_batches_done(mid_epoch_state):
    state, _, _ = mid_epoch_state
    assert state["progress"] == {"epoch": 1, "next_batch": 5}
    assert state["progress/outputs"].shape == (5 * 64, 10) and state["progress/outputs"].dtype == np.float32
    assert "progress/total_loss" not in state and "progress/correct" not in state


def test_running_sums_from_an_older_file_carry_into_the_epochs_sums(mid_epoch_state):
    """The older layout: the sums of the batches done instead of their outputs. Training continues to
    the same weights, and the epoch's loss within float32 rounding (the sums were taken in two pieces)."""
    state, reference, (x, y) = mid_epoch_state
    outputs = state.pop("progress/outputs")
    labels = _epoch_labels(state, y)[: outputs.shape[0]]
    loss = losses.get("cross_entropy")
    state["progress/total_loss"] = np.asarray(loss.total(outputs, loss.targets(labels, 10, np.float32)), np.float32)
    state["progress/correct"] = np.asarray(count_correct(outputs, labels), np.int64)
    model = xpnet.Model.from_state(state)
    model.fit(x, y, epochs=1)
    for got, want in zip(model.network.parameters(), reference.network.parameters(), strict=True):
        np.testing.assert_array_equal(got, want)
    assert model.history[1]["train_accuracy"] == reference.history[1]["train_accuracy"]
    assert model.history[1]["train_loss"] == pytest.approx(reference.history[1]["train_loss"], rel=1e-6)


def _epoch_labels(state, y):
    """The labels of epoch 2 in its shuffled order, as the run drew it."""
    order = streams.RandomStream(numpy_backend(), state["config"]["seed"], streams.SHUFFLE, 1).permutation(len(y))
    return np.asarray(y)[order]


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda outputs: outputs[:, :9], "outputs kept in the epoch are malformed"),
        (lambda outputs: outputs[:100], "outputs kept in the epoch are malformed"),
        (lambda outputs: outputs.astype(np.float64), "outputs kept in the epoch are malformed"),
        (lambda outputs: outputs[0], "outputs kept in the epoch are malformed"),
    ],
)
def test_malformed_kept_outputs_are_refused(mid_epoch_state, change, match):
    state, _, _ = mid_epoch_state
    state["progress/outputs"] = change(state["progress/outputs"])
    with pytest.raises(StateError, match=match):
        xpnet.Model.from_state(state)
