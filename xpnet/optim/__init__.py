"""Optimizers: each update rule as array-API reference with its NumPy and Numba variants, chosen in one
place, and learning-rate schedules. Like ``nn``, it knows nothing of training loops or files."""
