"""Run-folder locks: a second process in a locked folder is refused, naming the holder's process id;
the kernel frees the lock of a SIGKILLed holder; a released lock leaves the folder as it was."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from xpnet.cli import main
from xpnet.errors import FolderInUse
from xpnet.io import locks, runs

REPO = Path(__file__).resolve().parents[2]
# A process that locks a run folder and says so, then waits to be killed.
HOLDER = (
    "import sys, time; from xpnet.io import runs\n"
    "with runs.lock(sys.argv[1]):\n"
    "    print('locked', flush=True); time.sleep(600)\n"
)


def start_holder(folder: Path) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(folder)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert process.stdout.readline() == "locked\n"
    return process


def test_a_second_process_is_refused_naming_the_holder_and_a_sigkill_frees_the_lock(tmp_path):
    holder = start_holder(tmp_path)
    try:
        assert locks.is_held(tmp_path / runs.LOCK_FILE)
        refused = rf"run folder {tmp_path} is in use by process {holder.pid} on host "
        with pytest.raises(FolderInUse, match=refused), runs.lock(tmp_path):
            pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert (tmp_path / runs.LOCK_FILE).exists()  # left by the killed holder, but nobody holds it
    assert not locks.is_held(tmp_path / runs.LOCK_FILE)
    with runs.lock(tmp_path) as token:
        assert locks.is_held_by(tmp_path / runs.LOCK_FILE, token)
        assert locks.holder(tmp_path / runs.LOCK_FILE)["pid"] == os.getpid()
    assert list(tmp_path.iterdir()) == []  # a released lock takes its file with it


def test_a_lock_is_held_by_one_holder_at_a_time_even_within_a_process(tmp_path):
    with runs.lock(tmp_path) as first:
        with pytest.raises(FolderInUse, match=f"in use by process {os.getpid()} "), runs.lock(tmp_path):
            pass
        assert locks.is_held_by(tmp_path / runs.LOCK_FILE, first)
        assert not locks.is_held_by(tmp_path / runs.LOCK_FILE, "another token")
    assert not locks.is_held(tmp_path / runs.LOCK_FILE)


def test_train_and_resume_in_a_folder_in_use_are_refused_naming_the_process(tmp_path):
    assert main(["--out", str(tmp_path / "run"), "--epochs", "1", "--hidden", "8", "--quiet", "--device", "cpu"]) == 0
    holder = start_holder(tmp_path / "run")
    command = [sys.executable, "-m", "xpnet"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    try:
        for arguments in (["--out", str(tmp_path / "run"), "--epochs", "1"], ["--resume", str(tmp_path / "run")]):
            started = time.monotonic()
            result = subprocess.run([*command, *arguments], capture_output=True, text=True, env=env, check=False)
            assert result.returncode == 2, result.stderr
            assert result.stderr.startswith(f"xpnet: error: run folder {tmp_path / 'run'} is in use by process ")
            assert f"process {holder.pid} on host" in result.stderr
            assert result.stderr.count("\n") == 1
            assert time.monotonic() - started < 30  # refused at once, not after waiting
    finally:
        holder.kill()
        holder.wait()
