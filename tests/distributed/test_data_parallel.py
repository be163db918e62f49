"""The pieces of ``xpnet.DataParallel`` in one process (a world of one): slots cover each batch, the
random streams of slots are named independently, and a step of one slot is the plain training loop's."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import xpnet
from xpnet.arrays.backend import numpy_backend
from xpnet.arrays.streams import DROPOUT, RandomStream
from xpnet.distributed.parallel import slot_bounds

pytest.importorskip("mpi4py")


@pytest.mark.parametrize(("start", "stop", "slots"), [(0, 32, 4), (64, 102, 4), (0, 3, 4), (10, 11, 1), (0, 7, 3)])
def test_slots_cut_a_batch_into_contiguous_shares_differing_by_at_most_one_row(start, stop, slots):
    bounds = [slot_bounds(start, stop, slot, slots) for slot in range(slots)]
    assert bounds[0][0] == start and bounds[-1][1] == stop
    assert all(end == next_start for (_, end), (next_start, _) in itertools.pairwise(bounds))
    sizes = [end - first for first, end in bounds]
    assert max(sizes) - min(sizes) <= 1


def test_a_child_stream_is_named_by_its_key_alone():
    parent = RandomStream(numpy_backend(), 7, DROPOUT, 2)
    draws = parent.child(5, 1).uniform((4,), np.float32)
    np.testing.assert_array_equal(draws, RandomStream(numpy_backend(), 7, DROPOUT, 2, 5, 1).uniform((4,), np.float32))
    assert not np.array_equal(draws, parent.child(5, 2).uniform((4,), np.float32))
    assert not np.array_equal(draws, parent.uniform((4,), np.float32))


def test_one_slot_on_one_rank_trains_exactly_what_the_plain_loop_trains():
    x, y, _x_test, _y_test = xpnet.load_digits()
    settings = {"hidden": [32], "epochs": 2, "device": "cpu"}
    plain = xpnet.Model(**settings)
    plain.fit(x, y)
    parallel = xpnet.DataParallel(micro_batches=1)
    shared = xpnet.Model(**settings)
    parallel.fit(shared, x, y)
    for mine, theirs in zip(shared.network.parameters(), plain.network.parameters()):
        np.testing.assert_array_equal(mine, theirs)
    assert [record["train_loss"] for record in shared.history] == [record["train_loss"] for record in plain.history]


def test_reduction_settings_are_checked():
    with pytest.raises(xpnet.XpnetError, match="unknown reduction 'tree': choose one of ordered, allreduce"):
        xpnet.DataParallel(reduction="tree")
    with pytest.raises(xpnet.XpnetError, match="micro_batches must be a positive integer, got 0"):
        xpnet.DataParallel(micro_batches=0)
