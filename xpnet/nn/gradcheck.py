"""Gradient checking: hand-written backward passes against central finite differences in float64.

Works for any ``Network`` (custom layers included) on any backend. It is how xpnet's own tests
prove its backpropagation, and how a user proves a new layer before training with it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

from array_api_compat import device

from xpnet.arrays.backend import array_namespace
from xpnet.errors import GradientMismatch, XpnetError
from xpnet.nn import losses
from xpnet.nn.network import Network

# Gradients smaller than this are compared by absolute error: finite differences of a float64 loss
# carry about 1e-10 of rounding noise, which would dominate a relative error near zero.
_ABSOLUTE_BELOW = 1e-3


def gradcheck(
    network: Network,
    x,
    y,
    *,
    loss: str = "cross_entropy",
    eps: float = 1e-6,
    tolerance: float = 1e-5,
    max_entries: int = 64,
) -> dict[str, float]:
    """Check ``network``'s backward pass against central finite differences.

    Runs on a float64 copy of ``network`` in evaluation mode (dropout off); at most ``max_entries``
    evenly spaced entries of each parameter are perturbed, so large layers stay cheap to check.

    Args:
        network: The network to check (left unchanged).
        x: A small batch of inputs, on the network's device.
        y: Its labels (or targets, with ``loss="mse"``).
        loss: The loss whose gradient is checked: ``cross_entropy`` or ``mse``.
        eps: The finite-difference step.
        tolerance: The largest relative error accepted.
        max_entries: How many entries of each parameter are perturbed.

    Returns:
        The largest relative error per parameter (by ``"<layer index>.<name>"``) and for ``"input"``.

    Raises:
        GradientMismatch: An error exceeds ``tolerance``; the message names the parameter.
        XpnetError: ``max_entries`` or ``eps`` is not positive, or the library holds no float64 here
            (JAX: set ``JAX_ENABLE_X64=1``).
    """
    if max_entries < 1 or not eps > 0:
        raise XpnetError(f"gradcheck needs max_entries >= 1 and eps > 0, got {max_entries} and {eps}")
    xp = array_namespace(x)
    if xp.float64 not in xp.__array_namespace_info__().dtypes(device=device(x), kind="real floating").values():
        raise XpnetError(
            f"gradcheck compares in float64, which {xp.__name__} does not hold on {device(x)}: "
            "for JAX, set JAX_ENABLE_X64=1 (or jax.config.update('jax_enable_x64', True)) first"
        )
    network = _float64_copy(network)
    x = xp.astype(x, xp.float64)
    if xp.isdtype(y.dtype, "real floating"):
        y = xp.astype(y, xp.float64)
    loss_function = losses.get(loss)

    def loss_value(inputs):
        return float(loss_function(network.forward(inputs), y)[0])

    _, grad_outputs = loss_function(network.forward(x), y)
    grad_input = network.backward(grad_outputs)
    errors = {}
    for index, layer in enumerate(network.layers):
        for name, parameter in layer.params.items():
            errors[f"{index}.{name}"] = _max_relative_error(
                parameter, layer.grads[name], _with_parameter(layer, name, lambda: loss_value(x)), eps, max_entries
            )
    errors["input"] = _max_relative_error(x, grad_input, loss_value, eps, max_entries)
    failed = {name: error for name, error in errors.items() if not error <= tolerance}
    if failed:
        worst = max(failed, key=failed.get)
        raise GradientMismatch(
            f"gradient of {worst} differs from finite differences by {failed[worst]:.2e} (relative), "
            f"above the tolerance {tolerance:.0e}: check that layer's backward pass"
        )
    return errors


def _float64_copy(network: Network) -> Network:
    layers = []
    for layer in network.layers:
        clone = copy.copy(layer)
        clone.params = {name: _as_float64(p) for name, p in layer.params.items()}
        clone.grads, clone.gradient_buffers = {}, {}  # not the original's (float32) gradient buffers
        layers.append(clone)
    return Network(layers)


def _as_float64(array):
    xp = array_namespace(array)
    return xp.astype(array, xp.float64, copy=True)


def _with_parameter(layer, name: str, loss_value) -> Callable:
    """``loss_with(array)``: the loss with ``array`` as the layer's parameter ``name``, which is then put
    back (assigned, never written into: the arrays may be immutable)."""

    def loss_with(array) -> float:
        original = layer.params[name]
        layer.params[name] = array
        try:
            return loss_value()
        finally:
            layer.params[name] = original

    return loss_with


def _max_relative_error(array, analytic, loss_with, eps: float, max_entries: int) -> float:
    """Compare (L(+eps) - L(-eps)) / 2eps with ``analytic`` at evenly spread entries of ``array``, each
    loss taken by ``loss_with`` on a perturbed copy of ``array``."""
    xp = array_namespace(array)
    flat = xp.reshape(array, (-1,))
    flat_size = flat.shape[0]
    positions = xp.arange(flat_size, device=device(array))
    stride = -(-flat_size // max_entries)  # rounded up, so at most max_entries entries are perturbed
    worst = 0.0
    for flat_index in range(0, flat_size, stride):
        index = _unravel(flat_index, array.shape)
        bump = xp.astype(positions == flat_index, array.dtype) * eps
        loss_plus = loss_with(xp.reshape(flat + bump, array.shape))
        loss_minus = loss_with(xp.reshape(flat - bump, array.shape))
        numeric = (loss_plus - loss_minus) / (2 * eps)
        exact = float(analytic[index])
        scale = max(abs(numeric), abs(exact), _ABSOLUTE_BELOW)
        worst = max(worst, abs(numeric - exact) / scale)
    return worst


def _unravel(flat_index: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    index = []
    for size in reversed(shape):
        index.append(flat_index % size)
        flat_index //= size
    return tuple(reversed(index))
