"""Callbacks on their own: what early stopping counts as an improvement."""

from __future__ import annotations

import pytest

from xpnet.train.callbacks import EarlyStopping


class NoNetwork:
    """Early stopping that restores nothing needs no network to copy."""


@pytest.mark.parametrize(
    ("losses", "stops_after", "best"),
    [
        ([1.0, 0.95, 0.94], 2, 1.0),  # 0.05 below the best is less than min_delta: no improvement, patience 1 ends it
        ([1.0, 0.85, 0.70, 0.69], 4, 0.70),  # improvements of 0.15 count; 0.01 does not
    ],
)
def test_an_improvement_must_beat_the_best_loss_by_min_delta(losses, stops_after, best):
    stopper = EarlyStopping(1, restore_best=False, min_delta=0.1)
    stopper.network = NoNetwork()
    stops = [stopper.on_epoch_end({"epoch": epoch, "val_loss": loss}) for epoch, loss in enumerate(losses, start=1)]
    assert stops.index(True) + 1 == stops_after
    assert stopper.best_loss == best
