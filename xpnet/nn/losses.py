"""Loss functions, each returning the mean loss over the batch and its gradient w.r.t. the outputs.

Value and gradient come from one function so that the numerically safe form (log-sum-exp for the
softmax) is used for both and no caller can pair a stable loss with an unstable gradient.
"""

from __future__ import annotations

from array_api_compat import device

from xpnet import validation
from xpnet.arrays.backend import array_namespace
from xpnet.errors import XpnetError


def one_hot(labels, n_classes: int, dtype):
    """``(batch, n_classes)`` matrix with a 1 in each row's label column."""
    xp = array_namespace(labels)
    classes = xp.arange(n_classes, dtype=labels.dtype, device=device(labels))
    return xp.astype(labels[:, None] == classes[None, :], dtype)


def log_softmax(logits):
    """Row-wise log of the softmax, by log-sum-exp: finite for any finite logits."""
    xp = array_namespace(logits)
    shifted = logits - xp.max(logits, axis=1, keepdims=True)
    return shifted - xp.log(xp.sum(xp.exp(shifted), axis=1, keepdims=True))


def softmax(logits):
    """Row-wise softmax with the row maximum subtracted first, so ``exp`` cannot overflow."""
    xp = array_namespace(logits)
    return xp.exp(log_softmax(logits))


def softmax_cross_entropy(logits, labels):
    """Mean cross-entropy of softmax(logits) against integer labels ``(batch,)`` or one-hot/probability
    targets ``(batch, classes)``; returns ``(loss, d loss / d logits)``."""
    xp = array_namespace(logits)
    targets = labels if labels.ndim == 2 else one_hot(labels, logits.shape[1], logits.dtype)
    if targets.shape != logits.shape:
        raise XpnetError(f"targets of shape {tuple(targets.shape)} do not match outputs {tuple(logits.shape)}")
    log_probs = log_softmax(logits)
    batch = logits.shape[0]
    loss = -xp.sum(targets * log_probs) / batch
    grad = (xp.exp(log_probs) - targets) / batch
    return loss, grad


def mean_squared_error(outputs, targets):
    """Mean squared error over all elements (PyTorch's ``MSELoss``); returns ``(loss, gradient)``."""
    xp = array_namespace(outputs)
    if targets.ndim == 1:
        targets = targets[:, None]
    targets = xp.astype(targets, outputs.dtype)
    if targets.shape != outputs.shape:
        raise XpnetError(f"targets of shape {tuple(targets.shape)} do not match outputs {tuple(outputs.shape)}")
    residual = outputs - targets
    size = outputs.shape[0] * outputs.shape[1]
    return xp.sum(residual * residual) / size, (2.0 / size) * residual


LOSSES = {"cross_entropy": softmax_cross_entropy, "mse": mean_squared_error}


def get(name: str):
    """The loss function named ``name``: ``(outputs, targets) -> (loss, gradient)``."""
    return LOSSES[validation.choice("loss", name, LOSSES)]
