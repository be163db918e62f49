"""Save -> load round trips: predictions, optimizer state, settings and history come back exactly, a
loaded model trains on as if never saved, and a file written on one backend loads on any other."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_array, float64, on

import xpnet
from xpnet import Model, load_digits
from xpnet.arrays.backend import to_numpy

SETTINGS = {"hidden": [16], "batch_size": 32, "lr": 0.01, "dropout": 0.1, "schedule": "cosine", "epochs": 4}


@pytest.fixture(scope="module")
def digits():
    x_train, y_train, x_test, y_test = load_digits()
    return x_train[:240], y_train[:240], x_test[:100], y_test[:100]


@pytest.fixture(scope="module")
def trained(digits, tmp_path_factory):
    """A NumPy model trained for two of its four epochs, and the file it was saved to."""
    x, y, x_test, y_test = digits
    model = Model(device="cpu", optimizer="adam", seed=7, **SETTINGS)
    model.fit(x, y, validation_data=(x_test, y_test), epochs=2)
    path = tmp_path_factory.mktemp("models") / "digits.npz"
    model.save(path)
    return model, path


def host_arrays(arrays) -> list[np.ndarray]:
    return [to_numpy(array) for array in arrays]


def test_a_loaded_model_predicts_exactly_as_the_saved_one(trained, digits):
    model, path = trained
    _, _, x_test, y_test = digits
    loaded = xpnet.load(path)
    np.testing.assert_array_equal(loaded.predict_proba(x_test), model.predict_proba(x_test))
    np.testing.assert_array_equal(loaded.predict(x_test), model.predict(x_test))
    assert loaded.evaluate(x_test, y_test) == model.evaluate(x_test, y_test)


def test_settings_history_and_optimizer_state_round_trip(trained):
    model, path = trained
    loaded = xpnet.load(path)
    assert loaded.config == model.config
    assert loaded.history == model.history and loaded.epochs_done == 2
    assert loaded.n_classes == model.n_classes == 10
    assert loaded.optimizer.config() == model.optimizer.config()
    assert loaded.optimizer.steps == model.optimizer.steps == 16
    assert set(loaded.optimizer.state) == {"first_moment", "second_moment"}
    for name, buffers in model.optimizer.state.items():
        for saved, restored in zip(host_arrays(buffers), host_arrays(loaded.optimizer.state[name])):
            assert restored.dtype == np.float32
            np.testing.assert_array_equal(restored, saved)
    assert [layer.config() for layer in loaded.network.layers] == [layer.config() for layer in model.network.layers]


def test_a_loaded_model_trains_on_exactly_as_if_never_saved(trained, digits):
    _, path = trained
    x, y, x_test, y_test = digits
    loaded = xpnet.load(path)
    loaded.fit(x, y, validation_data=(x_test, y_test), epochs=2)
    uninterrupted = Model(device="cpu", optimizer="adam", seed=7, **SETTINGS)
    uninterrupted.fit(x, y, validation_data=(x_test, y_test))
    for resumed, expected in zip(loaded.network.parameters(), uninterrupted.network.parameters()):
        np.testing.assert_array_equal(resumed, expected)
    assert without_seconds(loaded.history) == without_seconds(uninterrupted.history)


def without_seconds(history: list[dict]) -> list[dict]:
    return [{key: value for key, value in record.items() if key != "seconds"} for record in history]


def test_a_numpy_file_loads_and_trains_on_every_backend(trained, digits, backend):
    model, path = trained
    x, y, x_test, _ = digits
    loaded = xpnet.load(path, device=on(backend, np.zeros(1, dtype=np.float32)))  # namespace and device from data
    assert loaded.backend.xp is backend.xp and loaded.backend.device == backend.device
    for parameter, saved in zip(loaded.network.parameters(), host_arrays(model.network.parameters())):
        assert_array(parameter, saved, backend, dtype=backend.xp.float32, rtol=0)
    for buffer in loaded.optimizer.state["first_moment"]:
        assert_array(buffer, to_numpy(buffer), backend, dtype=backend.xp.float32)
    probabilities = loaded.predict_proba(on(backend, x_test))
    assert_array(probabilities, model.predict_proba(x_test), backend, dtype=backend.xp.float32, rtol=1e-5, atol=1e-7)
    loaded.fit(on(backend, x), on(backend, y), epochs=1)
    assert loaded.epochs_done == 3 and loaded.optimizer.steps == 24
    for parameter in loaded.network.parameters():
        assert_array(parameter, to_numpy(parameter), backend, dtype=backend.xp.float32)


def test_a_model_trained_on_another_backend_loads_on_the_cpu(backend, digits, tmp_path):
    float64(backend)
    x, y, x_test, _ = digits
    model = Model(device="auto", optimizer="momentum", dtype="float64", **SETTINGS)
    model.fit(on(backend, x), on(backend, y), epochs=1)
    model.save(tmp_path / "model.npz")
    loaded = xpnet.load(tmp_path / "model.npz", device="cpu")
    assert loaded.backend.is_numpy and loaded.config.dtype == "float64"
    for restored, saved in zip(loaded.network.parameters(), host_arrays(model.network.parameters())):
        assert restored.dtype == np.float64
        np.testing.assert_array_equal(restored, saved)
    np.testing.assert_allclose(
        loaded.predict_proba(x_test), to_numpy(model.predict_proba(on(backend, x_test))), rtol=1e-10, atol=1e-14
    )
    for restored, saved in zip(loaded.optimizer.state["velocity"], host_arrays(model.optimizer.state["velocity"])):
        np.testing.assert_array_equal(restored, saved)
