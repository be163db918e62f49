"""Activation functions and their derivatives, keyed by name.

Each entry is ``(function(z), derivative(z, a))`` where ``a = function(z)``: a derivative may use
whichever of the two is cheaper (sigmoid and tanh use the output, ReLU the input). Adding an
activation is one function pair and one table line. A layer's backward pass multiplies the incoming
gradient by the derivative, unless the activation has a cheaper way to the same product in
``BACKWARD`` (ReLU: a boolean mask, not cast to floats first, one operation less per layer and step).
"""

from __future__ import annotations

import math

from xpnet import validation
from xpnet.arrays import extensions
from xpnet.arrays.backend import array_namespace

# Public: the exporters (xpnet.export) write the same formulas with the same constants.
GELU_SCALE = math.sqrt(2.0 / math.pi)
GELU_CUBIC = 0.044715
LEAKY_RELU_SLOPE = 0.01


def identity(z):
    return z


def identity_derivative(z, a):
    xp = array_namespace(z)
    return xp.ones_like(z)


def relu(z):
    xp = array_namespace(z)
    return xp.maximum(z, 0.0)


def relu_derivative(z, a):
    xp = array_namespace(z)
    return xp.astype(z > 0, z.dtype)


def relu_backward(grad, z, a):
    """``grad * relu_derivative(z, a)``, bit for bit, in two operations: compare, multiply."""
    return extensions.masked(grad, z > 0)


def leaky_relu(z):
    xp = array_namespace(z)
    return xp.where(z > 0, z, LEAKY_RELU_SLOPE * z)


def leaky_relu_derivative(z, a):
    xp = array_namespace(z)
    one = xp.ones_like(z)
    return xp.where(z > 0, one, LEAKY_RELU_SLOPE * one)


def tanh(z):
    xp = array_namespace(z)
    return xp.tanh(z)


def tanh_derivative(z, a):
    return 1.0 - a * a


def sigmoid(z):
    """Logistic function computed from exp(-|z|), so it cannot overflow for any z."""
    xp = array_namespace(z)
    e = xp.exp(-xp.abs(z))
    return xp.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def sigmoid_derivative(z, a):
    return a * (1.0 - a)


def gelu(z):
    """GELU, tanh approximation (as PyTorch's ``approximate='tanh'``): the standard has no erf."""
    xp = array_namespace(z)
    return 0.5 * z * (1.0 + xp.tanh(GELU_SCALE * (z + GELU_CUBIC * z * z * z)))


def gelu_derivative(z, a):
    xp = array_namespace(z)
    t = xp.tanh(GELU_SCALE * (z + GELU_CUBIC * z * z * z))
    inner_derivative = GELU_SCALE * (1.0 + 3.0 * GELU_CUBIC * z * z)
    return 0.5 * (1.0 + t) + 0.5 * z * (1.0 - t * t) * inner_derivative


ACTIVATIONS = {  # in alphabetical order, as the messages list them
    "gelu": (gelu, gelu_derivative),
    "identity": (identity, identity_derivative),
    "leaky_relu": (leaky_relu, leaky_relu_derivative),
    "relu": (relu, relu_derivative),
    "sigmoid": (sigmoid, sigmoid_derivative),
    "tanh": (tanh, tanh_derivative),
}


# Backward passes cheaper than multiplying by the derivative, by activation name.
BACKWARD = {"relu": relu_backward}


def get(name: str):
    """Return ``(function, derivative)`` for an activation name, or a clear error listing the names."""
    return ACTIVATIONS[validation.choice("activation", name, ACTIVATIONS)]


def backward(name: str):
    """``(grad, z, a) -> grad * derivative(z, a)`` for an activation name: its own backward pass where it
    has one, the product otherwise."""
    _, derivative = get(name)
    return BACKWARD.get(name, lambda grad, z, a: grad * derivative(z, a))
