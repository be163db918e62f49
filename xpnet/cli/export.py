"""``xpnet export MODEL --onnx FILE``: a saved model as an ONNX file, for onnxruntime and other runtimes."""

from __future__ import annotations

import argparse
from pathlib import Path

from xpnet.cli import options
from xpnet.errors import XpnetError
from xpnet.export.onnx_graph import INSTALL_HINT, OPSET, export_onnx
from xpnet.train.model import load

NAME = "export"


def add_parser(subcommands) -> None:
    parser = subcommands.add_parser(
        NAME,
        help="write a saved model as an ONNX file (needs pip install 'xpnet[onnx]')",
        description="Write a saved model (model.npz in a run folder) as an ONNX file that onnxruntime and "
        f"other runtimes run: input 'x', outputs 'logits' and 'probabilities' ('outputs' for a regression "
        f"model), opset {OPSET}. Needs the onnx package: {INSTALL_HINT}.",
        epilog="Example: xpnet export runs/20250101-120000 --onnx model.onnx",
    )
    options.add_model_argument(parser)
    parser.add_argument("--onnx", metavar="FILE", required=True, help="the ONNX file to write")
    parser.add_argument("--force", action="store_true", help="overwrite FILE if it exists")


def run(args: argparse.Namespace) -> int:
    out = Path(args.onnx)
    if out.exists() and not args.force:
        raise XpnetError(f"{out} exists already: choose another path, or pass --force to overwrite it")
    model = load(options.model_file(args.model), device="cpu")
    export_onnx(model, out)
    print(f"wrote {out}: ONNX opset {OPSET}, {model.config.dtype} input 'x' of {model.network.n_inputs} features")
    return 0
