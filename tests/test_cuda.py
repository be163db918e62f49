"""xpnet on a CUDA GPU through CuPy: end to end from the command line, no host copies and no waiting
for the device inside an epoch, the same numbers as NumPy and as PyTorch on CUDA, model files that
move between GPU and CPU, and TF32 only on request.

Every test here needs CuPy and a GPU it can see; elsewhere they skip (run them with ``-m cuda``).
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import CallLog, small_epoch_setup
from device_waits import returns_before_the_device

from xpnet import optim
from xpnet.arrays import streams
from xpnet.arrays.backend import Backend, BackendError, cuda_available, numpy_backend, select, to_numpy
from xpnet.arrays.precision import tf32_matmuls
from xpnet.cli import main
from xpnet.datasets import load_digits
from xpnet.nn import losses
from xpnet.nn.layers import Activation, Dense
from xpnet.nn.network import Network
from xpnet.train import loop
from xpnet.train.callbacks import Callback
from xpnet.train.model import Model, load

pytestmark = pytest.mark.cuda

# A run is "many steps": 4 epochs of the digits in batches of 32 is 180 optimizer steps.
PARITY_EPOCHS = 4
PARITY_BATCH = 32
# float32 sums in a different order (cuBLAS against OpenBLAS, CUDA reductions against NumPy's) differ by
# about 1e-7 relative per operation; after 180 steps the weights (of size about 0.1) still agree to 1e-4.
PARITY_TOLERANCE = {"rtol": 1e-3, "atol": 1e-4}
PARITY_OPTIMIZERS = {"momentum": 0.05, "adam": 1e-3}
# Host-side ways of reading a CuPy array: each copies from the device and waits for it.
HOST_READS = ("get", "item", "tolist", "__float__", "__int__", "__bool__", "__index__", "__array__", "__complex__")


@pytest.fixture(scope="module")
def cupy():
    cupy = pytest.importorskip("cupy")
    if not cuda_available():
        pytest.skip("CuPy is installed but sees no CUDA GPU")
    return cupy


@pytest.fixture(scope="module")
def gpu(cupy) -> Backend:
    return select("cuda")


@pytest.fixture(scope="module")
def digits():
    return load_digits()


# -- end to end ----------------------------------------------------------------------------------


def test_the_command_trains_on_the_gpu(cupy, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # where a run folder would go
    assert main(["--device", "cuda", "--epochs", "2"]) == 0
    assert "cupy" in capsys.readouterr().out


def test_training_data_and_weights_live_on_the_chosen_gpu(cupy, digits):
    last = cupy.cuda.runtime.getDeviceCount() - 1
    x_train, y_train, x_test, y_test = digits
    model = Model(hidden=[64], epochs=5, lr=3e-3, device=f"cuda:{last}")
    model.fit(x_train, y_train, validation_data=(x_test, y_test))
    # Biases and optimizer buffers are made by zeros(), which CuPy puts on the current GPU whatever
    # device= says: Model.fit makes cuda:N current (on a machine with one GPU, N is 0 and this cannot fail).
    buffers = [array for arrays in model.optimizer.state.values() for array in arrays]
    assert buffers
    for array in [*model.network.parameters(), *buffers]:
        assert isinstance(array, cupy.ndarray)
        assert array.device.id == last
        assert array.dtype == cupy.float32
    assert model.history[-1]["val_accuracy"] > 0.9  # about 0.96 on the CPU
    assert cupy.cuda.Device().id == 0  # the current GPU is restored after fit


def test_a_backend_makes_its_gpu_current_for_a_block(cupy):
    last = cupy.cuda.runtime.getDeviceCount() - 1
    with select(f"cuda:{last}").active():
        assert cupy.cuda.Device().id == last
        assert cupy.zeros(3).device.id == last
    assert cupy.cuda.Device().id == 0


def test_a_gpu_index_beyond_the_visible_ones_is_refused(cupy):
    count = cupy.cuda.runtime.getDeviceCount()
    with pytest.raises(BackendError, match=f"only {count} GPU"):
        select(f"cuda:{count}")


def test_shuffles_and_dropout_masks_are_drawn_on_the_gpu(cupy, gpu):
    stream = streams.RandomStream(gpu, 0, streams.SHUFFLE, 3)
    order = stream.permutation(1000)
    assert isinstance(order, cupy.ndarray)
    assert sorted(to_numpy(order).tolist()) == list(range(1000))
    uniform = streams.RandomStream(gpu, 0, streams.DROPOUT, 3).uniform((500, 40), cupy.float32)
    assert uniform.dtype == cupy.float32
    assert float(uniform.min()) >= 0.0 and float(uniform.max()) < 1.0
    again = streams.RandomStream(gpu, 0, streams.DROPOUT, 3).uniform((500, 40), cupy.float32)
    assert bool((uniform == again).all()), "a stream is reproducible from its seed and key"


# -- no host copies and no synchronisation inside an epoch -----------------------------------------


def test_an_epoch_reads_nothing_back_from_the_gpu(cupy, gpu, digits, monkeypatch):
    """The Python-level reads of CuPy arrays. Calls CuPy makes inside its compiled code (its CUDA runtime
    calls, a stream's synchronize) are invisible to a patch from Python: the next test catches those."""
    run_epoch = small_epoch_setup(gpu, digits)
    log = CallLog(monkeypatch)
    for name in HOST_READS:
        if hasattr(cupy.ndarray, name):
            log.watch(cupy.ndarray, name, f"ndarray.{name}")
    log.watch(cupy, "asnumpy")

    mean_loss, correct = run_epoch()
    assert log.calls == []
    monkeypatch.undo()
    assert np.isfinite(float(mean_loss)) and 0 <= int(correct) <= 256


# A kernel that holds its stream until the host writes 1 into pinned host memory (which a GPU with unified
# addressing reads at the host's own address), or until max_cycles of the GPU's clock have passed.
HOLD_SOURCE = r"""
extern "C" __global__ void hold(unsigned long long opened_address, long long max_cycles) {
    const volatile int* opened = (const volatile int*) opened_address;
    long long start = clock64();
    while (*opened == 0 && clock64() - start < max_cycles) { }
}
"""


class StreamGate:
    """``device_waits.Gate`` for the current CUDA stream of ``device``."""

    def __init__(self, cupy, device):
        self.cupy = cupy
        self.kernel = cupy.RawKernel(HOLD_SOURCE, "hold")
        self.memory = cupy.cuda.alloc_pinned_memory(4)
        self.opened = np.frombuffer(self.memory, dtype=np.int32, count=1)
        runtime = cupy.cuda.runtime
        self.cycles_per_second = 1000 * runtime.deviceGetAttribute(runtime.cudaDevAttrClockRate, device.id)  # kHz
        self.held = None

    def close(self, hold_seconds: float) -> None:
        self.opened[0] = 0
        self.kernel((1,), (1,), (np.uint64(self.memory.ptr), np.int64(hold_seconds * self.cycles_per_second)))
        self.held = self.cupy.cuda.Event()
        self.held.record()

    def is_closed(self) -> bool:
        return not self.held.done

    def open(self) -> None:
        self.opened[0] = 1
        self.cupy.cuda.get_current_stream().synchronize()


def test_an_epoch_never_waits_for_the_gpu(cupy, gpu, digits):
    """An epoch queued behind a held stream returns while the stream is still held: nothing in it, in
    xpnet or inside CuPy, copied to the host or synchronised (it would have waited for the hold)."""
    run_epoch = small_epoch_setup(gpu, digits)
    with gpu.device:
        gate = StreamGate(cupy, gpu.device)
        cupy.cuda.get_current_stream().synchronize()
        returned_first, (mean_loss, _) = returns_before_the_device(gate, run_epoch)
    assert returned_first, "train_epoch waited for the GPU: something in the batch loop copied or synchronised"
    assert np.isfinite(float(mean_loss))


# -- parity with NumPy and with PyTorch on CUDA ------------------------------------------------------


def initial_parameters(n_inputs: int, n_hidden: int, n_outputs: int) -> list[np.ndarray]:
    """He-initialised weights and zero biases of an n_inputs-n_hidden-n_outputs ReLU network, on the host."""
    rng = streams.RandomStream(numpy_backend(), 7, streams.INIT)
    network = Network.mlp([n_inputs, n_hidden, n_outputs], rng, activation="relu", init="he_normal")
    return [np.asarray(p) for p in network.parameters()]


def shuffles(n_samples: int, epochs: int) -> list[np.ndarray]:
    rng = np.random.default_rng(11)
    return [rng.permutation(n_samples) for _ in range(epochs)]


def train_with_xpnet(backend: Backend, parameters, x, y, orders, optimizer: str, lr: float) -> list[np.ndarray]:
    """Train a copy of ``parameters`` with xpnet's own loop on ``backend``; return the weights on the host."""
    w1, b1, w2, b2 = (backend.asarray(p.copy()) for p in parameters)  # the optimizer updates them in place
    network = Network([Dense(w1, b1), Activation("relu"), Dense(w2, b2)])
    update = optim.make(optimizer)
    x_device = backend.asarray(x, dtype=backend.xp.float32)
    y_device = backend.asarray(y, dtype=backend.xp.int64)
    for order in orders:
        loop.train_epoch(
            network,
            update,
            losses.get("cross_entropy"),
            x_device,
            y_device,
            lr=lr,
            batch_size=PARITY_BATCH,
            order=backend.asarray(order),
            dropout_rng=streams.RandomStream(backend, 0, streams.DROPOUT),
            classify=True,
        )
    return [to_numpy(p) for p in network.parameters()]


def train_with_torch(device: str, parameters, x, y, orders, optimizer: str, lr: float) -> list[np.ndarray]:
    """The same run written independently in PyTorch (nn.Sequential, torch.optim, autograd)."""
    import torch

    w1, b1, w2, b2 = parameters
    net = torch.nn.Sequential(torch.nn.Linear(*w1.shape), torch.nn.ReLU(), torch.nn.Linear(*w2.shape)).to(device)
    with torch.no_grad():
        for layer, weight, bias in ((net[0], w1, b1), (net[2], w2, b2)):
            layer.weight.copy_(torch.from_numpy(weight.T.copy()))
            layer.bias.copy_(torch.from_numpy(bias))
    if optimizer == "momentum":
        update = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9)
    else:
        update = torch.optim.Adam(net.parameters(), lr=lr)
    x_device = torch.from_numpy(x).to(device)
    y_device = torch.from_numpy(y).to(device)
    for order in orders:
        order = torch.from_numpy(order).to(device)
        for start, stop in loop.batch_bounds(len(x), PARITY_BATCH):
            batch = order[start:stop]
            loss = torch.nn.functional.cross_entropy(net(x_device[batch]), y_device[batch])
            update.zero_grad()
            loss.backward()
            update.step()
    return [
        net[0].weight.detach().T.cpu().numpy(),
        net[0].bias.detach().cpu().numpy(),
        net[2].weight.detach().T.cpu().numpy(),
        net[2].bias.detach().cpu().numpy(),
    ]


def assert_same_weights(actual: list[np.ndarray], expected: list[np.ndarray]) -> None:
    for got, want in zip(actual, expected):
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want, **PARITY_TOLERANCE)


def parity_run(digits):
    x_train, y_train, _, _ = digits
    return initial_parameters(x_train.shape[1], 32, 10), x_train, y_train, shuffles(len(x_train), PARITY_EPOCHS)


@pytest.mark.parametrize("optimizer", sorted(PARITY_OPTIMIZERS))
def test_cupy_training_matches_numpy_step_for_step(gpu, digits, optimizer):
    parameters, x, y, orders = parity_run(digits)
    lr = PARITY_OPTIMIZERS[optimizer]
    on_gpu = train_with_xpnet(gpu, parameters, x, y, orders, optimizer, lr)
    on_cpu = train_with_xpnet(numpy_backend(), parameters, x, y, orders, optimizer, lr)
    assert_same_weights(on_gpu, on_cpu)
    assert not all(np.array_equal(a, b) for a, b in zip(on_gpu, parameters)), "training must have moved the weights"


@pytest.mark.parametrize("optimizer", sorted(PARITY_OPTIMIZERS))
def test_cupy_training_matches_pytorch_on_cuda(gpu, digits, optimizer):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("this PyTorch has no CUDA")
    torch.backends.cuda.matmul.allow_tf32 = False
    parameters, x, y, orders = parity_run(digits)
    lr = PARITY_OPTIMIZERS[optimizer]
    xpnet_weights = train_with_xpnet(gpu, parameters, x, y, orders, optimizer, lr)
    torch_weights = train_with_torch("cuda", parameters, x, y, orders, optimizer, lr)
    assert_same_weights(xpnet_weights, torch_weights)


def test_xpnet_trains_on_pytorch_cuda_tensors_where_they_are(digits):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("this PyTorch has no CUDA")
    x_train, y_train, x_test, y_test = digits
    model = Model(hidden=[64], epochs=5, lr=3e-3)
    model.fit(torch.asarray(x_train, device="cuda"), torch.asarray(y_train, device="cuda"))
    assert model.backend.name == "torch" and model.backend.device.type == "cuda"
    assert model.evaluate(torch.asarray(x_test, device="cuda"), torch.asarray(y_test, device="cuda"))["accuracy"] > 0.9


# -- model files between GPU and CPU ------------------------------------------------------------------


def test_a_model_trained_on_the_gpu_predicts_the_same_on_the_cpu_and_back(cupy, digits, tmp_path):
    x_train, y_train, x_test, y_test = digits
    model = Model(hidden=[32], epochs=3, device="cuda")
    model.fit(x_train, y_train)
    expected = model.predict_proba(x_test)
    model.save(tmp_path / "gpu.npz")

    on_cpu = load(tmp_path / "gpu.npz", device="cpu")
    assert isinstance(on_cpu.network.parameters()[0], np.ndarray)
    np.testing.assert_allclose(on_cpu.predict_proba(x_test), expected, rtol=1e-4, atol=1e-6)
    one_sample = 1 / len(y_test)  # a near tie may tip either way between float32 on two devices
    assert on_cpu.evaluate(x_test, y_test)["accuracy"] == pytest.approx(
        model.evaluate(x_test, y_test)["accuracy"], abs=one_sample
    )

    on_cpu.fit(x_train, y_train, epochs=1)  # training continues on the CPU with the GPU's optimizer state
    on_cpu.save(tmp_path / "cpu.npz")
    back = load(tmp_path / "cpu.npz", device="cuda")
    assert isinstance(back.network.parameters()[0], cupy.ndarray)
    np.testing.assert_allclose(back.predict_proba(x_test), on_cpu.predict_proba(x_test), rtol=1e-4, atol=1e-6)
    assert back.epochs_done == 4


# -- TF32 only on request -------------------------------------------------------------------------------


class RecordComputeType(Callback):
    """Notes CuPy's float32 matmul compute type while an epoch runs."""

    def __init__(self):
        self.seen = []

    def on_epoch_end(self, record):
        import cupy
        from cupy._core import _routines_linalg as linalg

        self.seen.append(linalg.get_compute_type(cupy.float32))
        return False


def test_tf32_is_used_while_training_only_when_asked_for(cupy, digits):
    from cupy._core import _routines_linalg as linalg

    if int(cupy.cuda.Device().compute_capability) < 80:
        pytest.skip("TF32 needs compute capability 8.0 (Ampere) or newer")
    x_train, y_train, _, _ = digits
    before = linalg.get_compute_type(cupy.float32)
    for tf32, expected in ((True, linalg.COMPUTE_TYPE_TF32), (False, linalg.COMPUTE_TYPE_DEFAULT)):
        recorder = RecordComputeType()
        Model(hidden=[32], epochs=1, device="cuda", tf32=tf32).fit(x_train, y_train, callbacks=[recorder])
        assert recorder.seen == [expected]
        assert linalg.get_compute_type(cupy.float32) == before


def test_tf32_changes_gpu_results_only_slightly(cupy, gpu, digits):
    if int(cupy.cuda.Device().compute_capability) < 80:
        pytest.skip("TF32 needs compute capability 8.0 (Ampere) or newer")
    # A product large enough that cuBLAS runs it on tensor cores: TF32 keeps 10 of float32's 23 mantissa bits.
    a = cupy.random.default_rng(0).random((1024, 1024), dtype=cupy.float32)
    exact = a @ a
    with tf32_matmuls(gpu, True):
        rounded = a @ a
    relative = float(cupy.max(cupy.abs(rounded - exact) / exact))
    assert 0 < relative < 1e-2, "TF32 rounds the inputs of the product, a little"
    x_train, y_train, x_test, _ = digits
    results = {}
    for tf32 in (False, True):
        model = Model(hidden=[256], epochs=3, device="cuda", tf32=tf32)
        model.fit(x_train, y_train)
        results[tf32] = model.predict_proba(x_test)
    np.testing.assert_allclose(results[True], results[False], atol=0.05)


def test_tf32_switches_pytorch_cuda_matmuls_while_training(digits):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("this PyTorch has no CUDA")
    x_train, y_train, _, _ = digits
    seen = []

    class RecordFlag(Callback):
        def on_epoch_end(self, record):
            seen.append(torch.backends.cuda.matmul.allow_tf32)
            return False

    torch.backends.cuda.matmul.allow_tf32 = False
    x = torch.asarray(x_train, device="cuda")
    y = torch.asarray(y_train, device="cuda")
    Model(hidden=[32], epochs=1, tf32=True).fit(x, y, callbacks=[RecordFlag()])
    assert seen == [True]
    assert torch.backends.cuda.matmul.allow_tf32 is False
