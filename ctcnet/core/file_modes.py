"""The permissions of a file ctcnet makes: the umask's, and no more open than its folder's
(:func:`new_file_mode`), for the results' files and the runs' logs alike."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

_UMASK_LOCK = threading.Lock()


def _current_umask() -> int:
    """The process's umask. Reading it means setting it and back: two threads doing so at
    once could leave it at 0 (every later file world-writable), hence the lock."""
    with _UMASK_LOCK:
        umask = os.umask(0)
        os.umask(umask)
    return umask


def new_file_mode(path: str | Path) -> int:
    """A new file's permissions: 0666 less the umask, and no more open than its folder's
    (read and write bits; the owner's kept): a reviewer's umask of 022 made review.csv and
    the sign-off 0644 in a sample folder predict wrote 0750 under a lab's umask of 027."""
    mode = 0o666 & ~_current_umask()
    try:
        folder = stat.S_IMODE(os.stat(Path(path).parent).st_mode)
    except OSError:  # (its own write says why)
        return mode
    return mode & ((folder & 0o666) | 0o600)
