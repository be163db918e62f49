"""``MLPClassifier`` and ``MLPRegressor``: xpnet's ``Model`` behind scikit-learn's estimator API.

The constructor takes the trainer's settings under their own names (``hidden``, ``lr``, ``epochs``...,
see ``xpnet.TrainConfig``) plus ``device``. scikit-learn validates the inputs and keeps the label
bookkeeping (``classes_``, feature names); xpnet trains on the chosen device. Results come back
in the namespace of the input: NumPy for NumPy input, whatever the device, and torch or CuPy arrays
on their own device when scikit-learn's ``array_api_dispatch`` lets those through.
"""

from __future__ import annotations

import array_api_compat
import numpy as np
from sklearn import get_config
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from xpnet.arrays.backend import to_numpy
from xpnet.sklearn import host
from xpnet.train.config import TrainConfig
from xpnet.train.model import Model

_DEFAULTS = TrainConfig()


class _XpnetEstimator(BaseEstimator):
    """The settings, training and pickling shared by the classifier and the regressor."""

    _loss: str

    def __init__(
        self,
        hidden=_DEFAULTS.hidden,
        activation=_DEFAULTS.activation,
        init=_DEFAULTS.init,
        dropout=_DEFAULTS.dropout,
        optimizer=_DEFAULTS.optimizer,
        lr=_DEFAULTS.lr,
        momentum=_DEFAULTS.momentum,
        adam_beta1=_DEFAULTS.adam_beta1,
        adam_beta2=_DEFAULTS.adam_beta2,
        adam_eps=_DEFAULTS.adam_eps,
        weight_decay=_DEFAULTS.weight_decay,
        schedule=_DEFAULTS.schedule,
        warmup_epochs=_DEFAULTS.warmup_epochs,
        batch_size=_DEFAULTS.batch_size,
        epochs=_DEFAULTS.epochs,
        early_stopping=_DEFAULTS.early_stopping,
        val_split=_DEFAULTS.val_split,
        seed=_DEFAULTS.seed,
        dtype=None,
        tf32=_DEFAULTS.tf32,
        device="auto",
    ):
        self.hidden = hidden
        self.activation = activation
        self.init = init
        self.dropout = dropout
        self.optimizer = optimizer
        self.lr = lr
        self.momentum = momentum
        self.adam_beta1 = adam_beta1
        self.adam_beta2 = adam_beta2
        self.adam_eps = adam_eps
        self.weight_decay = weight_decay
        self.schedule = schedule
        self.warmup_epochs = warmup_epochs
        self.batch_size = batch_size
        self.epochs = epochs
        self.early_stopping = early_stopping
        self.val_split = val_split
        self.seed = seed
        self.dtype = dtype
        self.tf32 = tf32
        self.device = device

    def _new_model(self, X) -> Model:
        """A fresh model with these settings; ``dtype=None`` trains in ``X``'s float precision, as
        scikit-learn's own estimators do (float32 for float32 data, float64 otherwise). Early stopping
        without ``val_split`` holds out a tenth of the data, as scikit-learn's ``validation_fraction``."""
        settings = self.get_params(deep=False)
        device = settings.pop("device")
        if settings["dtype"] is None:
            settings["dtype"] = "float32" if X.dtype == array_api_compat.array_namespace(X).float32 else "float64"
        return Model(TrainConfig(loss=self._loss, **settings).with_early_stopping_split(), device=device)

    def _train(self, X, y, *, epochs=None, n_classes=None):
        """Train ``model_`` on validated data and record what scikit-learn users look for."""
        self.model_.fit(X, y, epochs=epochs, n_classes=n_classes)
        self._fitted_on = _namespace_and_device(X)
        self.history_ = self.model_.history
        self.loss_curve_ = [record["train_loss"] for record in self.history_]
        self.n_iter_ = self.model_.epochs_done

    def _validated(self, X, method: str):
        """``X`` checked against what ``fit`` saw: features, and with ``array_api_dispatch`` on, the
        namespace and device (as scikit-learn requires of array-API estimators)."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False)
        where = _namespace_and_device(X)
        if get_config()["array_api_dispatch"] and where != self._fitted_on:
            raise ValueError(
                f"Inputs passed to {type(self).__name__}.{method}() must use the same namespace and the same "
                f"device as those passed to fit(): fitted on {self._fitted_on}, got {where}; "
                "move X there first, or fit again"
            )
        return X

    def __getstate__(self):
        state = dict(super().__getstate__())  # object.__getstate__ hands out the live __dict__ itself
        if "model_" in state:
            state["model_"] = host.to_host(state["model_"])
        return state

    def __setstate__(self, state):
        if "model_" in state:
            state = {**state, "model_": host.from_host(state["model_"])}
        super().__setstate__(state)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.array_api_support = True
        return tags


class MLPClassifier(ClassifierMixin, _XpnetEstimator):
    """A multi-layer perceptron classifier trained by xpnet, on the CPU or a GPU (``device``).

    Labels may be of any type (strings included); ``classes_`` holds them sorted. ``fit`` trains
    for ``epochs`` epochs from a fresh start; ``partial_fit`` trains one epoch more (pass
    ``classes=`` on the first call). Settings and fitted attributes: ``help(xpnet.sklearn)``.
    """

    _loss = "cross_entropy"

    def fit(self, X, y):
        """Train a new network on ``(X, y)`` for ``epochs`` epochs."""
        X, y = validate_data(self, X, y)
        check_classification_targets(y)
        self.classes_, encoded = np.unique(to_numpy(y), return_inverse=True)
        self.model_ = self._new_model(X)
        self._train(X, encoded, n_classes=len(self.classes_))
        return self

    def partial_fit(self, X, y, classes=None):
        """Train one epoch on ``(X, y)``, continuing from the previous call; the first call needs
        ``classes``, every label that will ever be seen."""
        first_call = not hasattr(self, "model_")
        X, y = validate_data(self, X, y, reset=first_call)
        check_classification_targets(y)
        if first_call:
            if classes is None:
                raise ValueError("classes must be passed on the first call to partial_fit (e.g. numpy.unique(y_all))")
            self.classes_ = np.unique(_on_host(classes))
            self.model_ = self._new_model(X)
        elif classes is not None and not np.array_equal(np.unique(_on_host(classes)), self.classes_):
            raise ValueError(f"classes={classes!r} differs from the classes of the first call {self.classes_!r}")
        self._train(X, self._encode(y), epochs=1, n_classes=len(self.classes_))
        return self

    def predict(self, X):
        """The most probable class of each sample, from ``classes_``."""
        X = self._validated(X, "predict")
        indices = _like(self.model_.predict(X), X)
        if isinstance(X, np.ndarray) or self.classes_.dtype.kind not in "biuf":
            return self.classes_[to_numpy(indices)]
        xp = array_api_compat.array_namespace(X)
        return xp.take(xp.asarray(self.classes_, device=array_api_compat.device(X)), indices, axis=0)

    def predict_proba(self, X):
        """Class probabilities, one column per entry of ``classes_``, in ``X``'s float precision."""
        X = self._validated(X, "predict_proba")
        return _floating_like(self.model_.predict_proba(X), X)

    def predict_log_proba(self, X):
        """Natural logarithm of ``predict_proba``."""
        X = self._validated(X, "predict_log_proba")
        probabilities = _floating_like(self.model_.predict_proba(X), X)
        return array_api_compat.array_namespace(probabilities).log(probabilities)

    def _encode(self, y):
        """Indices of ``y``'s labels in ``classes_``, naming any label that is not there."""
        y = to_numpy(y)
        unknown = np.setdiff1d(y, self.classes_)
        if unknown.size:
            raise ValueError(f"labels {unknown.tolist()} are not in classes {self.classes_.tolist()} of the first call")
        return np.searchsorted(self.classes_, y)


class MLPRegressor(RegressorMixin, _XpnetEstimator):
    """A multi-layer perceptron regressor (mean squared error, linear output) trained by xpnet.

    ``y`` may be 1-D or ``(samples, targets)``; ``predict`` returns the same shape. Settings and
    fitted attributes: ``help(xpnet.sklearn)``.
    """

    _loss = "mse"

    def fit(self, X, y):
        """Train a new network on ``(X, y)`` for ``epochs`` epochs."""
        X, y = validate_data(self, X, y, multi_output=True, y_numeric=True)
        self.model_ = self._new_model(X)
        self._train(X, y)
        return self

    def partial_fit(self, X, y):
        """Train one epoch on ``(X, y)``, continuing from the previous call."""
        first_call = not hasattr(self, "model_")
        X, y = validate_data(self, X, y, multi_output=True, y_numeric=True, reset=first_call)
        if first_call:
            self.model_ = self._new_model(X)
        self._train(X, y, epochs=1)
        return self

    def predict(self, X):
        """Predicted targets: ``(samples,)`` when trained on 1-D ``y``, else ``(samples, targets)``."""
        X = self._validated(X, "predict")
        outputs = _floating_like(self.model_.predict(X), X)
        return outputs[:, 0] if self._single_target else outputs

    def _train(self, X, y, **options):
        self._single_target = y.ndim == 1
        super()._train(X, y, **options)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags


def _on_host(values) -> np.ndarray:
    """Labels from any array library, or a list, as a NumPy array."""
    return to_numpy(values) if array_api_compat.is_array_api_obj(values) else np.asarray(values)


def _namespace_and_device(X) -> tuple[str, str]:
    """Where ``X`` lives, as plain strings that pickle and compare."""
    return array_api_compat.array_namespace(X).__name__, str(array_api_compat.device(X))


def _like(result, X):
    """``result`` in the namespace and on the device of ``X``."""
    if isinstance(X, np.ndarray):
        return to_numpy(result)
    xp = array_api_compat.array_namespace(X)
    where = array_api_compat.device(X)
    if array_api_compat.array_namespace(result) is xp and array_api_compat.device(result) == where:
        return result
    return xp.asarray(to_numpy(result), device=where)


def _floating_like(result, X):
    """Float ``result`` like ``X``, in ``X``'s float dtype (float64 for integer ``X``), as scikit-learn's
    estimators answer whatever precision the network was trained in."""
    result = _like(result, X)
    xp = array_api_compat.array_namespace(X)
    dtype = X.dtype if xp.isdtype(X.dtype, "real floating") else xp.float64
    return xp.astype(result, dtype, copy=False)
