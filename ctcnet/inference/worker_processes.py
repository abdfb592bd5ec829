"""How predict starts its worker processes (the report process beside the next cartridge, the
frame processes beside the model): spawned, never forked (a fork would copy the model's and
the threads' state mid-use), each ignoring the Ctrl-C that reaches the whole process group
(predict's main process stops the run and shuts them down; the report worker the SIGTERM a job
scheduler sends it too) and not running the caller's main
script again (:func:`starting_children`), with BLAS on one thread and freed memory handed
back (``ctcnet.inference.resources``), their log records sent back to predict's loggers (the
run's log file, the console at its level), and each ending when predict's process does, even
when killed outright.
"""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import os
import signal
import sys
import threading
import time
import types

from ctcnet.core.run_log import before_closing
from ctcnet.core.said_once import SAID_ONCE, first_time
from ctcnet.inference.resources import (
    keep_frame_buffers,
    release_free_memory,
    single_threaded_blas,
)


class NoProcessPool(Exception):
    """Worker processes that cannot be started: their pool's locks are made in ``/dev/shm``,
    which may be full, read-only or not writable here (a container's is 64 MB, often shared),
    and a process may not start (a container's process limit, memory)."""

    def __init__(self, err: OSError):
        super().__init__(f"{err.strerror or err} starting worker processes (their pool's "
                         "locks are made in /dev/shm)")


def spawned_pool(workers: int, frame_buffers: bool = False):
    """A ``ProcessPoolExecutor`` of ``workers`` spawned processes started as this module says
    (:func:`start_worker`; ``frame_buffers``: for frame work). Its processes start with the
    first submissions: submit within :func:`starting_children`. :class:`NoProcessPool` where
    its locks cannot be made (the caller works in threads instead: the same results)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    context = multiprocessing.get_context("spawn")
    try:
        return ProcessPoolExecutor(workers, mp_context=context, initializer=start_worker,
                                   initargs=(os.getpid(), frame_buffers, _log_queue(context),
                                             logging.getLogger("ctcnet").getEffectiveLevel()))
    except OSError as err:  # (a night's batch stopped on it, said as the temporary folder)
        raise NoProcessPool(err) from err


# Where the workers' log records come back to this process (one queue and its listener for
# the life of the process): without it, a frame process's warnings (an 8-bit frame, a
# background subtracted) went to its bare stderr, past --quiet, and never into the run's log.
_LOGGED_BACK: dict = {}
_RELOGGED = ("ctcnet", "tifffile")  # the loggers a worker sends back (tifffile: ctcnet's own)


class _Relogged(logging.Handler):
    """A worker's record handed to the logger of its name here: the run's log file and the
    console take it, at their own levels, as they take this process's. One said once a
    process (``SAID_ONCE``) is said once here, not once a worker."""

    def __init__(self):
        super().__init__()
        self.busy = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        with self.busy:
            key = getattr(record, SAID_ONCE, None)
            if key is None or first_time(*key):  # (as this process's own, said or not)
                logging.getLogger(record.name).handle(record)


def _log_queue(context):
    """The queue the workers log into, read by a listener thread of this process (each run's
    log waits for what is on its way before it closes: :func:`_drain_logs`)."""
    if "queue" not in _LOGGED_BACK:
        queue = context.Queue()
        relogged = _Relogged()
        listener = logging.handlers.QueueListener(queue, relogged)
        listener.start()  # (a daemon thread)
        _LOGGED_BACK.update(queue=queue, listener=listener, relogged=relogged)
        before_closing(_drain_logs)
    return _LOGGED_BACK["queue"]


def _drain_logs(settle_s: float = 0.05, limit_s: float = 2.0) -> None:
    """Wait until the workers' records on their way are handed on (the queue empty and its
    listener idle for ``settle_s``, at most ``limit_s``): a worker's last warning missed the
    run's log file 17 times in 40 closed at once."""
    queue, relogged = _LOGGED_BACK.get("queue"), _LOGGED_BACK.get("relogged")
    if queue is None:
        return
    end, quiet_since = time.monotonic() + limit_s, None
    while time.monotonic() < end:
        idle = queue.empty() and relogged.busy.acquire(blocking=False)
        if idle:
            relogged.busy.release()
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since >= settle_s:
                return
        else:
            quiet_since = None
        time.sleep(0.005)


@contextlib.contextmanager
def starting_children(outlive_sigterm: bool = False):
    """Processes spawned within ignore SIGINT from their first instruction, and do not run the
    caller's main script again. ``outlive_sigterm``: a report worker's, which also ignores
    SIGTERM and SIGHUP (a closed terminal's). Meanwhile the signals are held
    (:func:`_signals_held`), not ignored: the parent loses none.

    A Ctrl-C reaches the terminal's whole process group: predict's main process stops the run
    and waits for the work it must finish (a report in progress), which a worker interrupted
    too would abandon with a traceback of its own. A spawned child runs the parent's main
    script again (as ``__mp_main__``) before its work, unless the script keeps its work under
    ``if __name__ == "__main__":``; a script calling ``predict_cartridge`` at its top level
    would then predict again in every child, and each child fail. A worker needs nothing of
    the script (its work is ctcnet's), so the children are started with no main script to
    run: ``__main__`` stands aside meanwhile."""
    hidden = _main_set_aside()
    try:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        with _signals_held((signal.SIGINT, *_STOPPING) if outlive_sigterm else
                           (signal.SIGINT,)):
            yield
    finally:
        if hidden is not None:
            sys.modules["__main__"] = hidden


# What stops a run besides a Ctrl-C (ctcnet.commands.stop_signals): a scheduler's SIGTERM, a
# closed terminal's SIGHUP. A report worker outlives both (predict finishes its report).
_STOPPING = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP")
                  if hasattr(signal, name))


@contextlib.contextmanager
def _signals_held(signals: tuple):
    """``signals`` blocked in this (the main) thread for the block and noted, not handled,
    wherever another thread takes them; raised again as the block ends, in the order they
    came (the first stops the run: those after it add nothing). Not nested.

    A child spawned within starts with them blocked (a signal mask survives fork and exec), so
    one sent to the process group while the child still imports stays pending until the child
    ignores it (:func:`start_worker`). The parent's: ignored for the block, a Ctrl-C was lost
    and the run went on to exit 0; blocked in this thread alone, another thread (the model's,
    a frame's) took a SIGTERM and the main thread raised it halfway through the child's start,
    which broke the pool under the report it promised to finish."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    noted: list[int] = []
    previous = {s: signal.signal(s, lambda signum, _frame: noted.append(signum))
                for s in signals}
    signal.pthread_sigmask(signal.SIG_BLOCK, set(signals))
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, set(signals))  # (pending ones noted here)
        for s, handler in previous.items():
            signal.signal(s, handler)
        for s in dict.fromkeys(noted):
            signal.raise_signal(s)


def _main_set_aside():
    """Put a bare module in ``sys.modules["__main__"]`` (what a spawned child reads to find
    the main script to run) and return the real one, or None when it is not a script."""
    main = sys.modules.get("__main__")
    if main is None or getattr(main, "__file__", None) is None:
        return None
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name.split(".")[-1] == "__main__":
        return None  # ``python -m package``: multiprocessing runs no package __main__ again
    sys.modules["__main__"] = types.ModuleType("__main__")
    return main


_blas_limit = None  # a worker process's BLAS limit, held for its life


def start_worker(parent: int, frame_buffers: bool = False, log_queue=None,
                 log_level: int = logging.WARNING) -> None:
    """A worker process starts as predict's main process runs: BLAS on one thread; freed
    memory handed back (a report's), or, with ``frame_buffers``, a frame's buffers kept for
    the next frame (``keep_frame_buffers``: handed back, each frame's 40-100 MB of arrays were
    faulted in afresh, and the kernel's time grew fourfold); and it ends when predict's process
    ``parent`` does (:func:`end_with_parent`). The parent's pid is handed over, not read here:
    a parent killed while this process still imports is gone by now, and its orphan's parent
    (init) would be watched for ever. Its log records (``log_level`` and up) go back to
    predict's process through ``log_queue``."""
    global _blas_limit
    if log_queue is not None:
        # (a worker killed while it held the queue's lock left the others' senders waiting,
        # and their exit waited on them: records then may be lost, never the run's end)
        log_queue.cancel_join_thread()
        for name in _RELOGGED:
            logger = logging.getLogger(name)
            logger.handlers[:] = [logging.handlers.QueueHandler(log_queue)]
            logger.setLevel(log_level if name == "ctcnet" else logging.NOTSET)
            logger.propagate = False
    import numpy  # noqa: F401 - its BLAS loaded first: a limit reaches only what is loaded

    # A job scheduler stops a job with a SIGTERM to its whole process group (SLURM, a
    # container's stop): predict's main process finishes the report in hand and shuts its
    # worker down, so the report worker ends by that, not by the signal (which would break
    # the pool under the report it was drawing); it was spawned with SIGTERM blocked
    # (starting_children), a signal sent meanwhile pending, dropped once ignored. One
    # abandoned is killed (ReportWorker.close). Frame workers end with the signal: their
    # frames are journaled, and the run stops without their results.
    # A Ctrl-C is the main process's to act on (starting_children): ignored here, and, held
    # while this process started, dropped once ignored.
    if hasattr(signal, "pthread_sigmask"):
        ignored = {signal.SIGINT} if frame_buffers else {signal.SIGINT, *_STOPPING}
        for s in ignored:
            signal.signal(s, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, ignored)

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
