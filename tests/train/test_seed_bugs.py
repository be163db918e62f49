"""The failures reported in the posts that motivated xpnet, reproduced: each one is either impossible
in xpnet or stopped with a message that names the cause.

- Softmax overflow (``RuntimeWarning: overflow encountered in exp``) and outputs that all converge on
  one class, with pixels left at 0..255 or a learning rate too large.
- Softmax normalised over the wrong axis (over the samples of the batch instead of the classes).
- Gradients with the wrong axes: transposed weight gradients hidden by square matrices, bias gradients
  summed over the wrong axis, no division by the batch size.
- Accuracy stuck near chance (10-17%) with no hint why: unscaled inputs, learning rate, or labels
  that no longer match their inputs.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from conftest import assert_array, float64, on

from xpnet import Dense, Model, Network, TrainingDiverged, XpnetWarning, gradcheck, load_digits
from xpnet.arrays.backend import to_numpy
from xpnet.nn.layers import Activation
from xpnet.nn.losses import softmax_cross_entropy

N_SAMPLES = 600


@pytest.fixture(scope="module")
def digits():
    x_train, y_train, x_test, y_test = load_digits()
    return x_train[:N_SAMPLES], y_train[:N_SAMPLES], x_test, y_test


def unscaled(x: np.ndarray) -> np.ndarray:
    """Pixels as 8-bit images have them, 0..255, as in the posts that forgot to divide by 255."""
    return x * np.float32(255.0)


def test_unscaled_pixels_give_finite_losses_and_no_overflow(backend, digits):
    x, y, x_test, y_test = digits
    model = Model(device="auto", hidden=[32], epochs=5)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # NumPy's "overflow encountered in exp"
        history = model.fit(on(backend, unscaled(x)), on(backend, y))
    assert all(np.isfinite(record["train_loss"]) for record in history)
    assert history[-1]["train_loss"] < history[0]["train_loss"] / 4
    assert model.evaluate(on(backend, unscaled(x_test)), on(backend, y_test))["accuracy"] > 0.3


def test_unscaled_pixels_that_stall_training_get_a_warning_naming_the_scale(digits):
    x, y, _, _ = digits
    model = Model(device="cpu", hidden=[32], epochs=3, optimizer="sgd", lr=0.1)
    with pytest.warns(XpnetWarning, match="about chance level") as record:
        model.fit(unscaled(x), y)
    message = str(record[0].message)
    assert "inputs reach 255: scale them to about [0, 1] (for 8-bit pixels, divide by 255)" in message
    assert "the learning rate 0.1 may be too high or too low for sgd" in message


def test_labels_shuffled_apart_from_their_inputs_get_a_warning_naming_the_causes(digits):
    x, y, _, _ = digits
    shuffled = np.random.default_rng(0).permutation(y)
    with pytest.warns(XpnetWarning, match=r"after 3 epochs, about chance level \(10\.0%\)") as record:
        Model(device="cpu", hidden=[32], epochs=3).fit(x, shuffled)
    message = str(record[0].message)
    assert "labels may not match their inputs (shuffled separately, or off by one)" in message
    assert "the learning rate 0.001 may be too high or too low for adam" in message
    assert "inputs reach" not in message  # these inputs are scaled: no false hint


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # NumPy notices the overflow the test provokes
def test_a_huge_learning_rate_stops_with_the_epoch_and_rate_and_keeps_the_last_good_state(digits):
    x, y, _, _ = digits
    settings = {"hidden": [32], "optimizer": "momentum", "lr": 0.2, "loss": "mse", "activation": "tanh"}
    targets = y[:300].astype(np.float32)
    diverging = Model(device="cpu", epochs=5, **settings)
    with pytest.raises(TrainingDiverged, match=r"diverged in epoch 2: .* learning rate 0\.2 \(momentum\)") as error:
        diverging.fit(x[:300], targets)
    assert "Try a learning rate 10x smaller (lr=0.02)" in str(error.value)
    stable = Model(device="cpu", epochs=1, **settings)
    stable.fit(x[:300], targets)
    # The model is left exactly as after epoch 1: weights, optimizer state and history.
    assert len(diverging.history) == 1 and diverging.optimizer.steps == stable.optimizer.steps == 10
    for kept, expected in zip(diverging.network.parameters(), stable.network.parameters()):
        assert np.all(np.isfinite(to_numpy(kept)))
        np.testing.assert_array_equal(to_numpy(kept), to_numpy(expected))
    for kept, expected in zip(diverging.optimizer.state["velocity"], stable.optimizer.state["velocity"]):
        np.testing.assert_array_equal(to_numpy(kept), to_numpy(expected))
    assert np.all(np.isfinite(diverging.predict(x[:10])))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # NumPy notices the overflow the test provokes
def test_divergence_with_unscaled_inputs_says_to_scale_them(digits):
    x, y, _, _ = digits
    model = Model(device="cpu", hidden=[32], epochs=3, optimizer="sgd", lr=0.1, loss="mse")
    with pytest.raises(TrainingDiverged, match=r"inputs reach 255: scale them to about \[0, 1\]"):
        model.fit(unscaled(x[:300]), y[:300].astype(np.float32))
    assert model.optimizer.steps == 0 and all(np.all(np.isfinite(to_numpy(p))) for p in model.network.parameters())


def test_each_sample_is_normalised_over_its_own_classes_not_over_the_batch(backend, digits):
    x, y, _, _ = digits
    model = Model(device="auto", hidden=[16], epochs=1)
    model.fit(on(backend, x), on(backend, y))
    alone = to_numpy(model.predict_proba(on(backend, x[:5])))
    in_a_batch = to_numpy(model.predict_proba(on(backend, x[:200])))[:5]
    np.testing.assert_allclose(alone, in_a_batch, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(alone.sum(axis=1), 1.0, rtol=1e-5)


def square_network(backend, seed: int = 0) -> Network:
    """10 -> 10 -> 10: square weights, where a transposed gradient keeps the right shape."""
    rng = np.random.default_rng(seed)
    dtype = float64(backend)
    return Network(
        [
            Dense(on(backend, rng.normal(size=(10, 10)), dtype), on(backend, rng.normal(size=10), dtype)),
            Activation("relu"),
            Dense(on(backend, rng.normal(size=(10, 10)), dtype), on(backend, rng.normal(size=10), dtype)),
        ]
    )


def test_square_weight_gradients_are_not_transposed(backend):
    rng = np.random.default_rng(1)
    x, labels = on(backend, rng.normal(size=(7, 10))), on(backend, rng.integers(0, 10, size=7))
    errors = gradcheck(square_network(backend), x, labels, max_entries=100)
    assert max(errors.values()) <= 1e-5  # a transposed gradient would be off by order 1


def test_gradients_are_averaged_over_the_batch(backend):
    rng = np.random.default_rng(2)
    x, labels = rng.normal(size=(6, 10)), rng.integers(0, 10, size=6)
    network = square_network(backend)

    def gradients(inputs, targets):
        _, grad_outputs = softmax_cross_entropy(network.forward(on(backend, inputs)), on(backend, targets))
        network.backward(grad_outputs)
        return [to_numpy(g) for g in network.gradients()]

    once = gradients(x, labels)
    twice = gradients(np.concatenate([x, x]), np.concatenate([labels, labels]))
    for single, doubled, parameter in zip(once, twice, network.parameters()):
        assert single.shape == tuple(parameter.shape)  # the bias gradient is summed over the samples
        np.testing.assert_allclose(doubled, single, rtol=1e-12, atol=1e-15)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # NumPy notices the overflow the test provokes
def test_weights_broken_by_an_epochs_last_step_are_caught_by_the_validation_loss(digits):
    x, y, x_test, y_test = digits
    model = Model(device="cpu", hidden=[16], epochs=3, optimizer="sgd", lr=1e30, batch_size=32)
    # One batch per epoch: its training loss is computed before the step that breaks the weights.
    with pytest.raises(TrainingDiverged, match=r"diverged in epoch 1: .* learning rate 1e\+30 \(sgd\)"):
        model.fit(x[:32], y[:32], validation_data=(x_test[:50], y_test[:50]))
    assert model.history == [] and model.optimizer.steps == 0
    assert np.all(np.isfinite(model.predict_proba(x_test[:50])))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # NumPy notices the overflow the test provokes
def test_weights_broken_by_the_last_step_are_caught_without_validation_data(digits):
    x, y, x_test, _ = digits
    model = Model(device="cpu", hidden=[16], epochs=1, optimizer="sgd", lr=1e30, batch_size=32)
    # One batch, one epoch, no validation: only a loss computed after the step can see the broken weights.
    with pytest.raises(TrainingDiverged, match=r"diverged in epoch 1: .* learning rate 1e\+30 \(sgd\)"):
        model.fit(x[:32], y[:32])
    assert model.history == [] and model.optimizer.steps == 0
    assert np.all(np.isfinite(model.predict_proba(x_test[:50])))


@pytest.mark.parametrize("pixel_dtype", [np.uint8, np.int64])  # raw image bytes, or integers read from a CSV
def test_integer_pixels_train_in_float32_without_overflow(backend, digits, pixel_dtype):
    x, y, x_test, _ = digits
    pixels = np.round(unscaled(x)).astype(pixel_dtype)
    model = Model(device="auto", hidden=[32], epochs=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        history = model.fit(on(backend, pixels), on(backend, y))
    assert all(np.isfinite(record["train_loss"]) for record in history)
    for parameter in model.network.parameters():
        assert_array(parameter, to_numpy(parameter), backend, dtype=backend.xp.float32)
    probabilities = model.predict_proba(on(backend, np.round(unscaled(x_test)).astype(pixel_dtype)))
    assert_array(probabilities, to_numpy(probabilities), backend, dtype=backend.xp.float32)


def test_two_classes_learning_slowly_get_no_chance_warning_and_shuffled_ones_do():
    x, y, _, _ = load_digits()
    zeros_and_ones = y < 2
    x, y = x[zeros_and_ones], y[zeros_and_ones]
    slow = Model(device="cpu", hidden=[16], epochs=3)
    slow.fit(x, y)  # XpnetWarning is an error in the tests: this fails if it warns
    assert 0.6 < slow.history[-1]["train_accuracy"] < 0.75  # well above chance (50%) but below 1.5x chance
    with pytest.warns(XpnetWarning, match=r"about chance level \(50\.0%\)"):
        Model(device="cpu", hidden=[16], epochs=3).fit(x, np.random.default_rng(0).permutation(y))


def test_accuracy_far_below_chance_is_called_below_chance_not_about_it():
    """Labels shifted by one after two good epochs: the network answers the old labels, nearly always wrong."""
    x, y, _, _ = load_digits()
    x, y = x[y < 3], y[y < 3]
    model = Model(device="cpu", hidden=[16], lr=0.01, epochs=2)
    model.fit(x, y)
    assert model.history[-1]["train_accuracy"] > 0.9
    model.config = model.config.replace(lr=1e-12)  # too small to unlearn the old labels in one epoch
    with pytest.warns(XpnetWarning, match=r"accuracy is \d\.\d% after 3 epochs, below chance level \(33\.3%\)"):
        model.fit(x, (y + 1) % 3, epochs=1)
