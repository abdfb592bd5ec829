"""A decision is dated no earlier than the journal's latest line and the sample's sign-off: a
machine whose clock was set back (an NTP step, a server a day behind) dated decisions before
those they follow, and the sign-off's check (no decision added since it may be dated before
it) then read ctcnet's own lines as added by hand, and the review's ``updated`` time stood
still, so an export read as current what it lacked."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

log = logging.getLogger(__name__)


def dated_in_order(rows: pd.DataFrame, journal: pd.DataFrame, path: Path) -> pd.DataFrame:
    """``rows`` (review.csv's columns, about to be appended to the journal at ``path``, whose
    last lines are ``journal``: lines are appended in time order, so its latest time is among
    them) with a ``time`` before the latest of those lines or the sign-off beside it
    (``signoff.json``'s ``signed_at``) moved up to that latest time, said in a warning that
    names the machine's clock."""
    if not len(rows):
        return rows
    times = [_parsed(journal["time"]).max() if len(journal) else pd.NaT,
             _parsed(pd.Series([_signed_at(path.parent)])).max()]
    latest = max((t for t in times if not pd.isna(t)), default=None)
    when = _parsed(rows["time"])
    early = (when < latest).to_numpy() if latest is not None else None
    if early is None or not early.any():
        return rows
    log.warning("%s: this machine's clock reads %s, before the latest decision or sign-off "
                "of the sample (%s): dated %s so the journal keeps its order (set the "
                "machine's clock right)", path, when.min().isoformat(), latest.isoformat(),
                latest.isoformat())
    rows = rows.copy()
    rows.loc[early, "time"] = latest.isoformat(timespec="microseconds")
    return rows


def _parsed(times: pd.Series) -> pd.Series:
    return pd.to_datetime(times.astype(str), utc=True, errors="coerce", format="ISO8601")


def _signed_at(folder: Path) -> str | None:
    """The sample's latest sign-off's ``signed_at`` (None where it has none)."""
    # (here, not at the top: the sign-off's module reads the decisions this one dates)
    from ctcnet.review.signoff import read_signoff

    signed = read_signoff(folder)
    return None if signed is None else signed.signed_at
