"""``xpnet predict MODEL INPUTS``: class predictions for new inputs, written as CSV."""

from __future__ import annotations

import argparse
import io

import numpy as np

from xpnet import datasets
from xpnet.cli import options
from xpnet.io.atomic import atomic_write
from xpnet.train.model import load

NAME = "predict"
DEFAULT_OUT = "predictions.csv"
# (header, number of the first row): plain output counts rows from 0, Kaggle's ImageId from 1.
PLAIN_LAYOUT = (("index", "label"), 0)
KAGGLE_LAYOUT = (("ImageId", "Label"), 1)


def add_parser(subcommands) -> None:
    parser = subcommands.add_parser(
        NAME,
        help="predict classes for new inputs with a saved model",
        description="Predict the class of every row of INPUTS with a saved model and write a CSV "
        "(index,label rows; with --kaggle the ImageId,Label submission layout, ImageId from 1).",
        epilog="Example: xpnet predict runs/mnist/model.npz test.csv --kaggle --out submission.csv",
    )
    options.add_model_argument(parser)
    parser.add_argument(
        "inputs", metavar="INPUTS", help="inputs without labels: IDX images, CSV (pixel columns), .npy or .npz"
    )
    parser.add_argument("--out", metavar="FILE", help=f"CSV file to write (default: {DEFAULT_OUT})")
    parser.add_argument("--kaggle", action="store_true", help="write the Kaggle digit-recognizer submission layout")
    for name in ("device", "quiet"):
        options.add_option(parser, options.BY_NAME[name])


def run(args: argparse.Namespace) -> int:
    args.warnings.quiet = bool(args.quiet)
    path = options.model_file(args.model)
    model = load(path, device=args.device or options.RUN_DEFAULTS["device"])
    inputs = datasets.read_inputs(args.inputs)
    options.check_features(model, path, inputs, args.inputs, "pass inputs shaped like its training data")
    labels = np.asarray(model.predict(inputs))
    out = args.out or DEFAULT_OUT
    with atomic_write(out, "w") as handle:
        handle.write(predictions_csv(labels, KAGGLE_LAYOUT if args.kaggle else PLAIN_LAYOUT))
    if not args.quiet:
        print(f"wrote {len(labels)} predictions to {out}")
    return 0


def predictions_csv(labels: np.ndarray, layout) -> str:
    """The CSV text: a header row, then one ``number,label`` row per input."""
    header, first = layout
    text = io.StringIO()
    text.write(",".join(header) + "\n")
    for number, label in enumerate(labels.tolist(), start=first):
        text.write(f"{number},{label}\n")
    return text.getvalue()
