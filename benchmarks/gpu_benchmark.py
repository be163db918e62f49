"""GPU benchmark: xpnet on CuPy against PyTorch eager on CUDA, on MNIST.

Both train the same network from the same initial weights with the same optimizer, batch size and
number of epochs, with the data already on the device, and both read the loss back once per epoch.
The result is the median seconds per epoch over epochs 2..N (epoch 1 compiles kernels and fills
memory pools) and the final test accuracy, written as a markdown table with the GPU's name.

    bash ../shared/data/fetch-mnist.sh /tmp/mnist
    python benchmarks/gpu_benchmark.py --data-dir /tmp/mnist --epochs 10
    python benchmarks/gpu_benchmark.py --device cpu --data-dir /tmp/mnist --epochs 3 --limit 2000  # smoke test

Needs xpnet's ``cuda`` extra (CuPy) and PyTorch with CUDA; ``--device cpu`` runs NumPy against PyTorch
on the CPU instead, to check the script on a machine without a GPU (its timings say nothing about GPUs).
"""

from __future__ import annotations

import argparse
import datetime
import gzip
import itertools
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import xpnet
from xpnet.arrays import streams
from xpnet.arrays.backend import to_numpy
from xpnet.io.atomic import atomic_write
from xpnet.nn.network import Network

MNIST_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
IDX_UNSIGNED_BYTE = 0x08


@dataclass(frozen=True)
class Config:
    """One benchmark configuration, in xpnet's terms (PyTorch gets the equivalent)."""

    name: str
    hidden: tuple[int, ...]
    optimizer: str  # "momentum" (SGD, momentum 0.9) or "adam" (0.9, 0.999, 1e-8)
    lr: float
    batch_size: int

    def train_config(self, epochs: int, tf32: bool) -> xpnet.TrainConfig:
        return xpnet.TrainConfig(
            hidden=self.hidden,
            activation="relu",
            init="he_normal",
            optimizer=self.optimizer,
            lr=self.lr,
            momentum=0.9 if self.optimizer == "momentum" else None,
            batch_size=self.batch_size,
            epochs=epochs,
            tf32=tf32,
        )


CONFIGS = (
    Config("S", (128,), "momentum", 0.1, 128),
    Config("L", (1024, 1024), "adam", 1e-3, 512),
)


@dataclass
class Result:
    seconds_per_epoch: float
    test_accuracy: float


# -- data ---------------------------------------------------------------------------------------


def read_idx(path: Path) -> np.ndarray:
    """One IDX file (raw or .gz) of unsigned bytes as an array of its declared shape."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        data = handle.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != IDX_UNSIGNED_BYTE:
        raise SystemExit(f"{path}: not an IDX file of unsigned bytes; fetch MNIST with ../shared/data/fetch-mnist.sh")
    n_dims = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(n_dims))
    values = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * n_dims)
    if values.size != int(np.prod(shape)):
        raise SystemExit(f"{path}: holds {values.size} values but its header says {shape}; the file is truncated")
    return values.reshape(shape)


def load_mnist(data_dir: Path, limit: int | None):
    """MNIST as float32 pixels in [0, 1] (flattened) and int64 labels; ``limit`` keeps the first images."""
    arrays = {}
    for key, name in MNIST_FILES.items():
        candidates = [data_dir / name, data_dir / f"{name}.gz"]
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            raise SystemExit(f"{data_dir}: no {name}[.gz]; run: bash ../shared/data/fetch-mnist.sh {data_dir}")
        arrays[key] = read_idx(path)[:limit]
    x_train, x_test = (arrays[k].reshape(len(arrays[k]), -1).astype(np.float32) / 255.0 for k in ("x_train", "x_test"))
    return x_train, arrays["y_train"].astype(np.int64), x_test, arrays["y_test"].astype(np.int64)


# -- the two trainers -----------------------------------------------------------------------------


def initial_network(backend: xpnet.Backend, n_inputs: int, config: Config, seed: int) -> Network:
    """The network both libraries start from (xpnet's He-normal draw on the benchmark device)."""
    rng = streams.RandomStream(backend, seed, streams.INIT)
    return Network.mlp([n_inputs, *config.hidden, 10], rng, activation="relu", init="he_normal")


def run_xpnet(device: str, config: Config, data, epochs: int, seed: int, tf32: bool) -> tuple[Result, list]:
    """Train with xpnet; return the result and the initial weights (on the host) for PyTorch."""
    backend = xpnet.select(device)
    x_train, y_train, x_test, y_test = (backend.asarray(array) for array in data)
    model = xpnet.Model(config.train_config(epochs, tf32), device=device)
    model.backend = backend
    model.network = initial_network(backend, x_train.shape[1], config, seed)
    model.n_classes = 10
    initial = [to_numpy(p).copy() for p in model.network.parameters()]
    model.fit(x_train, y_train)
    seconds = [record["seconds"] for record in model.history]
    return Result(_median_after_first(seconds), model.evaluate(x_test, y_test)["accuracy"]), initial


def run_torch(device: str, config: Config, data, initial: list, epochs: int, seed: int, tf32: bool) -> Result:
    """The same training in idiomatic PyTorch eager: nn.Sequential, torch.optim, autograd."""
    import torch

    torch.backends.cuda.matmul.allow_tf32 = tf32
    net, optimizer = torch_trainer(device, config, initial)
    x_train, y_train, x_test, y_test = (torch.from_numpy(array).to(device) for array in data)
    generator = torch.Generator(device=device).manual_seed(seed)
    seconds = []
    for _ in range(epochs):
        started = time.perf_counter()
        mean_loss, correct = torch_epoch(net, optimizer, x_train, y_train, config.batch_size, generator)
        epoch_loss = mean_loss.item()  # one read per epoch, as xpnet does
        correct.item()  # xpnet reads its training accuracy once per epoch too
        seconds.append(time.perf_counter() - started)
        if not np.isfinite(epoch_loss):
            raise SystemExit(f"PyTorch diverged on config {config.name}")
    with torch.no_grad():
        accuracy = (net(x_test).argmax(dim=1) == y_test).float().mean().item()
    return Result(_median_after_first(seconds), accuracy)


def torch_trainer(device: str, config: Config, initial: list):
    """``config``'s network in PyTorch (nn.Sequential of Linear and ReLU) from xpnet's ``initial``
    weights, and its torch.optim optimizer."""
    import torch

    sizes = [initial[0].shape[0], *config.hidden, 10]
    layers = []
    for index, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        layers.append(torch.nn.Linear(n_in, n_out))
        if index < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    net = torch.nn.Sequential(*layers).to(device)
    linear = [layer for layer in net if isinstance(layer, torch.nn.Linear)]
    with torch.no_grad():
        for layer, weight, bias in zip(linear, initial[0::2], initial[1::2]):
            layer.weight.copy_(torch.from_numpy(weight.T.copy()))
            layer.bias.copy_(torch.from_numpy(bias))
    if config.optimizer == "momentum":
        optimizer = torch.optim.SGD(net.parameters(), lr=config.lr, momentum=0.9)
    else:
        optimizer = torch.optim.Adam(net.parameters(), lr=config.lr, betas=(0.9, 0.999), eps=1e-8)
    return net, optimizer


def torch_epoch(net, optimizer, x_train, y_train, batch_size: int, generator):
    """One shuffled epoch; the mean loss and the number of correct predictions stay device scalars."""
    import torch

    n_samples = x_train.shape[0]
    order = torch.randperm(n_samples, device=x_train.device, generator=generator)
    total_loss = torch.zeros((), device=x_train.device)
    correct = torch.zeros((), dtype=torch.int64, device=x_train.device)
    for start in range(0, n_samples, batch_size):
        batch = order[start : start + batch_size]
        x_batch, y_batch = x_train[batch], y_train[batch]
        logits = net(x_batch)
        loss = torch.nn.functional.cross_entropy(logits, y_batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total_loss += loss.detach() * x_batch.shape[0]
        correct += (logits.detach().argmax(dim=1) == y_batch).sum()  # xpnet counts these too
    return total_loss / n_samples, correct


def _median_after_first(seconds: list[float]) -> float:
    return statistics.median(seconds[1:] if len(seconds) > 1 else seconds)


# -- report ---------------------------------------------------------------------------------------


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        import cupy

        index = int(device.partition(":")[2] or 0)
        properties = cupy.cuda.runtime.getDeviceProperties(index)
        memory_gib = properties["totalGlobalMem"] / 2**30
        capability = f"{properties['major']}.{properties['minor']}"
        return f"{properties['name'].decode()} ({memory_gib:.0f} GiB, compute capability {capability})"
    cpu = next(
        (line.split(":", 1)[1].strip() for line in _cpuinfo() if line.startswith("model name")),
        platform.processor() or "unknown CPU",
    )
    return f"CPU: {cpu}"


def _cpuinfo() -> list[str]:
    path = Path("/proc/cpuinfo")
    return path.read_text().splitlines() if path.exists() else []


def versions(device: str) -> str:
    import torch

    parts = [f"xpnet {xpnet.__version__}", f"NumPy {np.__version__}", f"PyTorch {torch.__version__}"]
    if device.startswith("cuda"):
        import cupy

        runtime = cupy.cuda.runtime
        parts.insert(1, f"CuPy {cupy.__version__}")
        parts.append(f"CUDA runtime {runtime.runtimeGetVersion()}, driver {runtime.driverGetVersion()}")
    parts.append(f"Python {platform.python_version()}")
    return ", ".join(parts)


def markdown(device: str, args, data, rows: list[tuple[Config, Result, Result]]) -> str:
    xpnet_library = "xpnet (CuPy)" if device.startswith("cuda") else "xpnet (NumPy)"
    lines = [
        f"# xpnet vs PyTorch eager on {'CUDA' if device.startswith('cuda') else 'the CPU (smoke test)'}",
        "",
        f"- Device: {device_name(device)}",
        f"- Software: {versions(device)}",
        f"- Data: MNIST from `{args.data_dir}`, {len(data[0]):,} training and {len(data[2]):,} test images, "
        "float32 on the device before timing",
        f"- {args.epochs} epochs; seconds per epoch are the median over epochs 2..{args.epochs}; "
        f"TF32 {'on' if args.tf32 else 'off'}; same initial weights (He normal, seed {args.seed}) for both",
        f"- Run on {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC with "
        f"`python benchmarks/gpu_benchmark.py {' '.join(sys.argv[1:])}`",
        "",
        f"| config | network | optimizer | batch | {xpnet_library} s/epoch | PyTorch s/epoch | xpnet / PyTorch "
        f"| {xpnet_library} test acc. | PyTorch test acc. |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for config, ours, theirs in rows:
        network = "-".join(str(size) for size in (data[0].shape[1], *config.hidden, 10))
        optimizer = f"SGD lr {config.lr:g} momentum 0.9" if config.optimizer == "momentum" else f"Adam lr {config.lr:g}"
        lines.append(
            f"| {config.name} | {network} | {optimizer} | {config.batch_size} | {ours.seconds_per_epoch:.4f} "
            f"| {theirs.seconds_per_epoch:.4f} | {ours.seconds_per_epoch / theirs.seconds_per_epoch:.2f} "
            f"| {100 * ours.test_accuracy:.2f}% | {100 * theirs.test_accuracy:.2f}% |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="folder with the four MNIST IDX files")
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N, or cpu for a smoke test (default: cuda)")
    parser.add_argument("--epochs", type=int, default=10, help="epochs per run, at least 2 (default: 10)")
    parser.add_argument("--configs", nargs="+", default=[c.name for c in CONFIGS], choices=[c.name for c in CONFIGS])
    parser.add_argument("--limit", type=int, default=None, help="use only the first LIMIT images (smoke tests)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tf32", action="store_true", help="allow TF32 matrix multiplies in both libraries")
    parser.add_argument("--results", type=Path, default=Path(__file__).with_name("results_gpu.md"))
    args = parser.parse_args(argv)
    if args.epochs < 2:
        parser.error("--epochs must be at least 2: epoch 1 is not timed")
    data = load_mnist(args.data_dir, args.limit)
    torch_device = "cpu" if args.device == "cpu" else args.device
    rows = []
    for config in (c for c in CONFIGS if c.name in args.configs):
        ours, initial = run_xpnet(args.device, config, data, args.epochs, args.seed, args.tf32)
        theirs = run_torch(torch_device, config, data, initial, args.epochs, args.seed, args.tf32)
        print(
            f"{config.name}: xpnet {ours.seconds_per_epoch:.3f} s/epoch {100 * ours.test_accuracy:.2f}%, "
            f"PyTorch {theirs.seconds_per_epoch:.3f} s/epoch {100 * theirs.test_accuracy:.2f}%",
            flush=True,
        )
        rows.append((config, ours, theirs))
    report = markdown(args.device, args, data, rows)
    with atomic_write(args.results, "w") as handle:
        handle.write(report)
    print(f"wrote {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
