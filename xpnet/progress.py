"""Training progress on the console: a bar per epoch on a terminal, one line per epoch otherwise.

Neither reads a value from the device inside the batch loop (that would wait for the GPU after
every batch): the bar only counts batches, and losses are shown once the epoch's record exists.
"""

from __future__ import annotations

from typing import TextIO

from xpnet.callbacks import Callback


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
    """A tqdm bar that fills batch by batch during each epoch, then gives way to the epoch's line."""

    def on_epoch_begin(self, epoch, n_batches):
        from tqdm import tqdm

        super().on_epoch_begin(epoch, n_batches)
        self.bar = tqdm(
            total=n_batches * self.batch_size,
            desc=f"epoch {epoch}/{self.epochs}",
            unit="sample",
            unit_scale=True,
            leave=False,
            file=self.stream,
            dynamic_ncols=True,
        )

    def on_batch_end(self, batch):
        self.bar.update(self.batch_size)
        if batch == self.n_batches - 1:  # close before evaluation, so warnings do not land inside the bar
            self.bar.close()


def console_progress(stream: TextIO, *, quiet: bool) -> Callback | None:
    """The progress reporter that suits ``stream``: None when quiet, bars on a terminal, else lines."""
    if quiet:
        return None
    return EpochBars(stream) if stream.isatty() else EpochLines(stream)
