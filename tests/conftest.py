"""Fixtures shared by the tests: one ``backend`` per available array library and device.

Each math test is written once and runs on every backend: NumPy, array-api-strict on its default
device and on its second device ``device1`` (which catches arrays created on the wrong device, the
bug that breaks CuPy on ``cuda:1``), PyTorch on the CPU, JAX on the CPU (immutable arrays), and CuPy
where a GPU is present.
"""

from __future__ import annotations

import array_api_compat
import numpy as np
import pytest

from xpnet.arrays import streams
from xpnet.arrays.backend import Backend, cuda_available, to_numpy
from xpnet.nn import losses
from xpnet.train import loop
from xpnet.train.model import Model


def _numpy() -> Backend:
    import array_api_compat.numpy as xp

    return Backend(xp, "cpu", "numpy")


def _strict(device_name: str) -> Backend:
    xp = pytest.importorskip("array_api_strict")
    devices = {str(device): device for device in xp.__array_namespace_info__().devices()}
    matching = [device for name, device in devices.items() if device_name in name]
    if not matching:
        pytest.skip(f"array_api_strict has no device {device_name!r}")
    return Backend(xp, matching[0], "array_api_strict")


def import_torch():
    """PyTorch, or a skip where it is missing. One thread: the tests' arrays are tiny, and on a busy
    machine torch's thread pool makes them many times slower, never faster."""
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    return torch


def torch_activations() -> dict:
    """xpnet's activations as PyTorch computes them: the independent reference for values and slopes."""
    from xpnet.nn.activations import LEAKY_RELU_SLOPE

    torch = import_torch()
    return {
        "identity": lambda z: z,
        "relu": torch.relu,
        "leaky_relu": lambda z: torch.nn.functional.leaky_relu(z, LEAKY_RELU_SLOPE),
        "tanh": torch.tanh,
        "sigmoid": torch.sigmoid,
        "gelu": lambda z: torch.nn.functional.gelu(z, approximate="tanh"),
    }


def _torch() -> Backend:
    import_torch()
    import array_api_compat.torch as xp

    return Backend(xp, xp.__array_namespace_info__().default_device(), "torch")


def _jax() -> Backend:
    """JAX's NumPy on the CPU, as users have it: 64-bit types off, so its arrays are float32 and int32
    unless asked otherwise, and JAX's arrays are immutable (every update must be assigned)."""
    pytest.importorskip("jax")
    import jax
    import jax.numpy as xp

    return Backend(xp, jax.devices("cpu")[0], "jax")


def _cupy() -> Backend:
    pytest.importorskip("cupy")
    if not cuda_available():
        pytest.skip("CuPy is installed but sees no GPU")
    import array_api_compat.cupy as xp
    import cupy

    return Backend(xp, cupy.cuda.Device(0), "cupy")


BACKENDS = {
    "numpy": _numpy,
    "strict": lambda: _strict("CPU_DEVICE"),
    "strict-device1": lambda: _strict("device1"),
    "torch": _torch,
    "jax": _jax,
    "cupy": _cupy,
}


@pytest.fixture(
    params=[pytest.param(name, marks=pytest.mark.cuda) if name == "cupy" else pytest.param(name) for name in BACKENDS]
)
def backend(request) -> Backend:
    """Every available array library and device, each as a Backend (namespace + device)."""
    chosen = BACKENDS[request.param]()
    yield chosen
    if chosen.name == "jax":  # 64-bit types back off, as users have them, if a test turned them on
        import jax

        jax.config.update("jax_enable_x64", False)


@pytest.fixture
def xp(backend):
    """The array namespace of ``backend``."""
    return backend.xp


def on(backend: Backend, array, dtype=None):
    """Copy host data onto ``backend``'s device, keeping its NumPy dtype unless ``dtype`` is given; 64-bit
    host data goes to the backend's default dtypes where it has no 64-bit types (JAX, as installed)."""
    array = np.asarray(array)
    if dtype is None:
        defaults = backend.xp.__array_namespace_info__().default_dtypes(device=backend.device)
        kind = "real floating" if array.dtype.kind == "f" else "integral" if array.dtype.kind in "iu" else None
        dtype = getattr(backend.xp, str(array.dtype))
        if kind and array.dtype.itemsize == 8 and dtype not in supported_dtypes(backend, kind):
            dtype = defaults[kind]
    return backend.xp.asarray(array, dtype=dtype, device=backend.device)


def supported_dtypes(backend: Backend, kind: str) -> tuple:
    """The dtypes of ``kind`` (as ``isdtype`` names kinds) that ``backend`` holds."""
    return tuple(backend.xp.__array_namespace_info__().dtypes(device=backend.device, kind=kind).values())


def writable(backend: Backend) -> None:
    """Skip a test of flat buffers and writing through views on a library whose arrays cannot be
    written (JAX): xpnet never packs those, and trains them one array per parameter."""
    from xpnet.arrays.flat import gives_writable_views

    if not gives_writable_views(backend.xp.zeros((1,), device=backend.device)):
        pytest.skip(f"{backend.name} arrays cannot be written: xpnet never packs them")


def float64(backend: Backend):
    """``backend``'s float64, for a test that needs it (finite differences): JAX has it only with 64-bit
    types on, which this turns on until the test ends (the ``backend`` fixture turns them off again)."""
    if backend.name == "jax":
        import jax

        jax.config.update("jax_enable_x64", True)
    return backend.xp.float64


def assert_array(actual, expected, backend: Backend, *, dtype=None, rtol=1e-6, atol=0.0) -> None:
    """Check that ``actual`` lives in ``backend``'s namespace and on its device, with ``dtype`` and the
    shape of ``expected``, and that its values match ``expected`` (compared on the host)."""
    expected = np.asarray(expected)
    namespace, device = array_api_compat.array_namespace(actual), array_api_compat.device(actual)
    assert namespace is backend.xp, f"namespace {namespace.__name__}, expected {backend.xp.__name__}"
    assert device == backend.device, f"device {device}, expected {backend.device}"
    if dtype is not None:
        assert actual.dtype == dtype, f"dtype {actual.dtype}, expected {dtype}"
    assert tuple(actual.shape) == expected.shape, f"shape {tuple(actual.shape)}, expected {expected.shape}"
    np.testing.assert_allclose(to_numpy(actual), expected, rtol=rtol, atol=atol)


class CallLog:
    """Records, in ``calls``, the label of every call to the functions it watches: for tests of what a
    loop must never call (host reads, synchronisation)."""

    def __init__(self, monkeypatch):
        self.monkeypatch = monkeypatch
        self.calls: list[str] = []

    def watch(self, owner, name: str, label: str | None = None) -> None:
        """Replace ``owner.name`` (until the test ends) by a wrapper that logs ``label`` and calls it."""
        original = getattr(owner, name)

        def wrapper(*args, **kwargs):
            self.calls.append(label or name)
            return original(*args, **kwargs)

        self.monkeypatch.setattr(owner, name, wrapper)


def small_epoch_setup(backend: Backend, digits, *, dropout: float = 0.2):
    """``run_epoch()``: one epoch of four batches of the digits on ``backend``, by a model already through
    one epoch, so that its state is allocated (and on a GPU, kernels compiled and the memory pool warm)
    before anything is measured."""
    x_train, y_train, _, _ = digits
    model = Model(hidden=[32], optimizer="adam", batch_size=64, epochs=1, dropout=dropout, device=backend)
    model.fit(x_train[:256], y_train[:256])
    x = backend.asarray(x_train[:256], dtype=backend.xp.float32)
    y = backend.asarray(y_train[:256], dtype=backend.xp.int64)
    order = streams.RandomStream(backend, 0, streams.SHUFFLE, 1).permutation(x.shape[0])
    rng = streams.RandomStream(backend, 0, streams.DROPOUT, 1)

    def run_epoch():
        """The epoch's mean loss and number of correct predictions."""
        result = loop.train_epoch(
            model.network,
            model.optimizer,
            losses.get("cross_entropy"),
            x,
            y,
            lr=1e-3,
            batch_size=64,
            order=order,
            dropout_rng=rng,
            classify=True,
        )
        return result.mean_loss, result.correct

    return run_epoch
