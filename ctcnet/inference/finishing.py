"""The finishing of classified frames (labels, the marker guard's flags, the frame's part in the
journal) on a thread of its own, so that the thread feeding the model goes back to it at once
(:class:`FrameFinisher`).

On a GPU server the thread feeding the model bound a cartridge: on one H200 with eight frame
threads, a 175-frame cartridge's model thread waited under a second of its 17 s for frames,
and finishing was most of that thread's work. With finishing here, this thread binds instead
(the model's thread waits 7-10 s of 17-22 s for it: pandas work under the GIL beside eight
frame threads), so the wall time is unchanged until finishing costs less; ``frame_wait`` and
``finish_wait`` in ``timings_s`` say which side waits (docs/benchmarks-gpu.md). The frames
are finished one at a time and in order, so the journal holds whole frames whenever a run
stops.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor


class FrameFinisher:
    """Runs ``finish(work, proba)`` for each classified frame on one finishing thread, or inline
    when ``threaded`` is false (``--workers 0``: each stage timed alone).

    At most ``ahead`` frames wait to be finished: a frame holds its crops until then, so the
    thread that submits waits (``waited`` seconds) rather than pile them up. Once a finish
    raises, the frames behind it are not finished, and the error is raised in the submitting
    thread at its next call; leaving the ``with`` block waits for the frames submitted.
    """

    def __init__(self, finish: Callable, threaded: bool, ahead: int = 4):
        self._finish = finish
        self._pool = (ThreadPoolExecutor(max_workers=1, thread_name_prefix="ctcnet-finish")
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
