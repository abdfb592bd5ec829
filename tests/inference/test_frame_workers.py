"""Frames prepared in processes: the same events and calls as in threads, a bad frame skipped
with its reason, a frame process that dies said plainly, no shared-memory file left."""

import dataclasses
import os
import time

import pandas as pd
import pytest

from ctcnet.core import shared_pickle
from ctcnet.inference import frame_workers
from ctcnet.inference.predict import PredictOptions, predict_cartridge
from ctcnet.io.scan import Cartridge, open_cartridge


def run(clean_run, cart, out, pool: str, workers: int = 2):
    return predict_cartridge(cart, clean_run["backend"], out,
                             PredictOptions(quiet=True, report=False, workers=workers,
                                            frame_pool=pool))


def events(out):
    return pd.read_parquet(out / "events.parquet")


def ours() -> list:
    if not shared_pickle.SHM_DIR.is_dir():
        return []
    return list(shared_pickle.SHM_DIR.glob(f"{shared_pickle.PREFIX}{os.getpid()}-*"))


def test_frames_in_processes_give_the_events_and_calls_of_threads(clean_run, cart_and_model,
                                                                  tmp_path, monkeypatch):
    cart = cart_and_model / "cart"
    threads = run(clean_run, cart, tmp_path / "threads", "threads")

    def not_here(*args):
        raise AssertionError("a frame prepared in a frame process is finished there")

    with monkeypatch.context() as here:  # (the frame processes import their own)
        here.setattr(frame_workers, "finish_frame", not_here)
        processes = run(clean_run, cart, tmp_path / "processes", "processes")
    pd.testing.assert_frame_equal(events(tmp_path / "threads"),
                                  events(tmp_path / "processes"))
    assert processes.counts == threads.counts and processes.guard == threads.guard
    assert processes.timings_s["hand_off"] > 0 == threads.timings_s["hand_off"]
    # Kept for the run's next cartridge: the same processes, their files reused.
    before = set(ours())
    run(clean_run, cart, tmp_path / "again", "processes")
    assert set(ours()) == before
    pd.testing.assert_frame_equal(events(tmp_path / "threads"), events(tmp_path / "again"))


def test_a_full_dev_shm_prepares_frames_in_threads(clean_run, cart_and_model,
                                                               tmp_path, monkeypatch, caplog):
    """A process pool's locks are made in /dev/shm: full (a container's), the night stopped,
    said as the temporary folder being full. Now the frames are prepared in threads, the same
    results, and the cause said once (the reports' worker: test_report_overlap)."""
    import concurrent.futures
    import errno

    from ctcnet.report import run_report

    cart = cart_and_model / "cart"
    threads = run(clean_run, cart, tmp_path / "threads", "threads")

    def no_room(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", no_room)
    monkeypatch.setattr(frame_workers, "_pools", {})
    monkeypatch.setattr(frame_workers, "_said_no_pool", set())
    with caplog.at_level("WARNING"):
        processes = predict_cartridge(cart, clean_run["backend"], tmp_path / "processes",
                                      PredictOptions(quiet=True, report=run_report, workers=2,
                                                     frame_pool="processes"))
    pd.testing.assert_frame_equal(events(tmp_path / "threads"),
                                  events(tmp_path / "processes"))
    assert processes.counts == threads.counts and processes.frame_pool == "threads"
    assert "frames prepared in threads, not in processes: No space left on device starting " \
        "worker processes (their pool's locks are made in /dev/shm)" in caplog.text
    assert (tmp_path / "processes" / "index.html").exists()


def test_a_frame_process_that_cannot_start_prepares_frames_in_threads(clean_run, cart,
                                                                       tmp_path, monkeypatch):
    """The pool made, its processes not started (a container's process limit: EAGAIN as a
    process is spawned): a traceback, exit 1, the pool left behind. Now threads, as for a
    pool that cannot be made."""
    import errno
    import multiprocessing.context

    def no_process(self):
        raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")

    monkeypatch.setattr(multiprocessing.context.SpawnProcess, "start", no_process)
    monkeypatch.setattr(frame_workers, "_pools", {})
    monkeypatch.setattr(frame_workers, "_said_no_pool", set())
    summary = run(clean_run, cart, tmp_path / "out", "processes")
    assert summary.frame_pool == "threads" and frame_workers._pools == {}


def test_a_bad_frame_is_skipped_with_its_reason_in_a_frame_process(clean_run, cart, tmp_path):
    frames = sorted(cart.glob("r*c*.tif"))
    data = frames[1].read_bytes()
    frames[1].write_bytes(data[: len(data) // 3])
    summary = run(clean_run, cart, tmp_path / "out", "processes")
    assert [s["frame"] for s in summary.skipped_frames] == [frames[1].stem]
    assert "corrupt or truncated" in summary.skipped_frames[0]["reason"]
    reference = events(clean_run["root"] / "clean")
    kept = reference[reference["frame_id"] != frames[1].stem]
    got = events(tmp_path / "out")
    assert len(got) == len(kept) and (got["class"].to_numpy() == kept["class"].to_numpy()).all()


@dataclasses.dataclass
class DyingCartridge(Cartridge):
    """A cartridge whose second frame ends the process reading it (the OOM killer's way)."""

    def read(self, frame):
        if frame.index == 1:
            os._exit(9)
        return super().read(frame)


def test_a_frame_process_that_dies_is_said_plainly_and_the_next_run_starts_anew(
        clean_run, cart_and_model, tmp_path):
    cartridge = open_cartridge(cart_and_model / "cart")
    dying = DyingCartridge(**{f.name: getattr(cartridge, f.name)
                              for f in dataclasses.fields(Cartridge)})
    spec = clean_run["backend"].spec
    with pytest.raises(MemoryError, match="a frame process ended before its frame was done"):
        list(frame_workers.prepared_frames(dying.frames, dying, spec,
                                           frame_workers.DetectConfig(), None, None, 2, 2,
                                           "processes"))
    done = list(frame_workers.prepared_frames(cartridge.frames, cartridge, spec,
                                              frame_workers.DetectConfig(), None, None, 2, 2,
                                              "processes"))
    assert [w.frame.frame_id for w in done] == [f.frame_id for f in cartridge.frames]
    assert all(w.error is None and len(w.crops) == len(w.events) for w in done)


def test_auto_takes_processes_for_many_frames_on_many_cores_and_threads_elsewhere(monkeypatch):
    many, cores = frame_workers.AUTO_PROCESS_FRAMES, frame_workers.AUTO_PROCESS_CORES
    frame_workers._shut_down()  # no processes started yet
    assert frame_workers.uses_processes("auto", 2, None, many, cores)
    assert not frame_workers.uses_processes("auto", 2, None, many - 1, cores)
    assert not frame_workers.uses_processes("auto", 2, None, 10 * many, cores - 1)
    assert frame_workers.uses_processes("processes", 2, None, 1, 2)
    assert not frame_workers.uses_processes("processes", 0, None, many)  # inline
    assert not frame_workers.uses_processes("processes", 2, "cuda", many)
    assert not frame_workers.uses_processes("threads", 2, None, many)
    # A container's /dev/shm of 64 MB: threads, unless processes are asked for.
    monkeypatch.setattr(shared_pickle, "room", lambda: 64 << 20)
    assert not frame_workers.uses_processes("auto", 2, None, many, cores)
    assert frame_workers.uses_processes("processes", 2, None, many, cores)
    monkeypatch.undo()
    with pytest.raises(ValueError, match="frame pool 'fork'"):
        frame_workers.uses_processes("fork", 2)
    frame_workers._pool(2)  # a run's processes, started by an earlier cartridge
    try:
        assert frame_workers.uses_processes("auto", 2, None, 1, cores)
        assert not frame_workers.uses_processes("auto", 3, None, 1, cores)
    finally:
        frame_workers._shut_down()
    assert ours() == []


@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="Linux's /proc")
def test_the_run_reports_its_frame_processes_memory_too(tmp_path):
    """A child's peak counts towards the run's (summary.json's peak_memory_mb)."""
    import subprocess
    import sys

    from ctcnet.inference.resources import children_peak_memory_mb

    before = children_peak_memory_mb()
    ready = tmp_path / "ready"
    child = subprocess.Popen([sys.executable, "-c",
                              "import pathlib, sys, time\n"
                              "held = bytearray(80_000_000)\n"
                              "pathlib.Path(sys.argv[1]).touch()\n"
                              "time.sleep(30)\n", str(ready)])
    try:
        deadline = time.monotonic() + 30
        while not ready.exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ready.exists()
        assert children_peak_memory_mb() - before >= 75
    finally:
        child.kill()
        child.wait()


def test_a_script_without_a_main_guard_can_predict_in_frame_processes(clean_run,
                                                                      cart_and_model, tmp_path):
    """A spawned frame process does not run the caller's script again (which would predict
    again in every child): a script that calls predict at its top level works."""
    import subprocess
    import sys

    script = tmp_path / "my_run.py"
    script.write_text(
        "from ctcnet.inference.backends import load_backend\n"
        "from ctcnet.inference.predict import PredictOptions, predict_cartridge\n"
        f"backend = load_backend({str(cart_and_model / 'model.pt')!r}, device='cpu')\n"
        f"summary = predict_cartridge({str(cart_and_model / 'cart')!r}, backend, "
        f"{str(tmp_path / 'out')!r}, PredictOptions(quiet=True, report=None, workers=2, "
        "frame_pool='processes'))\n"
        "print('events', summary.events, summary.frame_pool)\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("events") == 1
    # (summary.json says where its frames were prepared: a validation records it)
    assert f"events {clean_run['clean'].events} processes" in done.stdout
    assert clean_run["clean"].frame_pool in ("threads", "inline")
