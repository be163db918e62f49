"""On CuPy, arrays and kernels go to the *current* GPU: xpnet makes the backend's GPU current wherever it
creates or computes outside training (a network's initial weights and biases, every random draw), and its
random streams use small counter-based generators seeded with their whole name.

These run on ``cupy_standin`` (see there what it does not prove); ``tests/test_cuda.py`` trains on a real
GPU, ``cuda:N`` included."""

from __future__ import annotations

import numpy as np
import pytest
from cupy_standin import install

from xpnet.arrays import streams
from xpnet.nn.network import Network


@pytest.fixture
def standin(monkeypatch):
    return install(monkeypatch, gpus=2)


def test_a_network_is_made_on_its_backends_gpu_while_another_is_current(standin):
    backend = standin.backend(1)
    rng = streams.RandomStream(backend, 0, streams.INIT)
    with standin.backend(0).device:  # cuda:0 is current, as it is for any code that did not choose
        Network.mlp([8, 6, 3], rng, activation="tanh", init="glorot_normal")
        assert standin.current_gpu() == 0
    ran_on = {name: gpu for name, gpu in standin.calls}
    # The bias (zeros) and the normal draws' element-wise kernels (clip, log, cos) all ran on cuda:1.
    assert {"zeros", "clip", "log", "cos", "random"} <= ran_on.keys()
    assert {gpu for _, gpu in standin.calls} == {1}
    assert [generator.made_on for generator in standin.generators] == [1]


def test_shuffles_and_draws_run_on_the_streams_gpu(standin):
    stream = streams.RandomStream(standin.backend(1), 3, streams.SHUFFLE, 2)
    order = stream.permutation(50)
    assert sorted(order.tolist()) == list(range(50))
    stream.normal((4, 5), np.float32)
    assert {gpu for _, gpu in standin.calls} == {1}
    assert ("argsort", 1) in standin.calls


def test_a_gpu_stream_draws_from_a_small_philox_generator_seeded_with_its_whole_name(standin):
    seed = 2**40 + 5  # beyond 32 bits: every bit of it, and every key, names the stream
    stream = streams.RandomStream(standin.backend(0), seed, streams.DROPOUT, 7).child(123, 3)
    stream.uniform((10,), np.float32)
    stream.uniform((10,), np.float32)
    (generator,) = standin.generators  # made once, on the first draw, and reused
    assert isinstance(generator.seed, np.random.SeedSequence)
    assert generator.seed.entropy == [seed, streams.DROPOUT, 7, 123, 3]
    assert generator.size == streams.GPU_STATES
    assert 0 < generator.size * streams.GPU_STATE_BYTES <= 2**20, "a stream's states take at most 1 MiB"


def test_gpu_draws_are_reproducible_from_the_streams_name(standin):
    backend = standin.backend(0)

    def draws(seed, *key):
        return streams.RandomStream(backend, seed, *key).uniform((6,), np.float32)

    np.testing.assert_array_equal(draws(1, streams.DROPOUT, 4), draws(1, streams.DROPOUT, 4))
    assert not np.array_equal(draws(1, streams.DROPOUT, 4), draws(1, streams.DROPOUT, 5))
    assert not np.array_equal(draws(1, streams.DROPOUT, 4), draws(1 + 2**32, streams.DROPOUT, 4))
