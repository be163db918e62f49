"""Where the slow tests find the real MNIST files: fetched once into /tmp/mnist by the script in the
shared folder beside the repository (../shared/data/fetch-mnist.sh)."""

from __future__ import annotations

import subprocess
from pathlib import Path

FETCH_SCRIPT = Path(__file__).resolve().parents[2] / "shared" / "data" / "fetch-mnist.sh"
MNIST_FOLDER = "/tmp/mnist"


def real_mnist_folder() -> Path:
    """The folder holding the four real MNIST IDX files, each checked against its SHA-256."""
    fetched = subprocess.run(["bash", FETCH_SCRIPT, MNIST_FOLDER], check=True, capture_output=True, text=True)
    return Path(fetched.stdout.strip())
