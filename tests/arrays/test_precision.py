"""The TF32 option: off by default, validated, and harmless where the library has no TF32 mode.
Its effect on CUDA (CuPy and PyTorch) is checked in test_cuda.py."""

from __future__ import annotations

import pytest

from xpnet import TrainConfig, XpnetError, load_digits, select
from xpnet.arrays.precision import tf32_matmuls
from xpnet.cli import main
from xpnet.train.model import Model


def test_tf32_is_off_unless_asked_for():
    assert TrainConfig().tf32 is False


def test_the_command_accepts_tf32_and_trains_on_the_cpu(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # where a run folder would go
    assert main(["--tf32", "--device", "cpu", "--epochs", "1", "--quiet"]) == 0


def test_tf32_must_be_a_boolean():
    with pytest.raises(XpnetError, match="tf32 must be true or false, got 'yes'"):
        TrainConfig(tf32="yes")


def test_tf32_survives_the_config_round_trip():
    assert TrainConfig.from_dict(TrainConfig(tf32=True).to_dict()).tf32 is True


def test_tf32_changes_nothing_on_the_cpu():
    x_train, y_train, x_test, y_test = load_digits()
    plain = Model(hidden=[16], epochs=2, device="cpu")
    tf32 = Model(hidden=[16], epochs=2, device="cpu", tf32=True)
    plain.fit(x_train[:200], y_train[:200])
    tf32.fit(x_train[:200], y_train[:200])
    assert tf32.evaluate(x_test, y_test) == plain.evaluate(x_test, y_test)


def test_torch_on_the_cpu_keeps_its_cuda_matmul_setting():
    torch = pytest.importorskip("torch")
    before = torch.backends.cuda.matmul.allow_tf32
    with tf32_matmuls(select(torch.asarray(0.0)), True):
        assert torch.backends.cuda.matmul.allow_tf32 == before
