"""The exceptions and warnings xpnet raises, so callers can catch xpnet's own problems by type."""


class XpnetError(Exception):
    """A problem with the user's input or settings; its message says what was wrong and what to do."""


class SettingError(XpnetError, ValueError):
    """A training setting is out of range or of the wrong type (a ``ValueError``, as scikit-learn and
    Python code expect of a bad argument)."""


class TrainingDiverged(XpnetError, ArithmeticError):
    """The loss became NaN or infinite; the model keeps the last weights that gave a finite loss."""


class XpnetWarning(UserWarning):
    """Training runs but is probably not learning: the message names the likely causes."""


class DatasetError(XpnetError):
    """A dataset file is missing, corrupt or malformed; the message names the file and the fix."""


def one_line(error: BaseException) -> str:
    """The first line of ``error``'s message (its type's name when it has none): the reason xpnet's
    one-line error messages quote from a library's exception."""
    message = str(error).strip()
    return message.splitlines()[0] if message else type(error).__name__
