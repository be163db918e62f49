"""The ``xpnet`` command: training runs, subcommands, the TOML config file, and one-line errors."""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from array_api_compat import array_namespace

import xpnet
from xpnet import datasets
from xpnet.arrays.backend import cuda_available
from xpnet.cli import check, evaluate, main, options
from xpnet.cli.predict import KAGGLE_LAYOUT, PLAIN_LAYOUT, predictions_csv
from xpnet.datasets import loaders
from xpnet.datasets.idx import encode_idx
from xpnet.report import plots
from xpnet.train.config import EARLY_STOPPING_VAL_SPLIT

REPO = Path(__file__).resolve().parents[2]
METRICS_KEYS = {"dataset", "backend", "device", "dtype", "epochs", "test_loss", "test_accuracy", "warnings"}
EPOCH_KEYS = {"epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy", "seconds"}


@pytest.fixture(autouse=True)
def no_plots(monkeypatch):
    """Drawing is tested in test_plots.py; here it would only cost time."""
    monkeypatch.setattr(plots, "available", lambda: False)


@pytest.fixture
def cli(capsys):
    """Run ``main(argv)`` and return (exit code, stdout, stderr)."""

    def run(*argv):
        code = main([str(arg) for arg in argv])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def assert_usage_error(result, pattern: str) -> None:
    code, _, err = result
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("xpnet: error: "), err
    assert "Traceback" not in err
    assert re.search(pattern, err), err


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def write_blobs(path: Path) -> Path:
    """An .npz of three well-separated classes with 5 features: 150 training and 50 test samples."""
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(3, 5)).astype(np.float32)
    labels = rng.integers(0, 3, size=200)
    inputs = (centers[labels] + 0.1 * rng.normal(size=(200, 5))).astype(np.float32)
    np.savez(path, x_train=inputs[:150], y_train=labels[:150], x_test=inputs[150:], y_test=labels[150:])
    return path


@pytest.fixture
def digits_run(cli, tmp_path) -> Path:
    """A finished two-epoch run on digits."""
    out = tmp_path / "run"
    assert cli("--epochs", 2, "--out", out, "--quiet")[0] == 0
    return out


def test_bare_options_train_and_write_a_complete_run_folder(cli, tmp_path):
    out = tmp_path / "run"
    code, stdout, stderr = cli("--epochs", 2, "--hidden", 16, "--out", out, "--quiet")
    assert (code, stdout, stderr) == (0, "", "")
    metrics = read_json(out / "metrics.json")
    assert set(metrics) == METRICS_KEYS
    assert (metrics["dataset"], metrics["backend"], metrics["device"], metrics["dtype"]) == (
        "digits",
        "numpy",
        "cpu",
        "float32",
    )
    assert [record["epoch"] for record in metrics["epochs"]] == [1, 2]
    for record in metrics["epochs"]:
        assert set(record) == EPOCH_KEYS
        assert 0.0 <= record["train_accuracy"] <= 1.0 and 0.0 <= record["test_accuracy"] <= 1.0
        assert record["seconds"] > 0
    # The saved model reproduces the reported test numbers.
    model = xpnet.load(out / "model.npz")
    _, _, x_test, y_test = xpnet.load_digits()
    result = model.evaluate(x_test, y_test)
    assert result["accuracy"] == pytest.approx(metrics["test_accuracy"])
    assert result["loss"] == pytest.approx(metrics["test_loss"], rel=1e-5)
    assert metrics["epochs"][-1]["test_accuracy"] == pytest.approx(metrics["test_accuracy"])
    assert model.config.hidden == (16,)


def test_config_json_records_every_resolved_option(cli, tmp_path):
    out = tmp_path / "run"
    assert cli("train", "--epochs", 1, "--seed", 7, "--optimizer", "sgd", "--lr", 0.1, "--out", out, "--quiet")[0] == 0
    config = read_json(out / "config.json")
    assert set(options.BY_NAME) <= set(config["options"])
    assert config["options"]["optimizer"] == "sgd" and config["options"]["lr"] == 0.1
    assert config["seed"] == config["options"]["seed"] == 7
    assert (config["backend"], config["device"]) == ("numpy", "cpu")
    assert config["versions"]["numpy"] == np.__version__
    assert config["versions"]["xpnet"] == xpnet.__version__


def test_output_is_one_line_per_epoch_and_a_summary_when_not_a_terminal(cli, tmp_path):
    out = tmp_path / "run"
    code, stdout, _ = cli("--epochs", 3, "--out", out)
    assert code == 0
    lines = stdout.splitlines()
    assert [line.split()[1] for line in lines[:3]] == ["1/3", "2/3", "3/3"]
    accuracy = read_json(out / "metrics.json")["test_accuracy"]
    assert lines[3].startswith(f"test accuracy {100 * accuracy:.2f}%")
    assert str(out) in lines[3]
    assert len(lines) == 4


def test_json_mode_prints_only_the_summary_on_stdout(cli, tmp_path):
    out = tmp_path / "run"
    code, stdout, stderr = cli("--epochs", 2, "--out", out, "--json")
    assert code == 0
    summary = json.loads(stdout)
    metrics = read_json(out / "metrics.json")
    assert summary["test_accuracy"] == metrics["test_accuracy"]
    assert summary["epochs"] == 2 and summary["run_dir"] == str(out)
    assert stderr.count("epoch ") == 2  # progress moved to stderr


def test_default_run_folder_is_timestamped_under_runs(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli("--epochs", 1, "--quiet")[0] == 0
    assert cli("--epochs", 1, "--quiet")[0] == 0
    folders = sorted((tmp_path / "runs").iterdir())
    assert len(folders) == 2
    assert all((folder / "metrics.json").is_file() for folder in folders)


def test_early_stopping_without_val_split_holds_out_a_tenth_of_the_training_data(cli, tmp_path):
    out = tmp_path / "run"
    assert cli("--epochs", 3, "--early-stopping", 1, "--out", out, "--quiet")[0] == 0
    assert read_json(out / "config.json")["options"]["val_split"] == EARLY_STOPPING_VAL_SPLIT
    history = xpnet.load(out / "model.npz").history
    assert all(record["val_loss"] is not None for record in history)
    # Validation and test are different data: the test numbers are not the validation numbers.
    metrics = read_json(out / "metrics.json")
    assert [r["test_loss"] for r in metrics["epochs"]] != [r["val_loss"] for r in history]


def test_config_file_keys_in_either_case_and_command_line_overrides(cli, tmp_path):
    config = tmp_path / "job.toml"
    config.write_text('hidden = [24, 12]\nbatch-size = 64\nlr = 0.002\nepochs = 1\noptimizer = "sgd"\nquiet = true\n')
    out = tmp_path / "run"
    code, stdout, _ = cli("--config", config, "--optimizer", "adam", "--out", out)
    assert (code, stdout) == (0, "")
    resolved = read_json(out / "config.json")["options"]
    assert resolved["hidden"] == [24, 12] and resolved["batch_size"] == 64 and resolved["lr"] == 0.002
    assert resolved["optimizer"] == "adam"


def test_true_false_options_can_be_turned_off_after_a_config_file_set_them(cli, tmp_path):
    config = tmp_path / "job.toml"
    config.write_text("epochs = 1\nquiet = true\njson = true\ntf32 = true\n")
    out = tmp_path / "run"
    code, stdout, _ = cli("--config", config, "--no-quiet", "--no-json", "--no-tf32", "--out", out)
    assert code == 0
    assert stdout.splitlines()[0].startswith("epoch 1/1  train loss")
    assert stdout.splitlines()[-1].startswith("test accuracy")  # a sentence, not JSON
    resolved = read_json(out / "config.json")["options"]
    assert (resolved["quiet"], resolved["json"], resolved["tf32"]) == (False, False, False)
    code, stdout, _ = cli("--config", config, "--quiet", "--out", tmp_path / "again")
    assert code == 0 and json.loads(stdout)["epochs"] == 1  # the file's json = true still applies


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("learning_rate = 0.1\n", r"unknown key 'learning_rate'"),
        ('epochs = "ten"\n', r"epochs must be an integer, got 'ten'"),
        ("hidden = [1.5]\n", r"hidden must be a list of widths"),
        ("lr = = 1\n", r"is not valid TOML"),
        ("batch-size = 8\nbatch_size = 16\n", r"sets 'batch_size' twice"),
        (b"\xff\xfeBAD", r"job.toml is not UTF-8 text \(byte 0 cannot be decoded\); save it as UTF-8"),
    ],
)
def test_bad_config_files_are_one_line_errors(cli, tmp_path, text, pattern):
    config = tmp_path / "job.toml"
    config.write_bytes(text if isinstance(text, bytes) else text.encode())
    assert_usage_error(cli("--config", config, "--out", tmp_path / "run"), pattern)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("argv", "pattern"),
    [
        (["--bogus"], r"unrecognized arguments: --bogus; see 'xpnet train --help'"),
        (["frobnicate"], r"invalid choice: 'frobnicate'"),
        (["--dataset", "no-such-data"], r"no-such-data"),
        (["--dataset", ""], r"the dataset name is empty; pass digits, mnist, fashion-mnist, or a path"),
        (["--epochs", "ten"], r"--epochs: invalid int value: 'ten'"),
        (["--epochs", "0"], r"epochs must be a positive integer"),
        (["--batch-size", "-5"], r"batch size must be a positive integer"),
        (["--hidden", "0"], r"hidden layer widths must be positive"),
        (["--lr", "0"], r"learning rate must be positive"),
        (["--activation", "swishy"], r"unknown activation 'swishy'"),
        (["--val-split", "1.5"], r"val_split must be in \[0, 1\)"),
        (["--device", "tpu"], r"unknown device 'tpu'"),
        (
            ["--optimizer", "lbfgs", "--checkpoint-every", "5"],
            r"--optimizer lbfgs takes no minibatch steps for --checkpoint-every to count: it checkpoints after each "
            r"epoch \(one run of --lbfgs-iterations\); drop --checkpoint-every",
        ),
        (["--optimizer", "lbfgs", "--distributed"], r"--optimizer lbfgs trains on the whole training set in one"),
        (["--optimizer", "lbfgs", "--weight-decay", "0.1"], r"give alpha instead of weight_decay=0.1"),
        (["--optimizer", "lbfgs", "--max-fun", "0"], r"max_fun must be a positive integer"),
        (["--config", "/no/such/job.toml"], r"config file /no/such/job.toml does not exist"),
        (["evaluate", "/no/such/model.npz"], r"no such model file"),
    ],
)
def test_bad_input_exits_2_with_one_line(cli, tmp_path, argv, pattern):
    out = ["--out", tmp_path / "run"] if argv[0].startswith("-") else []
    assert_usage_error(cli(*argv, *out), pattern)
    assert not (tmp_path / "run").exists()


def truncated_idx(folder: Path) -> tuple[Path, Path]:
    images = np.zeros((6, 2, 2), dtype=np.uint8)
    labels = np.array([0, 1, 2, 0, 1, 2], dtype=np.uint8)
    folder.mkdir()
    for name, array in zip(loaders.IDX_NAMES.values(), (images, labels, images, labels), strict=True):
        (folder / name).write_bytes(encode_idx(array))
    damaged = folder / loaders.IDX_NAMES["x_test"]
    damaged.write_bytes(damaged.read_bytes()[:-3])
    return folder, damaged


def text_file(path: Path, text: str) -> tuple[Path, Path]:
    path.write_text(text)
    return path, path


def csv_file(path: Path, labels: list[int]) -> tuple[Path, Path]:
    """A Kaggle-layout CSV of one pixel per row; the fixed split puts the last 1/6 of ``labels`` in
    the test part and the others in training."""
    order = np.random.default_rng(loaders.CSV_SPLIT_SEED).permutation(len(labels))
    rows = [None] * len(labels)
    test_rows = int(len(labels) * loaders.CSV_TEST_FRACTION)
    for label, row in zip(labels, [*order[test_rows:], *order[:test_rows]], strict=True):
        rows[row] = f"{label},{row % 256}"
    path.write_text("label,pixel0\n" + "\n".join(rows) + "\n")
    return path, path


def npz_file(path: Path, y_train, y_test) -> tuple[Path, Path]:
    np.savez(
        path, x_train=np.zeros((len(y_train), 2)), y_train=y_train, x_test=np.zeros((len(y_test), 2)), y_test=y_test
    )
    return path, path


@pytest.mark.parametrize(
    ("make", "pattern"),
    [
        (lambda tmp: truncated_idx(tmp / "idx"), r"truncated IDX file"),
        (
            lambda tmp: text_file(tmp / "uneven.csv", "label,pixel0\n1,2\n1,2,3\n"),
            r"line 3 has 3 columns but the first row has 2",
        ),
        (
            lambda tmp: csv_file(tmp / "stray.csv", [99, *range(10)] * 6),
            r"the training labels run to 99 but 89 of the classes 0\.\.99 never appear \(10, 11, 12, 13, 14, \.\.\.\); "
            r"relabel the classes as 0\.\.K-1",
        ),
        (
            lambda tmp: csv_file(tmp / "zeros.csv", [0] * 12),
            r"every training label is 0; a classifier needs at least 2",
        ),
        (
            lambda tmp: npz_file(tmp / "gaps.npz", [0, 5, 1000], [0]),
            r"998 of the classes 0\.\.1000 never appear \(1, 2, 3, 4, 6, \.\.\.\)",
        ),
        (lambda tmp: npz_file(tmp / "unseen.npz", [0, 1, 2], [7]), r"test label 7 is out of range"),
        (lambda tmp: npz_file(tmp / "negative.npz", [0, 1, -1], [0]), r"include -1; labels must be class numbers"),
        (lambda tmp: (tmp / "absent.csv",) * 2, r"no such file or folder; check the path"),
    ],
    ids=[
        "truncated-idx",
        "uneven-csv",
        "stray-label",
        "one-class",
        "label-gaps",
        "unseen-test-label",
        "negative",
        "missing",
    ],
)
def test_dataset_problems_exit_2_naming_the_file_and_leave_no_run_folder(cli, tmp_path, make, pattern):
    dataset, named = make(tmp_path)
    out = tmp_path / "run"
    result = cli("--dataset", dataset, "--epochs", 1, "--out", out)
    assert_usage_error(result, pattern)
    assert str(named) in result[2]
    assert not out.exists()


@pytest.mark.skipif(cuda_available(), reason="a GPU is present")
def test_cuda_without_a_gpu_is_a_one_line_error(cli, tmp_path):
    assert_usage_error(cli("--device", "cuda", "--out", tmp_path / "run"), r"CUDA was requested.*--device cpu")
    assert not (tmp_path / "run").exists()


def test_unwritable_out_is_a_one_line_error(cli, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert_usage_error(
        cli("--epochs", 1, "--out", blocker / "run"), r"cannot create run folder .*choose a writable --out"
    )


def test_a_finished_run_is_never_overwritten(cli, tmp_path):
    out = tmp_path / "run"
    assert cli("--epochs", 1, "--out", out, "--quiet")[0] == 0
    before = {path.name: path.read_bytes() for path in out.iterdir()}
    assert_usage_error(cli("--epochs", 2, "--lr", 0.01, "--out", out), r"already holds a run")
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before


def test_a_huge_learning_rate_ends_with_the_divergence_error_not_a_flood_of_warnings(cli, tmp_path):
    code, _, stderr = cli("--optimizer", "sgd", "--lr", 1e308, "--epochs", 2, "--out", tmp_path / "run")
    assert code == 2 and "Traceback" not in stderr
    lines = stderr.splitlines()
    assert len(lines) <= 3 and "encountered in" not in stderr
    assert lines[-1].startswith("xpnet: error: training diverged in epoch 1: the loss became NaN or infinite")
    assert "Try a learning rate 10x smaller" in lines[-1]


def test_each_distinct_warning_prints_once(cli, monkeypatch):
    def warns_repeatedly(args):
        for _ in range(50):
            warnings.warn("the same thing again", stacklevel=1)
            warnings.warn("overflow encountered in cast", RuntimeWarning, stacklevel=1)
        warnings.warn("something else", stacklevel=1)
        return 0

    monkeypatch.setattr(evaluate, "run", warns_repeatedly)
    assert cli("evaluate", "model.npz") == (
        0,
        "",
        "xpnet: warning: the same thing again\n"
        "xpnet: warning: overflow encountered in cast\n"  # outside training no guard reports it: shown once
        "xpnet: warning: something else\n",
    )


def test_running_out_of_memory_is_a_one_line_error(cli, tmp_path, monkeypatch):
    def allocate_too_much(*args, **kwargs):
        return np.empty(10**14, dtype=np.float64)  # 800 TB: NumPy raises its _ArrayMemoryError

    monkeypatch.setattr(xpnet.Model, "fit", allocate_too_much)
    assert_usage_error(
        cli("--epochs", 1, "--out", tmp_path / "run"),
        r"^xpnet: error: out of memory \(Unable to allocate [\d.]+ TiB for an array with shape \(100000000000000,\) "
        r"and data type float64\); free memory, or ask for less: a smaller --hidden or --batch-size",
    )


def test_running_out_of_memory_while_loading_names_the_dataset(cli, tmp_path, monkeypatch):
    def allocate_too_much(*args, **kwargs):
        return np.empty(10**14, dtype=np.float64)

    monkeypatch.setattr(datasets, "load", allocate_too_much)
    assert_usage_error(
        cli("--epochs", 1, "--out", tmp_path / "run"),
        r"^xpnet: error: out of memory while loading the dataset digits: free memory, or use a smaller dataset$",
    )
    assert not (tmp_path / "run").exists()


def test_training_warnings_print_as_one_line_and_are_recorded(cli, tmp_path):
    # A vanishing learning rate leaves the network at chance level: the warning names the causes.
    code, _, stderr = cli("--epochs", 3, "--lr", 1e-9, "--out", tmp_path / "run")
    assert code == 0
    warning_lines = [line for line in stderr.splitlines() if line.startswith("xpnet: warning: ")]
    assert len(warning_lines) == 1 and warning_lines[0].startswith("xpnet: warning: training accuracy is")
    recorded = read_json(tmp_path / "run" / "metrics.json")["warnings"]
    assert recorded == [warning_lines[0].removeprefix("xpnet: warning: ")]


def test_quiet_prints_nothing_but_keeps_the_warnings_in_the_results(cli, tmp_path):
    code, stdout, stderr = cli("--epochs", 3, "--lr", 1e-9, "--out", tmp_path / "run", "--quiet", "--json")
    assert code == 0 and stderr == ""
    summary = json.loads(stdout)
    assert len(summary["warnings"]) == 1 and summary["warnings"][0].startswith("training accuracy is")
    assert read_json(tmp_path / "run" / "metrics.json")["warnings"] == summary["warnings"]


def test_a_run_without_warnings_records_none(digits_run):
    assert read_json(digits_run / "metrics.json")["warnings"] == []


def test_evaluate_reports_the_saved_model_accuracy(cli, tmp_path):
    out = tmp_path / "run"
    assert cli("--epochs", 2, "--out", out, "--quiet")[0] == 0
    code, stdout, _ = cli("evaluate", out / "model.npz", "--dataset", "digits", "--device", "cpu", "--json")
    assert code == 0
    result = json.loads(stdout)
    assert result["test_accuracy"] == pytest.approx(read_json(out / "metrics.json")["test_accuracy"])
    assert result["samples"] == 359


def test_evaluate_refuses_a_corrupt_model_file(cli, tmp_path):
    damaged = tmp_path / "model.npz"
    damaged.write_bytes(b"PK\x03\x04 this is not a zip archive")
    assert_usage_error(cli("evaluate", damaged), r"model\.npz: not a readable xpnet model file")


def test_predictions_csv_layouts():
    labels = np.array([7, 2, 1])
    assert predictions_csv(labels, PLAIN_LAYOUT) == "index,label\n0,7\n1,2\n2,1\n"
    assert predictions_csv(labels, KAGGLE_LAYOUT) == "ImageId,Label\n1,7\n2,2\n3,1\n"


def digits_pixels(count: int) -> np.ndarray:
    """The first ``count`` digits test images as 8x8 uint8 pixels 0..255, as a CSV or IDX file holds them."""
    _, _, x_test, _ = xpnet.load_digits()
    return np.round(x_test[:count] * 255).astype(np.uint8).reshape(count, 8, 8)


def kaggle_test_csv(path: Path, pixels: np.ndarray) -> Path:
    """Kaggle's test.csv layout: a pixel0,pixel1,... header and no label column."""
    flat = pixels.reshape(len(pixels), -1)
    header = ",".join(f"pixel{index}" for index in range(flat.shape[1]))
    path.write_text(header + "\n" + "".join(",".join(map(str, row)) + "\n" for row in flat.tolist()))
    return path


def idx_images(path: Path, pixels: np.ndarray) -> Path:
    path.write_bytes(encode_idx(pixels))
    return path


def npy_inputs(path: Path, pixels: np.ndarray) -> Path:
    np.save(path, pixels.reshape(len(pixels), -1).astype(np.float32) / np.float32(255))
    return path


@pytest.mark.parametrize(
    ("write", "name", "kaggle"),
    [(kaggle_test_csv, "test.csv", True), (idx_images, "t10k-images-idx3-ubyte", False), (npy_inputs, "x.npy", False)],
    ids=["kaggle-csv", "idx", "npy"],
)
def test_predict_writes_the_model_predictions(cli, tmp_path, digits_run, write, name, kaggle):
    pixels = digits_pixels(20)
    inputs = write(tmp_path / name, pixels)
    out = tmp_path / "predictions.csv"
    code, stdout, _ = cli("predict", digits_run / "model.npz", inputs, "--out", out, *(["--kaggle"] if kaggle else []))
    assert (code, stdout) == (0, f"wrote 20 predictions to {out}\n")
    with out.open(newline="") as handle:
        header, *rows = list(csv.reader(handle))
    assert header == (["ImageId", "Label"] if kaggle else ["index", "label"])
    assert [int(number) for number, _ in rows] == list(range(1, 21) if kaggle else range(20))
    expected = xpnet.load(digits_run / "model.npz").predict(pixels.reshape(20, 64).astype(np.float32) / 255)
    assert [int(label) for _, label in rows] == np.asarray(expected).tolist()


def test_predict_names_the_inputs_whose_width_is_wrong(cli, tmp_path, digits_run):
    narrow = kaggle_test_csv(tmp_path / "narrow.csv", digits_pixels(3).reshape(3, 64)[:, :60])
    model = digits_run / "model.npz"
    assert_usage_error(
        cli("predict", model, narrow, "--out", tmp_path / "p.csv"),
        rf"^xpnet: error: {re.escape(str(narrow))}: 60 features per sample but {re.escape(str(model))} expects 64; "
        "pass inputs shaped like its training data$",
    )
    assert not (tmp_path / "p.csv").exists()


def test_predict_and_evaluate_take_a_run_folder(cli, tmp_path, digits_run):
    inputs = idx_images(tmp_path / "images", digits_pixels(5))
    assert cli("predict", digits_run, inputs, "--out", tmp_path / "p.csv")[0] == 0
    assert len((tmp_path / "p.csv").read_text().splitlines()) == 6
    code, stdout, _ = cli("evaluate", digits_run, "--json")
    assert code == 0
    assert json.loads(stdout)["test_accuracy"] == read_json(digits_run / "metrics.json")["test_accuracy"]
    assert_usage_error(cli("evaluate", tmp_path / "inputs-only"), r"inputs-only: no such model file")
    (tmp_path / "empty-run").mkdir()
    assert_usage_error(cli("evaluate", tmp_path / "empty-run"), r"empty-run/model\.npz: no such model file")


@pytest.mark.parametrize("quiet", [False, True])
def test_predict_warnings_are_hidden_by_quiet(cli, tmp_path, digits_run, monkeypatch, quiet):
    read_inputs = datasets.read_inputs

    def read_with_a_warning(path):
        warnings.warn("these inputs look odd", stacklevel=1)
        return read_inputs(path)

    monkeypatch.setattr(datasets, "read_inputs", read_with_a_warning)
    inputs = idx_images(tmp_path / "images", digits_pixels(5))
    code, stdout, stderr = cli("predict", digits_run, inputs, "--out", tmp_path / "p.csv", *["--quiet"] * quiet)
    assert code == 0 and len((tmp_path / "p.csv").read_text().splitlines()) == 6
    if quiet:
        assert (stdout, stderr) == ("", "")
    else:
        assert stdout.startswith("wrote 5 predictions") and stderr == "xpnet: warning: these inputs look odd\n"


def test_evaluate_defaults_to_the_dataset_the_run_recorded(cli, tmp_path):
    blobs = write_blobs(tmp_path / "blobs.npz")
    run = tmp_path / "run"
    assert cli("--dataset", blobs, "--epochs", 5, "--lr", 0.01, "--out", run, "--quiet")[0] == 0
    code, stdout, _ = cli("evaluate", run / "model.npz", "--json")
    assert code == 0
    assert json.loads(stdout) == {
        "dataset": str(blobs),
        "samples": 50,
        "test_loss": pytest.approx(read_json(run / "metrics.json")["test_loss"], rel=1e-5),
        "test_accuracy": read_json(run / "metrics.json")["test_accuracy"],
    }
    assert_usage_error(
        cli("evaluate", run, "--dataset", "digits"),
        rf"^xpnet: error: digits: 64 features per sample but {re.escape(str(run / 'model.npz'))} expects 5; "
        "choose the dataset it was trained on with --dataset$",
    )


def test_check_passes_on_the_cpu(cli):
    code, stdout, _ = cli("check", "--device", "cpu", "--json")
    assert code == 0
    report = json.loads(stdout)
    assert report["passed"] and len(report["checks"]) == 3
    assert all(check["passed"] for check in report["checks"])


def test_check_fails_with_exit_1_when_the_numerics_are_unsafe(cli, monkeypatch):
    def naive_softmax_cross_entropy(logits, labels):
        xp = array_namespace(logits)
        probabilities = xp.exp(logits) / xp.sum(xp.exp(logits), axis=1, keepdims=True)  # overflows
        picked = xp.take_along_axis(probabilities, labels[:, None], axis=1)
        return -xp.mean(xp.log(picked)), probabilities

    monkeypatch.setattr(check.losses, "softmax_cross_entropy", naive_softmax_cross_entropy)
    code, stdout, _ = cli("check", "--device", "cpu")
    assert code == 1
    failed = [line for line in stdout.splitlines() if line.startswith("FAIL")]
    assert len(failed) == 1 and "extreme logits" in failed[0] and "expected 10000" in failed[0]


def test_info_lists_versions_backends_and_blas(cli):
    code, stdout, _ = cli("info", "--json")
    assert code == 0
    found = json.loads(stdout)
    assert found["versions"]["numpy"] == np.__version__
    assert "numpy" in found["backends"]
    assert isinstance(found["gpus"], list) and isinstance(found["blas"], list)


def test_python_dash_m_xpnet_runs_as_a_program(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-m", "xpnet", "--epochs", "1", "--out", str(out), "--json"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["run_dir"] == str(out)
    bad = subprocess.run(
        [sys.executable, "-m", "xpnet", "--lr", "-1"], capture_output=True, text=True, env=env, check=False
    )
    assert bad.returncode == 2 and bad.stderr.startswith("xpnet: error: learning rate must be positive")
    assert bad.stderr.count("\n") == 1


def test_trains_on_an_npz_path(cli, tmp_path):
    path = write_blobs(tmp_path / "blobs.npz")
    out = tmp_path / "run"
    assert cli("--dataset", path, "--epochs", 5, "--lr", 0.01, "--out", out, "--quiet")[0] == 0
    metrics = read_json(out / "metrics.json")
    assert metrics["dataset"] == str(path)
    assert metrics["test_accuracy"] > 0.9


@pytest.mark.cuda
@pytest.mark.skipif(not cuda_available(), reason="needs CuPy and a CUDA GPU")
def test_cuda_run_checks_and_records_the_gpu(cli, tmp_path):
    code, stdout, _ = cli("check", "--device", "cuda", "--json")
    assert code == 0 and json.loads(stdout)["device"] == "cuda:0"
    out = tmp_path / "run"
    assert cli("--device", "cuda", "--epochs", 2, "--out", out, "--quiet")[0] == 0
    metrics = read_json(out / "metrics.json")
    assert (metrics["backend"], metrics["device"]) == ("cupy", "cuda:0")
    assert xpnet.load(out / "model.npz").evaluate(*xpnet.load_digits()[2:])["accuracy"] == pytest.approx(
        metrics["test_accuracy"]
    )


def test_the_container_job_file_is_a_valid_config(tmp_path):
    job = REPO / "examples" / "container_job" / "job.toml"
    args = argparse.Namespace(config=str(job), **dict.fromkeys(options.BY_NAME))
    resolved = options.resolve(args)
    assert resolved.run["dataset"] == "mnist" and resolved.run["device"] == "cuda"
    assert resolved.config.hidden == (800,) and resolved.config.batch_size == 128
