"""Layer types by name: xpnet's own are registered, a user's own layer joins them with
``xpnet.register_layer``, and a model file naming a type nobody registered is refused by name."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from array_api_compat import array_namespace
from model_files import trained_model, write_archive

import xpnet
from xpnet.errors import ModelFileError, SettingError, StateError
from xpnet.io import model_file
from xpnet.nn.layers import LAYER_TYPES, registered_layer


class Scale(xpnet.Layer):
    """Multiplies each feature by a learned factor: a layer with a parameter and a setting."""

    PARAMETERS = ("factor",)

    def __init__(self, factor, *, note: str = ""):
        super().__init__()
        self.params = {"factor": factor}
        self.note = note

    def forward(self, x, *, training=False, rng=None):
        self._input = x
        return x * self.params["factor"]

    def backward(self, grad_output):
        xp = array_namespace(grad_output)
        self.grads["factor"] = xp.sum(grad_output * self._input, axis=0)
        return grad_output * self.params["factor"]

    def settings(self):
        return {"note": self.note}


@pytest.fixture
def registered_scale(monkeypatch):
    """``Scale`` registered for one test only."""
    monkeypatch.setitem(LAYER_TYPES, "Scale", Scale)
    return Scale


def scale_network(width: int = 64, seed: int = 0) -> xpnet.Network:
    backend = xpnet.select("cpu")
    from xpnet.arrays import streams

    rng = streams.RandomStream(backend, seed, streams.INIT)
    return xpnet.Network(
        [
            Scale(np.ones(width, dtype=np.float32), note="per pixel"),
            xpnet.Dense.initialized(width, 12, "he_normal", np.float32, rng),
            xpnet.Activation("relu"),
            xpnet.Dense.initialized(12, 10, "glorot_uniform", np.float32, rng),
        ]
    )


def test_the_built_in_layers_are_registered_by_their_names():
    assert {name: registered_layer(name) for name in ("Dense", "Activation", "Dropout")} == {
        "Dense": xpnet.Dense,
        "Activation": xpnet.Activation,
        "Dropout": xpnet.Dropout,
    }


def test_registering_is_idempotent_and_returns_the_class(registered_scale):
    assert xpnet.register_layer(registered_scale) is registered_scale
    assert registered_layer("Scale") is registered_scale


def test_another_class_under_a_taken_name_is_refused(registered_scale):
    impostor = type("Scale", (xpnet.Layer,), {"__module__": "somewhere.else"})
    with pytest.raises(SettingError, match=r"a layer type named 'Scale' is registered already \(.*Scale\); rename"):
        xpnet.register_layer(impostor)
    assert registered_layer("Scale") is registered_scale


@pytest.mark.parametrize("not_a_layer", [int, object(), "Dense"])
def test_only_layer_classes_can_be_registered(not_a_layer):
    with pytest.raises(SettingError, match=r"register_layer takes a subclass of xpnet\.Layer"):
        xpnet.register_layer(not_a_layer)


@pytest.mark.parametrize("name", ["Scale", "os.system", "__import__('os')", None, ["Dense"]])
def test_an_unregistered_name_is_refused_by_name_and_nothing_is_imported(name):
    modules = set(sys.modules)
    with pytest.raises(StateError, match=r"unknown layer type .*register_layer"):
        registered_layer(name)
    assert set(sys.modules) == modules


def test_a_model_file_naming_an_unregistered_layer_is_refused(tmp_path, registered_scale):
    x, y, _, _ = xpnet.load_digits()
    model = xpnet.Model(network=scale_network(), epochs=1, batch_size=256)
    model.fit(x, y)
    model.save(tmp_path / "scale.npz")
    del LAYER_TYPES["Scale"]  # a process that never registered it
    with pytest.raises(ModelFileError, match=r"scale\.npz: unknown layer type 'Scale'.*register_layer"):
        xpnet.load(tmp_path / "scale.npz")


def test_a_custom_layer_trains_saves_loads_and_trains_on_bit_for_bit(tmp_path, registered_scale):
    """Two epochs, a save and a load, then a third, equal three epochs in one go."""
    x, y, x_test, _ = xpnet.load_digits()
    settings = {"epochs": 3, "batch_size": 64, "optimizer": "momentum", "lr": 0.05}
    model = xpnet.Model(network=scale_network(), **settings)
    model.fit(x, y, epochs=2)
    model.save(tmp_path / "scale.npz")
    loaded = xpnet.load(tmp_path / "scale.npz")
    assert isinstance(loaded.network.layers[0], Scale) and loaded.network.layers[0].note == "per pixel"
    np.testing.assert_array_equal(loaded.predict_proba(x_test), model.predict_proba(x_test))
    loaded.fit(x, y, epochs=1)
    straight = xpnet.Model(network=scale_network(), **settings)
    straight.fit(x, y)
    for got, want in zip(loaded.network.parameters(), straight.network.parameters()):
        np.testing.assert_array_equal(got, want)
    assert not np.array_equal(loaded.network.layers[0].params["factor"], np.ones(64))  # the factor learned


def test_a_registered_layer_refusing_a_files_settings_is_named(tmp_path, registered_scale):
    model = trained_model()
    arrays, meta = model_file.read_archive(_saved(model, tmp_path))
    layers = [*meta["layers"], {"type": "Scale", "note": "x", "unknown": 1}]
    arrays = {**arrays, f"param/{len(layers) - 1}.factor": np.ones(10, dtype=np.float32)}
    write_archive(tmp_path / "odd.npz", arrays, {**meta, "layers": layers})
    with pytest.raises(ModelFileError, match=r"layer 3 is invalid: .*unexpected keyword argument 'unknown'"):
        xpnet.load(tmp_path / "odd.npz")


def _saved(model, tmp_path):
    path = tmp_path / "model.npz"
    model.save(path)
    return path
