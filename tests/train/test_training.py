"""``Model.fit`` end to end on every backend: warm starts continue one run exactly, seeds reproduce,
dtypes are kept, early stopping restores the best weights, and prediction agrees with evaluation."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_array, float64, import_torch, on

import xpnet
from xpnet import Backend, EarlyStopping, Model, XpnetError, load_digits
from xpnet.arrays.backend import default_integer, to_numpy

N_TRAIN, N_TEST = 240, 120
SMALL = {"hidden": [16], "batch_size": 32, "lr": 0.01}
HISTORY_KEYS = {"epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "seconds"}


@pytest.fixture(scope="module")
def digits():
    """A small slice of the embedded digits: enough to learn from in a few epochs."""
    x_train, y_train, x_test, y_test = load_digits()
    return x_train[:N_TRAIN], y_train[:N_TRAIN], x_test[:N_TEST], y_test[:N_TEST]


def parameters_of(model: Model) -> list[np.ndarray]:
    return [to_numpy(p) for p in model.network.parameters()]


def without_seconds(history: list[dict]) -> list[dict]:
    return [{key: value for key, value in record.items() if key != "seconds"} for record in history]


def assert_same_run(first: Model, second: Model, *, exact: bool) -> None:
    for a, b in zip(parameters_of(first), parameters_of(second)):
        if exact:
            np.testing.assert_array_equal(a, b)
        else:
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    if exact:
        assert without_seconds(first.history) == without_seconds(second.history)


def test_warm_started_epochs_equal_one_long_fit(backend, digits):
    x, y, x_test, y_test = (on(backend, array) for array in digits)
    settings = {**SMALL, "epochs": 4, "optimizer": "adam", "dropout": 0.2, "schedule": "cosine", "seed": 3}
    long_run = Model(device="auto", **settings)
    long_run.fit(x, y, validation_data=(x_test, y_test))
    warm = Model(device="auto", **settings)
    for _ in range(4):
        warm.fit(x, y, validation_data=(x_test, y_test), epochs=1)
    assert [record["epoch"] for record in warm.history] == [1, 2, 3, 4]
    assert [record["lr"] for record in warm.history] == [record["lr"] for record in long_run.history]
    assert_same_run(long_run, warm, exact=backend.is_numpy)
    assert warm.optimizer.steps == long_run.optimizer.steps == 4 * 8
    for name, buffers in long_run.optimizer.state.items():
        for a, b in zip(buffers, warm.optimizer.state[name]):
            np.testing.assert_allclose(to_numpy(a), to_numpy(b), rtol=1e-5, atol=1e-7)


def test_the_same_seed_gives_the_same_run_and_another_seed_another(digits):
    x, y, _, _ = digits
    runs = [Model(device="cpu", epochs=2, seed=seed, dropout=0.1, **SMALL) for seed in (5, 5, 6)]
    for model in runs:
        model.fit(x, y)
    assert_same_run(runs[0], runs[1], exact=True)
    assert not np.array_equal(parameters_of(runs[0])[0], parameters_of(runs[2])[0])
    assert runs[0].history[-1]["train_loss"] != runs[2].history[-1]["train_loss"]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("optimizer", ["adam", "nesterov"])
def test_the_dtype_is_kept_end_to_end(backend, digits, dtype, optimizer):
    xp = backend.xp
    expected = float64(backend) if dtype == "float64" else xp.float32
    x, y, x_test, _ = digits
    # Inputs come in float64 and must not pull a float32 model up to float64.
    model = Model(device="auto", epochs=1, optimizer=optimizer, dtype=dtype, **SMALL)
    model.fit(on(backend, x.astype(np.float64)), on(backend, y))
    for parameter in model.network.parameters():
        assert_array(parameter, to_numpy(parameter), backend, dtype=expected)
    for buffers in model.optimizer.state.values():
        for buffer in buffers:
            assert_array(buffer, to_numpy(buffer), backend, dtype=expected)
    probabilities = model.predict_proba(on(backend, x_test))
    assert_array(probabilities, to_numpy(probabilities), backend, dtype=expected)
    assert isinstance(model.history[0]["train_loss"], float)


def test_fit_trains_on_every_backend_and_results_stay_on_its_device(backend, digits):
    x, y, x_test, y_test = (on(backend, array) for array in digits)
    model = Model(device="auto", epochs=3, **SMALL)
    history = model.fit(x, y, validation_data=(x_test, y_test))
    assert model.backend.xp is backend.xp and model.backend.device == backend.device
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert history[-1]["val_accuracy"] > 0.6
    labels = model.predict(x_test)
    assert_array(labels, to_numpy(labels), backend, dtype=default_integer(backend.xp, backend.device))
    assert tuple(labels.shape) == (N_TEST,)


def test_predict_predict_proba_and_evaluate_agree(backend, digits):
    x, y, x_test, y_test = digits
    model = Model(device="auto", epochs=3, **SMALL)
    model.fit(on(backend, x), on(backend, y))
    probabilities = to_numpy(model.predict_proba(on(backend, x_test)))
    labels = to_numpy(model.predict(on(backend, x_test)))
    assert probabilities.shape == (N_TEST, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(labels, probabilities.argmax(axis=1))
    result = model.evaluate(on(backend, x_test), on(backend, y_test))
    assert result["accuracy"] == pytest.approx(np.mean(labels == y_test))
    cross_entropy = -np.mean(np.log(probabilities[np.arange(N_TEST), y_test]))
    assert result["loss"] == pytest.approx(cross_entropy, rel=1e-4)
    assert model.evaluate(on(backend, x_test), on(backend, np.eye(10, dtype=np.float32)[y_test])) == result


def test_host_inputs_get_host_answers_from_a_model_on_another_library(digits):
    torch = import_torch()
    x, y, x_test, _ = digits
    model = Model(device="auto", epochs=1, **SMALL)
    model.fit(torch.asarray(x), torch.asarray(y))
    assert model.backend.name == "torch"
    assert isinstance(model.predict(x_test), np.ndarray)
    assert isinstance(model.predict(torch.asarray(x_test)), torch.Tensor)


def test_tensors_that_record_gradients_train_like_plain_ones_and_are_left_alone(digits):
    """PyTorch refuses ``out=`` writes among tensors it tracks; xpnet takes such inputs without their
    graph, so they train exactly as the same values would, and the caller's tensors keep tracking."""
    torch = import_torch()
    x, y, x_test, _ = digits
    tracked = torch.asarray(x).requires_grad_(True)
    models = [Model(device="auto", epochs=2, **SMALL) for _ in range(2)]
    models[0].fit(tracked, torch.asarray(y), validation_data=(tracked[:50], torch.asarray(y[:50])))
    models[1].fit(torch.asarray(x), torch.asarray(y), validation_data=(torch.asarray(x[:50]), torch.asarray(y[:50])))
    assert_same_run(models[0], models[1], exact=True)
    assert tracked.requires_grad and tracked.grad is None
    np.testing.assert_array_equal(
        to_numpy(models[0].predict(torch.asarray(x_test).requires_grad_(True))),
        to_numpy(models[1].predict(torch.asarray(x_test))),
    )


def test_history_records_every_field_and_continues_across_fits(digits):
    x, y, x_test, y_test = digits
    model = Model(device="cpu", epochs=2, **SMALL)
    model.fit(x, y, validation_data=(x_test, y_test))
    history = model.fit(x, y, validation_data=(x_test, y_test), epochs=1)
    assert history is model.history and len(history) == 3
    assert [record["epoch"] for record in history] == [1, 2, 3]
    for record in history:
        assert set(record) == HISTORY_KEYS
        assert all(isinstance(record[key], float) for key in HISTORY_KEYS - {"epoch"})
        assert 0.0 <= record["train_accuracy"] <= 1.0 and record["seconds"] >= 0.0
    assert history[-1]["val_loss"] == pytest.approx(model.evaluate(x_test, y_test)["loss"], rel=1e-6)


def test_early_stopping_stops_and_restores_the_best_weights(digits):
    x, y, x_test, y_test = digits
    model = Model(device="cpu", hidden=[64], epochs=60, lr=0.01, batch_size=8, early_stopping=3)
    history = model.fit(x[:60], y[:60], validation_data=(x_test, y_test))
    val_losses = [record["val_loss"] for record in history]
    best = int(np.argmin(val_losses))
    assert len(history) == best + 1 + 3 < 60  # stopped three epochs after the best one
    assert model.evaluate(x_test, y_test)["loss"] == pytest.approx(val_losses[best], rel=1e-6)


def test_early_stopping_without_validation_data_is_refused_before_any_training(digits):
    x, y, _, _ = digits
    by_setting = Model(device="cpu", epochs=1, early_stopping=2, **SMALL)
    by_callback = Model(device="cpu", epochs=1, **SMALL)
    for model, callbacks in ((by_setting, ()), (by_callback, [EarlyStopping(2)])):
        with pytest.raises(XpnetError, match="early stopping needs validation data: set val_split"):
            model.fit(x, y, callbacks=callbacks)
        assert model.history == [] and model.optimizer.steps == 0 and model.network is None


def test_val_split_holds_out_that_fraction_of_the_training_data(digits):
    x, y, _, _ = digits
    model = Model(device="cpu", epochs=2, val_split=0.25, **SMALL)
    history = model.fit(x, y)
    n_val = N_TRAIN // 4
    for record in history:
        assert record["val_accuracy"] * n_val == pytest.approx(round(record["val_accuracy"] * n_val))
        assert record["train_accuracy"] * (N_TRAIN - n_val) == pytest.approx(
            round(record["train_accuracy"] * (N_TRAIN - n_val))
        )
    with pytest.raises(XpnetError, match=r"val_split 0\.999 leaves no training data"):
        Model(device="cpu", epochs=1, val_split=0.999, **SMALL).fit(x[:10], y[:10])


def test_regression_with_mean_squared_error(backend):
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(200, 3)).astype(np.float32)
    y = (np.sin(2 * x[:, 0]) + x[:, 1] * x[:, 2]).astype(np.float32)
    model = Model(device="auto", loss="mse", hidden=[32], activation="tanh", epochs=25, lr=0.01, batch_size=16)
    history = model.fit(on(backend, x), on(backend, y))
    assert history[-1]["train_loss"] < 0.2 * history[0]["train_loss"]
    assert history[-1]["train_accuracy"] is None
    outputs = model.predict(on(backend, x))
    assert_array(outputs, to_numpy(outputs), backend, dtype=backend.xp.float32)
    assert tuple(outputs.shape) == (200, 1)
    mse = float(np.mean((to_numpy(outputs)[:, 0] - y) ** 2))
    assert model.evaluate(on(backend, x), on(backend, y)) == {"loss": pytest.approx(mse, rel=1e-4), "accuracy": None}
    with pytest.raises(XpnetError, match="predict_proba needs a classifier"):
        model.predict_proba(on(backend, x))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_inputs_holding_one_non_finite_value_are_refused_on_every_backend(backend, digits, bad):
    """The check reads only the inputs' largest and smallest values: NaN propagates through both."""
    x, y, _, _ = digits
    x = x.copy()
    x[17, 5] = bad
    with pytest.raises(XpnetError, match="training inputs contain NaN or infinite values"):
        Model(device=backend, epochs=1, **SMALL).fit(on(backend, x), on(backend, y))


def test_bad_training_input_is_refused_with_what_to_do(digits):
    x, y, _, _ = digits
    model = Model(device="cpu", epochs=1, **SMALL)
    with pytest.raises(XpnetError, match="has not been trained yet: call fit first"):
        model.predict(x)
    with pytest.raises(XpnetError, match=r"got shape \(240, 8, 8\); flatten images first"):
        model.fit(x.reshape(-1, 8, 8), y)
    with pytest.raises(XpnetError, match="240 samples but 239 labels"):
        model.fit(x, y[:-1])
    with pytest.raises(XpnetError, match=r"labels must be 0\.\.K-1 but include -1"):
        model.fit(x, y - 1)
    with pytest.raises(XpnetError, match="contain NaN or infinite values"):
        model.fit(np.where(x > 0.5, np.nan, x), y)
    with pytest.raises(XpnetError, match="epochs must be a positive integer, got 0"):
        model.fit(x, y, epochs=0)


def test_float32_trains_on_a_device_without_float64_which_refuses_float64_by_name(digits):
    strict = pytest.importorskip("array_api_strict")
    no_float64 = Backend(strict, strict.Device("no_float64"), "array_api_strict")
    x, y, x_test, y_test = (on(no_float64, array) for array in digits)
    # Every part that could create a float64 array on the way: dropout, a validation split, Adam, early stopping.
    model = Model(device="auto", epochs=3, dropout=0.1, val_split=0.2, early_stopping=2, **SMALL)
    model.fit(x, y)
    for array in [*model.network.parameters(), *model.optimizer.state["second_moment"]]:
        assert_array(array, to_numpy(array), no_float64, dtype=strict.float32)
    probabilities = model.predict_proba(x_test)
    assert_array(probabilities, to_numpy(probabilities), no_float64, dtype=strict.float32)
    assert model.evaluate(x_test, y_test)["accuracy"] > 0.3
    with pytest.raises(XpnetError, match=r"no_float64'\) does not support float64: use dtype='float32'"):
        Model(device="auto", epochs=1, dtype="float64", **SMALL).fit(x, y)


def test_one_hot_rows_give_their_width_as_the_classes_even_for_classes_absent_so_far(digits):
    x, y, x_test, y_test = digits
    without_nines = y != 9
    one_hot = np.eye(10, dtype=np.float32)
    model = Model(device="cpu", epochs=1, **SMALL)
    model.fit(x[without_nines], one_hot[y[without_nines]])
    assert model.n_classes == 10 and model.predict_proba(x_test).shape == (N_TEST, 10)
    model.fit(x, one_hot[y], epochs=1)  # the nines arrive later: the same network takes them
    assert model.epochs_done == 2
    with pytest.raises(XpnetError, match="evaluation one-hot rows have 12 columns but the model has 10 classes"):
        model.evaluate(x_test, np.eye(12, dtype=np.float32)[y_test])


def test_a_column_of_labels_is_read_as_labels_not_as_one_hot_rows(digits):
    x, y, _, _ = digits
    runs = [Model(device="cpu", epochs=1, **SMALL) for _ in range(2)]
    runs[0].fit(x, y)
    runs[1].fit(x, y[:, None])
    assert runs[1].n_classes == 10
    assert_same_run(runs[0], runs[1], exact=True)


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("seed", -1, "seed must be a non-negative integer, got -1"),
        ("seed", 1.5, "seed must be a non-negative integer, got 1.5"),
        ("batch_size", 32.5, "batch size must be a positive integer, got 32.5"),
        ("epochs", "3", "epochs must be a positive integer, got '3'"),
        ("epochs", True, "epochs must be a positive integer, got True"),
        ("early_stopping", True, r"early stopping patience \(in epochs\) must be a positive integer, got True"),
        ("early_stopping", 2.5, r"early stopping patience \(in epochs\) must be a positive integer, got 2.5"),
        ("warmup_epochs", 1.5, "warmup_epochs must be a non-negative integer, got 1.5"),
    ],
)
def test_integer_settings_are_refused_by_name_before_training(setting, value, message):
    with pytest.raises(XpnetError, match=message):
        Model(device="cpu", **{setting: value})


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("lr", float("inf"), "lr must be a finite number, got inf"),
        ("lr", float("nan"), "lr must be a finite number, got nan"),
        ("weight_decay", float("nan"), "weight_decay must be a finite number, got nan"),
        ("momentum", float("inf"), "momentum must be a finite number, got inf"),
        ("dropout", float("nan"), "dropout must be a finite number, got nan"),
        ("val_split", "0.1", "val_split must be a number, got '0.1'"),
        ("tf32", 1, "tf32 must be true or false, got 1"),
    ],
)
def test_non_finite_or_mistyped_settings_are_refused_as_value_errors(setting, value, message):
    """NaN passes every range check (``nan < 0`` is false), so it is refused by name; a bad setting is a
    ``ValueError``, as Python and scikit-learn code expect of a bad argument."""
    with pytest.raises(ValueError, match=message) as raised:
        Model(device="cpu", **{setting: value})
    assert isinstance(raised.value, XpnetError)


def test_numpy_booleans_are_plain_flags():
    assert Model(device="cpu", tf32=np.bool_(True)).config.tf32 is True


def test_numpy_integer_settings_train_and_save_as_plain_integers(digits, tmp_path):
    x, y, _, _ = digits
    settings = {"seed": np.int64(4), "batch_size": np.int32(32), "epochs": np.int64(1)}  # as from a parameter grid
    model = Model(device="cpu", hidden=[16], lr=0.01, **settings)
    model.fit(x, y)
    model.save(tmp_path / "model.npz")
    assert xpnet.load(tmp_path / "model.npz").config.to_dict() == model.config.to_dict()
    reference = Model(device="cpu", hidden=[16], lr=0.01, seed=4, batch_size=32, epochs=1)
    reference.fit(x, y)
    assert_same_run(model, reference, exact=True)


def test_a_step_that_breaks_the_weights_at_the_end_of_training_is_caught_without_validation(monkeypatch):
    """With no validation data the epoch's loss was taken before its last update: the weights are checked."""
    x, y, _, _ = xpnet.load_digits()
    model = xpnet.Model(device="cpu", hidden=[8], epochs=1)
    model.fit(x[:64], y[:64])
    kept = [np.array(p) for p in model.network.parameters()]
    original_step = model.optimizer.step

    def breaking_step(params, grads, lr):
        new = original_step(params, grads, lr)
        new[0][...] = np.nan
        return new

    monkeypatch.setattr(model.optimizer, "step", breaking_step)
    with pytest.raises(xpnet.TrainingDiverged, match="training diverged in epoch 2"):
        model.fit(x[:64], y[:64], epochs=1)
    for before, after in zip(kept, model.network.parameters(), strict=True):
        np.testing.assert_array_equal(before, after)


def test_training_past_the_end_of_a_cosine_schedule_warns():
    x, y, _, _ = xpnet.load_digits()
    model = xpnet.Model(device="cpu", hidden=[8], epochs=2, schedule="cosine")
    model.fit(x[:64], y[:64])
    with pytest.warns(
        xpnet.XpnetWarning, match="cosine schedule spans epochs==2, so epochs 3 to 4 train at learning rate 0"
    ):
        model.fit(x[:64], y[:64], epochs=2)


def test_select_accepts_a_backend_as_it_is():
    backend = xpnet.select("cpu")
    assert xpnet.select(backend) is backend


@pytest.mark.parametrize("labels", [np.array(["cat", "dog"] * 5), np.array([True, False] * 5)])
def test_labels_that_are_not_integers_are_refused_with_how_to_map_them(labels):
    x = np.random.default_rng(0).normal(size=(10, 3)).astype(np.float32)
    with pytest.raises(XpnetError, match=r"labels must be integers 0\.\.K-1, got dtype .*: map them first, e\.g\. "):
        Model(device="cpu", epochs=1, **SMALL).fit(x, labels)
    _, mapped = np.unique(labels, return_inverse=True)  # the mapping the message suggests works
    model = Model(device="cpu", epochs=1, **SMALL)
    model.fit(x, mapped)
    assert model.n_classes == 2


def test_validation_data_with_other_features_is_refused_before_training(digits):
    x, y, x_test, y_test = digits
    model = Model(device="cpu", epochs=1, **SMALL)
    with pytest.raises(XpnetError, match="validation inputs have 10 features but the training inputs have 64"):
        model.fit(x, y, validation_data=(x_test[:, :10], y_test))
    assert model.history == [] and model.optimizer.steps == 0


def test_a_single_sample_given_as_a_vector_gets_the_reshape_for_one_sample(digits):
    x, y, _, _ = digits
    model = Model(device="cpu", epochs=1, **SMALL)
    model.fit(x, y)
    with pytest.raises(XpnetError, match=r"got shape \(64,\); for one sample use x\.reshape\(1, -1\)"):
        model.predict(x[0])
    assert model.predict(x[0].reshape(1, -1)).shape == (1,)


def test_regression_targets_of_another_width_are_refused_before_training():
    x = np.random.default_rng(0).normal(size=(40, 3)).astype(np.float32)
    model = Model(device="cpu", loss="mse", epochs=1, **SMALL)
    with pytest.raises(XpnetError, match="validation targets have 2 columns but the model has 1 outputs"):
        model.fit(x, x[:, 0], validation_data=(x, x[:, :2]))
    assert model.history == [] and model.optimizer.steps == 0
    model.fit(x, x[:, :2])
    with pytest.raises(XpnetError, match="training targets have 1 columns but the model has 2 outputs"):
        model.fit(x, x[:, 0])
    assert model.epochs_done == 1 and model.optimizer.steps == 2
