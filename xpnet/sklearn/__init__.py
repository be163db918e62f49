"""scikit-learn estimators backed by xpnet (the optional extra ``xpnet[sklearn]``).

Swap ``from sklearn.neural_network import MLPClassifier`` for ``from xpnet.sklearn import
MLPClassifier`` to train on a GPU (``device="cuda"``, or the default ``"auto"``) inside pipelines,
grid searches and cross-validation. ``import xpnet`` alone never imports scikit-learn.
"""

try:
    import sklearn  # noqa: F401
except ImportError:
    raise ImportError("xpnet.sklearn needs scikit-learn: pip install 'xpnet[sklearn]'") from None

from xpnet.sklearn.estimators import MLPClassifier, MLPRegressor

__all__ = ["MLPClassifier", "MLPRegressor"]
