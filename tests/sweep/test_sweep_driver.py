"""How ``xpnet sweep`` starts its workers: one process each, with this machine's cores shared out as
BLAS threads in its environment (a setting of one's own wins), and the GPUs handed out in turn."""

from __future__ import annotations

import subprocess
import sys

from xpnet.sweep import driver


def test_workers_get_the_gpus_in_turn_where_the_sweep_runs_on_cuda(monkeypatch):
    monkeypatch.setattr(driver, "cuda_device_count", lambda: 2)
    assert driver.worker_devices("cuda", 3) == ["cuda:0", "cuda:1", "cuda:0"]
    assert driver.worker_devices("auto", 2) == ["cuda:0", "cuda:1"]
    assert driver.worker_devices("cpu", 2) == [None, None]  # [base] decides
    assert driver.worker_devices("cuda:1", 2) == [None, None]
    monkeypatch.setattr(driver, "cuda_device_count", lambda: 0)
    assert driver.worker_devices("auto", 2) == [None, None]


def test_a_worker_is_a_process_of_its_own_with_its_share_of_threads(tmp_path, monkeypatch):
    started = []

    class Recorded:
        def __init__(self, command, **options):
            started.append((command, options))

    monkeypatch.setattr(subprocess, "Popen", Recorded)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv("MKL_NUM_THREADS", "7")
    worker = driver.start_worker(tmp_path, 1, "cuda:1", threads=3)
    ((command, options),) = started
    assert command == [
        sys.executable,
        "-m",
        "xpnet",
        "sweep",
        "--worker",
        str(tmp_path),
        "--index",
        "1",
        "--device",
        "cuda:1",
    ]
    env = options["env"]
    assert env["OMP_NUM_THREADS"] == env["OPENBLAS_NUM_THREADS"] == env["NUMBA_NUM_THREADS"] == "3"
    assert env["MKL_NUM_THREADS"] == "7"  # set by the user: kept
    assert env["PYTHONPATH"].split(":")[0] == driver.SOURCE_ROOT
    assert options["stdin"] == subprocess.PIPE  # closed when the sweep command ends: the worker stops
    assert worker.log.parent == tmp_path / "workers" and worker.log.is_file()
