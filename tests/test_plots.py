"""Pictures of a run (needs the ``plot`` extra), and the note or error when matplotlib is missing."""

from __future__ import annotations

import pytest

from xpnet import plots
from xpnet.cli import main

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def run_dir(tmp_path):
    out = tmp_path / "run"
    assert main(["--epochs", "2", "--out", str(out), "--quiet"]) == 0
    return out


def test_training_draws_curves_and_confusion(run_dir):
    pytest.importorskip("matplotlib")
    for name in ("curves.png", "confusion.png"):
        assert (run_dir / name).read_bytes().startswith(PNG_SIGNATURE)


def test_plot_command_redraws_a_run(run_dir, capsys):
    pytest.importorskip("matplotlib")
    (run_dir / "curves.png").unlink()
    (run_dir / "confusion.png").unlink()
    assert main(["plot", str(run_dir)]) == 0
    assert capsys.readouterr().out.count("wrote ") == 2
    assert (run_dir / "curves.png").read_bytes().startswith(PNG_SIGNATURE)
    assert (run_dir / "confusion.png").read_bytes().startswith(PNG_SIGNATURE)


def test_plot_command_names_damaged_metrics(run_dir, capsys):
    pytest.importorskip("matplotlib")
    (run_dir / "metrics.json").write_text('{"epochs": [{"epoch": 1}]}')
    assert main(["plot", str(run_dir)]) == 2
    assert "cannot be plotted" in capsys.readouterr().err


def test_plot_command_needs_a_run_folder(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    assert main(["plot", str(tmp_path / "no-such-run")]) == 2
    assert capsys.readouterr().err.startswith(f"xpnet: error: {tmp_path / 'no-such-run'} is not a folder")
    assert main(["plot", str(tmp_path)]) == 2
    assert "metrics.json does not exist" in capsys.readouterr().err


def test_without_matplotlib_training_notes_it_and_plot_explains(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(plots, "available", lambda: False)
    out = tmp_path / "run"
    assert main(["--epochs", "1", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert err.startswith("xpnet: note: curves.png and confusion.png skipped: pip install 'xpnet[plot]'")
    assert not (out / "curves.png").exists() and (out / "metrics.json").exists()
    assert main(["plot", str(out)]) == 2
    assert capsys.readouterr().err == (
        "xpnet: error: plotting needs matplotlib, which is not installed: pip install 'xpnet[plot]' (matplotlib)\n"
    )
