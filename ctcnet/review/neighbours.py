"""The events beside an event on the review list: one cell or cluster read as two events.

Detection may read one drawn cluster, or a doublet, as two events side by side (one held, one
counted; or a cluster twice, the second held as ``same_cluster``), and each tile shows the
whole. A reviewer deciding them one by one, unaware of the other, can count one cluster twice
(confirming the held repeat) or as a CTC and a cluster. :func:`events_beside` names, for each
listed event, the calls of its frame within a cluster's reach that are counted or listed too,
so the page can say "beside it: #880 cluster, counted" and both are decided together.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ctcnet.inference.cluster_parts import SAME_CLUSTER_UM
from ctcnet.inference.guard import counted


def events_beside(events: pd.DataFrame, listed: np.ndarray, reported: list[str],
                  pixel_size_um: float | None, reach_um: float = SAME_CLUSTER_UM
                  ) -> dict[int, list[dict]]:
    """For each event id of ``listed``, the other events of its frame whose centres lie within
    ``reach_um`` and that are listed too or counted (a call of a ``reported`` class the guard
    did not hold): ``{"event_id", "call", "counted", "um"}`` each, nearest first. {} without a
    pixel size."""
    if not pixel_size_um or not len(events) or not len(listed):
        return {}
    ids = events["event_id"].to_numpy(np.int64)
    calls = events["class"].astype(str).to_numpy(object)
    is_counted = np.isin(calls, list(reported)) & counted(events)
    is_listed = np.isin(ids, np.asarray(listed, np.int64))
    xy = events[["x", "y"]].to_numpy(np.float64) * float(pixel_size_um)
    frames = events["frame_id"].astype(str).to_numpy(object)
    out: dict[int, list[dict]] = {}
    for frame in np.unique(frames[is_listed]):
        here = np.flatnonzero(frames == frame)
        near = here[is_listed[here] | is_counted[here]]
        for row in here[is_listed[here]]:
            others = near[near != row]
            um = np.hypot(*(xy[others] - xy[row]).T)
            close = np.argsort(um, kind="stable")
            close = close[um[close] < reach_um]
            if close.size:
                out[int(ids[row])] = [{"event_id": int(ids[k]), "call": str(calls[k]),
                                       "counted": bool(is_counted[k]),
                                       "um": round(float(d), 1)}
                                      for k, d in zip(others[close], um[close])]
    return out
