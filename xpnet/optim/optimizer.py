"""The optimizer base class: a rule's settings, its state, and the step that applies the rule; and the
registry that builds an optimizer by name.

An update rule is a pure function of the parameter, its gradient and the rule's buffers that returns
their new values, ``param, *buffers = rule(settings, step, param, grad, *buffers)``, so it runs on
every array library, mutable or not (JAX, Dask). ``Optimizer.step`` returns the new parameters for
their owner (the network) to assign, and replaces its own buffers by assignment. Where a library is
proven to write through, ``kernels.choose`` may pick an in-place variant of the rule, which returns
the arrays it was given, updated; the owners' assignments then change nothing.

Optimizer state (velocities, moment estimates, the step count) is explicit: it lives in
``optimizer.state`` and ``optimizer.steps``, survives across steps and across ``fit`` calls, and is
saved with the model (``state_arrays`` and ``load_state_arrays``). The rules follow ``torch.optim``
exactly, so results can be checked against it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np

from xpnet import validation
from xpnet.arrays.backend import array_namespace
from xpnet.arrays.flat import Views, packed, rebuilt
from xpnet.errors import StateError
from xpnet.optim import kernels

# A model's state names the optimizer's step count and buffers so (see ``state_arrays``).
STEPS_KEY = "optimizer_steps"
BUFFER_PREFIX = "optimizer/"


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
    ``variants`` are the ways to apply the rule (its pure reference, and any in-place fast paths)."""

    buffers: tuple[str, ...] = ()
    variants: kernels.Variants
    weight_decay = setting("weight_decay")
    # Model-sized arrays the reference update holds at its peak besides its inputs: the new values
    # coexist with the old until assigned, and each element-wise operation makes a temporary. Coupled
    # weight decay adds the decayed gradient (``temporaries`` counts it).
    rule_temporaries = 0
    # Whether it trains on the whole training set at once, through an epoch runner of its own
    # (``xpnet.train.full_batch``), rather than by ``step`` on each minibatch.
    full_batch = False

    def __init__(self, settings: Settings):
        validation.non_negative("weight_decay", settings.weight_decay)
        self.settings = settings
        self.steps = 0
        self.state: dict[str, list] = {}

    def step(self, params: list, grads: list, lr: float) -> list:
        """One update of every parameter: returns the new parameters, in order, for their owner to assign
        (the arrays given, where a fast path updated them in place). Parameters and gradients given as views
        of one flat buffer each (``xpnet.arrays.flat.Views``, as a network trains them) are updated as one
        array, with the buffers kept flat alike: a handful of operations for the whole model."""
        whole = isinstance(params, Views) and isinstance(grads, Views)
        if not self.state:
            self.state = {name: _zeros_like(params) for name in self.buffers}
        elif whole:  # buffers loaded one per parameter take the flat layout once
            self.state = {name: packed(arrays) for name, arrays in self.state.items()}
        self.steps += 1
        step = Step(lr, self.steps)
        if whole:
            buffers = [self.state[name].flat.buffer for name in self.buffers]
            param, *buffers = self._apply(step, params.flat.buffer, grads.flat.buffer, buffers)
            self.state = {name: rebuilt(self.state[name], buffer) for name, buffer in zip(self.buffers, buffers)}
            return rebuilt(params, param)
        new_params, new_state = [], {name: [] for name in self.buffers}
        for index, (param, grad) in enumerate(zip(params, grads)):
            param, *buffers = self._apply(step, param, grad, [self.state[name][index] for name in self.buffers])
            new_params.append(param)
            for name, buffer in zip(self.buffers, buffers):
                new_state[name].append(buffer)
        self.state = new_state
        return new_params

    @property
    def temporaries(self) -> int:
        """Model-sized temporaries of the reference update at its peak, decayed gradient included (the
        memory check counts them where the reference runs)."""
        return self.rule_temporaries + (self.weight_decay > 0 and not getattr(self.settings, "decoupled", False))

    def _apply(self, step: Step, param, grad, buffers: list) -> tuple:
        update = kernels.choose(self.variants, param, grad, *buffers)
        return update(self.settings, step, param, grad, *buffers)

    def state_dict(self) -> dict[str, Any]:
        """The step count and the live buffers, one array per parameter in parameter order (no buffers
        before the first step)."""
        return {"steps": self.steps, "buffers": dict(self.state)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Adopt the step count and buffers of ``state_dict()`` (lists of arrays already on the device and
        shaped, or ``Views``, which a flat update uses as they are)."""
        self.steps = state["steps"]
        self.state = dict(state["buffers"])

    def state_arrays(self) -> dict[str, Any]:
        """The step count and buffers as a model's state names them: ``optimizer_steps``, and
        ``optimizer/<buffer>/<parameter index>`` for each buffer array."""
        arrays = {
            f"{BUFFER_PREFIX}{name}/{index}": array
            for name, buffer in self.state.items()
            for index, array in enumerate(buffer)
        }
        return {STEPS_KEY: self.steps, **arrays}

    def load_state_arrays(self, state: dict, parameters: list, place: Callable) -> set[str]:
        """Adopt what ``state_arrays`` wrote into ``state`` (host arrays from a file), each buffer checked
        against its parameter in ``parameters`` and put on the device by ``place``; all buffers or none.
        Returns the names used; ``StateError`` where the description is not that of this optimizer."""
        steps = state.get(STEPS_KEY)
        if type(steps) is not int or steps < 0:
            raise StateError(f"optimizer step count {steps!r} is invalid; the file is corrupt")
        present = {name.split("/")[1] for name in state if name.startswith(BUFFER_PREFIX) and name.count("/") == 2}
        if present and present != set(self.buffers):
            raise StateError(
                f"optimizer state has buffers {sorted(present)} but the optimizer uses {sorted(self.buffers)}"
            )
        buffers = {name: [] for name in self.buffers} if present else {}
        for name, arrays in buffers.items():
            for index, parameter in enumerate(parameters):
                key = f"{BUFFER_PREFIX}{name}/{index}"
                array = state.get(key)
                if not isinstance(array, np.ndarray):
                    raise StateError(f"model state lacks the array {key!r}; the file is corrupt")
                if array.shape != parameter.shape or array.dtype != parameter.dtype:
                    raise StateError(
                        f"optimizer {name} {index} is {array.dtype} {array.shape} for a parameter of "
                        f"{parameter.dtype} {parameter.shape}"
                    )
                arrays.append(place(array))
        self.load_state_dict({"steps": steps, "buffers": buffers})
        return {f"{BUFFER_PREFIX}{name}/{index}" for name in buffers for index in range(len(parameters))}

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


# Optimizers by name: each rule's module registers the names it answers to (``register``); the
# per-step rules in OPTIMIZERS, those that train on the whole training set at once in FULL_BATCH.
OPTIMIZERS: dict[str, Callable[..., Optimizer]] = {}
FULL_BATCH: dict[str, Callable[..., Optimizer]] = {}


def register(name: str, *, full_batch: bool = False) -> Callable:
    """Make the decorated function build the optimizer called ``name``. It is called with every option
    ``make`` knows (``momentum``, ``weight_decay``, ``beta1``, ``beta2``, ``eps``) as keywords, and takes
    those it uses (the rest as ``**_``)."""

    def decorate(build: Callable[..., Optimizer]) -> Callable[..., Optimizer]:
        (FULL_BATCH if full_batch else OPTIMIZERS)[name] = build
        return build

    return decorate


def names() -> list[str]:
    """Every registered optimizer's name: the per-step rules, then the full-batch ones."""
    return [*OPTIMIZERS, *FULL_BATCH]


def make(
    name: str,
    *,
    momentum: float | None = None,
    weight_decay: float = 0.0,
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-8,
) -> Optimizer:
    """Build an optimizer by its registered name. ``momentum`` (None: the rule's default) applies to the
    SGD family, ``beta1``, ``beta2`` and ``eps`` to the rules with moving averages (Adam's family)."""
    validation.choice("optimizer", name, names())
    build = OPTIMIZERS.get(name) or FULL_BATCH[name]
    return build(momentum=momentum, weight_decay=weight_decay, beta1=beta1, beta2=beta2, eps=eps)
