"""The ONNX export (``xpnet.export_onnx``): onnxruntime computes what xpnet computes, for every activation,
float32 and float64 models, any batch size, classifiers and regression models; the file passes
``onnx.checker`` and carries its metadata; what it cannot express is refused by name."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from export_models import digits_model, model_with_own_layer
from real_data import real_mnist_folder

import xpnet
from xpnet import datasets
from xpnet.arrays.backend import to_numpy
from xpnet.errors import XpnetError
from xpnet.export import onnx_graph
from xpnet.io.atomic import leftovers
from xpnet.nn.activations import ACTIVATIONS
from xpnet.train import loop

DTYPES = ("float32", "float64")
# onnxruntime against xpnet: the bound for float32 models; a float64 graph must do far better.
TOLERANCE = {"float32": 1e-5, "float64": 1e-8}
DIGITS_TEST_ROWS = 359


@pytest.fixture(scope="module")
def digits():
    return xpnet.load_digits()


@pytest.fixture(scope="module")
def onnx():
    return pytest.importorskip("onnx")


@pytest.fixture(scope="module")
def ort(onnx):
    return pytest.importorskip("onnxruntime")


def run_onnx(ort, path, x) -> dict:
    """Every output of the ONNX file at ``path`` for inputs ``x``, by name."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [given.name for given in session.get_inputs()] == [onnx_graph.INPUT]
    names = [output.name for output in session.get_outputs()]
    return dict(zip(names, session.run(None, {onnx_graph.INPUT: x})))


def rows(x, count: int):
    """``count`` rows of ``x``, tiled when it has fewer."""
    return np.tile(x, (-(-count // len(x)), 1))[:count]


def assert_same_predictions(ort, model: xpnet.Model, path, x) -> float:
    """onnxruntime's logits and probabilities are xpnet's, with the same argmax; the largest probability
    difference is returned."""
    outputs = run_onnx(ort, path, x)
    assert list(outputs) == [onnx_graph.LOGITS, onnx_graph.PROBABILITIES]
    tolerance = TOLERANCE[model.config.dtype]
    probabilities = model.predict_proba(x)
    for name, array in outputs.items():
        assert array.dtype == np.dtype(model.config.dtype) and array.shape == probabilities.shape, name
    np.testing.assert_allclose(outputs[onnx_graph.PROBABILITIES], probabilities, rtol=0, atol=tolerance)
    logits = to_numpy(loop.predict_outputs(model.network, model.backend.asarray(x)))
    np.testing.assert_allclose(outputs[onnx_graph.LOGITS], logits, rtol=tolerance, atol=tolerance)
    np.testing.assert_array_equal(np.argmax(outputs[onnx_graph.PROBABILITIES], axis=1), model.predict(x))
    return float(np.max(np.abs(outputs[onnx_graph.PROBABILITIES] - probabilities)))


@pytest.mark.parametrize("batch", [1, 1000])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_onnxruntime_predicts_what_xpnet_predicts(ort, digits, tmp_path, activation, dtype, batch):
    model = digits_model(activation, dtype)
    path = xpnet.export_onnx(model, tmp_path / "model.onnx")
    _, _, x_test, _ = digits
    assert len(x_test) == DIGITS_TEST_ROWS
    assert_same_predictions(ort, model, path, rows(x_test, batch).astype(dtype))


def test_a_model_trained_on_any_backend_exports_its_weights(ort, digits, backend, tmp_path):
    """Weights on a device or in another library (torch, array-api-strict, CuPy) reach the file as they are."""
    x, y, x_test, _ = digits
    model = xpnet.Model(hidden=[16], activation="tanh", epochs=2, batch_size=64, device=backend)
    model.fit(x, y)
    assert_same_predictions(ort, model, xpnet.export_onnx(model, tmp_path / "model.onnx"), x_test)


def test_the_graph_has_a_node_per_layer_and_a_dynamic_batch(onnx, tmp_path):
    model = digits_model("relu", "float32", dropout=0.25)
    path = xpnet.export_onnx(model, tmp_path / "model.onnx")
    onnx.checker.check_model(str(path), full_check=True)
    graph = onnx.load(str(path)).graph
    # Dropout (layers 2 and 5) does nothing at inference, so it has no node.
    assert [(node.name, node.op_type) for node in graph.node] == [
        ("0.dense", "Gemm"),
        ("1.relu", "Relu"),
        ("3.dense", "Gemm"),
        ("4.relu", "Relu"),
        ("6.dense", "Gemm"),
        ("softmax", "Softmax"),
    ]
    (given,) = graph.input
    dims = given.type.tensor_type.shape.dim
    assert given.name == "x" and given.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert (dims[0].dim_param, dims[1].dim_value) == ("batch", 64)
    assert [output.name for output in graph.output] == ["logits", "probabilities"]
    weights = {tensor.name: onnx.numpy_helper.to_array(tensor) for tensor in graph.initializer}
    np.testing.assert_array_equal(weights["3.weight"], model.network.layers[3].params["weight"])


def test_a_dropout_model_predicts_as_xpnet_does_at_inference(ort, digits, tmp_path):
    model = digits_model("tanh", "float32", dropout=0.25)
    path = xpnet.export_onnx(model, tmp_path / "model.onnx")
    assert_same_predictions(ort, model, path, digits[2])


def test_a_float64_model_gives_a_float64_graph(onnx, tmp_path):
    path = xpnet.export_onnx(digits_model("gelu", "float64"), tmp_path / "model.onnx")
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    assert {value.type.tensor_type.elem_type for value in [*proto.graph.input, *proto.graph.output]} == {
        onnx.TensorProto.DOUBLE
    }
    assert {tensor.data_type for tensor in proto.graph.initializer} == {onnx.TensorProto.DOUBLE}


def test_the_metadata_reads_back(ort, onnx, tmp_path):
    model = digits_model("sigmoid", "float32")
    path = xpnet.export_onnx(model, tmp_path / "model.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    metadata = session.get_modelmeta().custom_metadata_map
    assert metadata["xpnet_version"] == xpnet.__version__
    assert json.loads(metadata["xpnet_settings"]) == model.config.to_dict()
    assert metadata["n_classes"] == "10"
    proto = onnx.load(str(path))
    assert (proto.producer_name, proto.producer_version) == ("xpnet", xpnet.__version__)
    assert [(opset.domain, opset.version) for opset in proto.opset_import] == [("", onnx_graph.OPSET)]


def test_a_regression_model_gives_its_outputs_only(ort, digits, tmp_path):
    x, y, x_test, _ = digits
    targets = np.stack([y / 9.0, x.mean(axis=1)], axis=1).astype(np.float32)
    model = xpnet.Model(hidden=[16], activation="gelu", loss="mse", epochs=3, batch_size=64, device="cpu")
    model.fit(x, targets)
    path = xpnet.export_onnx(model, tmp_path / "regression.onnx")
    outputs = run_onnx(ort, path, x_test)
    assert list(outputs) == ["outputs"]
    np.testing.assert_allclose(outputs["outputs"], model.predict(x_test), rtol=1e-5, atol=1e-6)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert "n_classes" not in session.get_modelmeta().custom_metadata_map


def test_an_mnist_shaped_model_predicts_the_same(ort, tmp_path):
    """784 features and 10 classes, as MNIST has (real MNIST is not at hand offline: synthetic pixels whose
    labels a hidden linear map decides, so the model learns and is never at chance)."""
    generator = np.random.default_rng(0)
    x = generator.random((3000, 784), dtype=np.float32)
    y = np.argmax((x - 0.5) @ generator.standard_normal((784, 10)), axis=1)
    model = xpnet.Model(hidden=[128], epochs=2, batch_size=128, device="cpu")
    model.fit(x[:2000], y[:2000])
    path = xpnet.export_onnx(model, tmp_path / "mnist.onnx")
    assert_same_predictions(ort, model, path, x[2000:])


@pytest.mark.slow
def test_a_real_mnist_model_predicts_the_same(ort, tmp_path):
    x_train, y_train, x_test, _ = datasets.load("mnist", data_dir=real_mnist_folder())
    model = xpnet.Model(hidden=[128], epochs=1, device="cpu")
    model.fit(x_train, y_train)
    path = xpnet.export_onnx(model, tmp_path / "mnist.onnx")
    assert_same_predictions(ort, model, path, x_test)


def test_an_existing_file_is_replaced_whole(onnx, tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"an older export")
    xpnet.export_onnx(digits_model("relu", "float32"), path)
    onnx.checker.check_model(str(path), full_check=True)
    assert leftovers(path) == []


def test_a_layer_of_your_own_is_refused_by_name(onnx, tmp_path, monkeypatch):
    model = model_with_own_layer(monkeypatch)
    path = tmp_path / "model.onnx"
    refusal = r"^layer 1 is a Halve, which the ONNX export cannot express: it writes only Dense, Activation and Dropout"
    with pytest.raises(XpnetError, match=refusal + " layers$"):
        xpnet.export_onnx(model, path)
    assert not path.exists() and leftovers(path) == []


def test_an_untrained_model_is_refused(onnx, tmp_path):
    with pytest.raises(XpnetError, match=r"has not been trained yet"):
        xpnet.export_onnx(xpnet.Model(), tmp_path / "model.onnx")


def test_without_onnx_the_error_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now raises ImportError
    with pytest.raises(
        XpnetError, match=r"^exporting to ONNX needs onnx, which is not installed: pip install 'xpnet\[onnx\]'$"
    ):
        xpnet.export_onnx(digits_model("relu", "float32"), tmp_path / "model.onnx")
    assert not (tmp_path / "model.onnx").exists()


def test_weights_beyond_one_protobuf_message_are_refused(onnx, tmp_path, monkeypatch):
    monkeypatch.setattr(onnx_graph, "MAX_PARAMETER_BYTES", 1000)
    with pytest.raises(XpnetError, match=r"more than one ONNX file holds \(2 GiB, protobuf's limit\)"):
        xpnet.export_onnx(digits_model("relu", "float32"), tmp_path / "model.onnx")
