"""ctcnet.io.digests: a frame's record (its files' stats and SHA-256 as read) and the check that
tells a frame changed since, reading nothing while its files' size and time are unchanged."""

import hashlib
import os

import numpy as np

from ctcnet.io.digests import file_sha256, frame_change, frame_record


def test_a_frame_file_changed_is_told_a_touched_or_copied_one_is_not(tmp_path):
    path = tmp_path / "r00c00.tif"
    path.write_bytes(b"frame one" * 1000)
    record = frame_record([path], np.zeros((1, 2, 2), np.float32), whole_files=True)
    assert record["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest() == \
        file_sha256(path)
    assert frame_change([path], record) is None
    os.utime(path, ns=(1, 1))  # touched (or copied without its times): its bytes are read
    assert frame_change([path], record) is None
    path.write_bytes(b"frame two" * 1000)  # same size, other bytes
    said = frame_change([path], record)
    assert said.startswith("its files' SHA-256 is ") and record["sha256"][:12] in said
    assert frame_change([path], None) is None  # nothing recorded: nothing to tell


def test_a_frame_in_a_container_is_told_by_its_pixels(tmp_path):
    path = tmp_path / "scan.ome.tif"
    path.write_bytes(b"container")
    pixels = np.arange(12, dtype=np.float32).reshape(1, 3, 4)
    record = frame_record([path], pixels, whole_files=False)
    assert record["of"] == "pixels"
    path.write_bytes(b"container, another scene changed")
    assert frame_change([path], record, read=lambda: pixels.copy()) is None
    said = frame_change([path], record, pixels=np.roll(pixels, 1, axis=2))
    assert said.startswith("its pixels' SHA-256 is ")


def test_a_frame_rewritten_while_read_is_told_even_with_its_time_set_back(tmp_path):
    """Other bytes of the same size written between a frame's reading and its digest, its
    modification time put back: the inode's change time still tells (the digest would be of
    other bytes than the pixels counted)."""
    import pytest

    from ctcnet.io.digests import ChangedWhileRead, file_marks

    frame = tmp_path / "r00c00.tif"
    frame.write_bytes(b"a" * 4096)
    st = frame.stat()
    before = file_marks([frame])
    assert frame_record([frame], None, True, before)["sha256"] == file_sha256(frame)
    frame.write_bytes(b"b" * 4096)
    os.utime(frame, ns=(st.st_atime_ns, st.st_mtime_ns))
    with pytest.raises(ChangedWhileRead, match="changed while it was read"):
        frame_record([frame], None, True, before)
