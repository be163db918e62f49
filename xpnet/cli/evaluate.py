"""``xpnet evaluate MODEL``: loss and accuracy of a saved model on a dataset's test split."""

from __future__ import annotations

import argparse
import json

from xpnet import datasets
from xpnet.cli import options
from xpnet.train.model import load

NAME = "evaluate"


def add_parser(subcommands) -> None:
    parser = subcommands.add_parser(
        NAME,
        help="measure a saved model on a dataset's test split",
        description="Measure a saved model (model.npz in a run folder) on the test split of a dataset: "
        "by default the dataset recorded in the run's config.json, else digits.",
        epilog="Example: xpnet evaluate runs/20250101-120000 --dataset mnist",
    )
    options.add_model_argument(parser)
    for name in ("dataset", "data_dir", "device", "json"):
        options.add_option(parser, options.BY_NAME[name])


def run(args: argparse.Namespace) -> int:
    path = options.model_file(args.model)
    model = load(path, device=args.device or options.RUN_DEFAULTS["device"])
    dataset, data_dir = dataset_of(args, path)
    _, _, x_test, y_test = datasets.load(dataset, data_dir=data_dir)
    options.check_features(model, path, x_test, dataset, "choose the dataset it was trained on with --dataset")
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


def dataset_of(args: argparse.Namespace, model_path) -> tuple[str, str | None]:
    """The dataset and data folder to measure on: those given, else the ones the run recorded
    (a --data-dir given alone applies to the recorded dataset), else digits."""
    if args.dataset is not None:
        return args.dataset, args.data_dir
    recorded = options.recorded_options(model_path)
    dataset = recorded.get("dataset") or options.RUN_DEFAULTS["dataset"]
    return dataset, args.data_dir or recorded.get("data_dir")
