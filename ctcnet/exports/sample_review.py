"""A sample's review as its exports carry it: its sign-off as it holds now (checked against
its record, not summary.json's copy) and each event's reviewer call."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd

from ctcnet.review.decisions import REVIEW_FILE, RunEvents, load_decisions
from ctcnet.review.signoff import (
    CURRENT,
    HISTORY_FILE,
    SIGNOFF_FILE,
    same_figures,
    signoff_in,
)
from ctcnet.review.signoff_words import signoff_text

log = logging.getLogger("ctcnet.exports.event_exports")  # its records, as they were

# The column of a reviewer's call in an export.
REVIEWER_CALL = "reviewer_call"


def signoff_now(folder: Path, events: pd.DataFrame, summary, say: bool = True) -> dict | None:
    """The sample's sign-off as it holds now, checked against its record (not summary.json's
    copy, which is as fresh as the last command that wrote it), or None; one that does not
    hold is warned of (``say``; an audit says it in its own line)."""
    if not any((folder / name).exists() for name in (SIGNOFF_FILE, HISTORY_FILE)):
        recorded = _recorded_signoff(folder)
        if recorded and say:  # the record gone, its copy left: deleted, not never signed
            log.warning("%s: summary.json records a sign-off by %s on %s, but %s and %s are "
                        "gone (deleted?): exported as not signed off", folder.name,
                        recorded.get("reviewer"), recorded.get("signed_at"), SIGNOFF_FILE,
                        HISTORY_FILE)
        elif say and (folder / REVIEW_FILE).is_file():  # decided on, never signed (as crops says)
            log.warning("%s: its review is not signed off (the review page's \"sign off\"): "
                        "exported with its decisions as they are", folder.name)
        return None
    run = RunEvents.of_sample(folder, events, summary)
    matched = load_decisions(folder, run)
    record = signoff_in(folder, run, matched,
                        reviewed_rates(folder, events, matched, summary, say),
                        summary.model.sha256, summary.network_sha256,
                        summary.cartridge_info or {})[1]
    if say and record is not None and (record["status"] != CURRENT or record.get("unchecked")):
        log.warning("%s: %s", folder.name, signoff_text(record))  # said, not only in the file
    return record


def reviewed_rates(folder: Path, events: pd.DataFrame, matched, summary,
                   say: bool = True) -> dict | None:
    """The counts after review per 7.5 mL as the events and the decisions give them now (the
    automatic ones where nothing was decided), which a sign-off is checked against: one made
    with no decision ("the rest as called") signed those, and a blood volume corrected since
    moves them too; said where summary.json's copy differs (edited by hand, or written by
    another ctcnet): a copy edited to the signed figures must not read as a sign-off that
    holds, nor one edited away from them as counts a volume correction moved."""
    from ctcnet.inference.counts import count_events, count_reviewed
    from ctcnet.review.decisions import reported_classes

    # (the model's tally gives its classes and the blood read alone: its counts are not read;
    # a summary written before it kept one has it made of its events, as the review's is)
    tally = summary.tally or count_events(events, list(summary.model.classes),
                                          reported_classes(summary), summary.volume_read_ml)
    now = count_reviewed(events, matched.decisions, tally).after_review_per_7_5_ml
    copy = summary.reviewed.after_review_per_7_5_ml if summary.reviewed else None
    if say and copy is not None and not same_figures(copy, now):
        log.warning("%s: summary.json's counts after review per 7.5 mL (%s) are not what its "
                    "events and review decisions give (%s): edited since ctcnet wrote it? The "
                    "sign-off is checked against the events' figures", folder.name, copy, now)
    return now


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
