"""A trained model as an ONNX file, for onnxruntime and the other ONNX runtimes.

The graph has one input ``x`` of shape ``(batch, features)`` with a dynamic batch, and a node per layer:
a Gemm per Dense layer (its weight kept as xpnet lays it out, ``(n_inputs, n_outputs)``), the activation's
operator, nothing for Dropout (it does nothing at inference). GELU is spelled out in elementary operators
in the order xpnet computes it, since ONNX has a tanh-approximated Gelu only from opset 20, which older
runtimes lack. A classifier's outputs are ``logits`` and ``probabilities`` (Softmax); a regression
model's are ``outputs``. The graph keeps the model's dtype: a float64 model gives a float64 graph that
computes what xpnet computes (its input must be float64 too; only LeakyRelu's slope is an attribute, which
ONNX holds in float32, a relative difference of 2e-9 on the negative side). Metadata (``metadata_props``) records
xpnet's version, the training settings as JSON and, for a classifier, the class count.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from xpnet.errors import XpnetError
from xpnet.export.layers import HostLayer, host_layers, optional_module
from xpnet.io.atomic import atomic_write
from xpnet.nn.activations import GELU_CUBIC, GELU_SCALE, LEAKY_RELU_SLOPE
from xpnet.version import __version__

if TYPE_CHECKING:
    from xpnet.train.model import Model

# ONNX 1.12 (2022), run by onnxruntime 1.12 and later; onnxruntime runs opset 13's LeakyRelu in float32
# only, this one's in float64 too.
OPSET = 17
INPUT = "x"
LOGITS = "logits"
PROBABILITIES = "probabilities"
OUTPUTS = "outputs"
VERSION_KEY = "xpnet_version"
SETTINGS_KEY = "xpnet_settings"
CLASSES_KEY = "n_classes"
INSTALL_HINT = "pip install 'xpnet[onnx]'"
# protobuf refuses a message over 2 GiB; a megabyte is left for everything besides the weights.
MAX_PARAMETER_BYTES = 2**31 - 2**20


def export_onnx(model: Model, path) -> Path:
    """Write ``model`` to ``path`` as an ONNX file (opset 17), atomically, once ``onnx.checker`` has passed it.

    Args:
        model: A trained or loaded model.
        path: The file to write.

    Returns:
        ``path``, as a ``Path``.

    Raises:
        XpnetError: onnx is not installed, the model is not trained, it holds a layer type the graph
            cannot express (named), its weights exceed protobuf's 2 GiB, or the file cannot be written.
    """
    onnx = optional_module("onnx", "exporting to ONNX", INSTALL_HINT)
    proto = onnx_model(model.state_dict(), onnx)
    onnx.checker.check_model(proto, full_check=True)
    path = Path(path)
    with atomic_write(path) as handle:
        handle.write(proto.SerializeToString())
    return path


def onnx_model(state: dict, onnx):
    """The ``onnx.ModelProto`` of the model that ``state`` (``Model.state_dict()``) describes."""
    config = state["config"]
    layers = host_layers(state, "ONNX")
    size = sum(array.nbytes for layer in layers for array in layer.parameters.values())
    if size > MAX_PARAMETER_BYTES:
        raise XpnetError(
            f"the model's weights take {size / 2**30:.1f} GiB, more than one ONNX file holds (2 GiB, protobuf's "
            "limit); export a smaller network"
        )
    graph = _Graph(onnx, np.dtype(config["dtype"]))
    classify = config["loss"] == "cross_entropy"
    last = LOGITS if classify else OUTPUTS
    written = [layer for layer in layers if layer.kind != "Dropout"]
    tensor = INPUT
    for layer in written:
        write = _dense if layer.kind == "Dense" else _activation
        tensor = write(graph, layer, tensor, last if layer is written[-1] else None)
    dense = [layer.parameters["weight"] for layer in layers if layer.kind == "Dense"]
    n_inputs, n_outputs = dense[0].shape[0], dense[-1].shape[1]
    outputs = [last]
    metadata = {VERSION_KEY: __version__, SETTINGS_KEY: json.dumps(config, sort_keys=True)}
    if classify:
        outputs.append(graph.node("Softmax", [LOGITS], "softmax", PROBABILITIES, axis=1))
        metadata[CLASSES_KEY] = str(state["n_classes"])
    inputs = [graph.value_info(INPUT, n_inputs)]
    return graph.model(inputs, [graph.value_info(name, n_outputs) for name in outputs], metadata)


def _dense(graph: _Graph, layer: HostLayer, tensor: str, output: str | None) -> str:
    """``x @ weight + bias`` as one Gemm, the parameters as initializers under xpnet's names."""
    weight = graph.initializer(f"{layer.index}.weight", layer.parameters["weight"])
    bias = graph.initializer(f"{layer.index}.bias", layer.parameters["bias"])
    return graph.node("Gemm", [tensor, weight, bias], f"{layer.index}.dense", output)


def _activation(graph: _Graph, layer: HostLayer, tensor: str, output: str | None) -> str:
    activation = layer.settings["name"]
    return ACTIVATIONS[activation](graph, tensor, f"{layer.index}.{activation}", output)


def _gelu(graph: _Graph, z: str, name: str, output: str | None) -> str:
    """``0.5 * z * (1 + tanh(GELU_SCALE * (z + GELU_CUBIC * z * z * z)))``, one operation at a time in
    xpnet's order (``nn.activations.gelu``), so that each rounds as xpnet's does."""
    step = graph.node("Mul", [graph.constant("gelu.cubic", GELU_CUBIC), z], f"{name}/cubic_z")
    step = graph.node("Mul", [step, z], f"{name}/cubic_z2")
    step = graph.node("Mul", [step, z], f"{name}/cubic_z3")
    step = graph.node("Add", [z, step], f"{name}/inner")
    step = graph.node("Mul", [graph.constant("gelu.scale", GELU_SCALE), step], f"{name}/scaled")
    step = graph.node("Tanh", [step], f"{name}/tanh")
    step = graph.node("Add", [graph.constant("one", 1.0), step], f"{name}/one_plus_tanh")
    half_z = graph.node("Mul", [graph.constant("half", 0.5), z], f"{name}/half_z")
    return graph.node("Mul", [half_z, step], name, output)


def _operator(op_type: str, **attributes):
    """An activation that ONNX has as one operator."""
    return lambda graph, z, name, output: graph.node(op_type, [z], name, output, **attributes)


# Every activation in nn.activations.ACTIVATIONS, as ONNX computes it.
ACTIVATIONS = {
    "gelu": _gelu,
    "identity": _operator("Identity"),
    "leaky_relu": _operator("LeakyRelu", alpha=LEAKY_RELU_SLOPE),
    "relu": _operator("Relu"),
    "sigmoid": _operator("Sigmoid"),
    "tanh": _operator("Tanh"),
}


class _Graph:
    """The nodes and initializers of a graph under construction, all of one dtype."""

    def __init__(self, onnx, dtype: np.dtype):
        self.onnx = onnx
        self.dtype = dtype
        self.nodes: list = []
        self.initializers: dict = {}

    def node(self, op_type: str, inputs: list[str], name: str, output: str | None = None, **attributes) -> str:
        """Append a node named ``name`` writing ``output`` (default: ``name``); return the output's name."""
        output = output or name
        self.nodes.append(self.onnx.helper.make_node(op_type, inputs, [output], name=name, **attributes))
        return output

    def initializer(self, name: str, array: np.ndarray) -> str:
        self.initializers[name] = self.onnx.numpy_helper.from_array(np.asarray(array, dtype=self.dtype), name)
        return name

    def constant(self, name: str, value: float) -> str:
        """A scalar of the graph's dtype, made once however many layers use it."""
        return name if name in self.initializers else self.initializer(name, np.asarray(value))

    def value_info(self, name: str, width: int):
        """A ``(batch, width)`` input or output of the graph's dtype, the batch left open."""
        element = self.onnx.helper.np_dtype_to_tensor_dtype(self.dtype)
        return self.onnx.helper.make_tensor_value_info(name, element, ["batch", width])

    def model(self, inputs: list, outputs: list, metadata: dict[str, str]):
        helper = self.onnx.helper
        graph = helper.make_graph(self.nodes, "xpnet", inputs, outputs, list(self.initializers.values()))
        opset = helper.make_opsetid("", OPSET)
        proto = helper.make_model(
            graph,
            opset_imports=[opset],
            ir_version=helper.find_min_ir_version_for([opset]),
            producer_name="xpnet",
            producer_version=__version__,
        )
        helper.set_model_props(proto, metadata)
        return proto
