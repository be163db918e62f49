"""xpnet.sklearn: scikit-learn's own estimator checks, plus pipelines, search, pickling and devices.

Checks that ``parametrize_with_checks`` reports as skipped need hardware or libraries absent here,
each with its reason shown by ``pytest -ra``: CuPy, torch on CUDA, XPU or MPS devices, and dpnp.
No check is expected to fail but the two of sample weights as repeated rows (``PENALTY_PER_ROW``).
"""

import os
import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest

# scikit-learn's array-API dispatch refuses to start unless SciPy's flag is set; it must be set
# before SciPy is imported, so here, before scikit-learn.
os.environ.setdefault("SCIPY_ARRAY_API", "1")

sklearn = pytest.importorskip("sklearn")

from sklearn import config_context  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import GridSearchCV, train_test_split  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from xpnet import XpnetWarning  # noqa: E402
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


# Weights as repeated rows: xpnet divides a batch's L2 penalty by its rows, scikit-learn by its summed
# weight, so with alpha > 0 a weighted fit and one on the repeated rows differ in the penalty's weight.
PENALTY_PER_ROW = "the L2 penalty is divided by the batch's rows, not its summed weight"
SAMPLE_WEIGHT_CHECKS = (
    "check_sample_weight_equivalence_on_dense_data",
    "check_sample_weight_equivalence_on_sparse_data",
)


# Some checks train on random labels on purpose; xpnet's "accuracy at chance level" warning is right there.
@pytest.mark.filterwarnings("ignore::xpnet.errors.XpnetWarning")
@parametrize_with_checks(
    [MLPClassifier(), MLPRegressor()],
    expected_failed_checks=lambda estimator: dict.fromkeys(SAMPLE_WEIGHT_CHECKS, PENALTY_PER_ROW),
)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


@pytest.mark.parametrize("estimator", [MLPClassifier(), MLPRegressor()], ids=["classifier", "regressor"])
def test_without_a_penalty_weights_are_repeated_rows(estimator):
    """What the expected failures above lack is the penalty's divisor alone: with alpha=0, scikit-learn's
    check that integer weights equal repeated rows (zero: left out) passes."""
    from sklearn.utils.estimator_checks import check_sample_weight_equivalence_on_dense_data

    check_sample_weight_equivalence_on_dense_data(type(estimator).__name__, clone(estimator).set_params(alpha=0.0))


def test_constructor_is_scikit_learns_then_xpnets_extras():
    import inspect

    from sklearn import neural_network

    for ours, theirs in ((MLPClassifier, neural_network.MLPClassifier), (MLPRegressor, neural_network.MLPRegressor)):
        expected = list(inspect.signature(theirs).parameters.values())
        actual = list(inspect.signature(ours).parameters.values())
        assert actual[: len(expected)] == expected
        assert [parameter.name for parameter in actual[len(expected) :]] == ["device", "dtype", "dropout"]


@pytest.mark.parametrize("solver", ["sgd", "lbfgs"])
def test_weights_after_training_match_scikit_learns(solver):
    """The same draws from random_state, loss, L2 penalty and updates: full-batch SGD without momentum
    (no shuffling involved) ends at scikit-learn's weights; L-BFGS reaches scikit-learn's loss."""
    from sklearn import neural_network

    x, y = load_digits(n_class=3, return_X_y=True)
    x = x[:120] / 16.0
    settings = {"hidden_layer_sizes": (7,), "activation": "tanh", "alpha": 0.01, "random_state": 3, "solver": solver}
    if solver == "sgd":
        settings |= {"momentum": 0.0, "batch_size": 120, "max_iter": 5, "shuffle": False, "learning_rate_init": 0.1}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = MLPClassifier(**settings).fit(x, y[:120])
        theirs = neural_network.MLPClassifier(**settings).fit(x, y[:120])
    if solver == "sgd":
        for mine, reference in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
            np.testing.assert_allclose(mine, reference, rtol=1e-10, atol=1e-12)
        # The penalty in the recorded loss is taken at the epoch's final weights, scikit-learn's before the step.
        np.testing.assert_allclose(ours.loss_curve_[0], theirs.loss_curve_[0], rtol=1e-5)
    else:
        assert ours.loss_ == pytest.approx(theirs.loss_, rel=0.05, abs=1e-4)


@pytest.mark.parametrize("estimator", [MLPClassifier, MLPRegressor])
def test_sample_weight_trains_to_scikit_learns_weights(estimator):
    """Full-batch SGD with weights averaging 1, so that scikit-learn's penalty, divided by the batch's
    summed weight, is the one divided by its rows: the same weights after five epochs."""
    from sklearn import neural_network

    x, y = load_digits(n_class=3, return_X_y=True)
    x, y = x[:120] / 16.0, y[:120]
    weights = np.random.default_rng(0).uniform(0.1, 3.0, 120)
    weights /= weights.mean()
    settings = {
        "hidden_layer_sizes": (7,),
        "activation": "tanh",
        "alpha": 0.01,
        "random_state": 3,
        "solver": "sgd",
        "momentum": 0.0,
        "batch_size": 120,
        "max_iter": 5,
        "shuffle": False,
        "learning_rate_init": 0.1,
    }
    reference = getattr(neural_network, estimator.__name__)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = estimator(**settings).fit(x, y, sample_weight=weights)
        theirs = reference(**settings).fit(x, y, sample_weight=weights)
        unweighted = reference(**settings).fit(x, y)
    for mine, expected, plain in zip(ours.coefs_, theirs.coefs_, unweighted.coefs_):
        np.testing.assert_allclose(mine, expected, rtol=1e-10, atol=1e-12)
        assert not np.allclose(mine, plain)  # the weights made a difference


@pytest.mark.parametrize("estimator", [MLPClassifier, MLPRegressor])
def test_early_stoppings_validation_score_is_weighted(estimator, monkeypatch):
    """The held-out rows keep their weights (split with them, as scikit-learn splits them), and each
    epoch's score is the estimator's score weighted by them."""
    from sklearn.metrics import accuracy_score, r2_score

    from xpnet.sklearn import estimators

    x, y = load_digits(n_class=3, return_X_y=True)
    weights = np.random.default_rng(1).uniform(0.1, 3.0, len(y))
    seen = []
    score = estimators._ValidationScore.on_epoch_end

    def recording(callback, record):
        score(callback, record)
        seen.append((callback.X_val, callback.weights_val, record["val_score"]))

    monkeypatch.setattr(estimators._ValidationScore, "on_epoch_end", recording)
    model = estimator(hidden_layer_sizes=8, max_iter=3, early_stopping=True, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x / 16.0, y, sample_weight=weights)
    metric = accuracy_score if estimator is MLPClassifier else r2_score
    for X_val, weights_val, val_score in seen[-1:]:
        rows = [np.flatnonzero((x / 16.0 == row).all(axis=1))[0] for row in X_val]
        np.testing.assert_array_equal(weights_val, weights[rows])
        assert val_score == metric(y[rows], model.predict(X_val), sample_weight=weights_val)
        assert val_score != metric(y[rows], model.predict(X_val))
    assert model.validation_scores_[-1] == seen[-1][2]


def test_string_labels_round_trip_with_features_seen(digits):
    pandas = pytest.importorskip("pandas")
    x_train, x_test, y_train, y_test = digits
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])
    frame = pandas.DataFrame(x_train, columns=[f"pixel{i}" for i in range(64)])
    model = MLPClassifier(hidden_layer_sizes=32, max_iter=10, batch_size=32, random_state=0)
    with pytest.warns(ConvergenceWarning, match=r"Maximum iterations \(10\) reached"):
        model.fit(frame, names[y_train])
    assert model.classes_.tolist() == sorted(names.tolist())
    assert model.n_features_in_ == 64
    assert model.feature_names_in_.tolist() == list(frame.columns)
    assert model.n_iter_ == 10 and len(model.loss_curve_) == 10 and model.t_ == 10 * len(x_train)
    test_frame = pandas.DataFrame(x_test, columns=frame.columns)
    predicted = model.predict(test_frame)
    assert predicted.dtype == names.dtype
    assert np.mean(predicted == names[y_test]) > 0.9
    probabilities = model.predict_proba(test_frame)
    np.testing.assert_array_equal(model.classes_[np.argmax(probabilities, axis=1)], predicted)


def test_partial_fit_names_what_is_missing(digits):
    x_train, _, y_train, _ = digits
    with pytest.raises(ValueError, match=r"classes must be passed on the first call to partial_fit"):
        MLPClassifier().partial_fit(x_train, y_train)
    model = MLPClassifier(hidden_layer_sizes=4).partial_fit(x_train, y_train % 2, classes=[0, 1])
    with pytest.raises(ValueError, match=r"`y` has classes not in `self.classes_`"):
        model.partial_fit(x_train, y_train % 3)
    assert not hasattr(MLPClassifier(solver="lbfgs"), "partial_fit")


def test_bad_settings_are_refused_as_scikit_learn_refuses_them(digits):
    from sklearn.utils._param_validation import InvalidParameterError

    x_train, _, y_train, _ = digits
    with pytest.raises(InvalidParameterError, match=r"The 'learning_rate_init' parameter of MLPClassifier must be"):
        MLPClassifier(learning_rate_init=-1.0).fit(x_train, y_train)
    with pytest.raises(InvalidParameterError, match=r"The 'dtype' parameter of MLPRegressor must be"):
        MLPRegressor(dtype="float16").fit(x_train, y_train)


def test_a_model_pickled_for_an_absent_gpu_loads_on_the_cpu_with_a_warning(digits):
    x_train, x_test, y_train, _ = digits
    model = MLPClassifier(hidden_layer_sizes=16, max_iter=2, device="cpu").fit(x_train, y_train)
    model.model_.device = "cuda:99"  # as if pickled on a GPU machine; no machine here has 100 GPUs
    absent = r"pickled for device 'cuda:99', which is not available here .*it runs on the CPU instead"
    with pytest.warns(XpnetWarning, match=absent):
        restored = pickle.loads(pickle.dumps(model))
    assert restored.model_.backend.name == "numpy"
    np.testing.assert_array_equal(restored.predict(x_test), model.predict(x_test))


def test_pipeline_with_a_scaler_and_clone(digits):
    x_train, x_test, y_train, y_test = digits
    estimator = MLPClassifier(hidden_layer_sizes=64, max_iter=15, batch_size=32, random_state=0)
    pipeline = make_pipeline(StandardScaler(), estimator)
    assert pipeline.fit(x_train, y_train).score(x_test, y_test) > 0.95
    fresh = clone(pipeline)
    assert fresh.get_params()["mlpclassifier__hidden_layer_sizes"] == 64
    assert not hasattr(fresh[-1], "model_")


def test_grid_search_in_two_processes_matches_one(digits):
    x_train, _, y_train, _ = digits
    grid = {"activation": ["relu", "tanh"], "learning_rate_init": [1e-2, 3e-2]}
    estimator = MLPClassifier(hidden_layer_sizes=16, max_iter=4, batch_size=32, random_state=0)
    searches = [
        GridSearchCV(estimator, grid, cv=2, n_jobs=n_jobs, error_score="raise").fit(x_train[:600], y_train[:600])
        for n_jobs in (1, 2)
    ]
    np.testing.assert_array_equal(
        searches[0].cv_results_["mean_test_score"], searches[1].cv_results_["mean_test_score"]
    )
    assert searches[1].best_score_ > 0.85


def test_pickle_holds_host_arrays_and_predicts_the_same(digits):
    x_train, x_test, y_train, _ = digits
    for model in (
        MLPClassifier(hidden_layer_sizes=16, max_iter=2).fit(x_train, y_train),
        MLPRegressor(hidden_layer_sizes=16, max_iter=2).fit(x_train, y_train / 9.0),
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
        assert restored.n_iter_ == 1 and restored.t_ == 3 * len(x_train)


def test_regressor_fits_one_and_several_targets():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 5))
    targets = np.stack([x @ rng.normal(size=5), np.sin(x[:, 0])], axis=1)
    single = MLPRegressor(hidden_layer_sizes=32, solver="lbfgs", random_state=0).fit(x, targets[:, 0])
    assert single.predict(x).shape == (400,)
    assert single.score(x, targets[:, 0]) > 0.95
    double = MLPRegressor(hidden_layer_sizes=32, solver="lbfgs", random_state=0).fit(x, targets)
    assert double.predict(x).shape == (400, 2)
    assert double.score(x, targets) > 0.9


def test_precision_follows_the_input_unless_set(digits):
    x_train, _, y_train, _ = digits
    model = MLPClassifier(hidden_layer_sizes=8, max_iter=1).fit(x_train.astype(np.float32), y_train)
    assert model.model_.config.dtype == "float32"
    assert model.coefs_[0].dtype == np.float32
    forced = MLPClassifier(hidden_layer_sizes=8, max_iter=1, dtype="float32").fit(x_train, y_train)
    assert forced.model_.config.dtype == "float32"


def test_array_api_dispatch_keeps_torch_inputs_in_torch(digits):
    torch = pytest.importorskip("torch")
    x_train, x_test, y_train, y_test = digits
    # Unshuffled: torch's random streams are not NumPy's, so a shuffled order would differ between them.
    settings = {"hidden_layer_sizes": 16, "max_iter": 2, "random_state": 0, "shuffle": False}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        on_host = MLPClassifier(**settings, device="cpu").fit(x_train, y_train)
        with config_context(array_api_dispatch=True):
            for device in ("cpu", "auto"):  # "cpu" trains NumPy on converted data; "auto" trains in torch
                model = MLPClassifier(**settings, device=device).fit(torch.asarray(x_train), torch.asarray(y_train))
                x = torch.asarray(x_test)
                labels, probabilities = model.predict(x), model.predict_proba(x)
                assert isinstance(labels, torch.Tensor) and labels.device == x.device
                assert isinstance(probabilities, torch.Tensor) and probabilities.dtype == torch.float64
                assert isinstance(model.predict_log_proba(x), torch.Tensor)
                assert model.model_.backend.name == ("numpy" if device == "cpu" else "torch")
                np.testing.assert_allclose(probabilities.numpy(), on_host.predict_proba(x_test), rtol=1e-9, atol=1e-12)
                np.testing.assert_array_equal(labels.numpy(), on_host.predict(x_test))
                assert model.score(x, torch.asarray(y_test)) == pytest.approx(on_host.score(x_test, y_test), rel=1e-6)
                assert type(model.coefs_[0]) is np.ndarray
                with pytest.raises(ValueError, match=r"must use the same namespace and the same device"):
                    model.predict(x_test)
        # Without dispatch, torch inputs are converted and answered as NumPy, as scikit-learn's own MLP does.
        assert type(model.predict(torch.asarray(x_test))) is np.ndarray


def test_array_api_dispatch_answers_a_regressor_in_torch_and_pickles_to_host_arrays(digits):
    torch = pytest.importorskip("torch")
    x_train, x_test, y_train, _ = digits
    with config_context(array_api_dispatch=True), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = MLPRegressor(hidden_layer_sizes=8, max_iter=3, early_stopping=True, random_state=0)
        model.fit(torch.asarray(x_train), torch.asarray(y_train, dtype=torch.float64))
        assert model.model_.backend.name == "torch"
        x = torch.asarray(x_test)
        predicted = model.predict(x)
        assert isinstance(predicted, torch.Tensor) and predicted.shape == (len(x_test),)
        state = model.__getstate__()["model_"]["state"]
        assert all(type(value) is np.ndarray for name, value in state.items() if name.startswith("param/"))
        restored = pickle.loads(pickle.dumps(model))
        np.testing.assert_allclose(restored.predict(x).numpy(), predicted.numpy(), rtol=1e-12)


@pytest.mark.cuda
def test_cuda_device_answers_numpy(digits):
    from xpnet.arrays.backend import cuda_available

    if not cuda_available():
        pytest.skip("needs CuPy and a CUDA GPU")
    x_train, x_test, y_train, y_test = digits
    model = MLPClassifier(hidden_layer_sizes=32, max_iter=10, device="cuda").fit(x_train, y_train)
    assert model.model_.backend.name == "cupy"
    assert type(model.predict(x_test)) is np.ndarray
    assert type(model.predict_proba(x_test)) is np.ndarray
    assert model.score(x_test, y_test) > 0.9
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(restored.predict_proba(x_test), model.predict_proba(x_test))


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
    model = MLPClassifier(hidden_layer_sizes=8, max_iter=2).fit(x_train, y_train)
    model.model_.save(tmp_path / "digits.npz")
    loaded = xpnet.load(tmp_path / "digits.npz")
    np.testing.assert_array_equal(model.classes_[loaded.predict(x_test)], model.predict(x_test))
