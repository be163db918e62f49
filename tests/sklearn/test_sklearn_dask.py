"""xpnet's scikit-learn estimators in a ``GridSearchCV`` whose fits run on a Dask cluster through joblib
(``joblib.parallel_backend("dask")``), here a ``LocalCluster`` of worker processes on this machine: the
search finds the same scores as on one process. Slow: it starts a cluster (``pip install 'dask[distributed]'``)."""

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")
distributed = pytest.importorskip(
    "distributed", reason="needs Dask's distributed scheduler: pip install '.[test,slow]'"
)

from joblib import parallel_backend  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402

from xpnet.sklearn import MLPClassifier  # noqa: E402


@pytest.mark.slow
def test_grid_search_runs_its_fits_on_a_dask_cluster_with_the_scores_of_one_process():
    x, y = load_digits(return_X_y=True)
    x, y = x[:600] / 16.0, y[:600]
    grid = {"learning_rate_init": [1e-2, 3e-2], "hidden_layer_sizes": [(16,), (32,)]}

    def search():
        return GridSearchCV(MLPClassifier(max_iter=6, device="cpu"), grid, cv=2, error_score="raise").fit(x, y)

    local = search()
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        distributed.Client(cluster) as client,
        parallel_backend("dask"),
    ):
        on_cluster = search()
        # The fits ran in the cluster's worker processes: each of them has run tasks.
        tasks = client.run(lambda dask_worker: len(dask_worker.data) + dask_worker.state.executed_count)
    assert len(tasks) == 2 and all(count > 0 for count in tasks.values())
    np.testing.assert_array_equal(local.cv_results_["mean_test_score"], on_cluster.cv_results_["mean_test_score"])
    assert on_cluster.best_score_ > 0.8
