"""Full-batch L-BFGS as an epoch runner (``xpnet.train.full_batch``) and as a model's optimizer:
SciPy's minimum of the penalised loss, its iterations counted as steps, and epochs that resume exactly."""

from __future__ import annotations

import numpy as np
import pytest

import xpnet
from xpnet.arrays.backend import numpy_backend
from xpnet.errors import XpnetError
from xpnet.nn import losses
from xpnet.nn.layers import Dense, weight_penalty
from xpnet.nn.network import Network
from xpnet.optim import make
from xpnet.train import memory
from xpnet.train.full_batch import LBFGSEpoch, flattened, penalised_objective, unflattened

scipy_optimize = pytest.importorskip("scipy.optimize")

SETTINGS = {"optimizer": "lbfgs", "hidden": [16], "alpha": 1e-3, "dtype": "float64", "lbfgs_iterations": 15}


def softmax_regression(seed: int = 0):
    """A one-layer softmax classifier (convex, so every L-BFGS finds one minimum) with an L2 penalty,
    and 120 samples of 5 features in 3 classes."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(120, 5))
    y = np.argmax(x @ rng.normal(size=(5, 3)) + rng.normal(size=(120, 3)), axis=1)
    network = Network([Dense(0.1 * rng.normal(size=(5, 3)), np.zeros(3), l2=0.5)])
    return network, x, y


def test_an_epoch_reaches_scipys_minimum_and_counts_its_iterations_as_steps():
    network, x, y = softmax_regression()
    loss = losses.get("cross_entropy")
    objective = penalised_objective(network, loss, x, y)
    start = flattened(network.parameters())
    reference = scipy_optimize.minimize(
        lambda w: objective(w.copy()), start.copy(), method="L-BFGS-B", jac=True, options={"gtol": 1e-8}
    )
    network.set_parameters(unflattened(start, network.parameters()))  # SciPy's evaluations moved them
    optimizer = make("lbfgs")
    runner = LBFGSEpoch(max_iter=500, max_fun=15000, tol=1e-8)
    result = runner(network, optimizer, loss, x, y, classify=True, lr=1.0, batch_size=1)
    assert runner.result.converged
    assert runner.result.value == pytest.approx(reference.fun, rel=1e-9)
    assert optimizer.steps == runner.result.iterations > 0
    np.testing.assert_allclose(flattened(network.parameters()), reference.x, rtol=1e-4, atol=1e-6)
    # The epoch's loss is the mean loss without the penalty (the model adds that), its count the correct rows.
    penalty = float(weight_penalty(network.layers)) / x.shape[0]
    assert float(result.mean_loss) == pytest.approx(runner.result.value - penalty, rel=1e-12)
    assert int(result.correct) == int(np.sum(np.argmax(network.forward(x), axis=1) == y))


def test_a_model_trains_by_lbfgs_and_its_epochs_resume_exactly(tmp_path):
    x, y, x_test, y_test = xpnet.load_digits()
    whole = xpnet.Model(**SETTINGS)
    whole.fit(x, y, epochs=3)
    assert whole.optimizer.steps == 45  # three runs of 15 iterations, none converged so soon
    losses_by_epoch = [record["train_loss"] for record in whole.history]
    assert losses_by_epoch == sorted(losses_by_epoch, reverse=True)
    assert whole.evaluate(x_test, y_test)["accuracy"] > 0.93
    first = xpnet.Model(**SETTINGS)
    first.fit(x, y, epochs=1)
    first.save(tmp_path / "model.npz")
    resumed = xpnet.load(tmp_path / "model.npz")
    assert resumed.optimizer.steps == 15 and resumed.config.optimizer == "lbfgs"
    resumed.fit(x, y, epochs=2)
    for ours, theirs in zip(resumed.network.parameters(), whole.network.parameters(), strict=True):
        np.testing.assert_array_equal(ours, theirs)
    for ours, theirs in zip(resumed.history, whole.history, strict=True):
        assert {**ours, "seconds": None} == {**theirs, "seconds": None}


def test_lbfgs_takes_no_minibatch_step_and_no_weight_decay():
    with pytest.raises(XpnetError, match=r"lbfgs trains on the whole training set at once, not step by step"):
        make("lbfgs").step([np.zeros(2)], [np.ones(2)], 0.1)
    with pytest.raises(XpnetError, match=r"give alpha instead of weight_decay=0.1"):
        xpnet.Model(optimizer="lbfgs", weight_decay=0.1)


def test_the_memory_check_sizes_lbfgs_with_the_whole_training_set_as_its_batch(monkeypatch):
    sized = []
    monkeypatch.setattr(
        memory, "check_fits", lambda *arguments, **options: sized.append((arguments[3], options["update_temporaries"]))
    )
    memory.check_model_fits(xpnet.TrainConfig(**SETTINGS, batch_size=32), 64, 10, numpy_backend(), 0, 1000)
    assert sized == [(1000, 25)]  # the curvature pairs and the line search's vectors, on NumPy too


def test_the_models_lbfgs_runner_takes_its_limits_and_tolerance_from_the_settings():
    runner = xpnet.Model(optimizer="lbfgs", lbfgs_iterations=7, max_fun=9).epoch_runner
    assert (runner.max_iter, runner.max_fun, runner.tol) == (7, 9, 1e-4)  # scikit-learn's tol where none is given
    assert xpnet.Model(optimizer="lbfgs", tol=1e-6).epoch_runner.tol == 1e-6
    assert xpnet.Model(optimizer="lbfgs", tol=1e-6).convergence is None  # tol is L-BFGS's, not an epoch rule
