"""``MLPClassifier`` and ``MLPRegressor``: scikit-learn's constructors and behaviour, trained by xpnet.

The parameters are scikit-learn's, with its names, defaults and checks (``_parameter_constraints``),
then xpnet's own: ``device``, ``dtype`` and ``dropout``. scikit-learn's input checks, label encoding
and validation split run on the host; the network trains in an ``xpnet.Model`` (``model_``) on the
chosen device: minibatches for "sgd" and "adam", full-batch L-BFGS (``xpnet.train.full_batch``) for
"lbfgs". The fitted attributes are scikit-learn's, as NumPy arrays.
"""

from __future__ import annotations

import inspect
import math
import warnings
from numbers import Real
from typing import ClassVar

import numpy as np
import scipy.sparse
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, is_classifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier as _SklearnClassifier
from sklearn.neural_network import MLPRegressor as _SklearnRegressor
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import _check_partial_fit_first_call, type_of_target, unique_labels
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, column_or_1d, validate_data

from xpnet.arrays.backend import select, to_numpy
from xpnet.errors import TrainingDiverged, XpnetWarning
from xpnet.nn.activations import sigmoid
from xpnet.nn.layers import Dense
from xpnet.sklearn import dispatch, host
from xpnet.sklearn.network import batch_size_for, initial_network, optimizer_settings
from xpnet.train.callbacks import Callback, Convergence
from xpnet.train.full_batch import LBFGSEpoch
from xpnet.train.model import Model

NON_FINITE = (
    "Solver produced non-finite parameter weights. The input data may contain large values and need to be preprocessed."
)
_EXTRAS = {
    "device": [str, None],
    "dtype": [StrOptions({"float32", "float64"}), None],
    "dropout": [Interval(Real, 0, 1, closed="left")],
}


class _BaseMLP(BaseEstimator):
    """What the classifier and the regressor share: settings, training, fitted attributes, pickling."""

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        solver="adam",
        alpha=0.0001,
        batch_size="auto",
        learning_rate="constant",
        learning_rate_init=0.001,
        power_t=0.5,
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
        momentum=0.9,
        nesterovs_momentum=True,
        early_stopping=False,
        validation_fraction=0.1,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        n_iter_no_change=10,
        max_fun=15000,
        device="auto",
        dtype=None,
        dropout=0.0,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.device = device
        self.dtype = dtype
        self.dropout = dropout

    # -- training ----------------------------------------------------------------------------------

    def _fit(self, X, y, *, incremental: bool, sample_weight=None, classes=None):
        self._validate_params()
        sizes = np.atleast_1d(np.asarray(self.hidden_layer_sizes))
        if np.any(sizes <= 0):
            raise ValueError(f"hidden_layer_sizes must be > 0, got {list(sizes)}.")
        if incremental and self.early_stopping:
            raise ValueError("partial_fit does not support early_stopping=True")
        first_pass = not hasattr(self, "model_") or (not self.warm_start and not incremental)
        where = dispatch.placement(X)
        train_on = X if where is not None and self.device == "auto" else None  # trains in X's library
        X, y, sample_weight = (dispatch.on_host(array) for array in (X, y, sample_weight))
        X, y = self._checked(X, y, first_pass=first_pass, incremental=incremental, classes=classes)
        if self.dtype is not None:
            X, y = X.astype(self.dtype), y.astype(self.dtype)
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X)
        targets = y.reshape(-1, 1) if y.ndim == 1 else y
        self._random_state = check_random_state(self.random_state)
        if first_pass:
            self._start(X, targets, [X.shape[1], *(int(size) for size in sizes), targets.shape[1]], train_on)
        elif not incremental:  # scikit-learn starts a new optimizer each fit
            self.model_.config = self.model_.config.replace(**optimizer_settings(self))
            self.model_.optimizer = self.model_.config.make_optimizer()
            if self.solver == "lbfgs":
                self.model_.epoch_runner = LBFGSEpoch.from_config(self.model_.config)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", XpnetWarning)  # its chance-level hints; scikit-learn warns its own way
            if self.solver == "lbfgs":
                self._fit_lbfgs(X, targets, sample_weight)
            else:
                self._fit_stochastic(X, targets, sample_weight, incremental)
        self._fitted_on = where
        return self

    def _start(self, X, targets, sizes, train_on=None):
        """A new network, model and training record, as scikit-learn's first fit makes them; the network
        in the library and on the device of ``train_on``, another library's array, where given."""
        self.n_outputs_ = targets.shape[1]
        self.n_layers_ = len(sizes)
        self.out_activation_ = self._out_activation()
        network = initial_network(self, sizes, X.dtype, self._random_state)
        if train_on is not None:
            backend = select(train_on)
            network.set_parameters([backend.asarray(parameter) for parameter in network.parameters()])
        settings = {
            "loss": self._xpnet_loss(),
            **optimizer_settings(self),
            "lr": self.learning_rate_init,
            "schedule": self.learning_rate if self.solver == "sgd" else "constant",
            "power_t": self.power_t,
            "shuffle": self.shuffle,
            "alpha": self.alpha,
            "seed": int(self._random_state.randint(np.iinfo(np.int32).max)),
        }
        self.model_ = Model.from_network(network, device="auto" if self.device is None else self.device, **settings)
        self.t_ = 0
        self.loss_curve_ = []
        self._convergence = Convergence(
            self.tol,
            self.n_iter_no_change,
            monitor="val_score" if self.early_stopping else "train_loss",
            higher_is_better=self.early_stopping,
            adaptive=self.learning_rate == "adaptive" and self.solver == "sgd",
        )
        self.model_.convergence = self._convergence
        self.validation_scores_ = [] if self.early_stopping else None

    def _fit_lbfgs(self, X, targets, sample_weight):
        runner = self.model_.epoch_runner
        self.model_.convergence = None
        try:
            self.model_.fit(X, targets, epochs=1, sample_weight=sample_weight)
        except TrainingDiverged:
            raise ValueError(NON_FINITE) from None
        result = runner.result
        self.n_iter_ = min(result.iterations, self.max_iter)
        self.loss_ = result.value
        if not result.converged:
            warnings.warn(
                f"lbfgs failed to converge after {result.iterations} iteration(s) ({result.message}). "
                f"Increase the number of iterations to improve the convergence (max_iter={self.max_iter}), "
                "or scale the data.",
                ConvergenceWarning,
                stacklevel=3,
            )

    def _fit_stochastic(self, X, targets, sample_weight, incremental: bool):
        callbacks = []
        if self.early_stopping:
            X, X_val, targets, targets_val, sample_weight, weights_val = self._validation_split(
                X, targets, sample_weight
            )
            callbacks.append(_ValidationScore(self, X_val, targets_val, weights_val))
        if self.verbose:
            callbacks.append(_Progress())
        callbacks.append(_Tally(self, X.shape[0]))
        model = self.model_
        model.config = model.config.replace(batch_size=batch_size_for(self, X.shape[0]))
        model.convergence = self._convergence
        epochs = 1 if incremental else self.max_iter
        try:
            model.fit(X, targets, epochs=epochs, callbacks=callbacks, sample_weight=sample_weight)
        except TrainingDiverged:
            if not self.early_stopping:
                raise ValueError(NON_FINITE) from None
            self.validation_scores_.append(math.nan)
            self._convergence.on_train_end(model)
        self.best_loss_ = None if self.early_stopping else self._convergence.best_value
        if self.early_stopping:
            self.best_validation_score_ = self._convergence.best_value
        else:
            self.best_validation_score_ = None
        if not incremental and self.n_iter_ == self.max_iter and not self._convergence.converged:
            warnings.warn(
                f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached and the optimization "
                "hasn't converged yet.",
                ConvergenceWarning,
                stacklevel=3,
            )

    def _validation_split(self, X, targets, sample_weight):
        """scikit-learn's held-out split for early stopping, of the weights too where there are any:
        stratified for single-output classifiers."""
        stratify = targets if is_classifier(self) and self.n_outputs_ == 1 else None
        if stratify is not None:
            stratify = stratify.astype(bool)
        arrays = [X, targets] if sample_weight is None else [X, targets, sample_weight]
        X, X_val, targets, targets_val, *weights = train_test_split(
            *arrays, random_state=self._random_state, test_size=self.validation_fraction, stratify=stratify
        )
        if X_val.shape[0] < 2:
            raise ValueError(
                "The validation set is too small. Increase 'validation_fraction' or the size of your dataset."
            )
        return X, X_val, targets, targets_val, *(weights or (None, None))

    def _validated_Xy(self, X, y, *, reset: bool, y_numeric: bool = False):
        """``X`` and ``y`` checked as scikit-learn checks them: ``X`` dense (a sparse one densified) in
        float64 or float32, a column ``y`` made 1-D with scikit-learn's warning."""
        X, y = validate_data(
            self,
            X,
            y,
            accept_sparse=["csr", "csc"],
            multi_output=True,
            y_numeric=y_numeric,
            dtype=(np.float64, np.float32),
            reset=reset,
        )
        X = X.toarray() if scipy.sparse.issparse(X) else X
        return X, column_or_1d(y, warn=True) if y.ndim == 2 and y.shape[1] == 1 else y

    def _validated_X(self, X, *, reset: bool):
        X = validate_data(self, X, accept_sparse=["csr", "csc"], dtype=(np.float64, np.float32), reset=reset)
        return X.toarray() if scipy.sparse.issparse(X) else X

    # -- prediction --------------------------------------------------------------------------------

    def _outputs(self, X, method: str):
        """The output layer's activations (``out_activation_`` applied) for ``X``, checked (by ``method``'s
        name where it lives elsewhere than ``fit``'s inputs), as NumPy."""
        check_is_fitted(self)
        dispatch.check_same_placement(self, X, method)
        return self._activations(self._validated_X(dispatch.on_host(X), reset=False))

    def _activations(self, X):
        """``_outputs`` of checked inputs."""
        if self.out_activation_ == "softmax":
            return to_numpy(self.model_.predict_proba(X))
        outputs = to_numpy(self.model_.predict(X))
        if self.out_activation_ == "logistic":
            return to_numpy(sigmoid(outputs))
        return np.exp(outputs) if self.out_activation_ == "exp" else outputs

    # -- fitted attributes -------------------------------------------------------------------------

    @property
    def coefs_(self) -> list[np.ndarray]:
        """The weight matrices, ``coefs_[i]`` of shape (units of layer i, units of layer i + 1)."""
        return [to_numpy(layer.params["weight"]) for layer in self._dense_layers()]

    @property
    def intercepts_(self) -> list[np.ndarray]:
        """The bias vectors, ``intercepts_[i]`` for layer i + 1."""
        return [to_numpy(layer.params["bias"]) for layer in self._dense_layers()]

    @property
    def _no_improvement_count(self) -> int:
        """scikit-learn's count of epochs in a row without improvement by ``tol``."""
        return self._convergence.no_improvement_count

    def _dense_layers(self) -> list[Dense]:
        check_is_fitted(self)
        return self.model_.network.dense_layers()

    def __getstate__(self):
        state = dict(super().__getstate__())  # object.__getstate__ hands out the live __dict__ itself
        state.pop("_random_state", None)
        if "model_" in state:
            state["model_"] = host.to_host(state["model_"])
        return state

    def __setstate__(self, state):
        if "model_" in state:
            state = {**state, "model_": host.from_host(state["model_"])}
            state["model_"].convergence = state.get("_convergence")
        super().__setstate__(state)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.array_api_support = True
        return tags

    def _check_solver(self) -> bool:
        if self.solver == "lbfgs":
            raise AttributeError(f"partial_fit is only available for stochastic optimizers. {self.solver} is not.")
        return True


class _Tally(Callback):
    """Counts what scikit-learn counts after each epoch: ``n_iter_``, ``t_`` (samples seen), ``loss_``
    and ``loss_curve_``."""

    def __init__(self, estimator: _BaseMLP, n_samples: int):
        self.estimator, self.n_samples = estimator, n_samples
        estimator.n_iter_ = 0

    def on_epoch_end(self, record):
        estimator = self.estimator
        estimator.n_iter_ += 1
        estimator.t_ += self.n_samples
        estimator.loss_ = record["train_loss"]
        estimator.loss_curve_.append(record["train_loss"])


class _ValidationScore(Callback):
    """Adds ``val_score`` (accuracy or R², as the estimator's ``score``, weighted by ``weights_val`` where
    given) on the held-out data to each record."""

    def __init__(self, estimator: _BaseMLP, X_val, targets_val, weights_val):
        self.estimator, self.X_val, self.targets_val, self.weights_val = estimator, X_val, targets_val, weights_val

    def on_epoch_end(self, record):
        outputs = self.estimator._activations(self.X_val)
        finite = np.isfinite(outputs).all()
        score = self.estimator._validation_score(outputs, self.targets_val, self.weights_val) if finite else np.nan
        record["val_score"] = float(score)
        self.estimator.validation_scores_.append(float(score))


class _Progress(Callback):
    """scikit-learn's ``verbose`` lines."""

    def on_epoch_end(self, record):
        print(f"Iteration {record['epoch']}, loss = {record['train_loss']:.8f}")


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """scikit-learn's multi-layer perceptron classifier, trained by xpnet on the CPU or a GPU (``device``).

    Softmax outputs for several classes, one logistic output for two, a logistic output per label for
    multilabel indicator targets.

    Every parameter is scikit-learn's, with its name, default and meaning (``hidden_layer_sizes``,
    ``activation``, ``solver``, ``alpha``, ``batch_size``, ``learning_rate``, ``learning_rate_init``, ``max_iter``,
    ``tol``, ``early_stopping``, ...; [scikit-learn](../sklearn.md) says what each means in xpnet), then
    xpnet's three:

    Other Parameters:
        device: ``"auto"`` (CUDA when CuPy sees a GPU, else the CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        dtype: ``None``: the input's precision, as scikit-learn; ``"float32"`` or ``"float64"`` to choose.
        dropout: Dropout after each hidden layer (minibatch solvers; L-BFGS trains without it).

    Attributes:
        model_: The fitted ``xpnet.Model`` (``model_.save(path)`` writes xpnet's file), beside scikit-learn's
            fitted attributes (``coefs_``, ``intercepts_``, ``loss_curve_``, ``n_iter_``, ...), NumPy arrays on
            any device.
    """

    _parameter_constraints: ClassVar[dict] = {**_SklearnClassifier._parameter_constraints, **_EXTRAS}

    def fit(self, X, y, sample_weight=None):
        """Train on ``(X, y)``: from scratch, or from the current weights with ``warm_start``.

        Args:
            X: ``(samples, features)``: arrays, data frames or sparse matrices.
            y: Class labels, or a label indicator matrix for multilabel targets.
            sample_weight: One weight per sample: each batch's loss is then their weighted mean.

        Returns:
            The estimator itself.

        Raises:
            ValueError: Parameters or data scikit-learn refuses (NaN inputs, say), with its message.
        """
        return self._fit(X, y, incremental=False, sample_weight=sample_weight)

    @available_if(lambda self: self._check_solver())
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One epoch over ``(X, y)``, continuing from the previous call.

        Args:
            X: ``(samples, features)``.
            y: The labels.
            sample_weight: One weight per sample, as for ``fit``.
            classes: Every label there will be; needed by the first call.

        Returns:
            The estimator itself.
        """
        return self._fit(X, y, incremental=True, sample_weight=sample_weight, classes=classes)

    def _checked(self, X, y, *, first_pass, incremental, classes):
        X, y = self._validated_Xy(X, y, reset=first_pass)
        if incremental:
            multilabel = type_of_target(y).startswith("multilabel")
            if _check_partial_fit_first_call(self, classes):
                self._label_binarizer = LabelBinarizer().fit(y if multilabel else self.classes_)
            if not multilabel and not set(np.unique(y)) <= set(self.classes_):
                raise ValueError(
                    f"`y` has classes not in `self.classes_`. `self.classes_` has {self.classes_}. "
                    f"'y' has {np.unique(y)}."
                )
        elif first_pass:
            self._label_binarizer = LabelBinarizer().fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            new_classes = unique_labels(y)
            if not np.array_equal(new_classes, self.classes_):
                raise ValueError(
                    "warm_start can only be used where `y` has the same classes as in the previous call to fit."
                    f" Previously got {self.classes_}, `y` has {new_classes}"
                )
        return X, self._label_binarizer.transform(y).astype(X.dtype)

    def _out_activation(self) -> str:
        return "softmax" if self._label_binarizer.y_type_ == "multiclass" else "logistic"

    def _xpnet_loss(self) -> str:
        return "cross_entropy" if self.out_activation_ == "softmax" else "binary_cross_entropy"

    def _validation_score(self, outputs, targets_val, weights_val) -> float:
        labels = self._label_binarizer.inverse_transform(targets_val)
        return accuracy_score(labels, self._decoded(outputs), sample_weight=weights_val)

    def _decoded(self, outputs):
        return self._label_binarizer.inverse_transform(outputs.ravel() if self.n_outputs_ == 1 else outputs)

    def predict(self, X):
        """The predicted class (or label set, for multilabel) of each sample.

        Args:
            X: ``(samples, features)``.

        Returns:
            ``(samples,)`` labels from ``classes_`` (``(samples, labels)`` indicators for multilabel), in
            the input's namespace and device under scikit-learn's ``array_api_dispatch``.
        """
        return dispatch.like(self._decoded(self._outputs(X, "predict")), X)

    def predict_proba(self, X):
        """Class probabilities.

        Args:
            X: ``(samples, features)``.

        Returns:
            ``(samples, classes)``: a column per entry of ``classes_`` (two for a binary problem).
        """
        return dispatch.like(self._probabilities(X, "predict_proba"), X)

    def predict_log_proba(self, X):
        """The natural logarithm of ``predict_proba``."""
        return dispatch.like(np.log(self._probabilities(X, "predict_log_proba")), X)

    def _probabilities(self, X, method: str):
        probabilities = self._outputs(X, method)
        if self.n_outputs_ == 1 and self._label_binarizer.y_type_ != "multilabel-indicator":
            return np.hstack([1.0 - probabilities, probabilities])
        return probabilities

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):
    """scikit-learn's multi-layer perceptron regressor, trained by xpnet on the CPU or a GPU (``device``).

    ``loss="squared_error"`` (half the mean squared error, identity output) or ``"poisson"`` (exponential
    output).

    Every parameter is scikit-learn's, then xpnet's three, as for ``MLPClassifier``:

    Other Parameters:
        device: Where it trains (``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"``).
        dtype: ``None`` (the input's precision), ``"float32"`` or ``"float64"``.
        dropout: Dropout after each hidden layer.

    Attributes:
        model_: The fitted ``xpnet.Model``, beside scikit-learn's fitted attributes.
    """

    _parameter_constraints: ClassVar[dict] = {**_SklearnRegressor._parameter_constraints, **_EXTRAS}

    def __init__(self, loss="squared_error", hidden_layer_sizes=(100,), activation="relu", **settings):
        super().__init__(hidden_layer_sizes, activation, **settings)
        self.loss = loss

    def fit(self, X, y, sample_weight=None):
        """Train on ``(X, y)``: from scratch, or from the current weights with ``warm_start``.

        Args:
            X: ``(samples, features)``: arrays, data frames or sparse matrices.
            y: Targets, ``(samples,)`` or ``(samples, targets)``.
            sample_weight: One weight per sample: each batch's loss is then their weighted mean.

        Returns:
            The estimator itself.

        Raises:
            ValueError: Parameters or data scikit-learn refuses (non-finite targets, say), with its message.
        """
        return self._fit(X, y, incremental=False, sample_weight=sample_weight)

    @available_if(lambda self: self._check_solver())
    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over ``(X, y)``, continuing from the previous call.

        Args:
            X: ``(samples, features)``.
            y: The targets.
            sample_weight: One weight per sample, as for ``fit``.

        Returns:
            The estimator itself.
        """
        return self._fit(X, y, incremental=True, sample_weight=sample_weight)

    def _checked(self, X, y, *, first_pass, incremental, classes):
        X, y = self._validated_Xy(X, y, reset=first_pass, y_numeric=True)
        return X, y.astype(X.dtype)

    def _out_activation(self) -> str:
        return "exp" if self.loss == "poisson" else "identity"

    def _xpnet_loss(self) -> str:
        return self.loss

    def _validation_score(self, outputs, targets_val, weights_val) -> float:
        return r2_score(targets_val, outputs, sample_weight=weights_val)

    def predict(self, X):
        """The predicted targets.

        Args:
            X: ``(samples, features)``.

        Returns:
            ``(samples,)`` for one target, else ``(samples, targets)``.
        """
        outputs = self._outputs(X, "predict")
        return dispatch.like(outputs.ravel() if outputs.shape[1] == 1 else outputs, X)


def _regressor_signature() -> inspect.Signature:
    """The regressor's constructor as scikit-learn's: ``loss`` first, then the shared parameters (so
    ``get_params`` and ``clone`` see every one by name, with no ``**settings``)."""
    shared = list(inspect.signature(_BaseMLP.__init__).parameters.values())
    loss = inspect.Parameter("loss", inspect.Parameter.POSITIONAL_OR_KEYWORD, default="squared_error")
    return inspect.Signature([shared[0], loss, *shared[1:]])


MLPRegressor.__init__.__signature__ = _regressor_signature()
