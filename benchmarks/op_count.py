"""Array operations per training step: xpnet's array-API code against PyTorch eager, counted by
PyTorch's dispatcher on the CPU.

On a GPU each operation that computes is one kernel launch, and a small network is launch-bound:
config S's step does only microseconds of arithmetic per kernel, so the count of operations per
step predicts where the GPU benchmark's time goes. xpnet's math runs unchanged on PyTorch tensors,
so a ``TorchDispatchMode`` counts its operations and PyTorch's own the same way, on any machine.
Views (transposes, slices, ``detach``) launch nothing and are counted apart, as are reads to the
host (``item``, ``float``), each of which waits for the device.

    python benchmarks/op_count.py                # a markdown table on stdout
    python benchmarks/op_count.py --batches 50   # steps per counted epoch (default 20)
"""

from __future__ import annotations

import argparse
import collections
import sys

import numpy as np
import torch
from gpu_benchmark import CONFIGS, Config, initial_network, torch_epoch, torch_trainer
from torch.utils._python_dispatch import TorchDispatchMode

import xpnet
from xpnet.arrays.backend import to_numpy

# Operations that make a new view of existing memory (or no array at all): no kernel on a GPU.
VIEWS = {
    "alias",
    "as_strided",
    "detach",
    "expand",
    "lift_fresh",
    "permute",
    "_reshape_alias",
    "select",
    "slice",
    "squeeze",
    "t",
    "transpose",
    "unsqueeze",
    "_unsafe_view",
    "view",
}
HOST_READ = "_local_scalar_dense"  # what item(), float() and int() dispatch to


class OperationCount(TorchDispatchMode):
    """Counts every ATen operation dispatched inside the block, by name (profiler markers left out)."""

    def __init__(self):
        super().__init__()
        self.counts: collections.Counter[str] = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        namespace, _, name = str(func.overloadpacket).partition(".")
        if namespace == "aten":
            self.counts[name] += 1
        return func(*args, **(kwargs or {}))

    def summary(self, steps: int) -> tuple[float, float, int]:
        """Computing operations per step, views per step, and host reads in all."""
        views = sum(count for name, count in self.counts.items() if name in VIEWS)
        reads = self.counts[HOST_READ]
        computing = sum(self.counts.values()) - views - reads
        return computing / steps, views / steps, reads


def count_xpnet(config: Config, x, y) -> OperationCount:
    """One epoch of ``xpnet.Model.fit`` on PyTorch tensors, after an uncounted one."""
    model = xpnet.Model(config.train_config(epochs=2, tf32=False), device="auto")
    model.fit(x, y, epochs=1)
    with OperationCount() as count:
        model.fit(x, y, epochs=1)
    return count


def count_torch(config: Config, x, y, initial: list) -> OperationCount:
    """One epoch of the GPU benchmark's PyTorch loop (with its two reads), after an uncounted one. The
    optimizer updates all parameters at once with ``foreach`` kernels, as it does by default on CUDA
    (on the CPU it defaults to one parameter at a time)."""
    net, optimizer = torch_trainer("cpu", config, initial)
    for group in optimizer.param_groups:
        group["foreach"] = True
    generator = torch.Generator().manual_seed(0)
    torch_epoch(net, optimizer, x, y, config.batch_size, generator)
    with OperationCount() as count:
        mean_loss, correct = torch_epoch(net, optimizer, x, y, config.batch_size, generator)
        mean_loss.item()
        correct.item()
    return count


def markdown(rows: list[tuple[Config, str, tuple[float, float, int]]], steps: int) -> str:
    lines = [
        f"Operations per training step, over an epoch of {steps} steps after a warm-up epoch "
        f"(`python benchmarks/op_count.py {' '.join(sys.argv[1:])}`; PyTorch {torch.__version__}).",
        "",
        "| config | library | computing ops per step (GPU kernels) | views per step | host reads per epoch |",
        "|---|---|---|---|---|",
    ]
    for config, library, (computing, views, reads) in rows:
        lines.append(f"| {config.name} | {library} | {computing:.1f} | {views:.1f} | {reads} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=20, help="steps in the counted epoch (default: 20)")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    rows = []
    for config in CONFIGS:
        n_samples = args.batches * config.batch_size
        x = torch.asarray(rng.random((n_samples, 784), dtype=np.float32))
        y = torch.asarray(rng.integers(0, 10, n_samples))
        initial = [to_numpy(p) for p in initial_network(xpnet.select("cpu"), 784, config, 0).parameters()]
        rows.append((config, "xpnet (array API)", count_xpnet(config, x, y).summary(args.batches)))
        rows.append((config, "PyTorch eager", count_torch(config, x, y, initial).summary(args.batches)))
    print(markdown(rows, args.batches), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
