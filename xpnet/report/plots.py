"""Pictures of a run: ``curves.png`` (loss and accuracy per epoch) and ``confusion.png``.

Needs matplotlib (``pip install 'xpnet[plot]'``). Figures are drawn without pyplot, so nothing
global (backend, open windows) is touched, and each file is written atomically.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from xpnet.errors import XpnetError
from xpnet.io import runs
from xpnet.io.atomic import atomic_write

CURVES_FILE = "curves.png"
CONFUSION_PLOT_FILE = "confusion.png"
INSTALL_HINT = "pip install 'xpnet[plot]' (matplotlib)"
# Above this many classes the confusion matrix shows colours only: a number and a tick per class would
# be unreadable, and 1000 classes would make a 550-inch figure of a million texts that never finishes.
LABELLED_CLASSES = 30
MAX_CONFUSION_INCHES = 12.0
DPI = 120


def available() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def plot_run(run_dir) -> list[Path]:
    """Draw both pictures from ``metrics.json`` and ``confusion.json`` in ``run_dir``; return their paths."""
    if not available():
        raise XpnetError(f"plotting needs matplotlib, which is not installed: {INSTALL_HINT}")
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise XpnetError(f"{run_dir} is not a folder: give the run folder that xpnet train wrote (--out)")
    metrics = runs.read_json(run_dir / runs.METRICS_FILE)
    confusion = runs.read_json(run_dir / runs.CONFUSION_FILE)
    try:
        curves = draw_curves(metrics["epochs"], run_dir / CURVES_FILE)
        matrix = draw_confusion(confusion["matrix"], confusion["classes"], run_dir / CONFUSION_PLOT_FILE)
    except (KeyError, TypeError, ValueError) as error:
        raise XpnetError(
            f"{run_dir} holds metrics that cannot be plotted ({error!r}); the run folder is damaged"
        ) from None
    return [curves, matrix]


def draw_curves(epochs: list[dict], path: Path) -> Path:
    """Loss and accuracy per epoch (``curves_figure``), drawn to ``path``."""
    return _save(curves_figure(epochs), path)


def curves_figure(epochs: list[dict]):
    """Loss (left) and accuracy (right) per epoch: train, validation where the run held data out for it
    (the curve a sweep chooses by), and test."""
    from matplotlib.ticker import MaxNLocator

    figure = _figure(figsize=(10, 4))
    loss_axes, accuracy_axes = figure.subplots(1, 2)
    numbers = [record["epoch"] for record in epochs]
    validated = bool(epochs) and runs.VALIDATION_KEYS[0] in epochs[0]
    for key, label, style in (("train", "train", "-o"), ("val", "validation", "-^"), ("test", "test", "-s")):
        if key == "val" and not validated:
            continue
        loss_axes.plot(numbers, [record[f"{key}_loss"] for record in epochs], style, markersize=3, label=label)
        accuracy_axes.plot(
            numbers, [100 * record[f"{key}_accuracy"] for record in epochs], style, markersize=3, label=label
        )
    loss_axes.set(xlabel="epoch", ylabel="cross-entropy loss", title="Loss")
    accuracy_axes.set(xlabel="epoch", ylabel="accuracy (%)", title="Accuracy")
    for axes in (loss_axes, accuracy_axes):
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.grid(alpha=0.3)
        axes.legend()
    return figure


def draw_confusion(matrix: list[list[int]], classes: list, path: Path) -> Path:
    """Counts of (true class, predicted class) on the test set, drawn to ``path``."""
    return _save(confusion_figure(matrix, classes), path)


def confusion_figure(matrix: list[list[int]], classes: list):
    """The confusion matrix as a figure: each cell's count and each class's tick up to
    ``LABELLED_CLASSES`` classes; beyond that colours only, and a figure no larger than
    ``MAX_CONFUSION_INCHES``, so a thousand classes still draw in moments."""
    size = len(classes)
    figure = _figure(figsize=(min(1.5 + 0.55 * size, MAX_CONFUSION_INCHES), min(1 + 0.5 * size, MAX_CONFUSION_INCHES)))
    axes = figure.subplots()
    image = axes.imshow(matrix, cmap="Blues")
    figure.colorbar(image, ax=axes)
    if size <= LABELLED_CLASSES:
        highest = max(max(row) for row in matrix) or 1
        for row in range(size):
            for column in range(size):
                count = matrix[row][column]
                color = "white" if count > highest / 2 else "black"
                axes.text(column, row, str(count), ha="center", va="center", fontsize=7, color=color)
        axes.set_xticks(range(size), [str(c) for c in classes])
        axes.set_yticks(range(size), [str(c) for c in classes])
    axes.set(xlabel="predicted class", ylabel="true class", title="Confusion matrix (test set)")
    return figure


def _figure(figsize):
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, layout="constrained")


def _save(figure, path: Path) -> Path:
    with atomic_write(path) as handle:
        figure.savefig(handle, format="png", dpi=DPI)
    return path
