"""The sweep file: what to search, how, and by which metric, checked whole before any trial starts.

```toml
[sweep]
method = "tpe"        # grid | random | tpe
metric = "val_loss"   # train_loss, train_accuracy, val_loss or val_accuracy
trials = 40           # for the whole sweep, however many workers join it
refit = false         # true: train the best trial's settings again on the whole training set
[base]                # the keys of --config job.toml
val-split = 0.1
[parameters]
lr = { min = 1e-4, max = 1e-1, log = true }
hidden = { values = [[128], [256]] }
```

Every bad input is one ``XpnetError`` line naming the file, the table and the key: an unknown key, a
parameter that is not a training option, an empty grid, ``min`` above ``max``, a log range through
zero, a value the training option refuses, a metric no run records. ``Sweep.record()`` is the same
layout as plain data: the sweep folder keeps it as ``sweep.json``, and workers read it back with
``parse``, so they run exactly what was checked.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from xpnet.errors import XpnetError, one_line
from xpnet.runner.config_file import read_toml, snake_case_keys
from xpnet.runner.settings import BY_NAME, TRAIN_FIELDS, Option, checked_value, checked_values, resolve_values

METHODS = ("grid", "random", "tpe")
GOALS = ("minimize", "maximize")
PRUNERS = ("none", "median", "hyperband")
# What every run records per epoch that a sweep may choose by; the test set is measured, never chosen by.
METRICS = ("val_loss", "val_accuracy", "train_loss", "train_accuracy")
SECTIONS = ("sweep", "base", "parameters")
# The [sweep] table: each key's default (None: required, or worked out from the others).
SWEEP_DEFAULTS = {
    "method": "tpe",
    "metric": "val_loss",
    "goal": None,
    "trials": None,
    "jobs": 1,
    "seed": 0,
    "pruner": "none",
    "pruner_startup_trials": 5,
    "pruner_warmup_epochs": 0,
    "storage": "",
    "name": None,
    "refit": False,
}
# [sweep] keys that may change when a sweep is continued: they decide no trial's result.
NOT_SEARCH_SETTINGS = ("trials", "jobs", "storage", "refit")
# Where and how a trial runs is the sweep's to decide, not [base]'s.
NOT_IN_BASE = {
    "out": "each trial's run folder is made inside the sweep folder: give --out to xpnet sweep instead",
    "quiet": "trials always run quietly; the sweep shows their progress",
    "json": "trials always run quietly; the sweep shows their progress",
    "checkpoint_every": "a trial checkpoints after every epoch",
    **dict.fromkeys(
        ("distributed", "reduction", "micro_batches"),
        "a sweep's trials each train in one process, not over an MPI job: --jobs runs several at once",
    ),
}
# Options a trial may search over: the training settings (TrainConfig's fields).
SEARCHABLE = [name for name in BY_NAME if name in TRAIN_FIELDS]
RANGE_KEYS = ("min", "max", "log", "step")


@dataclass(frozen=True)
class Parameter:
    """One searched option: a list of ``values`` to choose from, or a ``low``..``high`` range (on a log
    scale, or in steps of ``step``)."""

    option: Option
    values: tuple | None = None
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None

    @property
    def name(self) -> str:
        return self.option.name

    def choices(self) -> list:
        """The values as Optuna stores them: a list of widths (``hidden``) as its JSON text."""
        return [json.dumps(value) if isinstance(value, list) else value for value in self.values]

    def suggest(self, trial):
        """This parameter's value for an Optuna ``trial``, as the option takes it."""
        if self.values is not None:
            return self.value_of(trial.suggest_categorical(self.name, self.choices()))
        if self.option.type is int:
            return trial.suggest_int(self.name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)

    def value_of(self, stored):
        """A value as the option takes it, from what Optuna stored (``choices``)."""
        return json.loads(stored) if self.option.type is tuple and isinstance(stored, str) else stored

    def record(self) -> dict:
        if self.values is not None:
            return {"values": list(self.values)}
        found = {"min": self.low, "max": self.high, "log": self.log}
        return found if self.step is None else {**found, "step": self.step}


@dataclass(frozen=True)
class Sweep:
    """A checked sweep file: ``settings`` is the [sweep] table with every default filled in."""

    settings: dict
    base: dict
    parameters: tuple[Parameter, ...]

    def grid(self) -> dict[str, list]:
        """The grid's values by parameter name, as Optuna stores them (``Parameter.choices``)."""
        return {parameter.name: parameter.choices() for parameter in self.parameters}

    def record(self) -> dict:
        """The sweep as plain data in the layout of the file (``sweep.json``; ``parse`` reads it back)."""
        return {
            "sweep": dict(self.settings),
            "base": dict(self.base),
            "parameters": {parameter.name: parameter.record() for parameter in self.parameters},
        }

    def search_record(self) -> dict:
        """What decides each trial (not where the study is stored, how many trials run at once or in all):
        a study continued with other such settings would mix two searches."""
        record = self.record()
        record["sweep"] = {key: value for key, value in self.settings.items() if key not in NOT_SEARCH_SETTINGS}
        return record


def read(path) -> Sweep:
    """The sweep file at ``path``, checked; its name defaults to the file's stem."""
    path = Path(path)
    return parse(read_toml(path, "sweep file", "xpnet sweep"), f"sweep file {path}", default_name=path.stem)


def parse(data: dict, where: str, default_name: str = "sweep") -> Sweep:
    """Check the sweep described by ``data`` (the file's tables); errors begin with ``where``."""
    data = snake_case_keys(data, where)
    for section in data:
        if section not in SECTIONS:
            raise XpnetError(f"{where}: unknown table [{section}]; a sweep file has [sweep], [base] and [parameters]")
    tables = {}
    for section in SECTIONS:
        table = data.get(section, {})
        if not isinstance(table, dict):
            raise XpnetError(f"{where}: {section} must be a table, [{section}]")
        tables[section] = snake_case_keys(table, f"{where} [{section}]")
    base = _base(tables["base"], f"{where} [base]")
    parameters = _parameters(tables["parameters"], base, f"{where} [parameters]")
    settings = _settings(tables["sweep"], base, parameters, f"{where} [sweep]", default_name)
    return Sweep(settings, base, parameters)


def _base(table: dict, where: str) -> dict:
    for name in table:
        if name in NOT_IN_BASE:
            raise XpnetError(f"{where}: {name} cannot be set for a sweep's trials: {NOT_IN_BASE[name]}")
    base = checked_values(table, where)
    _check_settings(base, where)
    return base


def _check_settings(values: dict, where: str) -> None:
    """Refuse option values that training would refuse, with the training option's own words."""
    try:
        resolve_values(values)
    except XpnetError as error:
        raise XpnetError(f"{where}: {one_line(error)}") from None


def _parameters(table: dict, base: dict, where: str) -> tuple[Parameter, ...]:
    if not table:
        raise XpnetError(
            f"{where}: no parameters: name at least one training option to search, "
            "e.g. lr = { min = 1e-4, max = 0.1, log = true }"
        )
    found = []
    for name, given in table.items():
        option = BY_NAME.get(name)
        if name not in SEARCHABLE:
            what = "an option of where or how a run happens" if option is not None else "not a training option"
            raise XpnetError(f"{where}: {name!r} is {what}; the options a sweep can search are {', '.join(SEARCHABLE)}")
        if name in base:
            raise XpnetError(f"{where}: {name} is also set in [base]; keep it in one of the two")
        if not isinstance(given, dict):
            raise XpnetError(
                f"{where}: {name} must be a table, {{ values = [...] }} or {{ min = ..., max = ... }}, got {given!r}"
            )
        found.append(_parameter(option, given, base, f"{where} {name}"))
    return tuple(found)


def _parameter(option: Option, given: dict, base: dict, where: str) -> Parameter:
    if "values" in given:
        extra = sorted(set(given) - {"values"})
        if extra:
            raise XpnetError(f"{where}: values cannot be combined with {', '.join(extra)}; give a list or a range")
        values = given["values"]
        if not isinstance(values, list) or not values:
            raise XpnetError(f"{where}: values must be a non-empty list, got {values!r}; e.g. values = [0.01, 0.1]")
        checked = [checked_value(option, value, where) for value in values]
        if option.type is tuple:  # one width may be given alone: 256 is [256]
            checked = [value if isinstance(value, list) else [value] for value in checked]
        for value in checked:
            _check_settings({**base, option.name: value}, where)
        if len({json.dumps(value) for value in checked}) < len(checked):
            raise XpnetError(f"{where}: values lists {values!r} with a value twice; give each once")
        return Parameter(option, values=tuple(checked))
    return _range(option, given, base, where)


def _range(option: Option, given: dict, base: dict, where: str) -> Parameter:
    unknown = sorted(set(given) - set(RANGE_KEYS))
    if unknown:
        raise XpnetError(f"{where}: unknown key {unknown[0]!r}; a parameter has values, or min, max, log and step")
    if "min" not in given or "max" not in given:
        raise XpnetError(f"{where}: give values = [...], or both min and max")
    if option.type not in (int, float):
        raise XpnetError(
            f"{where}: {option.name} takes a list of values, not a range; e.g. values = [[128], [256, 128]]"
        )
    low, high = (checked_value(option, given[key], f"{where} {key}") for key in ("min", "max"))
    log = given.get("log", False)
    step = given.get("step")
    if not isinstance(log, bool):
        raise XpnetError(f"{where}: log must be true or false, got {log!r}")
    if low > high:
        raise XpnetError(f"{where}: min {low!r} is above max {high!r}; swap them")
    if log and low <= 0:
        raise XpnetError(
            f"{where}: a log range must stay above zero, but min is {low!r}; give a positive min, or log = false"
        )
    if step is not None:
        step = checked_value(option, step, f"{where} step")
        if log or not step > 0:
            raise XpnetError(f"{where}: step must be a positive number, and cannot be combined with log = true")
        if step > high - low:  # Optuna would draw min alone, every trial the same
            raise XpnetError(
                f"{where}: step {step!r} is larger than the range {low!r}..{high!r}, which then holds one value; "
                "give a smaller step, or values = [...]"
            )
    for end in (low, high):
        _check_settings({**base, option.name: end}, where)
    return Parameter(option, low=low, high=high, log=log, step=step)


def _settings(table: dict, base: dict, parameters: tuple[Parameter, ...], where: str, default_name: str) -> dict:
    unknown = sorted(set(table) - set(SWEEP_DEFAULTS))
    if unknown:
        keys = ", ".join(name.replace("_", "-") for name in SWEEP_DEFAULTS)
        raise XpnetError(f"{where}: unknown key {unknown[0]!r}; valid keys are {keys}")
    settings = {**SWEEP_DEFAULTS, **{key: value for key, value in table.items() if value is not None}}
    for key, choices in (("method", METHODS), ("pruner", PRUNERS)):
        if settings[key] not in choices:
            raise XpnetError(f"{where}: {key} {settings[key]!r} is not one of {', '.join(choices)}")
    for key in ("jobs", "seed", "pruner_startup_trials", "pruner_warmup_epochs"):
        settings[key] = _whole(settings[key], key, where, minimum=1 if key == "jobs" else 0)
    for key in ("storage", "name"):
        if settings[key] is not None and not isinstance(settings[key], str):
            raise XpnetError(f"{where}: {key} must be a string, got {settings[key]!r}")
    if not isinstance(settings["refit"], bool):
        raise XpnetError(f"{where}: refit must be true or false, got {settings['refit']!r}")
    settings["name"] = settings["name"] or default_name
    settings["metric"] = _metric(settings["metric"], base, parameters, where)
    settings["goal"] = settings["goal"] or ("maximize" if settings["metric"].endswith("accuracy") else "minimize")
    if settings["goal"] not in GOALS:
        raise XpnetError(f"{where}: goal {settings['goal']!r} is not one of {', '.join(GOALS)}")
    settings["trials"] = _trials(settings, parameters, where)
    return settings


def _whole(value, key: str, where: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise XpnetError(
            f"{where}: {key.replace('_', '-')} must be a whole number of at least {minimum}, got {value!r}"
        )
    return value


def _metric(metric, base: dict, parameters: tuple[Parameter, ...], where: str) -> str:
    if metric in ("test_loss", "test_accuracy"):
        raise XpnetError(
            f"{where}: metric {metric!r} would choose by the test set, which is only ever measured; "
            "choose by val_loss or val_accuracy (with val-split in [base])"
        )
    if metric not in METRICS:
        raise XpnetError(
            f"{where}: metric {metric!r} is not one a run records each epoch; choose one of {', '.join(METRICS)}"
        )
    if metric.startswith("val_") and not _always_validates(base, parameters):
        raise XpnetError(
            f"{where}: metric {metric!r} needs validation data in every trial: set val-split (e.g. 0.1) in [base]"
        )
    return metric


def _always_validates(base: dict, parameters: tuple[Parameter, ...]) -> bool:
    """Whether every trial holds data out for validation (a validation split, or early stopping's)."""
    searched = {parameter.name: parameter for parameter in parameters}
    if "val_split" in searched:
        parameter = searched["val_split"]
        return min(parameter.values) > 0 if parameter.values is not None else parameter.low > 0
    if "early_stopping" in searched:
        return True  # every value is a patience, and early stopping holds out a split of its own
    return resolve_values(base).config.val_split > 0


def _trials(settings: dict, parameters: tuple[Parameter, ...], where: str) -> int:
    trials = settings["trials"]
    if settings["method"] != "grid":
        if trials is None:
            raise XpnetError(f"{where}: trials is missing: how many trials the {settings['method']} search runs in all")
        return _whole(trials, "trials", where, minimum=1)
    ranges = [parameter.name for parameter in parameters if parameter.values is None]
    if ranges:
        raise XpnetError(f"{where}: a grid needs values = [...] for every parameter, but {ranges[0]} is a range")
    size = math.prod(len(parameter.values) for parameter in parameters)
    if trials is None:
        return size
    trials = _whole(trials, "trials", where, minimum=1)
    if trials > size:
        raise XpnetError(f"{where}: trials = {trials} but the grid has {size} points; leave trials out to run them all")
    return trials
