"""The finishing of classified frames (labels, the marker guard's flags, the frame's part in the
journal: :func:`finish_frame`) on a thread of its own, so that the thread feeding the model goes
back to it at once (:class:`FrameFinisher`); frames prepared in frame processes are finished
there too (``ctcnet.inference.frame_workers.finished``), several at once.

On a GPU server the thread feeding the model bound a cartridge: on one H200 with eight frame
threads, a 175-frame cartridge's model thread waited under a second of its 17 s for frames,
and finishing was most of that thread's work. With finishing here, this thread binds instead
(the model's thread waits 7-10 s of 17-22 s for it: pandas work under the GIL beside eight
frame threads), so the wall time is unchanged until finishing costs less; ``frame_wait`` and
``finish_wait`` in ``timings_s`` say which side waits (docs/benchmarks-gpu.md). Each frame's
part is written whole (atomically), so the journal holds whole frames whenever a run stops.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ctcnet.inference.alternates import resolve_alternates
from ctcnet.inference.cluster_parts import counted_kinds, hold_cluster_repeats
from ctcnet.inference.frames import keep_frame_record
from ctcnet.inference.gallery import gallery_rows
from ctcnet.inference.guard import guard_events
from ctcnet.inference.journal import write_part
from ctcnet.inference.marker_fusion import scan_fusion_role
from ctcnet.inference.scan_fusion import fused_labels, marked_fused
from ctcnet.inference.scan_leak_hold import with_leak_needed
from ctcnet.inference.tables import empty_frame_table, label_events
from ctcnet.io.scan import Cartridge
from ctcnet.nn.spec import ModelSpec


@dataclass(frozen=True)
class Finishing:
    """What every classified frame of a cartridge is finished with."""

    spec: ModelSpec               # at the run's prior
    edge_class: str | None        # the class of events the frame border cuts (None: the call)
    parts: Path                   # the journal's folder
    gallery_per_frame: int        # the review gallery's crops a frame, per category
    made_by: str = ""             # the backend and software, recorded with each frame
    pixel_size_um: float | None = None  # the scan's: one cluster read twice is held apart


def finish_frame(job: Finishing, work, proba) -> tuple[int, float, float]:
    """A classified frame finished: its events labelled with the calls (the model's scan
    fusion taking part), the marker guard's flags, the CK leak each counted CTC's CD45 needs
    (:mod:`ctcnet.inference.scan_leak_hold`), merged objects' members resolved, a cluster read
    twice counted once (:mod:`ctcnet.inference.cluster_parts`), its part written to the
    journal and its record kept beside it. ``work``: the frame's
    :class:`~ctcnet.inference.frames.FrameWork`; ``proba``: its events' probabilities.
    Returns (events, the guard's seconds, writing's seconds)."""
    t0 = time.perf_counter()
    # The fusion's measurements on some events and the guard's flags are guard work (the
    # guard's other measurements ran in the frame workers).
    events, proba, measured = fused_labels(work, proba, job.spec, job.edge_class)
    events = guard_events(events, work.crops, proba, job.spec, measured,
                          start=work.guard_start)
    # What CK leak each counted CTC's CD45 needs: held once the scan's leak is known.
    events = with_leak_needed(events, work.guard_start, job.spec.taxonomy.of_kind("ctc"))
    events, crop_rows = resolve_alternates(events, job.spec.taxonomy.reported_classes())
    events = hold_cluster_repeats(events, job.pixel_size_um,
                                  kinds=counted_kinds(job.spec.taxonomy))
    t1 = time.perf_counter()
    # The events whose crops the review gallery may show: a capped share per category.
    write_part(job.parts, work.frame.frame_id, events, work.crops,
               lambda table: gallery_rows(table, job.spec, job.gallery_per_frame), crop_rows)
    keep_frame_record(job.parts, work, job.made_by)  # once its part is journaled
    return len(events), t1 - t0, time.perf_counter() - t1


def no_events_table(cartridge: Cartridge, spec: ModelSpec, edge_class: str | None
                    ) -> pd.DataFrame:
    """The table a cartridge with no events at all is written from: no rows, and every column
    of a finished frame's (:func:`finish_frame`) with its type, so that a night's events files
    share one schema whatever a sample found (a failed sample's too)."""
    proba = np.zeros((0, spec.num_classes), np.float32)
    role = scan_fusion_role(spec)
    events = label_events(empty_frame_table(cartridge), proba, spec, edge_class,
                          band_proba=proba if role == "review" else None)
    events = with_leak_needed(guard_events(
        marked_fused(events, np.zeros(0, bool) if role else None), None, proba, spec),
        None, ())
    # An empty object column has no type in Arrow; a frame's calls and flags are strings.
    return events.astype({c: "str" for c in events if events[c].dtype == object})


class FrameFinisher:
    """Runs ``finish(work, proba)`` for each classified frame on one finishing thread (or
    ``threads``, for finishing that waits on other processes), or inline when ``threaded`` is
    false (``--workers 0``: each stage timed alone).

    At most ``ahead`` frames wait to be finished: a frame holds its crops until then, so the
    thread that submits waits (``waited`` seconds) rather than pile them up. Once a finish
    raises, the frames behind it are not finished, and the error is raised in the submitting
    thread at its next call; leaving the ``with`` block waits for the frames submitted.
    """

    def __init__(self, finish: Callable, threaded: bool, ahead: int = 4, threads: int = 1):
        self._finish = finish
        self._pool = (ThreadPoolExecutor(max_workers=max(1, threads),
                                         thread_name_prefix="ctcnet-finish")
                      if threaded else None)
        self._ahead = max(1, ahead)
        self._pending: deque[Future] = deque()
        self._failed = False
        self.waited = 0.0

    def submit(self, ready: Iterable[tuple]) -> None:
        """Finish these (work, proba) pairs: inline, or queued behind the frames before them."""
        for work, proba in ready:
            if self._pool is None:
                self._finish(work, proba)
                continue
            self._collect_done()
            while len(self._pending) >= self._ahead:
                t0 = time.perf_counter()
                self._pending.popleft().result()
                self.waited += time.perf_counter() - t0
            self._pending.append(self._pool.submit(self._guarded, work, proba))

    def _guarded(self, work, proba) -> None:
        if self._failed:  # a frame before this one failed: the run stops there
            return
        try:
            self._finish(work, proba)
        except BaseException:
            self._failed = True
            raise

    def _collect_done(self) -> None:
        """Raise the error of a finished frame, if any; let go of the frames done."""
        while self._pending and self._pending[0].done():
            self._pending.popleft().result()

    def drain(self) -> None:
        """Wait until every frame submitted is finished; raises the first error."""
        t0 = time.perf_counter()
        while self._pending:
            self._pending.popleft().result()
        self.waited += time.perf_counter() - t0

    def __enter__(self) -> FrameFinisher:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._pool is None:
            return
        if exc_type is not None:
            # The run is stopping (an error, Ctrl-C): the frame being finished completes,
            # whole, and the ones waiting are dropped; a rerun classifies them again.
            self._failed = True
            for future in self._pending:
                future.cancel()
        try:
            if exc_type is None:
                self.drain()
        finally:
            self._pool.shutdown(wait=True)
