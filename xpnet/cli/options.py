"""The training options on the command line (``argparse``, from the option table in
``xpnet.runner.settings``), and the saved-model argument that ``evaluate`` and ``predict`` share.

Every option defaults to None on the command line, so "not given" can be told from a default: the
resolved value is the command line's, else the config file's, else the table's default. A true/false
option has a ``--no-`` form, so a value set in a config file can be turned off again.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from xpnet.errors import DatasetError
from xpnet.io import runs
from xpnet.runner.config_file import read_config
from xpnet.runner.settings import BY_NAME, OPTIONS, RUN_DEFAULTS, Option, Resolved, checked_values, resolve_values

# The other subcommands read the option table through this module, beside the arguments it adds.
__all__ = ["BY_NAME", "OPTIONS", "RUN_DEFAULTS"]


def add_option(parser, option: Option) -> None:
    """Add ``option`` to ``parser`` (or an argument group) with a default of None."""
    if option.type is bool:
        parser.add_argument(option.flag, action=argparse.BooleanOptionalAction, default=None, help=option.help)
    elif option.type is tuple:
        parser.add_argument(option.flag, type=int, nargs="+", metavar=option.metavar, help=option.help)
    else:
        parser.add_argument(option.flag, type=option.type, metavar=option.metavar, help=option.help)


def add_training_options(parser: argparse.ArgumentParser) -> None:
    groups = {}
    for option in OPTIONS:
        if option.group not in groups:
            groups[option.group] = parser.add_argument_group(option.group)
        add_option(groups[option.group], option)
    parser.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue an interrupted run from its last checkpoint, with the options it was started with "
        "(--device, --data-dir, --quiet and --json may be given again)",
    )
    parser.add_argument(
        "--config",
        metavar="FILE.toml",
        help="read options from a TOML file (keys as the options, kebab-case or snake_case); "
        "options given on the command line win",
    )


def resolve(args: argparse.Namespace) -> Resolved:
    """Defaults, then the config file, then the command line."""
    values = {}
    if args.config is not None:
        values.update(checked_values(read_config(args.config), f"config file {args.config}"))
    values.update({name: getattr(args, name) for name in BY_NAME if getattr(args, name, None) is not None})
    return resolve_values(values)


def add_model_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "model", metavar="MODEL", help="model file written by xpnet train or Model.save, or the run folder holding it"
    )


def model_file(given) -> Path:
    """The model file that ``given`` names: the file itself, or ``model.npz`` in a run folder."""
    path = Path(given)
    return path / runs.MODEL_FILE if path.is_dir() else path


def recorded_options(model_path: Path) -> dict:
    """The options recorded in the run's ``config.json`` beside ``model_path``; {} where there is none."""
    config = model_path.parent / runs.CONFIG_FILE
    recorded = runs.read_json(config).get("options") if config.is_file() else None
    return recorded if isinstance(recorded, dict) else {}


def check_features(model, model_path: Path, inputs, source, fix: str) -> None:
    """Refuse inputs whose feature count is not the one the model was trained on, naming both files."""
    expected = model.network.n_inputs
    if inputs.shape[1] != expected:
        raise DatasetError(
            f"{source}: {inputs.shape[1]} features per sample but {model_path} expects {expected}; {fix}"
        )
