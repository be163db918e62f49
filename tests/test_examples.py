"""Every script in examples/ runs to completion on small data (XPNET_EXAMPLE_QUICK=1)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# What each example must print: proof that it did its job, not only that it exited.
EXPECTED = {
    "train_and_evaluate.py": ["test accuracy", "reloaded model agrees: True"],
    "bring_your_own_data.py": ["test accuracy", "point [0. 0.] -> arm"],
    "seed_networks.py": ["784-20-10", "784-10-10", "64-64-16-10"],
    "custom_layer.py": ["PReLU passes gradcheck", "the buggy PReLU is caught: gradient of input", "test accuracy"],
}
# Examples with a test of their own elsewhere (they need an extra, or take longer).
TESTED_ELSEWHERE = {"sklearn_swap.py": "tests/test_sklearn.py"}
EXAMPLES = [REPO / "examples" / name for name in sorted(EXPECTED)]


def test_every_example_is_tested():
    scripts = sorted(path.name for path in (REPO / "examples").glob("*.py"))
    assert scripts == sorted([*EXPECTED, *TESTED_ELSEWHERE])
    for name, test_file in TESTED_ELSEWHERE.items():
        assert name in (REPO / test_file).read_text()


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda path: path.name)
def test_example_runs_quickly_on_small_data(script, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "XPNET_EXAMPLE_QUICK": "1"}
    result = subprocess.run(
        [sys.executable, "-W", "error::xpnet.errors.XpnetWarning", str(script)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for text in EXPECTED[script.name]:
        assert text in result.stdout, result.stdout
    assert list(tmp_path.iterdir()) == []  # examples leave no files behind
