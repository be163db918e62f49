"""Choosing the array library and device that the math runs on.

The math modules never import an array library: they receive arrays and ask them for their
namespace. This module is the one place that turns a user's ``device="cuda:1"`` (or a namespace
module, or existing arrays) into a concrete ``Backend``, and that moves arrays to and from the host.
"""

from __future__ import annotations

import contextlib
import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import array_api_compat
import numpy as np

from xpnet.arrays import capabilities
from xpnet.errors import BackendError, one_line


@dataclass(frozen=True)
class Backend:
    """An array namespace together with the device new arrays are created on (see ``select``).

    Attributes:
        xp: The array-API namespace (array-api-compat's wrapper where the library needs one).
        device: The device new arrays are created on.
        name: The library's name, as messages give it.
    """

    xp: ModuleType
    device: Any
    name: str

    def __str__(self) -> str:
        return f"{self.name} on {self.device}"

    @property
    def is_numpy(self) -> bool:
        return array_api_compat.is_numpy_namespace(self.xp)

    def require_float(self, name: str) -> None:
        """Refuse a floating dtype this device cannot hold (float64 on some accelerators), naming the fix."""
        if name not in self.xp.__array_namespace_info__().dtypes(device=self.device, kind="real floating"):
            raise BackendError(f"{self} does not support {name}: use dtype='float32'")

    def active(self) -> contextlib.AbstractContextManager:
        """A block in which new arrays and kernels go to this backend's device. CuPy puts them on
        the *current* GPU (array-api-compat drops ``device=`` from ``zeros``, ``arange`` and copies),
        so work for ``cuda:1`` runs inside ``with backend.active():``; other libraries honour ``device=``."""
        if array_api_compat.is_cupy_namespace(self.xp):
            return self.device  # a cupy.cuda.Device makes itself current for the block, then restores
        return contextlib.nullcontext()

    def asarray(self, data, dtype=None, *, copy: bool | None = None):
        """Copy host or foreign data onto this backend's device (no copy if already there, unless
        ``copy``). A PyTorch tensor that records gradients is taken without its graph: xpnet computes its
        own gradients, and PyTorch refuses the in-place writes of training on a tensor it tracks."""
        if array_api_compat.is_torch_array(data) and data.requires_grad:
            data = data.detach()
        if is_foreign_array(data):
            foreign = array_api_compat.array_namespace(data)
            if foreign is not self.xp:
                data = to_numpy(data)
        return self.xp.asarray(data, dtype=dtype, device=self.device, copy=copy)


def select(device: Any = "cpu") -> Backend:
    """Resolve ``device`` to a ``Backend``, checking that the library can train.

    Args:
        device: ``"cpu"`` (NumPy), ``"cuda"`` or ``"cuda:N"`` (CuPy), ``"auto"`` (CUDA when CuPy sees a GPU,
            else CPU), an array-API namespace module (its default device), an array (its namespace and
            device: the namespace travels with the data), or a ``Backend`` (returned as it is).

    Returns:
        The namespace and device new arrays are created on.

    Raises:
        BackendError: The device is unknown or not here (CUDA without CuPy or a GPU), or the library lacks
            something training needs; the message names it and what to do.
    """
    if isinstance(device, Backend):
        return device
    if isinstance(device, ModuleType):
        xp = array_api_compat.array_namespace(device.asarray(0))
        return _checked(Backend(xp, _default_device(xp), capabilities.library_name(xp)))
    if array_api_compat.is_array_api_obj(device):
        xp = array_api_compat.array_namespace(device)
        return _checked(Backend(xp, array_api_compat.device(device), capabilities.library_name(xp)))
    if not isinstance(device, str):
        raise BackendError(f"device must be 'cpu', 'cuda', 'cuda:N', 'auto' or an array namespace, got {device!r}")
    spec = device.strip().lower()
    if spec == "cpu":
        return numpy_backend()
    if spec == "auto":
        return _cuda_backend(0) if cuda_available() else numpy_backend()
    if spec == "cuda" or spec.startswith("cuda:"):
        index = spec.partition(":")[2] or "0"
        if not index.isdigit():
            raise BackendError(f"device {device!r}: the GPU index must be a number, as in 'cuda:1'")
        return _cuda_backend(int(index))
    raise BackendError(f"unknown device {device!r}: use 'cpu', 'cuda', 'cuda:N' or 'auto'")


def backend_for(device: Any, data) -> Backend:
    """The backend to train ``data`` on: with ``device="auto"``, arrays of another library than NumPy
    (torch tensors, say) stay in their own namespace and device, but for a lazy library's (Dask's), which
    are computed into NumPy once; otherwise ``select(device)``."""
    own = device == "auto" and is_foreign_array(data)
    return select(data if own and not capabilities.is_lazy(array_api_compat.array_namespace(data)) else device)


def _checked(backend: Backend) -> Backend:
    """``backend``, once its library is shown to have what training needs (``capabilities.check``)."""
    capabilities.check(backend.xp, backend.device)
    return backend


def is_foreign_array(data) -> bool:
    """Whether ``data`` is an array of a library other than NumPy."""
    return array_api_compat.is_array_api_obj(data) and not isinstance(data, np.ndarray)


def default_integer(xp: ModuleType, device=None):
    """The integer dtype ``xp`` makes by default on ``device`` (int64 for NumPy; int32 for JAX, which
    truncates int64 with a warning unless 64-bit types are enabled): class labels and counts use it."""
    return xp.__array_namespace_info__().default_dtypes(device=device)["integral"]


def numpy_backend() -> Backend:
    import array_api_compat.numpy as xp

    return Backend(xp, "cpu", "numpy")


def cuda_available() -> bool:
    """True when CuPy is installed and sees at least one GPU."""
    return cuda_device_count() > 0


def cuda_device_count() -> int:
    """How many GPUs CuPy sees: 0 without CuPy, a driver or a device."""
    try:
        cupy = importlib.import_module("cupy")
        return cupy.cuda.runtime.getDeviceCount()
    except Exception:  # no CuPy, no driver, or no device: all mean "no CUDA here"
        return 0


def _cuda_backend(index: int) -> Backend:
    try:
        cupy = importlib.import_module("cupy")
    except ImportError:
        raise BackendError(
            "CUDA was requested but CuPy is not installed: pip install 'xpnet[cuda]' "
            "(CuPy for CUDA 12), or use the CPU (device='cpu', --device cpu)"
        ) from None
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as error:  # CuPy raises its own runtime errors when no driver is present
        raise BackendError(
            f"CUDA was requested but no usable GPU was found ({one_line(error, first_line=True)}); "
            "check the NVIDIA driver (nvidia-smi), or use the CPU (device='cpu', --device cpu)"
        ) from None
    if index >= count:
        raise BackendError(
            f"GPU cuda:{index} was requested but only {count} GPU(s) are visible; use an index below {count}"
        )
    import array_api_compat.cupy as xp

    return Backend(xp, cupy.cuda.Device(index), "cupy")


def _default_device(xp: ModuleType) -> Any:
    """The device ``xp`` makes arrays on by default (JAX names none: its first array tells)."""
    default = xp.__array_namespace_info__().default_device()
    return default if default is not None else array_api_compat.device(xp.asarray(0))


_NAMESPACES: dict[tuple[type, ...], ModuleType] = {}


def array_namespace(*arrays) -> ModuleType:
    """``array_api_compat.array_namespace``, remembered per combination of array types: the math
    asks for it several times per minibatch, and a type's namespace never changes."""
    key = tuple(map(type, arrays))
    found = _NAMESPACES.get(key)
    if found is None:
        found = _NAMESPACES[key] = array_api_compat.array_namespace(*arrays)
    return found


def to_numpy(array) -> np.ndarray:
    """Copy an array from any backend and device to a NumPy array on the host."""
    if isinstance(array, np.ndarray | np.generic):  # NumPy reductions return scalars such as np.float32
        return np.asarray(array)
    if array_api_compat.is_cupy_array(array):
        return array.get()
    if array_api_compat.is_torch_array(array):
        return array.detach().cpu().numpy()
    if array_api_compat.is_ndonnx_array(array):
        return array.unwrap_numpy()  # its values, where it has them (it refuses otherwise)
    try:
        return np.from_dlpack(array)
    except (AttributeError, TypeError, BufferError, RuntimeError):  # no DLPack (Dask, ndonnx, sparse...)
        pass
    try:
        return np.asarray(array)  # Dask computes here
    except Exception as error:  # each library refuses in its own words (sparse: "cannot densify")
        library = capabilities.library_name(array_api_compat.array_namespace(array))
        raise BackendError(
            f"cannot copy {library} arrays to NumPy ({one_line(error, first_line=True)}): "
            f"{capabilities.FIXES.get(library, capabilities.DEFAULT_FIX)}"
        ) from None
