"""Which events a run's review gallery shows, chosen once for both ends: predict keeps the crops
of these events in its journal while the frames are in memory (:func:`gallery_rows`), and the
report (``ctcnet.report.review``) draws its pages from the same categories
(:func:`gallery_categories`). Here, below both, so predict need not import the report.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ctcnet.nn.spec import ModelSpec


def gallery_categories(events: pd.DataFrame, spec: ModelSpec) -> dict[str, pd.DataFrame]:
    """Events per gallery category, best first: each reported class's calls (most confident
    first), then the uncertain other events (``review``, least confident first).

    The one selection of what the gallery shows: the journal keeps crops per frame with
    :func:`gallery_rows`, the report draws pages from the same categories.
    """
    cats = {}
    for name in spec.taxonomy.reported_classes():
        calls = events[events["class"] == name]
        cats[name] = calls.sort_values("confidence", ascending=False, kind="stable")
    reported = events["class"].isin(spec.taxonomy.reported_classes())
    unsure = events[events["review"].astype(bool) & ~reported]
    cats["review"] = unsure.sort_values("confidence", kind="stable")
    return cats


def gallery_rows(events: pd.DataFrame, spec: ModelSpec, per_category: int) -> np.ndarray:
    """Row positions of one frame's events whose crops the gallery may show: the first
    ``per_category`` of each gallery category (a capped share, so no runaway model fills the
    disk and no class crowds out another)."""
    if not len(events):
        return np.zeros(0, np.int64)
    positional = events.reset_index(drop=True)
    picks = [chosen.index.to_numpy()[:per_category]
             for chosen in gallery_categories(positional, spec).values()]
    return np.concatenate(picks).astype(np.int64)
