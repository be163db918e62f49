"""Whether host code waits for a device: hold the device's queue behind a gate the host opens, run the code,
and look whether the gate was still closed when the code returned. Code that synchronised, or copied a result
back, would have waited for the gate; the gate opens by itself after ``hold_seconds``, so such code returns
late, with the gate open, and the check fails instead of hanging.

Unlike counting calls to synchronising functions from Python, this sees waits made anywhere, inside a
library's compiled code included. ``tests/test_device_waits.py`` shows it catching a wait, on a stand-in
device; ``tests/test_cuda.py`` holds a real GPU's stream with it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


class Gate(Protocol):
    """A device queue held until ``open`` or ``hold_seconds`` after ``close``."""

    def close(self, hold_seconds: float) -> None:
        """Queue the hold: everything queued after it waits."""

    def is_closed(self) -> bool:
        """Whether the hold is still in the queue."""

    def open(self) -> None:
        """Let the queue go on, and wait until it is empty."""


def returns_before_the_device(gate: Gate, run: Callable[[], object], hold_seconds: float = 30.0) -> tuple[bool, object]:
    """Run ``run()`` behind a closed ``gate``: whether it returned while the gate was still closed (it
    never waited for the device), and what it returned."""
    gate.close(hold_seconds)
    try:
        result = run()
        returned_first = gate.is_closed()
    finally:
        gate.open()
    return returned_first, result
