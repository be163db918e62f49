"""``benchmarks/gpu_check.sh``, the one command a short GPU lease runs: its pytest step must name paths that
exist and collect every test marked ``cuda`` (here on the CPU, where they are collected but not run)."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"
# pytest options of the script that take a value; every other word after "pytest" is an option or a path.
VALUED_OPTIONS = {"-p", "-m", "-k", "-c", "-o", "--rootdir"}
# Tests that need a GPU, in the folders that hold them: the script must run each of these.
KNOWN_CUDA_TESTS = (
    "tests/test_cuda.py::test_the_command_trains_on_the_gpu",
    "tests/distributed/test_nccl.py::test_two_gpus_train_the_model_of_one_bit_for_bit",
    "tests/sklearn/test_sklearn.py::test_cuda_device_answers_numpy",
    "tests/arrays/test_flat.py::",
)


def pytest_arguments() -> list[str]:
    """The arguments the script gives pytest in its CUDA tests step."""
    lines = [line for line in SCRIPT.read_text().splitlines() if "-m pytest" in line and not line.startswith("#")]
    assert len(lines) == 1, lines
    words = shlex.split(lines[0])
    return words[words.index("pytest") + 1 :]


def collected(arguments: list[str]) -> list[str]:
    """The test ids pytest collects with ``arguments``, from the repository root."""
    result = subprocess.run(
        [sys.executable, "-m", "pytest", *arguments, "--collect-only", "-q"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return [line for line in result.stdout.splitlines() if "::" in line]


def test_the_paths_the_script_tests_exist():
    arguments = pytest_arguments()
    paths, skip_value = [], False
    for word in arguments:
        if skip_value:
            skip_value = False
        elif word in VALUED_OPTIONS:
            skip_value = True
        elif not word.startswith("-"):
            paths.append(word)
    assert paths, f"the script names no test path: {arguments}"
    missing = [path for path in paths if not (ROOT / path.split("::")[0]).exists()]
    assert not missing, f"{SCRIPT.name} names test paths that do not exist: {missing}"


def test_the_script_collects_every_test_marked_cuda():
    ids = collected(pytest_arguments())
    for known in KNOWN_CUDA_TESTS:
        assert any(test_id.startswith(known) for test_id in ids), f"{SCRIPT.name} would not run {known}"
    assert set(collected(["-p", "no:cacheprovider", "-m", "cuda", "tests"])) <= set(ids)
