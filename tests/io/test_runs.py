"""Run folders: creation, refusal to overwrite, clean-up of a failed start, atomic JSON, and the
exact metrics layout."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest

from xpnet.arrays.backend import numpy_backend
from xpnet.errors import XpnetError
from xpnet.io import runs


def test_default_folders_are_distinct_timestamps_under_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with runs.new_run_dir(None) as first, runs.new_run_dir(None) as second:
        assert first != second
        assert first.parent == second.parent == runs.DEFAULT_PARENT
    assert first.is_dir() and second.is_dir()


def test_a_folder_with_a_finished_run_is_refused(tmp_path):
    (tmp_path / runs.METRICS_FILE).write_text("{}")
    with pytest.raises(XpnetError, match="already holds a run"), runs.new_run_dir(tmp_path):
        pass
    assert (tmp_path / runs.METRICS_FILE).read_text() == "{}"


def unstarted_run_config(folder) -> None:
    """The config.json of a run that stopped before it trained, as xpnet writes it."""
    options = {"seed": 0, "hidden": [8]}
    runs.write_json(folder / runs.CONFIG_FILE, runs.config_record(options, {"init": "he_normal"}, numpy_backend()))


def test_a_folder_left_by_a_run_that_never_trained_is_reused(tmp_path):
    unstarted_run_config(tmp_path)
    (tmp_path / ".config.json.k3j4h5g6.tmp").write_text("{")  # a write cut short by a kill
    (tmp_path / runs.HISTORY_FILE).write_text('{"epoch": 1}\n')  # of a first checkpoint the kill cut short
    with runs.new_run_dir(tmp_path) as folder:
        assert folder == tmp_path


@pytest.mark.parametrize(
    "files",
    [{"config.json": '{"my": "own settings"}'}, {"curves.png": "a picture"}, {"notes.txt": "", "config.json": None}],
    ids=["a config.json of someone else", "another file", "a run config beside another file"],
)
def test_a_folder_holding_other_files_is_refused_and_left_alone(tmp_path, files):
    for name, text in files.items():
        if text is None:
            unstarted_run_config(tmp_path)
        else:
            (tmp_path / name).write_text(text)
    before = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    refused = rf"run folder {re.escape(str(tmp_path))} already holds other files \(.+\).*choose another --out"
    with pytest.raises(XpnetError, match=refused), runs.new_run_dir(tmp_path):
        pass
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == before


def test_an_uncreatable_folder_is_an_error(tmp_path):
    (tmp_path / "file").write_text("")
    with (
        pytest.raises(XpnetError, match=r"cannot create run folder .*choose a writable --out"),
        runs.new_run_dir(tmp_path / "file" / "run"),
    ):
        pass


def test_a_failed_start_removes_the_folders_it_created_and_only_those(tmp_path):
    with pytest.raises(RuntimeError, match="dataset failed"), runs.new_run_dir(tmp_path / "new" / "run") as folder:
        (folder / runs.CONFIG_FILE).write_text("{}")
        raise RuntimeError("dataset failed")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(RuntimeError, match="dataset failed"), runs.new_run_dir(tmp_path / "runs" / "run"):
        (tmp_path / "runs" / "another run").mkdir()  # started beside it meanwhile
        raise RuntimeError("dataset failed")
    assert [path.name for path in tmp_path.iterdir()] == ["runs"]
    assert [path.name for path in (tmp_path / "runs").iterdir()] == ["another run"]
    shutil.rmtree(tmp_path / "runs")
    unstarted_run_config(tmp_path)
    with pytest.raises(RuntimeError, match="disk full"), runs.new_run_dir(tmp_path):
        (tmp_path / runs.HISTORY_FILE).write_text('{"epoch": 1}\n')  # its first checkpoint's, which then failed
        raise RuntimeError("disk full")
    assert list(tmp_path.iterdir()) == []  # a folder that was there stays, without the start's config.json


def test_a_failure_after_the_first_checkpoint_keeps_the_run_to_resume(tmp_path):
    with pytest.raises(RuntimeError, match="disk full"), runs.new_run_dir(tmp_path / "run") as folder:
        for name in (runs.CONFIG_FILE, runs.CHECKPOINT_FILE):
            (folder / name).write_text("{}")
        raise RuntimeError("disk full")
    assert sorted(path.name for path in (tmp_path / "run").iterdir()) == [runs.CHECKPOINT_FILE, runs.CONFIG_FILE]


def test_an_interrupted_start_keeps_its_config_to_be_started_again(tmp_path):
    with pytest.raises(KeyboardInterrupt), runs.new_run_dir(tmp_path / "run") as folder:
        (folder / runs.CONFIG_FILE).write_text("{}")
        raise KeyboardInterrupt
    assert [path.name for path in (tmp_path / "run").iterdir()] == [runs.CONFIG_FILE]


def test_leftover_files_are_only_those_of_interrupted_writes(tmp_path):
    leftovers = [".model.npz.ab12cd34.tmp", ".checkpoint.npz.x_y9z8w7.tmp"]
    kept = [".model.npz.tmp.bak", "model.npz.ab12cd34.tmp", ".notes.ab12cd34.tmp", ".config.json.ab12cd34"]
    for name in leftovers + kept:
        (tmp_path / name).write_text("")
    assert sorted(path.name for path in runs.leftover_files(tmp_path)) == sorted(leftovers)


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
    test = {"loss": 0.85, "accuracy": 0.72}
    record = runs.metrics_record("digits", numpy_backend(), "float32", history, test, ["lr is small"])
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
                "val_loss": 0.8,
                "val_accuracy": 0.75,
                "test_loss": 0.85,
                "test_accuracy": 0.72,
                "seconds": 1.5,
            }
        ],
        "test_loss": 0.85,
        "test_accuracy": 0.72,
        "warnings": ["lr is small"],
    }
    # Without validation data, an epoch holds exactly the training and test metrics and its time.
    for record in history:
        del record["val_loss"], record["val_accuracy"]
    epochs = runs.metrics_record("digits", numpy_backend(), "float32", history, test, [])["epochs"]
    assert epochs == [
        {"epoch": 1, "train_loss": 0.9, "train_accuracy": 0.7, "test_loss": 0.85, "test_accuracy": 0.72, "seconds": 1.5}
    ]


def test_confusion_record_counts_true_against_predicted():
    labels = np.array([0, 0, 1, 2, 2, 2])
    predictions = np.array([0, 1, 1, 2, 0, 2])
    record = runs.confusion_record(labels, predictions, 3)
    assert record == {"classes": [0, 1, 2], "matrix": [[1, 1, 0], [0, 1, 0], [1, 0, 2]]}


def test_versions_include_python_numpy_and_xpnet():
    found = runs.versions()
    assert found["numpy"] == np.__version__
    assert {"python", "xpnet", "array-api-compat"} <= set(found)
