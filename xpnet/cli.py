"""The ``xpnet`` command: ``python -m xpnet`` trains on the embedded digits by default.

Every training option maps one-to-one onto a ``TrainConfig`` field. Bad input ends with exit code 2
and one line on stderr that says what was wrong and what to do, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings

from xpnet import datasets
from xpnet.callbacks import EpochPrinter
from xpnet.config import TrainConfig
from xpnet.errors import XpnetError
from xpnet.model import Model

USAGE_ERROR = 2
DEFAULTS = TrainConfig()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xpnet",
        description="Train a multi-layer perceptron on NumPy (CPU) or CuPy (CUDA GPU).",
        epilog="Example: python -m xpnet --hidden 256 128 --epochs 30 --device cuda",
    )
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: auto)")
    parser.add_argument("--dataset", default="digits", help="dataset to train on (default: digits, embedded)")
    net = parser.add_argument_group("network")
    net.add_argument(
        "--hidden",
        type=int,
        nargs="*",
        default=list(DEFAULTS.hidden),
        metavar="WIDTH",
        help=f"hidden layer widths (default: {' '.join(map(str, DEFAULTS.hidden))})",
    )
    net.add_argument("--activation", default=DEFAULTS.activation, help=f"default: {DEFAULTS.activation}")
    net.add_argument("--init", default=DEFAULTS.init, help="he_normal, glorot_uniform, ... (default: auto)")
    net.add_argument("--dropout", type=float, default=DEFAULTS.dropout, help="dropout rate after hidden layers")
    opt = parser.add_argument_group("optimizer")
    opt.add_argument("--optimizer", default=DEFAULTS.optimizer, help="sgd, momentum, nesterov, adam, adamw")
    opt.add_argument("--lr", type=float, default=DEFAULTS.lr, help=f"learning rate (default: {DEFAULTS.lr})")
    opt.add_argument("--momentum", type=float, default=DEFAULTS.momentum, help="SGD momentum")
    opt.add_argument("--weight-decay", type=float, default=DEFAULTS.weight_decay)
    opt.add_argument("--schedule", default=DEFAULTS.schedule, help="constant, step or cosine")
    loop = parser.add_argument_group("training loop")
    loop.add_argument("--batch-size", type=int, default=DEFAULTS.batch_size)
    loop.add_argument("--epochs", type=int, default=DEFAULTS.epochs)
    loop.add_argument("--early-stopping", type=int, default=None, metavar="PATIENCE")
    loop.add_argument("--val-split", type=float, default=DEFAULTS.val_split)
    loop.add_argument("--seed", type=int, default=DEFAULTS.seed)
    loop.add_argument("--dtype", default=DEFAULTS.dtype, help="float32 (default) or float64")
    loop.add_argument("--tf32", action="store_true", help="TF32 matrix multiplies on CUDA: faster, less precise")
    loop.add_argument("--quiet", action="store_true", help="print nothing but errors")
    return parser


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(
        hidden=tuple(args.hidden),
        activation=args.activation,
        init=args.init,
        dropout=args.dropout,
        optimizer=args.optimizer,
        lr=args.lr,
        momentum=args.momentum,
        weight_decay=args.weight_decay,
        schedule=args.schedule,
        batch_size=args.batch_size,
        epochs=args.epochs,
        early_stopping=args.early_stopping,
        val_split=args.val_split,
        seed=args.seed,
        dtype=args.dtype,
        tf32=args.tf32,
    )


def train(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    x_train, y_train, x_test, y_test = datasets.load(args.dataset)
    model = Model(config, device=args.device)
    callbacks = [] if args.quiet else [EpochPrinter()]
    validation = None if config.early_stopping else (x_test, y_test)
    started = time.perf_counter()
    model.fit(x_train, y_train, validation_data=validation, callbacks=callbacks)
    seconds = time.perf_counter() - started
    result = model.evaluate(x_test, y_test)
    if not args.quiet:
        print(
            f"test accuracy {100 * result['accuracy']:.2f}%  test loss {result['loss']:.4f}  "
            f"({len(model.history)} epochs in {seconds:.1f}s on {model.backend})"
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.formatwarning = lambda message, category, *rest: f"xpnet: warning: {message}\n"
            return train(args)
    except XpnetError as error:
        print(f"xpnet: error: {error}", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        print("xpnet: interrupted", file=sys.stderr)
        return 130
