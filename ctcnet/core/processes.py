"""Whether a process of a given id runs on this machine: what tells a killed run's leftovers
(its shared-memory files, its share files, a run.json that still says ``running``) from those
of a run still at work."""

from __future__ import annotations

import os


def process_running(pid: int) -> bool:
    """Whether a process of id ``pid`` runs on this machine (another user's counts: signalling
    it is refused, but it is there)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # there, another user's
        return True
    return True


def recorded_process_alive(record: dict) -> bool | None:
    """Whether the process a record names (run.json's ``host`` and ``pid``) still runs: True
    or False on this machine; None where it was on another host, or names none (it cannot be
    asked from here)."""
    import socket

    pid = record.get("pid")
    if record.get("host") != socket.gethostname() or not isinstance(pid, int):
        return None
    return process_running(pid)
