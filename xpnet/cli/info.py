"""``xpnet info``: what this machine offers xpnet: versions, array libraries, devices, BLAS."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json

import numpy as np

from xpnet.cli import options
from xpnet.io import runs

NAME = "info"
BACKEND_MODULES = {"numpy": "numpy", "cupy": "cupy", "torch": "torch", "array-api-strict": "array_api_strict"}


def add_parser(subcommands) -> None:
    parser = subcommands.add_parser(
        NAME,
        help="versions, array libraries, devices and BLAS found here",
        description="Show the versions, array libraries, GPUs and BLAS that xpnet finds on this machine.",
    )
    options.add_option(parser, options.BY_NAME["json"])


def gpus() -> list[dict]:
    """Name and memory of every GPU CuPy sees (empty without CuPy or a GPU)."""
    if importlib.util.find_spec("cupy") is None:
        return []
    try:
        cupy = importlib.import_module("cupy")
        found = []
        for index in range(cupy.cuda.runtime.getDeviceCount()):
            properties = cupy.cuda.runtime.getDeviceProperties(index)
            with cupy.cuda.Device(index):
                free, total = cupy.cuda.runtime.memGetInfo()
            name = properties["name"]
            found.append(
                {
                    "device": f"cuda:{index}",
                    "name": name.decode() if isinstance(name, bytes) else str(name),
                    "memory_gib": round(total / 2**30, 1),
                    "free_gib": round(free / 2**30, 1),
                }
            )
        return found
    except Exception as error:  # CuPy without a driver raises its own runtime errors: report, do not fail
        return [{"device": "cuda", "error": " ".join(str(error).split()) or type(error).__name__}]


def blas() -> list[dict]:
    """The BLAS libraries NumPy uses: threadpoolctl's view when installed, else NumPy's build info."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        threadpool_info = None
    if threadpool_info is not None:
        found = [
            {key: entry.get(key) for key in ("internal_api", "version", "num_threads", "architecture")}
            for entry in threadpool_info()
            if entry.get("user_api") == "blas"
        ]
        if found:
            return found
    try:
        config = np.show_config(mode="dicts")
        build = config["Build Dependencies"]["blas"]
        return [{"internal_api": build.get("name"), "version": build.get("version")}]
    except (TypeError, KeyError):  # NumPy before 1.25 has no mode="dicts"
        return []


def collect() -> dict:
    return {
        "versions": runs.versions(),
        "backends": [name for name, module in BACKEND_MODULES.items() if importlib.util.find_spec(module)],
        "gpus": gpus(),
        "blas": blas(),
    }


def run(args: argparse.Namespace) -> int:
    found = collect()
    if args.json:
        print(json.dumps(found))
        return 0
    print("versions:  " + ", ".join(f"{name} {version}" for name, version in found["versions"].items()))
    print("backends:  " + ", ".join(found["backends"]))
    devices = ["cpu (numpy)"]
    for gpu in found["gpus"]:
        if "error" in gpu:
            devices.append(f"cuda unavailable: {gpu['error']}")
        else:
            devices.append(f"{gpu['device']} {gpu['name']} ({gpu['free_gib']} of {gpu['memory_gib']} GiB free)")
    print("devices:   " + "; ".join(devices))
    libraries = [
        f"{entry['internal_api']} {entry.get('version') or ''}".strip()
        + (f" ({entry['num_threads']} threads)" if entry.get("num_threads") else "")
        for entry in found["blas"]
    ]
    print("blas:      " + ("; ".join(libraries) or "unknown"))
    return 0
