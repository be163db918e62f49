"""The warnings a command raises: each distinct one printed once as ``xpnet: warning: ...`` (none
with ``--quiet``, which prints nothing but errors), and all kept so that ``train`` records them in
``metrics.json`` and its ``--json`` summary, where a quiet run's warnings are still found."""

from __future__ import annotations

import sys

from xpnet.errors import one_line

# NumPy's floating-point warnings ("overflow encountered in cast", ...). Once training blows up they
# come from every layer of every batch, and the divergence guard already names the cause and the fix.
NUMPY_FLOATING_POINT = r"(overflow|underflow|invalid value|divide by zero) encountered in"


class WarningLog:
    """Stands in for ``warnings.showwarning`` while a command runs."""

    def __init__(self) -> None:
        self.quiet = False
        self.messages: list[str] = []

    def show(self, message, category, filename, lineno, file=None, line=None) -> None:
        text = one_line(message)
        if text in self.messages:
            return
        self.messages.append(text)
        if not self.quiet:
            print(f"xpnet: warning: {text}", file=sys.stderr, flush=True)
