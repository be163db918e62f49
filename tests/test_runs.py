"""Run folders: creation, refusal to overwrite, atomic JSON, and the exact metrics layout."""

from __future__ import annotations

import json

import numpy as np
import pytest

from xpnet import runs
from xpnet.backend import numpy_backend
from xpnet.errors import XpnetError


def test_default_folders_are_distinct_timestamps_under_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first, second = runs.new_run_dir(None), runs.new_run_dir(None)
    assert first != second
    assert first.parent == second.parent == runs.DEFAULT_PARENT
    assert first.is_dir() and second.is_dir()


def test_a_folder_with_a_finished_run_is_refused(tmp_path):
    (tmp_path / runs.METRICS_FILE).write_text("{}")
    with pytest.raises(XpnetError, match="already holds a run"):
        runs.new_run_dir(tmp_path)


def test_a_folder_left_by_a_failed_run_is_reused(tmp_path):
    (tmp_path / runs.CONFIG_FILE).write_text("{}")
    assert runs.new_run_dir(tmp_path) == tmp_path


def test_an_uncreatable_folder_is_an_error(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(XpnetError, match=r"cannot create run folder .*choose a writable --out"):
        runs.new_run_dir(tmp_path / "file" / "run")


def test_write_json_leaves_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "metrics.json"
    runs.write_json(path, {"test_accuracy": 0.5})
    with pytest.raises(TypeError):
        runs.write_json(path, {"test_accuracy": object()})
    assert runs.read_json(path) == {"test_accuracy": 0.5}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_read_json_names_the_damage(tmp_path):
    with pytest.raises(XpnetError, match="does not exist"):
        runs.read_json(tmp_path / "metrics.json")
    (tmp_path / "metrics.json").write_text('{"epochs": [')
    with pytest.raises(XpnetError, match="the run folder is damaged"):
        runs.read_json(tmp_path / "metrics.json")
    (tmp_path / "metrics.json").write_text("[1, 2]")
    with pytest.raises(XpnetError, match="does not hold a JSON object"):
        runs.read_json(tmp_path / "metrics.json")


def test_metrics_record_has_exactly_the_documented_keys():
    history = [
        {
            "epoch": 1,
            "train_loss": 0.9,
            "train_accuracy": 0.7,
            "val_loss": 0.8,
            "val_accuracy": 0.75,
            "test_loss": 0.85,
            "test_accuracy": 0.72,
            "seconds": 1.5,
            "lr": 0.001,
        }
    ]
    record = runs.metrics_record("digits", numpy_backend(), "float32", history, {"loss": 0.85, "accuracy": 0.72})
    assert json.loads(json.dumps(record)) == {
        "dataset": "digits",
        "backend": "numpy",
        "device": "cpu",
        "dtype": "float32",
        "epochs": [
            {
                "epoch": 1,
                "train_loss": 0.9,
                "train_accuracy": 0.7,
                "test_loss": 0.85,
                "test_accuracy": 0.72,
                "seconds": 1.5,
            }
        ],
        "test_loss": 0.85,
        "test_accuracy": 0.72,
    }


def test_confusion_record_counts_true_against_predicted():
    labels = np.array([0, 0, 1, 2, 2, 2])
    predictions = np.array([0, 1, 1, 2, 0, 2])
    record = runs.confusion_record(labels, predictions, 3)
    assert record == {"classes": [0, 1, 2], "matrix": [[1, 1, 0], [0, 1, 0], [1, 0, 2]]}


def test_versions_include_python_numpy_and_xpnet():
    found = runs.versions()
    assert found["numpy"] == np.__version__
    assert {"python", "xpnet", "array-api-compat"} <= set(found)
