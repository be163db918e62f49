"""Full-batch training by L-BFGS (``xpnet.optim.lbfgs``), as ``Model.epoch_runner`` (a model whose
optimizer is "lbfgs" sets it): one epoch is one L-BFGS run over all the data, from the weights as they
are, of at most ``max_iter`` iterations and ``max_fun`` evaluations. Each run starts without curvature
pairs, so an epoch depends on the weights alone and a run resumed from an epoch's checkpoint continues
exactly.

The objective is the mean loss plus the L2 penalty of the ``Dense`` layers divided by the rows (the
penalised loss scikit-learn's ``solver="lbfgs"`` minimises), without dropout: a line search needs the
same function at every evaluation.
"""

from __future__ import annotations

import math

from xpnet.arrays.backend import array_namespace
from xpnet.nn.layers import weight_penalty
from xpnet.nn.losses import Loss, weighted
from xpnet.nn.network import Network
from xpnet.optim import lbfgs
from xpnet.train.config import LBFGS_TOL, TrainConfig
from xpnet.train.loop import EpochResult, count_correct


def flattened(arrays: list):
    """The arrays' entries in one vector, in order."""
    xp = array_namespace(arrays[0])
    return xp.concat([xp.reshape(array, (-1,)) for array in arrays])


def unflattened(vector, like: list) -> list:
    """``flattened``'s inverse: arrays shaped as ``like``, from consecutive runs of ``vector``."""
    xp = array_namespace(vector)
    arrays, start = [], 0
    for array in like:
        size = math.prod(array.shape)
        arrays.append(xp.reshape(vector[start : start + size], array.shape))
        start += size
    return arrays


def penalised_objective(network: Network, loss: Loss, x, y, sample_weight=None):
    """``vector -> (value, gradient)`` of the penalised mean loss over ``(x, y)`` (weighted by
    ``sample_weight`` where given), the network's parameters being set from the vector."""
    loss, targets = weighted(loss, loss.targets(y, network.n_outputs, x.dtype), sample_weight)
    like = network.parameters()
    rows = x.shape[0]

    def value_and_gradient(vector):
        network.set_parameters(unflattened(vector, like))
        outputs = network.forward(x)
        network.backward(loss.gradient(outputs, targets), input_gradient=False)
        value = (loss.total(outputs, targets) + weight_penalty(network.layers)) / rows
        return value, flattened(network.gradients())

    return value_and_gradient


class LBFGSEpoch:
    """An epoch runner (``loop.train_epoch``'s arguments; the learning rate, order and batch size are not
    used) that runs L-BFGS to convergence or its limits and adds its iterations to the optimizer's
    ``steps``; ``result`` keeps the last run's ``lbfgs.Result`` (iterations, evaluations, converged)."""

    def __init__(self, *, max_iter: int, max_fun: int, tol: float):
        self.max_iter, self.max_fun, self.tol = max_iter, max_fun, tol
        self.result: lbfgs.Result | None = None

    @classmethod
    def from_config(cls, config: TrainConfig) -> LBFGSEpoch:
        """The runner of ``config``'s L-BFGS settings (``lbfgs_iterations``, ``max_fun``, ``tol``)."""
        tol = LBFGS_TOL if config.tol is None else config.tol
        return cls(max_iter=config.lbfgs_iterations, max_fun=config.max_fun, tol=tol)

    def __call__(
        self, network: Network, optimizer, loss: Loss, x, y, *, classify: bool, sample_weight=None, **_
    ) -> EpochResult:
        objective = penalised_objective(network, loss, x, y, sample_weight)
        start = flattened(network.parameters())
        self.result = lbfgs.minimize(objective, start, max_iter=self.max_iter, max_fun=self.max_fun, tol=self.tol)
        optimizer.steps += self.result.iterations
        network.set_parameters(unflattened(self.result.x, network.parameters()))
        outputs = network.forward(x)
        correct = count_correct(outputs, y) if classify else None
        # The loss without the penalty, which Model adds to the record, as for minibatch epochs.
        loss, targets = weighted(loss, loss.targets(y, network.n_outputs, x.dtype), sample_weight)
        total = loss.total(outputs, targets)
        return EpochResult(total / x.shape[0], correct, total)
