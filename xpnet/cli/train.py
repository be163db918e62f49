"""``xpnet train``: train on a dataset and leave a run folder (config, metrics, model, plots). The run
itself is ``xpnet.runner.run``'s; this module reads the command line and prints the summary."""

from __future__ import annotations

import argparse
import json
import sys

from xpnet.cli import options
from xpnet.errors import XpnetError
from xpnet.runner import run as runner
from xpnet.runner.run import RESUME_OVERRIDES

NAME = "train"


def add_parser(subcommands) -> None:
    parser = subcommands.add_parser(
        NAME,
        help="train a network and write a run folder (the default command)",
        description="Train a multi-layer perceptron and write a run folder: config.json, metrics.json, "
        "model.npz, and with matplotlib curves.png and confusion.png.",
        epilog="Example: python -m xpnet --dataset mnist --hidden 800 --epochs 20 --device cuda",
    )
    options.add_training_options(parser)


def run(args: argparse.Namespace) -> int:
    world = args.world  # every rank of a distributed run checks the command line, rank 0 alone reports
    if args.resume:
        changes = world.together(lambda: resume_changes(args))
        finished = runner.resume(args.resume, changes, args.warnings, world=world)
    else:
        settings = world.together(lambda: options.resolve(args))
        finished = runner.start(settings, args.warnings, world=world)
    if finished is not None:  # None on the ranks other than 0 of a distributed run
        report(finished)
    return 0


def resume_changes(args: argparse.Namespace) -> dict:
    """The options given with ``--resume``: only where and how the run is watched may change."""
    given = [
        option.flag
        for option in options.OPTIONS
        if option.name not in RESUME_OVERRIDES and getattr(args, option.name, None) is not None
    ]
    if args.config is not None:
        given.append("--config")
    if given:
        allowed = ", ".join(options.BY_NAME[name].flag for name in RESUME_OVERRIDES)
        raise XpnetError(
            f"--resume continues a run with the options it was started with, so {', '.join(given)} cannot be "
            f"given with it (only {allowed} can); to change the others, start a new run with another --out"
        )
    return {name: getattr(args, name) for name in RESUME_OVERRIDES if getattr(args, name, None) is not None}


def report(finished: runner.Finished) -> None:
    """The final summary: JSON on stdout (``--json``), or one line unless quiet; and the note of skipped plots."""
    metrics, quiet = finished.metrics, finished.run_options["quiet"]
    summary = {
        "test_accuracy": metrics["test_accuracy"],
        "test_loss": metrics["test_loss"],
        "epochs": len(finished.model.history),
        "seconds": finished.seconds,
        "dataset": metrics["dataset"],
        "backend": metrics["backend"],
        "device": metrics["device"],
        "run_dir": str(finished.run_dir),
        "warnings": metrics["warnings"],
    }
    if finished.run_options["json"]:
        print(json.dumps(summary))
    elif not quiet:
        print(
            f"test accuracy {100 * summary['test_accuracy']:.2f}% (loss {summary['test_loss']:.4f}) after "
            f"{summary['epochs']} epochs in {finished.seconds:.1f}s on {summary['backend']} {summary['device']}; "
            f"run folder: {finished.run_dir}"
        )
    if finished.plot_note and not quiet:
        print(f"xpnet: note: {finished.plot_note}", file=sys.stderr)
