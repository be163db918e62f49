"""``xpnet sweep SWEEP.toml``: many trainings of one search at once, on Optuna; ``--summary DIR`` prints
a sweep's table. The sweep itself is ``xpnet.sweep``'s; ``--worker`` is how it starts its workers."""

from __future__ import annotations

import argparse

from xpnet.errors import XpnetError
from xpnet.sweep import read_summary, run_sweep, worker

NAME = "sweep"
USAGE = "xpnet sweep SWEEP.toml [--out DIR] [--jobs N], or xpnet sweep --summary DIR"


def add_parser(subcommands) -> None:
    parser = subcommands.add_parser(
        NAME,
        help="run the trials of a sweep file in parallel, on Optuna (needs pip install 'xpnet[sweep]')",
        description="Run the trials of a sweep file ([sweep]: method, metric, trials, ...; [base]: the options "
        "of --config; [parameters]: the options to search) as run folders inside a sweep folder, JOBS at a time, "
        "and write its summary (summary.csv, summary.md, best.json, history.png, importance.png); with refit = true "
        "in [sweep], then train the best trial's settings again on the whole training set into refit/. Run the same "
        "command again to continue a sweep that was stopped; start it on other machines with the same sweep "
        "folder (a shared volume) or database storage to add workers.",
        epilog="Example: xpnet sweep examples/sweeps/digits_quick.toml --out sweeps/quick --jobs 2",
    )
    parser.add_argument("file", nargs="?", metavar="SWEEP.toml", help="the sweep file")
    parser.add_argument("--out", metavar="DIR", help="sweep folder (default: sweeps/<name>)")
    parser.add_argument(
        "--jobs", type=int, metavar="N", help="trials at once on this machine (default: the file's jobs)"
    )
    parser.add_argument("--summary", metavar="DIR", help="print the summary of the sweep in DIR and exit")
    parser.add_argument("--quiet", action="store_true", help="no progress bar and no table: errors only")
    # How a sweep starts its workers: python -m xpnet sweep --worker DIR --index I [--device DEVICE]
    parser.add_argument("--worker", metavar="DIR", help=argparse.SUPPRESS)
    parser.add_argument("--index", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--device", help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    if args.worker is not None:
        return worker.work(args.worker, device=args.device, index=args.index, watch_parent=True)
    if (args.file is None) == (args.summary is None):
        raise XpnetError(f"give a sweep file or --summary DIR, not both or neither: {USAGE}")
    if args.summary is not None:
        result = read_summary(args.summary)
    else:
        result = run_sweep(args.file, args.out, args.jobs, quiet=args.quiet)
        if args.quiet:
            return 0
    print(result.markdown(), end="")
    print(result.best_line())
    return 0
