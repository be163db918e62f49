"""The training options: one table serves argparse, the ``--config`` TOML file, ``config.json`` and the
``[base]`` and ``[parameters]`` of sweep files, so an option is named, typed and checked in one place.

A value not given takes its default: the resolved value is the command line's, else the file's, else
the default below (``resolve_values``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from xpnet import optim, validation
from xpnet.distributed import parallel
from xpnet.errors import XpnetError
from xpnet.nn import activations
from xpnet.nn.initializers import INITIALIZERS
from xpnet.optim import schedules
from xpnet.train.checkpoint import CHECKPOINT_INTERVAL
from xpnet.train.config import DTYPES, EARLY_STOPPING_VAL_SPLIT, LBFGS_TOL, TrainConfig

# How each option type is named in errors about config files, with a valid TOML example.
TYPE_TEXT = {
    str: ("a string", '"value"'),
    int: ("an integer", "10"),
    float: ("a number", "0.001"),
    bool: ("true or false", "true"),
    tuple: ("a list of widths", "[256, 128]"),
}


@dataclass(frozen=True)
class Option:
    """One option: ``name`` in snake_case (``--kebab-case`` on the command line)."""

    name: str
    type: type
    group: str
    help: str
    metavar: str | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


def _choices(names) -> str:
    return ", ".join(names)


_DEFAULTS = TrainConfig()
RUN_DEFAULTS = {
    "device": "auto",
    "dataset": "digits",
    "data_dir": None,
    "out": None,
    "checkpoint_every": None,
    "quiet": False,
    "json": False,
    "distributed": False,
    "reduction": parallel.REDUCTIONS[0],
    "micro_batches": parallel.DEFAULT_MICRO_BATCHES,
}

OPTIONS = (
    Option(
        "device",
        str,
        "data and device",
        "cpu, cuda, cuda:N, or auto = CUDA when CuPy sees a GPU (default: auto)",
        "DEVICE",
    ),
    Option(
        "dataset",
        str,
        "data and device",
        "digits (embedded, default), mnist, fashion-mnist, or a path: a folder of IDX files, "
        "a Kaggle-layout CSV, or an .npz with x_train, y_train, x_test, y_test",
        "NAME|PATH",
    ),
    Option(
        "data_dir",
        str,
        "data and device",
        "folder that already holds the dataset's files: nothing is downloaded",
        "DIR",
    ),
    Option("hidden", tuple, "network", f"hidden layer widths (default: {' '.join(map(str, _DEFAULTS.hidden))})", "W"),
    Option(
        "activation", str, "network", f"{_choices(activations.ACTIVATIONS)} (default: {_DEFAULTS.activation})", "NAME"
    ),
    Option(
        "init", str, "network", f"auto, {_choices(INITIALIZERS)} (default: auto: He for ReLU-like, else Glorot)", "NAME"
    ),
    Option(
        "dropout", float, "network", f"dropout rate after each hidden layer (default: {_DEFAULTS.dropout:g})", "RATE"
    ),
    Option(
        "optimizer",
        str,
        "optimizer",
        f"{_choices(optim.names())} (default: {_DEFAULTS.optimizer}); lbfgs trains on the whole training set, "
        "an epoch being one L-BFGS run (see --lbfgs-iterations)",
        "NAME",
    ),
    Option("lr", float, "optimizer", f"learning rate (default: {_DEFAULTS.lr:g})", "LR"),
    Option("momentum", float, "optimizer", "SGD momentum (default: 0.9 for momentum/nesterov, 0 for sgd)", "M"),
    Option(
        "adam_beta1", float, "optimizer", f"adam/adamw: first moment's decay (default: {_DEFAULTS.adam_beta1:g})", "B1"
    ),
    Option(
        "adam_beta2", float, "optimizer", f"adam/adamw: second moment's decay (default: {_DEFAULTS.adam_beta2:g})", "B2"
    ),
    Option(
        "adam_eps",
        float,
        "optimizer",
        f"adam/adamw: added to the root of the second moment (default: {_DEFAULTS.adam_eps:g})",
        "EPS",
    ),
    Option("weight_decay", float, "optimizer", f"L2 weight decay (default: {_DEFAULTS.weight_decay:g})", "L2"),
    Option(
        "schedule",
        str,
        "optimizer",
        f"{_choices(schedules.SCHEDULES)} learning rate (default: {_DEFAULTS.schedule})",
        "NAME",
    ),
    Option("warmup_epochs", int, "optimizer", "epochs of linear learning-rate warm-up (default: 0)", "N"),
    Option("power_t", float, "optimizer", f"exponent of the invscaling schedule (default: {_DEFAULTS.power_t:g})", "P"),
    Option("alpha", float, "optimizer", "L2 penalty alpha/(2n)*|W|^2 per batch of n, weights only (default: 0)", "A"),
    Option(
        "lbfgs_iterations",
        int,
        "optimizer",
        "lbfgs: most iterations per epoch; each epoch's run starts afresh from the weights, and ends sooner "
        f"once no gradient entry exceeds --tol (default: {_DEFAULTS.lbfgs_iterations}; --tol {LBFGS_TOL:g})",
        "N",
    ),
    Option(
        "max_fun",
        int,
        "optimizer",
        f"lbfgs: most loss evaluations per epoch (default: {_DEFAULTS.max_fun})",
        "N",
    ),
    Option("batch_size", int, "training loop", f"minibatch size (default: {_DEFAULTS.batch_size})", "N"),
    Option("epochs", int, "training loop", f"number of epochs (default: {_DEFAULTS.epochs})", "N"),
    Option(
        "tol",
        float,
        "training loop",
        "stop once the training loss has not fallen by more than TOL for more than --n-iter-no-change epochs "
        "(default: off)",
        "TOL",
    ),
    Option("n_iter_no_change", int, "training loop", f"epochs for --tol (default: {_DEFAULTS.n_iter_no_change})", "N"),
    Option(
        "early_stopping",
        int,
        "training loop",
        "stop after PATIENCE epochs without a lower validation loss and keep the best weights; "
        f"validates on --val-split, or {EARLY_STOPPING_VAL_SPLIT:g} of the training data if that is not given",
        "PATIENCE",
    ),
    Option(
        "val_split",
        float,
        "training loop",
        "fraction of the training data held out for validation (default: 0)",
        "FRACTION",
    ),
    Option(
        "seed",
        int,
        "training loop",
        f"seed for initialisation, shuffling, dropout, split (default: {_DEFAULTS.seed})",
        "N",
    ),
    Option("dtype", str, "training loop", f"{_choices(DTYPES)} (default: {_DEFAULTS.dtype})", "NAME"),
    Option("tf32", bool, "training loop", "TF32 matrix multiplies on CUDA: faster, less precise (ignored on the CPU)"),
    Option("out", str, "output", "run folder to create (default: runs/<timestamp>)", "DIR"),
    Option(
        "checkpoint_every",
        int,
        "output",
        "also checkpoint every N optimizer steps (a checkpoint is always written after each epoch)",
        "N",
    ),
    Option(
        "distributed",
        bool,
        "distributed",
        "train one model data-parallel over the ranks of an MPI job (mpiexec -n N python -m xpnet --distributed); "
        "alone, a world of one (needs pip install 'xpnet[mpi]')",
    ),
    Option(
        "reduction",
        str,
        "distributed",
        "ordered: the same weights, bit for bit, on any number of ranks up to --micro-batches (default); "
        "allreduce: less communication, reproducible for a fixed number of ranks",
        "NAME",
    ),
    Option(
        "micro_batches",
        int,
        "distributed",
        "shares each minibatch is cut into with --reduction ordered, at least the number of ranks "
        f"(default: {parallel.DEFAULT_MICRO_BATCHES})",
        "N",
    ),
    Option("quiet", bool, "output", "print nothing but errors (warnings are still recorded in metrics.json)"),
    Option("json", bool, "output", "print the final summary as JSON on stdout (progress goes to stderr)"),
)
BY_NAME = {option.name: option for option in OPTIONS}
TRAIN_FIELDS = {field.name for field in dataclasses.fields(TrainConfig)}


@dataclass(frozen=True)
class Resolved:
    """The training settings and the run settings after merging defaults, config file and command line."""

    config: TrainConfig
    run: dict

    def options(self) -> dict:
        """Every resolved option, by name (what ``config.json`` records)."""
        return {**self.run, **self.config.to_dict()}


def resolve_values(given: dict) -> Resolved:
    """Split option values (missing ones take their defaults) into the TrainConfig and the run settings."""
    values = {**_DEFAULTS.to_dict(), **RUN_DEFAULTS, **given}
    # Early stopping watches data the model does not train on, and never the test set.
    config = TrainConfig.from_dict({name: value for name, value in values.items() if name in TRAIN_FIELDS})
    config = config.with_early_stopping_split()
    if values["checkpoint_every"] is not None:  # checked here, before a run folder is claimed
        label = f"{BY_NAME['checkpoint_every'].flag}, the {CHECKPOINT_INTERVAL},"
        values["checkpoint_every"] = validation.whole(label, values["checkpoint_every"], minimum=1)
    if config.optimizer in optim.FULL_BATCH:
        _check_full_batch(config.optimizer, values)
    return Resolved(config, {name: value for name, value in values.items() if name not in TRAIN_FIELDS})


def _check_full_batch(optimizer: str, values: dict) -> None:
    """Refuse what a full-batch optimizer cannot do: it takes no steps to checkpoint between (its
    checkpoints follow each epoch), and trains in one process."""
    if values["checkpoint_every"] is not None:
        raise XpnetError(
            f"--optimizer {optimizer} takes no minibatch steps for {BY_NAME['checkpoint_every'].flag} to count: "
            "it checkpoints after each epoch (one run of --lbfgs-iterations); drop --checkpoint-every"
        )
    if values["distributed"]:
        raise XpnetError(
            f"--optimizer {optimizer} trains on the whole training set in one process: drop --distributed, "
            "or choose a minibatch optimizer"
        )


def checked_values(settings: dict, where: str) -> dict:
    """``settings`` read from a file, each checked to be a known option of the right type; errors
    begin with ``where`` ("config file job.toml")."""
    checked = {}
    for name, value in settings.items():
        option = BY_NAME.get(name)
        if option is None:
            raise XpnetError(
                f"{where}: unknown key {name!r}; valid keys are {', '.join(BY_NAME)} (kebab-case or snake_case)"
            )
        checked[name] = checked_value(option, value, where)
    return checked


def checked_value(option: Option, value, where: str):
    """``value`` for ``option`` as a file gives it (a TOML integer for a float becomes a float);
    an error beginning with ``where`` if it is not of the option's type."""
    if not _has_type(value, option.type):
        kind, example = TYPE_TEXT[option.type]
        raise XpnetError(
            f"{where}: {option.name} must be {kind}, got {value!r}; e.g. {option.name.replace('_', '-')} = {example}"
        )
    return float(value) if option.type is float else value


def _has_type(value, kind: type) -> bool:
    if kind is bool:
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if kind is float:
        return isinstance(value, (int, float))
    if kind is tuple:
        return isinstance(value, int) or (isinstance(value, list) and all(_has_type(v, int) for v in value))
    return isinstance(value, kind)
