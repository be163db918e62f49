"""Every exception and warning xpnet raises, so callers catch xpnet's own problems by type, and the one
helper that puts a message on one line.

Each message says what was wrong and what to do about it, on one line: the command line prints it as
``xpnet: error: ...`` and exits with code 2.
"""

from __future__ import annotations


class XpnetError(Exception):
    """A problem with the user's input or settings; its message says what was wrong and what to do."""


class SettingError(XpnetError, ValueError):
    """A setting is out of range or of the wrong type (a ``ValueError``, as scikit-learn and Python code
    expect of a bad argument), wherever it is given: ``TrainConfig``, an optimizer, a layer, the command."""


class BackendError(XpnetError):
    """The requested device or array library is not available here."""


class DatasetError(XpnetError):
    """A dataset file is missing, corrupt or malformed; the message names the file and the fix."""


class StateError(XpnetError, ValueError):
    """A state description (from a model file, a checkpoint or a pickle) does not describe a valid model."""


class ModelFileError(XpnetError):
    """A model file is missing, corrupt, tampered with, or from an unknown format version."""


class CheckpointError(XpnetError):
    """A checkpoint cannot be written or there is none to resume from."""


class FolderInUse(XpnetError):
    """A run or sweep folder is locked by another process (named in the message), which is using it."""


class GradientMismatch(XpnetError):
    """Analytic and numerical gradients disagree: the backward pass has a bug."""


class TrainingDiverged(XpnetError, ArithmeticError):
    """The loss became NaN or infinite; the model keeps the last weights that gave a finite loss."""


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on a signal after writing a checkpoint; ``exit_code`` is 128 + the signal."""

    def __init__(self, message: str, signal_number: int):
        super().__init__(message)
        self.signal_number = signal_number
        self.exit_code = 128 + signal_number


class XpnetWarning(UserWarning):
    """Training runs but is probably not learning: the message names the likely causes."""


def one_line(message, *, first_line: bool = False) -> str:
    """``message`` (text or an exception) on one line, its runs of whitespace made one space: names read
    from a hostile file may hold line breaks. ``first_line`` keeps only the first line, the summary that
    another library's error (a driver's, a parser's) puts before its details. An exception without text
    gives its type's name."""
    text = str(message).strip()
    text = " ".join((text.splitlines()[0] if first_line and text else text).split())
    if not text and isinstance(message, BaseException):
        return type(message).__name__
    return text
