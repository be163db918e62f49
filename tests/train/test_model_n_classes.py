"""``Model.fit(n_classes=...)``: the number of classes fixed before every class has been seen."""

import warnings

import numpy as np
import pytest

from xpnet import Model, XpnetError, XpnetWarning


def _data(labels, n_features=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(len(labels), n_features)).astype(np.float32), np.asarray(labels)


def test_n_classes_sizes_the_output_layer_beyond_the_labels_seen():
    model = Model(hidden=[4], epochs=1, device="cpu")
    x, y = _data([0, 1, 0, 1])
    model.fit(x, y, n_classes=4)
    assert model.n_classes == 4
    assert model.network.n_outputs == 4
    assert model.predict_proba(x).shape == (4, 4)
    later_x, later_y = _data([3, 2, 3], seed=1)
    model.fit(later_x, later_y, epochs=1)
    assert model.epochs_done == 2


def test_labels_beyond_n_classes_are_refused():
    x, y = _data([0, 1, 2])
    with pytest.raises(XpnetError, match=r"labels include 2 but the model has 2 classes"):
        Model(hidden=[4], epochs=1, device="cpu").fit(x, y, n_classes=2)


def test_a_built_model_refuses_a_different_n_classes():
    model = Model(hidden=[4], epochs=1, device="cpu")
    x, y = _data([0, 1, 2])
    model.fit(x, y)
    model.fit(x, y, n_classes=3)
    with pytest.raises(XpnetError, match=r"built for 3 classes, not n_classes=5"):
        model.fit(x, y, n_classes=5)


def test_n_classes_is_refused_for_regression():
    x, _ = _data([0, 1])
    with pytest.raises(XpnetError, match=r"n_classes applies to classifiers"):
        Model(loss="mse", epochs=1, device="cpu").fit(x, np.ones(2, dtype=np.float32), n_classes=2)


def test_a_single_class_predicts_it_with_certainty_and_without_a_chance_level_warning():
    x, y = _data([0] * 8)
    model = Model(hidden=[4], epochs=4, device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("error", XpnetWarning)
        model.fit(x, y, n_classes=1)
    np.testing.assert_array_equal(model.predict(x), np.zeros(8))
    np.testing.assert_array_equal(model.predict_proba(x), np.ones((8, 1), dtype=np.float32))
