"""The history journal: appends only what a list gained, and reads back exactly what a snapshot refers to."""

from __future__ import annotations

import json

import pytest

from xpnet.errors import ModelFileError, XpnetError
from xpnet.io import journal

RECORDS = [{"epoch": number, "train_loss": 1.0 / number, "lr": 0.01} for number in range(1, 6)]


def test_records_read_back_as_written(tmp_path):
    reference = journal.Journal(tmp_path / "history.jsonl").extend(RECORDS)
    assert journal.read(tmp_path / "checkpoint.npz", reference) == RECORDS


def test_a_later_extend_appends_only_the_new_records(tmp_path):
    path = tmp_path / "history.jsonl"
    writer = journal.Journal(path)
    writer.extend(RECORDS[:3])
    before, inode = path.read_bytes(), path.stat().st_ino
    reference = writer.extend(RECORDS)
    assert path.stat().st_ino == inode  # the same file, appended to, not replaced
    assert path.read_bytes() == before + b"".join(json.dumps(record).encode() + b"\n" for record in RECORDS[3:])
    assert writer.extend(RECORDS) == reference  # nothing new: nothing written
    assert journal.read(tmp_path / "checkpoint.npz", reference) == RECORDS


def test_an_earlier_snapshot_reads_its_records_after_later_appends(tmp_path):
    writer = journal.Journal(tmp_path / "history.jsonl")
    earlier = writer.extend(RECORDS[:2])
    writer.extend(RECORDS)
    assert journal.read(tmp_path / "checkpoint.npz", earlier) == RECORDS[:2]


def test_the_tail_of_a_failed_append_is_overwritten_by_the_next(tmp_path):
    """An append cut off by a crash (or whose snapshot failed) leaves bytes no snapshot refers to."""
    path = tmp_path / "history.jsonl"
    writer = journal.Journal(path)
    writer.extend(RECORDS[:2])
    with open(path, "ab") as handle:
        handle.write(b'{"epoch": 3, "train_lo')
    reference = writer.extend(RECORDS[:3])
    assert path.read_bytes().count(b"\n") == 3
    assert journal.read(tmp_path / "checkpoint.npz", reference) == RECORDS[:3]


def test_a_new_writer_keeps_an_earlier_snapshots_records_readable(tmp_path):
    """A resumed run's first write replaces the journal whole; it starts with the same bytes."""
    earlier = journal.Journal(tmp_path / "history.jsonl").extend(RECORDS[:2])
    journal.Journal(tmp_path / "history.jsonl").extend(RECORDS)
    assert journal.read(tmp_path / "checkpoint.npz", earlier) == RECORDS[:2]


def test_an_append_that_cannot_write_is_one_line_naming_the_file(tmp_path):
    path = tmp_path / "history.jsonl"
    writer = journal.Journal(path)
    writer.extend(RECORDS[:2])
    path.unlink()
    with pytest.raises(XpnetError, match=rf"^cannot write {path}: No such file or directory$"):
        writer.extend(RECORDS)


@pytest.fixture
def written(tmp_path):
    path = tmp_path / "history.jsonl"
    return path, journal.Journal(path).extend(RECORDS)


def refused(tmp_path, reference, match):
    with pytest.raises(ModelFileError, match=match) as caught:
        journal.read(tmp_path / "checkpoint.npz", reference)
    assert "\n" not in str(caught.value)


def test_a_missing_journal_says_to_keep_the_two_files_together(tmp_path, written):
    path, reference = written
    path.unlink()
    refused(tmp_path, reference, rf"^{path} is missing: .*checkpoint.npz keeps its training history there; keep")


def test_a_truncated_journal_is_refused(tmp_path, written):
    path, reference = written
    path.write_bytes(path.read_bytes()[:10])
    refused(tmp_path, reference, rf"^{path} holds 10 bytes but .*checkpoint.npz records {reference['bytes']} ")


def test_a_changed_journal_is_refused(tmp_path, written):
    path, reference = written
    path.write_bytes(path.read_bytes().replace(b'"lr": 0.01', b'"lr": 0.02', 1))
    refused(tmp_path, reference, r"are not the history .* recorded \(SHA-256 mismatch\); the file was changed")


@pytest.mark.parametrize(
    "change",
    [
        {"file": "../history.jsonl"},
        {"file": "/etc/passwd"},
        {"file": ".."},
        {"bytes": -1},
        {"bytes": 1.5},
        {"sha256": None},
    ],
)
def test_a_reference_that_points_elsewhere_or_is_malformed_is_refused(tmp_path, written, change):
    _, reference = written
    refused(tmp_path, {**reference, **change}, r"its reference to its training history is invalid; the file is")
