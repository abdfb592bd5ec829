"""How predict starts its worker processes (the report process beside the next cartridge, the
frame processes beside the model): spawned, never forked (a fork would copy the model's and
the threads' state mid-use), each ignoring the Ctrl-C that reaches the whole process group
(predict's main process stops the run and shuts them down), with BLAS on one thread and freed
memory handed back (``ctcnet.inference.resources``), and each ending when predict's process
does, even when killed outright.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time

from ctcnet.inference.resources import (
    keep_frame_buffers,
    release_free_memory,
    single_threaded_blas,
)


def spawned_pool(workers: int, frame_buffers: bool = False):
    """A ``ProcessPoolExecutor`` of ``workers`` spawned processes started as this module says
    (:func:`start_worker`; ``frame_buffers``: for frame work). Its processes start with the
    first submissions: submit within :func:`children_ignore_interrupts`."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=start_worker, initargs=(os.getpid(), frame_buffers))


@contextlib.contextmanager
def children_ignore_interrupts():
    """Processes started within ignore SIGINT from their first instruction (a spawned child
    keeps an ignored signal ignored). A Ctrl-C reaches the terminal's whole process group:
    predict's main process stops the run and waits for the work it must finish (a report in
    progress), which a worker interrupted too would abandon with a traceback of its own."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


_blas_limit = None  # a worker process's BLAS limit, held for its life


def start_worker(parent: int, frame_buffers: bool = False) -> None:
    """A worker process starts as predict's main process runs: BLAS on one thread; freed
    memory handed back (a report's), or, with ``frame_buffers``, a frame's buffers kept for
    the next frame (``keep_frame_buffers``: handed back, each frame's 40-100 MB of arrays were
    faulted in afresh, and the kernel's time grew fourfold); and it ends when predict's process
    ``parent`` does (:func:`end_with_parent`). The parent's pid is handed over, not read here:
    a parent killed while this process still imports is gone by now, and its orphan's parent
    (init) would be watched for ever."""
    global _blas_limit
    import numpy  # noqa: F401 - its BLAS loaded first: a limit reaches only what is loaded

    _blas_limit = single_threaded_blas()
    if hasattr(_blas_limit, "__enter__"):
        _blas_limit.__enter__()
    if frame_buffers:
        keep_frame_buffers()
    else:
        release_free_memory()
    threading.Thread(target=end_with_parent, args=(parent,), daemon=True,
                     name="ctcnet-parent-watch").start()


def end_with_parent(parent: int, every_s: float = 1.0) -> None:
    """End this worker process once predict's process is gone. A worker never hears of a
    parent killed outright (the OOM killer, ``kill -9``) and would otherwise live on, holding
    its memory; its work is done again by the next run (the journal keeps what was done)."""
    while os.getppid() == parent:
        time.sleep(every_s)
    os._exit(1)
