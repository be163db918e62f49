"""Train the same MLP on MNIST with xpnet (NumPy), PyTorch CPU eager and scikit-learn, in one run.

Each library trains in its own subprocess (so peak memory is its own), started without
``OPENBLAS_CORETYPE`` and ``OPENBLAS_L2_SIZE`` (they pick a slow kernel for a current NumPy on some
machines). The parent drives the workers one epoch at a time, in turn, so that all of them see the
same noise from other work on the machine; per library it reports the median seconds per epoch over
epochs 2..N of every round, the test accuracy after the last epoch, and the peak resident memory.

    python benchmarks/cpu_benchmark.py --data /tmp/mnist --configs S L --epochs 10 --seeds 0 1 2

See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
SLOWING_VARIABLES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
# "gemms" is no trainer: the matrix products of xpnet's steps alone, NumPy's floor (GemmsTrainer).
FRAMEWORKS = ("xpnet", "torch", "sklearn", "gemms")
# With --baseline DIR, "xpnet-baseline" is xpnet imported from DIR (say, an older commit's files).
BASELINE_SUFFIX = "-baseline"
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
# A pause before each epoch, so that the BLAS threads of the worker that ran last (which spin for a
# while after their work) have gone to sleep and do not take cores from the next one.
PAUSE_SECONDS = 0.3


@dataclass(frozen=True)
class Setup:
    """One benchmark configuration: layer sizes, optimizer and batch size (ReLU, He init, float32)."""

    hidden: tuple[int, ...]
    optimizer: str  # "momentum" (SGD with momentum 0.9) or "adam"
    lr: float
    batch_size: int

    def describe(self) -> str:
        sizes = "-".join(str(n) for n in (784, *self.hidden, 10))
        rule = "SGD momentum 0.9" if self.optimizer == "momentum" else "Adam (0.9, 0.999), eps 1e-8"
        return f"{sizes}, ReLU, He normal init, {rule}, lr {self.lr:g}, batch {self.batch_size}, float32"


SETUPS = {
    "S": Setup(hidden=(128,), optimizer="momentum", lr=0.1, batch_size=128),
    "L": Setup(hidden=(1024, 1024), optimizer="adam", lr=1e-3, batch_size=512),
}


# -- data -----------------------------------------------------------------------------------------


def read_idx(path: Path):
    """An IDX file (the MNIST format) as a uint8 array: big-endian dimension sizes, then the bytes."""
    import numpy as np

    raw = path.read_bytes()
    n_dims = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(n_dims))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * n_dims).reshape(shape)


def load_mnist(folder: Path):
    """``(x_train, y_train, x_test, y_test)``: float32 pixels in [0, 1], flattened, and int64 labels."""
    import numpy as np

    def images(name):
        pixels = read_idx(folder / f"{name}-images-idx3-ubyte")
        return pixels.reshape(pixels.shape[0], -1).astype(np.float32) / np.float32(255.0)

    def labels(name):
        return read_idx(folder / f"{name}-labels-idx1-ubyte").astype(np.int64)

    return images("train"), labels("train"), images("t10k"), labels("t10k")


# -- workers: one library each, in its own process ------------------------------------------------


class XpnetTrainer:
    def __init__(self, setup: Setup, seed: int, data):
        import xpnet

        self.x_train, self.y_train, self.x_test, self.y_test = data
        self.model = xpnet.Model(
            hidden=list(setup.hidden),
            activation="relu",
            init="he_normal",
            optimizer=setup.optimizer,
            lr=setup.lr,
            momentum=0.9 if setup.optimizer == "momentum" else None,
            batch_size=setup.batch_size,
            seed=seed,
            device="cpu",
        )

    def epoch(self) -> tuple[float, float]:
        """Wall and CPU seconds from the epoch's start to its end as ``fit`` reports them: shuffle, batches
        and updates, not the input checks that ``fit`` does once per call."""
        import xpnet

        class Clock(xpnet.Callback):
            def on_epoch_begin(self, epoch, n_batches):
                self.started = time.perf_counter(), time.process_time()

            def on_epoch_end(self, record):
                self.seconds = time.perf_counter() - self.started[0], time.process_time() - self.started[1]

        clock = Clock()
        self.model.fit(self.x_train, self.y_train, epochs=1, callbacks=[clock])
        return clock.seconds

    def accuracy(self) -> float:
        return self.model.evaluate(self.x_test, self.y_test)["accuracy"]

    @staticmethod
    def versions() -> dict:
        import numpy

        import xpnet

        return {"xpnet": xpnet.__version__, "numpy": numpy.__version__}


class TorchTrainer:
    def __init__(self, setup: Setup, seed: int, data):
        import torch
        from torch import nn

        torch.manual_seed(seed)
        self.x_train, self.y_train, self.x_test, self.y_test = (torch.from_numpy(a) for a in data)
        sizes = (784, *setup.hidden, 10)
        layers = []
        for index, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
            linear = nn.Linear(n_in, n_out)
            nn.init.kaiming_normal_(linear.weight, nonlinearity="relu")  # He normal: std sqrt(2 / fan_in)
            nn.init.zeros_(linear.bias)
            layers.append(linear)
            if index < len(sizes) - 2:
                layers.append(nn.ReLU())
        self.model = nn.Sequential(*layers)
        if setup.optimizer == "momentum":
            self.optimizer = torch.optim.SGD(self.model.parameters(), lr=setup.lr, momentum=0.9)
        else:
            self.optimizer = torch.optim.Adam(self.model.parameters(), lr=setup.lr, betas=(0.9, 0.999), eps=1e-8)
        self.batch_size = setup.batch_size
        self.generator = torch.Generator().manual_seed(seed)

    def epoch(self) -> tuple[float, float]:
        return timed(self.train_epoch)

    def train_epoch(self) -> None:
        import torch
        from torch.nn import functional

        self.model.train()
        order = torch.randperm(self.x_train.shape[0], generator=self.generator)
        for start in range(0, order.shape[0], self.batch_size):
            indices = order[start : start + self.batch_size]
            self.optimizer.zero_grad(set_to_none=True)
            loss = functional.cross_entropy(self.model(self.x_train[indices]), self.y_train[indices])
            loss.backward()
            self.optimizer.step()
        float(loss.detach())

    def accuracy(self) -> float:
        import torch

        self.model.eval()
        with torch.no_grad():
            predicted = self.model(self.x_test).argmax(dim=1)
        return float((predicted == self.y_test).float().mean())

    @staticmethod
    def versions() -> dict:
        import torch

        return {"torch": torch.__version__, "torch threads": torch.get_num_threads()}


class SklearnTrainer:
    """MLPClassifier, one ``partial_fit`` per epoch, with its Glorot init replaced by He normal."""

    def __init__(self, setup: Setup, seed: int, data):
        import numpy as np
        from sklearn.neural_network import MLPClassifier

        self.x_train, self.y_train, self.x_test, self.y_test = data
        random_state = np.random.RandomState(seed)  # an instance, so that every epoch reshuffles
        self.model = MLPClassifier(
            hidden_layer_sizes=setup.hidden,
            activation="relu",
            solver="sgd" if setup.optimizer == "momentum" else "adam",
            alpha=0.0,
            batch_size=setup.batch_size,
            learning_rate="constant",
            learning_rate_init=setup.lr,
            momentum=0.9,
            nesterovs_momentum=False,
            beta_1=0.9,
            beta_2=0.999,
            epsilon=1e-8,
            max_iter=1,
            shuffle=True,
            random_state=random_state,
        )
        # One step on one batch builds the model; then the weights are redrawn (He normal) and the
        # optimizer state dropped, so training starts from a fresh He-initialised network.
        self.model.partial_fit(
            self.x_train[: setup.batch_size], self.y_train[: setup.batch_size], classes=np.arange(10)
        )
        for weight, bias in zip(self.model.coefs_, self.model.intercepts_):
            fan_in = weight.shape[0]
            weight[...] = random_state.standard_normal(weight.shape) * np.sqrt(2.0 / fan_in)
            bias[...] = 0.0
        del self.model._optimizer

    def epoch(self) -> tuple[float, float]:
        return timed(lambda: self.model.partial_fit(self.x_train, self.y_train))

    def accuracy(self) -> float:
        return float((self.model.predict(self.x_test) == self.y_test).mean())

    @staticmethod
    def versions() -> dict:
        import sklearn

        return {"scikit-learn": sklearn.__version__}


class GemmsTrainer:
    """Only the matrix products of each training step, in NumPy on the same batches: three per layer
    but the first (forward, weight gradient, input gradient), two for the first. The floor that no
    NumPy trainer's epoch can go below with this BLAS; it trains no model, so it has no accuracy."""

    def __init__(self, setup: Setup, seed: int, data):
        import numpy as np

        rng = np.random.default_rng(seed)
        self.x_train = data[0]
        sizes = (784, *setup.hidden, 10)
        self.weights = [
            rng.standard_normal((n_in, n_out), dtype=np.float32) * np.float32(np.sqrt(2 / n_in))
            for n_in, n_out in itertools.pairwise(sizes)
        ]
        self.batch_size = setup.batch_size
        self.rng = rng

    def epoch(self) -> tuple[float, float]:
        return timed(self.train_epoch)

    def train_epoch(self) -> None:
        order = self.rng.permutation(self.x_train.shape[0])
        for start in range(0, order.shape[0], self.batch_size):
            inputs = [self.x_train.take(order[start : start + self.batch_size], axis=0)]
            for weight in self.weights:
                inputs.append(inputs[-1] @ weight)
            gradient = inputs.pop()
            for index in reversed(range(len(self.weights))):
                inputs[index].T @ gradient
                if index:
                    gradient = gradient @ self.weights[index].T

    def accuracy(self) -> None:
        return None

    @staticmethod
    def versions() -> dict:
        import numpy

        return {"numpy": numpy.__version__}


def timed(function) -> tuple[float, float]:
    """Wall and CPU seconds (all threads of this process) that ``function()`` takes."""
    started = time.perf_counter(), time.process_time()
    function()
    return time.perf_counter() - started[0], time.process_time() - started[1]


TRAINERS = {"xpnet": XpnetTrainer, "torch": TorchTrainer, "sklearn": SklearnTrainer, "gemms": GemmsTrainer}


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def blas_info() -> list[str]:
    """Which BLAS (and OpenMP) libraries this process loaded, and the kernel each picked."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        import numpy

        config = numpy.show_config(mode="dicts")
        return [str(config.get("Build Dependencies", {}).get("blas", "unknown"))]
    return [
        f"{pool['internal_api']} {pool.get('version') or ''} {pool.get('architecture') or ''} "
        f"({pool['num_threads']} threads, {Path(pool['filepath']).name})".replace("  ", " ")
        for pool in threadpool_info()
    ]


def worker(framework: str, config: str, seed: int, data_dir: Path) -> None:
    """Build one trainer, then answer ``epoch`` and ``finish`` commands from stdin with JSON lines."""
    data = load_mnist(data_dir)
    trainer = TRAINERS[framework.removesuffix(BASELINE_SUFFIX)](SETUPS[config], seed, data)
    reply = {"setup_rss_mib": peak_rss_mib(), "versions": trainer.versions(), "blas": blas_info()}
    print(json.dumps(reply), flush=True)
    for line in sys.stdin:
        if line.strip() == "epoch":
            wall, cpu = trainer.epoch()
            print(json.dumps({"seconds": wall, "cpu_seconds": cpu}), flush=True)
        else:
            print(json.dumps({"accuracy": trainer.accuracy(), "peak_rss_mib": peak_rss_mib()}), flush=True)
            return


# -- the driver ------------------------------------------------------------------------------------


class Worker:
    def __init__(self, framework: str, config: str, seed: int, data_dir: Path, source: Path, threads: int | None):
        environment = {k: v for k, v in os.environ.items() if k not in SLOWING_VARIABLES}
        if threads:
            environment.update(dict.fromkeys(THREAD_VARIABLES, str(threads)))
        environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(source), environment.get("PYTHONPATH")]))
        command = [sys.executable, __file__, "--worker", framework, config, str(seed), str(data_dir)]
        self.framework = framework
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=environment
        )

    def ask(self, command: str | None = None) -> dict:
        if command is not None:
            self.process.stdin.write(command + "\n")
            self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise SystemExit(f"the {self.framework} worker stopped without an answer (see its error above)")
        return json.loads(line)


def run_config(
    config: str, frameworks: dict[str, Path], seeds: list[int], epochs: int, data_dir: Path, threads: int | None
) -> dict:
    """Train every framework (name: folder its xpnet is imported from) ``epochs`` epochs per seed,
    interleaved epoch by epoch."""
    keys = ("seconds", "cpu_seconds", "accuracy", "peak_rss_mib", "setup_rss_mib")
    results = {name: {key: [] for key in keys} for name in frameworks}
    for seed in seeds:
        # Started one after another, so that setting up one does not slow the others' first epoch.
        workers = []
        for name, source in frameworks.items():
            workers.append(Worker(name, config, seed, data_dir, source, threads))
            setup = workers[-1].ask()
            results[name].update(versions=setup["versions"], blas=setup["blas"])
            results[name]["setup_rss_mib"].append(setup["setup_rss_mib"])
        for epoch in range(epochs):
            turn = workers[epoch % len(workers) :] + workers[: epoch % len(workers)]
            for current in turn:
                time.sleep(PAUSE_SECONDS)
                answer = current.ask("epoch")
                if epoch > 0:
                    for key in ("seconds", "cpu_seconds"):
                        results[current.framework][key].append(answer[key])
                print(
                    f"  {config} seed {seed} epoch {epoch + 1} {current.framework}: "
                    f"{answer['seconds']:.3f} s ({answer['cpu_seconds']:.3f} s CPU)",
                    flush=True,
                )
        for current in workers:
            final = current.ask("finish")
            results[current.framework]["accuracy"].append(final["accuracy"])
            results[current.framework]["peak_rss_mib"].append(final["peak_rss_mib"])
            current.process.wait()
    return results


def machine_description() -> dict:
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    models = [line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")]
    return {
        "cpu": models[0] if models else platform.processor() or "unknown",
        "logical cpus": os.cpu_count(),
        "python": platform.python_version(),
        "system": platform.platform(),
        "xpnet commit": _git_commit(),
    }


def _git_commit() -> str:
    try:
        commit = subprocess.run(
            ["git", "-C", str(REPOSITORY), "describe", "--always", "--dirty"], capture_output=True, text=True
        )
    except OSError:
        return "unknown"
    return commit.stdout.strip() or "unknown"


def markdown(all_results: dict, epochs: int, seeds: list[int], removed: dict, threads: int | None) -> str:
    machine = machine_description()
    lines = [
        f"Machine: {machine['cpu']}, {machine['logical cpus']} logical CPUs, {machine['system']}, "
        f"Python {machine['python']}, xpnet at commit {machine['xpnet commit']}.",
        "Removed from the workers' environment: "
        + (", ".join(f"{k}={v}" for k, v in removed.items()) if removed else "nothing (neither variable was set)")
        + "."
        + (f" Threads: {threads} per library (OMP/OPENBLAS/MKL_NUM_THREADS)." if threads else " Threads: defaults."),
        f"{epochs} epochs per run, seeds {', '.join(map(str, seeds))}; seconds per epoch: median over epochs "
        f"2..{epochs} of all seeds, wall clock and CPU time (all threads; less disturbed by other work on the "
        "machine, but it counts threads that spin while waiting); x PyTorch: that median over PyTorch's; "
        f"accuracy: test set after epoch {epochs}, "
        "mean (min-max) over seeds; memory: peak resident set of the worker process (data loading included), "
        "and its growth during training.",
        "",
    ]
    versions, blas = {}, {}
    for config, results in all_results.items():
        setup = SETUPS[config]
        lines += [
            f"### Config {config}: {setup.describe()}",
            "",
            "| library | wall s/epoch | min-max | x PyTorch | CPU s/epoch | x PyTorch | test accuracy "
            "| peak RSS MiB | training growth MiB |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for name, result in results.items():
            cells = [name]
            for key in ("seconds", "cpu_seconds"):
                median = statistics.median(result[key])
                reference = statistics.median(results["torch"][key]) if "torch" in results else None
                if key == "seconds":
                    cells += [f"{median:.3f}", f"{min(result[key]):.3f}-{max(result[key]):.3f}"]
                else:
                    cells.append(f"{median:.3f}")
                cells.append(f"{median / reference:.2f}x" if reference else "-")
            accuracy = result["accuracy"]
            growth = max(p - s for p, s in zip(result["peak_rss_mib"], result["setup_rss_mib"]))
            cells += [
                "-"
                if None in accuracy
                else f"{100 * statistics.mean(accuracy):.2f}% ({100 * min(accuracy):.2f}-{100 * max(accuracy):.2f})",
                f"{max(result['peak_rss_mib']):.0f}",
                f"{growth:.0f}",
            ]
            lines.append("| " + " | ".join(cells) + " |")
            versions.update(result["versions"])
            blas[name] = result["blas"]
        lines.append("")
    lines.append("Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".")
    lines.append("")
    lines += [f"- BLAS in the {name} worker: " + "; ".join(info) for name, info in blas.items()]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("/tmp/mnist"), help="folder with the four MNIST IDX files")
    parser.add_argument("--configs", nargs="+", choices=sorted(SETUPS), default=["S", "L"])
    parser.add_argument("--frameworks", nargs="+", choices=FRAMEWORKS, default=["xpnet", "torch", "sklearn"])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--threads", type=int, help="threads per library (default: each library's own choice)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--baseline", type=Path, help="also time xpnet imported from this folder (xpnet-baseline)")
    parser.add_argument("--output", type=Path, help="write the markdown table here (default: print it)")
    parser.add_argument("--json", type=Path, help="also write the raw timings here")
    parser.add_argument("--worker", nargs=4, metavar=("FRAMEWORK", "CONFIG", "SEED", "DATA"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        framework, config, seed, data_dir = args.worker
        worker(framework, config, int(seed), Path(data_dir))
        return
    if args.epochs < 2:
        parser.error("--epochs must be at least 2 (the first epoch is left out of the timings)")
    if not (args.data / "train-images-idx3-ubyte").exists():
        parser.error(f"no MNIST IDX files in {args.data}: run bash ../shared/data/fetch-mnist.sh {args.data}")
    removed = {name: os.environ[name] for name in SLOWING_VARIABLES if name in os.environ}
    frameworks = dict.fromkeys(args.frameworks, REPOSITORY)
    if args.baseline:
        frameworks["xpnet" + BASELINE_SUFFIX] = args.baseline.resolve()
    all_results = {
        config: run_config(config, frameworks, args.seeds, args.epochs, args.data, args.threads)
        for config in args.configs
    }
    table = markdown(all_results, args.epochs, args.seeds, removed, args.threads)
    if args.json:
        args.json.write_text(json.dumps(all_results, indent=1))
    if args.output:
        args.output.write_text(table)
    print(table)


if __name__ == "__main__":
    main()
