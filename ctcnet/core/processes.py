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
