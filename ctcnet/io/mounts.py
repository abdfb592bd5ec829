"""Shares not mounted: a mount point the system's table of file systems names, with nothing
mounted there, is an empty folder on the local disk. An ``--out`` under one writes to the local
disk, and a scan share read through one reads as a night without scans; both are said.
"""

from __future__ import annotations

import os
from pathlib import Path

FSTAB = Path("/etc/fstab")


def fstab_mount_points() -> set[str]:
    """The mount points the system's table of file systems names (none where it has none)."""
    try:
        lines = FSTAB.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return set()
    fields = (line.split() for line in lines if line.strip() and not line.lstrip().startswith("#"))
    # fstab writes a space in a path as \040, and may end a mount point with a slash
    return {os.path.normpath(f[1].replace("\\040", " ")) for f in fields
            if len(f) > 1 and f[1].startswith("/")}


def unmounted_above(path: Path) -> Path | None:
    """The mount point the system's table names at or above ``path`` (through links too) with
    nothing mounted there, or None: a share not mounted leaves an empty folder."""
    whole = Path(path).absolute()
    real, mounts = Path(os.path.realpath(whole)), fstab_mount_points()
    return next((p for p in (whole, *whole.parents, real, *real.parents)
                 if str(p) in mounts and str(p) != "/" and not os.path.ismount(p)), None)
