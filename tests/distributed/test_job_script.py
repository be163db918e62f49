"""examples/slurm_job.sh is valid shell, and every xpnet command in it is one the command line accepts."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

from xpnet.cli import build_parser
from xpnet.cli import options as cli_options

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "slurm_job.sh"


def xpnet_commands() -> list[list[str]]:
    """The arguments after ``python -m xpnet`` of each command in the script (continuation lines joined)."""
    text = SCRIPT.read_text().replace("\\\n", " ").replace('"$RUN"', "runs/example")
    return [shlex.split(line.split("python -m xpnet", 1)[1]) for line in text.splitlines() if "python -m xpnet" in line]


def test_the_job_script_is_valid_shell():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)


def test_the_job_script_starts_a_distributed_run_and_resumes_it():
    new, resumed = sorted(xpnet_commands(), key=len, reverse=True)
    settings = cli_options.resolve(build_parser().parse_args(["train", *new]))
    assert settings.run["distributed"] and settings.run["device"] == "cuda"
    assert settings.config.hidden == (4096, 4096) and settings.config.batch_size == 512
    assert resumed == ["--resume", "runs/example"]
