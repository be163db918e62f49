"""The ``xpnet`` command. ``python -m xpnet [OPTIONS]`` trains (bare options mean ``train``);
``evaluate``, ``predict``, ``export``, ``check``, ``info``, ``plot`` and ``sweep`` are the other subcommands.

Bad input of any kind ends with exit code 2 and one line on stderr, ``xpnet: error: ...``, saying
what was wrong and what to do, never a traceback. Warnings print once each as ``xpnet: warning: ...``
(``--quiet`` hides them; ``train`` records them in ``metrics.json``).
"""

from __future__ import annotations

import argparse
import sys
import warnings

from xpnet.cli import check, evaluate, export, info, plot, predict, sweep, train
from xpnet.errors import XpnetError, one_line
from xpnet.runner import jobs
from xpnet.runner.warning_log import NUMPY_FLOATING_POINT, WarningLog
from xpnet.train.checkpoint import TrainingInterrupted
from xpnet.version import __version__

USAGE_ERROR = 2
INTERRUPTED = 130
COMMANDS = {module.NAME: module for module in (train, evaluate, predict, export, check, info, plot, sweep)}
TOP_LEVEL_FLAGS = ("-h", "--help", "--version")
OUT_OF_MEMORY_FIX = "free memory, or ask for less: a smaller --hidden or --batch-size, or fewer inputs to predict"


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors become one ``XpnetError`` line instead of a usage dump."""

    def error(self, message: str):
        raise XpnetError(f"{message}; see '{self.prog} --help'")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="xpnet",
        description="Train and use multi-layer perceptrons on NumPy (CPU) or CuPy (CUDA GPU). "
        "Options without a subcommand mean 'train': python -m xpnet --dataset mnist --device cuda",
        epilog="Run 'xpnet COMMAND --help' for a command's options ('xpnet train --help' for training).",
    )
    parser.add_argument("--version", action="version", version=f"xpnet {__version__}")
    subcommands = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for module in COMMANDS.values():
        module.add_parser(subcommands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0].startswith("-") and argv[0] not in TOP_LEVEL_FLAGS):
        argv.insert(0, train.NAME)
    try:
        world = jobs.join(argv)
        args, unknown = build_parser().parse_known_args(argv)
        if unknown:
            raise XpnetError(f"unrecognized arguments: {' '.join(unknown)}; see 'xpnet {args.command} --help'")
        with warnings.catch_warnings():
            warnings.simplefilter("default")  # each distinct warning once, however often it recurs
            if args.command == train.NAME:
                warnings.filterwarnings("ignore", message=NUMPY_FLOATING_POINT, category=RuntimeWarning)
            args.warnings = WarningLog()
            args.world = world
            warnings.showwarning = args.warnings.show
            return COMMANDS[args.command].run(args)
    except XpnetError as error:
        _report(f"xpnet: error: {one_line(error)}")
        return USAGE_ERROR
    except TrainingInterrupted as stop:  # a checkpoint was written: say how to resume
        _report(f"xpnet: {one_line(stop)}")
        return stop.exit_code
    except MemoryError as error:  # NumPy's _ArrayMemoryError and CuPy's OutOfMemoryError among them
        detail = f" ({one_line(error)})" if str(error) else ""
        _report(f"xpnet: error: out of memory{detail}; {OUT_OF_MEMORY_FIX}")
        return USAGE_ERROR
    except KeyboardInterrupt:
        _report("xpnet: interrupted")
        return INTERRUPTED


def _report(line: str) -> None:
    """Print ``line`` on stderr, unless this is a rank other than 0 of an MPI job (which reports
    nothing that every rank meets alike; see ``xpnet.runner.jobs``)."""
    if jobs.speaks():
        print(line, file=sys.stderr)
