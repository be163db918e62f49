"""Stochastic gradient descent with optional (Nesterov) momentum, as torch.optim.SGD: the settings,
the reference update and its NumPy and Numba variants; registered as sgd, momentum and nesterov."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xpnet import validation
from xpnet.arrays import compiled
from xpnet.errors import SettingError
from xpnet.optim import kernels
from xpnet.optim.optimizer import Optimizer, Step, decayed, register, setting


@dataclass(frozen=True)
class SGDSettings:
    """SGD's hyperparameters; with momentum 0 there is no velocity."""

    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0


def update(settings: SGDSettings, step: Step, param, grad, *velocity) -> tuple:
    """The reference: the decayed gradient, through the velocity (looked ahead with Nesterov) when
    there is momentum, times the learning rate comes off the parameter. Returns the new parameter and,
    with momentum, the new velocity."""
    grad = decayed(param, grad, settings.weight_decay)
    if not settings.momentum:
        return (param - step.lr * grad,)
    (velocity,) = velocity
    velocity = velocity * settings.momentum + grad
    grad = grad + settings.momentum * velocity if settings.nesterov else velocity
    return param - step.lr * grad, velocity


def update_in_chunks(settings: SGDSettings, step: Step, param, grad, velocity=None) -> tuple:
    """``update`` in place on NumPy arrays, chunk by chunk (see ``kernels.chunks``)."""
    operands = (param, grad) if velocity is None else (param, grad, velocity)
    for param_chunk, grad_chunk, *velocity_chunk, scratch in kernels.chunks(*operands):
        gradient = decayed(param_chunk, grad_chunk, settings.weight_decay)
        if velocity is not None:
            (velocity_chunk,) = velocity_chunk
            velocity_chunk *= settings.momentum
            velocity_chunk += gradient
            if settings.nesterov:
                np.multiply(velocity_chunk, settings.momentum, out=scratch)
                scratch += gradient
                gradient = scratch
            else:
                gradient = velocity_chunk
        np.multiply(gradient, step.lr, out=scratch)
        param_chunk -= scratch
    return operands[:1] + operands[2:]


@compiled.kernel
def _kernel(param, grad, velocity, weight_decay, momentum, nesterov, lr):
    for i in range(param.size):
        p = param[i]
        g = grad[i] + weight_decay * p if weight_decay != 0 else grad[i]
        if momentum != 0:
            v = velocity[i] * momentum + g
            velocity[i] = v
            g = v * momentum + g if nesterov else v
        param[i] = p - g * lr


def update_fused(settings: SGDSettings, step: Step, param, grad, velocity=None) -> tuple:
    """``update`` in one compiled pass over NumPy arrays, in place."""
    scalar = param.dtype.type
    _kernel(
        param.reshape(-1),
        grad.reshape(-1),
        (grad if velocity is None else velocity).reshape(-1),  # not read without momentum
        scalar(settings.weight_decay),
        scalar(settings.momentum if velocity is not None else 0.0),
        settings.nesterov,
        scalar(step.lr),
    )
    return (param,) if velocity is None else (param, velocity)


class SGD(Optimizer):
    """Stochastic gradient descent, with optional (Nesterov) momentum."""

    variants = kernels.Variants(reference=update, chunked=update_in_chunks, fused=update_fused)
    momentum = setting("momentum")
    nesterov = setting("nesterov")

    def __init__(self, momentum: float = 0.0, nesterov: bool = False, weight_decay: float = 0.0):
        validation.fraction("momentum", momentum)
        if nesterov and momentum == 0.0:
            raise SettingError("Nesterov momentum needs momentum > 0, for example momentum=0.9")
        super().__init__(SGDSettings(momentum, nesterov, weight_decay))
        self.buffers = ("velocity",) if momentum else ()
        # lr * grad and the new parameter; with momentum the new velocity too, and with Nesterov's look
        # ahead grad + momentum * velocity.
        self.rule_temporaries = 2 + bool(momentum) + nesterov


@register("sgd")
def _sgd(*, momentum=None, weight_decay=0.0, **_) -> SGD:
    return SGD(momentum=momentum or 0.0, weight_decay=weight_decay)


@register("momentum")
def _momentum(*, momentum=None, weight_decay=0.0, **_) -> SGD:
    return SGD(momentum=0.9 if momentum is None else momentum, weight_decay=weight_decay)


@register("nesterov")
def _nesterov(*, momentum=None, weight_decay=0.0, **_) -> SGD:
    return SGD(momentum=0.9 if momentum is None else momentum, nesterov=True, weight_decay=weight_decay)
