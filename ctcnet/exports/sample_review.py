"""A sample's review as its exports carry it: its sign-off as it holds now (checked against
its record, not summary.json's copy) and each event's reviewer call."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd

from ctcnet.review.decisions import REVIEW_FILE, RunEvents, load_decisions
from ctcnet.review.signoff import CURRENT, HISTORY_FILE, SIGNOFF_FILE, signoff_in, signoff_text

log = logging.getLogger("ctcnet.exports.event_exports")  # its records, as they were

# The column of a reviewer's call in an export.
REVIEWER_CALL = "reviewer_call"


def signoff_now(folder: Path, events: pd.DataFrame, summary) -> dict | None:
    """The sample's sign-off as it holds now, checked against its record (not summary.json's
    copy, which is as fresh as the last command that wrote it), or None."""
    if not any((folder / name).exists() for name in (SIGNOFF_FILE, HISTORY_FILE)):
        recorded = _recorded_signoff(folder)
        if recorded:  # the record gone, its copy left: deleted, not never signed
            log.warning("%s: summary.json records a sign-off by %s on %s, but %s and %s are "
                        "gone (deleted?): exported as not signed off", folder.name,
                        recorded.get("reviewer"), recorded.get("signed_at"), SIGNOFF_FILE,
                        HISTORY_FILE)
        return None
    run = RunEvents.of_sample(folder, events, summary)
    per_7_5_ml = summary.reviewed.after_review_per_7_5_ml if summary.reviewed else None
    record = signoff_in(folder, run, load_decisions(folder, run), per_7_5_ml,
                        summary.model.sha256, summary.network_sha256)[1]
    if record is not None and (record["status"] != CURRENT or record.get("unchecked")):
        log.warning("%s: %s", folder.name, signoff_text(record))  # said, not only in the file
    return record


def with_reviewer_calls(folder: Path, events: pd.DataFrame, summary) -> pd.DataFrame:
    """The events with ``reviewer_call`` (the class a reviewer gave each decided event, or
    ``rejected``; "" where none was given) where the sample's review.csv holds decisions,
    matched to this run as the review counts them; the events as they are elsewhere."""
    if not (folder / REVIEW_FILE).exists():
        return events
    matched = load_decisions(folder, RunEvents.of_sample(folder, events, summary))
    given = dict(zip(matched.decisions["event_id"].astype(int).tolist(),
                     matched.decisions["reviewer_call"].astype(str).tolist()))
    if len(matched.unattached):
        log.warning("%s: %d review decision(s) attach to no event of this run; not exported",
                    folder, len(matched.unattached))
    return events.assign(**{REVIEWER_CALL: [given.get(int(e), "") for e in
                                            events["event_id"].tolist()]})


def _recorded_signoff(folder: Path) -> dict | None:
    """The sign-off summary.json's copy names (as the last command that wrote it found it),
    or None."""
    try:
        record = json.loads((folder / "summary.json").read_text(encoding="utf-8")).get("signoff")
    except (OSError, ValueError, AttributeError):
        return None
    return record if isinstance(record, dict) else None
