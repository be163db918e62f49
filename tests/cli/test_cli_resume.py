"""``python -m xpnet --resume RUN_DIR``: what it continues, what it refuses, and how a stop while the
results are written ends. (Real processes killed and resumed: ``test_resume_kill.py``.)"""

import errno
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from xpnet.cli import main
from xpnet.io import model_file, runs
from xpnet.runner import run as runner
from xpnet.train import checkpoint

REPO = Path(__file__).resolve().parents[2]
OPTIONS = ["--epochs", "3", "--hidden", "16", "--checkpoint-every", "10", "--quiet", "--device", "cpu"]
RESULT_FILES = (runs.MODEL_FILE, runs.CONFUSION_FILE, runs.METRICS_FILE)


def one_error_line(capsys) -> str:
    error = capsys.readouterr().err
    assert error.startswith("xpnet: error: ") and error.count("\n") == 1, error
    return error


def stop_after_epoch(monkeypatch, epoch: int) -> None:
    """Press Ctrl-C (a real SIGINT) as epoch ``epoch`` of the next run ends."""
    measure = runner.TestSetMetrics.on_epoch_end

    def measure_then_stop(self, record):
        measure(self, record)
        if record["epoch"] == epoch:
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(runner.TestSetMetrics, "on_epoch_end", measure_then_stop)


@pytest.fixture
def stopped_run(tmp_path, monkeypatch) -> Path:
    """A run stopped by Ctrl-C after its first epoch."""
    run_dir = tmp_path / "run"
    with monkeypatch.context() as patches:
        stop_after_epoch(patches, 1)
        assert main(["--out", str(run_dir), *OPTIONS]) == 128 + signal.SIGINT
    return run_dir


def test_a_stopped_run_resumes_to_the_end(stopped_run, capsys):
    assert not (stopped_run / runs.METRICS_FILE).exists()
    assert main(["--resume", str(stopped_run), "--quiet"]) == 0
    assert [epoch["epoch"] for epoch in runs.read_json(stopped_run / runs.METRICS_FILE)["epochs"]] == [1, 2, 3]


def test_an_lbfgs_run_stopped_after_an_epoch_resumes_to_the_uninterrupted_runs_model(tmp_path, monkeypatch):
    """Each epoch is an L-BFGS run from the weights alone, so the checkpoint after it is all it needs."""
    options = ["--optimizer", "lbfgs", "--lbfgs-iterations", "5", "--epochs", "3", "--hidden", "16", "--quiet"]
    whole, stopped = tmp_path / "whole", tmp_path / "stopped"
    assert main(["--out", str(whole), *options]) == 0
    with monkeypatch.context() as patches:
        stop_after_epoch(patches, 1)
        assert main(["--out", str(stopped), *options]) == 128 + signal.SIGINT
    assert main(["--resume", str(stopped), "--quiet"]) == 0
    resumed, uninterrupted = (model_file.read(run / runs.MODEL_FILE)[0] for run in (stopped, whole))
    assert resumed["optimizer_steps"] == uninterrupted["optimizer_steps"] == 15
    for name in (name for name in uninterrupted if name.startswith("param/")):
        assert (resumed[name] == uninterrupted[name]).all(), name
    metrics = runs.read_json(stopped / runs.METRICS_FILE)
    assert [epoch["test_loss"] for epoch in metrics["epochs"]] == [
        epoch["test_loss"] for epoch in runs.read_json(whole / runs.METRICS_FILE)["epochs"]
    ]


@pytest.mark.parametrize(
    "given",
    [["--lr", "0.1"], ["--epochs", "5", "--no-tf32"], ["--out", "elsewhere"], ["--config", "job.toml"]],
    ids=["lr", "epochs and a switched-off flag", "out", "config"],
)
def test_options_other_than_where_and_how_to_watch_are_refused_with_resume(stopped_run, capsys, given):
    config = (stopped_run / runs.CONFIG_FILE).read_text()
    assert main(["--resume", str(stopped_run), *given]) == 2
    error = one_error_line(capsys)
    assert f"so {given[0]}" in error and "only --device, --data-dir, --quiet, --json can" in error
    assert "start a new run with another --out" in error
    assert (stopped_run / runs.CONFIG_FILE).read_text() == config
    assert not (stopped_run / runs.METRICS_FILE).exists()


def test_where_and_how_to_watch_may_be_given_again(stopped_run, capsys):
    assert main(["--resume", str(stopped_run), "--device", "cpu", "--no-quiet", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["epochs"] == 3


def test_a_finished_run_is_not_resumed_and_its_files_are_left_alone(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main(["--out", str(run_dir), *OPTIONS]) == 0
    written = {name: (run_dir / name).stat().st_mtime_ns for name in RESULT_FILES}
    assert main(["--resume", str(run_dir)]) == 2
    error = one_error_line(capsys)
    assert f"the run in {run_dir} already finished (metrics.json is there): nothing to resume" in error
    assert f"redraw its plots with 'xpnet plot {run_dir}'" in error
    assert {name: (run_dir / name).stat().st_mtime_ns for name in RESULT_FILES} == written


def test_resume_writes_the_results_of_a_run_whose_training_had_ended(tmp_path):
    run_dir = tmp_path / "run"
    assert main(["--out", str(run_dir), *OPTIONS]) == 0
    finished = {name: (run_dir / name).read_bytes() for name in RESULT_FILES}
    for name in RESULT_FILES:  # as if killed before the results were written
        (run_dir / name).unlink()
    assert main(["--resume", str(run_dir), "--quiet"]) == 0
    assert {name: (run_dir / name).read_bytes() for name in RESULT_FILES} == finished


# Runs the command, delivering real signals to itself while the results are being written.
SIGNALLED_WHILE_WRITING = """
import os, sys
from xpnet.io import runs
from xpnet.cli import main

confusion_record = runs.confusion_record

def signalled(*arguments):
    for number in map(int, sys.argv[1].split(",")):
        os.kill(os.getpid(), number)
    return confusion_record(*arguments)

runs.confusion_record = signalled
sys.exit(main(sys.argv[2:]))
"""


def run_signalled_while_writing(signals: list, *arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", SIGNALLED_WHILE_WRITING, ",".join(str(int(s)) for s in signals), *arguments],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_after_training_waits_for_the_results_and_says_they_are_complete(tmp_path, stop_signal):
    run_dir = tmp_path / "run"
    result = run_signalled_while_writing([stop_signal], "--out", str(run_dir), *OPTIONS)
    assert result.returncode == 128 + stop_signal, result.stderr
    assert result.stderr == (
        f"xpnet: stopped by {signal.Signals(stop_signal).name} after training had ended, once the results "
        f"were written: the run in {run_dir} is complete\n"
    )
    assert len(runs.read_json(run_dir / runs.METRICS_FILE)["epochs"]) == 3
    assert all((run_dir / name).is_file() for name in RESULT_FILES)


def test_a_second_stop_after_training_says_resume_writes_the_results(tmp_path):
    run_dir = tmp_path / "run"
    result = run_signalled_while_writing([signal.SIGINT, signal.SIGINT], "--out", str(run_dir), *OPTIONS)
    assert result.returncode == 128 + signal.SIGINT, result.stderr
    assert result.stderr == (
        "xpnet: stopped at once by a second SIGINT, without a checkpoint; the last good checkpoint (after epoch 3) "
        f"is still in place; resume with: python -m xpnet --resume {run_dir}\n"
    )
    assert not (run_dir / runs.METRICS_FILE).exists()
    assert main(["--resume", str(run_dir), "--quiet"]) == 0
    assert len(runs.read_json(run_dir / runs.METRICS_FILE)["epochs"]) == 3


def test_a_resumed_run_on_a_full_disk_names_the_checkpoint_it_resumed_from(stopped_run, monkeypatch, capsys):
    def disk_full(source, target):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "replace", disk_full)
    assert main(["--resume", str(stopped_run)]) == 2
    error = one_error_line(capsys)
    assert "No space left on device; nothing was overwritten" in error
    assert error.endswith(
        "the last good checkpoint (after epoch 1) is still in place; free disk space or make the folder "
        f"writable, then resume with: python -m xpnet --resume {stopped_run}\n"
    )
    monkeypatch.undo()
    assert checkpoint.resume(stopped_run).model.epochs_done == 1


def test_a_run_stopped_before_its_first_checkpoint_is_started_again_into_the_same_folder(tmp_path, monkeypatch, capsys):
    run_dir = tmp_path / "run"

    def dies_in_its_first_epoch(*arguments, **options):
        raise KeyboardInterrupt

    with monkeypatch.context() as patches:
        patches.setattr(runner.Model, "fit", dies_in_its_first_epoch)
        assert main(["--out", str(run_dir), *OPTIONS]) == 130
    assert sorted(path.name for path in run_dir.iterdir()) == [runs.CONFIG_FILE]
    capsys.readouterr()
    assert main(["--resume", str(run_dir)]) == 2
    error = one_error_line(capsys)
    assert f"the run in {run_dir} stopped before its first checkpoint: nothing to resume" in error
    assert f"start it again with the same options and --out {run_dir}" in error
    assert main(["--out", str(run_dir), *OPTIONS]) == 0


def test_new_run_into_an_interrupted_folder_points_at_resume(tmp_path, capsys):
    (tmp_path / "checkpoint.npz").write_bytes(b"")
    assert main(["--out", str(tmp_path), "--epochs", "1"]) == 2
    assert f"continue it with 'python -m xpnet --resume {tmp_path}'" in capsys.readouterr().err


def test_resume_of_a_folder_without_a_run_is_one_clear_line(tmp_path, capsys):
    assert main(["--resume", str(tmp_path)]) == 2
    assert f"{tmp_path}/config.json does not exist: is {tmp_path} a run folder written by xpnet?" in one_error_line(
        capsys
    )


def test_run_files_are_readable_like_any_new_file(tmp_path):
    assert main(["--out", str(tmp_path / "run"), "--epochs", "1", "--quiet"]) == 0
    umask = os.umask(0)
    os.umask(umask)
    for name in ("config.json", "metrics.json", "model.npz", "checkpoint.npz"):
        assert (tmp_path / "run" / name).stat().st_mode & 0o777 == 0o666 & ~umask


def test_a_full_disk_while_writing_the_results_says_resume_writes_them(tmp_path, monkeypatch, capsys):
    run_dir = tmp_path / "run"
    replace = os.replace

    def disk_full_for_confusion(source, target):
        if Path(target).name == runs.CONFUSION_FILE:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        replace(source, target)

    with monkeypatch.context() as patches:
        patches.setattr(os, "replace", disk_full_for_confusion)
        assert main(["--out", str(run_dir), *OPTIONS]) == 2
    error = one_error_line(capsys)
    assert f"cannot write {run_dir / runs.CONFUSION_FILE}: No space left on device" in error
    assert error.endswith(
        "training ended and its checkpoint is saved: once that is fixed (free disk space, say), write the results "
        f"with: python -m xpnet --resume {run_dir}\n"
    )
    assert main(["--resume", str(run_dir)]) == 0
    assert all((run_dir / name).is_file() for name in RESULT_FILES)


def edit_config(run_dir: Path, **options) -> Path:
    path = run_dir / runs.CONFIG_FILE
    record = json.loads(path.read_text())
    record["options"].update(options)
    path.write_text(json.dumps(record))
    return path


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (
            lambda run_dir: (run_dir / runs.CONFIG_FILE).write_text('{"options": {'),
            r"cannot read {config} \(.*\); the run folder is damaged: --resume continues a run with the options "
            r"{config} recorded when it started: put back that file as it was, or start a new run with another --out",
        ),
        (
            lambda run_dir: edit_config(run_dir, epochs="abc"),
            r"{config}: options: epochs must be an integer, got 'abc'.*put back that file as it was",
        ),
        (
            lambda run_dir: edit_config(run_dir, epochs=5),
            r"{config} records epochs 5 but {run_dir}/checkpoint.npz trained with 3; --resume continues a run",
        ),
    ],
    ids=["damaged-config", "epochs-abc", "edited-epochs"],
)
def test_a_config_that_cannot_be_resumed_names_the_file_and_what_to_do(stopped_run, capsys, damage, message):
    damage(stopped_run)
    assert main(["--resume", str(stopped_run)]) == 2
    error = one_error_line(capsys)
    config = re.escape(str(stopped_run / runs.CONFIG_FILE))
    assert re.search(message.format(config=config, run_dir=re.escape(str(stopped_run))), error), error
    assert not (stopped_run / runs.METRICS_FILE).exists()


def test_a_checkpoint_whose_settings_disagree_with_its_weights_is_refused(stopped_run, capsys):
    path = stopped_run / checkpoint.CHECKPOINT_FILE
    state, run = model_file.read(path)
    state["config"]["hidden"] = [32]  # beside weights 16 wide
    model_file.write(path, state, version=model_file.read_archive(path)[1]["version"], run=run)
    edit_config(stopped_run, hidden=[32])
    assert main(["--resume", str(stopped_run)]) == 2
    assert (
        f"{path}: the settings record hidden [32] but the layers are [16] wide; the file was altered or is corrupt"
        in one_error_line(capsys)
    )
    assert not (stopped_run / runs.MODEL_FILE).exists()


def test_resume_given_a_file_says_to_give_its_folder(stopped_run, capsys):
    path = stopped_run / checkpoint.CHECKPOINT_FILE
    assert main(["--resume", str(path)]) == 2
    assert f"{path} is a file, not a run folder: give the folder that holds it" in one_error_line(capsys)
