"""xpnet.sklearn: scikit-learn's own estimator checks, plus pipelines, search, pickling and devices.

Checks that ``parametrize_with_checks`` reports as skipped need hardware or libraries absent here,
each with its reason shown by ``pytest -ra``: CuPy, torch on CUDA, XPU or MPS devices, and dpnp.
No check is expected to fail.
"""

import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

# scikit-learn's array-API dispatch refuses to start unless SciPy's flag is set; it must be set
# before SciPy is imported, so here, before scikit-learn.
os.environ.setdefault("SCIPY_ARRAY_API", "1")

sklearn = pytest.importorskip("sklearn")

from sklearn import config_context  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import GridSearchCV, train_test_split  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from xpnet import XpnetError, XpnetWarning  # noqa: E402
from xpnet.sklearn import MLPClassifier, MLPRegressor  # noqa: E402


@pytest.fixture(scope="module")
def digits():
    """Scaled digits split into train and test (1,347 and 450 samples, 64 features, 10 classes)."""
    x, y = load_digits(return_X_y=True)
    return train_test_split(x / 16.0, y, random_state=0)


def _run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)


def test_importing_xpnet_does_not_import_scikit_learn():
    result = _run_python("import sys, xpnet; print('sklearn' in sys.modules)")
    assert result.stdout.strip() == "False", result.stderr


def test_without_scikit_learn_the_import_names_the_extra():
    result = _run_python("import sys; sys.modules['sklearn'] = None; import xpnet.sklearn")
    assert result.returncode == 1
    assert "xpnet.sklearn needs scikit-learn: pip install 'xpnet[sklearn]'" in result.stderr


# Some checks train on random labels on purpose; xpnet's "accuracy at chance level" warning is right there.
@pytest.mark.filterwarnings("ignore::xpnet.errors.XpnetWarning")
@parametrize_with_checks([MLPClassifier(), MLPRegressor()])
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


def test_constructor_parameters_are_the_trainer_settings():
    from dataclasses import fields

    from xpnet import TrainConfig

    settings = {field.name for field in fields(TrainConfig)} - {"loss"}
    assert set(MLPClassifier().get_params()) == settings | {"device"}
    assert set(MLPRegressor().get_params()) == settings | {"device"}


def test_string_labels_round_trip_with_features_seen(digits):
    pandas = pytest.importorskip("pandas")
    x_train, x_test, y_train, y_test = digits
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])
    frame = pandas.DataFrame(x_train, columns=[f"pixel{i}" for i in range(64)])
    model = MLPClassifier(hidden=[32], epochs=10).fit(frame, names[y_train])
    assert model.classes_.tolist() == sorted(names.tolist())
    assert model.n_features_in_ == 64
    assert model.feature_names_in_.tolist() == list(frame.columns)
    assert model.n_iter_ == 10 and len(model.loss_curve_) == 10
    test_frame = pandas.DataFrame(x_test, columns=frame.columns)
    predicted = model.predict(test_frame)
    assert predicted.dtype == names.dtype
    assert np.mean(predicted == names[y_test]) > 0.9
    probabilities = model.predict_proba(test_frame)
    np.testing.assert_array_equal(model.classes_[np.argmax(probabilities, axis=1)], predicted)


def test_partial_fit_calls_equal_one_fit_and_may_meet_classes_late(digits):
    x_train, x_test, y_train, _ = digits
    whole = MLPClassifier(hidden=[16], epochs=3).fit(x_train, y_train)
    chunked = MLPClassifier(hidden=[16])
    for _ in range(3):
        chunked.partial_fit(x_train, y_train, classes=np.arange(10))
    assert chunked.n_iter_ == 3
    np.testing.assert_array_equal(chunked.predict_proba(x_test), whole.predict_proba(x_test))

    late = MLPClassifier(hidden=[16]).partial_fit(x_train[y_train < 5], y_train[y_train < 5], classes=np.arange(10))
    late.partial_fit(x_train[y_train >= 5], y_train[y_train >= 5])
    assert late.predict_proba(x_test).shape == (len(x_test), 10)


def test_partial_fit_names_what_is_missing(digits):
    x_train, _, y_train, _ = digits
    with pytest.raises(ValueError, match=r"classes must be passed on the first call"):
        MLPClassifier().partial_fit(x_train, y_train)
    model = MLPClassifier(hidden=[4]).partial_fit(x_train, y_train % 2, classes=[0, 1])
    with pytest.raises(ValueError, match=r"labels \[2\] are not in classes \[0, 1\]"):
        model.partial_fit(x_train, y_train % 3)


def test_bad_settings_are_reported_at_fit(digits):
    x_train, _, y_train, _ = digits
    model = MLPClassifier().set_params(lr=-1.0)
    assert model.get_params()["lr"] == -1.0
    with pytest.raises(ValueError, match=r"learning rate must be positive, got -1.0") as raised:
        model.fit(x_train, y_train)
    assert isinstance(raised.value, XpnetError)  # a ValueError, as scikit-learn code expects, and xpnet's own


def test_early_stopping_holds_out_a_tenth_unless_val_split_is_given(digits):
    x_train, _, y_train, _ = digits
    stopped = MLPClassifier(hidden=[16], lr=3e-2, epochs=60, early_stopping=2).fit(x_train, y_train)
    assert stopped.model_.config.val_split == 0.1
    assert "val_loss" in stopped.history_[-1]
    assert stopped.n_iter_ < 60  # the validation loss stopped improving long before
    chosen = MLPClassifier(hidden=[16], epochs=2, early_stopping=2, val_split=0.25).fit(x_train, y_train)
    assert chosen.model_.config.val_split == 0.25
    with pytest.raises(ValueError, match=r"early stopping patience \(in epochs\) must be a positive integer, got True"):
        MLPClassifier(early_stopping=True).fit(x_train, y_train)


def test_a_model_pickled_for_an_absent_gpu_loads_on_the_cpu_with_a_warning(digits):
    x_train, x_test, y_train, _ = digits
    model = MLPClassifier(hidden=[16], epochs=2, device="cpu").fit(x_train, y_train)
    model.model_.device = "cuda:99"  # as if pickled on a GPU machine; no machine here has 100 GPUs
    absent = r"pickled for device 'cuda:99', which is not available here .*it runs on the CPU instead"
    with pytest.warns(XpnetWarning, match=absent):
        restored = pickle.loads(pickle.dumps(model))
    assert restored.model_.backend.name == "numpy"
    np.testing.assert_array_equal(restored.predict(x_test), model.predict(x_test))


def test_pipeline_with_a_scaler_and_clone(digits):
    x_train, x_test, y_train, y_test = digits
    pipeline = make_pipeline(StandardScaler(), MLPClassifier(hidden=[64], epochs=15))
    assert pipeline.fit(x_train, y_train).score(x_test, y_test) > 0.95
    fresh = clone(pipeline)
    assert fresh.get_params()["mlpclassifier__hidden"] == [64]
    assert not hasattr(fresh[-1], "model_")


def test_grid_search_in_two_processes_matches_one(digits):
    x_train, _, y_train, _ = digits
    grid = {"activation": ["relu", "tanh"], "lr": [1e-2, 3e-2]}
    searches = [
        GridSearchCV(MLPClassifier(hidden=[16], epochs=4), grid, cv=2, n_jobs=n_jobs, error_score="raise").fit(
            x_train[:600], y_train[:600]
        )
        for n_jobs in (1, 2)
    ]
    np.testing.assert_array_equal(
        searches[0].cv_results_["mean_test_score"], searches[1].cv_results_["mean_test_score"]
    )
    assert searches[1].best_score_ > 0.85


def test_pickle_holds_host_arrays_and_predicts_the_same(digits):
    x_train, x_test, y_train, _ = digits
    for model in (
        MLPClassifier(hidden=[16], epochs=2).fit(x_train, y_train),
        MLPRegressor(hidden=[16], epochs=2).fit(x_train, y_train / 9.0),
    ):
        pickled = model.__getstate__()["model_"]
        assert set(pickled) == {"device", "state"}  # the model's state description, no backend
        arrays = {name: value for name, value in pickled["state"].items() if name.startswith(("param/", "optimizer/"))}
        assert len(arrays) == 3 * len(model.model_.network.parameters())  # parameters and both Adam moments
        assert all(type(array) is np.ndarray for array in arrays.values())
        restored = pickle.loads(pickle.dumps(model))
        assert model.model_.backend is not None  # pickling leaves the original model where it was
        np.testing.assert_array_equal(restored.predict(x_test), model.predict(x_test))
        restored.partial_fit(x_train, model.predict(x_train))  # training continues after unpickling
        assert restored.n_iter_ == 3


@pytest.mark.parametrize("library", ["numpy", "torch"])
def test_an_estimator_with_early_stopping_pickles_with_host_arrays_only(digits, library):
    x_train, x_test, y_train, _ = digits
    namespace = pytest.importorskip(library)
    with config_context(array_api_dispatch=True):  # device "auto" trains where the data is
        model = MLPClassifier(hidden=[16], epochs=4, early_stopping=2, seed=0)
        model.fit(namespace.asarray(x_train), namespace.asarray(y_train))
        assert model.model_.backend.name == library
        state = model.__getstate__()["model_"]["state"]
        best = [value for name, value in state.items() if name.startswith("best/")]
        assert len(best) == len(model.model_.network.parameters())
        assert all(type(array) is np.ndarray for array in best)  # host arrays, no array library
        assert isinstance(state["early_stopping"]["best_loss"], float)
        restored = pickle.loads(pickle.dumps(model))
        x = namespace.asarray(x_test)
        np.testing.assert_array_equal(np.asarray(restored.predict(x)), np.asarray(model.predict(x)))
        assert restored.model_.early_stopping.state_dict()["best_epoch"] == model.model_.early_stopping.best_epoch
    # The original keeps its best weights where it trained, as it was.
    original = model.model_.early_stopping.best_parameters
    assert all(type(array) is type(namespace.asarray(x_test)) for array in original)
    assert model.model_.backend.name == library


def test_regressor_fits_one_and_several_targets():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 5))
    targets = np.stack([x @ rng.normal(size=5), np.sin(x[:, 0])], axis=1)
    single = MLPRegressor(hidden=[32], epochs=60).fit(x, targets[:, 0])
    assert single.predict(x).shape == (400,)
    assert single.score(x, targets[:, 0]) > 0.95
    double = MLPRegressor(hidden=[32], epochs=60).fit(x, targets)
    assert double.predict(x).shape == (400, 2)
    assert double.score(x, targets) > 0.9


def test_precision_follows_the_input_unless_set(digits):
    x_train, x_test, y_train, _ = digits
    model = MLPClassifier(hidden=[8], epochs=1).fit(x_train.astype(np.float32), y_train)
    assert model.model_.config.dtype == "float32"
    assert model.predict_proba(x_test).dtype == np.float64  # answered in the caller's precision
    assert model.predict_proba(x_test.astype(np.float32)).dtype == np.float32
    forced = MLPClassifier(hidden=[8], epochs=1, dtype="float32").fit(x_train, y_train)
    assert forced.model_.config.dtype == "float32"


def test_array_api_dispatch_keeps_torch_inputs_in_torch(digits):
    torch = pytest.importorskip("torch")
    x_train, x_test, y_train, _ = digits
    on_host = MLPClassifier(hidden=[16], epochs=2, device="cpu").fit(x_train, y_train)
    with config_context(array_api_dispatch=True):
        for device in ("cpu", "auto"):  # NumPy trains on converted data; "auto" trains in torch
            model = MLPClassifier(hidden=[16], epochs=2, device=device)
            model.fit(torch.asarray(x_train), torch.asarray(y_train))
            x = torch.asarray(x_test)
            labels, probabilities = model.predict(x), model.predict_proba(x)
            assert isinstance(labels, torch.Tensor) and labels.device == x.device
            assert isinstance(probabilities, torch.Tensor) and probabilities.dtype == torch.float64
            assert model.model_.backend.name == ("numpy" if device == "cpu" else "torch")
            if device == "cpu":
                np.testing.assert_array_equal(probabilities.numpy(), on_host.predict_proba(x_test))
            assert isinstance(model.score(x, torch.asarray(digits[3])), float)
            with pytest.raises(ValueError, match=r"must use the same namespace"):
                model.predict(x_test)


@pytest.mark.cuda
def test_cuda_device_answers_numpy(digits):
    from xpnet.arrays.backend import cuda_available

    if not cuda_available():
        pytest.skip("needs CuPy and a CUDA GPU")
    x_train, x_test, y_train, y_test = digits
    model = MLPClassifier(hidden=[32], epochs=10, device="cuda").fit(x_train, y_train)
    assert model.model_.backend.name == "cupy"
    assert type(model.predict(x_test)) is np.ndarray
    assert type(model.predict_proba(x_test)) is np.ndarray
    assert model.score(x_test, y_test) > 0.9
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(restored.predict_proba(x_test), model.predict_proba(x_test))

    cupy = pytest.importorskip("cupy")
    with config_context(array_api_dispatch=True):
        on_gpu = MLPClassifier(hidden=[32], epochs=10).fit(cupy.asarray(x_train), cupy.asarray(y_train))
        x = cupy.asarray(x_test)
        labels, probabilities = on_gpu.predict(x), on_gpu.predict_proba(x)
    assert on_gpu.model_.backend.name == "cupy"
    assert isinstance(labels, cupy.ndarray) and labels.device == x.device
    assert isinstance(probabilities, cupy.ndarray) and probabilities.dtype == cupy.float64
    assert float(cupy.mean(labels == cupy.asarray(y_test))) > 0.9


# scikit-learn's own MLPClassifier takes its 200 default iterations: slow.
@pytest.mark.parametrize("library", ["xpnet", pytest.param("sklearn", marks=pytest.mark.slow)])
def test_the_swap_example_runs_with_either_import(library, tmp_path):
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    source = (root / "examples" / "sklearn_swap.py").read_text()
    xpnet_import = "from xpnet.sklearn import MLPClassifier\n"
    assert source.count(xpnet_import) == 1
    if library == "sklearn":
        source = source.replace(xpnet_import, "from sklearn.neural_network import MLPClassifier\n")
    script = tmp_path / "swap.py"
    script.write_text(source)
    environment = {**os.environ, "PYTHONPATH": str(root)}
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=environment)
    assert result.returncode == 0, result.stderr
    accuracy = float(result.stdout.splitlines()[2].rpartition(" ")[2])
    assert accuracy > 0.95


def test_the_fitted_model_saves_to_xpnets_own_file(digits, tmp_path):
    import xpnet

    x_train, x_test, y_train, _ = digits
    model = MLPClassifier(hidden=[8], epochs=2).fit(x_train, y_train)
    model.model_.save(tmp_path / "digits.npz")
    loaded = xpnet.load(tmp_path / "digits.npz")
    np.testing.assert_array_equal(model.classes_[loaded.predict(x_test)], model.predict(x_test))
