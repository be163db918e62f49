"""``Model.fit(sample_weight=...)``: each batch's loss is the weighted mean of its rows' losses, on
minibatches and with L-BFGS; bad weights are refused by name."""

from __future__ import annotations

import numpy as np
import pytest

import xpnet
from xpnet.errors import XpnetError

SETTINGS = {"hidden": [16], "epochs": 2, "batch_size": 64, "seed": 1}


@pytest.fixture(scope="module")
def digits():
    x, y, _, _ = xpnet.load_digits()
    return x, y


def test_equal_weights_train_exactly_as_no_weights(digits):
    x, y = digits
    plain, weighted = xpnet.Model(**SETTINGS), xpnet.Model(**SETTINGS)
    plain.fit(x, y)
    weighted.fit(x, y, sample_weight=np.full(len(x), 2.0))
    for ours, theirs in zip(weighted.network.parameters(), plain.network.parameters(), strict=True):
        np.testing.assert_array_equal(ours, theirs)
    # The same losses, summed in another order.
    for ours, theirs in zip(weighted.history, plain.history, strict=True):
        assert ours["train_loss"] == pytest.approx(theirs["train_loss"], rel=1e-6)


@pytest.mark.filterwarnings("ignore:training accuracy is:xpnet.errors.XpnetWarning")  # three plain SGD steps
@pytest.mark.parametrize("optimizer", ["sgd", "lbfgs"])
def test_rows_of_zero_weight_train_as_if_left_out(digits, optimizer):
    """Full batches without a penalty: the weighted mean over every row is the mean over those kept."""
    x, y = digits
    kept = np.arange(len(x)) % 3 != 0
    settings = {
        "optimizer": optimizer,
        "hidden": [8],
        "epochs": 3,
        "batch_size": len(x),
        "shuffle": False,
        "dtype": "float64",
        "lr": 0.5,
        "lbfgs_iterations": 10,
    }
    weighted, subset = xpnet.Model(**settings), xpnet.Model(**settings)
    weighted.fit(x, y, sample_weight=kept.astype(float))
    subset.fit(x[kept], y[kept], n_classes=10)
    for ours, theirs in zip(weighted.network.parameters(), subset.network.parameters(), strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-9)
    for ours, theirs in zip(weighted.history, subset.history, strict=True):
        assert ours["train_loss"] == pytest.approx(theirs["train_loss"], rel=1e-9)


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        (np.ones(5), r"sample_weight must hold one number per sample \(1438\), got shape \(5,\)"),
        (-np.ones(1438), r"sample_weight must be finite and non-negative, and not all zero"),
        (np.zeros(1438), r"sample_weight must be finite and non-negative, and not all zero"),
        (np.full(1438, np.nan), r"sample_weight must be finite and non-negative, and not all zero"),
    ],
)
def test_bad_weights_are_refused_by_name(digits, weights, message):
    x, y = digits
    with pytest.raises(XpnetError, match=message):
        xpnet.Model(**SETTINGS).fit(x, y, sample_weight=weights)


def test_weights_with_a_validation_split_say_how_to_validate(digits):
    x, y = digits
    with pytest.raises(XpnetError, match=r"hold them out yourself and pass validation_data=\(x_val, y_val\)"):
        xpnet.Model(**SETTINGS, val_split=0.2).fit(x, y, sample_weight=np.ones(len(x)))
