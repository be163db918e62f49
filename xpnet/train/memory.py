"""A guard against networks too big for the machine: estimate what training will hold in memory and
refuse, with a clear message, before allocating anything (the device's limit comes from
``xpnet.arrays.memory``).
"""

from __future__ import annotations

import itertools

import numpy as np

from xpnet.arrays import compiled, streams
from xpnet.arrays.backend import Backend
from xpnet.arrays.memory import GIB, memory_limit
from xpnet.errors import XpnetError
from xpnet.nn import passes
from xpnet.optim import Optimizer
from xpnet.train.config import TrainConfig
from xpnet.train.loop import EVALUATION_BATCH_SIZE, gathers_per_batch

# Arrays kept per parameter besides the optimizer buffers: the parameter, its gradient, and the
# copy taken each epoch to roll back a diverged epoch (which also copies the optimizer buffers).
_COPIES_PER_PARAMETER = 3
# Arrays of batch x width per layer in a training step: pre-activation, activation, dropout mask and
# output, and in the backward pass the incoming gradient, the activation's derivative and their product.
_ARRAYS_PER_TRAINING_UNIT = 7
# Code and objects a run loads once it trains, whatever the network's size: Numba's compiler (the fast
# path for large parameters) alone takes about 25 MiB.
RUNTIME_BYTES = 32 * 2**20
_LABEL_BYTES = 8


def training_bytes(
    sizes: list[int],
    itemsize: int,
    n_optimizer_buffers: int,
    batch_size: int,
    evaluation_rows: int = 0,
    training_rows: int = 0,
    epoch_inputs: bool = True,
    update_temporaries: int = 0,
    generator_bytes: int = 0,
    activations_in_place: bool = False,
) -> int:
    """Peak bytes held while training an MLP with layer ``sizes``: parameters, gradients, optimizer
    state and rollback copies, the optimizer step's ``update_temporaries`` (model-sized, see
    ``step_temporaries``), what each epoch holds of its ``training_rows`` samples, plus the larger of
    one training step and one evaluation batch, plus the random generators' states and what the run's
    code takes.

    An epoch builds its targets in its shuffled order once, and gathers its inputs in that order once
    (``epoch_inputs``; on NumPy, batch by batch instead), so that each batch is a slice of them, and
    its steps keep their outputs: per sample, an int64 label, one target and one output per output unit,
    and its inputs when gathered at once.

    A step computes each new weight gradient while the previous one is still held. Evaluation runs
    in batches of up to ``EVALUATION_BATCH_SIZE`` of ``evaluation_rows`` (the test or validation set)
    rows; each layer keeps its input and output until the next pass replaces them, so the layer being
    computed briefly holds its previous output as well. With ``activations_in_place`` (the compiled
    passes of ``xpnet.nn.passes``), a hidden layer's activation is written over its product, one array
    where the layers' own passes make two.
    """
    layer_parameters = _layer_parameters(sizes)
    widths = sizes[1:]
    per_parameter = _COPIES_PER_PARAMETER + 2 * n_optimizer_buffers + update_temporaries
    step = max(layer_parameters) + _ARRAYS_PER_TRAINING_UNIT * batch_size * sum(widths)
    rows = min(max(evaluation_rows, batch_size), EVALUATION_BATCH_SIZE)
    evaluation = rows * ((1 if activations_in_place else 2) * sum(widths) + max(widths))
    epoch = training_rows * (itemsize * (sizes[0] * epoch_inputs + 2 * sizes[-1]) + _LABEL_BYTES)
    held = itemsize * (sum(layer_parameters) * per_parameter + max(step, evaluation))
    return held + epoch + generator_bytes + RUNTIME_BYTES


def activations_in_place(sizes: list[int], activation: str, backend: Backend, rows: int) -> bool:
    """Whether evaluating ``rows`` rows writes each hidden layer's activation over its product (see
    ``xpnet.nn.passes``): where the passes may run, once Numba is loaded, which a network of
    ``compiled.MIN_SIZE`` parameters does at its first step, and a layer's output that large at once.
    A training step is sized for the layers' own passes, which the first step may take."""
    parameters = sum(_layer_parameters(sizes))
    largest = min(rows, EVALUATION_BATCH_SIZE) * max(sizes[1:])
    return passes.may_run(activation, backend.xp) and compiled.wanted(max(parameters, largest))


def _layer_parameters(sizes: list[int]) -> list[int]:
    """The weights and biases of each layer of an MLP with layer ``sizes``."""
    return [n_in * n_out + n_out for n_in, n_out in itertools.pairwise(sizes)]


def step_temporaries(optimizer: Optimizer, backend: Backend) -> int:
    """Model-sized arrays an optimizer step holds at its peak besides the parameters, gradients and
    buffers, where it runs the array-API reference update: on every library but NumPy, whose update
    runs in place (``xpnet/optim/kernels.py``), and for a full-batch optimizer (L-BFGS), which never
    does. Each rule counts its own (``Optimizer.temporaries``)."""
    return 0 if backend.is_numpy and not optimizer.full_batch else optimizer.temporaries


def check_fits(
    sizes: list[int],
    itemsize: int,
    n_optimizer_buffers: int,
    batch_size: int,
    backend: Backend,
    *,
    evaluation_rows: int = 0,
    training_rows: int = 0,
    update_temporaries: int = 0,
    activation: str = "relu",
) -> None:
    """Raise ``XpnetError`` if training this network (with ``activation`` after each hidden layer) on
    ``training_rows`` samples (and evaluating ``evaluation_rows`` rows) would need more memory than the
    device allows."""
    epoch_inputs = not gathers_per_batch(backend.xp)
    needed = training_bytes(
        sizes,
        itemsize,
        n_optimizer_buffers,
        batch_size,
        evaluation_rows,
        training_rows,
        epoch_inputs,
        update_temporaries,
        streams.state_bytes(backend),
        activations_in_place(sizes, activation, backend, max(evaluation_rows, batch_size)),
    )
    limit = memory_limit(backend)
    if limit is not None and needed > limit.available:
        raise XpnetError(
            f"a network with layer sizes {sizes} needs about {needed / GIB:.1f} GiB to train "
            f"(parameters, gradients, optimizer state and its update, an epoch's copy of the data, and one batch "
            "or evaluation batch of activations), "
            f"but {backend} has {limit.available / GIB:.1f} GiB left, limited by {limit.source}: "
            "use fewer or narrower hidden layers, or a smaller batch size"
        )


def check_model_fits(
    config: TrainConfig, n_inputs: int, n_outputs: int, backend: Backend, evaluation_rows: int, training_rows: int
) -> None:
    """``check_fits`` for the network ``config`` describes between ``n_inputs`` and ``n_outputs``: the
    one sizing that ``Model`` (before building) and the command (before loading anything) both use. A
    batch is never larger than the training set, so a larger ``batch_size`` is sized as the whole set,
    as is every batch of a full-batch optimizer (L-BFGS)."""
    optimizer = config.make_optimizer()
    batch_size = training_rows if optimizer.full_batch else config.batch_size
    check_fits(
        [n_inputs, *config.hidden, n_outputs],
        np.dtype(config.dtype).itemsize,
        len(optimizer.buffers),
        min(batch_size, training_rows) if training_rows else batch_size,
        backend,
        evaluation_rows=evaluation_rows,
        training_rows=training_rows,
        update_temporaries=step_temporaries(optimizer, backend),
        activation=config.activation,
    )
