"""The epoch loop's pieces: the epoch's inputs by rows."""

from __future__ import annotations

import numpy as np
from conftest import assert_array, on

from xpnet.train.loop import EpochInputs


def test_the_epochs_inputs_are_the_rows_in_its_order_however_gathered(backend):
    """Gathered batch by batch on NumPy, at once elsewhere: the same rows either way."""
    x = np.arange(40, dtype=np.float32).reshape(10, 4)
    order = np.random.default_rng(0).permutation(10)
    inputs = EpochInputs(on(backend, x), on(backend, order))
    for start, stop in [(0, 4), (4, 8), (8, 10)]:
        assert_array(inputs.rows(start, stop), x[order[start:stop]], backend, dtype=backend.xp.float32, rtol=0)
