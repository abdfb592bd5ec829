"""What a review server's sample can be found in besides a reviewable state: a run since the
page was loaded, decisions recorded since a sign-off was read, a folder being written or
read-only (each an error the server answers with its own status), and the stamp that tells
a new events table from the one read.
"""

from __future__ import annotations

import errno
from pathlib import Path

from ctcnet.errors import CtcnetError


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


def being_written(folder: Path) -> bool:
    """Predict writes events.parquet first and summary.json last: an events table newer than
    the summary (or either missing) is a run not finished, still running or stopped (a
    ``--overwrite`` killed after it withdrew the summary)."""
    try:
        return (folder / "events.parquet").stat().st_mtime_ns > \
            (folder / "summary.json").stat().st_mtime_ns
    except OSError:
        return True


def events_stamp(folder: Path) -> tuple[int, int, int] | None:
    """What identifies the events table on disk: predict replaces it whole (a new file) on
    every run, so a changed stamp means another run."""
    try:
        st = (folder / "events.parquet").stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size
