"""Console progress: bars on a terminal, one line per epoch elsewhere, nothing when quiet."""

from __future__ import annotations

import io

import xpnet
from xpnet.progress import EpochBars, EpochLines, console_progress, epoch_line


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_reporter_suits_the_stream():
    assert console_progress(io.StringIO(), quiet=True) is None
    assert type(console_progress(io.StringIO(), quiet=False)) is EpochLines
    assert type(console_progress(Terminal(), quiet=False)) is EpochBars


def test_epoch_line_shows_each_split_time_and_throughput():
    record = {"epoch": 3, "train_loss": 0.5, "train_accuracy": 0.875, "val_loss": None, "seconds": 2.0}
    record |= {"test_loss": 0.25, "test_accuracy": 0.9}
    assert epoch_line(record, 10, 1000) == (
        "epoch  3/10  train loss 0.5000 acc  87.50%  test loss 0.2500 acc  90.00%  2.00s  500 samples/s"
    )


def test_a_bar_per_epoch_then_the_epoch_line():
    x_train, y_train, _, _ = xpnet.load_digits()
    stream = Terminal()
    model = xpnet.Model(hidden=[8], epochs=2, batch_size=100, device="cpu")
    model.fit(x_train, y_train, callbacks=[EpochBars(stream)])
    text = stream.getvalue()
    assert "epoch 1/2" in text and "epoch 2/2" in text
    assert "sample/s" in text or "samples/s" in text  # tqdm's rate while the bar runs
    lines = [line for line in text.replace("\r", "\n").splitlines() if line.startswith("epoch") and "loss" in line]
    assert [line.split()[1] for line in lines] == ["1/2", "2/2"]
