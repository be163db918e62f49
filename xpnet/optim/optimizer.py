"""The optimizer base class: the rule's settings, its state and the step loop that updates each
parameter by the variant ``kernels.choose`` picks.

Optimizer state (velocities, moment estimates, the step count) is explicit: it lives in
``optimizer.state`` and ``optimizer.steps``, survives across steps and across ``fit`` calls, and is
saved with the model (``state_dict`` and ``load_state_dict``). The update rules follow
``torch.optim`` exactly, so results can be checked against it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Protocol

from xpnet import validation
from xpnet.arrays.backend import array_namespace
from xpnet.arrays.flat import Views, packed
from xpnet.optim import kernels


class Settings(Protocol):
    """A rule's hyperparameters, as a frozen dataclass; every rule has a weight decay."""

    weight_decay: float


@dataclass(frozen=True)
class Step:
    """What changes from one step to the next: the learning rate and the step's number (1 for the first)."""

    lr: float
    number: int


def setting(name: str) -> property:
    """A read-only attribute that reads the field ``name`` of the optimizer's settings."""
    return property(lambda optimizer: getattr(optimizer.settings, name), doc=f"``settings.{name}``")


class Optimizer:
    """Base class: ``settings`` holds the hyperparameters, ``state`` maps a buffer name to one array
    per parameter (views of one flat buffer once updated flat), ``steps`` counts the updates and
    ``variants`` are the ways to apply the rule."""

    buffers: tuple[str, ...] = ()
    variants: kernels.Variants
    weight_decay = setting("weight_decay")

    def __init__(self, settings: Settings):
        validation.non_negative("weight_decay", settings.weight_decay)
        self.settings = settings
        self.steps = 0
        self.state: dict[str, list] = {}

    def step(self, params: list, grads: list, lr: float) -> None:
        """Apply one update to every parameter in place. Parameters and gradients given as views of one
        flat buffer each (``xpnet.arrays.flat.Views``, as a network trains them) are updated as one
        array, with buffers kept flat alike: a handful of operations for the whole model."""
        whole = isinstance(params, Views) and isinstance(grads, Views)
        if not self.state:
            self.state = {name: _zeros_like(params) for name in self.buffers}
        elif whole:  # buffers loaded one per parameter take the flat layout once
            self.state = {name: packed(arrays) for name, arrays in self.state.items()}
        self.steps += 1
        step = Step(lr, self.steps)
        if whole:
            params, grads = [params.flat.buffer], [grads.flat.buffer]
            state = {name: [arrays.flat.buffer] for name, arrays in self.state.items()}
        else:
            state = self.state
        for index, (param, grad) in enumerate(zip(params, grads)):
            buffers = [state[name][index] for name in self.buffers]
            update = kernels.choose(self.variants, param, grad, *buffers)
            update(self.settings, step, param, grad, *buffers)

    def state_dict(self) -> dict[str, Any]:
        """The step count and the live buffers, one array per parameter in parameter order (no buffers
        before the first step): what a checkpoint keeps."""
        return {"steps": self.steps, "buffers": dict(self.state)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Adopt the step count and buffers of ``state_dict()`` (lists of arrays already on the device and
        shaped, or ``Views``, which a flat update uses as they are)."""
        self.steps = state["steps"]
        self.state = dict(state["buffers"])

    def hyperparameters(self) -> dict:
        return asdict(self.settings)

    def config(self) -> dict:
        return {"name": type(self).__name__.lower(), **self.hyperparameters()}


def decayed(param, grad, weight_decay: float):
    """The gradient with L2 weight decay folded in (coupled decay, as in torch.optim.SGD/Adam); a new
    array only with decay."""
    return grad + weight_decay * param if weight_decay else grad


def _zeros_like(arrays: list) -> list:
    """Zeros shaped as ``arrays``: views of one flat buffer of zeros when they are ``Views``."""
    if isinstance(arrays, Views):
        return arrays.flat.zeros().views()
    return [array_namespace(array).zeros_like(array) for array in arrays]
