"""L-BFGS on a flat parameter vector, written once against the array API (so it runs on any device).

``minimize`` is the limited-memory BFGS method as SciPy's L-BFGS-B runs it without bounds (which is
how scikit-learn's MLP calls it): the two-loop recursion over the last ``history`` steps, a line search
meeting the strong Wolfe conditions, and the same stopping rules and counts: an iteration is one
accepted step, every call of ``value_and_gradient`` is an evaluation, and it stops when the largest
gradient entry is at most ``tol``, when the relative fall of the value is at most ``ftol``, after
``max_iter`` iterations, or once more than ``max_fun`` evaluations are spent.

``LBFGS`` is the optimizer a model holds for ``optimizer="lbfgs"`` (registered as a full-batch one).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from xpnet import validation
from xpnet.arrays.backend import array_namespace
from xpnet.errors import SettingError, XpnetError
from xpnet.optim.optimizer import Optimizer, register

# SciPy's default relative tolerance on the fall of the value (factr=1e7 times the float64 epsilon).
FTOL = 1e7 * 2.220446049250313e-16
# The sufficient decrease (Armijo) and curvature constants of the line search, as SciPy's.
SUFFICIENT_DECREASE, CURVATURE = 1e-3, 0.9
LINE_SEARCH_TRIES = 20
# The curvature pairs kept (SciPy's and scikit-learn's default).
HISTORY = 10


@dataclass(frozen=True)
class LBFGSSettings:
    """L-BFGS takes ``alpha``'s L2 penalty in its objective, never a weight decay."""

    weight_decay: float = 0.0


class LBFGS(Optimizer):
    """L-BFGS as a model holds its optimizer: full-batch, so no per-step rule (``step`` refuses) and no
    buffers (each epoch's run starts from the weights alone); ``steps`` counts the iterations taken.
    ``xpnet.train.full_batch.LBFGSEpoch`` runs ``minimize`` as the model's epoch runner."""

    full_batch = True
    # At its peak: the curvature pairs, and the point, gradient, direction, trial point and trial
    # gradient, each a vector of every parameter.
    rule_temporaries = 2 * HISTORY + 5

    def __init__(self):
        super().__init__(LBFGSSettings())

    def step(self, params: list, grads: list, lr: float) -> list:
        raise XpnetError(
            "lbfgs trains on the whole training set at once, not step by step: train it through Model, "
            "whose epoch runner it sets (xpnet.train.full_batch.LBFGSEpoch)"
        )


@register("lbfgs", full_batch=True)
def _lbfgs(*, weight_decay=0.0, **_) -> LBFGS:
    if weight_decay:
        raise SettingError(
            f"lbfgs minimises the loss plus the L2 penalty alpha, not a weight decay: "
            f"give alpha instead of weight_decay={weight_decay}"
        )
    return LBFGS()


class Result(NamedTuple):
    """Where ``minimize`` stopped: the point, its value and gradient, the iterations and evaluations
    spent, whether it converged (a tolerance met, not a limit reached) and why it stopped."""

    x: object
    value: float
    gradient: object
    iterations: int
    evaluations: int
    converged: bool
    message: str


class _Counted:
    """``value_and_gradient`` with its calls counted, the value read as a float."""

    def __init__(self, value_and_gradient: Callable):
        self.function, self.evaluations = value_and_gradient, 0

    def __call__(self, x) -> tuple[float, object]:
        self.evaluations += 1
        value, gradient = self.function(x)
        return float(value), gradient


def minimize(
    value_and_gradient: Callable,
    x0,
    *,
    max_iter: int,
    max_fun: int,
    tol: float,
    ftol: float = FTOL,
    history: int = HISTORY,
) -> Result:
    """Minimise the function ``value_and_gradient(x) -> (value, gradient)`` from ``x0``, a 1-D array of
    any array-API library; ``x`` stays in that namespace and on its device throughout."""
    max_iter = validation.whole("max_iter", max_iter, minimum=1)
    max_fun = validation.whole("max_fun", max_fun, minimum=1)
    xp = array_namespace(x0)
    function = _Counted(value_and_gradient)
    x = x0
    value, gradient = function(x)
    steps: list[tuple[object, object, float]] = []  # (s, y, 1 / y.s) of the latest iterations
    iterations = 0
    while True:
        if not math.isfinite(value):
            return Result(x, value, gradient, iterations, function.evaluations, False, "the value is not finite")
        if float(xp.max(xp.abs(gradient))) <= tol:
            return Result(x, value, gradient, iterations, function.evaluations, True, "gradient below tol")
        direction = -_two_loop(gradient, steps)
        first_step = 1.0 if steps else 1.0 / _norm(direction)
        found = _wolfe_step(function, x, value, gradient, direction, first_step, max_fun)
        if found is None and steps:  # as SciPy: forget the curvature pairs and try steepest descent once
            steps.clear()
            direction = -gradient
            found = _wolfe_step(function, x, value, gradient, direction, 1.0 / _norm(direction), max_fun)
        if found is None:
            return Result(x, value, gradient, iterations, function.evaluations, False, "the line search failed")
        step, new_value, new_gradient = found
        s, y = step * direction, new_gradient - gradient
        curvature = float(xp.sum(y * s))
        if curvature > 2.220446049250313e-16 * float(xp.sum(y * y)):
            steps.append((s, y, 1.0 / curvature))
            del steps[:-history]
        fall = (value - new_value) / max(abs(value), abs(new_value), 1.0)
        x, value, gradient = x + s, new_value, new_gradient
        iterations += 1
        if fall <= ftol:
            return Result(x, value, gradient, iterations, function.evaluations, True, "relative fall below ftol")
        if iterations >= max_iter:
            return Result(x, value, gradient, iterations, function.evaluations, False, "max_iter reached")
        if function.evaluations > max_fun:
            return Result(x, value, gradient, iterations, function.evaluations, False, "max_fun exceeded")


def _norm(vector) -> float:
    """The Euclidean length, from a sum of squares (``linalg`` is an optional extension of the standard)."""
    xp = array_namespace(vector)
    return math.sqrt(float(xp.sum(vector * vector)))


def _two_loop(gradient, steps: list) -> object:
    """The inverse-Hessian estimate of the stored steps applied to ``gradient`` (Nocedal and Wright,
    Algorithm 7.4), scaled by ``s.y / y.y`` of the latest step."""
    xp = array_namespace(gradient)
    q = gradient
    alphas = []
    for s, y, rho in reversed(steps):
        alpha = rho * float(xp.sum(s * q))
        alphas.append(alpha)
        q = q - alpha * y
    if steps:
        _, y, rho = steps[-1]
        q = q / (rho * float(xp.sum(y * y)))
    for (s, y, rho), alpha in zip(steps, reversed(alphas)):
        beta = rho * float(xp.sum(y * q))
        q = q + (alpha - beta) * s
    return q


def _wolfe_step(function: _Counted, x, value: float, gradient, direction, step: float, max_fun: int):
    """``(step, value, gradient)`` at a step along ``direction`` meeting the strong Wolfe conditions
    (Nocedal and Wright, Algorithm 3.5, with cubic interpolation in the zoom), or None if the direction
    does not descend or no such step is found within the tries and ``max_fun`` evaluations."""
    xp = array_namespace(x)
    slope0 = float(xp.sum(gradient * direction))
    if not slope0 < 0:
        return None

    def at(trial: float):
        trial_value, trial_gradient = function(x + trial * direction)
        return trial, trial_value, trial_gradient, float(xp.sum(trial_gradient * direction))

    def acceptable(point) -> bool:
        return math.isfinite(point[1]) and point[1] <= value + SUFFICIENT_DECREASE * point[0] * slope0

    low = (0.0, value, gradient, slope0)
    for tries in range(LINE_SEARCH_TRIES):
        point = at(step)
        if not acceptable(point) or (tries and point[1] >= low[1]):
            return _zoom(at, low, point, acceptable, slope0, function, max_fun)
        if abs(point[3]) <= -CURVATURE * slope0:
            return point[:3]
        if point[3] >= 0:
            return _zoom(at, point, low, acceptable, slope0, function, max_fun)
        if function.evaluations >= max_fun:
            return point[:3]
        low, step = point, 4.0 * step
    return None


def _zoom(at, low, high, acceptable, slope0: float, function: _Counted, max_fun: int):
    """Narrow ``[low, high]`` (``low`` meets sufficient decrease, with the lower value) to a strong
    Wolfe step; past the tries or ``max_fun``, the best acceptable step seen (None if only the start)."""
    for _ in range(LINE_SEARCH_TRIES):
        trial = _cubic_minimum(low, high)
        point = at(trial)
        if not acceptable(point) or point[1] >= low[1]:
            high = point
        else:
            if abs(point[3]) <= -CURVATURE * slope0:
                return point[:3]
            if point[3] * (high[0] - low[0]) >= 0:
                high = low
            low = point
        if function.evaluations >= max_fun:
            break
    return low[:3] if low[0] > 0 else None


def _cubic_minimum(low, high) -> float:
    """The minimiser of the cubic through both ends' values and slopes, kept inside the middle 80% of
    the interval (bisection where the cubic has none there)."""
    a, fa, _, da = low
    b, fb, _, db = high
    span = b - a
    lo, hi = min(a, b) + 0.1 * abs(span), max(a, b) - 0.1 * abs(span)
    if math.isfinite(fb) and math.isfinite(db):
        d1 = da + db - 3.0 * (fa - fb) / (a - b)
        radicand = d1 * d1 - da * db
        if radicand >= 0:
            d2 = math.copysign(math.sqrt(radicand), b - a)
            denominator = db - da + 2.0 * d2
            if denominator != 0:
                trial = b - (b - a) * (db + d2 - d1) / denominator
                if lo <= trial <= hi:
                    return trial
    return 0.5 * (a + b)
