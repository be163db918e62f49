"""Milliseconds per checkpoint of a small network (64-32-10 on the digits) with a history of a few
epochs and of thousands: a long run's checkpoints should cost what a short run's do.

A model trained for one epoch is given a history of N records (copies of its own, renumbered) and a
``Checkpointer`` into a temporary folder; each timed save follows one more epoch's record, as a save at an
epoch's end does. The first save of a checkpointer (which writes the whole history once) is not timed.

    python benchmarks/checkpoint_cost.py --epochs 5 4500 --saves 200

See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time

import xpnet
from xpnet.train.checkpoint import Checkpointer


def trained_model() -> tuple[xpnet.Model, dict]:
    """A 64-32-10 classifier after one epoch on the digits, and its epoch's record."""
    x, y, _, _ = xpnet.load_digits()
    model = xpnet.Model(hidden=[32], epochs=1, batch_size=64, val_split=0.1, seed=0, device="cpu")
    model.fit(x, y)
    return model, model.history[0]


def milliseconds_per_save(model: xpnet.Model, record: dict, epochs: int, saves: int) -> float:
    """The median milliseconds of ``saves`` checkpoints after ``epochs`` epochs of history."""
    model.history = [copy.copy(record) | {"epoch": number} for number in range(1, epochs + 1)]
    with tempfile.TemporaryDirectory() as folder:
        checkpointer = Checkpointer(folder)
        checkpointer.on_train_begin(model, saves)
        checkpointer.save()
        times = []
        for _ in range(saves):
            model.history.append(copy.copy(record) | {"epoch": len(model.history) + 1})
            started = time.perf_counter()
            checkpointer.save()
            times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, nargs="+", default=[5, 4500], help="history lengths to time")
    parser.add_argument("--saves", type=int, default=200, help="timed saves per history length")
    options = parser.parse_args()
    model, record = trained_model()
    for epochs in options.epochs:
        milliseconds = milliseconds_per_save(model, record, epochs, options.saves)
        print(f"{epochs:>6} epochs of history: {milliseconds:.2f} ms per checkpoint")


if __name__ == "__main__":
    main()
