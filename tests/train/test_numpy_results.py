"""Training on NumPy gives what it gave before the optimizers became pure functions (the fast paths
stayed as they were), held against ``fixtures/numpy_results/results.npz``: bit for bit on the BLAS
kernel that wrote it; elsewhere the last bits of every product differ, so to float32 rounding grown
over three epochs."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

FIXTURE = Path(__file__).parents[1] / "fixtures" / "numpy_results"
pytest.importorskip("threadpoolctl")


def _writer():
    spec = importlib.util.spec_from_file_location("write_numpy_results", FIXTURE / "write.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


writer = _writer()
expected = np.load(FIXTURE / "results.npz")
meta = json.loads(expected["meta"].tobytes())
same_kernel = meta["blas"] == writer.blas_kernel()


@pytest.mark.parametrize("name", writer.RUNS)
def test_numpy_training_gives_the_weights_and_losses_it_gave_before(name):
    model = writer.train(name)
    losses = [record["train_loss"] for record in model.history]
    weights = dict(zip(model.network.parameter_names(), model.network.parameters()))
    assert sorted(weights) == sorted(key.split("/", 1)[1] for key in expected.files if key.startswith(f"{name}/"))
    if same_kernel:
        assert losses == meta["runs"][name]
        for parameter_name, parameter in weights.items():
            np.testing.assert_array_equal(parameter, expected[f"{name}/{parameter_name}"])
    else:
        np.testing.assert_allclose(losses, meta["runs"][name], rtol=1e-4)
        for parameter_name, parameter in weights.items():
            np.testing.assert_allclose(parameter, expected[f"{name}/{parameter_name}"], rtol=1e-3, atol=1e-5)
