"""A network's layers as the stages its passes run (``stages``): a Dense layer and the piecewise-linear
activation after it make one stage, so that the compiled passes (``xpnet.nn.passes``) do in one pass
over the layer's outputs what the two layers do in several; every other layer is a stage of its own."""

from __future__ import annotations

from xpnet.nn import passes
from xpnet.nn.layers import Activation, Dense, Layer


class DenseActivation:
    """``dense`` then ``activation`` (one of ``passes.SLOPES``) as one stage. Forward: the product, then
    the bias and the activation in one pass over it. Back: the activation's gradient and the bias
    gradient in one pass over the incoming gradient (written over it, so it must be the network's own),
    then the weight gradient's product. Where the compiled passes do not take the arrays, each layer
    runs its own passes instead. Either way each layer keeps what its own forward keeps and ends with
    the same gradients, to the bit."""

    overwrites_gradient = True

    def __init__(self, dense: Dense, activation: Activation):
        self.dense, self.activation = dense, activation
        self._slope = passes.SLOPES[activation.name]
        self._fused = False

    def forward(self, x, *, training=False, rng=None):
        weight, bias = self.dense.params["weight"], self.dense.params["bias"]
        self._fused = passes.fast(x, weight, bias, size=x.shape[0] * weight.shape[1])
        if not self._fused:
            return self.activation.forward(self.dense.forward(x), training=training, rng=rng)
        outputs = passes.bias_activation(self.dense.product(x), bias, self._slope)
        self.activation.keep(outputs, outputs)  # above zero an output is its input: either tells the slope
        return outputs

    def backward(self, grad_output):
        return self.dense.input_gradient(self._activation_backward(grad_output))

    def parameter_backward(self, grad_output) -> None:
        self._activation_backward(grad_output)

    def _activation_backward(self, grad_output):
        """The gradient at the product, after filling the Dense layer's ``grads``."""
        activated = self.activation.outputs
        if not (self._fused and passes.fast(grad_output, activated)):
            grad = self.activation.backward(grad_output)
            self.dense.parameter_backward(grad)
            return grad
        bias_grad = self.dense.gradient_buffers.get("bias")
        grad, self.dense.grads["bias"] = passes.activation_gradient(grad_output, activated, self._slope, bias_grad)
        self.dense.weight_backward(grad)
        return grad


def stages(layers: list[Layer]) -> list:
    """``layers`` in order, each Dense layer followed by a piecewise-linear ``Activation`` joined with it
    into a ``DenseActivation``."""
    result, index = [], 0
    while index < len(layers):
        layer, following = layers[index], layers[index + 1] if index + 1 < len(layers) else None
        if type(layer) is Dense and type(following) is Activation and following.name in passes.SLOPES:
            result.append(DenseActivation(layer, following))
            index += 2
        else:
            result.append(layer)
            index += 1
    return result
