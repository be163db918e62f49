"""scikit-learn estimators backed by xpnet (the optional extra ``xpnet[sklearn]``).

Swap ``from sklearn.neural_network import MLPClassifier`` for ``from xpnet.sklearn import
MLPClassifier`` to train on a GPU (``device="cuda"``, or the default ``"auto"``) inside pipelines,
grid searches and cross-validation. ``import xpnet`` alone never imports scikit-learn.

Parameters are scikit-learn's ``MLPClassifier``/``MLPRegressor`` parameters, with its names, defaults
and meanings, then xpnet's: ``device`` (``"auto"``: CUDA when CuPy sees a GPU, else the CPU; ``"cpu"``,
``"cuda"``, ``"cuda:N"``), ``dtype`` (``None``: the input's precision) and ``dropout``.

Fitted attributes are scikit-learn's, as NumPy arrays on any device (``coefs_``, ``intercepts_``,
``loss_curve_``, ``n_iter_``, ``classes_``...), plus ``model_``, the ``xpnet.Model`` (``model_.save(path)``
writes xpnet's pickle-free file). Pickles hold NumPy arrays and load onto ``device`` as resolved where
they are loaded.
"""

try:
    import sklearn  # noqa: F401
except ImportError:
    raise ImportError("xpnet.sklearn needs scikit-learn: pip install 'xpnet[sklearn]'") from None

from xpnet.sklearn.estimators import MLPClassifier, MLPRegressor

__all__ = ["MLPClassifier", "MLPRegressor"]
