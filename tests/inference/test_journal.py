"""ctcnet.inference.journal: the record of the frames a predict run has done."""

import os
import shutil

from conftest import predict


def test_a_copy_done_before_is_dropped_from_the_journal(clean_run, cart):
    """A resumed run does not keep a frame it now knows to be a copy."""
    predict(clean_run, cart)
    before = (cart / "r00c02.tif").stat()
    shutil.copy(cart / "r00c01.tif", cart / "r00c02.tif")  # r00c02 replaced by r00c01's bytes
    # Same name, size and time as before: the journal's own check sees no change.
    os.utime(cart / "r00c02.tif", ns=(before.st_atime_ns, before.st_mtime_ns))
    summary = predict(clean_run, cart)
    assert summary.frames.skipped == 1 and summary.skipped_frames[0]["frame"] == "r00c02"
    assert summary.frames.resumed_from_journal == 2
    assert not (cart.parent / "out" / "parts" / "r00c02.parquet").exists()
