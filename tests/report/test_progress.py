"""Console progress: bars on a terminal, one line per epoch elsewhere, nothing when quiet."""

from __future__ import annotations

import io
import math
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import xpnet
from xpnet.report.console import EpochBars, EpochLines, console_progress, epoch_line
from xpnet.train.callbacks import Callback

REPO = Path(__file__).resolve().parents[2]
RUNNING = re.compile(r"loss (\d+\.\d{4})(?:, ([\d.]+)(k?) samples/s)?\]")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class RunningLoss(Callback):
    """Records the epoch's mean training loss after each batch but the last, as the bar should show it."""

    def __init__(self):
        self.shown: list[str] = []

    def on_train_begin(self, model, epochs):
        self.model = model

    def on_epoch_begin(self, epoch, n_batches):
        self.n_batches = n_batches

    def on_batch_end(self, batch):
        progress = self.model.position
        if batch < self.n_batches - 1:
            mean = float(progress.total_loss) / (progress.next_batch * self.model.config.batch_size)
            self.shown.append(f"{mean:.4f}")


def bar_text(read_interval: float, spy: Callback | None = None, before: Callback | None = None) -> str:
    """What two epochs on digits (15 batches each) print to a terminal; ``before`` runs ahead of the bar."""
    x_train, y_train, _, _ = xpnet.load_digits()
    stream = Terminal()
    model = xpnet.Model(hidden=[8], epochs=2, batch_size=100, device="cpu")
    bar = EpochBars(stream, read_interval=read_interval)
    model.fit(x_train, y_train, callbacks=[*filter(None, [before]), bar, *filter(None, [spy])])
    return stream.getvalue()


def screens(text: str) -> list[str]:
    """Each state the terminal showed: tqdm redraws its line after a carriage return."""
    return text.replace("\r", "\n").splitlines()


def test_the_reporter_suits_the_stream():
    assert console_progress(io.StringIO(), quiet=True) is None
    assert type(console_progress(io.StringIO(), quiet=False)) is EpochLines
    assert type(console_progress(Terminal(), quiet=False)) is EpochBars


def test_lines_add_nothing_to_the_batch_loop():
    """Without an on_batch_end hook the model calls nothing per batch: no device read, no wait."""
    assert EpochLines.on_batch_end is Callback.on_batch_end


def test_epoch_line_shows_each_split_time_and_throughput():
    record = {"epoch": 3, "train_loss": 0.5, "train_accuracy": 0.875, "val_loss": None, "seconds": 2.0}
    record |= {"test_loss": 0.25, "test_accuracy": 0.9}
    assert epoch_line(record, 10, 1000) == (
        "epoch  3/10  train loss 0.5000 acc  87.50%  test loss 0.2500 acc  90.00%  2.00s  500 samples/s"
    )


def test_a_bar_counts_batches_with_the_running_loss_and_rate_then_the_epoch_line():
    spy = RunningLoss()
    shown_lines = screens(bar_text(0.0, spy))
    bars = [line for line in shown_lines if line.startswith("epoch") and " batches " in line]
    assert any(line.startswith("epoch 1/2:") and "14/15 batches" in line for line in bars)
    assert any(line.startswith("epoch 2/2:") for line in bars)
    readings = [match for line in bars if (match := RUNNING.search(line))]
    assert spy.shown and set(spy.shown) <= {match.group(1) for match in readings}  # each batch but an epoch's last
    assert any(match.group(2) for match in readings)  # a rate, once there is something to time
    epochs = [line for line in shown_lines if line.startswith("epoch") and "train loss" in line]
    assert [line.split()[1] for line in epochs] == ["1/2", "2/2"]


class SlowFirstBatch(Callback):
    """Makes the run's first batch take a second, as compiling kernels on a GPU can."""

    def __init__(self):
        self.slept = False

    def on_batch_end(self, batch):
        if not self.slept:
            time.sleep(1.0)
            self.slept = True


def test_the_rate_leaves_out_the_first_batch():
    bars = [line for line in screens(bar_text(0.0, before=SlowFirstBatch())) if line.startswith("epoch 1/2:")]
    rates = [(match.group(2), match.group(3)) for line in bars if (match := RUNNING.search(line))]
    assert rates[0] == (None, None)  # the first reading has nothing to time yet
    value, thousands = rates[-1]
    # Timed from the epoch's start, the slow first batch would hold 14 batches of 100 to at most 1.4k samples/s;
    # timed from the first reading, the 13 batches after it take milliseconds.
    assert float(value) * (1000 if thousands else 1) > 1400


def test_the_bar_reads_the_loss_at_most_once_per_interval():
    text = bar_text(math.inf)
    assert len(set(RUNNING.findall(text))) == 1  # read once, on the first batch, then never again
    assert not [line for line in screens(text) if line.startswith("epoch 2/2:") and "loss" in line]


@pytest.mark.skipif(shutil.which("script") is None, reason="needs util-linux script for a pseudo-terminal")
@pytest.mark.parametrize("quiet", [False, True])
def test_the_command_on_a_terminal(tmp_path, quiet):
    out = tmp_path / "run"
    # A pseudo-terminal from script(1) starts 0 columns wide, where tqdm draws nothing: give it a size.
    command = f"stty cols 120 rows 40; {sys.executable} -m xpnet --epochs 2 --batch-size 100 --out {out}"
    result = subprocess.run(
        ["script", "-qec", command + (" --quiet" if quiet else ""), "/dev/null"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout
    assert (out / "metrics.json").is_file()
    if quiet:
        assert result.stdout == ""
    else:
        bar = r"epoch 1/2: +\d+%\|.*\| \d+/15 batches \[[\d:<?]+, loss \d\.\d{4}(, [\d.]+k? samples/s)?\]"
        assert re.search(bar, result.stdout), result.stdout
        assert "test accuracy" in result.stdout
