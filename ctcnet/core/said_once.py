"""Warnings said once a process however often their cause is met: a run opens a cartridge
several times (its channels looked at, then checked, then read), reads a crop folder's index
more than once, and the review server reads a sample on every request. One set of what was
said, for the modules that say a warning once a process, guarded by a lock (frame threads
read a cartridge's frames side by side)."""

from __future__ import annotations

import threading
from collections.abc import Hashable

_SAID: set[Hashable] = set()
_LOCK = threading.Lock()
# A log record's attribute naming the key it was said once under (``extra=``): where a worker
# process says it, the process it reports to says it once too, not once a worker.
SAID_ONCE = "ctcnet_said_once"


def first_time(*key: Hashable) -> bool:
    """Whether ``key`` (what is said and of what: a module's own tag first, a path, a message)
    is met for the first time in this process; it is met from then on."""
    with _LOCK:
        if key in _SAID:
            return False
        _SAID.add(key)
        return True


def forget_said() -> None:
    """Forget what was said (a test, or a long-lived process that starts a new piece of work
    whose warnings must be said again)."""
    with _LOCK:
        _SAID.clear()
