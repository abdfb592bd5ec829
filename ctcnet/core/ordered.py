"""Work on threads, results in order: :func:`ordered_map`, the one way ctcnet overlaps work that
releases the GIL (decoding, numpy, scipy, PNG encoding) while keeping what it holds bounded; on
a pool of processes handed in, the same for work that holds it.

Frames read ahead of the classifier, the gallery's pages and the cells of a crop folder fitted to
their scale all pass through it: each item is taken from its iterable only when a thread is
free for it, so a generator of large items (a frame, a page of crops) never has more than
``ahead`` of them in memory at once.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


def ordered_map(work: Callable[[Item], Result], items: Iterable[Item], workers: int,
                ahead: int | None = None, name: str = "ctcnet",
                pool: Executor | None = None) -> Iterator[Result]:
    """Yield ``work(item)`` for each of ``items``, in their order, computed on ``workers``
    threads (or on ``pool``, an executor of ``workers`` the caller keeps: processes, where
    ``work`` and its items pickle), at most ``ahead`` items (default ``2 * workers``) at work
    or waiting beside the one whose result is being handed on.

    ``workers <= 0`` runs inline, one item after another (clean per-stage timings). An item's
    error is raised when its turn comes; the items not yet started are cancelled then, and
    when the caller stops early.
    """
    if workers <= 0:
        for item in items:
            yield work(item)
        return
    ahead = max(1, 2 * workers if ahead is None else ahead)
    if pool is not None:
        yield from _in_order(pool, work, items, ahead)
        return
    threads = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
    try:
        yield from _in_order(threads, work, items, ahead)
    finally:
        # Closed from one of its own threads (a generator let go there as a second Ctrl-C
        # unwinds the run), the pool cannot wait for itself: "cannot join current thread"
        # was printed as an ignored exception; its threads end with their items.
        threads.shutdown(wait=not threading.current_thread().name.startswith(f"{name}_"))


def _in_order(pool: Executor, work: Callable[[Item], Result], items: Iterable[Item],
              ahead: int) -> Iterator[Result]:
    it = iter(items)
    pending: deque[Future] = deque()
    try:
        for item in it:
            pending.append(pool.submit(work, item))
            if len(pending) >= ahead:
                break
        while pending:
            result = pending.popleft().result()
            for item in it:  # the next one, if any, takes the freed place
                pending.append(pool.submit(work, item))
                break
            yield result
    finally:
        for job in pending:
            job.cancel()
