"""RMSprop (Hinton), as torch.optim.RMSprop without momentum or centering: each step divides the
gradient by the root of a moving average of its square. Registered as rmsprop; the reference alone,
no fast variants."""

from __future__ import annotations

from dataclasses import dataclass

from xpnet import validation
from xpnet.arrays.backend import array_namespace
from xpnet.optim import kernels
from xpnet.optim.optimizer import Optimizer, Step, decayed, register, setting


@dataclass(frozen=True)
class RMSpropSettings:
    """RMSprop's hyperparameters: the average's decay ``alpha``, ``eps`` beside its root, coupled decay."""

    alpha: float = 0.99
    eps: float = 1e-8
    weight_decay: float = 0.0


def update(settings: RMSpropSettings, step: Step, param, grad, square) -> tuple:
    """The reference: the new parameter and the new average of the squared gradient."""
    xp = array_namespace(param)
    grad = decayed(param, grad, settings.weight_decay)
    square = square * settings.alpha + (1.0 - settings.alpha) * (grad * grad)
    return param - step.lr * (grad / (xp.sqrt(square) + settings.eps)), square


class RMSprop(Optimizer):
    """RMSprop: a per-parameter step scaled by the recent size of its gradients."""

    buffers = ("square_average",)
    # grad * grad and its share, the new average; its root plus eps, the quotient, its product by lr and
    # the new parameter (at most three at once, the new average among them).
    rule_temporaries = 4
    variants = kernels.Variants(reference=update)
    alpha = setting("alpha")
    eps = setting("eps")

    def __init__(self, alpha: float = 0.99, eps: float = 1e-8, weight_decay: float = 0.0):
        validation.fraction("alpha", alpha)
        super().__init__(RMSpropSettings(alpha, validation.non_negative("eps", eps), weight_decay))


@register("rmsprop")
def _rmsprop(*, weight_decay=0.0, **_) -> RMSprop:
    return RMSprop(weight_decay=weight_decay)
