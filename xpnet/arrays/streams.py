"""Reproducible random numbers drawn directly on the training device.

The array API standard has no random module, so this is the one place that knows each library's
generator. Everything else needs only uniform draws: normals, permutations and dropout masks are
built from them with plain array-API math. A stream is named by ``(seed, *key)``, so any draw of a
run (say, the shuffle of epoch 7) can be recreated without replaying the ones before it.
"""

from __future__ import annotations

import math

import array_api_compat
import numpy as np

from xpnet.arrays import ordering
from xpnet.arrays.backend import Backend

# Keys that separate the streams of one run; a resumed run recreates its streams from them.
INIT, SHUFFLE, DROPOUT, SPLIT = range(4)

# On CuPy, a stream draws from a Philox (counter-based) generator with this many states, one per thread
# of a draw's kernel. CuPy's default (XORWOW, one state per thread of the whole GPU: about 13 MB and a
# slow curand_init each on an H100) would cost more to make than a minibatch's dropout mask costs to
# draw; a Philox state is set from its seed and thread number at once.
GPU_STATES = 2**14
# Bytes of one Philox state (cuRAND's curandStatePhilox4_32_10_t).
GPU_STATE_BYTES = 64
# Streams a run draws from at once: an epoch's shuffle and dropout streams, and a minibatch's child.
_STREAMS_AT_ONCE = 3


class RandomStream:
    """Uniform, normal and permutation draws for one backend, reproducible from ``(seed, *key)``."""

    def __init__(self, backend: Backend, seed: int, *key: int):
        self.backend = backend
        self.seed, self.key = seed, key
        # Made on the first draw: a stream per minibatch (``child``) costs nothing where no layer draws.
        self._draw = None

    def child(self, *key: int) -> RandomStream:
        """The stream named by this one's name followed by ``key`` (say, one per minibatch and slot of
        data-parallel training), independent of this one and of every other child."""
        return RandomStream(self.backend, self.seed, *self.key, *key)

    def uniform(self, shape: tuple[int, ...], dtype) -> object:
        """Floats in [0, 1) of ``dtype`` on the backend's device."""
        with self.backend.active():  # CuPy makes the generator's states and draws on the current GPU
            if self._draw is None:
                self._draw = _uniform_source(self.backend, np.random.SeedSequence([self.seed, *self.key]))
            return self._draw(shape, dtype)

    def normal(self, shape: tuple[int, ...], dtype) -> object:
        """Standard normal floats (Box-Muller on uniform draws)."""
        xp = self.backend.xp
        # log(1 - u) is finite only for u < 1. A generator that draws float64 and rounds to float32 can
        # give 1.0; capping at the largest float below 1 leaves every draw in [0, 1) as it was.
        below_one = 1.0 - xp.finfo(dtype).eps / 2
        # CuPy runs element-wise kernels on the current GPU, whatever device their input is on.
        with self.backend.active():
            radius = xp.sqrt(-2.0 * xp.log(1.0 - xp.clip(self.uniform(shape, dtype), max=below_one)))
            return radius * xp.cos((2.0 * math.pi) * self.uniform(shape, dtype))

    def permutation(self, n: int) -> object:
        """A random ordering of ``range(n)`` as an index array on the device: the stable argsort of ``n``
        uniform draws (on NumPy, the same order from ``ordering.stable_order``'s compiled pass)."""
        xp = self.backend.xp
        with self.backend.active():
            draws = self.uniform((n,), xp.float32)
            return ordering.stable_order(draws) if ordering.takes(draws) else xp.argsort(draws)


def state_bytes(backend: Backend) -> int:
    """Device memory the generators of a run's streams hold at once on ``backend``: CuPy's states (other
    libraries' generators are small host objects)."""
    return _STREAMS_AT_ONCE * GPU_STATES * GPU_STATE_BYTES if array_api_compat.is_cupy_namespace(backend.xp) else 0


def _uniform_source(backend: Backend, seeds: np.random.SeedSequence):
    """Return ``draw(shape, dtype)`` using the library's own generator where it has one."""
    xp, device = backend.xp, backend.device
    if array_api_compat.is_cupy_namespace(xp):
        import cupy

        # The whole seed sequence goes to CuPy, which derives the generator's key from it (32 bits of it:
        # CuPy's cuRAND generators take no more).
        generator = cupy.random.Generator(cupy.random.Philox4x3210(seeds, size=GPU_STATES))
        return lambda shape, dtype: generator.random(shape, dtype=dtype)
    if array_api_compat.is_torch_namespace(xp):
        import torch

        generator = torch.Generator(device=device)
        generator.manual_seed(int(seeds.generate_state(1, np.uint64)[0] >> np.uint64(1)))
        return lambda shape, dtype: torch.rand(shape, generator=generator, dtype=dtype, device=device)
    # NumPy, array-api-strict and any other library: draw on the host with NumPy, then move.
    generator = np.random.default_rng(seeds)
    if array_api_compat.is_numpy_namespace(xp):
        return lambda shape, dtype: generator.random(shape, dtype=dtype)

    def draw(shape, dtype):
        host_dtype = np.float32 if dtype == xp.float32 else np.float64
        return xp.asarray(generator.random(shape, dtype=host_dtype), device=device)

    return draw
