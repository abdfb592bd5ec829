"""ctcnet.review_server.tiles: the review's tiles are cut only from the frames predict read; a frame
changed since (its SHA-256 in the run's summary) gives the reason, never other cells."""

import numpy as np
import pytest
import tifffile
from conftest import frames, predict

from ctcnet.errors import InputError
from ctcnet.review_server.tiles import FrameSource


def test_a_frame_changed_since_predict_gives_no_tile(clean_run, cart):
    summary = predict(clean_run, cart)
    assert set(summary.frame_digests) == {"r00c00", "r00c01", "r00c02"}
    source = FrameSource(summary)
    frame = source.cartridge().frames[1]
    before = source.read(frame)
    path = frames(cart)[1]
    tifffile.imwrite(path, np.roll(tifffile.imread(path), 60, axis=2), photometric="minisblack")
    fresh = FrameSource(summary)  # a server started after the change
    with pytest.raises(InputError, match="frame r00c01 changed since predict read it"):
        fresh.read(fresh.cartridge().frames[1])
    np.testing.assert_array_equal(fresh.read(fresh.cartridge().frames[0]),
                                  source.read(source.cartridge().frames[0]))
    assert before.shape == fresh.read(fresh.cartridge().frames[2]).shape
