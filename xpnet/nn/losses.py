"""Loss functions: each turns labels into the targets it compares outputs with, gives the gradient of
the batch's mean loss with respect to the outputs in the fewest operations (the training step), and
sums the loss over rows (an epoch's kept outputs, an evaluation batch).

Every form subtracts the row maximum before ``exp`` (softmax cross-entropy), so no caller can pair a
stable loss with an unstable gradient. Calling a loss, ``loss(outputs, y) -> (mean loss, gradient)``,
gives both at once.
"""

from __future__ import annotations

from array_api_compat import device

from xpnet import validation
from xpnet.arrays.backend import array_namespace
from xpnet.errors import XpnetError
from xpnet.nn import passes
from xpnet.nn.activations import sigmoid


def one_hot(labels, n_classes: int, dtype):
    """``(batch, n_classes)`` matrix with a 1 in each row's label column."""
    xp = array_namespace(labels)
    classes = xp.arange(n_classes, dtype=labels.dtype, device=device(labels))
    return xp.astype(labels[:, None] == classes[None, :], dtype)


def log_softmax(logits):
    """Row-wise log of the softmax, by log-sum-exp: finite for any finite logits."""
    shifted, log_sums = _log_sum_exp(logits)
    return shifted - log_sums


def _log_sum_exp(logits):
    """``(logits - row maximum, log of each row's sum of exp of that)``: the two terms of log-softmax (on
    NumPy, in compiled passes where ``passes.fast`` takes the logits: the same bits)."""
    if passes.fast(logits):
        return passes.log_sum_exp(logits)
    xp = array_namespace(logits)
    shifted = logits - xp.max(logits, axis=1, keepdims=True)
    return shifted, xp.log(xp.sum(xp.exp(shifted), axis=1, keepdims=True))


def predicted_classes(logits):
    """Each row's class: the index of its highest logit, the first of equal ones (on NumPy, in a compiled
    pass where ``passes.fast`` takes the logits)."""
    if passes.fast(logits):
        return passes.row_argmax(logits)
    return array_namespace(logits).argmax(logits, axis=1)


def softmax(logits):
    """Row-wise softmax with the row maximum subtracted first, so ``exp`` cannot overflow."""
    xp = array_namespace(logits)
    return xp.exp(log_softmax(logits))


class Loss:
    """A loss's three forms; ``__call__`` checks the targets' shape and gives the mean and gradient."""

    def targets(self, y, n_outputs: int, dtype):
        """What ``gradient`` and ``total`` compare outputs with, from labels or target rows ``y``."""
        raise NotImplementedError

    def gradient(self, outputs, targets):
        """d (mean loss over the rows) / d outputs."""
        raise NotImplementedError

    def total(self, outputs, targets):
        """The loss summed over the rows, as a device scalar."""
        raise NotImplementedError

    def row_totals(self, outputs, targets):
        """The loss of each row, ``(rows,)`` (what a weight per row multiplies, see ``Weighted``)."""
        raise NotImplementedError

    def totals(self, outputs, *targets) -> list:
        """``total`` of each run of rows of ``outputs`` that each of ``targets`` covers, in order."""
        totals, start = [], 0
        for part in targets:
            totals.append(self.total(outputs[start : start + part.shape[0], ...], part))
            start += part.shape[0]
        return totals

    def __call__(self, outputs, y):
        """``(mean loss, gradient)`` of ``outputs`` against labels or target rows ``y``."""
        targets = self.targets(y, outputs.shape[1], outputs.dtype)
        if targets.shape != outputs.shape:
            raise XpnetError(f"targets of shape {tuple(targets.shape)} do not match outputs {tuple(outputs.shape)}")
        return self.total(outputs, targets) / outputs.shape[0], self.gradient(outputs, targets)


class SoftmaxCrossEntropy(Loss):
    """Cross-entropy of softmax(logits) against integer labels ``(batch,)`` (as one-hot rows) or
    one-hot/probability target rows ``(batch, classes)``."""

    def targets(self, y, n_outputs, dtype):
        return one_hot(y, n_outputs, dtype) if y.ndim == 1 else y

    def gradient(self, outputs, targets):
        """``(softmax(outputs) - targets) / rows``: seven operations, in place after the exponential (on
        NumPy, four: ``passes.softmax_cross_entropy_gradient``, the same bits)."""
        if passes.fast(outputs, targets):
            return passes.softmax_cross_entropy_gradient(outputs, targets)
        xp = array_namespace(outputs)
        probabilities = xp.exp(outputs - xp.max(outputs, axis=1, keepdims=True))
        probabilities /= xp.sum(probabilities, axis=1, keepdims=True)
        probabilities -= targets
        probabilities /= outputs.shape[0]
        return probabilities

    def total(self, outputs, targets):
        """``-sum(targets * log_softmax(outputs))``, the product and sum as one dot product."""
        return self.totals(outputs, targets)[0]

    def totals(self, outputs, *targets):
        """One log-softmax of all the rows, then a dot product with each part's targets."""
        xp = array_namespace(outputs)
        negative_log_probabilities = _negative_log_softmax(outputs)
        totals, start = [], 0
        for part in targets:
            stop = start + part.shape[0]
            totals.append(xp.tensordot(part, negative_log_probabilities[start:stop, ...], axes=2))
            start = stop
        return totals

    def row_totals(self, outputs, targets):
        xp = array_namespace(outputs)
        return xp.sum(targets * _negative_log_softmax(outputs), axis=1)


def _negative_log_softmax(outputs):
    """``-log_softmax(outputs)``, as one subtraction the other way round."""
    shifted, log_sums = _log_sum_exp(outputs)
    return log_sums - shifted


class FloatTargets(Loss):
    """Base of the losses on float target rows ``(batch, outputs)`` (a vector is one column); each
    sums its terms over ``axis`` (``summed``): all of them for ``total``, a row's for ``row_totals``."""

    def targets(self, y, n_outputs, dtype):
        xp = array_namespace(y)
        return xp.astype(y[:, None] if y.ndim == 1 else y, dtype, copy=False)

    def total(self, outputs, targets):
        return self.summed(outputs, targets, axis=None)

    def row_totals(self, outputs, targets):
        return self.summed(outputs, targets, axis=1)

    def summed(self, outputs, targets, *, axis):
        raise NotImplementedError


class MeanSquaredError(FloatTargets):
    """Mean squared error over all elements (PyTorch's ``MSELoss``): a row's loss is the mean over its
    outputs."""

    def gradient(self, outputs, targets):
        return (2.0 / (outputs.shape[0] * outputs.shape[1])) * (outputs - targets)

    def summed(self, outputs, targets, *, axis):
        xp = array_namespace(outputs)
        residual = outputs - targets
        return xp.sum(residual * residual, axis=axis) / outputs.shape[1]


class HalfSquaredError(FloatTargets):
    """Half the mean squared error over all elements (scikit-learn's ``squared_error``): half of
    ``MeanSquaredError``, so its gradient is the plain residual for one output."""

    def gradient(self, outputs, targets):
        return (1.0 / (outputs.shape[0] * outputs.shape[1])) * (outputs - targets)

    def summed(self, outputs, targets, *, axis):
        xp = array_namespace(outputs)
        residual = outputs - targets
        return xp.sum(residual * residual, axis=axis) / (2.0 * outputs.shape[1])


class SigmoidBinaryCrossEntropy(FloatTargets):
    """Binary cross-entropy of sigmoid(logits) against 0/1 target rows, summed over a row's outputs
    (one independent yes/no per output: binary and multilabel classification). Written with
    ``softplus``, so it stays finite for any finite logit."""

    def gradient(self, outputs, targets):
        return (sigmoid(outputs) - targets) / outputs.shape[0]

    def summed(self, outputs, targets, *, axis):
        xp = array_namespace(outputs)
        return xp.sum(softplus(outputs) - targets * outputs, axis=axis)


class HalfPoissonDeviance(FloatTargets):
    """Poisson loss of exp(outputs) against counts: ``exp(z) - y*z`` summed over a row's outputs, the
    mean of which is half the Poisson deviance up to a term in ``y`` alone (scikit-learn's ``poisson``)."""

    def gradient(self, outputs, targets):
        xp = array_namespace(outputs)
        return (xp.exp(outputs) - targets) / outputs.shape[0]

    def summed(self, outputs, targets, *, axis):
        xp = array_namespace(outputs)
        return xp.sum(xp.exp(outputs) - targets * outputs, axis=axis)


class Weighted(Loss):
    """``loss`` with a weight per row, carried as the last column of its targets (``weighted``): over
    the rows given, the weighted mean ``sum(w * row loss) / sum(w)`` (scikit-learn's ``sample_weight``
    in each batch), its total being that mean times the rows."""

    def __init__(self, loss: Loss):
        self.loss = loss

    def gradient(self, outputs, targets):
        xp = array_namespace(outputs)
        weights = targets[:, -1:]
        return self.loss.gradient(outputs, targets[:, :-1]) * (weights * (outputs.shape[0] / xp.sum(weights)))

    def total(self, outputs, targets):
        xp = array_namespace(outputs)
        weights = targets[:, -1]
        return xp.sum(weights * self.loss.row_totals(outputs, targets[:, :-1])) * (outputs.shape[0] / xp.sum(weights))


def weighted(loss: Loss, targets, sample_weight) -> tuple[Loss, object]:
    """``(loss, targets)`` weighing each row by ``sample_weight`` (``Weighted``); as given without weights."""
    if sample_weight is None:
        return loss, targets
    xp = array_namespace(targets)
    return Weighted(loss), xp.concat([targets, xp.astype(sample_weight, targets.dtype)[:, None]], axis=1)


def softplus(logits):
    """``log(1 + exp(z))`` without overflow: ``max(z, 0) + log1p(exp(-|z|))``."""
    xp = array_namespace(logits)
    return xp.maximum(logits, 0.0) + xp.log1p(xp.exp(-xp.abs(logits)))


softmax_cross_entropy = SoftmaxCrossEntropy()
mean_squared_error = MeanSquaredError()
LOSSES = {
    "cross_entropy": softmax_cross_entropy,
    "mse": mean_squared_error,
    "squared_error": HalfSquaredError(),
    "binary_cross_entropy": SigmoidBinaryCrossEntropy(),
    "poisson": HalfPoissonDeviance(),
}


def get(name: str) -> Loss:
    """The loss named ``name``."""
    return LOSSES[validation.choice("loss", name, LOSSES)]
