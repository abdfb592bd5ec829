"""A cartridge's frames prepared beside the model (:func:`prepared_frames`): read, detected,
cropped and measured for the guard (:func:`ctcnet.inference.frames.prepare_frame`) in frame
threads or in frame processes, handed on in frame order, a few frames ahead of the classifier.

**Threads** share predict's interpreter: the heavy parts of a frame's work (decoding, numpy,
scipy) release its lock, the rest (pandas, the guard's per-event work, detection's Python)
holds it, as the model's and the finishing thread's Python does. **Processes** each have their
own interpreter: what a frame thread would hold the lock for runs beside the model's thread
instead of between its calls. A frame's results come back through shared memory
(:mod:`ctcnet.core.shared_pickle`): the worker writes its crops and the guard's starting arrays
once, predict's process maps them without a copy. The processes are spawned once for the
run (:mod:`ctcnet.inference.worker_processes`), kept for its later cartridges, and shut down
when predict's process ends; each frame's task carries what it needs (the cartridge, the
model's spec, detection's settings, the scan's leaks: some 20 KB). Once classified, a frame
prepared in a process is finished in one too (:func:`finished`: labels, the guard's flags, its
journal part), read from its slot, so that no frame work holds predict's own interpreter.

Frames on the model's GPU (a torch frame device) stay in threads: their dense work runs there.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import logging
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

import numpy as np

from ctcnet.core import shared_pickle
from ctcnet.core.ordered import ordered_map
from ctcnet.detect.detection import DetectConfig
from ctcnet.inference.finishing import Finishing, finish_frame
from ctcnet.inference.frames import FrameWork, prepare_frame
from ctcnet.inference.options import FRAME_POOLS
from ctcnet.inference.resources import cpu_cores
from ctcnet.inference.worker_processes import NoProcessPool, spawned_pool, starting_children
from ctcnet.io.scan import Cartridge, FrameRef
from ctcnet.nn.spec import ModelSpec

log = logging.getLogger(__name__)

POOLS = FRAME_POOLS
# "auto" prepares a cartridge's frames in processes on a machine of this many cores or more
# (a GPU server: there frame threads and the finishing thread take turns at one interpreter's
# lock, and most cores wait), from this many frames to prepare (or once the run's processes are
# started). On 2 cores processes gained at most 8 % for nearly twice the memory: 175 frames in
# 26.3, 25.5 and 26.3 s against 27.7, 27.7 and 25.5 s in threads (three benchmark runs, a pair
# in each; 25.8 against 27.2-28.7 s in two more pairs), peak 1,046-1,334 MB with the frame
# processes against 640 MB (each process its own interpreter and frame buffers: over the 1 GB
# a run is to stay under); 40 frames 6.5 against 6.1 s (the processes' start, about a second
# of imports while the model waits). So a 2-3 core machine keeps threads.
AUTO_PROCESS_CORES = 4
AUTO_PROCESS_FRAMES = 80
# ... and with room in /dev/shm for every slot of the ring at a crowded frame's results (a frame
# of 1384 x 1036 px with 290 events: about 40 MB). A container's /dev/shm is 64 MB unless it
# is given more: frames there go to threads (given processes anyway, each result that finds
# no room travels in its pickle).
AUTO_SLOT_BYTES = 100 << 20


@dataclass(frozen=True)
class FrameJob:
    """What every frame of a cartridge is prepared with, in a frame process."""

    cartridge: Cartridge
    spec: ModelSpec
    config: DetectConfig
    leaks: np.ndarray | None
    parent: int  # predict's process, which maps the results (their files are named for it)


def prepared_frames(frames: list[FrameRef], cartridge: Cartridge, spec: ModelSpec,
                    config: DetectConfig, device, leaks: np.ndarray | None, workers: int,
                    ahead: int, pool: str = "auto") -> Iterator[FrameWork]:
    """Each of ``frames`` prepared (:func:`~ctcnet.inference.frames.prepare_frame`), in their
    order, by ``workers`` frame threads or processes (``pool``: :data:`POOLS`; 0 workers:
    inline), at most ``ahead`` at work or waiting. Frames with a torch ``device`` are prepared
    in threads whatever ``pool`` says."""
    if frames_in_processes(pool, workers, device, len(frames)):
        yield from _in_processes(frames, FrameJob(cartridge, spec, config, leaks, os.getpid()),
                                 workers, ahead)
        return
    yield from ordered_map(lambda f: prepare_frame(f, cartridge, spec, config, device, leaks),
                           frames, workers, ahead, "ctcnet-frame")


def uses_processes(pool: str, workers: int, device=None, frames: int = 0,
                   cores: int | None = None) -> bool:
    """Whether ``frames`` frames are prepared in processes: with frame workers at all, on
    numpy (not a torch frame device), asked for, or ``auto`` on a machine of at least
    ``AUTO_PROCESS_CORES`` (``cores``, default this process's) with room in ``/dev/shm``
    and at least ``AUTO_PROCESS_FRAMES`` frames or the run's processes already started."""
    if pool not in POOLS:
        raise ValueError(f"frame pool {pool!r}: use one of {', '.join(POOLS)}")
    if pool == "threads" or workers <= 0 or device is not None:
        return False
    if pool == "processes":
        return True
    cores = cpu_cores() if cores is None else cores
    if workers in _pools:
        return cores >= AUTO_PROCESS_CORES
    return cores >= AUTO_PROCESS_CORES and frames >= AUTO_PROCESS_FRAMES and \
        shared_pickle.room() >= _slots(workers) * AUTO_SLOT_BYTES


def prepare_packed(job: FrameJob, task: tuple[FrameRef, str | None]
                   ) -> tuple[shared_pickle.Packed, float, str | None]:
    """In a frame process: one frame prepared and packed for predict's process (into the
    slot file given, if any), with the seconds packing took (its ``hand_off`` stage) and the
    slot it was given."""
    frame, slot = task
    work = prepare_frame(frame, job.cartridge, job.spec, job.config, None, job.leaks)
    t0 = time.perf_counter()
    start = work.guard_start
    if start is not None:  # a view of the crops: made again beside them (received)
        start.x = None
    return shared_pickle.pack(work, job.parent, slot), time.perf_counter() - t0, slot


def received(result: tuple[shared_pickle.Packed, float, str | None],
             ring: shared_pickle.SlotRing, workers: int) -> FrameWork:
    """A frame process's result in predict's process, its arrays viewing the shared memory;
    ``hand_off``: packing and mapping it."""
    t0 = time.perf_counter()
    packed, packing, slot = result
    if slot is not None and not packed.slot:  # packed elsewhere (no room): the slot is free
        ring.release(slot)
    work = _with_crop_view(ring.unpack(packed))
    if packed.slot:
        work.shared = (packed, workers)
    work.seconds["hand_off"] = packing + time.perf_counter() - t0
    return work


def _with_crop_view(work: FrameWork) -> FrameWork:
    start = work.guard_start
    if start is not None:
        (y0, y1), (x0, x1) = start.box
        start.x = work.crops[:, :, y0:y1, x0:x1]
    return work


def finished(job: Finishing, work: FrameWork, proba: np.ndarray) -> tuple[int, float, float]:
    """:func:`~ctcnet.inference.finishing.finish_frame` of a classified frame: in a frame
    process when the frame was prepared in one (its results still in their shared-memory
    slot, which the frame holds until this returns), so that finishing's Python runs beside
    the model's thread, several frames at once; here otherwise."""
    kept = _pools.get(work.shared[1]) if work.shared is not None else None
    if kept is None:
        return finish_frame(job, work, proba)
    with _said_if_broken(work.shared[1]):
        return kept[0].submit(_finish_shared, job, work.shared[0], proba).result()


def _finish_shared(job: Finishing, packed: shared_pickle.Packed, proba: np.ndarray
                   ) -> tuple[int, float, float]:
    """In a frame process: a frame another prepared, read from its slot, finished."""
    return finish_frame(job, _with_crop_view(shared_pickle.read_slot(packed)), proba)


@contextlib.contextmanager
def _said_if_broken(workers: int):
    """A frame process that died (the pool broken) said in one line, the pool let go: the
    next cartridge starts another. Said as the machine's state (a MemoryError: the command
    line's exit 4, a run stopped to be resumed, not a bug's traceback): the system's
    out-of-memory killer is what ends a frame process on a night's server."""
    try:
        yield
    except BrokenProcessPool as err:
        _drop_pool(workers)
        raise MemoryError("a frame process ended before its frame was done: killed, by the "
                          "system for want of memory or by hand; the frames done are "
                          "journaled") from err


def _in_processes(frames: list[FrameRef], job: FrameJob, workers: int, ahead: int
                  ) -> Iterator[FrameWork]:
    pool, ring = _pool(workers)
    # Each frame's slot taken when its task is submitted (ordered_map takes the next item only
    # when a place is free), and free again once its arrays are gone.
    tasks = ((frame, ring.acquire()) for frame in frames)
    with _said_if_broken(workers):
        for result in ordered_map(functools.partial(prepare_packed, job), tasks, workers,
                                  ahead, pool=pool):
            yield received(result, ring, workers)


# Frames whose results may be alive at once in predict's process: those ahead of the model,
# the ones the batcher and the finishing thread hold, and those at work. More take a file each.
SLOTS_PER_WORKER, SLOTS_BESIDE = 2, 6

_pools: dict[int, tuple] = {}
_pools_lock = threading.Lock()


def _slots(workers: int) -> int:
    return SLOTS_PER_WORKER * workers + SLOTS_BESIDE


def _pool(workers: int) -> tuple:
    """The run's pool of ``workers`` frame processes and the ring of shared-memory files their
    results come back in, started on first use (all at once, ignoring Ctrl-C) and kept for
    later cartridges."""
    with _pools_lock:
        kept = _pools.get(workers)
        if kept is not None:
            return kept
        sweep_killed_runs()
        pool = spawned_pool(workers, frame_buffers=True)
        try:
            # All started now, ignoring Ctrl-C (a spawned process starts within a submission),
            # not waited for: the first frames queue meanwhile.
            with starting_children():
                for _ in range(workers):
                    pool.submit(os.getpid)
            ring = shared_pickle.SlotRing(_slots(workers))
        except OSError as err:  # a process not started (a container's process limit, memory)
            pool.shutdown(wait=False, cancel_futures=True)
            raise NoProcessPool(err) from err
        _pools[workers] = (pool, ring)
        return pool, ring


def frames_in_processes(pool: str, workers: int, device=None, frames: int = 0) -> bool:
    """Whether ``frames`` frames are prepared in processes (:func:`uses_processes`), their
    pool started (:func:`_pool_started`: where none can be, threads)."""
    return uses_processes(pool, workers, device, frames) and _pool_started(workers)


def _pool_started(workers: int) -> bool:
    """Whether the frame processes run (:func:`_pool`); where they cannot be started, said once
    a run, and the frames are prepared in threads: the same results."""
    try:
        _pool(workers)
    except NoProcessPool as err:
        if workers not in _said_no_pool:
            _said_no_pool.add(workers)
            log.warning("frames prepared in threads, not in processes: %s (the same results; "
                        "give the machine's /dev/shm room, e.g. docker run --shm-size 1g)", err)
        return False
    return True


_said_no_pool: set[int] = set()


def _drop_pool(workers: int) -> None:
    with _pools_lock:
        kept = _pools.pop(workers, None)
    if kept is not None:
        kept[0].shutdown(wait=False, cancel_futures=True)
        kept[1].close()


@atexit.register
def _shut_down() -> None:
    """At exit: the frame processes ended, and any result never mapped freed."""
    with _pools_lock:
        pools = list(_pools.values())
        _pools.clear()
    for pool, ring in pools:
        pool.shutdown(wait=True, cancel_futures=True)
        ring.close()
    shared_pickle.sweep(os.getpid())


def sweep_killed_runs() -> None:
    """Remove the shared-memory files a run killed outright left (its frame processes' results
    in ``/dev/shm``, 100 MB and more): any run does, whether or not it uses frame processes."""
    removed = shared_pickle.sweep()
    if removed:
        log.info("removed %d shared-memory file(s) a killed run left", removed)
