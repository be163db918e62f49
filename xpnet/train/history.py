"""What one epoch's record in a model's history holds, and the check that a history read from a file
or a pickle holds just that.

``Model.fit`` writes ``epoch``, ``train_loss``, ``seconds``, ``train_accuracy`` and ``lr`` (the
accuracies are None for regression); validation data adds the ``val_`` pair, and ``TestSetMetrics``
the ``test_`` pair after every epoch of a run, so a history has test metrics in all its records or in
none. Other callbacks may add keys of their own.
"""

from __future__ import annotations

import reprlib

from xpnet.errors import StateError

_FRACTION = (float, type(None))
RECORD_TYPES = {
    "epoch": (int,),
    "train_loss": (float,),
    "seconds": (float,),
    "train_accuracy": _FRACTION,
    "lr": (int, float),
    "val_loss": (float,),
    "val_accuracy": _FRACTION,
    "test_loss": (float,),
    "test_accuracy": _FRACTION,
}
METRIC_PAIRS = (("val_loss", "val_accuracy"), ("test_loss", "test_accuracy"))
REQUIRED_KEYS = [key for key in RECORD_TYPES if not any(key in pair for pair in METRIC_PAIRS)]


def check_history(history) -> None:
    """Every record holds the keys ``Model.fit`` writes, of the types it writes, numbered 1, 2, 3...;
    the validation and test pairs are whole, and the test pair in all records or none."""
    if not isinstance(history, list):
        raise StateError("training history is missing or malformed; the file is corrupt")
    for number, record in enumerate(history, start=1):
        _check_record(record, number)
    tested = ["test_loss" in record for record in history]
    if any(tested) and not all(tested):
        number = tested.index(False) + 1
        raise StateError(
            f"history record {number} lacks test_loss and test_accuracy, which other records have; the file is corrupt"
        )


def _check_record(record, number: int) -> None:
    where = f"history record {number}"
    if not isinstance(record, dict):
        raise StateError(f"{where} is not a mapping of names to numbers; the file is corrupt")
    for first, second in METRIC_PAIRS:
        if (first in record) != (second in record):
            present, missing = (first, second) if first in record else (second, first)
            raise StateError(f"{where} has {present} but lacks {missing}; the file is corrupt")
    missing = [key for key in REQUIRED_KEYS if key not in record]
    if missing:
        raise StateError(f"{where} lacks {missing[0]}; the file is corrupt")
    for key, types in RECORD_TYPES.items():
        if key in record and type(record[key]) not in types:
            value = record[key]
            raise StateError(f"{where} has {key} {reprlib.repr(value)} ({type(value).__name__}); the file is corrupt")
    if record["epoch"] != number:
        raise StateError(f"{where} is for epoch {record['epoch']}; the file is corrupt")
