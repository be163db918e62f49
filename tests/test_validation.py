"""One rule per setting: a bad value is refused with the same ``SettingError`` (a ``ValueError``) and
the same words whichever door it comes through: ``TrainConfig``, an optimizer, a layer, a schedule,
a callback, ``fit`` or the command line."""

from __future__ import annotations

import numpy as np
import pytest

import xpnet
from xpnet import optim
from xpnet.cli import main
from xpnet.errors import SettingError
from xpnet.optim.schedules import Schedule


def refusal(build) -> str:
    with pytest.raises(SettingError) as caught:
        build()
    assert isinstance(caught.value, ValueError)
    return str(caught.value)


def command_refusal(argv, capsys) -> str:
    assert main(argv) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("xpnet: error: ") and "\n" not in error
    return error.removeprefix("xpnet: error: ")


@pytest.mark.parametrize(
    ("doors", "message"),
    [
        (
            [
                lambda: xpnet.TrainConfig(momentum=1.5),
                lambda: optim.SGD(momentum=1.5),
                lambda: optim.make("momentum", momentum=1.5),
            ],
            "momentum must be in [0, 1), got 1.5",
        ),
        ([lambda: xpnet.TrainConfig(dropout=1.0), lambda: xpnet.Dropout(1.0)], "dropout must be in [0, 1), got 1.0"),
        (
            [lambda: xpnet.TrainConfig(weight_decay=-1), lambda: optim.Adam(weight_decay=-1)],
            "weight_decay must be >= 0, got -1",
        ),
        (
            [
                lambda: xpnet.TrainConfig(weight_decay=float("nan")),
                lambda: optim.make("sgd", weight_decay=float("nan")),
            ],
            "weight_decay must be a finite number, got nan",
        ),
        (
            [lambda: xpnet.TrainConfig(early_stopping=0), lambda: xpnet.EarlyStopping(0)],
            "early stopping patience (in epochs) must be a positive integer, got 0",
        ),
        (
            [lambda: xpnet.TrainConfig(warmup_epochs=-1), lambda: Schedule(warmup_epochs=-1)],
            "warmup_epochs must be a non-negative integer, got -1",
        ),
        (
            [lambda: xpnet.TrainConfig(schedule="linear"), lambda: Schedule("linear")],
            "unknown schedule 'linear': choose one of constant, step, cosine, invscaling, adaptive",
        ),
        (
            [lambda: xpnet.TrainConfig(activation="swish"), lambda: xpnet.Activation("swish")],
            "unknown activation 'swish': choose one of gelu, identity, leaky_relu, relu, sigmoid, tanh",
        ),
        (
            [lambda: xpnet.TrainConfig(optimizer="adagrad"), lambda: optim.make("adagrad")],
            "unknown optimizer 'adagrad': choose one of adam, adamw, rmsprop, sgd, momentum, nesterov, lbfgs",
        ),
        (
            [lambda: xpnet.TrainConfig(epochs=True), lambda: xpnet.Model().fit(np.zeros((2, 2)), [0, 1], epochs=True)],
            "epochs must be a positive integer, got True",
        ),
    ],
    ids=[
        "momentum",
        "dropout",
        "weight decay",
        "nan",
        "patience",
        "warmup",
        "schedule",
        "activation",
        "optimizer",
        "epochs",
    ],
)
def test_every_door_gives_the_same_refusal(doors, message):
    assert {refusal(door) for door in doors} == {message}


@pytest.mark.parametrize(
    ("argv", "build"),
    [
        (["--momentum", "1.5", "--optimizer", "momentum"], lambda: optim.SGD(momentum=1.5)),
        (["--dropout", "1"], lambda: xpnet.Dropout(1.0)),
        (["--lr", "0"], lambda: xpnet.TrainConfig(lr=0.0)),
        (["--early-stopping", "0"], lambda: xpnet.EarlyStopping(0)),
    ],
)
def test_the_command_line_refuses_with_the_same_words(argv, build, capsys, tmp_path):
    assert command_refusal([*argv, "--out", str(tmp_path / "run")], capsys) == refusal(build)
    assert not (tmp_path / "run").exists()
