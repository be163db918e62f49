"""Train on the digits with checkpoints, resuming whenever the run folder holds one.

The kill and signal tests run this as a real process (``python tests/resume_worker.py RUN_DIR``) and
stop it at random moments; ``train`` is also called in-process for the uninterrupted reference run.
"""

from __future__ import annotations

import sys
from pathlib import Path

import xpnet
from xpnet import checkpoint
from xpnet.callbacks import Callback

SETTINGS = {"hidden": [96, 96], "dropout": 0.2, "optimizer": "adam", "batch_size": 16, "epochs": 8, "seed": 7}
EVERY_STEPS = 10
FINAL_FILE = "final.npz"


class Announce(Callback):
    """Tell the parent process that training (with its signal handlers) has begun."""

    def on_train_begin(self, model, epochs):
        print("training", flush=True)


def train(run_dir) -> int:
    """Train (or continue) the run in ``run_dir``; write ``final.npz`` when done. Returns the exit code."""
    run_dir = Path(run_dir)
    x, y, x_test, y_test = xpnet.load_digits()
    if (run_dir / checkpoint.CHECKPOINT_FILE).exists():
        model, epochs = checkpoint.resume(run_dir)
    else:
        model = xpnet.Model(**SETTINGS)
        epochs = model.config.epochs
    try:
        if epochs:
            checkpoint.fit(
                model,
                x,
                y,
                run_dir,
                every_steps=EVERY_STEPS,
                validation_data=(x_test, y_test),
                epochs=epochs,
                callbacks=[Announce()],
            )
    except checkpoint.TrainingInterrupted as stop:
        print(f"xpnet: {stop}", file=sys.stderr)
        return stop.exit_code
    model.save(run_dir / FINAL_FILE)
    return 0


if __name__ == "__main__":
    sys.exit(train(sys.argv[1]))
