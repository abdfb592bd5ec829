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
    disk and no class crowds out another)."""
    if not len(events):
        return np.zeros(0, np.int64)
    picks = [rows[:per_category] for rows in category_positions(events, spec).values()]
    return np.concatenate(picks).astype(np.int64)
