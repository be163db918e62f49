"""Arrays laid end to end in one flat buffer: on every library xpnet packs, a view of the buffer writes
through to it, by in-place operator and by item assignment alike, and copies of the views are one
independent buffer."""

from __future__ import annotations

import numpy as np
from conftest import assert_array, on, writable

from xpnet.arrays.flat import Flat, Views, copied, gives_writable_views, packed

SHAPES = [(3, 4), (4,), (2, 2), ()]


def host_arrays() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.standard_normal(shape).astype(np.float32) for shape in SHAPES]


def test_every_library_under_test_but_jax_gives_writable_views(backend):
    """JAX's arrays cannot be written at all; xpnet trains them one array per parameter."""
    assert gives_writable_views(on(backend, np.zeros(3, np.float32))) == (backend.name != "jax")


def test_views_hold_the_arrays_and_write_through_to_the_buffer(backend):
    writable(backend)
    xp = backend.xp
    arrays = host_arrays()
    views = Flat.of([on(backend, array) for array in arrays]).views()
    assert isinstance(views, Views) and len(views) == len(arrays)
    for view, array in zip(views, arrays):
        assert_array(view, array, backend, dtype=xp.float32, rtol=0)
    views[0] += on(backend, np.ones((3, 4), np.float32))  # an in-place operator
    views[1][...] = on(backend, np.full(4, 7.0, np.float32))  # item assignment
    expected = np.concatenate([(arrays[0] + 1).ravel(), np.full(4, 7.0), *(array.ravel() for array in arrays[2:])])
    assert_array(views.flat.buffer, expected, backend, dtype=xp.float32, rtol=0)


def test_copies_of_views_are_one_new_buffer(backend):
    writable(backend)
    views = Flat.of([on(backend, array) for array in host_arrays()]).views()
    copies = copied(views)
    assert isinstance(copies, Views) and copies.flat.buffer is not views.flat.buffer
    views[0][...] = on(backend, np.zeros((3, 4), np.float32))
    for copy, array in zip(copies, host_arrays()):
        assert_array(copy, array, backend, dtype=backend.xp.float32, rtol=0)


def test_arrays_that_are_not_views_are_copied_one_by_one_or_packed(backend):
    arrays = [on(backend, array) for array in host_arrays()]
    copies = copied(arrays)
    assert not isinstance(copies, Views) and all(copy is not array for copy, array in zip(copies, arrays))
    views = packed(arrays)
    assert packed(views) is views
    for view, array in zip(views, host_arrays()):
        assert_array(view, array, backend, dtype=backend.xp.float32, rtol=0)
