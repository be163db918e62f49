"""Choosing the backend: device strings, namespaces and arrays, and clear errors where CUDA is missing."""

from __future__ import annotations

import contextlib
from types import SimpleNamespace

import array_api_compat
import numpy as np
import pytest
from conftest import assert_array, float64, import_torch, on

import xpnet.arrays.backend
from xpnet import Model, XpnetError, select
from xpnet.arrays.backend import Backend, BackendError, cuda_available, to_numpy
from xpnet.datasets import load_digits


def importing_cupy_gives(monkeypatch, cupy) -> None:
    """Make xpnet's ``import cupy`` return ``cupy``, or fail as on a machine without it when None."""

    def import_module(name):
        if cupy is None:
            raise ImportError(f"No module named {name!r}")
        return cupy

    monkeypatch.setattr(xpnet.arrays.backend, "importlib", SimpleNamespace(import_module=import_module))


@pytest.fixture
def no_cupy(monkeypatch):
    """A machine without CuPy, even where it is installed."""
    importing_cupy_gives(monkeypatch, None)


def fake_cupy(monkeypatch, get_device_count):
    """CuPy installed, with ``get_device_count`` standing in for the driver's answer."""
    runtime = SimpleNamespace(getDeviceCount=get_device_count)
    importing_cupy_gives(monkeypatch, SimpleNamespace(cuda=SimpleNamespace(runtime=runtime)))


@pytest.mark.parametrize("device", ["cuda", "cuda:0", "cuda:1", "CUDA"])
def test_cuda_without_cupy_says_what_to_install(no_cupy, device):
    advice = r"CuPy is not installed: pip install 'xpnet\[cuda\]'.*or use the CPU \(device='cpu', --device cpu\)"
    with pytest.raises(BackendError, match=advice):
        select(device)


def test_cuda_with_cupy_but_no_driver_says_to_check_it(monkeypatch):
    def no_driver():
        raise RuntimeError("cudaErrorInsufficientDriver: CUDA driver version is insufficient\nmore detail")

    fake_cupy(monkeypatch, no_driver)
    with pytest.raises(BackendError, match=r"no usable GPU was found \(cudaErrorInsufficientDriver: .*insufficient\)"):
        select("cuda")
    assert not cuda_available()


def test_a_gpu_index_beyond_the_visible_ones_is_refused(monkeypatch):
    fake_cupy(monkeypatch, lambda: 1)
    with pytest.raises(
        BackendError,
        match=r"cuda:1 was requested but only 1 GPU\(s\) are visible; use an index below 1",
    ):
        select("cuda:1")


@pytest.mark.parametrize(
    ("device", "message"),
    [
        ("gpu", "unknown device 'gpu': use 'cpu', 'cuda', 'cuda:N' or 'auto'"),
        ("cuda:x", r"device 'cuda:x': the GPU index must be a number, as in 'cuda:1'"),
        ("cuda:-1", r"device 'cuda:-1': the GPU index must be a number"),
        ("", "unknown device ''"),
        (3, "device must be 'cpu', 'cuda', 'cuda:N', 'auto' or an array namespace, got 3"),
        (None, "device must be .* got None"),
    ],
)
def test_bad_devices_are_refused_by_name(device, message):
    with pytest.raises(XpnetError, match=message):
        select(device)


def test_auto_falls_back_to_numpy_without_a_gpu(no_cupy):
    assert not cuda_available()
    backend = select("auto")
    assert (backend.name, backend.device) == ("numpy", "cpu")
    assert array_api_compat.is_numpy_namespace(backend.xp)


def test_cpu_is_numpy_through_array_api_compat():
    backend = select(" CPU ")
    assert backend.is_numpy and backend.xp.__name__ == "array_api_compat.numpy"
    assert str(backend) == "numpy on cpu"


def test_a_namespace_gives_its_default_device():
    strict = pytest.importorskip("array_api_strict")
    backend = select(strict)
    assert backend.xp is strict and backend.device == strict.__array_namespace_info__().default_device()
    torch_backend = select(import_torch())
    assert torch_backend.name == "torch" and str(torch_backend.device) == "cpu"


def test_an_array_gives_its_namespace_and_device(backend):
    chosen = select(on(backend, np.zeros(2, dtype=np.float32)))
    assert chosen.xp is backend.xp and chosen.device == backend.device


def test_asarray_brings_host_and_foreign_arrays_onto_the_backend(backend):
    torch = import_torch()
    host = np.arange(6, dtype=np.float32).reshape(3, 2)
    assert_array(backend.asarray(host), host, backend, dtype=backend.xp.float32, rtol=0)
    assert_array(backend.asarray(torch.asarray(host)), host, backend, dtype=backend.xp.float32, rtol=0)
    f64 = float64(backend)
    assert_array(backend.asarray([[1, 2]], dtype=f64), [[1.0, 2.0]], backend, dtype=f64)


def test_to_numpy_reads_arrays_and_scalars_from_every_backend(backend):
    host = np.linspace(0, 1, 5, dtype=np.float32)
    array = on(backend, host)
    for value, expected in ((array, host), (backend.xp.sum(array), np.float32(2.5)), (array[0], np.float32(0))):
        result = to_numpy(value)
        assert isinstance(result, np.ndarray) and result.dtype == np.float32
        np.testing.assert_array_equal(result, expected)


def test_a_model_asked_for_cuda_without_cupy_fails_before_training(no_cupy):
    with pytest.raises(BackendError, match="CuPy is not installed"):
        Model(device="cuda", epochs=1).fit(np.zeros((4, 2), dtype=np.float32), np.array([0, 1, 0, 1]))


def test_the_remembered_namespace_lookup_matches_array_api_compat_and_still_refuses_mixtures():
    import array_api_compat
    import array_api_strict
    import numpy as np

    from xpnet.arrays.backend import array_namespace

    numpy_array, strict_array = np.zeros(2), array_api_strict.zeros(2)
    for _ in range(2):  # the second call is answered from memory
        assert array_namespace(numpy_array) is array_api_compat.array_namespace(numpy_array)
        assert array_namespace(strict_array) is array_api_strict
        with pytest.raises(TypeError, match="Multiple namespaces"):
            array_namespace(numpy_array, strict_array)


# Namespace functions that make new arrays: CuPy puts those on the current GPU whatever device= says.
CREATING = ("asarray", "zeros", "zeros_like", "ones", "ones_like", "empty", "empty_like", "full", "arange", "eye")


def test_a_model_makes_arrays_only_with_its_device_active(monkeypatch):
    """fit, predict, predict_proba and evaluate run inside ``Backend.active()``, so on ``cuda:1`` every
    array they make lands on GPU 1: here, making one outside it is recorded as a violation."""
    x_train, y_train, x_test, y_test = load_digits()
    xp = select("cpu").xp
    depth, inside, outside = 0, [], []

    @contextlib.contextmanager
    def active(self):
        nonlocal depth
        depth += 1
        try:
            yield
        finally:
            depth -= 1

    def watched(name, original):
        def creating(*args, **kwargs):
            (inside if depth else outside).append(name)
            return original(*args, **kwargs)

        return creating

    monkeypatch.setattr(Backend, "active", active)
    for name in CREATING:
        monkeypatch.setattr(xp, name, watched(name, getattr(xp, name)))
    model = Model(hidden=[8], epochs=3, early_stopping=1, val_split=0.2, optimizer="adam", device="cpu")
    model.fit(x_train, y_train)
    model.predict(x_test)
    model.predict_proba(x_test)
    model.evaluate(x_test, y_test)
    assert depth == 0 and outside == []
    assert {"asarray", "zeros", "arange"} <= set(inside)  # the watch sees the calls that matter
