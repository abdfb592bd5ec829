"""A sample's review records read as one moment's: the decisions, the sign-off and the
summary.json a review server writes after them, read under the decisions lock, once the
summary caught up (an export, an audit, a second server's page)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

from ctcnet.review.decision_journal import LOCK_FILE, REVIEW_FILE, SECOND_FILE, decisions_lock

# A review's summary.json follows its decisions and sign-off within moments (the server writes
# it under the lock just after): a reader waits so long for it, never longer.
SUMMARY_CATCHES_UP_S = 3.0


@contextlib.contextmanager
def review_records_read(sample_dir: str | Path, wait_s: float = SUMMARY_CATCHES_UP_S
                        ) -> Iterator[None]:
    """Hold a sample's decisions lock while a reader (an export, an audit, another server's
    page) reads its review records and summary.json together: one moment's, never a decision
    beside the sign-off before it (an FCS file said "current" of counts not signed), nor a
    sign-off's history written before its record ("edited since"). Where a decision or
    sign-off was written within ``wait_s`` and summary.json not yet after it (a review server
    writes it next), the lock is let go and taken again until it is, for ``wait_s`` at most:
    the summary's counts then add up to the decisions read."""
    folder = Path(sample_dir)
    if not (folder / LOCK_FILE).exists():  # no review has written here: nothing to wait for
        yield                               # (and no lock file made by a reader)
        return
    deadline = time.monotonic() + wait_s
    while True:
        with contextlib.ExitStack() as held:
            try:
                held.enter_context(decisions_lock(folder))
                locked = True
            except OSError:  # read-only media (an archive): no review writes there
                locked = False
            if not locked or time.monotonic() >= deadline or \
                    not _summary_behind(folder, wait_s):
                yield
                return
        time.sleep(0.05)


def _summary_behind(folder: Path, wait_s: float) -> bool:
    """Whether a review record was written in the last ``wait_s`` seconds after summary.json
    was (a review server's next write brings it up to date)."""
    def mtime(name: str) -> float:
        try:
            return (folder / name).stat().st_mtime
        except OSError:
            return 0.0

    latest = max(mtime(name) for name in (REVIEW_FILE, SECOND_FILE, "signoff.json"))
    return latest > mtime("summary.json") and time.time() - latest < wait_s

