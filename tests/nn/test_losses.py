"""Losses on every backend against PyTorch: softmax cross-entropy stays finite for any logits, integer
labels and one-hot rows give the same answer, and mean squared error matches ``MSELoss``."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_array, float64, import_torch, on

from xpnet import XpnetError
from xpnet.arrays.backend import to_numpy
from xpnet.nn.activations import sigmoid
from xpnet.nn.losses import LOSSES, mean_squared_error, one_hot, softmax, softmax_cross_entropy

torch = import_torch()
F = torch.nn.functional


def torch_loss_and_gradient(loss, outputs: np.ndarray, targets: np.ndarray, dtype=torch.float64):
    """Loss value and gradient w.r.t. the outputs, by PyTorch autograd."""
    tensor = torch.tensor(outputs, dtype=dtype, requires_grad=True)
    target = torch.tensor(targets) if targets.dtype.kind == "i" else torch.tensor(targets, dtype=dtype)
    value = loss(tensor, target)
    value.backward()
    return value.detach().numpy(), tensor.grad.numpy()


HUGE_LOGITS = np.array(
    [
        [1e4, -1e4, 0.0],
        [-1e4, -1e4, 1e4],
        [1e4, 1e4, -1e4],
        [-1e4, 0.0, 1e4],
    ],
    dtype=np.float32,
)
HUGE_LABELS = np.array([0, 0, 1, 1])


def test_cross_entropy_is_finite_and_exact_for_logits_of_1e4_in_float32(backend):
    xp = backend.xp
    loss, grad = softmax_cross_entropy(on(backend, HUGE_LOGITS), on(backend, HUGE_LABELS))
    expected_loss, expected_grad = torch_loss_and_gradient(F.cross_entropy, HUGE_LOGITS, HUGE_LABELS)
    # Per row: 0, 2e4, log 2 and 1e4 (the label's logit is that far below the largest).
    assert float(expected_loss) == pytest.approx((2e4 + np.log(2) + 1e4) / 4)
    assert_array(loss, expected_loss, backend, dtype=xp.float32, rtol=1e-6)
    assert_array(grad, expected_grad, backend, dtype=xp.float32, rtol=1e-6, atol=1e-7)
    assert np.all(np.isfinite(to_numpy(grad)))


def test_softmax_rows_sum_to_one_for_logits_of_1e4(backend):
    probabilities = softmax(on(backend, HUGE_LOGITS))
    expected = np.array([[1, 0, 0], [0, 0, 1], [0.5, 0.5, 0], [0, 0, 1]])
    assert_array(probabilities, expected, backend, dtype=backend.xp.float32, atol=1e-7)


def test_cross_entropy_matches_torch_on_moderate_logits(backend):
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=3.0, size=(7, 5)).astype(np.float32)
    labels = rng.integers(0, 5, size=7)
    loss, grad = softmax_cross_entropy(on(backend, logits), on(backend, labels))
    expected_loss, expected_grad = torch_loss_and_gradient(F.cross_entropy, logits, labels)
    assert_array(loss, expected_loss, backend, dtype=backend.xp.float32, rtol=1e-6)
    assert_array(grad, expected_grad, backend, dtype=backend.xp.float32, rtol=1e-5, atol=1e-7)


def test_cross_entropy_matches_torch_for_probability_targets(backend):
    float64(backend)
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(6, 4))
    targets = rng.dirichlet(np.ones(4), size=6)
    loss, grad = softmax_cross_entropy(on(backend, logits), on(backend, targets))
    expected_loss, expected_grad = torch_loss_and_gradient(F.cross_entropy, logits, targets)
    assert_array(loss, expected_loss, backend, dtype=backend.xp.float64, rtol=1e-12)
    assert_array(grad, expected_grad, backend, dtype=backend.xp.float64, rtol=1e-12, atol=1e-15)


def test_integer_labels_and_one_hot_rows_give_identical_loss_and_gradient(backend):
    rng = np.random.default_rng(2)
    logits = on(backend, rng.normal(size=(8, 3)).astype(np.float32))
    labels = rng.integers(0, 3, size=8)
    by_label = softmax_cross_entropy(logits, on(backend, labels))
    by_one_hot = softmax_cross_entropy(logits, on(backend, np.eye(3, dtype=np.float32)[labels]))
    for from_labels, from_one_hot in zip(by_label, by_one_hot):
        assert_array(from_labels, to_numpy(from_one_hot), backend, dtype=backend.xp.float32, rtol=0)


def test_one_hot_is_built_on_the_labels_device(backend):
    encoded = one_hot(on(backend, np.array([2, 0, 1])), 4, backend.xp.float32)
    assert_array(encoded, np.eye(4)[[2, 0, 1]], backend, dtype=backend.xp.float32, rtol=0)


@pytest.mark.parametrize("target_shape", [(5, 2), (5,)])
def test_mean_squared_error_matches_torch(backend, target_shape):
    rng = np.random.default_rng(3)
    n_outputs = target_shape[1] if len(target_shape) == 2 else 1
    outputs = rng.normal(size=(5, n_outputs)).astype(np.float32)
    targets = rng.normal(size=target_shape).astype(np.float32)
    loss, grad = mean_squared_error(on(backend, outputs), on(backend, targets))
    expected_loss, expected_grad = torch_loss_and_gradient(F.mse_loss, outputs, targets.reshape(5, n_outputs))
    assert_array(loss, expected_loss, backend, dtype=backend.xp.float32, rtol=1e-6)
    assert_array(grad, expected_grad, backend, dtype=backend.xp.float32, rtol=1e-6, atol=1e-8)


def test_targets_of_the_wrong_shape_are_refused_by_name(backend):
    logits = on(backend, np.zeros((4, 3), dtype=np.float32))
    with pytest.raises(XpnetError, match=r"targets of shape \(4, 2\) do not match outputs \(4, 3\)"):
        softmax_cross_entropy(logits, on(backend, np.zeros((4, 2), dtype=np.float32)))
    with pytest.raises(XpnetError, match=r"targets of shape \(4, 2\) do not match outputs \(4, 3\)"):
        mean_squared_error(logits, on(backend, np.zeros((4, 2), dtype=np.float32)))


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_totals_of_parts_are_each_parts_total_from_one_pass(backend, name):
    """``totals`` sums the loss over consecutive runs of rows (an epoch's outputs and another batch's)
    as ``total`` does for each, and ``total`` over the rows is the mean ``loss(...)`` gives, times rows."""
    xp = backend.xp
    rng = np.random.default_rng(4)
    loss = LOSSES[name]
    outputs = on(backend, rng.normal(scale=3.0, size=(9, 4)), xp.float32)
    targets = loss.targets(on(backend, rng.integers(0, 4, size=9)), 4, xp.float32)
    if name != "cross_entropy":  # float targets, non-negative for the Poisson loss
        targets = on(backend, rng.uniform(size=(9, 4)), xp.float32)
    first, rest = loss.totals(outputs, targets[:6, ...], targets[6:, ...])
    for part, (start, stop) in zip((first, rest), ((0, 6), (6, 9))):
        expected = to_numpy(loss.total(outputs[start:stop, ...], targets[start:stop, ...]))
        assert_array(part, expected, backend, dtype=xp.float32, rtol=1e-6)
    mean, _ = loss(outputs, targets)
    assert_array(loss.total(outputs, targets), 9 * to_numpy(mean), backend, dtype=xp.float32, rtol=1e-6)


def _bce_summed_per_row(logits, targets):
    return F.binary_cross_entropy_with_logits(logits, targets, reduction="sum") / logits.shape[0]


def _half_mse(outputs, targets):
    return F.mse_loss(outputs, targets) / 2


def _poisson_log_input(outputs, targets):
    """exp(z) - y*z summed over a row, averaged over rows."""
    return F.poisson_nll_loss(outputs, targets, log_input=True, reduction="sum") / outputs.shape[0]


@pytest.mark.parametrize(
    ("name", "reference"),
    [("binary_cross_entropy", _bce_summed_per_row), ("squared_error", _half_mse), ("poisson", _poisson_log_input)],
)
def test_float_target_losses_match_torch(backend, name, reference):
    """The scikit-learn losses: sigmoid cross-entropy summed over a row's outputs, half the mean squared
    error, and the Poisson loss on log-means, each against PyTorch's value and autograd gradient."""
    float64(backend)
    rng = np.random.default_rng(5)
    outputs = rng.normal(scale=2.0, size=(6, 3))
    counts = rng.integers(0, 2, size=(6, 3)) if name == "binary_cross_entropy" else rng.poisson(2.0, size=(6, 3))
    targets = counts.astype(np.float64)
    loss, grad = LOSSES[name](on(backend, outputs), on(backend, targets))
    expected_loss, expected_grad = torch_loss_and_gradient(reference, outputs, targets)
    assert_array(loss, expected_loss, backend, dtype=backend.xp.float64, rtol=1e-12)
    assert_array(grad, expected_grad, backend, dtype=backend.xp.float64, rtol=1e-12, atol=1e-15)


def test_binary_cross_entropy_and_sigmoid_stay_finite_for_logits_of_1e4(backend):
    targets = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1]], dtype=np.float32)
    loss, grad = LOSSES["binary_cross_entropy"](on(backend, HUGE_LOGITS), on(backend, targets))
    expected_loss, expected_grad = torch_loss_and_gradient(_bce_summed_per_row, HUGE_LOGITS, targets, torch.float32)
    assert_array(loss, expected_loss, backend, dtype=backend.xp.float32, rtol=1e-6)
    assert_array(grad, expected_grad, backend, dtype=backend.xp.float32, rtol=1e-6, atol=1e-7)
    expected_sigmoid = np.where(HUGE_LOGITS > 0, 1.0, np.where(HUGE_LOGITS < 0, 0.0, 0.5))
    assert_array(sigmoid(on(backend, HUGE_LOGITS)), expected_sigmoid, backend, dtype=backend.xp.float32, rtol=0)
