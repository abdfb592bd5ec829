"""Tiles the review server cuts from a cartridge's frames: on demand, one at a time, kept.

A reviewer moving quickly through the list asks for many tiles and looks at the last one, so:

* a tile is cut only when a page asks for it, and kept (the latest ``TILES_KEPT``), so
  moving back shows it at once;
* one tile is cut at a time (a frame read and a tile drawn per cut, on a small CPU), and a
  request whose client went away while it waited (the page moved on and cancelled it) is
  dropped rather than cut (:class:`ClientGone`);
* the cartridge is opened once per run and its last ``FRAMES_KEPT`` frames are kept: the
  list runs in scan order within each of its ranks (``ctcnet.report.reasons.review_rank``),
  so neighbouring events mostly share frames;
* a frame whose pixels are not those predict read (changed since: its summary's
  ``frame_digests``) gives no tile but the reason;
* idle time cuts the tiles asked for ahead (:meth:`TileCutter.prefetch`: the first tiles of a
  sample when the server starts, the next ones after each tile served); a request never waits
  for more than the one cut in progress.
"""

from __future__ import annotations

import logging
import select
import socket
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable

import numpy as np
import pandas as pd

from ctcnet.errors import CtcnetError
from ctcnet.exports.event_crops import (
    cut_event_crops,
    open_scanned_cartridge,
    read_as_predicted,
)
from ctcnet.inference.summary import RunSummary
from ctcnet.io.scan import Cartridge

log = logging.getLogger(__name__)

FRAMES_KEPT = 3    # a CellSearch frame is ~28 MB as float32
TILES_KEPT = 256   # PNGs of 20-60 kB


class ClientGone(Exception):
    """The page that asked for a tile went away (moved on, closed) before it was cut."""


def client_connected(sock: socket.socket) -> bool:
    """Whether the client of a request is still there: after its request it sends nothing
    until it has the answer, so a socket with something to read has been closed (or reset)
    by the client, unless what is there is a further request. In doubt: connected (a tile
    cut for nobody costs less than one refused to somebody)."""
    try:
        # A look without waiting: select first (a socket with a timeout would wait that long
        # in recv for data that is not there, even asked not to), then a peek at what is there.
        readable, _, _ = select.select([sock], [], [], 0)
        return not readable or bool(sock.recv(1, socket.MSG_PEEK))
    except (BlockingIOError, InterruptedError):  # nothing to read: still waiting
        return True
    except (ConnectionError, TimeoutError):  # reset by the client
        return False
    except (OSError, ValueError):
        return True


class FrameSource:
    """The cartridge a run read, opened on first use (listing a cartridge reads a little of
    every frame file), and its last frames read."""

    def __init__(self, summary: RunSummary, scans=None, kept: int = FRAMES_KEPT):
        self.summary, self.scans, self.kept = summary, scans, kept
        self._cartridge: Cartridge | None = None
        self._frames: OrderedDict[int, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def cartridge(self) -> Cartridge:
        """The run's cartridge, opened on the first call (thread-safe)."""
        with self._lock:
            if self._cartridge is None:
                self._cartridge = open_scanned_cartridge(self.summary, self.scans)
            return self._cartridge

    def read(self, frame) -> np.ndarray:
        """The pixels of ``frame``, from the frames kept or read and kept (the oldest dropped);
        refused (InputError) when they are not the pixels predict read (its summary's
        ``frame_digests``)."""
        with self._lock:
            pixels = self._frames.get(frame.index)
            if pixels is not None:
                self._frames.move_to_end(frame.index)
                return pixels
        # The frame as predict read it, or no tile.
        pixels = read_as_predicted(self.cartridge(), frame, self.summary.frame_digests,
                                   ": its tiles would show other pixels than those called; "
                                   "restore it, or predict the scan again")
        with self._lock:
            self._frames[frame.index] = pixels
            while len(self._frames) > self.kept:
                self._frames.popitem(last=False)
        return pixels

    def cut(self, events: pd.DataFrame, crop_size: int, model_pixel_um: float) -> np.ndarray:
        """Crops of ``events`` as predict cut them (:func:`cut_event_crops`)."""
        return cut_event_crops(self.cartridge(), events, crop_size, model_pixel_um, self.read)


class TileCutter:
    """Cuts tiles one at a time and keeps the latest; see the module's notes."""

    def __init__(self, kept: int = TILES_KEPT):
        self.kept = kept
        self._tiles: OrderedDict[Hashable, bytes] = OrderedDict()
        self._cutting = threading.Lock()     # one cut at a time
        self._state = threading.Condition()  # guards the tiles kept, the queue, the waiting
        self._waiting = 0                    # requests waiting to cut: prefetch gives way
        self._queue: deque[tuple[Hashable, Callable[[], bytes]]] = deque()
        self._worker: threading.Thread | None = None
        self._closed = False

    def cached(self, key: Hashable) -> bytes | None:
        """The tile kept under ``key`` (marked as used latest), or None."""
        with self._state:
            data = self._tiles.get(key)
            if data is not None:
                self._tiles.move_to_end(key)
            return data

    def _keep(self, key: Hashable, data: bytes) -> None:
        with self._state:
            self._tiles[key] = data
            while len(self._tiles) > self.kept:
                self._tiles.popitem(last=False)

    def get(self, key: Hashable, cut: Callable[[], bytes],
            wanted: Callable[[], bool] = lambda: True) -> bytes:
        """The tile ``key``: kept, or cut by ``cut()`` once the cut in progress is done; when
        ``wanted()`` says the client went away meanwhile, ClientGone instead of a cut."""
        data = self.cached(key)
        if data is not None:
            return data
        with self._state:
            self._waiting += 1
        try:
            with self._cutting:
                data = self.cached(key)
                if data is not None:
                    return data
                if not wanted():
                    raise ClientGone(key)
                data = cut()
                self._keep(key, data)
                return data
        finally:
            with self._state:
                self._waiting -= 1
                self._state.notify_all()

    def prefetch(self, jobs: list[tuple[Hashable, Callable[[], bytes]]]) -> None:
        """Cut these tiles when idle, in order; replaces what was asked ahead before (the
        reviewer has moved on from it)."""
        with self._state:
            if self._closed:
                return
            self._queue = deque((k, cut) for k, cut in jobs if k not in self._tiles)
            if self._worker is None:
                self._worker = threading.Thread(target=self._work, name="ctcnet-tiles",
                                                daemon=True)
                self._worker.start()
            self._state.notify_all()

    def close(self, timeout: float = 30.0) -> None:
        """Nothing more cut ahead; waits for the cut in progress (a process that exits while
        a thread is inside torch can abort)."""
        with self._state:
            self._closed = True
            self._queue.clear()
            self._state.notify_all()
            worker = self._worker
        if worker is not None:
            worker.join(timeout)

    def _next_job(self) -> tuple[Hashable, Callable[[], bytes]] | None:
        with self._state:
            while not self._closed and (not self._queue or self._waiting):
                self._state.wait()
            return None if self._closed else self._queue.popleft()

    def _work(self) -> None:
        while True:
            job = self._next_job()
            if job is None:
                return
            key, cut = job
            try:
                self.get(key, cut)
            except (CtcnetError, OSError, LookupError, ValueError) as err:
                # The page will ask for it and get the error itself.
                log.debug("tile %s not cut ahead: %s", key, err)
            except Exception:  # a bug: logged, and the server goes on
                log.exception("tile %s not cut ahead", key)
