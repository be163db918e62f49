"""Optimizers that update parameters in place from their gradients.

Optimizer state (velocities, moment estimates, the step count) is explicit: it lives in
``optimizer.state``, survives across steps and across ``fit`` calls, and is saved with the model.
The update rules follow ``torch.optim`` exactly, so results can be checked against it.
"""

from __future__ import annotations

import math

from xpnet.arrays.backend import array_namespace
from xpnet.errors import XpnetError
from xpnet.optim import fastpath


class Optimizer:
    """Base class: ``state`` maps a buffer name to one array per parameter, plus ``steps``."""

    buffers: tuple[str, ...] = ()

    def __init__(self, weight_decay: float = 0.0):
        if weight_decay < 0:
            raise XpnetError(f"weight decay must be >= 0, got {weight_decay}")
        self.weight_decay = weight_decay
        self.steps = 0
        self.state: dict[str, list] = {}

    def step(self, params: list, grads: list, lr: float) -> None:
        """Apply one update to every parameter in place."""
        if not self.state:
            self.state = {name: [_zeros_like(p) for p in params] for name in self.buffers}
        self.steps += 1
        for index, (param, grad) in enumerate(zip(params, grads)):
            buffers = [self.state[name][index] for name in self.buffers]
            if fastpath.applies(param, grad, *buffers):
                self._fast_update(index, param, grad, lr)
            else:
                self._update(index, param, grad, lr)

    def state_dict(self) -> dict:
        """The step count and each buffer's arrays, one per parameter (the live arrays, not copies)."""
        return {"steps": self.steps, "buffers": {name: list(arrays) for name, arrays in self.state.items()}}

    def load_state_dict(self, state: dict) -> None:
        """Adopt ``state_dict()``'s step count and buffers (already on the device, shapes checked)."""
        self.steps = state["steps"]
        self.state = {name: list(arrays) for name, arrays in state["buffers"].items()}

    def _update(self, index: int, param, grad, lr: float) -> None:
        raise NotImplementedError

    def _fast_update(self, index: int, param, grad, lr: float) -> None:
        """The same update in place on NumPy arrays (see ``fastpath``); the reference where none exists."""
        self._update(index, param, grad, lr)

    def _decayed(self, param, grad):
        """The gradient with L2 weight decay folded in (coupled decay, as in torch.optim.SGD/Adam)."""
        return grad + self.weight_decay * param if self.weight_decay else grad

    def hyperparameters(self) -> dict:
        return {"weight_decay": self.weight_decay}

    def config(self) -> dict:
        return {"name": type(self).__name__.lower(), **self.hyperparameters()}


class SGD(Optimizer):
    """Stochastic gradient descent, with optional (Nesterov) momentum."""

    def __init__(self, momentum: float = 0.0, nesterov: bool = False, weight_decay: float = 0.0):
        super().__init__(weight_decay)
        if not 0.0 <= momentum < 1.0:
            raise XpnetError(f"momentum must be in [0, 1), got {momentum}")
        if nesterov and momentum == 0.0:
            raise XpnetError("Nesterov momentum needs momentum > 0, for example momentum=0.9")
        self.momentum = momentum
        self.nesterov = nesterov
        self.buffers = ("velocity",) if momentum else ()

    def _update(self, index, param, grad, lr):
        grad = self._decayed(param, grad)
        if self.momentum:
            velocity = self.state["velocity"][index]
            velocity *= self.momentum
            velocity += grad
            grad = grad + self.momentum * velocity if self.nesterov else velocity
        param -= lr * grad

    def _fast_update(self, index, param, grad, lr):
        velocity = self.state["velocity"][index] if self.momentum else None
        options = {"momentum": self.momentum, "nesterov": self.nesterov, "weight_decay": self.weight_decay}
        fastpath.sgd_update(param, grad, velocity, lr=lr, **options)

    def hyperparameters(self):
        return {"momentum": self.momentum, "nesterov": self.nesterov, **super().hyperparameters()}


class Adam(Optimizer):
    """Adam (Kingma & Ba) with bias correction; ``decoupled=True`` gives AdamW."""

    buffers = ("first_moment", "second_moment")

    def __init__(
        self,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        decoupled: bool = False,
    ):
        super().__init__(weight_decay)
        for name, beta in (("beta1", beta1), ("beta2", beta2)):
            if not 0.0 <= beta < 1.0:
                raise XpnetError(f"{name} must be in [0, 1), got {beta}")
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        self.decoupled = decoupled

    def _update(self, index, param, grad, lr):
        xp = array_namespace(param)
        if self.decoupled:
            param *= 1.0 - lr * self.weight_decay
        else:
            grad = self._decayed(param, grad)
        first = self.state["first_moment"][index]
        second = self.state["second_moment"][index]
        first *= self.beta1
        first += (1.0 - self.beta1) * grad
        second *= self.beta2
        second += (1.0 - self.beta2) * (grad * grad)
        correction1 = 1.0 - self.beta1**self.steps
        correction2 = 1.0 - self.beta2**self.steps
        denominator = xp.sqrt(second) / math.sqrt(correction2) + self.eps
        param -= (lr / correction1) * (first / denominator)

    def _fast_update(self, index, param, grad, lr):
        fastpath.adam_update(
            param,
            grad,
            self.state["first_moment"][index],
            self.state["second_moment"][index],
            lr=lr,
            beta1=self.beta1,
            beta2=self.beta2,
            eps=self.eps,
            weight_decay=self.weight_decay,
            decoupled=self.decoupled,
            correction1=1.0 - self.beta1**self.steps,
            correction2=1.0 - self.beta2**self.steps,
        )

    def hyperparameters(self):
        return {"beta1": self.beta1, "beta2": self.beta2, "eps": self.eps, **super().hyperparameters()}

    def config(self):
        return {"name": "adamw" if self.decoupled else "adam", **self.hyperparameters()}


def _zeros_like(array):
    return array_namespace(array).zeros_like(array)


OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam", "adamw")


def make(name: str, *, momentum: float | None = None, weight_decay: float = 0.0, **adam_options) -> Optimizer:
    """Build an optimizer by name. ``momentum`` defaults to 0 for "sgd" and 0.9 for "momentum" and
    "nesterov"; the Adam options (beta1, beta2, eps) apply to "adam" and "adamw"."""
    if name == "sgd":
        return SGD(momentum=momentum or 0.0, weight_decay=weight_decay)
    if name in ("momentum", "nesterov"):
        momentum = 0.9 if momentum is None else momentum
        return SGD(momentum=momentum, nesterov=name == "nesterov", weight_decay=weight_decay)
    if name in ("adam", "adamw"):
        return Adam(weight_decay=weight_decay, decoupled=name == "adamw", **adam_options)
    raise XpnetError(f"unknown optimizer {name!r}: choose one of {', '.join(OPTIMIZERS)}")
