"""``Model.state_dict`` is the one description of a model: files, checkpoints and pickles hold exactly
it, ``Model.from_state`` rebuilds the same model from it, and a network of your own trains with ``fit``."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import import_torch
from model_files import checkpoint_file

import xpnet
from xpnet.arrays import streams
from xpnet.arrays.backend import to_numpy
from xpnet.errors import SettingError, StateError, XpnetError
from xpnet.io import model_file
from xpnet.train import checkpoint, model_state


@pytest.fixture(scope="module")
def digits():
    return xpnet.load_digits()


def host_state(model) -> dict:
    return {name: to_numpy(value) if hasattr(value, "shape") else value for name, value in model.state_dict().items()}


def test_a_file_holds_exactly_the_state_description(digits, tmp_path):
    x, y, _, _ = digits
    model = xpnet.Model(hidden=[8], epochs=2, early_stopping=3, val_split=0.2, batch_size=128)
    model.fit(x, y)
    model.save(tmp_path / "model.npz")
    state, run = model_file.read(tmp_path / "model.npz")
    described = host_state(model)
    assert run is None and set(state) == set(described)
    for name, value in described.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(state[name], value)
        else:
            assert state[name] == value, name
    names = set(described)
    assert {"param/0.weight", "optimizer/first_moment/3", "best/2.bias", "early_stopping", "history"} <= names


def test_from_state_rebuilds_the_same_model(digits):
    x, y, x_test, _ = digits
    model = xpnet.Model(hidden=[8], dropout=0.2, optimizer="nesterov", lr=0.05, epochs=2, batch_size=128)
    model.fit(x, y)
    rebuilt = xpnet.Model.from_state(host_state(model))
    np.testing.assert_array_equal(rebuilt.predict_proba(x_test), model.predict_proba(x_test))
    assert rebuilt.config == model.config and rebuilt.history == model.history
    assert rebuilt.optimizer.steps == model.optimizer.steps
    model.fit(x, y, epochs=1)
    rebuilt.fit(x, y, epochs=1)
    for got, want in zip(rebuilt.network.parameters(), model.network.parameters()):
        np.testing.assert_array_equal(got, want)


def test_a_mid_epoch_state_keeps_its_position(tmp_path):
    state, _ = model_state.read(checkpoint_file(tmp_path))
    model = xpnet.Model.from_state(state)
    assert model.position is not None and model.position.next_batch == 2 and model.position.epoch == 1
    assert host_state(model).keys() == state.keys()


def test_an_untrained_model_has_no_state_to_give():
    with pytest.raises(XpnetError, match="has not been trained yet"):
        xpnet.Model().state_dict()


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda state: state.pop("config"), "model settings are missing"),
        (lambda state: state.update(optimizer_steps="many"), "optimizer step count 'many' is invalid"),
        (lambda state: state.update({"param/9.weight": np.zeros(3, np.float32)}), "unexpected array 'param/9.weight'"),
        (lambda state: state.update(early_stopping={"best_loss": "low"}), "early-stopping state is malformed"),
        (lambda state: state.update(progress={"epoch": 7, "next_batch": 1}), "position inside the epoch is invalid"),
    ],
)
def test_a_malformed_state_is_refused_whatever_its_source(digits, change, match):
    x, y, _, _ = digits
    model = xpnet.Model(hidden=[8], epochs=1, early_stopping=2, val_split=0.2, batch_size=256)
    model.fit(x, y)
    state = host_state(model)
    change(state)
    with pytest.raises(StateError, match=match):
        xpnet.Model.from_state(state)


def mlp(backend, dtype=np.float32, seed=0) -> xpnet.Network:
    rng = streams.RandomStream(backend, seed, streams.INIT)
    return xpnet.Network.mlp([64, 16, 10], rng, dtype=getattr(backend.xp, np.dtype(dtype).name))


def test_a_network_of_your_own_trains_like_the_built_in_one(digits):
    """``Model(network=...)`` given the network ``Model`` would build trains to the same weights."""
    x, y, _, _ = digits
    settings = {"epochs": 2, "batch_size": 64, "seed": 0}
    built = xpnet.Model(hidden=[16], **settings)
    built.fit(x, y)
    own = xpnet.Model(network=mlp(xpnet.select("cpu")), **settings)
    own.fit(x, y)
    assert own.n_classes == 10
    for got, want in zip(own.network.parameters(), built.network.parameters()):
        np.testing.assert_array_equal(got, want)


def test_a_network_of_your_own_fixes_the_classes(digits):
    x, y, _, _ = digits
    model = xpnet.Model(network=mlp(xpnet.select("cpu")), epochs=1)
    with pytest.raises(XpnetError, match=r"labels include 10 but the model has 10 classes \(0\.\.9\)"):
        model.fit(x, y + 1)


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"hidden": [32]}, r"network= replaces the built-in network that hidden describe: drop it"),
        ({"activation": "tanh", "dropout": 0.5}, r"that activation, dropout describe: drop them"),
        ({"dtype": "float64"}, r"parameters are float32 but dtype='float64'"),
    ],
)
def test_settings_of_the_built_in_network_are_refused_beside_your_own(settings, match):
    with pytest.raises(SettingError, match=match):
        xpnet.Model(network=mlp(xpnet.select("cpu")), **settings)


def test_something_else_than_a_network_is_refused():
    with pytest.raises(SettingError, match=r"network must be an xpnet\.Network with parameters"):
        xpnet.Model(network=[xpnet.Activation("relu")])


def test_a_float64_network_trains_in_float64(digits):
    x, y, _, _ = digits
    model = xpnet.Model(network=mlp(xpnet.select("cpu"), np.float64), epochs=1)
    model.fit(x, y)
    assert model.config.dtype == "float64" and model.network.parameters()[0].dtype == np.float64


def test_a_torch_network_trains_where_it_lives(digits):
    torch = import_torch()
    x, y, x_test, _ = digits
    import array_api_compat.torch as xp

    backend = xpnet.Backend(xp, torch.device("cpu"), "torch")
    model = xpnet.Model(network=mlp(backend), epochs=1, batch_size=128)
    model.fit(x, y)
    assert model.backend.name == "torch"
    assert all(isinstance(p, torch.Tensor) for p in model.network.parameters())
    assert model.predict(x_test).shape == (len(x_test),)


def test_a_network_from_elsewhere_makes_a_model_ready_to_predict(digits, tmp_path):
    """``Model.from_network``: weights trained elsewhere predict, save and load without a ``fit``."""
    _, _, x_test, _ = digits
    network = mlp(xpnet.select("cpu"), seed=3)
    expected = np.argmax(network.forward(x_test), axis=1)
    model = xpnet.Model.from_network(network, lr=0.01)
    assert (model.n_classes, model.history, model.config.lr) == (10, [], 0.01)
    np.testing.assert_array_equal(model.predict(x_test), expected)
    model.save(tmp_path / "elsewhere.npz")
    np.testing.assert_array_equal(xpnet.load(tmp_path / "elsewhere.npz").predict(x_test), expected)
    with pytest.raises(SettingError, match=r"network= replaces the built-in network that hidden describe"):
        xpnet.Model.from_network(network, hidden=[8])


def rewritten(path, change) -> None:
    """The model file at ``path`` rewritten with ``change(state)`` applied, its checksum renewed."""
    state, run = model_file.read(path)
    change(state)
    model_file.write(path, state, version=model_file.read_archive(path)[1]["version"], run=run)


def test_settings_that_disagree_with_the_layers_are_refused_naming_both(digits, tmp_path):
    """Loading a model file or resuming a checkpoint from Python checks the settings' hidden widths
    against the layers the file holds."""
    x, y, _, _ = digits
    model = xpnet.Model(hidden=[16], epochs=1, batch_size=128)
    model.fit(x, y, callbacks=[checkpoint.Checkpointer(tmp_path)])
    model.save(tmp_path / "model.npz")
    for path in (tmp_path / "model.npz", tmp_path / checkpoint.CHECKPOINT_FILE):
        rewritten(path, lambda state: state["config"].update(hidden=[32]))
    message = r"the settings record hidden \[32\] but the layers are \[16\] wide; the file was altered or is corrupt"
    with pytest.raises(xpnet.ModelFileError, match=rf"^{tmp_path / 'model.npz'}: {message}$"):
        xpnet.load(tmp_path / "model.npz")
    with pytest.raises(xpnet.ModelFileError, match=rf"^{tmp_path / checkpoint.CHECKPOINT_FILE}: {message}$"):
        checkpoint.resume(tmp_path)


def test_a_file_written_before_models_recorded_where_their_network_came_from_is_read_by_its_widths(digits, tmp_path):
    """Without the record, settings with the default hidden widths may be a given network's (such a
    file loads); other widths are the built-in network's, checked against its layers."""
    x, y, x_test, _ = digits
    given = xpnet.Model.from_network(mlp(xpnet.select("cpu")))
    given.save(tmp_path / "given.npz")
    built = xpnet.Model(hidden=[16], epochs=1, batch_size=128)
    built.fit(x, y)
    built.save(tmp_path / "built.npz")
    for name in ("given.npz", "built.npz"):
        rewritten(tmp_path / name, lambda state: state.pop(model_state.NETWORK_GIVEN))
    loaded = xpnet.load(tmp_path / "given.npz")
    assert loaded.network_given and loaded.config.hidden == model_state.UNRECORDED_GIVEN_HIDDEN
    np.testing.assert_array_equal(loaded.predict(x_test), given.predict(x_test))
    assert not xpnet.load(tmp_path / "built.npz").network_given
    rewritten(tmp_path / "built.npz", lambda state: state["config"].update(hidden=[32]))
    with pytest.raises(xpnet.ModelFileError, match=r"settings record hidden \[32\] but the layers are \[16\] wide"):
        xpnet.load(tmp_path / "built.npz")


def test_a_given_network_loads_whatever_widths_its_settings_hold(digits, tmp_path):
    """A network given to the model is described by its layers alone: settings naming other widths
    (in a ``TrainConfig`` passed beside it) do not stop its file loading; a malformed record does."""
    x, y, _, _ = digits
    model = xpnet.Model(xpnet.TrainConfig(hidden=[32], epochs=1), network=mlp(xpnet.select("cpu")))
    model.fit(x, y)
    model.save(tmp_path / "given.npz")
    assert xpnet.load(tmp_path / "given.npz").network_given
    rewritten(tmp_path / "given.npz", lambda state: state.update({model_state.NETWORK_GIVEN: "yes"}))
    with pytest.raises(xpnet.ModelFileError, match=r"network_given 'yes' is not true or false; the file is corrupt"):
        xpnet.load(tmp_path / "given.npz")
