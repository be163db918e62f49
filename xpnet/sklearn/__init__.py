"""scikit-learn estimators backed by xpnet (the optional extra ``xpnet[sklearn]``).

Swap ``from sklearn.neural_network import MLPClassifier`` for ``from xpnet.sklearn import
MLPClassifier`` to train on a GPU (``device="cuda"``, or the default ``"auto"``) inside pipelines,
grid searches and cross-validation. ``import xpnet`` alone never imports scikit-learn.

Parameters are the fields of ``xpnet.TrainConfig`` (all but ``loss``, which the class fixes) with
the same meanings and defaults, except ``dtype=None``: train in the input's precision, float32 for
float32 data and float64 otherwise, as scikit-learn does (``dtype="float32"`` is faster).
``device`` is ``"auto"`` (CUDA when CuPy sees a GPU, else the CPU; arrays of another library passed
under ``array_api_dispatch`` train in that library), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.

Fitted attributes: ``classes_`` (classifier), ``model_`` (the ``xpnet.Model``; ``model_.save(path)``
writes xpnet's pickle-free file), ``history_`` (one record per epoch), ``loss_curve_``, ``n_iter_``
(epochs trained), ``n_features_in_`` and, for data frames, ``feature_names_in_``. Pickles hold NumPy
arrays and load onto ``device`` as resolved where they are loaded.
"""

try:
    import sklearn  # noqa: F401
except ImportError:
    raise ImportError("xpnet.sklearn needs scikit-learn: pip install 'xpnet[sklearn]'") from None

from xpnet.sklearn.estimators import MLPClassifier, MLPRegressor

__all__ = ["MLPClassifier", "MLPRegressor"]
