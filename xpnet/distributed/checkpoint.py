"""Checkpoints of a data-parallel run: rank 0 alone writes them, and a signal stops every rank.

A launcher passes SIGINT and SIGTERM on to every rank, each at its own moment, and a signal may reach
only some ranks. ``RankCheckpointer`` hands a rank's signal to ``DataParallel``, which sends it with
the next step's gradients; every rank learns of it from the same sum, so all stop after the same
step, where rank 0 writes the checkpoint the others stop without.
"""

from __future__ import annotations

from xpnet.distributed.parallel import DataParallel
from xpnet.train.checkpoint import RESUME_COMMAND, Checkpointer, stop_on_signals


class RankCheckpointer(Checkpointer):
    """A ``Checkpointer`` for one rank of ``parallel``'s world: only rank 0 writes, and it stops when
    the ranks agreed on a stop. Its ``stop_signal``, set by ``stop_on_signals``, is this rank's request."""

    def __init__(self, run_dir, parallel: DataParallel, *, every_steps=None, resume_command: str = RESUME_COMMAND):
        self.parallel = parallel  # first: the base class sets stop_signal, which lives on parallel
        super().__init__(run_dir, every_steps=every_steps, resume_command=resume_command)

    @property
    def stop_signal(self) -> int | None:
        return self.parallel.stop_requested

    @stop_signal.setter
    def stop_signal(self, signal_number: int | None) -> None:
        self.parallel.stop_requested = signal_number

    def stopping(self) -> int | None:
        return self.parallel.stop_agreed

    def on_train_begin(self, model, epochs):
        if self.parallel.world.is_root:
            super().on_train_begin(model, epochs)
        else:
            self.model = model

    def save(self, *, finished: bool = False) -> None:
        if self.parallel.world.is_root:
            super().save(finished=finished)


def fit(parallel: DataParallel, model, x, y, run_dir, *, every_steps=None, callbacks=(), **fit_options) -> list[dict]:
    """``parallel.fit`` with rank 0 writing ``run_dir/checkpoint.npz`` every epoch (and every
    ``every_steps`` steps), every rank stopping after the same step on SIGINT or SIGTERM
    (``TrainingInterrupted``); resume with ``xpnet.checkpoint.resume`` on every rank."""
    checkpointer = RankCheckpointer(run_dir, parallel, every_steps=every_steps)
    with stop_on_signals(checkpointer):
        return parallel.fit(model, x, y, callbacks=[*callbacks, checkpointer], **fit_options)
