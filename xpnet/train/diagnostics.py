"""What training watches for besides the loss going down: a loss that became NaN or infinite, a first
step that changed nothing, accuracy stuck at chance level, and a cosine schedule run past its end; each
message names the likely causes."""

from __future__ import annotations

import warnings
from collections.abc import Callable

from xpnet.errors import XpnetWarning
from xpnet.train.config import TrainConfig

# Epochs after which accuracy still at chance level triggers a warning.
CHANCE_LEVEL_EPOCHS = 3


def input_scale(xp, x) -> float:
    """The largest ``|x|``, without an ``|x|`` copy of the data (two device reads, once per ``fit``)."""
    return max(float(xp.max(x)), -float(xp.min(x)))


def divergence_message(epoch: int, lr: float, scale: float, config: TrainConfig) -> str:
    return (
        f"training diverged in epoch {epoch}: the loss became NaN or infinite with learning rate {lr:g} "
        f"({config.optimizer}). Try a learning rate 10x smaller (lr={lr / 10:g}); "
        + _scale_hint(scale)
        + "the model keeps the weights from before this epoch."
    )


def stalled_message(backend, lr: float, config: TrainConfig) -> str:
    """Why a model's first step left every parameter as it was although a gradient was not zero."""
    return (
        f"the first optimizer step left every parameter unchanged although the gradient was not zero: the "
        f"{backend.name} arrays did not take the update. A layer or optimizer of your own must return new arrays "
        "rather than write into the ones it is given (some libraries' arrays, JAX's and Dask's among them, cannot "
        f"be written); or the learning rate {lr:g} is too small to move {config.dtype} weights"
    )


def warn_if_at_chance_level(
    record: dict, n_classes: int | None, scale: Callable[[], float], config: TrainConfig
) -> None:
    """Warn once, after ``CHANCE_LEVEL_EPOCHS`` epochs, when a classifier's training accuracy is still
    about chance level; with a single class there is nothing to learn and no chance level to fall to.
    ``scale()`` gives the inputs' largest magnitude, read only when the warning names it."""
    if record.get("train_accuracy") is None or n_classes < 2 or record["epoch"] != CHANCE_LEVEL_EPOCHS:
        return
    chance = 1.0 / n_classes
    # Below 1.5x chance, and never more than 5 points above it: 67% on two classes is learning, slowly.
    if record["train_accuracy"] < min(1.5 * chance, chance + 0.05):
        warnings.warn(_chance_level_message(record, chance, scale(), config), XpnetWarning, stacklevel=5)


def warn_if_schedule_ends(config: TrainConfig, last_epoch: int) -> None:
    """Warn when training goes past the epochs a cosine schedule spans (it trains at rate 0 there)."""
    if config.schedule == "cosine" and last_epoch > config.epochs:
        warnings.warn(
            f"the cosine schedule spans epochs=={config.epochs}, so epochs {config.epochs + 1} to "
            f"{last_epoch} train at learning rate 0; raise epochs in the settings to stretch the schedule",
            XpnetWarning,
            stacklevel=4,
        )


def _scale_hint(scale: float) -> str:
    if scale > 10:
        return (
            f"inputs reach {scale:g}: scale them to about [0, 1] (for 8-bit pixels, divide by 255) "
            "or standardise each feature; "
        )
    return ""


def _chance_level_message(record: dict, chance: float, scale: float, config: TrainConfig) -> str:
    return (
        f"training accuracy is {100 * record['train_accuracy']:.1f}% after {record['epoch']} epochs, "
        f"{'below' if record['train_accuracy'] < 0.8 * chance else 'about'} chance level ({100 * chance:.1f}%): "
        "the network is not learning. Likely causes: "
        + _scale_hint(scale)
        + f"the learning rate {config.lr:g} may be too high or too low for {config.optimizer} "
        "(try 1e-3 for adam, 0.1 for sgd); labels may not match their inputs (shuffled separately, "
        "or off by one)."
    )
