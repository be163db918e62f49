"""Files written before the restructure still load, predict and resume exactly as they did."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

import xpnet
from xpnet.train import checkpoint

FIXTURES = Path(__file__).parents[1] / "fixtures" / "format_v1"


def regression_targets(x):
    """The targets the regressor fixture was trained on (see the fixtures' README)."""
    return np.stack([x[:, :8].sum(axis=1), x[:, 8:16].mean(axis=1)], axis=1).astype(np.float32)


def test_an_old_classifier_file_predicts_what_it_did():
    expected = np.load(FIXTURES / "expected.npz")
    _, _, x_test, _ = xpnet.load_digits()
    model = xpnet.load(FIXTURES / "classifier.npz")
    np.testing.assert_array_equal(model.predict_proba(x_test), expected["classifier_proba"])
    np.testing.assert_array_equal(model.predict(x_test), expected["classifier_labels"])
    assert model.optimizer.steps == 2 * 23  # 1,438 samples in batches of 64, two epochs
    assert [record["epoch"] for record in model.history] == [1, 2]


def test_an_old_regressor_file_predicts_what_it_did():
    expected = np.load(FIXTURES / "expected.npz")
    _, _, x_test, _ = xpnet.load_digits()
    model = xpnet.load(FIXTURES / "regressor.npz")
    np.testing.assert_array_equal(model.predict(x_test), expected["regressor_outputs"])
    assert model.n_classes is None


def test_an_old_regressor_file_keeps_training_like_a_new_one():
    """Its momentum buffers load where the optimizer looks for them: one more epoch equals the same
    epoch of a run trained in one go with today's code."""
    x, _, _, _ = xpnet.load_digits()
    targets = regression_targets(x)
    resumed = xpnet.load(FIXTURES / "regressor.npz")
    resumed.fit(x, targets, epochs=1)
    settings = dict(hidden=[10], loss="mse", optimizer="nesterov", lr=0.01, epochs=3, batch_size=64, seed=4)
    fresh = xpnet.Model(**settings)
    fresh.fit(x, targets)
    for got, want in zip(resumed.network.parameters(), fresh.network.parameters()):
        np.testing.assert_array_equal(got, want)


def test_an_old_mid_epoch_checkpoint_resumes_bit_for_bit(tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(FIXTURES / "run", run_dir)
    x, y, _, _ = xpnet.load_digits()
    model, epochs_left = checkpoint.resume(run_dir)
    assert epochs_left == 2  # epoch 2 stopped half-way counts as one
    checkpoint.fit(model, x, y, run_dir, epochs=epochs_left)
    uninterrupted = xpnet.load(FIXTURES / "run-uninterrupted.npz")
    for got, want in zip(model.network.parameters(), uninterrupted.network.parameters()):
        np.testing.assert_array_equal(got, want)

    def without_seconds(history):
        return [{key: value for key, value in record.items() if key != "seconds"} for record in history]

    assert without_seconds(model.history) == without_seconds(uninterrupted.history)
    assert model.optimizer.steps == uninterrupted.optimizer.steps
