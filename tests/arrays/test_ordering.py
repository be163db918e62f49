"""The compiled order of the shuffle's draws (``xpnet.arrays.ordering``) against the stable argsort it
replaces: the same permutation, index for index, so every run shuffles as it did."""

import array_api_compat.numpy as xp
import numpy as np
import pytest

from xpnet.arrays import compiled, ordering, streams
from xpnet.arrays.backend import numpy_backend

pytest.importorskip("numba")


@pytest.mark.parametrize("size", [1, 2, 3, 1000, 60_000, 200_003])
def test_the_order_is_the_stable_argsort_of_the_draws(size):
    draws = np.random.default_rng(size).random(size, dtype=np.float32)
    untouched = draws.copy()
    order = ordering.stable_order(draws)
    assert order.dtype == xp.argsort(draws).dtype
    np.testing.assert_array_equal(order, xp.argsort(draws))
    np.testing.assert_array_equal(draws, untouched)


def test_equal_draws_keep_their_order_and_every_bit_of_a_draw_counts():
    rng = np.random.default_rng(0)
    few_values = (rng.integers(0, 7, 5000) / 8).astype(np.float32)  # many ties: the stability shows
    np.testing.assert_array_equal(ordering.stable_order(few_values), np.argsort(few_values, kind="stable"))
    # Neighbouring floats that differ in each pass's digit only, high and low, and 0.0.
    below_one = np.nextafter(np.float32(1), np.float32(0))
    bits = np.array([1, 1 << 11, 1 << 22, (1 << 22) + 1, 0], dtype=np.uint32) + below_one.view(np.uint32) - (1 << 23)
    draws = np.concatenate([bits.view(np.float32), [np.float32(0.0), below_one]])
    np.testing.assert_array_equal(ordering.stable_order(draws), np.argsort(draws, kind="stable"))


def test_a_numpy_stream_shuffles_through_the_compiled_order_only_where_it_gives_the_same(monkeypatch):
    backend = numpy_backend()
    compiled_order = streams.RandomStream(backend, 4, streams.SHUFFLE, 2).permutation(70_000)
    with compiled.disabled():
        assert not ordering.takes(np.zeros(70_000, dtype=np.float32))
        reference = streams.RandomStream(backend, 4, streams.SHUFFLE, 2).permutation(70_000)
    np.testing.assert_array_equal(compiled_order, reference)
    monkeypatch.setattr(compiled, "_loaded", False)
    assert ordering.takes(np.zeros(70_000, dtype=np.float32))
    assert not ordering.takes(np.zeros(100, dtype=np.float32))  # before Numba is loaded, NumPy's sort
    assert not ordering.takes(np.zeros(70_000, dtype=np.float64))
    assert not ordering.takes(np.zeros(140_000, dtype=np.float32)[::2])
