"""``xpnet evaluate MODEL``: loss and accuracy of a saved model on a dataset's test split."""

from __future__ import annotations

import argparse
import json

from xpnet import datasets
from xpnet.cli import options
from xpnet.persistence import load

NAME = "evaluate"


def add_parser(subcommands) -> None:
    parser = subcommands.add_parser(
        NAME,
        help="measure a saved model on a dataset's test split",
        description="Measure a saved model (model.npz in a run folder) on the test split of a dataset.",
        epilog="Example: xpnet evaluate runs/20250101-120000/model.npz --dataset mnist",
    )
    parser.add_argument("model", metavar="MODEL", help="model file written by xpnet train or Model.save")
    for name in ("dataset", "data_dir", "device", "json"):
        options.add_option(parser, options.BY_NAME[name])


def run(args: argparse.Namespace) -> int:
    dataset = args.dataset or options.RUN_DEFAULTS["dataset"]
    model = load(args.model, device=args.device or options.RUN_DEFAULTS["device"])
    _, _, x_test, y_test = datasets.load(dataset, data_dir=args.data_dir)
    result = model.evaluate(x_test, y_test)
    if args.json:
        summary = {"dataset": dataset, "samples": len(y_test), "test_loss": result["loss"]}
        print(json.dumps({**summary, "test_accuracy": result["accuracy"]}))
    else:
        print(
            f"test accuracy {100 * result['accuracy']:.2f}% (loss {result['loss']:.4f}) "
            f"on {len(y_test)} test samples of {dataset}"
        )
    return 0
