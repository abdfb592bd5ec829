"""An array kept in a temporary file instead of memory, written and read a slice of rows at a
time.

A crop folder of tens of thousands of crops, brought to model scale, is gigabytes of float32
(0.13 MB a five-channel 80 px crop): held whole, with the network's and the guard's copies,
100,000 crops outgrow a 24 GB workstation. Spilled to a file, a run holds one slice at a time,
and the rows read again later (the crops a check looks at once more, a page's tiles) are read
as they are indexed (``spilled[rows]``), into memory of their own: a memory map would keep
every page it touched, and its read-ahead pages round them, counted in the process's memory.

The file is made in a folder the caller names (an output folder: ``/tmp`` is often memory
itself) as an unnamed temporary file, so a run that is killed leaves nothing behind; a folder
without room for it is refused before anything is written.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ctcnet.errors import InputError


def size_text(n_bytes: int) -> str:
    """A size of disk room in words, as the room checks say it: GB from 1 GB, MB below
    (31 MB, not "0.0 GB")."""
    return f"{n_bytes / 1e9:.1f} GB" if n_bytes >= 1e9 else f"{max(n_bytes / 1e6, 0.1):.1f} MB"


class SpilledArray:
    """A (N, ...) array of ``dtype`` in an unnamed temporary file in ``folder``.

    Use as a context manager (the file is closed, and so gone, on exit)::

        with SpilledArray((n, c, s, s), np.float32, out_dir) as crops:
            crops.write(0, first_rows)
            part = crops.read(0, 100)      # a writable in-memory copy
            some = crops[[3, 5, 90]]       # rows by index, as an array gives them
    """

    def __init__(self, shape: tuple[int, ...], dtype, folder: str | Path):
        self.shape, self.dtype = tuple(int(s) for s in shape), np.dtype(dtype)
        self._row_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize
        # Said before any work, not as a failed write halfway (the file is sparse until
        # written, so nothing is reserved by making it).
        needed, free = self.shape[0] * self._row_bytes, shutil.disk_usage(folder).free
        if needed > free:
            raise InputError(f"{size_text(needed)} are needed here for the crops at model "
                             f"scale while they are classified, {size_text(free)} are free",
                             folder)
        self._file = tempfile.TemporaryFile(dir=folder, prefix=".ctcnet-spill-")
        self._file.truncate(self.shape[0] * self._row_bytes)
        self._lock = threading.Lock()  # one file position: a seek and its read go together

    def __len__(self) -> int:
        return self.shape[0]

    def __enter__(self) -> SpilledArray:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Close the file (it was never named: nothing is left on disk)."""
        self._file.close()

    def write(self, start: int, rows: np.ndarray) -> None:
        """Store ``rows`` (n, ...) as rows ``start`` to ``start + n``."""
        rows = np.ascontiguousarray(rows, self.dtype)
        if rows.shape[1:] != self.shape[1:] or start < 0 or start + len(rows) > len(self):
            raise ValueError(f"rows {start}..{start + len(rows)} of shape {rows.shape[1:]} do "
                             f"not fit a spilled array of shape {self.shape}")
        with self._lock:
            self._file.seek(start * self._row_bytes)
            self._file.write(rows.data.cast("B"))
            self._file.flush()  # reads go round the writer's buffer

    def read(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start`` to ``stop`` as a new, writable in-memory array."""
        stop = min(stop, len(self))
        out = np.empty((max(stop - start, 0), *self.shape[1:]), self.dtype)
        with self._lock:
            self._file.seek(start * self._row_bytes)
            got = self._file.readinto(out.data.cast("B")) if out.size else 0
        if got != out.nbytes:
            raise OSError("a spilled array's file is shorter than was written")
        return out

    def chunks(self, size: int) -> Iterator[tuple[int, np.ndarray]]:
        """(start, rows) ``size`` rows at a time, in order."""
        for start in range(0, len(self), size):
            yield start, self.read(start, start + size)

    def __getitem__(self, key) -> np.ndarray:
        """Rows as a new in-memory array: a slice, an index or an array of indices (or a
        mask), each run of consecutive rows read at once."""
        if isinstance(key, slice) and key.step in (None, 1):
            start, stop, _ = key.indices(len(self))
            return self.read(start, stop)
        ids = np.arange(len(self))[key]  # numpy's own indexing rules and errors
        if ids.ndim == 0:
            return self.read(int(ids), int(ids) + 1)[0]
        out = np.empty((len(ids), *self.shape[1:]), self.dtype)
        order = np.argsort(ids, kind="stable")
        ordered = ids[order]
        for run in np.split(np.arange(len(ids)), np.flatnonzero(np.diff(ordered) != 1) + 1):
            if len(run):
                first = int(ordered[run[0]])
                out[order[run]] = self.read(first, first + len(run))
        return out

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        # Read whole where code asks for an array: right, if not light.
        whole = self.read(0, len(self))
        return whole if dtype is None else whole.astype(dtype, copy=False)
