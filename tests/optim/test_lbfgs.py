"""L-BFGS against SciPy's L-BFGS-B, called as scikit-learn's MLP calls it: the same minimum on the
same problems, in about as many iterations and evaluations, on every backend."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_array, float64, on

from xpnet.arrays.backend import array_namespace
from xpnet.optim.lbfgs import minimize

scipy_optimize = pytest.importorskip("scipy.optimize")


def rosenbrock(x):
    """SciPy's Rosenbrock function and gradient, in any namespace."""
    xp = array_namespace(x)
    head, tail = x[:-1], x[1:]
    value = xp.sum(100.0 * (tail - head**2) ** 2 + (1.0 - head) ** 2)
    inner = xp.concat([xp.zeros(1, dtype=x.dtype, device=x.device), 200.0 * (tail - head**2)])
    outer = xp.concat(
        [-400.0 * head * (tail - head**2) - 2.0 * (1.0 - head), xp.zeros(1, dtype=x.dtype, device=x.device)]
    )
    return value, inner + outer


def penalised_logistic_regression(features, labels, alpha):
    """Mean logistic loss plus ``alpha / 2 * |w|^2``, in the namespace of the features."""

    def value_and_gradient(w):
        xp = array_namespace(w)
        z = features @ w
        value = xp.mean(xp.maximum(z, 0.0) + xp.log1p(xp.exp(-xp.abs(z))) - labels * z) + 0.5 * alpha * xp.sum(w * w)
        gradient = features.T @ (1.0 / (1.0 + xp.exp(-z)) - labels) / z.shape[0] + alpha * w
        return value, gradient

    return value_and_gradient


def scipy_lbfgs(function, x0, *, max_iter, max_fun, tol):
    return scipy_optimize.minimize(
        function, x0, method="L-BFGS-B", jac=True, options={"maxiter": max_iter, "maxfun": max_fun, "gtol": tol}
    )


def on_host(function):
    return lambda x: tuple(np.asarray(part) for part in function(x))


def test_reaches_scipys_minimum_of_rosenbrock(backend):
    float64(backend)
    x0 = np.full(6, -1.2)
    reference = scipy_lbfgs(on_host(rosenbrock), x0, max_iter=500, max_fun=15000, tol=1e-8)
    result = minimize(rosenbrock, on(backend, x0), max_iter=500, max_fun=15000, tol=1e-8)
    assert result.converged
    assert result.value == pytest.approx(reference.fun, abs=1e-8)
    assert_array(result.x, np.ones(6), backend, dtype=backend.xp.float64, atol=1e-4)
    assert abs(result.iterations - reference.nit) <= 0.2 * reference.nit
    assert abs(result.evaluations - reference.nfev) <= 0.2 * reference.nfev


def test_reaches_scipys_minimum_of_a_penalised_logistic_regression(backend):
    float64(backend)
    rng = np.random.default_rng(0)
    features = rng.normal(size=(200, 10))
    labels = (features @ rng.normal(size=10) + rng.normal(size=200) > 0).astype(np.float64)
    reference = scipy_lbfgs(
        penalised_logistic_regression(features, labels, 1e-3), np.zeros(10), max_iter=200, max_fun=15000, tol=1e-6
    )
    function = penalised_logistic_regression(on(backend, features), on(backend, labels), 1e-3)
    result = minimize(function, on(backend, np.zeros(10)), max_iter=200, max_fun=15000, tol=1e-6)
    assert result.converged
    assert result.value == pytest.approx(reference.fun, rel=1e-10)
    assert_array(result.x, reference.x, backend, dtype=backend.xp.float64, rtol=1e-4, atol=1e-6)


def test_stops_at_max_iter_and_once_more_than_max_fun_evaluations_are_spent(backend):
    x0 = on(backend, np.full(6, -1.2))
    by_iterations = minimize(rosenbrock, x0, max_iter=5, max_fun=15000, tol=0.0)
    assert (by_iterations.iterations, by_iterations.converged, by_iterations.message) == (5, False, "max_iter reached")
    by_evaluations = minimize(rosenbrock, x0, max_iter=500, max_fun=10, tol=0.0)
    assert not by_evaluations.converged and by_evaluations.message == "max_fun exceeded"
    assert by_evaluations.evaluations > 10 and by_evaluations.iterations <= 10
