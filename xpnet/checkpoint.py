"""``xpnet.checkpoint``, the public name of checkpointing: a run that is killed, pre-empted or
interrupted continues exactly where it stopped. The code is in ``xpnet.train.checkpoint``."""

from xpnet.train.checkpoint import (
    CHECKPOINT_FILE,
    HISTORY_FILE,
    Checkpointer,
    CheckpointError,
    Resumed,
    TrainingInterrupted,
    fit,
    resume,
    stop_on_signals,
)

__all__ = [
    "CHECKPOINT_FILE",
    "HISTORY_FILE",
    "CheckpointError",
    "Checkpointer",
    "Resumed",
    "TrainingInterrupted",
    "fit",
    "resume",
    "stop_on_signals",
]
