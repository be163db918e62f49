"""Sweep files: every bad input is one ``xpnet: error:`` line, exit code 2, before any trial starts (no
sweep folder is made); a good file is read with its defaults worked out."""

from __future__ import annotations

import re

import pytest

from xpnet.cli import main
from xpnet.sweep import spec

GOOD_SWEEP = '[sweep]\nmethod = "random"\ntrials = 4\n'
GOOD_BASE = "[base]\nepochs = 2\nval-split = 0.2\n"
GOOD_PARAMETERS = "[parameters]\nlr = { min = 1e-4, max = 1e-1, log = true }\n"


def write(tmp_path, sweep=GOOD_SWEEP, base=GOOD_BASE, parameters=GOOD_PARAMETERS, extra=""):
    path = tmp_path / "search.toml"
    path.write_text(sweep + base + parameters + extra)
    return path


def test_a_good_file_is_read_with_its_defaults(tmp_path):
    sweep = spec.read(write(tmp_path, parameters=GOOD_PARAMETERS + "hidden = { values = [[16], 32, [16, 8]] }\n"))
    assert sweep.settings["name"] == "search"  # the file's stem
    assert sweep.settings["metric"] == "val_loss" and sweep.settings["goal"] == "minimize"
    assert sweep.settings["pruner"] == "none" and sweep.settings["jobs"] == 1 and sweep.settings["storage"] == ""
    assert sweep.settings["refit"] is False
    assert sweep.base == {"epochs": 2, "val_split": 0.2}
    lr, hidden = sweep.parameters
    assert (lr.low, lr.high, lr.log) == (1e-4, 1e-1, True)
    assert hidden.values == ([16], [32], [16, 8])  # a width alone is a list of one
    assert hidden.choices() == ["[16]", "[32]", "[16, 8]"]
    # sweep.json holds the same layout, and reads back to the same sweep
    assert spec.parse(sweep.record(), "sweep.json") == sweep


def test_the_goal_follows_the_metric_and_a_grid_runs_every_point(tmp_path):
    sweep = spec.read(
        write(
            tmp_path,
            sweep='[sweep]\nmethod = "grid"\nmetric = "val_accuracy"\n',
            parameters="[parameters]\nlr = { values = [0.1, 0.01] }\n"
            'optimizer = { values = ["adam", "sgd", "momentum"] }\n',
        )
    )
    assert sweep.settings["goal"] == "maximize"
    assert sweep.settings["trials"] == 6
    assert sweep.grid() == {"lr": [0.1, 0.01], "optimizer": ["adam", "sgd", "momentum"]}


BAD = [
    ({"sweep": GOOD_SWEEP + "trails = 4\n"}, r"\[sweep\]: unknown key 'trails'; valid keys are method, metric"),
    ({"extra": "[sweeps]\nx = 1\n"}, r"unknown table \[sweeps\]"),
    (
        {"parameters": "[parameters]\ncolour = { values = [1, 2] }\n"},
        r"\[parameters\]: 'colour' is not a training option; the options a sweep can search are hidden, ",
    ),
    ({"parameters": '[parameters]\ndevice = { values = ["cpu"] }\n'}, r"'device' is an option of where or how a run"),
    ({"parameters": "[parameters]\nlr = { values = [] }\n"}, r"\[parameters\] lr: values must be a non-empty list"),
    ({"parameters": "[parameters]\n"}, r"\[parameters\]: no parameters"),
    (
        {"parameters": "[parameters]\nlr = { min = 0.1, max = 0.01 }\n"},
        r"\[parameters\] lr: min 0.1 is above max 0.01; swap them",
    ),
    (
        {"parameters": "[parameters]\nlr = { min = 0.0, max = 0.1, log = true }\n"},
        r"\[parameters\] lr: a log range must stay above zero, but min is 0.0",
    ),
    ({"parameters": '[parameters]\nlr = { values = ["fast"] }\n'}, r"lr must be a number, got 'fast'"),
    ({"parameters": "[parameters]\ndropout = { values = [0.2, 1.5] }\n"}, r"dropout must be in \[0, 1\), got 1.5"),
    ({"parameters": "[parameters]\nhidden = { min = 8, max = 64 }\n"}, r"hidden takes a list of values, not a range"),
    ({"parameters": "[parameters]\nepochs = { values = [1, 2] }\n"}, r"epochs is also set in \[base\]"),
    ({"sweep": '[sweep]\nmethod = "tpe"\nmetric = "f1"\ntrials = 2\n'}, r"metric 'f1' is not one a run records"),
    ({"sweep": GOOD_SWEEP + 'metric = "test_accuracy"\n'}, r"would choose by the test set"),
    ({"base": "[base]\nepochs = 2\n"}, r"metric 'val_loss' needs validation data in every trial: set val-split"),
    ({"base": GOOD_BASE + 'out = "runs/x"\n'}, r"out cannot be set for a sweep's trials"),
    ({"sweep": '[sweep]\nmethod = "grid"\n'}, r"a grid needs values = \[...\] for every parameter, but lr is a range"),
    (
        {
            "sweep": '[sweep]\nmethod = "grid"\ntrials = 3\n',
            "parameters": "[parameters]\nlr = { values = [0.1, 0.2] }\n",
        },
        r"trials = 3 but the grid has 2 points",
    ),
    ({"sweep": '[sweep]\nmethod = "tpe"\n'}, r"trials is missing"),
    ({"sweep": '[sweep]\nmethod = "bayes"\ntrials = 2\n'}, r"method 'bayes' is not one of grid, random, tpe"),
    ({"sweep": GOOD_SWEEP + 'pruner = "asha"\n'}, r"pruner 'asha' is not one of none, median, hyperband"),
    ({"sweep": GOOD_SWEEP + "jobs = 0\n"}, r"jobs must be a whole number of at least 1, got 0"),
    ({"sweep": GOOD_SWEEP + 'refit = "yes"\n'}, r"\[sweep\]: refit must be true or false, got 'yes'"),
    ({"base": GOOD_BASE + 'dataset = "no-such-file.csv"\n'}, r"no-such-file.csv"),
    (
        {"parameters": "[parameters]\nepochs = { min = 1, max = 3, step = 5 }\n", "base": "[base]\nval-split = 0.2\n"},
        r"\[parameters\] epochs: step 5 is larger than the range 1..3, which then holds one value",
    ),
    (
        {"parameters": "[parameters]\nlr = { min = 0.01, max = 0.02, step = 0.5 }\n"},
        r"\[parameters\] lr: step 0.5 is larger than the range 0.01..0.02",
    ),
]


@pytest.mark.parametrize(("parts", "message"), BAD, ids=[message for _, message in BAD])
def test_bad_input_is_one_line_and_exit_2_before_any_trial(tmp_path, capsys, parts, message):
    path = write(tmp_path, **parts)
    out = tmp_path / "sweep-folder"
    assert main(["sweep", str(path), "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("xpnet: error: ") and error.count("\n") == 1, error
    assert re.search(message, error), error
    assert not out.exists()


def test_a_sweep_file_that_is_not_utf8_is_one_line_naming_the_encoding(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_bytes(b"\xff\xfeBAD")
    assert main(["sweep", str(path), "--out", str(tmp_path / "s")]) == 2
    error = capsys.readouterr().err
    assert error == f"xpnet: error: sweep file {path} is not UTF-8 text (byte 0 cannot be decoded); save it as UTF-8\n"
    assert not (tmp_path / "s").exists()


def test_a_missing_sweep_file_and_a_bad_jobs_count_are_one_line(tmp_path, capsys):
    assert main(["sweep", str(tmp_path / "none.toml")]) == 2
    assert f"sweep file {tmp_path / 'none.toml'} does not exist" in capsys.readouterr().err
    assert main(["sweep", str(write(tmp_path)), "--jobs", "0", "--out", str(tmp_path / "s")]) == 2
    assert "jobs must be a positive integer, got 0" in capsys.readouterr().err
    assert main(["sweep"]) == 2
    assert "give a sweep file or --summary DIR" in capsys.readouterr().err


def test_an_unreachable_database_is_one_line_naming_it_without_its_password(tmp_path, capsys):
    pytest.importorskip("optuna")
    for url, shown in [
        (f"sqlite:///{tmp_path}/no/such/folder/study.db", f"sqlite:///{tmp_path}/no/such/folder/study.db"),
        ("postgresql://sweeper:secret@127.0.0.1:1/sweeps", "postgresql://sweeper:***@127.0.0.1:1/sweeps"),
    ]:
        path = write(tmp_path, sweep=GOOD_SWEEP + f'storage = "{url}"\n')
        assert main(["sweep", str(path), "--out", str(tmp_path / "s")]) == 2
        error = capsys.readouterr().err
        assert error.startswith(f"xpnet: error: cannot reach the sweep's storage {shown}: "), error
        assert error.count("\n") == 1 and "secret" not in error
        assert not (tmp_path / "s" / "trials").exists()
