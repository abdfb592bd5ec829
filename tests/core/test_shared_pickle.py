"""Results handed between processes through shared memory: the same objects, no file left."""

import gc
import os
import subprocess
import sys

import numpy as np
import pytest

from ctcnet.core import shared_pickle

pytestmark = pytest.mark.skipif(not shared_pickle.SHM_DIR.is_dir(), reason="no /dev/shm")


def ours() -> list[str]:
    return sorted(p.name for p in
                  shared_pickle.SHM_DIR.glob(f"{shared_pickle.PREFIX}{os.getpid()}-*"))


def result(rng, n=40):
    crops = rng.normal(size=(n, 5, 32, 32)).astype(np.float32)
    return {"crops": crops, "fortran": np.asfortranarray(rng.normal(size=(200, 100))),
            "strided": crops[:, :, 2:30, 2:30], "small": np.arange(5), "name": "r00c00"}


def assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key, value in a.items():
        if isinstance(value, np.ndarray):
            assert b[key].dtype == value.dtype and np.array_equal(b[key], value), key
        else:
            assert b[key] == value


def test_a_result_comes_back_the_same_viewing_its_file_and_the_file_is_unlinked(rng):
    sent = result(rng)
    packed = shared_pickle.pack(sent, os.getpid())
    # The large contiguous buffers left the pickle; the strided view and the small one did not.
    assert packed.path is not None and len(packed.spans) == 2  # crops, fortran
    # Patients' crops in /dev/shm, which every local user may list: this user's alone.
    assert os.stat(packed.path).st_mode & 0o777 == 0o600
    assert len(packed.data) < sent["crops"].nbytes
    got = shared_pickle.unpack(packed)
    assert_same(sent, got)
    assert ours() == []  # unlinked once mapped; the arrays still read it
    got["crops"][0, 0, 0, 0] = 7.0  # writable, as the worker's arrays were
    assert got["crops"][0, 0, 0, 0] == 7.0


def test_without_dev_shm_the_buffers_travel_in_the_pickle(rng, monkeypatch, tmp_path):
    monkeypatch.setattr(shared_pickle, "SHM_DIR", tmp_path / "none")
    sent = result(rng)
    packed = shared_pickle.pack(sent, os.getpid())
    assert packed.path is None and len(packed.data) > sent["crops"].nbytes
    assert_same(sent, shared_pickle.unpack(packed))


def test_a_ring_reuses_its_files_and_a_slot_is_free_once_its_arrays_are_gone(rng):
    with shared_pickle.SlotRing(2) as ring:
        assert len(ours()) == 2
        first, second = ring.acquire(), ring.acquire()
        assert first and second and first != second and ring.acquire() is None
        small, large = result(rng, 10), result(rng, 60)
        got_small = ring.unpack(shared_pickle.pack(small, os.getpid(), first))
        got_large = ring.unpack(shared_pickle.pack(large, os.getpid(), second))
        assert_same(small, got_small)
        assert_same(large, got_large)
        assert ring.acquire() is None  # both results alive
        del got_small
        gc.collect()
        again = ring.acquire()
        assert again == first
        # The slot grows for a larger result; the other result is untouched by it.
        bigger = result(rng, 90)
        got_bigger = ring.unpack(shared_pickle.pack(bigger, os.getpid(), again))
        assert_same(bigger, got_bigger)
        assert_same(large, got_large)
        # With every slot taken, a result packs into a file of its own, unlinked when mapped.
        own = shared_pickle.pack(small, os.getpid())
        assert not own.slot
        assert_same(small, ring.unpack(own))
        assert len(ours()) == 2
    assert ours() == []
    assert_same(bigger, got_bigger)  # mappings outlive the ring's files


def test_sweep_removes_the_files_of_processes_no_longer_running(rng, tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead_pid = int(dead.stdout)
    left = shared_pickle.pack(result(rng), dead_pid)   # as if its parent had died
    mine = shared_pickle.pack(result(rng), os.getpid())
    shared_pickle.sweep()
    assert not os.path.exists(left.path) and os.path.exists(mine.path)
    assert shared_pickle.sweep(os.getpid()) == 1 and ours() == []


def test_with_no_room_left_in_dev_shm_the_result_travels_in_its_pickle(rng, monkeypatch):
    """A full /dev/shm (a container's 64 MB) is an error to fall back from, not a SIGBUS."""
    import errno

    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    sent = result(rng)
    packed = shared_pickle.pack(sent, os.getpid())
    assert packed.path is None
    assert_same(sent, shared_pickle.unpack(packed))
    with shared_pickle.SlotRing(1) as ring:
        slot = ring.acquire()
        packed = shared_pickle.pack(sent, os.getpid(), slot)
        assert packed.path is None and not packed.slot
        assert_same(sent, ring.unpack(packed))
    assert ours() == []
    assert shared_pickle.room() > 0


def test_a_sweep_reads_process_ids_only_in_its_own_pid_namespace(tmp_path, monkeypatch):
    """Two containers sharing /dev/shm number their processes apart: a run in one swept the
    other's live files as a killed run's (its process id not running here), and that run
    failed on its next frame. Another namespace's files are left; this one's and those named
    before namespaces were are swept as before."""
    monkeypatch.setattr(shared_pickle, "SHM_DIR", tmp_path)
    dead = 2 ** 22 + 12345  # over any pid_max: no such process here
    ours = tmp_path / shared_pickle._file_name(dead)
    theirs = tmp_path / f"{shared_pickle.PREFIX}{dead}-n1-{'0' * 32}"
    older = tmp_path / f"{shared_pickle.PREFIX}{dead}-{'0' * 32}"
    for path in (ours, theirs, older):
        path.write_bytes(b"x")
    assert shared_pickle.NAMESPACE.startswith("n") and shared_pickle.NAMESPACE != "n1"
    assert shared_pickle.sweep() == 2
    assert theirs.exists() and not ours.exists() and not older.exists()
    assert shared_pickle.sweep(dead) == 0  # (this run's own at its end: the same rule)
