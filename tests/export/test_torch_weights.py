"""Weights both ways with PyTorch: ``xpnet.torch_state_dict`` fits a ``torch.nn.Sequential`` with the same
layers at the same indices, that Sequential computes what xpnet computes, and ``xpnet.from_torch`` brings a
Sequential back as an xpnet model with the very same weights; nothing is pickled on xpnet's side."""

from __future__ import annotations

import pickle
import sys

import numpy as np
import pytest
from conftest import import_torch
from export_models import digits_model, model_with_own_layer

import xpnet
from xpnet.errors import XpnetError
from xpnet.nn.activations import ACTIVATIONS, LEAKY_RELU_SLOPE

DTYPES = ("float32", "float64")
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def torch():
    return import_torch()


@pytest.fixture(scope="module")
def digits():
    return xpnet.load_digits()


def activation_module(torch, name: str):
    """xpnet's activation ``name`` as the torch module a PyTorch user would write by hand."""
    return {
        "gelu": lambda: torch.nn.GELU(approximate="tanh"),
        "identity": torch.nn.Identity,
        "leaky_relu": lambda: torch.nn.LeakyReLU(LEAKY_RELU_SLOPE),
        "relu": torch.nn.ReLU,
        "sigmoid": torch.nn.Sigmoid,
        "tanh": torch.nn.Tanh,
    }[name]()


def hand_written_sequential(torch, activation: str, dtype: str):
    """The Sequential of a 64-32-16-10 network with dropout, as a PyTorch user writes it."""
    nn, dtype = torch.nn, getattr(torch, dtype)
    return nn.Sequential(
        nn.Linear(64, 32, dtype=dtype),
        activation_module(torch, activation),
        nn.Dropout(0.2),
        nn.Linear(32, 16, dtype=dtype),
        activation_module(torch, activation),
        nn.Dropout(0.2),
        nn.Linear(16, 10, dtype=dtype),
    )


def torch_probabilities(torch, sequential, x) -> np.ndarray:
    with torch.no_grad():
        return torch.softmax(sequential(torch.from_numpy(x)), dim=1).numpy()


def test_the_state_dict_holds_each_dense_layer_at_its_index_transposed(torch):
    model = digits_model("relu", "float32", dropout=0.2)
    state = xpnet.torch_state_dict(model)
    assert sorted(state) == ["0.bias", "0.weight", "3.bias", "3.weight", "6.bias", "6.weight"]
    for index in (0, 3, 6):
        params = model.network.layers[index].params
        assert isinstance(state[f"{index}.weight"], torch.Tensor) and state[f"{index}.weight"].dtype == torch.float32
        np.testing.assert_array_equal(state[f"{index}.weight"].numpy(), params["weight"].T)
        np.testing.assert_array_equal(state[f"{index}.bias"].numpy(), params["bias"])


def test_the_state_dict_is_a_copy(torch, digits):
    model = digits_model("tanh", "float32", dropout=0.2)
    before = model.predict_proba(digits[2])
    for tensor in xpnet.torch_state_dict(model).values():
        tensor.zero_()
    np.testing.assert_array_equal(model.predict_proba(digits[2]), before)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_a_round_trip_through_a_sequential_keeps_the_model(torch, digits, activation, dtype):
    """xpnet -> state dict -> a hand-written nn.Sequential (its outputs are xpnet's) -> xpnet (the same model)."""
    model = digits_model(activation, dtype, dropout=0.2)
    x = digits[2].astype(dtype)
    sequential = hand_written_sequential(torch, activation, dtype)
    sequential.load_state_dict(xpnet.torch_state_dict(model))  # strict: every key, every shape
    sequential.eval()
    probabilities = model.predict_proba(x)
    np.testing.assert_allclose(torch_probabilities(torch, sequential, x), probabilities, rtol=0, atol=TOLERANCE)

    back = xpnet.from_torch(sequential)
    assert back.config.dtype == dtype and back.n_classes == 10
    assert back.network.state_dict()["layers"] == model.network.state_dict()["layers"]
    for got, want in zip(back.network.parameters(), model.network.parameters()):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(back.predict_proba(x), probabilities)


@pytest.mark.parametrize("dtype", DTYPES)
def test_torch_sequential_computes_what_xpnet_computes(torch, digits, dtype):
    model = digits_model("gelu", dtype, dropout=0.2)
    sequential = xpnet.torch_sequential(model)
    assert not sequential.training
    assert [type(module).__name__ for module in sequential] == [
        "Linear",
        "GELU",
        "Dropout",
        "Linear",
        "GELU",
        "Dropout",
        "Linear",
    ]
    assert {parameter.dtype for parameter in sequential.parameters()} == {getattr(torch, dtype)}
    x = digits[2].astype(dtype)
    np.testing.assert_allclose(torch_probabilities(torch, sequential, x), model.predict_proba(x), atol=TOLERANCE)


def test_a_torch_regression_network_comes_to_xpnet(torch, tmp_path):
    torch.manual_seed(0)
    sequential = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    model = xpnet.from_torch(sequential, loss="mse")
    x = np.random.default_rng(0).standard_normal((50, 3), dtype=np.float32)
    with torch.no_grad():
        expected = sequential(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(model.predict(x), expected, rtol=TOLERANCE, atol=1e-6)
    assert model.n_classes is None
    model.save(tmp_path / "from_torch.npz")
    np.testing.assert_array_equal(xpnet.load(tmp_path / "from_torch.npz").predict(x), model.predict(x))


def test_a_model_from_torch_owns_its_weights_and_trains(torch, digits):
    sequential = xpnet.torch_sequential(digits_model("relu", "float32", dropout=0.2))
    model = xpnet.from_torch(sequential, epochs=1)
    before = model.predict_proba(digits[2])
    with torch.no_grad():
        for parameter in sequential.parameters():
            parameter.zero_()
    np.testing.assert_array_equal(model.predict_proba(digits[2]), before)
    model.fit(digits[0], digits[1])
    assert len(model.history) == 1 and not np.array_equal(model.predict_proba(digits[2]), before)


def test_nothing_is_pickled_on_xpnets_side(torch, digits, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("pickled")

    for owner, name in [(torch, "save"), (torch, "load"), (pickle, "dumps"), (pickle, "loads")]:
        monkeypatch.setattr(owner, name, refuse)
    model = digits_model("relu", "float32", dropout=0.2)
    back = xpnet.from_torch(xpnet.torch_sequential(model))
    np.testing.assert_array_equal(back.predict_proba(digits[2]), model.predict_proba(digits[2]))


@pytest.mark.parametrize(
    ("module", "match"),
    [
        (lambda nn: nn.GELU(), r"module 1 of the Sequential, GELU\(approximate='none'\), has no xpnet layer"),
        (lambda nn: nn.LeakyReLU(0.2), r"module 1 of the Sequential, LeakyReLU\(negative_slope=0\.2\), has no xpnet"),
        (lambda nn: nn.Linear(4, 4, bias=False), r"module 1 of the Sequential, Linear\(.*bias=False\), has no xpnet"),
        (
            lambda nn: nn.Softmax(dim=1),
            r"module 1 of the Sequential, Softmax\(dim=1\), has no xpnet layer: xpnet takes",
        ),
    ],
)
def test_a_module_without_an_xpnet_layer_is_refused_by_name(torch, module, match):
    sequential = torch.nn.Sequential(torch.nn.Linear(3, 4), module(torch.nn), torch.nn.Linear(4, 2))
    with pytest.raises(XpnetError, match=match):
        xpnet.from_torch(sequential)


def test_only_a_sequential_is_taken(torch):
    with pytest.raises(XpnetError, match=r"^from_torch takes a torch\.nn\.Sequential, got Linear$"):
        xpnet.from_torch(torch.nn.Linear(3, 2))


def test_a_layer_of_your_own_is_refused_by_name(torch, monkeypatch):
    model = model_with_own_layer(monkeypatch)
    for export in (xpnet.torch_state_dict, xpnet.torch_sequential):
        with pytest.raises(XpnetError, match=r"^layer 1 is a Halve, which the PyTorch export cannot express"):
            export(model)


def test_without_torch_the_error_says_so(monkeypatch):
    model = digits_model("relu", "float32", dropout=0.2)
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now raises ImportError
    with pytest.raises(XpnetError, match=r"^moving weights to or from PyTorch needs torch, which is not installed"):
        xpnet.torch_state_dict(model)
