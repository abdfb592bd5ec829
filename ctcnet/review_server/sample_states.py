"""What a review server's sample can be found in besides a reviewable state: a run since the
page was loaded, decisions recorded since a sign-off was read, a folder being written or
read-only (each an error the server answers with its own status), and the stamp that tells
a new events table from the one read.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import os
from pathlib import Path

from ctcnet.core.file_modes import account_name, is_group_shared, owner_and_mode
from ctcnet.errors import CtcnetError
from ctcnet.inference.figures_seal import table_as_recorded
from ctcnet.io.atomic import folder_is_held


class ResultsChanged(CtcnetError):
    """A request made for a run that the results folder no longer holds (predict ran again
    since the page was loaded): its event ids and tiles would name other cells."""


class DecisionsChanged(CtcnetError):
    """A sign-off made on decisions as they read before others were recorded: it would sign
    counts its signer did not see."""


class ResultsBeingWritten(CtcnetError):
    """The results folder is being written (predict is running), or a run stopped before its
    summary: nothing in it can be trusted to belong together."""


# A results folder that cannot be written (read-only media, an archive's permissions): what
# the review of it can still do, said alike on the console and to a page.
READ_ONLY_ERRNOS = {errno.EROFS, errno.EACCES, errno.EPERM}
READ_ONLY_TEXT = ("the results folder cannot be written (read-only media, an archive?): "
                  "decisions and sign-offs cannot be recorded here; copy it to writable "
                  "storage to review it")


def cannot_write_text(err: OSError) -> str:
    """Why a file of the results folder cannot be used: read-only media (an archive), or a
    file or folder this account may not read or write, named with its owner and permissions
    (one reviewer's review.csv 0640 refused the next reviewer, who was told "read-only
    media"), and the cure: the file's group permissions where its folder is shared already,
    else the folder's sharing."""
    if err.errno == errno.EROFS or not err.filename:
        return READ_ONLY_TEXT
    path = Path(os.fsdecode(err.filename))
    with contextlib.suppress(OSError):  # a folder nobody may write (chmod -R a-w): an archive
        if not path.parent.stat().st_mode & 0o222:  # frozen, not a sharing to mend
            return (f"{path.parent} is {owner_and_mode(path.parent)}, which no account may "
                    f"write: {READ_ONLY_TEXT}")
    held = [f"{where} is {owner_and_mode(where)}" for where in (path, path.parent)
            if where.exists()]
    try:
        shared = is_group_shared(path.parent.stat().st_mode)
    except OSError:
        shared = False
    cure = (f"its folder is shared with its group: give {path.name} group read and write "
            "(chmod g+rw)" if shared else
            "a results folder that several accounts write (a service account's runs, "
            "reviewers' decisions) is shared through a group: chgrp it and chmod it 2770 "
            "(setgid, group-writable; docs/review.md), and ctcnet makes each file in it the "
            "group's")
    return (f"{path} may not be read or written by this account ({account_name()}): "
            f"{'; '.join(held) or 'it is not there'}; {cure}; an archive is copied to "
            "writable storage to be reviewed")


def being_written(folder: Path) -> bool:
    """Predict writes events.parquet first and summary.json last: an events table newer than
    the summary (or either missing) is a run not finished, still running or stopped (a
    ``--overwrite`` killed after it withdrew the summary); but not where no process holds the
    folder and the summary names this very table (its ``events_sha256``): a restore that set
    the files' times in the archive's order (an unzip, ``tar -m``) left a finished sample."""
    try:
        events, summary = (folder / "events.parquet").stat(), (folder / "summary.json").stat()
    except OSError:
        return True
    if events.st_mtime_ns <= summary.st_mtime_ns:
        return False
    return folder_is_held(folder) or not _summary_names_the_table(
        str(folder), events_stamp(folder), summary.st_mtime_ns)


@functools.lru_cache(maxsize=256)
def _summary_names_the_table(folder: str, stamp, summary_time: int) -> bool:
    """Whether the folder's summary.json records its events.parquet's SHA-256 (once for a
    table and summary as they are: the server asks at every request)."""
    try:
        summary = json.loads((Path(folder) / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return table_as_recorded(folder, summary) is True


def written_ns(path: Path) -> int | None:
    """When ``path`` was last written (None: not there)."""
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


def events_stamp(folder: Path) -> tuple[int, int, int] | None:
    """What identifies the events table on disk: predict replaces it whole (a new file) on
    every run, so a changed stamp means another run."""
    try:
        st = (folder / "events.parquet").stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size
