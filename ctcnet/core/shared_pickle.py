"""Hand large results from a worker process to its parent without copying them through a pipe:
:func:`pack` pickles an object with its large buffers (numpy arrays' data) out of band, written
once into one file in shared memory (``/dev/shm``), and :func:`unpack` maps that file in the
parent, so the arrays it returns view the worker's pages.

A frame's crops and the guard's starting arrays are some 40-100 MB; pickled through a pipe they
would be copied four times (into the pickle, through the pipe, out of it, into the array) on the
parent's side of the interpreter lock. Here the worker writes each buffer once and the parent
maps it: no copy on its side.

A file of its own for each result is unlinked as soon as the parent has mapped it (the mapping
stays valid until the last array viewing it is gone). A stream of results (a cartridge's frames)
reuses a few files instead (:class:`SlotRing`): a fresh file's pages are allocated, zeroed and
faulted in on both sides for every result, which cost a 40 MB frame some 45 ms; a reused file's
pages are mapped already. Files whose parent died first are removed by :func:`sweep` (each
file's name carries its parent's process id). Where there is no ``/dev/shm`` (not Linux), or
no room left in it (a container's is 64 MB unless it is given more), the buffers travel in the
pickle instead: slower, the same objects. A file's pages are reserved before they are written
(``posix_fallocate``): written into a full ``/dev/shm`` through a mapping, they would kill the
writing process (SIGBUS) instead of raising an error.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import mmap
import os
import pickle
import threading
import uuid
import weakref
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ctcnet.core.processes import process_running

SHM_DIR = Path("/dev/shm")
PREFIX = "ctcnet-"
log = logging.getLogger(__name__)


def _pid_namespace() -> str:
    """This process's PID namespace as a file name's field (``n`` and the inode of
    ``/proc/self/ns/pid``; "" where it cannot be read): containers sharing one /dev/shm
    (``docker run --ipc=host``) number their processes apart, so a file's process id is read
    only in the namespace that wrote it (a second container's run swept a live run's files
    as a killed run's, and that run failed on the next frame)."""
    try:
        return f"n{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:
        return ""


NAMESPACE = _pid_namespace()


def _file_name(pid: int) -> str:
    """A new shared-memory file's name: ``ctcnet-<pid>-<namespace>-<random>``."""
    return f"{PREFIX}{pid}-{NAMESPACE + '-' if NAMESPACE else ''}{uuid.uuid4().hex}"

# Buffers under this size travel in the pickle: a file's mapping costs more than copying them.
OUT_OF_BAND_BYTES = 1 << 16
# Each buffer starts on a cache line in the file (aligned arrays for numpy's fast paths).
ALIGN = 64


@dataclass(frozen=True)
class Packed:
    """A pickled object and, when it had large buffers, the shared-memory file holding them."""

    data: bytes
    path: str | None = None
    spans: tuple[tuple[int, int], ...] = ()   # (offset, length) of each buffer in the file
    slot: bool = False  # the file is a SlotRing's, reused: not unlinked when unpacked


def pack(obj, parent_pid: int | None = None, slot: str | None = None) -> Packed:
    """``obj`` pickled for :func:`unpack` in the process ``parent_pid`` (default: this one's
    parent), its buffers of at least ``OUT_OF_BAND_BYTES`` in one file in ``/dev/shm``: the
    :class:`SlotRing` file ``slot`` when given (grown if too small), else a new one."""
    buffers: list[pickle.PickleBuffer] = []

    def out_of_band(buf: pickle.PickleBuffer) -> bool:
        # True keeps a buffer in the pickle; a non-contiguous one cannot leave it.
        raw = buf.raw() if _contiguous(buf) else None
        if raw is None or raw.nbytes < OUT_OF_BAND_BYTES:
            return True
        buffers.append(buf)
        return False

    if not SHM_DIR.is_dir():
        return Packed(pickle.dumps(obj, protocol=5))
    data = pickle.dumps(obj, protocol=5, buffer_callback=out_of_band)
    if not buffers:
        return Packed(data)
    spans, offset = [], 0
    for buf in buffers:
        spans.append((offset, buf.raw().nbytes))
        offset += -(-buf.raw().nbytes // ALIGN) * ALIGN
    try:
        if slot is not None:
            _write_slot(slot, buffers, spans, offset)
            return Packed(data, slot, tuple(spans), slot=True)
        pid = os.getppid() if parent_pid is None else parent_pid
        return Packed(data, _write_file(SHM_DIR / _file_name(pid), buffers, spans, offset),
                      tuple(spans))
    except OSError as err:
        if err.errno not in (errno.ENOSPC, errno.ENOMEM):
            raise
        log.debug("no room in %s for %d bytes: the result travels in its pickle", SHM_DIR,
                  offset)
        return Packed(pickle.dumps(obj, protocol=5))


def _private_file(path: str | Path) -> int:
    """A new file at ``path`` that only this user may read (0600, whatever the umask: its
    pages are patients' crops, and /dev/shm is every local user's), never one that was
    there or a link; its descriptor."""
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0),
                   0o600)


def _write_file(path: Path, buffers: list, spans: list, size: int) -> str:
    """Write ``buffers`` at ``spans`` into a new file ``path`` of ``size`` bytes, its pages
    reserved first; returns its name (removed again if the writing fails)."""
    try:
        with os.fdopen(_private_file(path), "w+b") as fh:
            _reserve(fh.fileno(), max(size, 1))
            with mmap.mmap(fh.fileno(), max(size, 1)) as m:
                _copy_into(m, buffers, spans)
    except BaseException:
        with contextlib.suppress(OSError):
            path.unlink()
        raise
    return str(path)


def _reserve(fd: int, size: int) -> None:
    """Allocate the first ``size`` bytes of the file ``fd`` (ENOSPC now, not SIGBUS later)."""
    if hasattr(os, "posix_fallocate"):
        os.posix_fallocate(fd, 0, size)
    elif os.fstat(fd).st_size < size:
        os.ftruncate(fd, size)


def _copy_into(mapped: mmap.mmap, buffers: list, spans: list) -> None:
    for buf, (start, length) in zip(buffers, spans):
        mapped[start:start + length] = buf.raw()


def _loads(packed: Packed, buffer):
    """:func:`pack`'s object, its buffers taken at their spans of ``buffer`` (the file's
    mapping, or an array viewing it)."""
    return pickle.loads(packed.data, buffers=[buffer[start:start + length]
                                              for start, length in packed.spans])


def _mapping(cache: dict[str, mmap.mmap], path: str, size: int,
             grow: bool = False) -> mmap.mmap:
    """The file ``path`` mapped whole, kept in ``cache`` for the next result there and mapped
    again once it has grown past ``size`` bytes (``grow``: grown here first, if smaller)."""
    mapped = cache.get(path)
    if mapped is None or len(mapped) < size:
        with open(path, "r+b") as fh:  # a SlotRing's file
            if grow and os.fstat(fh.fileno()).st_size < size:
                _reserve(fh.fileno(), size)
            mapped = cache[path] = mmap.mmap(fh.fileno(), 0)
    return mapped


def _end(packed: Packed) -> int:
    return packed.spans[-1][0] + packed.spans[-1][1]


_slot_maps: dict[str, mmap.mmap] = {}  # a worker's mappings of the slot files it uses


def _write_slot(path: str, buffers: list, spans: list, size: int) -> None:
    """Write ``buffers`` at ``spans`` into the slot file ``path``, through a mapping kept for
    the next result written there."""
    _copy_into(_mapping(_slot_maps, path, size, grow=True), buffers, spans)


def read_slot(packed: Packed):
    """The object of a result packed into a slot, read in a process other than the ring's
    owner (a worker finishing what another wrote): its arrays view the slot file, mapped here.
    The ring's owner keeps the slot taken meanwhile."""
    return _loads(packed, memoryview(_mapping(_slot_maps, packed.path, _end(packed))))


class SlotRing:
    """A few shared-memory files reused by a stream of results: :meth:`acquire` a free one
    for a task (None: all in use, the task packs into a file of its own), :func:`pack` there
    in the worker, :meth:`unpack` here; the slot is free again once every array of its result
    is gone. :meth:`close` unlinks the files (mappings still in use stay valid)."""

    def __init__(self, slots: int):
        self._lock = threading.Lock()
        self._free: list[str] = []
        self._paths: list[str] = []
        self._maps: dict[str, mmap.mmap] = {}
        if not SHM_DIR.is_dir():
            return
        for _ in range(slots):
            path = str(SHM_DIR / _file_name(os.getpid()))
            os.close(_private_file(path))
            self._paths.append(path)
        self._free = list(self._paths)

    def acquire(self) -> str | None:
        """A free slot's file, now in use; None when every one is."""
        with self._lock:
            return self._free.pop() if self._free else None

    def release(self, path: str | None) -> None:
        """The slot ``path`` free again (None: none was taken)."""
        if path is not None:
            with self._lock:
                if path in self._paths and path not in self._free:
                    self._free.append(path)

    def unpack(self, packed: Packed):
        """:func:`unpack`, for results in this ring's files too."""
        if not packed.slot:
            return unpack(packed)
        with self._lock:
            mapped = _mapping(self._maps, packed.path, _end(packed))
        # One holder per result: the slot is free once it and every array viewing it are gone.
        holder = np.frombuffer(mapped, np.uint8, count=_end(packed))
        weakref.finalize(holder, self.release, packed.path)
        return _loads(packed, holder)

    def close(self) -> None:
        """Unlink the ring's files (what still views them stays valid until it is gone)."""
        with self._lock:
            paths, self._paths, self._free = self._paths, [], []
            self._maps.clear()
        for path in paths:
            with contextlib.suppress(OSError):
                os.unlink(path)

    def __enter__(self) -> SlotRing:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def unpack(packed: Packed):
    """The object :func:`pack` pickled; its large arrays view the shared-memory file, which is
    unlinked here (its pages are freed when the last of them is)."""
    if packed.path is None:
        return pickle.loads(packed.data)
    try:
        with open(packed.path, "r+b") as fh:
            mapped = mmap.mmap(fh.fileno(), 0)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(packed.path)
    return _loads(packed, memoryview(mapped))


def room() -> int:
    """Bytes free in ``/dev/shm`` (0 where there is none)."""
    try:
        fs = os.statvfs(SHM_DIR)
    except OSError:
        return 0
    return fs.f_bavail * fs.f_frsize


def sweep(pid: int | None = None) -> int:
    """Remove the shared-memory files packed for ``pid`` (default: any process no longer
    running), e.g. those of a run that was killed; returns how many. Only this PID
    namespace's (:func:`_pid_namespace`) and those named before namespaces were."""
    if not SHM_DIR.is_dir():
        return 0
    removed = 0
    for path in SHM_DIR.glob(f"{PREFIX}*-*"):
        owner, _, rest = path.name[len(PREFIX):].partition("-")
        space = rest.split("-", 1)[0] if rest.count("-") else ""
        if not owner.isdigit() or (space.startswith("n") and space != NAMESPACE):
            continue
        if (int(owner) == pid) if pid is not None else not process_running(int(owner)):
            with contextlib.suppress(OSError):
                path.unlink()
                removed += 1
    return removed


def _contiguous(buf: pickle.PickleBuffer) -> bool:
    with memoryview(buf) as view:
        return view.c_contiguous or view.f_contiguous
