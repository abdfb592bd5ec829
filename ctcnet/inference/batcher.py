"""Classification across frames: the crops of consecutive frames pooled into the model's
batches (:class:`CrossFrameBatcher`), so a frame of a few events does not cost a model call of
its own and a batch is full whatever the frames hold.

Each frame's crops go to the model as views of that frame's array; only a batch that spans two
frames is copied. The frames come back, in order, as soon as every one of their events has
probabilities, so their tables are written while later frames are still being classified.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable

import numpy as np

from ctcnet.inference.frames import FrameWork


class CrossFrameBatcher:
    """Pools the crops of consecutive frames into batches of ``batch_size`` for the model.

    ``add(work)`` queues a frame; ``ready(final)`` classifies whole batches (all that is left when
    ``final``) and returns the frames whose every event now has probabilities, in order.
    """

    def __init__(self, classify: Callable[[np.ndarray], np.ndarray], batch_size: int):
        self.classify = classify
        self.batch_size = max(1, int(batch_size))
        self.frames: deque[FrameWork] = deque()
        self.crops: list[np.ndarray] = []      # not yet classified, in frame order
        self.waiting = 0                       # crops queued but not classified
        self.proba: list[np.ndarray] = []      # classified, not yet handed back
        self.done = 0
        self.seconds = 0.0

    def add(self, work: FrameWork) -> None:
        """Queue a frame's crops (the model's view of them when it differs) behind the others."""
        self.frames.append(work)
        crops = work.crops if work.model_crops is None else work.model_crops
        if len(crops):
            self.crops.append(crops)
            self.waiting += len(crops)

    def ready(self, final: bool = False) -> list[tuple[FrameWork, np.ndarray]]:
        """Classify the whole batches waiting (everything when ``final``); returns the frames now
        complete, in order, each with its probabilities."""
        take = self.waiting if final else (self.waiting // self.batch_size) * self.batch_size
        if take:
            t0 = time.perf_counter()
            for batch in self._take(take):
                self.proba.append(self.classify(batch))
            self.seconds += time.perf_counter() - t0
            self.waiting -= take
            self.done += take
        out = []
        available = np.concatenate(self.proba) if len(self.proba) > 1 else \
            (self.proba[0] if self.proba else None)
        used = 0
        while self.frames:
            n = len(self.frames[0].events)
            if n > self.done - used:
                break
            work = self.frames.popleft()
            out.append((work, available[used:used + n] if n else None))
            used += n
        if used:
            rest = available[used:]
            self.proba = [rest] if len(rest) else []
            self.done -= used
        return out

    def _take(self, count: int) -> Iterable[np.ndarray]:
        """The first ``count`` queued crops, as model calls of whole batches where possible.

        A frame's crops go to the model as views of its own array; only a batch that spans two
        frames is copied (at most ``batch_size`` crops), never the whole pool.
        """
        size = self.batch_size
        while count > 0:
            head = self.crops[0]
            if len(head) >= min(size, count):  # straight from this frame's array
                n = min(count, len(head))
                n = (n // size) * size if n >= size else n
                batch = head[:n]
                self._drop(n)
            else:  # one batch across frames
                pieces, need = [], min(size, count)
                while need:
                    part = self.crops[0][:need]
                    pieces.append(part)
                    need -= len(part)
                    self._drop(len(part))
                batch = np.concatenate(pieces)
            count -= len(batch)
            yield batch

    def _drop(self, n: int) -> None:
        rest = self.crops[0][n:]
        if len(rest):
            self.crops[0] = rest
        else:
            self.crops.pop(0)


