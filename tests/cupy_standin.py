"""A stand-in for CuPy on machines without a GPU: the pieces xpnet's CuPy paths touch, over NumPy arrays.
It has GPUs that a ``cuda.Device`` makes current in a with-block, as CuPy's do; array functions that run
"on" the current GPU and, like array-api-compat's wrappers of CuPy's creation functions, drop ``device=``;
``cupy.random``'s Philox generator; and the memory pool with its limit. It records the GPU each array
function and draw ran on, and the generators made.

What it shows: where xpnet makes a GPU current, and what it asks of CuPy. What it does not prove: what CuPy
and the GPU then do (that arrays land on the current GPU, how fast a generator is made, how much memory a
step takes); ``tests/test_cuda.py`` checks those on a GPU (``-m cuda``).
"""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass, field

import array_api_compat.numpy as numpy_namespace
import numpy as np

# Array functions whose device= array-api-compat drops for CuPy (its common/_aliases.py): they make their
# array on the current GPU.
CREATION = ("zeros", "ones", "empty", "full", "arange", "eye", "linspace", "zeros_like", "ones_like", "empty_like")
# Functions that answer about dtypes on the host, and run nothing on a GPU.
HOST_SIDE = ("finfo", "iinfo", "isdtype", "result_type", "can_cast")


@dataclass
class Pool:
    """CuPy's default memory pool: bytes it holds for arrays, bytes cached and free, and its limit (0: none)."""

    used: int = 0
    free: int = 0
    limit: int = 0

    def used_bytes(self) -> int:
        return self.used

    def free_bytes(self) -> int:
        return self.free

    def total_bytes(self) -> int:
        return self.used + self.free

    def get_limit(self) -> int:
        return self.limit


@dataclass
class StandIn:
    """The stand-in's state: the GPUs made current (innermost last), what ran where, what was made."""

    gpus: int = 2
    free_on_gpu: int = 8 * 2**30
    pool: Pool = field(default_factory=Pool)
    current: list[int] = field(default_factory=list)
    calls: list[tuple[str, int]] = field(default_factory=list)
    generators: list = field(default_factory=list)

    def current_gpu(self) -> int:
        return self.current[-1] if self.current else 0

    def backend(self, index: int):
        """The Backend that ``select(f"cuda:{index}")`` gives on CuPy, here over the stand-in."""
        from xpnet.arrays.backend import Backend

        return Backend(sys.modules["cupy"], sys.modules["cupy"].cuda.Device(index), "cupy")


def install(monkeypatch, **settings) -> StandIn:
    """Put a stand-in ``cupy`` module in ``sys.modules`` for the test; return its state."""
    state = StandIn(**settings)

    class Device:
        def __init__(self, index: int | None = None):
            self.id = state.current_gpu() if index is None else index

        def __enter__(self):
            state.current.append(self.id)
            return self

        def __exit__(self, *exc_info):
            state.current.pop()

        def __eq__(self, other):
            return isinstance(other, Device) and other.id == self.id

        def __hash__(self):
            return self.id

        def __repr__(self):
            return f"<CUDA Device {self.id}>"

    class Philox4x3210:
        def __init__(self, seed=None, *, size=-1):
            self.seed, self.size, self.made_on = seed, size, state.current_gpu()
            state.generators.append(self)

    class Generator:
        def __init__(self, bit_generator):
            self.bit_generator = bit_generator
            self._numpy = np.random.default_rng(bit_generator.seed)

        def random(self, size=None, dtype=np.float64):
            state.calls.append(("random", state.current_gpu()))
            return self._numpy.random(size, dtype=dtype)

    def recorded(name: str, function):
        def run_on_current_gpu(*args, **kwargs):
            state.calls.append((name, state.current_gpu()))
            if name in CREATION:
                kwargs.pop("device", None)
            return function(*args, **kwargs)

        return run_on_current_gpu

    cupy = types.ModuleType("cupy")
    cupy.ndarray = type("ndarray", (), {})  # no NumPy array passes for a CuPy one
    cupy.cuda = types.SimpleNamespace(
        Device=Device,
        runtime=types.SimpleNamespace(
            getDeviceCount=lambda: state.gpus, memGetInfo=lambda: (state.free_on_gpu, 80 * 2**30)
        ),
    )
    cupy.random = types.SimpleNamespace(Philox4x3210=Philox4x3210, Generator=Generator)
    cupy.get_default_memory_pool = lambda: state.pool

    def array_function(name: str):
        found = getattr(numpy_namespace, name)
        on_gpu = callable(found) and not isinstance(found, type) and name not in HOST_SIDE
        return recorded(name, found) if on_gpu else found

    cupy.__getattr__ = array_function
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    return state
