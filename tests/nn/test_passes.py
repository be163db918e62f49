"""The compiled passes (``xpnet.nn.passes``) against the array-API reference they replace, and the
stages (``xpnet.nn.fused``) that run them inside a network.

A pass does the reference's operations in the reference's order, so its results must be the
reference's to the last bit, signed zeros and NaNs included, not merely close.
"""

import itertools

import numpy as np
import pytest

import xpnet
from xpnet.arrays import compiled
from xpnet.nn import activations, fused, losses, passes
from xpnet.nn.layers import Activation, Dense, Dropout
from xpnet.nn.network import Network

pytest.importorskip("numba")

# Rows and units: one row, a lone unit (which NumPy sums pairwise), fewer than a SIMD register, odd
# sizes, and more than one.
SHAPES = [(1, 1), (1, 17), (2, 2), (7, 3), (128, 1), (128, 128), (300, 17), (33, 1000)]
DTYPES = [np.float32, np.float64]


@pytest.fixture(autouse=True)
def compiled_for_any_size(monkeypatch):
    """Numba as if a large array had loaded it already, so that the small arrays here take the passes."""
    monkeypatch.setattr(compiled, "_loaded", True)


def _same_bits(actual, expected) -> None:
    assert actual.dtype == expected.dtype and actual.shape == expected.shape
    np.testing.assert_array_equal(actual, expected)  # NaN where NaN
    np.testing.assert_array_equal(np.signbit(actual), np.signbit(expected))


def _awkward(rng, shape, dtype):
    """Normal draws with exact zeros of both signs, and NaNs (each must come out as the reference's)."""
    array = rng.standard_normal(shape).astype(dtype)
    array.flat[::7] = -0.0
    array.flat[2::9] = 0.0
    array.flat[3::11] = np.nan
    return array


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", passes.SLOPES)
def test_bias_and_activation_and_their_gradients_equal_the_layers_bit_for_bit(name, shape, dtype):
    rng = np.random.default_rng(sum(shape))
    product, bias, grad = _awkward(rng, shape, dtype), _awkward(rng, shape[1:], dtype), _awkward(rng, shape, dtype)
    function, _ = activations.get(name)
    inputs = product + bias
    expected_outputs = function(inputs)
    expected_grad = activations.backward(name)(grad, inputs, expected_outputs)

    outputs = passes.bias_activation(product.copy(), bias, passes.SLOPES[name])
    passed_grad, bias_grad = passes.activation_gradient(grad.copy(), outputs, passes.SLOPES[name])

    _same_bits(outputs, expected_outputs)
    _same_bits(passed_grad, expected_grad)
    _same_bits(bias_grad, np.sum(expected_grad, axis=0))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_the_bias_gradient_equals_numpys_column_sums_bit_for_bit(shape, dtype):
    grad = _awkward(np.random.default_rng(sum(shape)), shape, dtype)
    given = np.full(shape[1], 7, dtype=dtype)
    assert passes.bias_gradient(grad, out=given) is given
    _same_bits(given, np.sum(grad, axis=0))
    _same_bits(passes.bias_gradient(grad), np.sum(grad, axis=0))


def test_the_passes_write_over_their_inputs_and_into_a_given_bias_gradient():
    rng = np.random.default_rng(0)
    product, bias, grad = (rng.standard_normal(shape).astype(np.float32) for shape in [(5, 4), (4,), (5, 4)])
    bias_grad = np.full(4, 7.0, dtype=np.float32)
    assert passes.bias_activation(product, bias, 0.0) is product
    passed, summed = passes.activation_gradient(grad, product, 0.0, bias_grad)
    assert passed is grad and summed is bias_grad
    np.testing.assert_array_equal(bias_grad, np.sum(grad, axis=0))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rows", [1, 2, 7, 128, 513])
@pytest.mark.parametrize("classes", [1, 2, 10, 37])
def test_softmax_cross_entropy_gradient_equals_the_reference_bit_for_bit(rows, classes, dtype):
    rng = np.random.default_rng(rows * classes)
    outputs = (30 * _awkward(rng, (rows, classes), dtype)).astype(dtype)
    outputs[rows // 2, :] = 1e4  # a row of equal, large logits: exp of the differences must not overflow
    targets = losses.one_hot(rng.integers(0, classes, rows), classes, dtype)
    with compiled.disabled():
        expected = losses.SoftmaxCrossEntropy().gradient(outputs, targets)
    _same_bits(passes.softmax_cross_entropy_gradient(outputs, targets), expected)


@pytest.mark.parametrize("dtype", DTYPES)
def test_row_sums_follow_numpys_pairwise_order_bit_for_bit(dtype):
    # Every row length up to and past NumPy's block, on values spread over many magnitudes (so that a
    # different order of additions would show), with zeros of both signs, a row of negative zeros only,
    # and NaNs.
    rng = np.random.default_rng(5)
    for columns in range(1, passes.PAIRWISE_BLOCK + 20):
        matrix = _awkward(rng, (9, columns), dtype) * np.exp(8 * rng.standard_normal((9, columns))).astype(dtype)
        matrix[4, :] = -0.0
        _same_bits(passes.row_sums(matrix), np.sum(matrix, axis=1, keepdims=True))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1), (3, 2), (128, 10), (513, 37), (40, 130)])
def test_log_sum_exp_and_the_predicted_classes_equal_the_reference_bit_for_bit(shape, dtype):
    rng = np.random.default_rng(shape[0])
    logits = (30 * _awkward(rng, shape, dtype)).astype(dtype)
    logits[shape[0] // 2, :] = 1e4  # equal logits: the first one is the class
    logits[-1, -1] = np.inf  # inf - inf: NaN, as the reference gives
    with compiled.disabled(), np.errstate(invalid="ignore"):
        expected = losses.log_softmax(logits), losses.predicted_classes(logits)
    assert losses.predicted_classes(logits).dtype == expected[1].dtype
    _same_bits(losses.log_softmax(logits), expected[0])
    np.testing.assert_array_equal(losses.predicted_classes(logits), expected[1])
    shifted, log_sums = passes.log_sum_exp(logits)
    _same_bits(shifted - log_sums, expected[0])


def test_the_compiled_row_passes_choose_among_equal_values_and_nans_as_numpy_does():
    # argmax: the first of equal values, or the first NaN; max: the later of 0 and -0, or a NaN.
    logits = np.array(
        [[-0.0, 0.0, -1.0], [0.0, -0.0, -1.0], [1.0, np.nan, 2.0], [np.nan, 3.0, np.nan], [2.0, 5.0, 5.0]],
        dtype=np.float32,
    )
    np.testing.assert_array_equal(passes.row_argmax(logits), [0, 0, 1, 0, 1])
    np.testing.assert_array_equal(passes.row_argmax(logits), np.argmax(logits, axis=1))
    with np.errstate(invalid="ignore"):
        shifted, _ = passes.log_sum_exp(logits)
        _same_bits(shifted, logits - np.max(logits, axis=1, keepdims=True))
    # In a short row the maximum of -0 and 0 is the later one: -0 - 0 is -0, 0 - 0, 0 - -0 and -0 - -0 are 0.
    np.testing.assert_array_equal(np.signbit(shifted[:2, :2]), [[True, False], [False, False]])
    assert np.isnan(shifted[2:4]).all()


def test_the_passes_take_only_c_contiguous_numpy_floats_of_one_dtype(monkeypatch):
    matrix = np.ones((4, 3), dtype=np.float32)
    assert passes.fast(matrix, np.ones(3, dtype=np.float32))
    assert not passes.fast(matrix, np.ones(3, dtype=np.float64))  # mixed dtypes
    assert not passes.fast(np.asfortranarray(np.ones((4, 3), dtype=np.float32)))
    assert not passes.fast(matrix.astype(np.int32))
    assert not passes.fast(matrix.astype(np.float16)) and not passes.fast(matrix.astype(np.longdouble))
    torch = pytest.importorskip("torch")
    assert not passes.fast(torch.ones((4, 3)))
    with compiled.disabled():
        assert not passes.fast(matrix)
    monkeypatch.setattr(compiled, "_loaded", False)  # before Numba is loaded, only a large output takes them
    assert not passes.fast(matrix)
    assert passes.fast(matrix, size=compiled.MIN_SIZE)


@pytest.mark.parametrize("dtype", [np.float16, np.longdouble])
def test_floats_numba_cannot_compute_in_keep_numpys_passes(dtype):
    # Numba has no float16 or long double arithmetic: such logits, from a user's own code, go to NumPy.
    logits = np.random.default_rng(0).standard_normal((6, 4)).astype(dtype)
    targets = losses.one_hot(np.arange(6) % 4, 4, dtype)
    with compiled.disabled():
        expected = losses.log_softmax(logits), losses.SoftmaxCrossEntropy().gradient(logits, targets)
    _same_bits(losses.log_softmax(logits), expected[0])
    _same_bits(losses.SoftmaxCrossEntropy().gradient(logits, targets), expected[1])
    np.testing.assert_array_equal(losses.predicted_classes(logits), np.argmax(logits, axis=1))


def test_stages_join_each_dense_layer_with_a_piecewise_linear_activation_after_it():
    rng = np.random.default_rng(0)
    dense = [Dense(rng.standard_normal((3, 3)), np.zeros(3)) for _ in range(4)]
    relu, tanh, leaky = Activation("relu"), Activation("tanh"), Activation("leaky_relu")
    dropout = Dropout(0.5)
    layers = [dense[0], relu, dropout, dense[1], tanh, dense[2], leaky, dense[3]]
    stages = fused.stages(layers)
    assert [type(stage) for stage in stages] == [
        fused.DenseActivation,
        Dropout,
        Dense,
        Activation,
        fused.DenseActivation,
        Dense,
    ]
    assert (stages[0].dense, stages[0].activation, stages[4].dense, stages[4].activation) == (
        dense[0],
        relu,
        dense[2],
        leaky,
    )


def _network(activation, rng, *, ends_with="dense", dtype=np.float32):
    """6 -> 9 -> 8 -> 5 with ``activation`` after each hidden layer, ending with the last Dense layer, or
    with an activation after it (and then a dropout that passes the gradient through untouched)."""
    sizes = [6, 9, 8, 5]
    layers = []
    for index, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        layers.append(Dense(rng.standard_normal((n_in, n_out)).astype(dtype), rng.standard_normal(n_out).astype(dtype)))
        if index < len(sizes) - 2 or ends_with != "dense":
            layers.append(Activation(activation))
    if ends_with == "activation, dropout":
        layers.append(Dropout(0.0))
    return Network(layers)


@pytest.mark.parametrize("ends_with", ["dense", "activation", "activation, dropout"])
@pytest.mark.parametrize("activation", sorted(activations.ACTIVATIONS))
def test_a_network_passes_forward_and_back_as_its_layers_do_and_keeps_the_callers_gradient(activation, ends_with):
    def run():
        rng = np.random.default_rng(1)
        network = _network(activation, rng, ends_with=ends_with)
        x, grad = rng.standard_normal((11, 6)).astype(np.float32), rng.standard_normal((11, 5)).astype(np.float32)
        given = grad.copy()
        outputs = network.forward(x, training=True)
        input_grad = network.backward(given)
        np.testing.assert_array_equal(given, grad)  # the caller's array is left as it was
        return outputs, input_grad, network.gradients()

    fast = run()
    with compiled.disabled():
        reference = run()
    _same_bits(fast[0], reference[0])
    _same_bits(fast[1], reference[1])
    for fast_grad, reference_grad in zip(fast[2], reference[2], strict=True):
        _same_bits(fast_grad, reference_grad)


def test_an_activation_after_a_fused_pass_keeps_what_its_own_backward_needs():
    rng = np.random.default_rng(2)
    network = _network("leaky_relu", rng)
    x, grad = rng.standard_normal((4, 6)).astype(np.float32), rng.standard_normal((4, 9)).astype(np.float32)
    network.forward(x)
    activation = network.layers[1]
    with compiled.disabled():
        inputs = network.layers[0].forward(x)
        expected = activation.backward(grad)  # from the layer's own forward
        activation.forward(inputs)
    network.forward(x)  # through the compiled pass
    np.testing.assert_array_equal(activation.backward(grad), expected)


def test_stages_are_made_again_when_the_layers_change():
    rng = np.random.default_rng(3)
    network = _network("relu", rng)
    x = rng.standard_normal((4, 6)).astype(np.float32)
    network.forward(x)
    network.layers[1] = Activation("identity")
    with compiled.disabled():
        expected = Network(list(network.layers)).forward(x)
    np.testing.assert_array_equal(network.forward(x), expected)


def _counting(monkeypatch, calls):
    for name in ("bias_activation", "activation_gradient", "softmax_cross_entropy_gradient", "_column_sums"):
        function = getattr(passes, name)

        def counted(*args, _function=function, _name=name):
            calls.append(_name)
            return _function(*args)

        monkeypatch.setattr(passes, name, counted)


@pytest.mark.parametrize(
    "settings",
    [
        {"activation": "relu", "optimizer": "momentum", "lr": 0.05},
        {"activation": "leaky_relu", "optimizer": "adam", "lr": 0.003, "dropout": 0.2, "dtype": "float64"},
        {"activation": "identity", "optimizer": "sgd", "lr": 0.1, "alpha": 0.01},
    ],
    ids=["relu", "leaky-dropout-float64", "identity-l2"],
)
def test_three_epochs_through_the_passes_end_with_the_references_weights(settings, monkeypatch):
    x, y, _, _ = xpnet.load_digits()

    def fit():
        model = xpnet.Model(hidden=[32, 16], epochs=3, batch_size=64, seed=5, device="cpu", **settings)
        model.fit(x, y)
        return model

    calls = []
    _counting(monkeypatch, calls)
    fast = fit()
    assert {"bias_activation", "activation_gradient", "softmax_cross_entropy_gradient", "_column_sums"} <= set(calls)
    calls.clear()
    with compiled.disabled():
        reference = fit()
    assert not calls
    for fast_parameter, reference_parameter in zip(fast.network.parameters(), reference.network.parameters()):
        _same_bits(fast_parameter, reference_parameter)
    assert fast.history[-1]["train_loss"] == reference.history[-1]["train_loss"]
