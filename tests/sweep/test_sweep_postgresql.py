"""A sweep whose study is in a real PostgreSQL server, as on a cluster: Debian's ``postgresql`` package
(installed with apt-get where it is missing, which needs root), a server started here in a temporary
folder that listens on 127.0.0.1 only, and two workers sharing it. Slow: minutes on a first install."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest
from test_sweep_workers import assert_each_trial_trained_once, sweep_file, trials_of

from xpnet.sweep import run_sweep

pytest.importorskip("optuna")
# SQLAlchemy 2.1's PostgreSQL driver for postgresql:// URLs
pytest.importorskip("psycopg", reason="needs the PostgreSQL driver psycopg: pip install '.[test,slow]'")

SERVER_USER = "postgres"  # the package's account: PostgreSQL refuses to run as root


def postgresql_bin() -> Path:
    """The folder of PostgreSQL's server programs, installing Debian's package first if needed."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            pytest.skip("PostgreSQL is not installed, and installing it needs root and apt-get")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "postgresql"], check=True, env=env, capture_output=True)
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def as_server_user(*command: str) -> None:
    prefix = ["runuser", "-u", SERVER_USER, "--"] if os.geteuid() == 0 else []
    subprocess.run([*prefix, *command], check=True, capture_output=True)


@pytest.fixture
def postgresql_url():
    """A PostgreSQL server of our own in a temporary folder, on 127.0.0.1 only, stopped afterwards."""
    programs = postgresql_bin()
    folder = Path(tempfile.mkdtemp(prefix="xpnet-postgresql-"))
    if os.geteuid() == 0:
        shutil.chown(folder, SERVER_USER)
    data, port = folder / "data", free_port()
    as_server_user(str(programs / "initdb"), "-D", str(data), "--auth=trust", "-U", SERVER_USER)
    options = f"-h 127.0.0.1 -p {port} -k {folder}"
    as_server_user(str(programs / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(folder / "log"), "-w", "start")
    try:
        yield f"postgresql://{SERVER_USER}@127.0.0.1:{port}/postgres"
    finally:
        as_server_user(str(programs / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
def test_two_workers_share_a_postgresql_study(tmp_path, postgresql_url):
    path = sweep_file(
        tmp_path, f'method = "tpe"\ntrials = 4\nstorage = "{postgresql_url}"', "lr = { min = 1e-3, max = 3e-2 }"
    )
    out = tmp_path / "sweep"
    result = run_sweep(path, out=out, jobs=2, quiet=True)
    trials = trials_of(out)
    assert_each_trial_trained_once(out, trials, places=4, epochs=3)
    assert len({trial.user_attrs["claim"]["worker"] for trial in trials}) == 2
    assert [row["state"] for row in result.rows] == ["complete"] * 4
