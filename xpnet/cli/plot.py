"""``xpnet plot RUN_DIR``: draw curves.png and confusion.png for a finished run."""

from __future__ import annotations

import argparse

from xpnet.report import plots

NAME = "plot"


def add_parser(subcommands) -> None:
    parser = subcommands.add_parser(
        NAME,
        help="draw curves.png and confusion.png of a run folder (needs matplotlib)",
        description="Draw curves.png (loss and accuracy per epoch) and confusion.png of a finished run "
        f"folder. Needs matplotlib: {plots.INSTALL_HINT}.",
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="run folder written by xpnet train")


def run(args: argparse.Namespace) -> int:
    for path in plots.plot_run(args.run_dir):
        print(f"wrote {path}")
    return 0
