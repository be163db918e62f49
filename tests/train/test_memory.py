"""Memory stays flat under load: many short epochs, with validation and a checkpoint each epoch, do
not make the process's peak memory climb."""

from __future__ import annotations

import resource
import tracemalloc

import xpnet
from xpnet.train import checkpoint
from xpnet.train.callbacks import Callback

EPOCHS = 50
WARM_UP = 10
# What may legitimately grow per epoch: one history record (about 1 KiB with its share of the checkpoint
# metadata). A leaked copy of the parameters (about 20 KiB here) per epoch would exceed it.
ALLOWED_GROWTH_PER_EPOCH = 4096


class MemoryTrace(Callback):
    """After each epoch: the traced memory in use, the epoch's traced peak, and the process's max RSS."""

    def __init__(self):
        self.current, self.peaks, self.max_rss = [], [], []

    def on_epoch_end(self, record):
        current, peak = tracemalloc.get_traced_memory()
        self.current.append(current)
        self.peaks.append(peak)
        self.max_rss.append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
        tracemalloc.reset_peak()


def test_many_short_epochs_keep_memory_flat(tmp_path):
    x, y, x_test, y_test = xpnet.load_digits()
    model = xpnet.Model(hidden=[64, 32], dropout=0.1, batch_size=64, epochs=EPOCHS)
    trace = MemoryTrace()
    tracemalloc.start()
    try:
        model.fit(
            x[:512],
            y[:512],
            validation_data=(x_test, y_test),
            callbacks=[checkpoint.Checkpointer(tmp_path, every_steps=5), trace],
        )
    finally:
        tracemalloc.stop()
    assert len(trace.peaks) == EPOCHS
    allowed = ALLOWED_GROWTH_PER_EPOCH * (EPOCHS - WARM_UP)
    assert trace.current[-1] - trace.current[WARM_UP] < allowed, trace.current
    assert max(trace.peaks[WARM_UP:]) - trace.peaks[WARM_UP] < allowed, trace.peaks
    assert trace.max_rss[-1] - trace.max_rss[WARM_UP] < 4096, trace.max_rss  # kilobytes on Linux
