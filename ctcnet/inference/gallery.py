"""Which events a run's review gallery shows, chosen once for both ends: predict keeps the crops
of these events in its journal while the frames are in memory (:func:`gallery_rows`), and the
report (``ctcnet.report.gallery_pages``) draws its pages from the same categories
(:func:`gallery_categories`). Here, below both, so predict need not import the report.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ctcnet.nn.spec import ModelSpec


def gallery_categories(events: pd.DataFrame, spec: ModelSpec) -> dict[str, pd.DataFrame]:
    """Events per gallery category: each reported class's calls (those a person decides,
    held by the guard or sent to review, least confident first, then the rest most confident
    first), then the uncertain other events (``review``, least confident first).

    The one selection of what the gallery shows (:func:`category_positions`): the journal keeps
    crops per frame with :func:`gallery_rows`, the report draws pages from the same categories.
    """
    return {name: events.iloc[rows]
            for name, rows in category_positions(events, spec).items()}


def category_positions(events: pd.DataFrame, spec: ModelSpec) -> dict[str, np.ndarray]:
    """Row positions of :func:`gallery_categories`, from the call, review and confidence
    columns alone (in numpy: the frame loop picks a frame's gallery rows while the next frame
    is classified, and a table of every column costs more to select from)."""
    calls = events["class"].to_numpy(object)
    confidence = events["confidence"].to_numpy(np.float64)
    reported = spec.taxonomy.reported_classes()
    # A reported class's calls a person decides (held by the guard, or sent to review) first,
    # least confident first, then the rest most confident first: capped per frame and per
    # page, the gallery of a CTC-rich frame showed its 32 surest calls and none of those
    # whose decision moves the count.
    decided = events["review"].to_numpy(bool)
    if "guard" in events:
        decided = decided | (events["guard"].fillna("").astype(str).to_numpy(object) != "")
    cats = {}
    for name in reported:
        rows = np.flatnonzero(calls == name)
        first = decided[rows]
        order = np.lexsort((np.where(first, confidence[rows], -confidence[rows]), ~first))
        cats[name] = rows[order]
    unsure = np.flatnonzero(events["review"].to_numpy(bool) & ~np.isin(calls, list(reported)))
    cats["review"] = unsure[np.argsort(confidence[unsure], kind="stable")]
    return cats


def gallery_rows(events: pd.DataFrame, spec: ModelSpec, per_category: int) -> np.ndarray:
    """Row positions of one frame's events whose crops the gallery may show: the first
    ``per_category`` of each gallery category (a capped share, so no runaway model fills the
    disk and no class crowds out another), and past the cap the calls the run may yet hold
    once its frames are read (:func:`held_later`), whose crops the report shows first."""
    if not len(events):
        return np.zeros(0, np.int64)
    later = held_later(events, spec)
    picks = [np.concatenate([rows[:per_category], rows[per_category:][later[rows[
        per_category:]]]]) for rows in category_positions(events, spec).values()]
    return np.concatenate(picks).astype(np.int64)


def held_later(events: pd.DataFrame, spec: ModelSpec) -> np.ndarray:
    """Bool per event of a frame: a counted CTC call the run may hold once every frame is
    read (``ctcnet.inference.ctc_repeats.RunHolds``): one whose CD45 needs more of CK's leak
    than the least the scan's leak may allow (the scan-leak hold), or one the markers made
    (a repeat of a counted call). Its crop is kept past the gallery's cap: held at the end
    of a CTC-rich frame's run, a sure call was on no page."""
    from ctcnet.inference.guard.rules import RULES
    from ctcnet.inference.scan_leak_hold import LEAK_NEEDED

    ctc = np.isin(events["class"].to_numpy(object), spec.taxonomy.of_kind("ctc"))
    out = np.zeros(len(events), bool)
    if LEAK_NEEDED in events:
        with np.errstate(invalid="ignore"):
            out |= events[LEAK_NEEDED].to_numpy(np.float64) > RULES.scan_leak_floor
    if "markers_ctc" in events:
        out |= events["markers_ctc"].fillna(False).to_numpy(bool)
    return ctc & out
