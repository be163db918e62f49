"""Downloads against a local HTTP server on 127.0.0.1: verified, cached, atomic, and clear when offline."""

from __future__ import annotations

import dataclasses
import functools
import gzip
import hashlib
import http.server
import io
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from xpnet import datasets
from xpnet.datasets import loaders
from xpnet.datasets.download import RemoteFile, Source, fetch
from xpnet.datasets.idx import encode_idx
from xpnet.errors import DatasetError

SPLITS = {
    "train-images-idx3-ubyte": np.arange(5 * 2 * 3, dtype=np.uint8).reshape(5, 2, 3),
    "train-labels-idx1-ubyte": np.array([0, 1, 2, 1, 0], dtype=np.uint8),
    "t10k-images-idx3-ubyte": np.full((2, 2, 3), 255, dtype=np.uint8),
    "t10k-labels-idx1-ubyte": np.array([2, 0], dtype=np.uint8),
}


class Server:
    """A static file server in a thread that records every path requested."""

    def __init__(self, folder):
        self.requests: list[str] = []
        self.cut_short: set[str] = set()  # paths whose connection drops halfway through the body
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                if self.path in server.cut_short:
                    body = (Path(folder) / self.path.lstrip("/")).read_bytes()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body[: len(body) // 2])
                    return
                super().do_GET()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=folder))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture
def served(tmp_path):
    """The four small IDX files served gzip-compressed, as the MNIST mirrors serve them."""
    folder = tmp_path / "mirror"
    folder.mkdir()
    for name, array in SPLITS.items():
        (folder / f"{name}.gz").write_bytes(gzip.compress(encode_idx(array)))
    server = Server(folder)
    yield folder, server
    server.close()


def mnist_like(mirrors, files=None) -> Source:
    """A source shaped like MNIST's: SHA-256 of the decompressed files."""
    files = files or tuple(
        RemoteFile(f"{name}.gz", hashlib.sha256(encode_idx(array)).hexdigest(), gunzip=True)
        for name, array in SPLITS.items()
    )
    return Source(mirrors=tuple(mirrors), files=files)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("XPNET_DATA", str(folder))
    return folder


def test_named_dataset_downloads_verifies_and_loads(served, cache, monkeypatch):
    _, server = served
    monkeypatch.setitem(loaders.SOURCES, "mnist", mnist_like([server.url]))
    x_train, y_train, x_test, y_test = datasets.load("mnist")
    np.testing.assert_array_equal(x_train, SPLITS["train-images-idx3-ubyte"].reshape(5, 6) / np.float32(255))
    np.testing.assert_array_equal(y_train, [0, 1, 2, 1, 0])
    assert x_test.dtype == np.float32 and np.all(x_test == 1.0) and y_test.dtype == np.int64
    stored = sorted(path.name for path in (cache / "mnist").iterdir())
    assert stored == sorted(SPLITS), "stored decompressed, nothing else left behind"
    assert sorted(server.requests) == sorted(f"/{name}.gz" for name in SPLITS)


def test_cache_reused_without_a_second_request(served, cache, monkeypatch):
    _, server = served
    monkeypatch.setitem(loaders.SOURCES, "mnist", mnist_like([server.url]))
    first = datasets.load("mnist")
    count = len(server.requests)
    second = datasets.load("mnist")
    assert len(server.requests) == count == 4
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


def test_md5_of_compressed_files_kept_as_served(served, cache, monkeypatch):
    """Fashion-MNIST's publisher gives MD5 of the .gz files: those are checked, stored as served, and read."""
    folder, server = served
    files = tuple(
        RemoteFile(f"{name}.gz", hashlib.md5((folder / f"{name}.gz").read_bytes()).hexdigest(), algorithm="md5")
        for name in SPLITS
    )
    monkeypatch.setitem(loaders.SOURCES, "fashion-mnist", Source((server.url,), files))
    x_train, _, _, y_test = datasets.load("fashion-mnist")
    assert x_train.shape == (5, 6) and y_test.tolist() == [2, 0]
    stored = sorted(path.name for path in (cache / "fashion-mnist").iterdir())
    assert stored == sorted(f"{name}.gz" for name in SPLITS)
    assert fetch("fashion-mnist", loaders.SOURCES["fashion-mnist"], cache / "fashion-mnist") == cache / "fashion-mnist"
    assert len(server.requests) == 4


def test_corrupt_download_rejected_and_not_cached(served, cache, monkeypatch):
    folder, server = served
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(encode_idx(np.array([1, 1], dtype=np.uint8))))
    monkeypatch.setitem(loaders.SOURCES, "mnist", mnist_like([server.url]))
    with pytest.raises(DatasetError, match=r"t10k-labels-idx1-ubyte\.gz: sha256 checksum mismatch"):
        datasets.load("mnist")
    assert not (cache / "mnist" / "t10k-labels-idx1-ubyte").exists()
    assert not [path for path in (cache / "mnist").iterdir() if path.name.endswith(".tmp")]


def test_dropped_connection_leaves_nothing_behind(served, cache, monkeypatch):
    _, server = served
    server.cut_short.add("/train-images-idx3-ubyte.gz")
    monkeypatch.setitem(loaders.SOURCES, "mnist", mnist_like([server.url]))
    with pytest.raises(DatasetError, match=r"train-images-idx3-ubyte\.gz: connection lost after \d+ of \d+ bytes"):
        datasets.load("mnist")
    assert list((cache / "mnist").iterdir()) == []
    server.cut_short.clear()
    assert datasets.load("mnist")[0].shape == (5, 6)


def test_next_mirror_tried_after_a_failing_one(served, cache, monkeypatch):
    _, server = served
    broken = f"{server.url}missing-folder/"
    monkeypatch.setitem(loaders.SOURCES, "mnist", mnist_like([broken, server.url]))
    assert datasets.load("mnist")[0].shape == (5, 6)
    assert "/missing-folder/train-images-idx3-ubyte.gz" in server.requests
    monkeypatch.setitem(loaders.SOURCES, "mnist", mnist_like([broken]))
    monkeypatch.setenv("XPNET_DATA", str(cache / "empty"))
    with pytest.raises(DatasetError, match=r"missing-folder/train-images-idx3-ubyte\.gz: HTTP 404 File not found\)"):
        datasets.load("mnist")


def test_corrupted_cached_file_fetched_again(served, cache, monkeypatch):
    _, server = served
    monkeypatch.setitem(loaders.SOURCES, "mnist", mnist_like([server.url]))
    datasets.load("mnist")
    (cache / "mnist" / "train-labels-idx1-ubyte").write_bytes(b"garbage")
    datasets.load("mnist")
    assert server.requests.count("/train-labels-idx1-ubyte.gz") == 2


def test_server_down_gives_offline_instructions(served, cache, monkeypatch):
    _, server = served
    url = server.url
    server.close()
    monkeypatch.setitem(loaders.SOURCES, "mnist", mnist_like([url]))
    with pytest.raises(DatasetError) as caught:
        datasets.load("mnist")
    message = str(caught.value)
    assert message.startswith(
        f"cannot download mnist ({url}train-images-idx3-ubyte.gz: [Errno 111] Connection refused)"
    )
    assert "get train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, " in message
    assert f"from {url} and put train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, " in message
    assert f"t10k-labels-idx1-ubyte (decompressed) into {cache / 'mnist'}, or pass --data-dir FOLDER" in message
    assert message.endswith("holding the four files (raw or .gz)"), "MNIST has no system-package hint"
    assert "\n" not in message


def test_fashion_mnist_offline_error_names_the_debian_package(cache, monkeypatch):
    """Debian's dataset-fashion-mnist holds the files (recompressed, so read in place with --data-dir)."""
    unreachable = dataclasses.replace(loaders.SOURCES["fashion-mnist"], mirrors=("http://127.0.0.1:9/unreachable/",))
    monkeypatch.setitem(loaders.SOURCES, "fashion-mnist", unreachable)
    with pytest.raises(DatasetError) as caught:
        datasets.load("fashion-mnist")
    message = str(caught.value)
    assert message.startswith("cannot download fashion-mnist (http://127.0.0.1:9/unreachable/train-images")
    assert message.endswith(
        "or pass --data-dir FOLDER holding the four files (raw or .gz); on Debian or Ubuntu, "
        "apt-get install dataset-fashion-mnist and pass --data-dir /usr/share/datasets/fashion-mnist"
    )
    assert "\n" not in message


def test_files_put_where_the_offline_error_says_are_used(cache, monkeypatch):
    """Following the offline message works: verified files in the cache need no network."""
    monkeypatch.setitem(loaders.SOURCES, "mnist", mnist_like(["http://127.0.0.1:9/unreachable/"]))
    folder = cache / "mnist"
    folder.mkdir(parents=True)
    for name, array in SPLITS.items():
        (folder / name).write_bytes(encode_idx(array))
    assert datasets.load("mnist")[2].shape == (2, 6)


def test_data_dir_needs_no_network(served, cache, monkeypatch):
    folder, server = served
    monkeypatch.setitem(loaders.SOURCES, "mnist", mnist_like(["http://127.0.0.1:9/unreachable/"]))
    x_train, y_train, x_test, _ = datasets.load("mnist", data_dir=folder)
    assert x_train.shape == (5, 6) and x_test.shape == (2, 6) and y_train.shape == (5,)
    assert server.requests == [] and not cache.exists()


def test_cache_dir_resolution(monkeypatch, tmp_path):
    monkeypatch.setenv("XPNET_DATA", str(tmp_path / "a"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "b"))
    assert datasets.cache_dir() == tmp_path / "a"
    monkeypatch.delenv("XPNET_DATA")
    assert datasets.cache_dir() == tmp_path / "b" / "xpnet"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert datasets.cache_dir() == tmp_path / "home" / ".cache" / "xpnet"


def test_publisher_checksums_registered():
    """MNIST by SHA-256 of the decompressed files, Fashion-MNIST by the MD5 its README gives."""
    mnist = {file.stored_name: (file.algorithm, file.digest) for file in loaders.SOURCES["mnist"].files}
    assert mnist["train-images-idx3-ubyte"] == (
        "sha256",
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    )
    fashion = {file.name: (file.algorithm, file.digest) for file in loaders.SOURCES["fashion-mnist"].files}
    assert fashion["t10k-labels-idx1-ubyte.gz"] == ("md5", "bb300cfdad3c16e7a12a480ee83cd310")
    assert all(len(source.mirrors) >= 2 for source in loaders.SOURCES.values())


class Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize(("terminal", "quiet"), [(True, False), (False, False), (True, True)])
def test_progress_bar_only_on_a_terminal_and_never_when_quiet(served, cache, monkeypatch, terminal, quiet):
    _, server = served
    monkeypatch.setitem(loaders.SOURCES, "mnist", mnist_like([server.url]))
    stderr = Terminal() if terminal else io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    datasets.load("mnist", quiet=quiet)
    assert len(server.requests) == 4  # downloaded either way
    shown = stderr.getvalue()
    if terminal and not quiet:
        assert "train-images-idx3-ubyte.gz" in shown and "B/s" in shown
    else:
        assert shown == ""
