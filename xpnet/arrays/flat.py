"""Many arrays in one: arrays of given shapes laid end to end in a single 1-D buffer, each a view of
its stretch of it.

A network's parameters, their gradients and each optimizer buffer kept this way make an optimizer
step a handful of operations on one array instead of a handful per parameter: on a GPU that is a
handful of kernel launches for the whole model, on the CPU a handful of calls. It works only where
writing through a view writes the buffer, which the array API leaves to each library
(``gives_writable_views``); elsewhere xpnet keeps one array per parameter.
"""

from __future__ import annotations

import math

import array_api_compat

from xpnet.arrays.backend import array_namespace


def gives_writable_views(array) -> bool:
    """Whether a reshaped slice of a contiguous 1-D array of ``array``'s library is a view that writes
    through to it, for in-place operators and item assignment alike. Checked one by one
    (``tests/arrays/test_flat.py`` proves it for every installed library): NumPy and PyTorch do, and so
    does array-api-strict, which wraps NumPy arrays; CuPy documents that ``reshape`` returns a view
    whenever the memory layout allows, as a contiguous slice's does. For any other library, no."""
    xp = array_namespace(array)
    return (
        array_api_compat.is_numpy_namespace(xp)
        or array_api_compat.is_cupy_namespace(xp)
        or array_api_compat.is_torch_namespace(xp)
        or array_api_compat.is_array_api_strict_namespace(xp)
    )


class Flat:
    """Arrays of ``shapes`` stored one after another in the 1-D array ``buffer``."""

    def __init__(self, buffer, shapes: list[tuple[int, ...]]):
        self.buffer = buffer
        self.shapes = [tuple(shape) for shape in shapes]

    @classmethod
    def of(cls, arrays: list) -> Flat:
        """A new buffer holding copies of ``arrays`` (one namespace, dtype and device)."""
        xp = array_namespace(arrays[0])
        buffer = xp.concat([xp.reshape(array, (-1,)) for array in arrays])
        return cls(buffer, [array.shape for array in arrays])

    def views(self) -> Views:
        """One view of the buffer per array, in order and of its shape."""
        return Views(self)

    def copy(self) -> Flat:
        """An independent copy (one operation, whatever the number of arrays)."""
        return Flat(array_namespace(self.buffer).asarray(self.buffer, copy=True), self.shapes)

    def zeros(self) -> Flat:
        """A buffer of zeros laid out alike."""
        return Flat(array_namespace(self.buffer).zeros_like(self.buffer), self.shapes)


class Views(list):
    """The arrays of a ``Flat``, each a view of its buffer: a list like any other, which also knows the
    buffer (``flat``), so that code given it can work on all the arrays at once."""

    def __init__(self, flat: Flat):
        xp = array_namespace(flat.buffer)
        views, start = [], 0
        for shape in flat.shapes:
            stop = start + math.prod(shape)
            views.append(xp.reshape(flat.buffer[start:stop], shape))
            start = stop
        super().__init__(views)
        self.flat = flat


def packed(arrays: list) -> Views:
    """``arrays`` as views of one flat buffer: themselves if they are, else views of a new buffer holding
    copies of them."""
    return arrays if isinstance(arrays, Views) else Flat.of(arrays).views()


def rebuilt(arrays: list, buffer) -> list:
    """``arrays`` (``Views``) with their values taken from ``buffer``, a new 1-D array laid out alike: the
    same views where ``buffer`` is theirs (it was updated in place), else views of ``buffer``."""
    return arrays if buffer is arrays.flat.buffer else Flat(buffer, arrays.flat.shapes).views()


def copied(arrays: list) -> list:
    """Independent copies of ``arrays``: views of one copy of their buffer when they are a ``Views``
    (one operation), else a copy of each."""
    if isinstance(arrays, Views):
        return arrays.flat.copy().views()
    return [array_namespace(array).asarray(array, copy=True) for array in arrays]
