"""Sweeps: many runs of one search at once, on Optuna (``pip install 'xpnet[sweep]'``).

``run_sweep("sweep.toml", out="sweeps/a", jobs=2)`` runs a sweep file's trials in worker processes and
returns its summary rows; ``read_summary("sweeps/a")`` reads a sweep's table back. ``import xpnet``
does not import this package, and this package imports Optuna only once a sweep runs.
"""

from xpnet.sweep.driver import run_sweep
from xpnet.sweep.summary import read_summary

__all__ = ["read_summary", "run_sweep"]
