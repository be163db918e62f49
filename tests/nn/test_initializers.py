"""Weight initialisation and the random streams behind it, on every backend: the right variance, on the
right device and dtype, and reproducible from the seed."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import assert_array, float64

from xpnet import XpnetError
from xpnet.arrays.backend import to_numpy
from xpnet.arrays.streams import RandomStream
from xpnet.nn.initializers import INITIALIZERS, initial_weights
from xpnet.nn.network import resolved_init

FAN_IN, FAN_OUT = 300, 200


def expected_std(name: str) -> float:
    return math.sqrt(2.0 / FAN_IN if name.startswith("he") else 2.0 / (FAN_IN + FAN_OUT))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", INITIALIZERS)
def test_initial_weights_have_the_scheme_variance_on_the_device(backend, name, dtype):
    if dtype == "float64":
        float64(backend)
    weights = initial_weights(name, FAN_IN, FAN_OUT, getattr(backend.xp, dtype), RandomStream(backend, 0, 0))
    host = to_numpy(weights)
    assert_array(weights, host, backend, dtype=getattr(backend.xp, dtype))
    assert host.shape == (FAN_IN, FAN_OUT)
    assert abs(host.mean()) < 0.05 * expected_std(name)
    assert host.std() == pytest.approx(expected_std(name), rel=0.02)
    if name.endswith("uniform"):
        assert np.abs(host).max() <= math.sqrt(3.0) * expected_std(name)


def test_an_unknown_initializer_is_refused_by_name(backend):
    with pytest.raises(XpnetError, match="unknown init 'xavier': choose one of he_normal"):
        initial_weights("xavier", 2, 2, backend.xp.float32, RandomStream(backend, 0))


def test_a_stream_repeats_for_its_seed_and_key_and_differs_for_others(backend):
    def draw(seed, *key):
        return to_numpy(RandomStream(backend, seed, *key).uniform((50,), backend.xp.float32))

    np.testing.assert_array_equal(draw(1, 2), draw(1, 2))
    assert not np.array_equal(draw(1, 2), draw(1, 3))
    assert not np.array_equal(draw(1, 2), draw(2, 2))


def test_uniform_normal_and_permutation_draws(backend):
    stream = RandomStream(backend, 3)
    uniform = stream.uniform((20000,), backend.xp.float32)
    assert_array(uniform, to_numpy(uniform), backend, dtype=backend.xp.float32)
    host = to_numpy(uniform)
    assert host.min() >= 0.0 and host.max() < 1.0 and host.mean() == pytest.approx(0.5, abs=0.01)
    normal = to_numpy(stream.normal((20000,), float64(backend)))
    assert normal.dtype == np.float64
    assert normal.mean() == pytest.approx(0.0, abs=0.03) and normal.std() == pytest.approx(1.0, abs=0.03)
    order = stream.permutation(1000)
    assert_array(order, to_numpy(order), backend)
    np.testing.assert_array_equal(np.sort(to_numpy(order)), np.arange(1000))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_normals_stay_finite_when_a_generator_returns_one(backend, dtype):
    """Some generators round a float64 draw to float32 and can return 1.0; Box-Muller's log(1 - u) would
    then be infinite. Every draw below 1 gives the same normal as the textbook formula."""
    xp, float_type = backend.xp, float64(backend) if dtype == "float64" else backend.xp.float32
    host_draws = np.array([0.0, 0.25, 0.5, 1.0 - np.finfo(dtype).eps / 2, 1.0], dtype=dtype)
    stream = RandomStream(backend, 0)
    stream._draw = lambda shape, dtype: xp.asarray(host_draws, dtype=dtype, device=backend.device)
    normal = to_numpy(stream.normal((5,), float_type))
    assert np.isfinite(normal).all()
    radius = np.sqrt(-2.0 * np.log(1.0 - host_draws[:4]))
    np.testing.assert_allclose(normal[:4], radius * np.cos(2.0 * math.pi * host_draws[:4]), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    ("activation", "init"),
    [
        ("relu", "he_normal"),
        ("leaky_relu", "he_normal"),
        ("gelu", "he_normal"),  # ReLU-like: zero for large negative inputs, the identity for large positive ones
        ("tanh", "glorot_uniform"),
        ("sigmoid", "glorot_uniform"),
        ("identity", "glorot_uniform"),
    ],
)
def test_auto_init_is_he_for_relu_like_activations_and_glorot_for_the_others(activation, init):
    assert resolved_init("auto", activation) == init
    assert resolved_init("glorot_normal", activation) == "glorot_normal"  # a name given stays as it is
