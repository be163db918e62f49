"""The batch loop never reads an array back to the host: on a GPU each read would wait for the device.

``tests/test_cuda.py`` proves it on CuPy where a GPU is present; here the same property is checked on
every machine, on PyTorch and array-api-strict, by counting the calls through which Python reads an
array's values (``float(x)``, ``x.item()``, ``bool(x)``, DLPack, ...) while training runs.
"""

from __future__ import annotations

import pytest
from conftest import CallLog, small_epoch_setup

from xpnet.arrays.backend import select
from xpnet.datasets import load_digits
from xpnet.train.model import Model

# The Python-level ways of getting an array's values onto the host.
HOST_READS = (
    "item",
    "tolist",
    "numpy",
    "__float__",
    "__int__",
    "__bool__",
    "__index__",
    "__complex__",
    "__array__",
    "__dlpack__",
)


def _namespace(name: str):
    if name == "torch":
        from conftest import import_torch

        return import_torch()
    return pytest.importorskip(name)


@pytest.fixture(params=["torch", "array_api_strict"])
def library(request):
    """An array library whose array class can be watched, and that class."""
    module = _namespace(request.param)
    array_type = type(select(module).asarray([0.0]))
    return module, array_type


def count_host_reads(monkeypatch, array_type) -> list[str]:
    """Record, in the returned list, every host read of an ``array_type`` array from now on."""
    log = CallLog(monkeypatch)
    for name in HOST_READS:
        if hasattr(array_type, name):
            log.watch(array_type, name)
    return log.calls


def test_an_epoch_of_minibatches_reads_nothing_back(library, monkeypatch):
    module, array_type = library
    run_epoch = small_epoch_setup(select(module), load_digits())
    calls = count_host_reads(monkeypatch, array_type)
    mean_loss, correct = run_epoch()
    assert calls == [], f"the batch loop read arrays back: {calls}"
    monkeypatch.undo()
    assert 0.0 < float(mean_loss) < 10.0 and 0 <= int(correct) <= 256


def test_fit_reads_back_per_epoch_not_per_batch(library, monkeypatch):
    """The reads ``fit`` makes (the epoch's loss and accuracy, the divergence check) do not grow with
    the number of batches: 4 batches an epoch and 32 read the same number of times."""
    module, array_type = library
    x_train, y_train, x_test, y_test = load_digits()
    reads = {}
    for batch_size in (64, 8):
        model = Model(hidden=[16], batch_size=batch_size, epochs=1, lr=1e-2, device=module)
        model.fit(x_train[:256], y_train[:256], validation_data=(x_test[:64], y_test[:64]))
        calls = count_host_reads(monkeypatch, array_type)
        model.fit(x_train[:256], y_train[:256], validation_data=(x_test[:64], y_test[:64]))
        reads[batch_size] = len(calls)
        monkeypatch.undo()
    assert reads[64] == reads[8], reads
    assert reads[64] > 0  # the epoch's numbers are read: the count is not vacuous
