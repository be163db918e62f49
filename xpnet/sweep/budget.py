"""How far a sweep has come, counted from its study's trials, so that ``trials`` bounds the whole sweep
however many workers, on however many machines, join it.

Each trial that Optuna starts afresh takes one of the sweep's ``trials`` places; a retry (a trial run
again after its worker was lost) takes its original's place. A worker asks for a new trial only while
places are free, and a trial numbered past the last place (two workers asked at the same moment), or
given a grid point that an earlier trial has, is a surplus: marked so and failed before it trains, and
left out of every count and table.

A grid's points are handed out here rather than by Optuna's ``GridSampler``, which picks among the points
not yet started at random, so two workers asking at one moment can get the same point, and numbers the
points in an order shuffled by each sampler's seed: each trial takes the first point that no other
trial has, and of two that took one point at the same moment, the later one gives way.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from xpnet.sweep import engine

SURPLUS = "surplus"


def is_retry(trial) -> bool:
    return "failed_trial" in trial.system_attrs


def is_surplus(trial) -> bool:
    return bool(trial.user_attrs.get(SURPLUS))


def retried(trials) -> set[int]:
    """The numbers of failed trials that have been queued again."""
    return {number for trial in trials for number in trial.system_attrs.get("retry_history", [])}


def places_taken(trials) -> int:
    return sum(1 for trial in trials if not is_retry(trial) and not is_surplus(trial))


def is_surplus_trial(trials, trial, places: int) -> bool:
    """Whether ``trial`` (just started, among ``trials``) has no place of its own: see the module's text."""
    if is_retry(trial):
        return False
    earlier = [other for other in trials if other.number < trial.number and not is_surplus(other)]
    return sum(1 for other in earlier if not is_retry(other)) >= places


def free_grid_point(trials, number: int, grid: dict[str, list]) -> dict | None:
    """The first point of ``grid`` (in the order of its values) that no other trial has, for trial
    ``number``; None when every point is taken."""
    taken = [trial.params for trial in trials if trial.number != number and not is_surplus(trial)]
    points = (dict(zip(grid, values)) for values in itertools.product(*grid.values()))
    return next((point for point in points if point not in taken), None)


def repeats_an_earlier_point(trials, trial) -> bool:
    """Whether an earlier trial has the settings that ``trial`` was given: two workers chose a grid
    point at the same moment, and the later trial gives way."""
    return any(
        other.number < trial.number and not is_surplus(other) and other.params == trial.params for other in trials
    )


@dataclass(frozen=True)
class Progress:
    """Counts of the sweep's trials (surplus ones left out; a failed trial queued again counts once,
    as its retry), and the best finished one."""

    done: int
    running: int
    waiting: int
    pruned: int
    failed: int
    places_taken: int
    best: object | None

    def finished(self, places: int) -> bool:
        return self.places_taken >= places and not self.running and not self.waiting


def progress(trials, goal: str) -> Progress:
    states = engine.optuna().trial.TrialState
    again = retried(trials)
    counted = [trial for trial in trials if not is_surplus(trial) and trial.number not in again]
    complete = [trial for trial in counted if trial.state == states.COMPLETE]
    pick = max if goal == "maximize" else min
    return Progress(
        done=sum(1 for trial in counted if trial.state.is_finished()),
        running=sum(1 for trial in counted if trial.state == states.RUNNING),
        waiting=sum(1 for trial in counted if trial.state == states.WAITING),
        pruned=sum(1 for trial in counted if trial.state == states.PRUNED),
        failed=sum(1 for trial in counted if trial.state == states.FAIL),
        places_taken=places_taken(trials),
        best=pick(complete, key=lambda trial: trial.value) if complete else None,
    )
