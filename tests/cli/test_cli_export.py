"""``xpnet export MODEL --onnx FILE``: a model file or run folder becomes an ONNX file that onnxruntime runs
to the same predictions; an existing file without ``--force``, a layer of the user's own, or a missing onnx
package is one ``xpnet: error:`` line and exit code 2, with nothing written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from export_models import digits_model, model_with_own_layer

import xpnet
from xpnet.cli import main

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def run_dir(tmp_path) -> Path:
    """A folder holding ``model.npz``, as a training run leaves it."""
    folder = tmp_path / "run"
    folder.mkdir()
    digits_model("relu", "float32").save(folder / "model.npz")
    return folder


def export(capsys, *argv) -> tuple[int, str, str]:
    """``xpnet export ARGV``: exit code, stdout and stderr."""
    code = main(["export", *(str(arg) for arg in argv)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(result, message: str) -> None:
    code, out, err = result
    assert (code, out) == (2, "")
    assert err.startswith("xpnet: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert message in err, err


def test_a_run_folder_becomes_an_onnx_file_onnxruntime_agrees_with(capsys, run_dir, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    out = tmp_path / "model.onnx"
    code, stdout, stderr = export(capsys, run_dir, "--onnx", out)
    assert (code, stderr) == (0, "")
    assert stdout == f"wrote {out}: ONNX opset 17, float32 input 'x' of 64 features\n"
    _, _, x_test, _ = xpnet.load_digits()
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    _, probabilities = session.run(None, {"x": x_test})
    np.testing.assert_allclose(
        probabilities, xpnet.load(run_dir / "model.npz").predict_proba(x_test), rtol=0, atol=1e-5
    )


def test_an_existing_file_is_overwritten_only_with_force(capsys, run_dir, tmp_path):
    onnx = pytest.importorskip("onnx")
    out = tmp_path / "model.onnx"
    out.write_bytes(b"someone's file")
    message = f"{out} exists already: choose another path, or pass --force to overwrite it"
    assert_one_line_error(export(capsys, run_dir, "--onnx", out), message)
    assert out.read_bytes() == b"someone's file"
    assert export(capsys, run_dir, "--onnx", out, "--force")[0] == 0
    onnx.checker.check_model(str(out), full_check=True)


def test_a_layer_of_your_own_is_refused_by_name(capsys, tmp_path, monkeypatch):
    pytest.importorskip("onnx")
    model_with_own_layer(monkeypatch).save(tmp_path / "own.npz")
    out = tmp_path / "own.onnx"
    result = export(capsys, tmp_path / "own.npz", "--onnx", out)
    assert_one_line_error(result, "layer 1 is a Halve, which the ONNX export cannot express")
    assert not out.exists()


def test_without_onnx_the_error_names_the_extra(capsys, run_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now raises ImportError
    result = export(capsys, run_dir, "--onnx", tmp_path / "model.onnx")
    assert_one_line_error(result, "needs onnx, which is not installed: pip install 'xpnet[onnx]'")
    assert not (tmp_path / "model.onnx").exists()


def test_the_onnx_file_must_be_named(capsys, run_dir):
    assert_one_line_error(export(capsys, run_dir), "the following arguments are required: --onnx")


def test_the_program_exits_2_with_one_line(run_dir, tmp_path):
    out = tmp_path / "model.onnx"
    out.write_bytes(b"")
    result = subprocess.run(
        [sys.executable, "-m", "xpnet", "export", str(run_dir), "--onnx", str(out)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=False,
    )
    assert (result.returncode, result.stdout) == (2, "")
    assert (
        result.stderr == f"xpnet: error: {out} exists already: choose another path, or pass --force to overwrite it\n"
    )
