"""A sweep's summary ranks its trials by the sweep's goal, and best.json names the best of them."""

from __future__ import annotations

import pytest

from xpnet.sweep import spec, summary
from xpnet.sweep.trial import RUN_DIR

optuna = pytest.importorskip("optuna")


def sweep(metric: str) -> spec.Sweep:
    return spec.parse(
        {
            "sweep": {"method": "random", "metric": metric, "trials": 3},
            "base": {"epochs": 2, "val_split": 0.2},
            "parameters": {"lr": {"values": [0.1, 0.01, 0.001]}},
        },
        "sweep.json",
        default_name="ranked",
    )


def finished(number: int, lr: float, value: float):
    distribution = optuna.distributions.CategoricalDistribution([0.1, 0.01, 0.001])
    trial = optuna.trial.create_trial(
        params={"lr": lr},
        distributions={"lr": distribution},
        value=value,
        user_attrs={RUN_DIR: f"trials/{number:04d}"},
    )
    trial.number = number
    return trial


TRIALS = [finished(0, 0.1, 0.80), finished(1, 0.01, 0.95), finished(2, 0.001, 0.90)]


@pytest.mark.parametrize(
    ("metric", "ranked"), [("val_accuracy", [1, 2, 0]), ("val_loss", [0, 2, 1])], ids=["maximize", "minimize"]
)
def test_trials_are_ranked_by_the_goal_and_best_json_names_the_first(metric, ranked):
    chosen = sweep(metric)
    rows = summary.rows(TRIALS, chosen)
    assert [row["trial"] for row in rows] == ranked
    best = summary.best_record(summary.best_row(rows), chosen)
    assert best["trial"] == ranked[0] and best["value"] == TRIALS[ranked[0]].value
    assert best["model"] == f"trials/{ranked[0]:04d}/model.npz"
