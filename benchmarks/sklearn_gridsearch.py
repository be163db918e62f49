"""GridSearchCV over three hidden widths on digits: scikit-learn's MLPClassifier and xpnet's, side by side.

Both train the same network the same way: StandardScaler, then 64-h-10 with ReLU, Adam at 1e-3,
batches of 32, exactly 30 epochs (scikit-learn's early exit is switched off), no L2 penalty. The
search tries h in (64, 128, 256) with 3-fold cross-validation in two processes, then refits the
best. Each run is timed end to end (wall clock, best of ``--repeats``) and a Markdown table is printed.

    python benchmarks/sklearn_gridsearch.py [--device auto|cpu|cuda] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import warnings

from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.neural_network import MLPClassifier as SklearnMLP
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from xpnet.sklearn import MLPClassifier as XpnetMLP

WIDTHS = [(64,), (128,), (256,)]
EPOCHS, BATCH_SIZE, LR = 30, 32, 1e-3


def candidates(device: str) -> list[tuple[str, object, dict]]:
    """(label, estimator, grid) for each contender."""
    # The same settings for both: xpnet's constructor is scikit-learn's, plus device and dtype.
    settings = {
        "alpha": 0.0,
        "batch_size": BATCH_SIZE,
        "learning_rate_init": LR,
        "max_iter": EPOCHS,
        "n_iter_no_change": EPOCHS,
        "random_state": 0,
    }
    grid = {"hidden_layer_sizes": WIDTHS}
    rows = [("scikit-learn MLPClassifier (float64)", SklearnMLP(**settings), grid)]
    for dtype in ("float64", "float32"):
        rows.append((f"xpnet MLPClassifier ({dtype})", XpnetMLP(**settings, dtype=dtype, device=device), grid))
    return rows


def timed_search(estimator, grid: dict, data, repeats: int) -> tuple[float, GridSearchCV]:
    x_train, _, y_train, _ = data
    name = type(estimator).__name__.lower()
    grid = {f"{name}__{key}": values for key, values in grid.items()}
    best = float("inf")
    for _ in range(repeats):
        search = GridSearchCV(make_pipeline(StandardScaler(), estimator), grid, cv=3, n_jobs=2)
        started = time.perf_counter()
        search.fit(x_train, y_train)
        best = min(best, time.perf_counter() - started)
    return best, search


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="xpnet device: auto, cpu, cuda (default auto)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per contender; the fastest is reported")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=ConvergenceWarning)  # 30 epochs on purpose
    x, y = load_digits(return_X_y=True)
    data = train_test_split(x, y, stratify=y, random_state=0)
    print(f"digits: {len(data[0])} training and {len(data[1])} test samples")
    print(f"{os.cpu_count()} cores ({platform.machine()}), xpnet device={args.device}")
    print(f"GridSearchCV(cv=3, n_jobs=2) over {len(WIDTHS)} widths, {EPOCHS} epochs each; best of {args.repeats}\n")
    print("| contender | wall seconds | best width | CV accuracy | test accuracy |")
    print("|---|---|---|---|---|")
    for label, estimator, grid in candidates(args.device):
        seconds, search = timed_search(estimator, grid, data, args.repeats)
        width = next(iter(search.best_params_.values()))
        test_accuracy = search.score(data[1], data[3])
        print(f"| {label} | {seconds:.2f} | {width[0]} | {search.best_score_:.3f} | {test_accuracy:.3f} |", flush=True)


if __name__ == "__main__":
    main()
