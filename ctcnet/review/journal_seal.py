"""What a decision journal held when ctcnet last wrote it: its size and SHA-256.

A journal (review.csv, review-second.csv) only grows: every decision is a line appended. After
each write ctcnet keeps the file's seal beside it (``.<journal>.seal``, hidden), and a sign-off
keeps the seal of the journals it signed. A journal whose first sealed bytes changed, or that
is shorter than its last seal (lines removed, or cut back to what a sign-off saw), was changed
other than by ctcnet (:func:`changed_since`). A person who rewrites the journal and its seals
consistently is not caught: that is for the file system's permissions. No decision or
sign-off is recorded on a journal changed so (:func:`check_as_sealed`): its seal written after
them would take the change in as ctcnet's own.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ctcnet.errors import CtcnetError
from ctcnet.io.atomic import atomic_write_text


class JournalEdited(CtcnetError):
    """A journal no longer holds what ctcnet last wrote to it: nothing more is recorded on it
    (a decision or a sign-off written now would seal the change as ctcnet's)."""


def seal_of(path: str | Path) -> dict | None:
    """``{"bytes", "sha256"}`` of the file at ``path`` now, through its last whole line; None
    where there is none. An unfinished last line (a writer killed mid-line) is no line: its
    readers ignore it and the next writer cuts it off, which read as the sealed bytes changed
    (a sign-off made over one said "edited by hand?" after the next decision)."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return None
    data = data[:data.rfind(b"\n") + 1]
    return {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def _seal_file(path: Path) -> Path:
    return path.parent / f".{path.name}.seal"


def write_seal(path: str | Path) -> None:
    """Keep the journal's seal beside it (after ctcnet wrote it, under its lock)."""
    path = Path(path)
    seal = seal_of(path)
    if seal is not None:
        atomic_write_text(_seal_file(path), json.dumps(seal) + "\n")


def last_seal(path: str | Path) -> dict | None:
    """The seal ctcnet kept after it last wrote the journal; None: none (a journal written
    before seals were kept), or one that cannot be read (said by :func:`changed_since`)."""
    try:
        seal = json.loads(_seal_file(Path(path)).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except PermissionError:  # another account's, kept from this one: said as such, no edit
        raise
    except (OSError, ValueError):
        return {"bytes": -1, "sha256": ""}  # a seal that is no seal: the journal is not as sealed
    return seal if isinstance(seal, dict) else {"bytes": -1, "sha256": ""}


def changed_since(path: str | Path, sealed: dict) -> bool:
    """Whether the journal no longer begins with the ``sealed`` bytes (changed, removed, or
    cut shorter)."""
    size = sealed.get("bytes")
    if not isinstance(size, int) or size < 0:
        return True
    try:
        with open(path, "rb") as fh:
            data = fh.read(size)
    except PermissionError:  # (not read: not changed by all that is known)
        raise
    except OSError:
        return size > 0
    return len(data) != size or hashlib.sha256(data).hexdigest() != sealed.get("sha256")


def check_as_sealed(path: str | Path) -> None:
    """Raise :class:`JournalEdited` where the journal no longer begins with what ctcnet last
    wrote to it (its last seal; none kept: nothing to check), saying how to go on."""
    path = Path(path)
    last = last_seal(path)
    if last is not None and changed_since(path, last):
        what = "was changed other than by ctcnet" if path.exists() else "was removed"
        raise JournalEdited(
            f"{path.name} in {path.parent} {what} since ctcnet last wrote it (lines changed "
            "or removed: edited by hand, copied over, or deleted?), so nothing "
            "more is recorded on it: the decisions this review shows may not be the file's. "
            "Restore the file as ctcnet wrote it; or, to review on from it as it is now, "
            f"delete its seal {_seal_file(path).name} and reload (a sign-off made before "
            "then reads 'edited since')")
