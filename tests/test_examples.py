"""Every script in examples/ runs to completion on small data (XPNET_EXAMPLE_QUICK=1)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from real_data import real_mnist_folder

REPO = Path(__file__).resolve().parents[1]
# What each example must print: proof that it did its job, not only that it exited.
EXPECTED = {
    "train_and_evaluate.py": ["test accuracy", "reloaded model agrees: True"],
    "bring_your_own_data.py": ["test accuracy", "point [0. 0.] -> arm"],
    "seed_networks.py": ["784-20-10", "784-10-10", "64-64-16-10"],
    "custom_layer.py": ["PReLU passes gradcheck", "the buggy PReLU is caught: gradient of input", "test accuracy"],
}
# Examples with a test of their own elsewhere (they need an extra, or take longer).
TESTED_ELSEWHERE = {"sklearn_swap.py": "tests/sklearn/test_sklearn.py"}
EXAMPLES = [REPO / "examples" / name for name in sorted(EXPECTED)]
# Each seed network's line: "784-20-10, posts 000-002: test accuracy 96.02% (hoped for 85%: reached) ..."
SEED_RESULT = re.compile(r"^(\d+(?:-\d+)+), .*: test accuracy ([\d.]+)% \(hoped for (\d+)%: (\w+)\)", re.MULTILINE)


def run_example(script: Path, cwd: Path, *arguments: str, quick: bool) -> subprocess.CompletedProcess:
    """Run an example as a user would, from an empty folder; training warnings are errors."""
    return run_python(cwd, str(script), *arguments, quick=quick)


def run_python(cwd: Path, *arguments: str, quick: bool) -> subprocess.CompletedProcess:
    """Python with ``arguments`` (a script or ``-m xpnet ...``) in ``cwd``; training warnings are errors."""
    env = {name: value for name, value in os.environ.items() if name != "XPNET_EXAMPLE_QUICK"}
    env |= {"PYTHONPATH": str(REPO), **({"XPNET_EXAMPLE_QUICK": "1"} if quick else {})}
    return subprocess.run(
        [sys.executable, "-W", "error::xpnet.errors.XpnetWarning", *arguments],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120 if quick else 1200,
        check=False,
    )


def test_every_example_is_tested():
    scripts = sorted(path.name for path in (REPO / "examples").glob("*.py"))
    assert scripts == sorted([*EXPECTED, *TESTED_ELSEWHERE])
    for name, test_file in TESTED_ELSEWHERE.items():
        assert name in (REPO / test_file).read_text()


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda path: path.name)
def test_example_runs_quickly_on_small_data(script, tmp_path):
    result = run_example(script, tmp_path, quick=True)
    assert result.returncode == 0, result.stderr
    for text in EXPECTED[script.name]:
        assert text in result.stdout, result.stdout
    assert list(tmp_path.iterdir()) == []  # examples leave no files behind


@pytest.mark.slow
def test_the_seed_networks_reach_the_accuracy_their_authors_hoped_for(tmp_path):
    """784-20-10 and 784-10-10 on the real MNIST, 64-64-16-10 on digits, trained in full."""
    result = run_example(REPO / "examples" / "seed_networks.py", tmp_path, str(real_mnist_folder()), quick=False)
    assert result.returncode == 0, result.stdout + result.stderr
    found = {
        shape: (float(accuracy), float(hoped), verdict)
        for shape, accuracy, hoped, verdict in SEED_RESULT.findall(result.stdout)
    }
    assert set(found) == {"784-20-10", "784-10-10", "64-64-16-10"}, result.stdout
    assert [hoped for _, hoped, _ in found.values()] == [85, 93, 95]
    for shape, (accuracy, hoped, verdict) in found.items():
        assert accuracy >= hoped and verdict == "reached", shape


SWEEP_FILES = sorted((REPO / "examples").glob("**/sweep*.toml")) + sorted((REPO / "examples" / "sweeps").glob("*.toml"))


@pytest.mark.parametrize("path", SWEEP_FILES, ids=lambda path: str(path.relative_to(REPO / "examples")))
def test_every_example_sweep_file_is_a_valid_sweep(path):
    from xpnet.sweep import spec

    sweep = spec.read(path)
    assert sweep.settings["metric"] in ("val_loss", "val_accuracy")  # chosen on a validation split
    assert sweep.base["val_split"] > 0


def test_the_container_sweep_starts_workers_that_share_one_sweep_folder_on_a_volume():
    script = REPO / "examples" / "container_job" / "sweep.sh"
    assert subprocess.run(["bash", "-n", str(script)], check=False).returncode == 0
    text = script.read_text()
    assert os.access(script, os.X_OK)
    assert "-v xpnet-runs:/runs" in text and "sweep_dir=/runs/sweep-mnist" in text
    assert '"$image" sweep /job/sweep.toml --out "$sweep_dir"' in text
    assert 'sweep --summary "$sweep_dir"' in text


@pytest.mark.slow
def test_the_quick_sweep_example_runs_in_well_under_a_minute(tmp_path):
    import time

    started = time.monotonic()
    sweep_file = REPO / "examples" / "sweeps" / "digits_quick.toml"
    result = run_python(tmp_path, "-m", "xpnet", "sweep", str(sweep_file), quick=False)
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 60
    assert "best: trial " in result.stdout
    assert (tmp_path / "sweeps" / "digits_quick" / "best.json").is_file()


def test_the_files_written_for_users_speak_of_the_project_in_its_own_words():
    """README, docs, examples and benchmark reports say what a recipe aims at and why, not which ticket asked."""
    files = [
        REPO / "README.md",
        *sorted((REPO / "docs").rglob("*.md")),
        *sorted((REPO / "examples").rglob("*.*")),
        *sorted((REPO / "benchmarks").glob("*.md")),
    ]
    tracker_words = re.compile(r"\bissues?\b|\basked for\b", re.IGNORECASE)
    found = [
        f"{path.relative_to(REPO)}:{number}: {line.strip()}"
        for path in files
        if path.suffix in (".md", ".toml", ".py", ".sh")
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if tracker_words.search(line)
    ]
    assert found == []
