"""Data-parallel scaling on one machine: seconds per training step of one process against ranks of an
MPI job, and the part of a step spent summing gradients across the ranks (communication plus, for the
ordered reduction, adding the gathered slots), with the bytes each rank receives per step.

    python benchmarks/mpi_scaling.py                       # 1 process, BLAS threads as the machine gives
    mpiexec -n 2 python benchmarks/mpi_scaling.py          # 2 ranks; xpnet gives each its share of the cores

Each run prints one Markdown row per network and mode (rank 0 only). Modes: "plain" is the ordinary
single-process loop (1 process only), "ordered" and "allreduce" the two reductions of xpnet.DataParallel.
Data: MNIST's shape (784 features, 10 classes), random unless --data names a folder of MNIST IDX files.
"""

from __future__ import annotations

import argparse
import contextlib
import time

import numpy as np

import xpnet
from xpnet.distributed.world import World

NETWORKS = {"L": [1024, 1024], "wide": [4096, 4096]}
BATCH = 512


def data(steps: int, folder: str | None):
    """``steps`` batches of MNIST rows: the real training images from ``folder``, else uniform noise."""
    rows = steps * BATCH
    if folder:
        x, y, _, _ = xpnet.datasets.load("mnist", data_dir=folder, quiet=True)
        return x[:rows], y[:rows]
    generator = np.random.default_rng(0)
    return generator.random((rows, 784), dtype=np.float32), np.arange(rows) % 10


def timed_fit(model, x, y, parallel=None) -> tuple[float, float]:
    """Seconds per step of the second of two epochs (the first warms up), and of those in the sum."""
    summing = [0.0]
    if parallel is not None:
        plain_sum = parallel._sum

        def timed_sum(*arguments):
            started = time.perf_counter()
            total = plain_sum(*arguments)
            summing[0] += time.perf_counter() - started
            return total

        parallel._sum = timed_sum
    fit = model.fit if parallel is None else lambda *data, **options: parallel.fit(model, *data, **options)
    fit(x, y, epochs=1)
    summing[0] = 0.0
    history = fit(x, y, epochs=1)
    steps = x.shape[0] // BATCH
    return history[-1]["seconds"] / steps, summing[0] / steps


def received_bytes(parallel, n_values: int, itemsize: int) -> int:
    """What one rank receives per step: every slot's row (ordered), or about one row (an allreduce)."""
    width = (n_values + 4) * itemsize
    if parallel.reduction == "allreduce":
        return width if parallel.world.size > 1 else 0
    per_rank = -(-parallel.slots // parallel.world.size)
    return (parallel.world.size - 1) * per_rank * width


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="steps per timed epoch (default: 20)")
    parser.add_argument("--data", help="folder holding MNIST's IDX files (default: random data of its shape)")
    parser.add_argument("--networks", nargs="+", default=list(NETWORKS), choices=list(NETWORKS))
    args = parser.parse_args()
    world = World()
    x, y = data(args.steps, args.data)
    modes = ["plain", "ordered", "allreduce"] if world.size == 1 else ["ordered", "allreduce"]
    for name in args.networks:
        for mode in modes:
            model = xpnet.Model(hidden=NETWORKS[name], batch_size=BATCH, device="cpu")
            parallel = None if mode == "plain" else xpnet.DataParallel(world, reduction=mode)
            with contextlib.nullcontext() if parallel is None else parallel.one_blas_thread():
                threads = _blas_threads()  # what the steps run on
            step, summing = timed_fit(model, x, y, parallel)
            n_values = sum(int(np.prod(p.shape)) for p in model.network.parameters())
            received = 0 if parallel is None else received_bytes(parallel, n_values, 4)
            if world.is_root:
                print(
                    f"| {name} 784-{'-'.join(map(str, NETWORKS[name]))}-10 | {mode} | {world.size} x {threads} | "
                    f"{1000 * step:.1f} | {1000 * summing:.1f} | {received / 2**20:.1f} |",
                    flush=True,
                )


def _blas_threads() -> int | str:
    try:
        import threadpoolctl
    except ImportError:
        return "?"
    pools = threadpoolctl.threadpool_info()
    return max((pool["num_threads"] for pool in pools if pool["user_api"] == "blas"), default=1)


if __name__ == "__main__":
    main()
