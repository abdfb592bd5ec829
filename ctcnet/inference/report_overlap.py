"""A cartridge's report drawn while the next cartridge runs (``ctcnet predict`` on several
cartridges, ``PredictOptions.report_overlap``).

Predict finishes a cartridge in two steps: its events (frames, tables), then its report (the
gallery, with saliency maps if asked, ``index.html``, and last ``summary.json``, the mark of a
finished sample, with the report's timing). :class:`ReportJob` is the second step,
:class:`PendingReport` the job not yet done, holding the cartridge folder's lock until it is.
:class:`ReportWorker` does each job in one worker beside the main thread, which meanwhile reads,
detects and classifies the next cartridge's frames:

* **At most one report pending**: before a cartridge's report starts, the previous one is
  waited for, so memory holds one cartridge's frames and one report, never a queue of reports.
* **A process on a CPU** (``"process"``, one spawned worker for the run): the frame loop holds
  the GIL much of its time (pandas, the guard's per-event work; two frame threads beat inline
  frames by only ~3 %), and so does much of the report, so a thread beside it would mostly
  wait for the GIL; a process has its own interpreter, and keeps torch out of predict's
  process (``docs/benchmarks.md``, "Several cartridges", measures both against one after
  another). The job travels pickled: the events table, the journal's gallery index (the
  crops are read from the journal there) and the summary; the worker loads its own saliency
  model from the checkpoint (``backends.portable_explainer``). **A thread** (``"thread"``)
  where saliency is asked for and the model lives only in this process (on a GPU, or given in
  memory).
* **Errors**: a report that fails is raised at the next wait as :class:`ReportError`, naming
  the sample and its folder (the worker's traceback chained), or, given a record of failures
  (``ctcnet predict`` gives one), recorded there while the run goes on; its events tables
  were written before the report started (its ``summary.json`` is not: it is written last),
  and the resume journal marks the report pending
  (:func:`ctcnet.inference.journal.mark_report`), so a rerun on the same ``--out`` draws it
  from the journal without doing any frame again.
* **Interruption**: a Ctrl-C (which reaches the worker process too: it ignores it) stops the
  run once the report in progress is drawn and its folder released.
* **Outputs** stay atomic and identical to a sequential run's (the same code draws them).
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import inspect
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ctcnet.errors import CtcnetError, fails_every_output
from ctcnet.inference.backends import portable_explainer
from ctcnet.inference.journal import mark_report
from ctcnet.inference.summary import RunSummary
from ctcnet.inference.worker_processes import NoProcessPool, spawned_pool, starting_children
from ctcnet.io.panel import Panel
from ctcnet.nn.spec import ModelSpec

log = logging.getLogger(__name__)


class ReportError(CtcnetError):
    """A sample's report failed in the background worker (its events are written)."""

    def __init__(self, sample_id: str, out_dir: Path, error: BaseException):
        self.sample_id = sample_id
        # A file where the report's folders go (gallery/) fails every rerun alike: said so.
        blocked = isinstance(error, OSError) and error.errno in BLOCKED_ERRNOS
        super().__init__(
            f"the report of sample {sample_id} failed ({type(error).__name__}: {error}); its "
            f"events tables in {out_dir} are written (summary.json is written once the report "
            "is), and a rerun on the same --out draws the report without doing its frames "
            "again" + ("; a file or folder stands where the report writes (its gallery/ "
                       "folder, its files): move it away first" if blocked else ""))


# A path the report writes taken by another kind of entry: a file where a folder goes, or
# the other way round.
BLOCKED_ERRNOS = (errno.EEXIST, errno.ENOTDIR, errno.EISDIR)


@dataclass
class ReportJob:
    """Everything a cartridge's report is drawn from (``PredictOptions.report`` does the
    drawing; a module, such as ``ctcnet.report.run_report``, travels to a process by name)."""

    report: object
    out_dir: Path
    parts: Path
    events: pd.DataFrame
    gallery: dict
    panel: Panel
    spec: ModelSpec
    limit: int
    summary: RunSummary
    seconds: dict
    t_start: float
    # Makes the saliency explainer where the report is drawn (torch loads there); None: none.
    explainer: Callable[[], object] | None = None

    def __getstate__(self):
        state = dict(vars(self))
        if inspect.ismodule(self.report):
            state["report"] = ("module", self.report.__name__)
        return state

    def __setstate__(self, state):
        report = state["report"]
        if isinstance(report, tuple) and report[:1] == ("module",):
            state["report"] = importlib.import_module(report[1])
        vars(self).update(state)


def draw_report(job: ReportJob) -> RunSummary:
    """Draw the gallery and ``index.html``, mark the report done in the journal and write
    ``summary.json`` (the report's timing in), last: a report that fails leaves no summary
    that calls the sample done. Returns the finished summary."""
    t0 = time.perf_counter()
    explain = job.explainer() if job.explainer is not None else None
    summary, seconds = job.summary, job.seconds
    summary.gallery = job.report.write_gallery(job.out_dir, job.events, job.gallery, job.panel,
                                               job.spec, job.limit, explain,
                                               frame_shape=summary.frame_shape)
    seconds["report"] = time.perf_counter() - t0
    # The events the run's rate counted (those of the frames it read, none where its journal
    # held them all), over its whole time now the report is in.
    before = seconds.get("total")
    rated = summary.events_per_s * before if summary.events_per_s is not None and before \
        else None
    # perf_counter is the system's monotonic clock: the same in a worker process.
    seconds["total"] = time.perf_counter() - job.t_start
    summary.timings_s = {k: round(v, 4) for k, v in seconds.items()}
    summary.events_per_s = None if rated is None else rated / seconds["total"]
    # After the timings are final, so index.html shows summary.json's (its own few
    # milliseconds are in neither).
    job.report.write_html(job.out_dir, summary)
    mark_report(job.parts, "done")
    # Finished now, not when its counts were: a run that found the folder held by this one
    # meanwhile (it set the sample aside) reads the output as made after it began.
    summary.finished_at = time.time()
    summary.write(job.out_dir)
    return summary


class PendingReport:
    """A cartridge whose events are written and whose report (``job``; None: none to draw)
    is still to draw; ``lock`` holds what the cartridge's run held (its folder's lock) until
    the report is drawn or dropped. ``summary`` is the run's summary, finished in place."""

    def __init__(self, sample_id: str, out_dir: Path, summary: RunSummary,
                 job: ReportJob | None, lock: contextlib.ExitStack):
        self.sample_id, self.out_dir, self.summary = sample_id, out_dir, summary
        self.job, self._lock = job, lock

    def draw(self) -> RunSummary:
        """Draw the report here (if any) and release the folder; returns the summary."""
        try:
            if self.job is not None:
                draw_report(self.job)
        finally:
            self.release()
        self._say_finished()
        return self.summary

    def finish(self, drawn: RunSummary) -> None:
        """Take the summary a worker process finished, and release the folder."""
        vars(self.summary).update(vars(drawn))
        self.release()
        self._say_finished()

    def _say_finished(self) -> None:
        """The run's log says each sample as it is finished (its summary.json written), not
        only in the lines of the batch's end: a night's job killed after ten of its thirty
        cartridges left a log that named none of them."""
        log.info("%s: finished, %s, %s events -> %s", self.sample_id,
                 getattr(self.summary, "status", "?"), getattr(self.summary, "events", "?"),
                 self.out_dir)

    def release(self) -> None:
        """Release the folder (a report not drawn stays pending in the journal)."""
        self.job = None
        self._lock.close()


class ReportWorker:
    """Draws a run's reports one at a time: in one worker beside the main thread (``kind``
    ``"process"`` or ``"thread"``), or inline as they come (``None``).

    Used as a context manager: leaving it waits for the last report (and ends the worker); an
    error of a background report is raised as :class:`ReportError` (unless another error is
    already on its way out, which it does not replace: the report's is then logged).
    """

    def __init__(self, kind: str | None, explainer: Callable[[], object] | None = None,
                 failed: dict | None = None):
        if kind not in (None, "thread", "process"):
            raise ValueError(f"report worker {kind!r}: None, 'thread' or 'process'")
        self.kind = kind
        # Given, a failed report is recorded here (sample id: the error) and the run goes on
        # with the next cartridge: its events are written, and a rerun draws the report.
        self.failed = failed
        self.explainer = explainer  # a process's jobs: the picklable explainer factory
        self._pool = None
        self._future = None
        self._running: PendingReport | None = None
        self.waited_s = 0.0  # main-thread time spent waiting for a report to finish
        self._abandoned = False  # a second Ctrl-C: the report in hand is not waited for

    def submit(self, pending: PendingReport) -> None:
        """Start ``pending``'s report once the previous one is done (its error raised here,
        or recorded in ``failed``)."""
        try:
            self.wait()
        except BaseException:
            pending.release()
            raise
        if self.kind is None or pending.job is None:
            pending.draw()
            return
        if self._pool is None:
            if self.kind == "process":
                try:
                    self._pool = spawned_pool(1)
                except NoProcessPool as err:
                    self._in_thread(err)
            else:
                self._in_thread(None)
        self._running = pending
        if self.kind == "process":
            job = pending.job
            here = job.explainer
            if job.explainer is not None:  # the backend's method: made again over there
                job.explainer = self.explainer
            try:
                with starting_children(outlive_sigterm=True):  # spawned by the submit
                    self._future = self._pool.submit(draw_report, job)
                return
            except OSError as err:  # its process not started (a container's process limit)
                job.explainer = here  # (drawn here after all)
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._in_thread(NoProcessPool(err))
        self._future = self._pool.submit(pending.draw)

    def _in_thread(self, err: NoProcessPool | None) -> None:
        """The reports drawn in a thread from now on: asked so (``err`` None), or no worker
        process could be started (``err``, said: the same reports)."""
        from concurrent.futures import ThreadPoolExecutor

        if err is not None:
            log.warning("the reports are drawn in a thread, not in a process: %s (the same "
                        "reports)", err)
            self.kind = "thread"
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="report")

    def wait(self, stopping: bool = False) -> None:
        """Wait for the report in progress; if it failed, raise :class:`ReportError`, or record
        it in ``failed`` where one is kept (the run goes on). ``stopping``: the run is stopping
        on a Ctrl-C already, so the next one stops the wait (the report is left for a rerun)
        rather than being the first."""
        if self._future is None:
            return
        t0 = time.perf_counter()
        future, running = self._future, self._running
        self._future = self._running = None
        interrupted: KeyboardInterrupt | None = None
        try:
            try:
                drawn = future.result()
            except KeyboardInterrupt as err:
                if stopping:
                    raise
                # The worker goes on (a process ignores the Ctrl-C; a thread never sees it):
                # the report is finished and its folder released, then the run stops, as the
                # signal asked (a SIGTERM stays one: its exit status and record say so).
                interrupted = err
                _finishing_first(running.sample_id)
                drawn = future.result()
        except KeyboardInterrupt:
            # Asked twice: stop waiting, and end the worker (close). The journal marks the
            # report pending; a rerun draws it.
            self._abandoned = True
            running.release()
            log.warning("interrupted again: the report of %s is left for a rerun to draw",
                        running.sample_id)
            raise
        except BaseException as err:
            running.release()
            if fails_every_output(err):  # a full disk or no memory fails every report
                raise                    # after it alike: the run stops (exit 4), a rerun
            # resumes; one sample's folder made read-only is that sample's alone
            failure = ReportError(running.sample_id, running.out_dir, err)
            if self.failed is None:
                raise failure from err
            self._record(failure)
            return
        finally:
            self.waited_s += time.perf_counter() - t0
        if self.kind == "process":
            running.finish(drawn)
        if interrupted is not None:
            raise interrupted

    def _record(self, err: ReportError) -> None:
        """A report failed and the run goes on: say so, keep it in ``failed``, and start a new
        worker for the next report if this one died (a process killed by the OOM killer leaves
        its pool broken)."""
        log.error("%s; the other inputs go on", err)
        self.failed[err.sample_id] = str(err)
        if self._pool is not None and getattr(self._pool, "_broken", False):
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def close(self) -> None:
        """End the worker (after :meth:`wait`)."""
        if self._pool is not None:
            if self._abandoned:
                # The report in hand is dropped: a process's worker is ended (its outputs are
                # written atomically; a rerun draws the report again), a thread left to end.
                for process in list((getattr(self._pool, "_processes", None) or {}).values()):
                    process.kill()  # a worker ignores SIGTERM (start_worker)
                self._pool.shutdown(wait=False, cancel_futures=True)
            else:
                self._pool.shutdown(wait=True)
            self._pool = None

    def __enter__(self) -> ReportWorker:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self.wait()
                return
            stopping = issubclass(exc_type, KeyboardInterrupt) and self._running is not None
            if stopping:
                _finishing_first(self._running.sample_id)
            try:
                self.wait(stopping=stopping)
            except ReportError as err:  # the error already leaving the block goes first
                log.error("%s", err)
        finally:
            self.close()


def _finishing_first(sample_id: str) -> None:
    log.warning("interrupted: finishing the report of %s first", sample_id)


def report_worker(backend, saliency: bool, overlap: bool, failed: dict | None = None
                  ) -> ReportWorker:
    """The worker of a run's reports: inline without ``overlap``; else a process where no
    saliency is asked for or its model can be made there (``backends.portable_explainer``: on
    a CPU), a thread where it cannot. ``failed``: as :class:`ReportWorker`'s."""
    if not overlap:
        return ReportWorker(None)
    if not saliency:  # no model travels: the process needs no explainer (nor its checkpoint)
        return ReportWorker("process", failed=failed)
    portable, factory = portable_explainer(backend)
    return ReportWorker("process", factory, failed) if portable else \
        ReportWorker("thread", failed=failed)
