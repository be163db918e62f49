"""What xpnet needs of an array library, checked once per library and device before it trains, predicts
or loads there, so that a library lacking a piece is refused at once, by name, with what to do: never
an internal traceback deep inside ``fit``, never a run that ends at chance.

Each need is probed on a few numbers: a namespace function can exist and still do the wrong thing. In-place
writes are no need: the training step assigns every new array (``xpnet.optim``), and only the fast paths
write in place, chosen where a library is proven to write through (``flat.gives_writable_views``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import array_api_compat

from xpnet.errors import BackendError

# Libraries that build a graph of deferred operations rather than compute: every step of training would
# extend one graph, run again whenever a loss is read. Their arrays are computed into NumPy instead.
LAZY = {"dask": array_api_compat.is_dask_namespace, "ndonnx": array_api_compat.is_ndonnx_namespace}

# A library's own way out, where it has one better than "pass NumPy arrays".
FIXES = {"sparse": "make the arrays dense first (x.todense()), or pass NumPy arrays"}
DEFAULT_FIX = "pass NumPy arrays (numpy.asarray(x)), or use a library xpnet is tested on: NumPy, CuPy, PyTorch, JAX"


def _argsort(xp, device):
    order = xp.argsort(xp.asarray([0.5, 0.25, 0.75], dtype=xp.float32, device=device))
    return [int(order[i]) for i in range(3)] == [1, 0, 2]


def _integer_indexing(xp, device):
    values = xp.asarray([10.0, 20.0, 30.0], dtype=xp.float32, device=device)
    picked = values[xp.asarray([2, 0], device=device)]
    return float(picked[0]) == 30.0 and float(picked[1]) == 10.0


def _take(xp, device):
    rows = xp.reshape(xp.arange(6, dtype=xp.float32, device=device), (3, 2))
    taken = xp.take(rows, xp.asarray([2, 0], device=device), axis=0)
    return float(taken[0, 1]) == 5.0 and float(taken[1, 0]) == 0.0


def _matmul_and_reductions(xp, device):
    a = xp.reshape(xp.arange(6, dtype=xp.float32, device=device), (2, 3))
    product = a @ xp.ones((3, 1), dtype=xp.float32, device=device)
    shifted = a - xp.max(a, axis=1, keepdims=True)
    return (
        float(xp.sum(product)) == 15.0
        and int(xp.argmax(a[0, :])) == 2
        and int(xp.count_nonzero(shifted == 0.0)) == 2
        and float(xp.log(xp.sum(xp.exp(shifted[0, :])))) > 0.0
    )


# What training needs: (the piece, what xpnet does with it, its probe).
NEEDS: tuple[tuple[str, str, Callable], ...] = (
    ("argsort", "to shuffle each epoch", _argsort),
    ("integer-array indexing", "to put labels in each epoch's order", _integer_indexing),
    ("take", "to gather each batch's rows", _take),
    (
        "matmul, sum, max, exp, log, argmax and count_nonzero",
        "for the forward and backward passes",
        _matmul_and_reductions,
    ),
)


def check(xp, device) -> None:
    """Refuse the library of namespace ``xp`` on ``device`` with one ``BackendError`` line naming it, the
    first piece it lacks and what to do, unless it has everything xpnet needs (checked once)."""
    failure = _failure(xp, device)
    if failure is not None:
        raise BackendError(failure)


@functools.cache
def _failure(xp, device) -> str | None:
    """Why the library of ``xp`` cannot train on ``device``, or None where it can."""
    library = library_name(xp)
    if is_lazy(xp):
        return (
            f"{library} arrays are lazy: training takes thousands of steps and reads each epoch's loss, which "
            f"would build and recompute one growing graph. Pass {library} arrays with device='auto' or 'cpu' and "
            "they are computed into NumPy once; or compute them yourself (numpy.asarray(x))"
        )
    for piece, purpose, probe in NEEDS:
        try:
            works = probe(xp, device)
        except Exception:  # a missing function, a refused index type, anything: the library lacks the piece
            works = False
        if not works:
            fix = FIXES.get(library, DEFAULT_FIX)
            return f"{library} cannot train with xpnet: it lacks {piece}, which xpnet needs {purpose}; {fix}"
    return None


def is_lazy(xp) -> bool:
    """Whether ``xp`` is a library of deferred arrays (``LAZY``)."""
    return any(test(xp) for test in LAZY.values())


def library_name(xp) -> str:
    """The library a namespace belongs to, as users import it ("jax", "sparse", "dask"...)."""
    return xp.__name__.removeprefix("array_api_compat.").split(".")[0]
