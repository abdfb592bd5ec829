"""What a sample's summary.json says of its unread planes once a review has decisions: the
CTCs counted after the review among those the planes could have changed."""

from __future__ import annotations

import pandas as pd

from ctcnet.exports.event_exports import REVIEWER_CALL
from ctcnet.exports.event_exports import after_review as events_after_review
from ctcnet.inference.unread_markers import after_review as unread_after_review


def unread_now(unread: dict | None, events: pd.DataFrame, matched, decided) -> dict | None:
    """summary.json's figures of the unread planes (``unread``), with the CTCs' counted after
    the review where ``matched`` (the decisions matched to the run of ``events``) has
    decisions (``decided``: :func:`~ctcnet.inference.unread_markers.after_review`)."""
    if not unread:
        return unread
    base = {k: v for k, v in unread.items() if k != "after_review"}
    if not decided:
        return base
    given = dict(zip(matched.decisions["event_id"].astype(int).tolist(),
                     matched.decisions["reviewer_call"].astype(str).tolist()))
    reviewed = events.assign(**{REVIEWER_CALL: [
        given.get(int(e), "") for e in events["event_id"].tolist()]})
    return unread_after_review(base, events, *events_after_review(reviewed))
