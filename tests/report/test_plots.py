"""Pictures of a run (needs the ``plot`` extra), and the note or error when matplotlib is missing."""

from __future__ import annotations

import numpy as np
import pytest

from xpnet.cli import main
from xpnet.report import plots

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path) -> tuple[int, int]:
    """Width and height in pixels, from the PNG's IHDR chunk."""
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


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


@pytest.mark.parametrize("validation", [True, False])
def test_the_curves_show_validation_where_the_run_recorded_it(validation):
    pytest.importorskip("matplotlib")
    epochs = [
        {
            "epoch": epoch,
            "train_loss": 1.0 / epoch,
            "train_accuracy": 0.5,
            "test_loss": 2.0 / epoch,
            "test_accuracy": 0.4,
        }
        for epoch in (1, 2, 3)
    ]
    if validation:
        for record in epochs:
            record.update(val_loss=3.0 / record["epoch"], val_accuracy=0.45)
    loss_axes, accuracy_axes = plots.curves_figure(epochs).axes[:2]
    drawn = {line.get_label(): list(line.get_ydata()) for line in loss_axes.get_lines()}
    expected = {"train": [1.0, 1 / 2, 1 / 3], "test": [2.0, 2 / 2, 2 / 3]}
    if validation:
        expected["validation"] = [3.0, 3 / 2, 3 / 3]
    assert drawn == expected
    legend = [text.get_text() for text in accuracy_axes.get_legend().get_texts()]
    assert legend == (["train", "validation", "test"] if validation else ["train", "test"])


def test_a_confusion_matrix_shows_counts_and_ticks_only_while_they_are_readable():
    pytest.importorskip("matplotlib")
    for classes, texts in ((10, 100), (plots.LABELLED_CLASSES, plots.LABELLED_CLASSES**2), (40, 0)):
        matrix = np.eye(classes, dtype=int).tolist()
        figure = plots.confusion_figure(matrix, list(range(classes)))
        axes = figure.axes[0]
        assert len(axes.texts) == texts
        assert max(figure.get_size_inches()) <= plots.MAX_CONFUSION_INCHES
        if texts:
            assert [tick.get_text() for tick in axes.get_xticklabels()] == [str(c) for c in range(classes)]


def test_a_thousand_classes_draw_in_a_bounded_picture(tmp_path):
    pytest.importorskip("matplotlib")
    classes = 1001
    matrix = (np.eye(classes, dtype=int) * 3).tolist()
    path = plots.draw_confusion(matrix, list(range(classes)), tmp_path / "confusion.png")
    width, height = png_size(path)
    assert max(width, height) <= plots.MAX_CONFUSION_INCHES * plots.DPI


def test_training_on_many_classes_plots_them(tmp_path):
    pytest.importorskip("matplotlib")
    classes = 40
    rng = np.random.default_rng(0)
    labels = np.arange(4 * classes) % classes
    inputs = (np.eye(classes)[labels] + 0.01 * rng.normal(size=(len(labels), classes))).astype(np.float32)
    data = tmp_path / "many.npz"
    np.savez(data, x_train=inputs, y_train=labels, x_test=inputs[:classes], y_test=labels[:classes])
    out = tmp_path / "run"
    assert main(["--dataset", str(data), "--epochs", "1", "--hidden", "8", "--out", str(out), "--quiet"]) == 0
    assert max(png_size(out / "confusion.png")) <= plots.MAX_CONFUSION_INCHES * plots.DPI
