"""Several cartridges: each one's report drawn on a background thread while the next one runs
(ctcnet.inference.report_overlap), with the same outputs as one after another."""

import errno
import json
import logging
import os
import re
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import save_tiny_model

from ctcnet.inference.backends import load_backend
from ctcnet.inference.predict import PredictOptions, predict_inputs
from ctcnet.inference.report_overlap import ReportError, ReportWorker, report_worker
from ctcnet.io.panel import load_panel
from ctcnet.report import run_report

REPORTED = dict(quiet=True, workers=1, report=run_report, report_overlap=True)
# What differs between two runs of the same inputs: how long, how much memory, and when.
TIMING_KEYS = ("timings_s", "events_per_s", "classify_events_per_s", "peak_memory_mb",
               "counted_at", "counted_at_utc", "finished_at")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from ctcnet.simulate import simulate_cartridge

    base = tmp_path_factory.mktemp("overlap")
    for seed in (1, 2, 3):  # as `ctcnet simulate cartridge DIR --frames 3 --frame-shape 256x320
        # --events 20 --seed N` makes them
        simulate_cartridge(base / "scans" / f"c{seed}", load_panel(None), num_frames=3,
                           frame_shape=(256, 320), seed=seed, events_per_frame=20,
                           rare_rates={"ctc": 0.2, "cluster": 0.1})
    model = save_tiny_model(base / "model.pt", crop_size=64, panel=load_panel(None))[0]
    backend = load_backend(model, device="cpu", batch_size=32)
    sequential = predict_inputs([base / "scans"], base / "seq", backend,
                                PredictOptions(**dict(REPORTED, report_overlap=False)))
    return {"base": base, "scans": base / "scans", "backend": backend, "seq": base / "seq",
            "sequential": sequential}


def outputs(out: Path) -> dict[str, bytes]:
    """Every output file of a run (not the journal or the lock), timings and memory taken out
    of summary.json and index.html."""
    files = {}
    for path in sorted(out.rglob("*")):
        rel = path.relative_to(out)
        if not path.is_file() or "parts" in rel.parts or path.name == ".ctcnet.lock":
            continue
        data = path.read_bytes()
        if path.name == "summary.json":
            summary = json.loads(data)
            for key in TIMING_KEYS:
                summary.pop(key, None)
            data = json.dumps(summary, indent=2, sort_keys=True).encode()
        elif path.name == "index.html":
            data = re.sub(rb"<h2>Timings</h2>.*?</table>", b"", data, flags=re.S)
            data = re.sub(rb'<tr><th scope="row">counted at</th><td>[^<]*</td></tr>', b"", data)
        files[str(rel)] = data
    return files


class RecordingReport:
    """The review report, noting which process and thread drew each sample's gallery."""

    def __init__(self, log_path):
        self.log_path = log_path

    def write_gallery(self, out_dir, *args, **kwargs):
        with open(self.log_path, "a") as fh:
            fh.write(f"{out_dir.name} {os.getpid()} {threading.current_thread().name}\n")
        return run_report.write_gallery(out_dir, *args, **kwargs)

    def write_html(self, out_dir, summary):
        run_report.write_html(out_dir, summary)


@pytest.mark.parametrize("kind", ["process", "thread", "no /dev/shm", "no process"])
def test_overlapped_reports_write_what_the_sequential_run_writes(setup, tmp_path, monkeypatch,
                                                                   kind, caplog):
    import errno

    import ctcnet.inference.predict as predict
    from ctcnet.inference import report_overlap
    from ctcnet.inference.worker_processes import NoProcessPool

    # The test model runs on the CPU from a .pt file: its reports go to a process.
    assert report_worker(setup["backend"], True, True).kind == "process"
    if kind == "thread":  # as for a model on a GPU
        monkeypatch.setattr(predict, "report_worker", lambda *a: ReportWorker("thread"))
    if kind == "no /dev/shm":  # a full one (a container's): a thread, not a stopped night

        def no_room(*args):
            raise NoProcessPool(OSError(errno.ENOSPC, "No space left on device"))

        monkeypatch.setattr(report_overlap, "spawned_pool", no_room)
    if kind == "no process":  # a container's process limit: none starts (EAGAIN)
        import multiprocessing.context

        def no_process(self):
            raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")

        monkeypatch.setattr(multiprocessing.context.SpawnProcess, "start", no_process)
    drawn = tmp_path / "drawn.txt"
    with caplog.at_level("INFO", logger="ctcnet.inference.report_overlap"):
        summaries = predict_inputs([setup["scans"]], tmp_path / "ovl", setup["backend"],
                                   PredictOptions(**dict(REPORTED,
                                                         report=RecordingReport(drawn))))
    # Each sample said finished in the log as it is (a killed night's log named none).
    finished = [r.getMessage() for r in caplog.records if ": finished, " in r.getMessage()]
    assert [m.split(":")[0] for m in finished] == ["sim1", "sim2", "sim3"]
    assert all(f"-> {tmp_path / 'ovl'}" in m for m in finished)
    # Every report was drawn in the background worker, none on the main thread.
    where = [line.split() for line in drawn.read_text().splitlines()]
    assert [w[0] for w in where] == ["sim1", "sim2", "sim3"]
    if kind == "process":
        assert {int(w[1]) for w in where} != {os.getpid()} and len({w[1] for w in where}) == 1
    else:
        assert kind == "thread" or "the reports are drawn in a thread, not in a process: " \
            f"{'No space left on device' if kind == 'no /dev/shm' else 'Resource temporarily'}" \
            in caplog.text
        assert all(int(w[1]) == os.getpid() and w[2].startswith("report") for w in where)
    seq, ovl = outputs(setup["seq"]), outputs(tmp_path / "ovl")
    assert set(seq) == set(ovl) and any(p.endswith(".png") for p in seq)
    for name in seq:
        assert seq[name] == ovl[name], name
    # The summaries returned are the finished ones (gallery and report timing in).
    for s, ref in zip(summaries, setup["sequential"]):
        assert s.gallery == ref.gallery and s.gallery and "report" in s.timings_s
        assert s.counts == ref.counts
    for sample in ("sim1", "sim2", "sim3"):
        state = json.loads((tmp_path / "ovl" / sample / "parts" / "report.json").read_text())
        assert state == {"report": "done"}


class FailingReport:
    """The review report, failing to draw one sample's gallery."""

    def __init__(self, sample):
        self.sample = sample

    def write_gallery(self, out_dir, *args, **kwargs):
        if out_dir.name == self.sample:
            raise RuntimeError("drawing failed")
        return run_report.write_gallery(out_dir, *args, **kwargs)

    def write_html(self, out_dir, summary):
        run_report.write_html(out_dir, summary)


def test_a_failed_background_report_names_its_sample_and_a_rerun_draws_it(setup, tmp_path,
                                                                          monkeypatch):
    import ctcnet.inference.predict as predict

    # In a thread (a process takes seconds to start; the errors travel the same way).
    monkeypatch.setattr(predict, "report_worker", lambda *a: ReportWorker("thread"))
    out = tmp_path / "run"
    options = PredictOptions(**dict(REPORTED, report=FailingReport("sim1")))
    with pytest.raises(ReportError, match="report of sample sim1 failed") as caught:
        predict_inputs([setup["scans"]], out, setup["backend"], options)
    assert "drawing failed" in str(caught.value)
    # Raised when the next cartridge's report was to start: both have their events written,
    # neither a report, nor the summary.json written last that would call it done; the
    # journal knows.
    for sample in ("sim1", "sim2"):
        assert (out / sample / "events.parquet").is_file()
        assert not (out / sample / "summary.json").exists()
        assert not (out / sample / "index.html").exists()
        state = json.loads((out / sample / "parts" / "report.json").read_text())
        assert state == {"report": "pending"}
    assert not (out / "sim3").exists()
    # The rerun does no frame of theirs again, draws their reports and runs the third.
    summaries = predict_inputs([setup["scans"]], out, setup["backend"],
                               PredictOptions(**REPORTED))
    assert [s.frames.resumed_from_journal for s in summaries] == [3, 3, 0]
    seq, again = outputs(setup["seq"]), outputs(out)
    assert set(seq) == set(again)
    for name in seq:
        if name.endswith("summary.json") or name.endswith("index.html"):
            continue  # resumed_from_journal differs, as in any resumed run
        assert seq[name] == again[name], name
    for sample in ("sim1", "sim2", "sim3"):
        pd.testing.assert_frame_equal(pd.read_parquet(out / sample / "events.parquet"),
                                      pd.read_parquet(setup["seq"] / sample / "events.parquet"))
        assert json.loads((out / sample / "parts" / "report.json").read_text()) == {
            "report": "done"}


def test_a_batch_goes_on_past_a_failed_report_when_failures_are_recorded(setup, tmp_path,
                                                                         monkeypatch):
    """As ctcnet predict runs a night's batch: one cartridge's report fails, the others are
    run and drawn, and the failure is recorded for the run's end (exit 2) and a rerun."""
    import ctcnet.inference.predict as predict

    monkeypatch.setattr(predict, "report_worker",
                        lambda *a: ReportWorker("thread", failed=a[3]))
    out, failed = tmp_path / "run", {}
    options = PredictOptions(**dict(REPORTED, report=FailingReport("sim1")))
    summaries = predict_inputs([setup["scans"]], out, setup["backend"], options,
                               failed_reports=failed)
    assert len(summaries) == 3 and list(failed) == ["sim1"]
    assert "drawing failed" in failed["sim1"] and "rerun" in failed["sim1"]
    assert json.loads((out / "sim1" / "parts" / "report.json").read_text()) == {
        "report": "pending"}
    for sample in ("sim2", "sim3"):
        assert (out / sample / "index.html").is_file()


class FullDiskReport(FailingReport):
    def __init__(self, sample, number=errno.ENOSPC):
        super().__init__(sample)
        self.number = number

    def write_gallery(self, out_dir, *args, **kwargs):
        if out_dir.name == self.sample:
            raise OSError(self.number, os.strerror(self.number), str(out_dir / "x.png"))
        return run_report.write_gallery(out_dir, *args, **kwargs)


def test_a_report_that_meets_a_full_disk_stops_the_batch_for_a_rerun(setup, tmp_path,
                                                                     monkeypatch):
    """A full disk fails every report after the first alike: it was recorded as the sample's
    failure (exit 2, the input's code) and the batch went on into the next samples; now it
    stops the run as the machine's state (exit 4), its report pending for the rerun."""
    import ctcnet.inference.predict as predict

    monkeypatch.setattr(predict, "report_worker",
                        lambda *a: ReportWorker("thread", failed=a[3]))
    out, failed = tmp_path / "run", {}
    options = PredictOptions(**dict(REPORTED, report=FullDiskReport("sim1")))
    with pytest.raises(OSError, match="No space left") as caught:
        predict_inputs([setup["scans"]], out, setup["backend"], options,
                       failed_reports=failed)
    assert caught.value.errno == errno.ENOSPC and failed == {}
    assert json.loads((out / "sim1" / "parts" / "report.json").read_text()) == {
        "report": "pending"}
    assert not (out / "sim3").exists()
    # One sample's folder made read-only (or another account's) is that sample's alone: its
    # failure is recorded and the batch goes on.
    out, failed = tmp_path / "run2", {}
    options = PredictOptions(**dict(REPORTED, report=FullDiskReport("sim1", errno.EACCES)))
    summaries = predict_inputs([setup["scans"]], out, setup["backend"], options,
                               failed_reports=failed)
    assert len(summaries) == 3 and list(failed) == ["sim1"]


def test_the_overlap_is_on_by_default_and_can_be_turned_off():
    from ctcnet.cli import build_parser

    parser = build_parser()
    default = parser.parse_args(["predict", "scans", "--out", "results"])
    off = parser.parse_args(["predict", "scans", "--out", "results", "--no-report-overlap"])
    assert default.report_overlap is True and off.report_overlap is False
    assert PredictOptions().report_overlap is True


def test_a_report_process_leaves_an_interrupt_to_predicts_main_process():
    """A Ctrl-C reaches the whole process group: the report worker, spawned ignoring SIGINT,
    goes on with its report (no traceback of its own, no report lost) while the main process
    stops the run; the main process's own handler is back once the worker is started, and
    a Ctrl-C that came while it started is not lost (ignored meanwhile, the run went on to
    exit 0), whichever thread took it."""
    import os
    import signal
    import threading

    from ctcnet.inference import worker_processes

    before = signal.getsignal(signal.SIGINT)
    pool = worker_processes.spawned_pool(1)
    try:
        for other_thread in (False, True):
            waiting = threading.Event()
            helper = threading.Thread(target=waiting.wait, daemon=True)
            helper.start()  # a thread that does not block SIGINT (the model's, a frame's)
            with pytest.raises(KeyboardInterrupt):
                with worker_processes.starting_children():
                    future = pool.submit(signal.getsignal, signal.SIGINT)
                    if other_thread:
                        signal.pthread_kill(helper.ident, signal.SIGINT)
                    else:
                        os.kill(os.getpid(), signal.SIGINT)
                    time.sleep(0.2)
            waiting.set()
            assert signal.getsignal(signal.SIGINT) is before
            assert signal.pthread_sigmask(signal.SIG_BLOCK, set()) == set()
            assert future.result(timeout=120) == signal.SIG_IGN
    finally:
        pool.shutdown(wait=True)


def test_a_worker_outlives_a_sigterm_to_the_process_group_and_goes_on_working():
    """A job scheduler stops a job with a SIGTERM to its whole process group: a worker ignores
    it (predict's main process finishes the report and shuts the pool down), so the pool is
    not broken under the report in hand; the main process keeps its own handler."""
    import os
    import signal

    from ctcnet.inference import worker_processes

    before = signal.getsignal(signal.SIGTERM)
    pool = worker_processes.spawned_pool(1)
    try:
        with worker_processes.starting_children(outlive_sigterm=True):
            future = pool.submit(os.getpid)
            # Sent while the worker still starts (it imports numpy first): held, not lost
            # to the pool, whose worker would otherwise die before it could ignore it.
            for process in list(pool._processes.values()):
                os.kill(process.pid, signal.SIGTERM)
        pid = future.result(timeout=120)
        # ... and a closed terminal's SIGHUP, which stops a run as SIGTERM does.
        assert pool.submit(signal.getsignal, signal.SIGHUP).result(timeout=60) == \
            signal.SIG_IGN
        assert signal.getsignal(signal.SIGTERM) is before
        assert signal.pthread_sigmask(signal.SIG_BLOCK, set()) == set()  # nothing held after
        os.kill(pid, signal.SIGTERM)
        assert pool.submit(os.getpid).result(timeout=60) == pid  # the same worker, working
    finally:
        pool.shutdown(wait=True)


def test_a_sigterm_another_thread_takes_while_a_worker_starts_is_raised_after_the_start():
    """Blocked in the main thread alone, a SIGTERM to the process reached the model's or a
    frame's thread, and predict's handler raised it halfway through the report worker's
    start: the child died with a traceback, and the report promised was not finished."""
    import signal

    from ctcnet.inference import worker_processes

    class Terminated(Exception):
        pass

    def terminated(signum, frame):
        raise Terminated

    before = signal.signal(signal.SIGTERM, terminated)
    waiting = threading.Event()
    helper = threading.Thread(target=waiting.wait, daemon=True)
    helper.start()
    pool = worker_processes.spawned_pool(1)
    started = False
    try:
        with pytest.raises(Terminated):
            with worker_processes.starting_children(outlive_sigterm=True):
                signal.pthread_kill(helper.ident, signal.SIGTERM)
                time.sleep(0.2)
                future = pool.submit(os.getpid)
                started = True
        assert started and future.result(timeout=120) != os.getpid()
    finally:
        waiting.set()
        signal.signal(signal.SIGTERM, before)
        pool.shutdown(wait=True)


def test_a_second_ctrl_c_while_a_report_is_finished_is_an_interrupt_not_a_failure(caplog):
    """The first Ctrl-C waits for the report in progress; a second stops the wait, as an
    interrupt (exit 130), not as the report failing."""
    class Interrupted:
        def result(self):
            raise KeyboardInterrupt

    class Running:
        sample_id, out_dir, released = "sim1", "out/sim1", False

        def release(self):
            self.released = True

    for stopping in (False, True):  # Ctrl-C twice while waiting; once more after the first
        worker = ReportWorker("thread")
        running = Running()
        worker._future, worker._running = Interrupted(), running
        caplog.clear()
        with caplog.at_level("WARNING"), pytest.raises(KeyboardInterrupt):
            worker.wait(stopping=stopping)
        assert running.released and "left for a rerun to draw" in caplog.text
        assert ("finishing the report of sim1 first" in caplog.text) is not stopping
        worker.close()


def test_a_report_process_ends_when_predicts_process_is_killed(tmp_path):
    """A parent killed outright (the OOM killer) never tells its report worker: the worker
    sees itself re-parented and ends, rather than live on holding its memory."""

    code = ("import os, sys, threading\n"
            "from ctcnet.inference.worker_processes import end_with_parent\n"
            "child = os.fork()\n"
            "if child == 0:\n"
            "    threading.Thread(target=end_with_parent, args=(os.getppid(), 0.05),"
            " daemon=True).start()\n"
            "    print(os.getpid(), flush=True)\n"
            "    threading.Event().wait(60)\n"
            "    os._exit(0)\n"
            "threading.Event().wait(60)\n")
    _assert_the_worker_dies_with_its_parent(code, "the report process outlived predict's")


def test_a_report_process_started_after_predict_was_killed_still_ends(tmp_path):
    """predict killed while its report worker still imports: the worker's start runs with
    its parent already gone (re-parented to init), and must still see that and end."""

    code = ("import os, threading, time\n"
            "from ctcnet.inference.worker_processes import start_worker\n"
            "parent = os.getpid()\n"
            "child = os.fork()\n"
            "if child == 0:\n"
            "    print(os.getpid(), flush=True)\n"
            "    while os.getppid() == parent:\n"
            "        time.sleep(0.02)\n"
            "    start_worker(parent)\n"  # the pool's initializer, its parent long gone
            "    threading.Event().wait(60)\n"
            "    os._exit(0)\n"
            "threading.Event().wait(60)\n")
    _assert_the_worker_dies_with_its_parent(
        code, "a report process started after predict died outlived it")


def _assert_the_worker_dies_with_its_parent(code: str, failure: str) -> None:
    """Run ``code`` (a parent that forks a worker printing its pid), kill the parent outright
    and wait up to 20 s for the worker to end; fail with ``failure`` (killing it) if not."""
    import subprocess
    import sys
    import time

    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    worker = int(parent.stdout.readline())
    parent.kill()
    parent.wait()
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    os.kill(worker, 9)
    pytest.fail(failure)


def test_a_sigterm_while_a_report_is_finished_stays_a_sigterm(caplog):
    """A scheduler's SIGTERM as a report is drawn: the report is finished, then the run stops
    on the SIGTERM itself (exit 143, recorded so), not as a Ctrl-C."""
    from ctcnet.cli import Terminated

    class TermThenDone:
        calls = 0

        def result(self):
            self.calls += 1
            if self.calls == 1:
                raise Terminated("SIGTERM")
            return None

    class Running:
        sample_id, out_dir = "sim1", "out/sim1"

        def release(self):
            pass

    worker = ReportWorker("thread")
    worker._future, worker._running = TermThenDone(), Running()
    with caplog.at_level("WARNING"), pytest.raises(Terminated):
        worker.wait()
    assert "finishing the report of sim1 first" in caplog.text
    worker.close()


def test_a_worker_processs_log_records_reach_predicts_loggers(caplog):
    """A frame process's warnings (an 8-bit frame, a background subtracted) went to its bare
    stderr: past --quiet, and never into the run's log file. They come back to the loggers
    of predict's process, at the level they had there when the pool started."""
    from ctcnet.inference import worker_processes

    with caplog.at_level(logging.WARNING, logger="ctcnet"):
        pool = worker_processes.spawned_pool(1, frame_buffers=True)
        try:
            with worker_processes.starting_children():
                said = logging.getLogger("ctcnet.inference.frames")
                pool.submit(said.warning, "frame %s: 8-bit", "r00c02").result(timeout=120)
                pool.submit(said.info, "below the level: not sent").result(timeout=60)
        finally:
            pool.shutdown(wait=True)
        for _ in range(100):  # (the listener thread hands it on)
            if "frame r00c02: 8-bit" in caplog.text:
                break
            time.sleep(0.05)
    records = [r for r in caplog.records if r.name == "ctcnet.inference.frames"]
    assert [r.getMessage() for r in records] == ["frame r00c02: 8-bit"]
    assert records[0].levelno == logging.WARNING


def test_a_workers_last_records_reach_the_runs_log_and_one_said_once_is_said_once(tmp_path):
    """A worker's warning logged just before its result came back missed the run's log file
    17 times in 40 closed at once (its records on their way); and a warning said once a
    cartridge was said once a worker."""
    from ctcnet.core.run_log import run_log
    from ctcnet.core.said_once import SAID_ONCE
    from ctcnet.inference import worker_processes

    said = logging.getLogger("ctcnet.inference.frames")
    pool = worker_processes.spawned_pool(2, frame_buffers=True)
    try:
        for k in range(8):
            with run_log(tmp_path / f"run{k}", "predict", ["predict"]) as log:
                log.open()
                with worker_processes.starting_children():
                    pool.submit(said.warning, "the last word %d", k).result(timeout=120)
                log.ended(0)
            text = next((tmp_path / f"run{k}" / "logs").glob("*.log")).read_text()
            assert f"the last word {k}" in text, text
        with run_log(tmp_path / "once", "predict", ["predict"]) as log:
            log.open()
            once = {"extra": {SAID_ONCE: ("frames", "cart", "eight_bit")}}
            for future in [pool.submit(said.warning, f"frame r00c0{i}: 8-bit", **once)
                           for i in range(4)]:
                future.result(timeout=120)
            log.ended(0)
        text = next((tmp_path / "once" / "logs").glob("*.log")).read_text()
        assert text.count(": 8-bit") == 1, text
    finally:
        pool.shutdown(wait=True)

