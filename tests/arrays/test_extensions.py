"""NumPy, CuPy and PyTorch beyond the array API: a product or a column sum written into a view of a
larger buffer, and a product with a boolean mask, give exactly what the standard forms give, on every
library (the others take the standard forms)."""

from __future__ import annotations

import numpy as np
from conftest import assert_array, on

from xpnet.arrays import extensions
from xpnet.arrays.backend import to_numpy
from xpnet.arrays.flat import Flat, gives_writable_views


def test_products_and_column_sums_go_into_views_of_a_buffer(backend):
    xp = backend.xp
    rng = np.random.default_rng(0)
    x1, x2 = on(backend, rng.standard_normal((5, 3)), xp.float32), on(backend, rng.standard_normal((5, 4)), xp.float32)
    views = Flat.of([on(backend, np.zeros((3, 4), np.float32)), on(backend, np.zeros(4, np.float32))]).views()
    product = extensions.matmul(x1.T, x2, out=views[0])
    sums = extensions.column_sums(x2, out=views[1])
    standard_product, standard_sums = to_numpy(x1.T @ x2), to_numpy(xp.sum(x2, axis=0))
    if gives_writable_views(views[0]):
        assert product is views[0] and sums is views[1]
        expected = np.concatenate([standard_product.ravel(), standard_sums])
        assert_array(views.flat.buffer, expected, backend, dtype=xp.float32, rtol=0)
    else:  # immutable arrays (JAX): the results come back new, and the buffer stays as it was
        assert product is not views[0] and sums is not views[1]
        assert_array(views.flat.buffer, np.zeros(16), backend, dtype=xp.float32)
    assert_array(product, standard_product, backend, dtype=xp.float32, rtol=0)
    assert_array(sums, standard_sums, backend, dtype=xp.float32, rtol=0)
    assert_array(extensions.matmul(x1.T, x2), standard_product, backend, dtype=xp.float32, rtol=0)
    assert_array(extensions.column_sums(x2), standard_sums, backend, dtype=xp.float32, rtol=0)


def test_a_boolean_mask_multiplies_like_a_float_mask_bit_for_bit(backend):
    xp = backend.xp
    rng = np.random.default_rng(1)
    x, z = (on(backend, rng.standard_normal((6, 7)), xp.float32) for _ in range(2))
    masked = extensions.masked(x, z > 0)
    expected = to_numpy(x * xp.astype(z > 0, xp.float32))
    assert masked.dtype == xp.float32
    assert np.array_equal(to_numpy(masked).view(np.int32), expected.view(np.int32))  # signed zeros too
