"""A scikit-learn grid search over an MLP on digits, moved to xpnet by changing one import.

The scikit-learn original reads ``from sklearn.neural_network import MLPClassifier``; that is the
only line that differs. Everything else (pipeline, grid search in two processes, scoring,
pickling, scikit-learn's parameter names and defaults) is unchanged scikit-learn code, and xpnet
trains on a GPU when CuPy sees one (``device="auto"``, the default; ``device="cpu"`` or ``"cuda"`` to
choose).

    python examples/sklearn_swap.py
"""

import pickle

from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from xpnet.sklearn import MLPClassifier

x, y = load_digits(return_X_y=True)
x_train, x_test, y_train, y_test = train_test_split(x, y, stratify=y, random_state=0)

pipeline = make_pipeline(StandardScaler(), MLPClassifier(max_iter=300, early_stopping=True, random_state=0))
grid = {"mlpclassifier__alpha": [1e-4, 1e-2], "mlpclassifier__hidden_layer_sizes": [(64,), (128,)]}
search = GridSearchCV(pipeline, grid, cv=3, n_jobs=2).fit(x_train, y_train)

print(f"best settings: {search.best_params_}")
print(f"cross-validated accuracy: {search.best_score_:.3f}")
print(f"test accuracy: {search.score(x_test, y_test):.3f}")
restored = pickle.loads(pickle.dumps(search.best_estimator_))
print(f"test accuracy after a pickle round trip: {restored.score(x_test, y_test):.3f}")
