"""Checkpoints: a run that is killed, pre-empted or interrupted continues exactly where it stopped.

``Checkpointer`` is a callback that writes ``checkpoint.npz`` into the run folder after every epoch
(and every ``every_steps`` optimizer steps when asked): weights, optimizer state and the position
inside the epoch. That position is the whole random state, because every random stream is named by
``(seed, purpose, epoch)``. The history goes to ``checkpoint-history.jsonl`` beside it, to which each
checkpoint adds only the epochs since the last, so a long run's checkpoints cost what a short run's do.
Writes are atomic, so a crash at any instant leaves the previous checkpoint intact. ``resume`` loads it
back; ``stop_on_signals`` turns Ctrl-C and SIGTERM into a clean stop after the current step (a second
signal stops at once). ``fit`` puts the pieces together for a command line::

    checkpoint.fit(model, x, y, run_dir, every_steps=500, callbacks=[...])   # a new run
    model, epochs_left = checkpoint.resume(run_dir, device)                   # later, after a crash
    if epochs_left:                                 # 0: training ended, but outputs may be missing
        checkpoint.fit(model, x, y, run_dir, epochs=epochs_left, callbacks=[...])

A stop on a signal raises ``TrainingInterrupted`` (a ``KeyboardInterrupt``) whose message says how
to resume and whose ``exit_code`` is 128 plus the signal number: print it and exit with that code.
A checkpoint that cannot be written raises ``CheckpointError``, naming the one still in place.
"""

from __future__ import annotations

import contextlib
import signal
from pathlib import Path
from typing import NamedTuple

from xpnet import validation
from xpnet.errors import CheckpointError, ModelFileError, TrainingInterrupted, XpnetError
from xpnet.io.atomic import leftovers
from xpnet.io.journal import Journal
from xpnet.io.runs import CHECKPOINT_FILE, HISTORY_FILE
from xpnet.train import model_state
from xpnet.train.callbacks import Callback
from xpnet.train.model import Model, from_file

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
CHECKPOINT_INTERVAL = "checkpoint interval (in optimizer steps)"


RESUME_COMMAND = "python -m xpnet --resume {run_dir}"


class Checkpointer(Callback):
    """Write ``run_dir/checkpoint.npz`` after every epoch, every ``every_steps`` optimizer steps, at
    the end of training, and when a stop was requested (see ``stop_on_signals``). Put it last among
    the callbacks, so the records it saves hold what the others add to them."""

    def __init__(self, run_dir, *, every_steps: int | None = None, resume_command: str = RESUME_COMMAND):
        if every_steps is not None:
            every_steps = validation.whole(CHECKPOINT_INTERVAL, every_steps, minimum=1)
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / CHECKPOINT_FILE
        self.history: Journal | None = None
        self.every_steps = every_steps
        self.resume_command = resume_command
        self.stop_signal: int | None = None
        self.n_batches: int | None = None
        self.last_saved: str | None = None

    def on_train_begin(self, model, epochs):
        self.model = model
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise CheckpointError(
                f"cannot create run folder {self.run_dir}: {error.strerror or error}; choose a writable folder"
            ) from None
        # A process killed while writing leaves its temporary file behind; the checkpoint itself is whole.
        for leftover in [*leftovers(self.path), *leftovers(self.run_dir / HISTORY_FILE)]:
            with contextlib.suppress(OSError):
                leftover.unlink()
        self.history = Journal(self.run_dir / HISTORY_FILE)
        # A model that has trained already was resumed from this checkpoint (or saved it at the end of
        # its previous fit): that position is the one a failed write leaves in place.
        if self.path.is_file() and (model.epochs_done or model.position is not None):
            self.last_saved = _position(model.epochs_done, model.position)

    def on_epoch_begin(self, epoch, n_batches):
        self.n_batches = n_batches

    def stopping(self) -> int | None:
        """The signal to stop on now, if one asked for a stop: the one this process received (a
        data-parallel run's ranks agree on theirs first, see ``xpnet.distributed.checkpoint``)."""
        return self.stop_signal

    def on_batch_end(self, batch):
        if self.stopping() is not None:
            self.save()
            raise self._interrupted()
        last_batch = batch + 1 == self.n_batches  # the epoch's checkpoint follows at once
        if self.every_steps and self.model.optimizer.steps % self.every_steps == 0 and not last_batch:
            self.save()

    def on_epoch_end(self, record):
        self.save()
        if self.stopping() is not None:
            raise self._interrupted()

    def on_train_end(self, model):
        self.save(finished=True)

    def save(self, *, finished: bool = False) -> None:
        """Write the checkpoint now; on failure the previous one stays and the error says so."""
        try:
            model_state.write(self.path, self.model, run={"finished": finished}, history=self.history)
        except XpnetError as error:
            fix = "free disk space or make the folder writable, then "
            raise CheckpointError(f"checkpoint failed: {error}; {self._kept(fix)}") from None
        self.last_saved = _position(self.model.epochs_done, self.model.position)

    def _kept(self, fix: str = "") -> str:
        """Which checkpoint survives a stop that wrote none, and how to go on (after ``fix``, if any)."""
        if self.last_saved is None:
            return f"no checkpoint was written yet; {fix}start the run again into {self.run_dir}"
        return (
            f"the last good checkpoint ({self.last_saved}) is still in place; "
            f"{fix}resume with: {self.resume_command.format(run_dir=self.run_dir)}"
        )

    def stopped_at_once(self, signal_number: int) -> TrainingInterrupted:
        """The stop of a second signal, which does not wait for the step (or the write) under way."""
        name = signal.Signals(signal_number).name
        return TrainingInterrupted(
            f"stopped at once by a second {name}, without a checkpoint; {self._kept()}", signal_number
        )

    def _interrupted(self) -> TrainingInterrupted:
        stop_signal = self.stopping()
        name = signal.Signals(stop_signal).name
        return TrainingInterrupted(
            f"stopped by {name} {_position(self.model.epochs_done, self.model.position)}; "
            f"checkpoint saved in {self.run_dir}; resume with: {self.resume_command.format(run_dir=self.run_dir)}",
            stop_signal,
        )


def _position(epochs_done: int, position=None) -> str:
    if position is not None and position.next_batch:
        return f"in epoch {epochs_done + 1} after step {position.next_batch}"
    return f"after epoch {epochs_done}"


@contextlib.contextmanager
def stop_on_signals(checkpointer: Checkpointer, signals=STOP_SIGNALS):
    """While active, SIGINT and SIGTERM make ``checkpointer`` stop training after the current step,
    with a checkpoint; a second signal stops at once (``TrainingInterrupted`` naming the checkpoint
    still in place). Keep it active over whatever follows training that a stop must not cut short."""

    def request_stop(signal_number, frame):
        if checkpointer.stop_signal is not None:
            raise checkpointer.stopped_at_once(signal_number)
        checkpointer.stop_signal = signal_number

    try:
        previous = {number: signal.signal(number, request_stop) for number in signals}
    except ValueError:  # signal handlers can only be set from the main thread: run without them
        previous = {}
    try:
        yield checkpointer
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def fit(
    model,
    x,
    y,
    run_dir,
    *,
    every_steps: int | None = None,
    resume_command: str = RESUME_COMMAND,
    callbacks=(),
    **fit_options,
) -> list[dict]:
    """``model.fit`` with a checkpoint in ``run_dir`` every epoch (and every ``every_steps`` steps).

    Args:
        model: The model, new or from ``resume``.
        x: Inputs, as for ``Model.fit``.
        y: Labels or targets, as for ``Model.fit``.
        run_dir: The folder ``checkpoint.npz`` is written into.
        every_steps: Also write one every this many optimizer steps; ``None``: after each epoch only.
        resume_command: The command an interruption's message gives for resuming (``{run_dir}`` filled in).
        callbacks: More callbacks, called before the checkpointer.
        **fit_options: As for ``Model.fit`` (``epochs``, ``validation_data``...).

    Returns:
        The model's history.

    Raises:
        TrainingInterrupted: SIGINT or SIGTERM stopped training after the current step, with a checkpoint.
        CheckpointError: A checkpoint could not be written (naming the one still in place).
    """
    checkpointer = Checkpointer(run_dir, every_steps=every_steps, resume_command=resume_command)
    with stop_on_signals(checkpointer):
        return model.fit(x, y, callbacks=[*callbacks, checkpointer], **fit_options)


class Resumed(NamedTuple):
    """A run loaded from its checkpoint and the number of epochs it still has to train."""

    model: Model
    epochs_left: int


def resume(run_dir, device="cpu") -> Resumed:
    """The model saved in ``run_dir``'s checkpoint, ready to continue.

    Args:
        run_dir: The folder holding ``checkpoint.npz``.
        device: Where the model's arrays go, as for ``Model``.

    Returns:
        ``(model, epochs_left)``: an epoch stopped half-way counts as one; a run that ended (all epochs,
        or stopped early) has none left.

    Raises:
        CheckpointError: ``run_dir`` holds no checkpoint.
        ModelFileError: The checkpoint is damaged, or is a model file without run state.
    """
    path = Path(run_dir) / CHECKPOINT_FILE
    if not path.is_file():
        raise CheckpointError(f"{run_dir} holds no {CHECKPOINT_FILE}: nothing to resume there")
    state, run = model_state.read(path)
    if not isinstance(run, dict):
        raise ModelFileError(f"{path}: not a checkpoint (a model file without run state)")
    model = from_file(state, path, device)
    if run.get("finished") is True:
        return Resumed(model, 0)
    stopper = model.early_stopping
    if stopper is not None and stopper.stopped:  # stopped early, but the process ended before finishing
        with model.backend.active():  # the best weights are copied back onto the model's device
            stopper.on_train_end(model)
        return Resumed(model, 0)
    return Resumed(model, max(model.config.epochs - model.epochs_done, 0))
