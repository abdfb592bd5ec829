"""Whether a process of a given id runs on this machine: what tells a killed run's leftovers
(its shared-memory files, its share files, a run.json that still says ``running``) from those
of a run still at work."""

from __future__ import annotations

import os
from pathlib import Path


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


def process_start(pid: int) -> int | None:
    """When process ``pid`` started, in the kernel's clock ticks since boot (Linux's
    ``/proc/<pid>/stat``), with which a record tells its own process from a later one given
    the same id; None where the system does not say."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        # The name in parentheses may hold spaces: the fields after its closing one.
        return int(stat[stat.rindex(")") + 2:].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def recorded_process_alive(record: dict) -> bool | None:
    """Whether the process a record names (run.json's ``host``, ``pid`` and ``pid_started``)
    still runs: True or False on this machine; None where it was on another host, or names
    none (it cannot be asked from here). A process of that id started at another time is
    another's (an id used again on a node up for months, or a container's): a killed run read
    as one still writing its folder."""
    import socket

    pid = record.get("pid")
    if record.get("host") != socket.gethostname() or not isinstance(pid, int):
        return None
    started, now = record.get("pid_started"), process_start(pid)
    if isinstance(started, int) and now is not None and now != started:
        return False
    return process_running(pid)
