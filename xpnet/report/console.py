"""Training progress on the console: a bar per epoch on a terminal, one line per epoch otherwise.

Reading the running loss is a device read, which waits for the GPU: the lines never read inside the
batch loop, and the bar reads at most once per ``READ_INTERVAL_SECONDS``, never once per batch.
"""

from __future__ import annotations

import math
import time
from typing import TextIO

from tqdm import tqdm

from xpnet.train.callbacks import Callback

READ_INTERVAL_SECONDS = 0.5
BAR_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} batches [{elapsed}<{remaining}{postfix}]"


def epoch_line(record: dict, epochs: int, samples: int) -> str:
    """One epoch's summary: losses and accuracies present in ``record``, time and throughput."""
    parts = [f"epoch {record['epoch']:>{len(str(epochs))}}/{epochs}"]
    for split in ("train", "val", "test"):
        loss, accuracy = record.get(f"{split}_loss"), record.get(f"{split}_accuracy")
        if loss is not None:
            accuracy_text = "" if accuracy is None else f" acc {100 * accuracy:6.2f}%"
            parts.append(f"{split} loss {loss:.4f}{accuracy_text}")
    seconds = record["seconds"]
    parts.append(f"{seconds:.2f}s")
    if seconds > 0:
        parts.append(f"{samples / seconds:,.0f} samples/s")
    return "  ".join(parts)


class EpochLines(Callback):
    """Prints ``epoch_line`` after every epoch (for logs and pipes)."""

    def __init__(self, stream: TextIO):
        self.stream = stream

    def on_train_begin(self, model, epochs):
        self.epochs = model.epochs_done + epochs
        self.batch_size = model.config.batch_size

    def on_epoch_begin(self, epoch, n_batches):
        self.n_batches = n_batches

    def on_epoch_end(self, record):
        # Samples per epoch from whole batches: at most one partial batch too many.
        samples = self.n_batches * self.batch_size
        print(epoch_line(record, self.epochs, samples), file=self.stream, flush=True)


class EpochBars(EpochLines):
    """A tqdm bar that fills batch by batch during each epoch, showing the running training loss and
    samples/s, then gives way to the epoch's line. Both numbers are refreshed at most once per
    ``read_interval`` seconds: the loss from the first batch on, the rate from the second reading on,
    timed from the first (so the first batch's start-up, compiling kernels or warming caches, is not
    averaged in)."""

    def __init__(self, stream: TextIO, *, read_interval: float = READ_INTERVAL_SECONDS):
        super().__init__(stream)
        self.read_interval = read_interval
        self.last_read = -math.inf

    def on_train_begin(self, model, epochs):
        super().on_train_begin(model, epochs)
        self.model = model

    def on_epoch_begin(self, epoch, n_batches):
        super().on_epoch_begin(epoch, n_batches)
        self.rate_from = None  # (time, batches done) at the first reading
        self.bar = tqdm(
            total=n_batches,
            initial=self.model.position.next_batch,  # a resumed epoch starts part-way
            desc=f"epoch {epoch}/{self.epochs}",
            bar_format=BAR_FORMAT,
            leave=False,
            file=self.stream,
            dynamic_ncols=True,
        )

    def on_batch_end(self, batch):
        self.bar.update(1)
        if batch == self.n_batches - 1:  # the epoch's line follows with the exact loss: no read here
            self.bar.close()  # before evaluation, so warnings do not land inside the bar
        elif time.perf_counter() - self.last_read >= self.read_interval:
            self.bar.set_postfix_str(self._running_numbers())
            self.last_read = time.perf_counter()

    def _running_numbers(self) -> str:
        """The epoch's mean training loss so far and, after the first reading, the throughput since
        it, e.g. ``loss 0.3412, 31.2k samples/s``. Never called after the last batch, so every batch
        counted is full-size."""
        progress = self.model.position
        loss = float(progress.total_loss) / (progress.next_batch * self.batch_size)  # waits for the device
        now = time.perf_counter()
        if self.rate_from is None:
            self.rate_from = now, progress.next_batch
            return f"loss {loss:.4f}"
        since, batches_then = self.rate_from
        rate = (progress.next_batch - batches_then) * self.batch_size / (now - since)
        return f"loss {loss:.4f}, {tqdm.format_sizeof(rate)} samples/s"


def console_progress(stream: TextIO, *, quiet: bool) -> Callback | None:
    """The progress reporter that suits ``stream``: None when quiet, bars on a terminal, else lines."""
    if quiet:
        return None
    return EpochBars(stream) if stream.isatty() else EpochLines(stream)
