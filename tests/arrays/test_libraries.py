"""Array libraries the backend-parametrized tests do not cover, tried as users hand them to ``fit``: each
trains to what NumPy reaches, or is refused at once with one line naming the library, the missing piece
and what to do; never a traceback from inside training, never a run left at chance."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import xpnet
from xpnet.arrays.backend import to_numpy
from xpnet.errors import BackendError, XpnetError

SETTINGS = {"hidden": [32], "epochs": 3, "batch_size": 64, "seed": 2}


@pytest.fixture(scope="module")
def digits():
    return xpnet.load_digits()


@pytest.fixture(scope="module")
def numpy_model(digits):
    x, y, _, _ = digits
    model = xpnet.Model(device="cpu", **SETTINGS)
    model.fit(x, y)
    return model


def test_jax_trains_to_numpys_weights_on_its_own_device_without_a_warning(digits, numpy_model):
    """The same draws (taken on the host for JAX) and the same math: the weights agree to float32 rounding,
    stay JAX arrays on JAX's device, and nothing warns (no int64 truncation: labels use JAX's int32)."""
    jax = pytest.importorskip("jax")
    x, y, x_test, y_test = digits
    model = xpnet.Model(device="auto", **SETTINGS)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.fit(jax.numpy.asarray(x), jax.numpy.asarray(y))
        result = model.evaluate(jax.numpy.asarray(x_test), jax.numpy.asarray(y_test))
    assert model.backend.name == "jax"
    for parameter, expected in zip(model.network.parameters(), numpy_model.network.parameters(), strict=True):
        assert isinstance(parameter, jax.Array) and parameter.device == jax.devices("cpu")[0]
        np.testing.assert_allclose(to_numpy(parameter), expected, rtol=1e-4, atol=1e-6)
    assert result["accuracy"] == pytest.approx(numpy_model.evaluate(x_test, y_test)["accuracy"], abs=0.01)
    predicted = model.predict(jax.numpy.asarray(x_test))
    assert isinstance(predicted, jax.Array) and predicted.dtype == jax.numpy.int32


def test_jax_reaches_numpys_accuracy_on_the_digits(digits):
    """What a user sees: ten epochs of the default network, at NumPy's test accuracy."""
    jax = pytest.importorskip("jax")
    x, y, x_test, y_test = digits
    accuracies = []
    for convert in (np.asarray, jax.numpy.asarray):
        model = xpnet.Model(hidden=[128], epochs=10, device="auto")
        model.fit(convert(x), convert(y))
        accuracies.append(model.evaluate(convert(x_test), convert(y_test))["accuracy"])
    assert accuracies[0] > 0.95
    assert accuracies[1] == pytest.approx(accuracies[0], abs=0.01)


@pytest.mark.parametrize("library", ["dask", "ndonnx"])
def test_lazy_libraries_arrays_are_computed_into_numpy_and_train_alike(library, digits, numpy_model):
    """Dask and ndonnx build graphs of deferred operations: their arrays are computed into NumPy once and
    train on the CPU, to NumPy's very weights."""
    x, y, x_test, y_test = digits
    if library == "dask":
        dask_array = pytest.importorskip("dask.array")
        convert = lambda array: dask_array.from_array(array, chunks=500)  # noqa: E731
    else:
        convert = pytest.importorskip("ndonnx").asarray
    model = xpnet.Model(device="auto", **SETTINGS)
    model.fit(convert(x), convert(y))
    assert model.backend.is_numpy
    for parameter, expected in zip(model.network.parameters(), numpy_model.network.parameters(), strict=True):
        np.testing.assert_array_equal(parameter, expected)
    assert model.evaluate(convert(x_test), convert(y_test)) == numpy_model.evaluate(x_test, y_test)


@pytest.mark.parametrize("library", ["dask.array", "ndonnx"])
def test_a_lazy_library_asked_for_as_the_device_is_refused_by_name(library, digits):
    namespace = pytest.importorskip(library)
    x, y, _, _ = digits
    name = library.split(".")[0]
    with pytest.raises(BackendError, match=rf"^{name} arrays are lazy: .* computed into NumPy once"):
        xpnet.Model(device=namespace, **SETTINGS).fit(x, y)


def test_pydata_sparse_is_refused_naming_argsort_and_todense(digits):
    sparse = pytest.importorskip("sparse")
    x, y, _, _ = digits
    x_sparse, y_sparse = sparse.COO.from_numpy(x), sparse.COO.from_numpy(y)
    message = r"^sparse cannot train with xpnet: it lacks argsort, which xpnet needs to shuffle each epoch; make "
    with pytest.raises(BackendError, match=message + r"the arrays dense first \(x\.todense\(\)\)"):
        xpnet.Model(device="auto", **SETTINGS).fit(x_sparse, y_sparse)
    with pytest.raises(BackendError, match=r"^cannot copy sparse arrays to NumPy \(.*\): make the arrays dense"):
        xpnet.Model(device="cpu", **SETTINGS).fit(x_sparse, y_sparse)


def test_the_capability_check_names_the_first_piece_a_library_lacks(monkeypatch):
    """A stand-in library whose integer-array indexing raises (ndonnx's gap), refused before any training."""
    from xpnet.arrays import capabilities

    strict = pytest.importorskip("array_api_strict")

    def refuses_integer_arrays(xp, device):
        raise IndexError("cannot index with key TyArrayInt64")

    needs = [
        (piece, purpose, refuses_integer_arrays if "indexing" in piece else probe)
        for piece, purpose, probe in capabilities.NEEDS
    ]
    monkeypatch.setattr(capabilities, "NEEDS", tuple(needs))
    capabilities._failure.cache_clear()
    try:
        with pytest.raises(BackendError, match=r"^array_api_strict cannot train with xpnet: it lacks integer-array "):
            xpnet.Model(device=strict, **SETTINGS).fit(np.zeros((4, 3)), np.zeros(4, dtype=np.int64))
    finally:
        capabilities._failure.cache_clear()


@pytest.mark.parametrize("library", ["numpy", "jax"])
def test_a_step_that_changes_nothing_stops_training_naming_the_library(library, digits):
    """The guard that cannot be fooled: a first step whose gradient was not zero but left every parameter
    as it was (what an in-place update on immutable arrays does) stops with an error, not a run at chance."""
    x, y, _, _ = digits
    convert = pytest.importorskip("jax").numpy.asarray if library == "jax" else np.asarray
    model = xpnet.Model(device="auto", **SETTINGS)
    model.optimizer.step = lambda params, grads, lr: params  # writes nowhere, returns what it was given
    with pytest.raises(XpnetError, match=rf"first optimizer step left every parameter unchanged .* the {library} arr"):
        model.fit(convert(x), convert(y))
    assert model.epochs_done == 0
