"""``xpnet check``: prove on the chosen device that backpropagation and the numerics are sound.

Three checks: gradients against finite differences (``xpnet.gradcheck``), a finite softmax
cross-entropy on extreme logits, and a short training run whose loss must go down.
"""

from __future__ import annotations

import argparse
import json
import math

from xpnet.arrays import streams
from xpnet.arrays.backend import Backend, select
from xpnet.cli import options
from xpnet.datasets import load_digits
from xpnet.errors import XpnetError
from xpnet.io import runs
from xpnet.nn import losses
from xpnet.nn.gradcheck import gradcheck
from xpnet.nn.network import Network
from xpnet.train.model import Model

NAME = "check"
CHECK_FAILED = 1
SEED = 0
EXTREME_LOGIT = 1e4
TINY_RUN_SAMPLES = 300
ACTIVATIONS_CHECKED = ("tanh", "relu", "gelu")


def add_parser(subcommands) -> None:
    parser = subcommands.add_parser(
        NAME,
        help="gradient check and numerical self-test on a device",
        description="Check backpropagation against finite differences and run a numerical self-test "
        "on the chosen device. Exit code 0 when every check passes, 1 otherwise.",
        epilog="Example: xpnet check --device cuda",
    )
    for name in ("device", "json"):
        options.add_option(parser, options.BY_NAME[name])


def check_gradients(backend: Backend) -> str:
    rng = streams.RandomStream(backend, SEED, streams.INIT)
    xp = backend.xp
    y = xp.asarray([0, 1, 2, 0, 1, 2], dtype=xp.int64, device=backend.device)
    worst = 0.0
    for activation in ACTIVATIONS_CHECKED:
        network = Network.mlp([5, 7, 4, 3], rng, activation=activation, dtype=xp.float64)
        errors = gradcheck(network, rng.normal((6, 5), xp.float64), y)
        worst = max(worst, *errors.values())
    return f"largest relative error {worst:.1e} ({', '.join(ACTIVATIONS_CHECKED)} networks)"


def check_extreme_logits(backend: Backend) -> str:
    xp = backend.xp
    big = EXTREME_LOGIT
    logits = xp.asarray([[big, -big, 0.0], [-big, big, 0.0]], dtype=xp.float32, device=backend.device)
    labels = xp.asarray([0, 0], dtype=xp.int64, device=backend.device)
    loss, grad = losses.softmax_cross_entropy(logits, labels)
    value = float(loss)
    # Row 1 is certain and right (loss 0), row 2 certain and wrong (loss 2 * big): mean = big.
    if not math.isfinite(value) or not bool(xp.all(xp.isfinite(grad))) or abs(value - big) > 1e-3 * big:
        raise XpnetError(f"cross-entropy of logits +-{big:g} is {value}, expected {big:g}")
    return f"loss {value:g} for logits of +-{big:g}, gradient finite"


def check_training(backend: Backend, device: str) -> str:
    x_train, y_train, _, _ = load_digits()
    model = Model(hidden=[32], lr=0.01, epochs=3, batch_size=32, seed=SEED, device=device)
    history = model.fit(x_train[:TINY_RUN_SAMPLES], y_train[:TINY_RUN_SAMPLES])
    first, last = history[0]["train_loss"], history[-1]["train_loss"]
    if not last < first:
        raise XpnetError(f"training loss went from {first:.4f} to {last:.4f} instead of down")
    return f"training loss {first:.3f} -> {last:.3f} in {len(history)} epochs on {TINY_RUN_SAMPLES} digits"


def run(args: argparse.Namespace) -> int:
    device = args.device or options.RUN_DEFAULTS["device"]
    backend = select(device)
    checks = {
        "gradients match finite differences": lambda: check_gradients(backend),
        "softmax cross-entropy finite on extreme logits": lambda: check_extreme_logits(backend),
        "a tiny training run lowers the loss": lambda: check_training(backend, device),
    }
    results = []
    with backend.active():
        for name, check in checks.items():
            try:
                results.append({"check": name, "passed": True, "detail": check()})
            except XpnetError as failure:
                results.append({"check": name, "passed": False, "detail": str(failure)})
    passed = all(result["passed"] for result in results)
    if args.json:
        print(
            json.dumps(
                {"backend": backend.name, "device": runs.device_label(backend), "passed": passed, "checks": results}
            )
        )
    else:
        print(f"checking xpnet on {backend.name} {runs.device_label(backend)}")
        for result in results:
            print(f"{'ok  ' if result['passed'] else 'FAIL'}  {result['check']}: {result['detail']}")
    return 0 if passed else CHECK_FAILED
