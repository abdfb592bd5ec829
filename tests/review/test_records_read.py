"""ctcnet.review.records_read: a sample's review records read as one moment's, while a review
server writes them (an export, an audit, a second server's page)."""

import os
import threading
import time

from ctcnet.review import records_read
from ctcnet.review.decision_journal import decisions_lock
from ctcnet.review.records_read import review_records_read


def test_the_lock_held_by_a_reader_is_held_on_by_what_it_calls(tmp_path):
    """A reader holding the lock over its reads may call what takes it (migrating an old
    review.csv): a second flock of the same file from one process waited for ever."""
    done = []
    (tmp_path / ".review.csv.lock").touch()  # a review wrote here

    def nested():
        with review_records_read(tmp_path), decisions_lock(tmp_path), decisions_lock(tmp_path):
            done.append(True)

    worker = threading.Thread(target=nested, daemon=True)
    worker.start()
    worker.join(30)
    assert done == [True]
    # Let go at the end: another thread takes it.
    other = threading.Thread(target=lambda: decisions_lock(tmp_path).__enter__(), daemon=True)
    other.start()
    other.join(30)
    assert not other.is_alive()


def test_a_reader_waits_for_the_summary_a_review_writes_after_its_decision(tmp_path):
    """A decision written, summary.json not yet (the server writes it next): the reader reads
    once it is there, so the counts it reads add up to the decisions it reads (an FCS file
    said "current" of counts that were not the signed ones)."""
    (tmp_path / ".review.csv.lock").touch()  # a review writes here
    (tmp_path / "summary.json").write_text("before")
    old = time.time() - 60
    os.utime(tmp_path / "summary.json", (old, old))
    (tmp_path / "review.csv").write_text("a decision\n")

    def server():
        time.sleep(0.3)
        with decisions_lock(tmp_path):
            (tmp_path / "summary.json").write_text("after")

    writer = threading.Thread(target=server)
    writer.start()
    with review_records_read(tmp_path, wait_s=30):
        read = (tmp_path / "summary.json").read_text()
    writer.join()
    assert read == "after"
    # A summary behind for long (decisions a script wrote, no server to follow them): read
    # at once, as it lies.
    os.utime(tmp_path / "review.csv", (time.time() - 60,) * 2)
    os.utime(tmp_path / "summary.json", (time.time() - 120,) * 2)
    start = time.monotonic()
    with review_records_read(tmp_path, wait_s=30):
        pass
    assert time.monotonic() - start < 10


def test_a_folder_this_account_cannot_lock_is_read_as_it_lies(tmp_path, monkeypatch):
    """Read-only media (an archive): no lock file can be made there, and no review writes
    there; the reader reads (it failed)."""
    def refused(folder):
        raise PermissionError(13, "Read-only file system")

    monkeypatch.setattr(records_read, "decisions_lock", refused)
    (tmp_path / ".review.csv.lock").touch()
    read = []
    with review_records_read(tmp_path):
        read.append(True)
    assert read == [True]
    # A folder no review has written: read as it lies, and no lock file left by the reader.
    monkeypatch.undo()
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    with review_records_read(fresh):
        pass
    assert list(fresh.iterdir()) == []
