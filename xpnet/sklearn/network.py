"""The network scikit-learn's MLP starts from, and the settings that train it the way scikit-learn does.

Weights are drawn as scikit-learn draws them: layer by layer, a Glorot-uniform weight matrix then a
bias vector from ``random_state``, the bound ``sqrt(6 / (fan_in + fan_out))`` (2 instead of 6 for the
logistic activation), in float64 and then cast, so float32 and float64 data start from the same draws.
"""

from __future__ import annotations

import itertools

import numpy as np

from xpnet.nn.layers import Activation, Dense, Dropout, Layer
from xpnet.nn.network import Network

# scikit-learn's activation names, as xpnet calls them.
ACTIVATIONS = {"identity": "identity", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu"}


def initial_network(estimator, sizes: list[int], dtype, random_state: np.random.RandomState) -> Network:
    """An MLP ``sizes[0] -> ... -> sizes[-1]`` with ``estimator``'s activation, dropout and L2 penalty
    (``alpha``), its parameters drawn from ``random_state`` as scikit-learn draws them, as NumPy arrays."""
    factor = 2.0 if estimator.activation == "logistic" else 6.0
    layers: list[Layer] = []
    for index, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
        bound = np.sqrt(factor / (fan_in + fan_out))
        weight = random_state.uniform(-bound, bound, (fan_in, fan_out)).astype(dtype)
        bias = random_state.uniform(-bound, bound, fan_out).astype(dtype)
        if index:
            layers.append(Activation(ACTIVATIONS[estimator.activation]))
            if estimator.dropout:
                layers.append(Dropout(estimator.dropout))
        layers.append(Dense(weight, bias, l2=float(estimator.alpha)))
    return Network(layers)


# The TrainConfig settings that "lbfgs" (one epoch of max_iter iterations and max_fun evaluations,
# to the gradient tolerance tol) and "adam" take from the estimator's parameters, by name.
SOLVER_SETTINGS = {
    "lbfgs": {"lbfgs_iterations": "max_iter", "max_fun": "max_fun", "tol": "tol"},
    "adam": {"adam_beta1": "beta_1", "adam_beta2": "beta_2", "adam_eps": "epsilon"},
}


def optimizer_settings(estimator) -> dict:
    """The ``TrainConfig`` settings of ``solver`` (``SOLVER_SETTINGS``); scikit-learn's momentum and
    Nesterov updates are torch's with the learning rate folded into the velocity."""
    if estimator.solver in SOLVER_SETTINGS:
        taken = SOLVER_SETTINGS[estimator.solver].items()
        return {"optimizer": estimator.solver, **{name: getattr(estimator, parameter) for name, parameter in taken}}
    if not estimator.momentum:
        return {"optimizer": "sgd"}
    return {"optimizer": "nesterov" if estimator.nesterovs_momentum else "momentum", "momentum": estimator.momentum}


def batch_size_for(estimator, n_samples: int) -> int:
    """``batch_size`` as scikit-learn reads it: "auto" is ``min(200, n_samples)``, others clipped to the data."""
    if estimator.batch_size == "auto":
        return min(200, n_samples)
    return int(np.clip(estimator.batch_size, 1, n_samples))
