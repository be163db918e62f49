"""Adam (Kingma & Ba) with bias correction, and AdamW, as torch.optim.Adam and AdamW: the settings,
the reference update and its NumPy and Numba variants; registered as adam and adamw."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from xpnet import validation
from xpnet.arrays import compiled
from xpnet.arrays.backend import array_namespace
from xpnet.optim import kernels
from xpnet.optim.optimizer import Optimizer, Step, decayed, register, setting


@dataclass(frozen=True)
class AdamSettings:
    """Adam's hyperparameters; ``decoupled`` applies the weight decay to the parameter (AdamW)."""

    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.0
    decoupled: bool = False


def _bias_corrections(settings: AdamSettings, step: Step) -> tuple[float, float]:
    """This step's size, ``lr / (1 - beta1**t)``, and ``sqrt(1 - beta2**t)``, which divides the root
    of the second moment."""
    return step.lr / (1.0 - settings.beta1**step.number), math.sqrt(1.0 - settings.beta2**step.number)


def update(settings: AdamSettings, step: Step, param, grad, first, second) -> tuple:
    """The reference: moving averages of the gradient and its square, bias-corrected, give the step.
    AdamW shrinks the parameter first and keeps the gradient; Adam folds the decay into the gradient.
    Returns the new parameter and moments."""
    xp = array_namespace(param)
    if settings.decoupled:
        param = param * (1.0 - step.lr * settings.weight_decay)
    else:
        grad = decayed(param, grad, settings.weight_decay)
    first = first * settings.beta1 + (1.0 - settings.beta1) * grad
    second = second * settings.beta2 + (1.0 - settings.beta2) * (grad * grad)
    step_size, root_correction2 = _bias_corrections(settings, step)
    denominator = xp.sqrt(second) / root_correction2 + settings.eps
    return param - step_size * (first / denominator), first, second


def update_in_chunks(settings: AdamSettings, step: Step, param, grad, first, second) -> tuple:
    """``update`` in place on NumPy arrays, chunk by chunk (see ``kernels.chunks``)."""
    step_size, root_correction2 = _bias_corrections(settings, step)
    for param_chunk, grad_chunk, first_chunk, second_chunk, scratch in kernels.chunks(param, grad, first, second):
        if settings.decoupled:
            param_chunk *= 1.0 - step.lr * settings.weight_decay
            gradient = grad_chunk
        else:
            gradient = decayed(param_chunk, grad_chunk, settings.weight_decay)
        first_chunk *= settings.beta1
        np.multiply(gradient, 1.0 - settings.beta1, out=scratch)
        first_chunk += scratch
        second_chunk *= settings.beta2
        np.multiply(gradient, gradient, out=scratch)
        scratch *= 1.0 - settings.beta2
        second_chunk += scratch
        np.sqrt(second_chunk, out=scratch)
        scratch /= root_correction2
        scratch += settings.eps
        np.divide(first_chunk, scratch, out=scratch)
        scratch *= step_size
        param_chunk -= scratch
    return param, first, second


@compiled.kernel
def _kernel(param, grad, first, second, decay, weight_decay, beta1, beta1_rest, beta2, beta2_rest, root2, eps, size):
    for i in range(param.size):
        p = param[i] * decay
        g = grad[i] + weight_decay * p if weight_decay != 0 else grad[i]
        m = first[i] * beta1 + g * beta1_rest
        v = second[i] * beta2 + (g * g) * beta2_rest
        first[i] = m
        second[i] = v
        param[i] = p - (m / (math.sqrt(v) / root2 + eps)) * size


def update_fused(settings: AdamSettings, step: Step, param, grad, first, second) -> tuple:
    """``update`` in one compiled pass over NumPy arrays, in place (decoupled decay multiplies by 1
    otherwise)."""
    scalar = param.dtype.type
    step_size, root_correction2 = _bias_corrections(settings, step)
    decay = 1.0 - step.lr * settings.weight_decay if settings.decoupled else 1.0
    _kernel(
        param.reshape(-1),
        grad.reshape(-1),
        first.reshape(-1),
        second.reshape(-1),
        scalar(decay),
        scalar(0.0 if settings.decoupled else settings.weight_decay),
        scalar(settings.beta1),
        scalar(1.0 - settings.beta1),
        scalar(settings.beta2),
        scalar(1.0 - settings.beta2),
        scalar(root_correction2),
        scalar(settings.eps),
        scalar(step_size),
    )
    return param, first, second


class Adam(Optimizer):
    """Adam (Kingma & Ba) with bias correction; ``decoupled=True`` gives AdamW."""

    buffers = ("first_moment", "second_moment")
    # The new moments; the denominator, first / denominator, its product by the step size, the new
    # parameter; and AdamW's decayed parameter.
    rule_temporaries = property(lambda adam: 6 if adam.decoupled else 5)
    variants = kernels.Variants(reference=update, chunked=update_in_chunks, fused=update_fused)
    beta1 = setting("beta1")
    beta2 = setting("beta2")
    eps = setting("eps")
    decoupled = setting("decoupled")

    def __init__(
        self,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        decoupled: bool = False,
    ):
        validation.fraction("beta1", beta1)
        validation.fraction("beta2", beta2)
        super().__init__(AdamSettings(beta1, beta2, eps, weight_decay, decoupled))

    def hyperparameters(self):
        """All but ``decoupled``, which the name in ``config`` tells (adam or adamw)."""
        return {name: value for name, value in super().hyperparameters().items() if name != "decoupled"}

    def config(self):
        return {"name": "adamw" if self.decoupled else "adam", **self.hyperparameters()}


@register("adam")
def _adam(*, weight_decay=0.0, beta1=0.9, beta2=0.999, eps=1e-8, **_) -> Adam:
    return Adam(beta1, beta2, eps, weight_decay)


@register("adamw")
def _adamw(*, weight_decay=0.0, beta1=0.9, beta2=0.999, eps=1e-8, **_) -> Adam:
    return Adam(beta1, beta2, eps, weight_decay, decoupled=True)
