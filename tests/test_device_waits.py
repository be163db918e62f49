"""``device_waits.returns_before_the_device`` tells code that only queues work on a device from code that
waits for it (synchronises, or reads a result back), on a stand-in device: one worker thread running a queue.
What it does not prove: that a GPU's stream behaves so (``tests/test_cuda.py`` uses it on one)."""

from __future__ import annotations

import queue
import threading

from device_waits import returns_before_the_device


class ThreadDevice:
    """A device whose work runs in order on one thread; ``submit`` queues, ``synchronize`` waits."""

    def __init__(self):
        self.work: queue.Queue = queue.Queue()
        self._opened = threading.Event()
        self._hold_done = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while True:
            task = self.work.get()
            task()
            self.work.task_done()

    def submit(self, task) -> threading.Event:
        done = threading.Event()
        self.work.put(lambda: (task(), done.set()))
        return done

    def synchronize(self) -> None:
        self.work.join()

    # The gate (device_waits.Gate):
    def close(self, hold_seconds: float) -> None:
        self._opened.clear()
        self._hold_done.clear()
        self.submit(lambda: (self._opened.wait(hold_seconds), self._hold_done.set()))

    def is_closed(self) -> bool:
        return not self._hold_done.is_set()

    def open(self) -> None:
        self._opened.set()
        self.synchronize()


def test_code_that_only_queues_work_returns_before_the_device():
    device = ThreadDevice()
    results = []
    returned_first, _ = returns_before_the_device(device, lambda: device.submit(lambda: results.append(1)), 0.5)
    assert returned_first
    assert results == [1], "the queued work ran once the gate opened"


def test_code_that_synchronises_is_caught():
    device = ThreadDevice()
    returned_first, _ = returns_before_the_device(device, device.synchronize, 0.5)
    assert not returned_first


def test_code_that_waits_for_a_result_is_caught():
    device = ThreadDevice()
    returned_first, finished = returns_before_the_device(device, lambda: device.submit(lambda: None).wait(5), 0.5)
    assert finished and not returned_first
