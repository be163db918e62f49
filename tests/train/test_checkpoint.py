"""Checkpoints hold the whole run, resume bit for bit from any step, and fail safely."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import xpnet
from xpnet.errors import SettingError
from xpnet.io import model_file
from xpnet.train import checkpoint, model_state
from xpnet.train.callbacks import Callback

SETTINGS = {"hidden": [16], "batch_size": 64, "epochs": 3, "seed": 3}  # 23 steps per epoch on the digits


@pytest.fixture(scope="module")
def digits():
    return xpnet.load_digits()


class StopAtStep(Callback):
    """Simulate a crash right after optimizer step ``step``."""

    def __init__(self, step: int):
        self.step = step

    def on_train_begin(self, model, epochs):
        self.model = model

    def on_batch_end(self, batch):
        if self.model.optimizer.steps == self.step:
            raise RuntimeError("simulated crash")


def metrics(history):
    return [{key: value for key, value in record.items() if key != "seconds"} for record in history]


def assert_same_state(model, reference):
    for array, expected in zip(model.network.parameters(), reference.network.parameters()):
        assert np.array_equal(array, expected)
    assert model.optimizer.steps == reference.optimizer.steps
    assert model.optimizer.state.keys() == reference.optimizer.state.keys()
    for name, arrays in model.optimizer.state.items():
        for array, expected in zip(arrays, reference.optimizer.state[name]):
            assert np.array_equal(array, expected)
    assert metrics(model.history) == metrics(reference.history)


VARIANTS = {
    "adam+dropout": {"optimizer": "adam", "dropout": 0.3, "hidden": [24, 16]},
    "nesterov+step schedule": {"optimizer": "nesterov", "lr": 0.05, "weight_decay": 1e-3, "schedule": "step"},
    "sgd+val_split": {"optimizer": "sgd", "lr": 0.1, "val_split": 0.2},
}


# Crash step -> the step of the last checkpoint (every 4 steps, and at the end of epoch 1 after step 23).
CRASHES = {5: 4, 23: 20, 24: 24, 41: 40}


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("crash_step", CRASHES, ids=lambda step: f"step{step}")
def test_a_run_resumed_after_a_crash_equals_the_uninterrupted_run(tmp_path, digits, variant, crash_step):
    x, y, x_test, y_test = digits
    settings = {**SETTINGS, **VARIANTS[variant]}
    reference = xpnet.Model(**settings)
    reference.fit(x, y, validation_data=None if settings.get("val_split") else (x_test, y_test))
    validation = None if settings.get("val_split") else (x_test, y_test)

    crashed = xpnet.Model(**settings)
    with pytest.raises(RuntimeError, match="simulated crash"):
        crashed.fit(
            x,
            y,
            validation_data=validation,
            callbacks=[checkpoint.Checkpointer(tmp_path, every_steps=4), StopAtStep(crash_step)],
        )
    model, epochs_left = checkpoint.resume(tmp_path)
    assert model.optimizer.steps == CRASHES[crash_step]
    assert epochs_left == SETTINGS["epochs"] - len(model.history)
    assert model.position is not None and model.position.next_batch > 0
    model.fit(x, y, validation_data=validation, epochs=epochs_left, callbacks=[checkpoint.Checkpointer(tmp_path)])
    assert_same_state(model, reference)
    assert checkpoint.resume(tmp_path).epochs_left == 0


@pytest.mark.parametrize("every_steps", [10, 23])
def test_every_epoch_and_every_n_steps_write_the_whole_state(tmp_path, digits, monkeypatch, every_steps):
    x, y, _, _ = digits
    saved = []
    original_write = model_file.write

    def recording_write(path, state, **options):
        original_write(path, state, **options)
        arrays, meta = model_file.read_archive(path)
        history, run = model_state.read(path)[0]["history"], meta["run"]
        saved.append((meta["optimizer_steps"], len(history), run["finished"]))
        for name, parameter in zip(model.network.parameter_names(), model.network.parameters()):
            assert np.array_equal(arrays[f"param/{name}"], parameter)
        for buffer, values in model.optimizer.state.items():
            for index, value in enumerate(values):
                assert np.array_equal(arrays[f"optimizer/{buffer}/{index}"], value)

    monkeypatch.setattr(model_file, "write", recording_write)
    model = xpnet.Model(**{**SETTINGS, "epochs": 4})
    model.fit(x, y, callbacks=[checkpoint.Checkpointer(tmp_path, every_steps=every_steps)])
    # After every epoch (23 steps) and every N steps; where both fall on one step, one write.
    expected = [(step, step // 23, False) for step in range(1, 93) if step % every_steps == 0 or step % 23 == 0]
    assert saved == [*expected, (92, 4, True)]


def epoch_end_checkpoint(tmp_path, model, epochs: int, monkeypatch) -> tuple[int, int]:
    """The bytes JSON-encoded by a checkpoint at the end of epoch ``epochs + 1`` of ``model`` (its history
    made ``epochs`` long first), and the checkpoint file's size."""
    record = model.history[0]
    model.history = [{**record, "epoch": number} for number in range(1, epochs + 1)]
    checkpointer = checkpoint.Checkpointer(tmp_path)
    checkpointer.on_train_begin(model, 1)
    checkpointer.save()  # a checkpointer's first save writes the whole history, once
    model.history.append({**record, "epoch": epochs + 1})
    encoded = []
    real_dumps = json.dumps

    def counting_dumps(*args, **options):
        text = real_dumps(*args, **options)
        encoded.append(len(text))
        return text

    with monkeypatch.context() as patch:
        patch.setattr(json, "dumps", counting_dumps)
        checkpointer.save()
    return sum(encoded), (tmp_path / checkpoint.CHECKPOINT_FILE).stat().st_size


def test_a_checkpoint_costs_the_same_after_5_and_5000_epochs(tmp_path, digits, monkeypatch):
    """What a save encodes and writes does not grow with the history: a few digits more (the epoch's
    number, the journal's length), where the whole history would be about a megabyte."""
    x, y, _, _ = digits
    model = xpnet.Model(**{**SETTINGS, "epochs": 1})
    model.fit(x, y)
    short = epoch_end_checkpoint(tmp_path / "short", model, 5, monkeypatch)
    long = epoch_end_checkpoint(tmp_path / "long", model, 5000, monkeypatch)
    assert 0 <= long[0] - short[0] < 16 and 0 <= long[1] - short[1] < 16, (short, long)
    assert checkpoint.resume(tmp_path / "long").model.history == model.history


def test_a_full_disk_fails_clearly_and_keeps_the_last_good_checkpoint(tmp_path, digits, monkeypatch):
    x, y, _, _ = digits
    real_replace = os.replace

    def replace_until_disk_full(source, target):
        if len(model.history) >= 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", replace_until_disk_full)
    model = xpnet.Model(**SETTINGS)
    with pytest.raises(checkpoint.CheckpointError) as caught:
        model.fit(x, y, callbacks=[checkpoint.Checkpointer(tmp_path)])
    message = str(caught.value)
    assert "No space left on device" in message
    assert message.endswith(
        "the last good checkpoint (after epoch 1) is still in place; free disk space or make the folder "
        f"writable, then resume with: python -m xpnet --resume {tmp_path}"
    )
    assert "\n" not in message
    monkeypatch.undo()
    resumed, epochs_left = checkpoint.resume(tmp_path)
    assert len(resumed.history) == 1 and epochs_left == 2
    assert sorted(path.name for path in tmp_path.iterdir()) == [checkpoint.HISTORY_FILE, checkpoint.CHECKPOINT_FILE]


def disk_full(source, target):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_resumed_run_that_cannot_write_names_the_checkpoint_it_resumed_from(tmp_path, digits, monkeypatch):
    x, y, _, _ = digits
    with pytest.raises(RuntimeError, match="simulated crash"):
        xpnet.Model(**SETTINGS).fit(x, y, callbacks=[checkpoint.Checkpointer(tmp_path, every_steps=10), StopAtStep(35)])
    model, epochs_left = checkpoint.resume(tmp_path)  # from step 30: epoch 2 after its step 7
    monkeypatch.setattr(os, "replace", disk_full)
    with pytest.raises(checkpoint.CheckpointError, match=r"\(in epoch 2 after step 7\) is still in place; free disk"):
        model.fit(x, y, epochs=epochs_left, callbacks=[checkpoint.Checkpointer(tmp_path, every_steps=10)])
    monkeypatch.undo()
    assert checkpoint.resume(tmp_path).model.optimizer.steps == 30


def test_a_run_that_cannot_write_its_first_checkpoint_says_to_start_again(tmp_path, digits, monkeypatch):
    x, y, _, _ = digits
    monkeypatch.setattr(os, "replace", disk_full)
    with pytest.raises(checkpoint.CheckpointError) as caught:
        xpnet.Model(**SETTINGS).fit(x, y, callbacks=[checkpoint.Checkpointer(tmp_path)])
    assert str(caught.value).endswith(
        f"no checkpoint was written yet; free disk space or make the folder writable, then start the run again "
        f"into {tmp_path}"
    )


def test_a_write_failing_half_way_keeps_the_last_good_checkpoint(tmp_path, digits, monkeypatch):
    x, y, _, _ = digits
    real_savez = np.savez

    def savez_until_disk_full(handle, **arrays):
        if len(model.history) >= 1 and model.position is not None:
            handle.write(b"PK\x03\x04 half a file")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_savez(handle, **arrays)

    monkeypatch.setattr(model_file.np, "savez", savez_until_disk_full)
    model = xpnet.Model(**SETTINGS)
    kept = r"No space left on device.*\(after epoch 1\) is still in place"
    with pytest.raises(checkpoint.CheckpointError, match=kept):
        model.fit(x, y, callbacks=[checkpoint.Checkpointer(tmp_path, every_steps=5)])
    monkeypatch.undo()
    assert checkpoint.resume(tmp_path).model.optimizer.steps == 23


def test_temporary_files_of_killed_checkpoint_writes_are_removed(tmp_path, digits):
    x, y, _, _ = digits
    leftover = tmp_path / ".checkpoint.npz.k2m9x8q1.tmp"
    other = tmp_path / ".checkpoint.npz.notes"
    leftover.write_bytes(b"PK\x03\x04 half a checkpoint")
    other.write_text("not xpnet's")
    xpnet.Model(**{**SETTINGS, "epochs": 1}).fit(x, y, callbacks=[checkpoint.Checkpointer(tmp_path)])
    assert not leftover.exists() and other.exists()


def test_an_unusable_run_folder_is_refused_clearly(tmp_path, digits):
    x, y, _, _ = digits
    blocker = tmp_path / "a file"
    blocker.write_text("not a folder")
    with pytest.raises(checkpoint.CheckpointError, match=r"cannot create run folder .*choose a writable folder"):
        xpnet.Model(**SETTINGS).fit(x, y, callbacks=[checkpoint.Checkpointer(blocker / "run")])


def test_resume_needs_a_checkpoint(tmp_path, digits):
    with pytest.raises(checkpoint.CheckpointError, match=r"holds no checkpoint\.npz: nothing to resume"):
        checkpoint.resume(tmp_path)
    x, y, _, _ = digits
    model = xpnet.Model(**{**SETTINGS, "epochs": 1})
    model.fit(x, y)
    model.save(tmp_path / checkpoint.CHECKPOINT_FILE)
    with pytest.raises(xpnet.ModelFileError, match="not a checkpoint"):
        checkpoint.resume(tmp_path)


@pytest.mark.parametrize("every_steps", [0, -3, 2.5])
def test_a_bad_checkpoint_interval_is_refused(tmp_path, every_steps):
    with pytest.raises(
        SettingError, match=r"checkpoint interval \(in optimizer steps\) must be a positive integer, got"
    ):
        checkpoint.Checkpointer(tmp_path, every_steps=every_steps)


class SignalAtStep(Callback):
    """Deliver real signals to this process right after optimizer step ``step``."""

    def __init__(self, step: int, signals: list):
        self.step, self.signals = step, signals

    def on_train_begin(self, model, epochs):
        self.model = model

    def on_batch_end(self, batch):
        if self.model.optimizer.steps == self.step:
            for number in self.signals:
                os.kill(os.getpid(), number)


def test_a_signal_stops_after_the_step_with_a_checkpoint(tmp_path, digits):
    x, y, _, _ = digits
    checkpointer = checkpoint.Checkpointer(tmp_path)
    model = xpnet.Model(**SETTINGS)
    with (
        pytest.raises(checkpoint.TrainingInterrupted) as caught,
        checkpoint.stop_on_signals(checkpointer),
    ):
        model.fit(x, y, callbacks=[SignalAtStep(30, [signal.SIGTERM]), checkpointer])
    assert caught.value.exit_code == 128 + signal.SIGTERM
    assert str(caught.value) == (
        f"stopped by SIGTERM in epoch 2 after step 7; checkpoint saved in {tmp_path}; "
        f"resume with: python -m xpnet --resume {tmp_path}"
    )
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert checkpoint.resume(tmp_path).model.optimizer.steps == 30


def test_a_second_signal_stops_at_once_and_names_the_checkpoint_still_in_place(tmp_path, digits):
    x, y, _, _ = digits
    checkpointer = checkpoint.Checkpointer(tmp_path)
    model = xpnet.Model(**SETTINGS)
    with pytest.raises(checkpoint.TrainingInterrupted) as caught, checkpoint.stop_on_signals(checkpointer):
        model.fit(x, y, callbacks=[SignalAtStep(30, [signal.SIGINT, signal.SIGINT]), checkpointer])
    assert caught.value.exit_code == 128 + signal.SIGINT
    assert str(caught.value) == (
        "stopped at once by a second SIGINT, without a checkpoint; the last good checkpoint (after epoch 1) "
        f"is still in place; resume with: python -m xpnet --resume {tmp_path}"
    )
    assert checkpoint.resume(tmp_path).model.optimizer.steps == 23


EARLY = {"hidden": [16], "batch_size": 64, "epochs": 40, "early_stopping": 2, "val_split": 0.2, "lr": 0.03}


class CrashAtTrainEnd(Callback):
    """Simulate a crash after the last epoch's checkpoint, before training is marked finished."""

    def on_train_end(self, model):
        raise RuntimeError("simulated crash")


@pytest.mark.parametrize("crash", ["mid-epoch", "before finishing"])
def test_early_stopping_resumes_with_its_patience_and_best_weights(tmp_path, digits, crash):
    x, y, _, _ = digits
    reference = xpnet.Model(**EARLY)
    reference.fit(x, y)
    assert reference.early_stopping.stopped and reference.early_stopping.best_epoch < len(reference.history)

    crashing = CrashAtTrainEnd() if crash == "before finishing" else StopAtStep(100)
    with pytest.raises(RuntimeError, match="simulated crash"):
        xpnet.Model(**EARLY).fit(x, y, callbacks=[crashing, checkpoint.Checkpointer(tmp_path, every_steps=4)])
    model, epochs_left = checkpoint.resume(tmp_path)
    if epochs_left:
        model.fit(x, y, epochs=epochs_left, callbacks=[checkpoint.Checkpointer(tmp_path)])
    assert_same_state(model, reference)
    assert model.early_stopping.best_epoch == reference.early_stopping.best_epoch
    assert model.early_stopping.best_loss == reference.early_stopping.best_loss
    assert checkpoint.resume(tmp_path).epochs_left == 0


def test_resuming_works_on_another_array_library(tmp_path, digits):
    strict = pytest.importorskip("array_api_strict")
    x, y, _, _ = digits
    settings = {**SETTINGS, "dropout": 0.2}
    reference = xpnet.Model(**settings, device=strict)
    reference.fit(x, y)
    with pytest.raises(RuntimeError, match="simulated crash"):
        xpnet.Model(**settings, device=strict).fit(
            x, y, callbacks=[checkpoint.Checkpointer(tmp_path, every_steps=4), StopAtStep(30)]
        )
    model, epochs_left = checkpoint.resume(tmp_path, device=strict)
    assert model.optimizer.steps == 28 and model.position.next_batch == 5
    model.fit(x, y, epochs=epochs_left)
    for array, expected in zip(model.network.parameters(), reference.network.parameters()):
        assert bool(strict.all(array == expected))
    assert metrics(model.history) == metrics(reference.history)


FILE_SIZE_LIMITED_RUN = """
import resource, signal, sys
import xpnet
from xpnet.train import checkpoint, model_state
from xpnet.train.callbacks import Callback

class LimitFileSizes(Callback):
    # Runs before the checkpointer (always last): from epoch 2 on, no file may exceed 4 KiB.
    def on_epoch_end(self, record):
        if record["epoch"] == 2:
            resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY))

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail the write with EFBIG instead of killing
x, y, _, _ = xpnet.load_digits()
try:
    checkpoint.fit(xpnet.Model(hidden=[16], epochs=4), x, y, sys.argv[1], callbacks=[LimitFileSizes()])
except xpnet.XpnetError as error:
    print(f"xpnet: error: {error}", file=sys.stderr)
    sys.exit(2)
"""


def test_a_real_write_failure_keeps_the_last_good_checkpoint(tmp_path):
    """The operating system refuses the write (a file-size limit, as a full disk would)."""
    repo = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-c", FILE_SIZE_LIMITED_RUN, str(tmp_path)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(repo)},
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1
    assert "File too large; nothing was overwritten" in result.stderr
    assert "the last good checkpoint (after epoch 1) is still in place" in result.stderr
    model, epochs_left = checkpoint.resume(tmp_path)
    assert len(model.history) == 1 and epochs_left == 3
    assert sorted(path.name for path in tmp_path.iterdir()) == [checkpoint.HISTORY_FILE, checkpoint.CHECKPOINT_FILE]


def test_an_epoch_stopped_half_way_refuses_to_continue_on_other_data(tmp_path, digits):
    x, y, _, _ = digits
    with pytest.raises(RuntimeError, match="simulated crash"):
        xpnet.Model(**SETTINGS).fit(x, y, callbacks=[checkpoint.Checkpointer(tmp_path, every_steps=4), StopAtStep(6)])
    model, _ = checkpoint.resume(tmp_path)
    with pytest.raises(xpnet.XpnetError, match="stopped after 256 samples, which the 200 samples given do not match"):
        model.fit(x[:200], y[:200], epochs=1)


def test_a_stop_after_an_epochs_short_last_batch_resumes_bit_for_bit(tmp_path, digits):
    """The checkpoint of a stop right after an epoch's last step (a short batch: 1,438 samples in 64s)
    holds the epoch's outputs, all of them; the resumed run finishes that epoch as if never stopped."""
    x, y, _, _ = digits
    reference = xpnet.Model(**SETTINGS)
    reference.fit(x, y)
    checkpointer = checkpoint.Checkpointer(tmp_path)
    with pytest.raises(checkpoint.TrainingInterrupted), checkpoint.stop_on_signals(checkpointer):
        xpnet.Model(**SETTINGS).fit(x, y, callbacks=[SignalAtStep(23, [signal.SIGTERM]), checkpointer])
    model, epochs_left = checkpoint.resume(tmp_path)
    assert model.position.next_batch == 23 and not model.history and epochs_left == 3
    model.fit(x, y, epochs=epochs_left)
    assert_same_state(model, reference)


def test_each_file_is_stamped_with_the_format_that_reads_it(tmp_path, digits, monkeypatch):
    """A checkpoint keeps its history in a journal beside it, which needs format 3, so an xpnet that
    reads only format 2 refuses it by version (it would take it for corrupt); a model file stopped
    inside an epoch holds kept outputs (format 2), and one between epochs stays format 1."""
    x, y, _, _ = digits
    model = xpnet.Model(**SETTINGS)
    with pytest.raises(RuntimeError, match="simulated crash"):
        model.fit(x, y, callbacks=[checkpoint.Checkpointer(tmp_path / "inside", every_steps=1), StopAtStep(30)])
    model.save(tmp_path / "inside.npz")
    model.fit(x, y, epochs=1, callbacks=[checkpoint.Checkpointer(tmp_path / "between")])
    model.save(tmp_path / "model.npz")
    versions = {
        name: model_file.read_archive(path)[1]["version"]
        for name, path in [
            ("checkpoint inside", tmp_path / "inside" / "checkpoint.npz"),
            ("checkpoint between", tmp_path / "between" / "checkpoint.npz"),
            ("model inside", tmp_path / "inside.npz"),
            ("model", tmp_path / "model.npz"),
        ]
    }
    assert versions == {"checkpoint inside": 3, "checkpoint between": 3, "model inside": 2, "model": 1}
    monkeypatch.setattr(model_file, "FORMAT_VERSION", 2)
    with pytest.raises(
        xpnet.ModelFileError, match=r"model format version 3 is newer than this xpnet reads \(2\); upgrade"
    ):
        checkpoint.resume(tmp_path / "inside")
    assert xpnet.load(tmp_path / "inside.npz").position.next_batch == 30 - 23
    assert xpnet.load(tmp_path / "model.npz").optimizer.steps == model.optimizer.steps
