"""Compiled passes over a layer's outputs: fast paths for the element-wise work of a training step.

- Forward, a Dense layer's bias and a piecewise-linear activation (ReLU, leaky ReLU, identity) in one
  pass written over the product, where the reference adds the bias in place and then makes the
  activation's array.
- Backward, the activation's gradient times the incoming one, written over it, and the bias
  gradient's column sums, in one pass, where the reference makes a comparison, a product and a sum.
- The bias gradient of a Dense layer without such an activation (the output layer): its column sums.
- The softmax cross-entropy gradient: the row maximum and the differences in one pass, NumPy's own
  exponential, the row sums, then the division, the targets and the scaling in one pass, where the
  reference makes seven calls.
- The log-sum-exp of each row (the loss summed over an epoch's outputs, or an evaluation batch) and
  each row's highest output (the predicted class): NumPy reduces short rows one call per row, which
  takes an epoch of config S's 60,000 ten-class rows about 5 ms where these take 1.

Each is a Numba kernel (the ``fast`` extra) for C-contiguous NumPy arrays of float32 or float64 that does
the reference's operations in the reference's order, so it gives the reference's bits
(``tests/nn/test_passes.py``); ``fast`` says when it is taken, and the reference runs elsewhere. tanh,
sigmoid and GELU have none: NumPy's vectorized ``exp`` and ``tanh`` are several times faster than the
scalar ones Numba compiles (a ``tanh`` pass over 512x1024 floats: 6.3 ms against NumPy's 0.22).
"""

from __future__ import annotations

import numpy as np
from array_api_compat import is_numpy_namespace

from xpnet.arrays import compiled, extensions
from xpnet.nn.activations import LEAKY_RELU_SLOPE

# The piecewise-linear activations, by the slope they give a negative input: each is ``z`` above zero.
SLOPES = {"relu": 0.0, "leaky_relu": LEAKY_RELU_SLOPE, "identity": 1.0}
# NumPy sums at most this many elements in one block of its pairwise sum (PW_BLOCKSIZE); longer rows it
# splits in two, and row_sums leaves them to NumPy.
PAIRWISE_BLOCK = 128


def may_run(activation: str, xp) -> bool:
    """Whether hidden layers with ``activation`` on namespace ``xp`` may run the compiled passes: one of
    ``SLOPES``, on NumPy, with Numba installed and the fast paths on."""
    return activation in SLOPES and is_numpy_namespace(xp) and compiled.available and compiled.enabled()


def fast(*arrays, size: int | None = None) -> bool:
    """Whether the compiled passes take ``arrays`` (``compiled.takes``: fast paths on, each a C-contiguous
    NumPy array of the first's dtype, float32 or float64) for an output of ``size`` elements (the first
    array's, if not given): Numba wanted for that size (``compiled.wanted``)."""
    return compiled.takes(*arrays) and compiled.wanted(arrays[0].size if size is None else size)


def bias_activation(outputs, bias, slope: float):
    """``activation(outputs + bias)`` written over ``outputs`` (a product, ``(rows, units)``), for the
    activation of ``slope`` in ``SLOPES``; returns ``outputs``."""
    _bias_activation(outputs, bias, outputs.dtype.type(slope))
    return outputs


def activation_gradient(grad, activated, slope: float, bias_grad=None) -> tuple:
    """``grad`` times the derivative of the activation of ``slope`` at the outputs it gave
    (``activated``: above zero an output is its input, so it tells the slope as the input would),
    written over ``grad``, and its column sums, into ``bias_grad`` if given; returns both."""
    if bias_grad is None:
        bias_grad = np.empty(grad.shape[1], dtype=grad.dtype)
    _activation_gradient(grad, activated, grad.dtype.type(slope), bias_grad)
    if grad.shape[1] == 1:  # NumPy sums a lone column pairwise, not row after row
        np.sum(grad, axis=0, out=bias_grad)
    return grad, bias_grad


def bias_gradient(grad, out=None):
    """A Dense layer's bias gradient, the column sums of ``grad``: ``extensions.column_sums``, or where
    ``fast`` takes ``grad`` and it has two columns or more, one compiled pass (a lone column NumPy sums
    pairwise)."""
    if grad.shape[1] < 2 or not fast(grad):
        return extensions.column_sums(grad, out=out)
    if out is None:
        out = np.empty(grad.shape[1], dtype=grad.dtype)
    _column_sums(grad, out)
    return out


def softmax_cross_entropy_gradient(outputs, targets):
    """``(softmax(outputs) - targets) / rows`` as a new array (see ``SoftmaxCrossEntropy.gradient``)."""
    probabilities = np.empty_like(outputs)
    _shifted_rows(outputs, probabilities)
    np.exp(probabilities, out=probabilities)
    _normalized(probabilities, row_sums(probabilities), targets, outputs.dtype.type(outputs.shape[0]))
    return probabilities


def log_sum_exp(logits) -> tuple:
    """``(logits - row maximum, log of each row's sum of exp of that)``, each as a new array, the second
    ``(rows, 1)`` (see ``losses.log_softmax``). Where a row's maximum is both 0 and -0, NumPy's max
    takes the later one in rows shorter than its vector registers (16 float32s, 8 float64s) and one
    its lanes choose in longer rows, which only the sign of a zero difference shows, and neither
    ``exp`` nor the loss (``log_sums - shifted``); this pass takes the later one in every row."""
    shifted = np.empty_like(logits)
    _shifted_rows(logits, shifted)
    return shifted, np.log(row_sums(np.exp(shifted)))


def row_sums(matrix):
    """Each row's sum, ``(rows, 1)``, in NumPy's pairwise order: one compiled pass for rows of up to
    ``PAIRWISE_BLOCK`` elements, NumPy's own reduction for longer ones."""
    if matrix.shape[1] > PAIRWISE_BLOCK:
        return np.add.reduce(matrix, axis=1, keepdims=True)  # np.sum, without its Python wrapper
    sums = np.empty((matrix.shape[0], 1), dtype=matrix.dtype)
    _row_sums(matrix, sums)
    return sums


def row_argmax(outputs):
    """The index of each row's highest value, ``(rows,)``, as ``np.argmax(outputs, axis=1)`` gives it: the
    first of equal values, or the first NaN."""
    indices = np.empty(outputs.shape[0], dtype=np.intp)
    _row_argmax(outputs, indices)
    return indices


@compiled.kernel
def _bias_activation(outputs, bias, slope):
    rows, units = outputs.shape
    for i in range(rows):
        for j in range(units):
            z = outputs[i, j] + bias[j]
            if not z > 0 and z == z:  # NumPy's maximum(z, 0) and where(z > 0, z, slope * z) keep a NaN
                z = z * slope if slope != 0 else slope
            outputs[i, j] = z


@compiled.kernel
def _activation_gradient(grad, activated, slope, bias_grad):
    rows, units = grad.shape
    bias_grad[:] = 0  # NumPy sums a C-contiguous matrix's columns from zero, row after row
    for i in range(rows):
        for j in range(units):
            g = grad[i, j] if activated[i, j] > 0 else grad[i, j] * slope
            grad[i, j] = g
            bias_grad[j] += g


@compiled.kernel
def _column_sums(matrix, sums):
    sums[:] = 0  # NumPy sums a C-contiguous matrix's columns from zero, row after row
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            sums[j] += matrix[i, j]


@compiled.kernel
def _shifted_rows(outputs, shifted):
    rows, columns = outputs.shape
    for i in range(rows):
        largest, unordered = outputs[i, 0], False
        for j in range(columns):  # without a branch on the data, which the processor would mispredict
            value = outputs[i, j]
            largest = value if value >= largest else largest  # of 0 and -0, the later, as NumPy's max
            unordered |= value != value
        if unordered:  # as NumPy's max, the row's first NaN wins
            for j in range(columns):
                if outputs[i, j] != outputs[i, j]:
                    largest = outputs[i, j]
                    break
        for j in range(columns):
            shifted[i, j] = outputs[i, j] - largest


@compiled.kernel
def _row_argmax(outputs, indices):
    for i in range(outputs.shape[0]):
        best, largest = 0, outputs[i, 0]
        if largest == largest:
            for j in range(1, outputs.shape[1]):
                value = outputs[i, j]
                if value != value:  # as NumPy's argmax, the first NaN wins
                    best = j
                    break
                if value > largest:
                    best, largest = j, value
        indices[i] = best


@compiled.kernel
def _row_sums(matrix, sums):
    # NumPy's pairwise_sum of at most PAIRWISE_BLOCK elements: fewer than 8 one after another; else
    # eight running sums over blocks of 8, added in pairs, then the rest one after another. A reduction
    # adds that to its initial +0.0 (so a row of -0.0s sums to 0.0).
    rows, columns = matrix.shape
    blocks_end = columns - columns % 8
    for i in range(rows):
        sums[i, 0] = 0
        zero = sums[i, 0]  # +0.0 of the sums' type
        if columns < 8:
            total = zero
            for j in range(columns):
                total += matrix[i, j]
        else:
            r0, r1, r2, r3 = matrix[i, 0], matrix[i, 1], matrix[i, 2], matrix[i, 3]
            r4, r5, r6, r7 = matrix[i, 4], matrix[i, 5], matrix[i, 6], matrix[i, 7]
            for j in range(8, blocks_end, 8):
                r0, r1 = r0 + matrix[i, j], r1 + matrix[i, j + 1]
                r2, r3 = r2 + matrix[i, j + 2], r3 + matrix[i, j + 3]
                r4, r5 = r4 + matrix[i, j + 4], r5 + matrix[i, j + 5]
                r6, r7 = r6 + matrix[i, j + 6], r7 + matrix[i, j + 7]
            total = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
            for j in range(blocks_end, columns):
                total += matrix[i, j]
        sums[i, 0] = zero + total


@compiled.kernel
def _normalized(exponentials, sums, targets, rows):
    for i in range(exponentials.shape[0]):
        for j in range(exponentials.shape[1]):
            exponentials[i, j] = (exponentials[i, j] / sums[i, 0] - targets[i, j]) / rows
