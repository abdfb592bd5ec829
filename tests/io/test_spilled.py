"""ctcnet.io.spilled: an array kept in a temporary file, read back as it was written."""

import numpy as np
import pytest

from ctcnet.io.spilled import SpilledArray


def test_rows_read_back_as_written_by_slice_index_and_mask(tmp_path):
    x = np.random.default_rng(0).random((11, 2, 3, 3)).astype(np.float32)
    with SpilledArray(x.shape, np.float32, tmp_path) as spilled:
        for start in range(0, 11, 4):
            spilled.write(start, x[start:start + 4])
        assert len(spilled) == 11
        assert list(tmp_path.iterdir()) == []  # the file has no name
        np.testing.assert_array_equal(spilled.read(2, 9), x[2:9])
        np.testing.assert_array_equal(spilled[3:7], x[3:7])
        np.testing.assert_array_equal(spilled[::3], x[::3])
        ids = [9, 1, 2, 3, 3, -1, 0]  # unordered, repeated, counted from the end
        np.testing.assert_array_equal(spilled[ids], x[ids])
        mask = np.arange(11) % 2 == 0
        np.testing.assert_array_equal(spilled[mask], x[mask])
        np.testing.assert_array_equal(spilled[4], x[4])
        np.testing.assert_array_equal(np.asarray(spilled), x)
        assert [start for start, _ in spilled.chunks(5)] == [0, 5, 10]
        part = spilled.read(0, 2)
        part[:] = -1  # a copy of its own: the file keeps its rows
        np.testing.assert_array_equal(spilled.read(0, 2), x[:2])
        with pytest.raises(IndexError):
            spilled[[11]]
        with pytest.raises(ValueError, match="do not fit"):
            spilled.write(10, x[:2])
    assert list(tmp_path.iterdir()) == []


def test_an_empty_array(tmp_path):
    with SpilledArray((0, 2, 3, 3), np.float32, tmp_path) as spilled:
        assert spilled.read(0, 5).shape == (0, 2, 3, 3)
        assert spilled[[]].shape == (0, 2, 3, 3)
        assert list(spilled.chunks(4)) == []


def test_a_folder_without_room_is_refused_before_anything_is_written(tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    from ctcnet.errors import InputError

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda folder: usage(10**9, 10**9 - 10**6, 10**6))
    with pytest.raises(InputError, match=r"128\.0 MB are needed here .* 1\.0 MB are free"):
        SpilledArray((1000, 5, 80, 80), np.float32, tmp_path)
    assert list(tmp_path.iterdir()) == []
