"""The shared ``backend`` fixture and its helpers themselves: each backend puts arrays where it says."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_array, float64, on

from xpnet.arrays.backend import Backend


def test_arrays_land_on_the_backend_device_with_their_dtype(backend):
    host = np.arange(6, dtype=np.float32).reshape(2, 3)
    array = on(backend, host)
    assert_array(array, host, backend, dtype=backend.xp.float32)
    assert_array(on(backend, host, float64(backend)), host, backend, dtype=backend.xp.float64)


def test_the_assertion_helper_catches_wrong_values_and_dtypes(backend):
    array = on(backend, np.ones(3, dtype=np.float32))
    with pytest.raises(AssertionError):
        assert_array(array, np.zeros(3), backend)
    with pytest.raises(AssertionError, match="dtype"):
        assert_array(array, np.ones(3), backend, dtype=backend.xp.float64)
    with pytest.raises(AssertionError, match="shape"):
        assert_array(array, np.ones(4), backend)


def test_the_assertion_helper_catches_an_array_on_another_device():
    strict = pytest.importorskip("array_api_strict")
    device1 = strict.Device("device1")
    on_default = strict.asarray([1.0, 2.0], dtype=strict.float32)
    with pytest.raises(AssertionError, match="device1"):
        assert_array(on_default, [1.0, 2.0], Backend(strict, device1, "array_api_strict"))
