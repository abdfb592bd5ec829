"""Detected events against a simulated scan's truth: one-to-one matching of centres within a
radius and detection recall per class (for run summaries, count checks and tests)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def match_to_truth(detected_xy: np.ndarray, truth_xy: np.ndarray, radius_px: float,
                   preferred: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one matching of detections to true events within ``radius_px`` (Hungarian).

    Returns (truth index, detection index) arrays of the matched pairs; recall is
    ``len(pairs) / len(truth)``. Call per frame: positions of different frames never match.
    ``preferred`` (bool per detection): where a true event has several detections within the
    radius, one of these is its match before any other, the nearest of them (a cluster read
    twice, its repeat held apart: the one counted is the cluster's event, and the repeat an
    event of no cell, not the other way round).
    """
    from scipy.optimize import linear_sum_assignment
    from scipy.spatial.distance import cdist

    detected_xy = np.asarray(detected_xy, dtype=np.float64).reshape(-1, 2)
    truth_xy = np.asarray(truth_xy, dtype=np.float64).reshape(-1, 2)
    if not len(detected_xy) or not len(truth_xy):
        return np.empty(0, np.int64), np.empty(0, np.int64)
    dist = cdist(truth_xy, detected_xy)
    # Pairs beyond the radius get a prohibitive cost, then are dropped after the assignment.
    cost = np.where(dist <= radius_px, dist, 1e9)
    if preferred is not None:  # any preferred detection in reach costs less than any other
        cost = cost + np.where(np.asarray(preferred, bool), 0.0, 2.0 * radius_px)[None, :]
    ti, di = linear_sum_assignment(cost)
    ok = dist[ti, di] <= radius_px
    return ti[ok], di[ok]


# A drawn cell is found when an event's centre lies within this of its own (about a cell's
# radius): the one match of every figure against simulated truth.
MATCH_RADIUS_UM = 8.0


def detection_recall(events: pd.DataFrame, truth: pd.DataFrame, pixel_size_um: float,
                     radius_um: float = MATCH_RADIUS_UM) -> dict:
    """Recall and precision of detected events against a ground-truth table, per class.

    Both tables need ``x``, ``y`` and the frame (``row`` and ``col`` when both tables have them,
    else ``frame``); ``truth`` also ``class``. A true event counts as found when a detection
    centre lies within ``radius_um`` of its centre (one-to-one).
    """
    radius_px = radius_um / pixel_size_um
    keys = ["row", "col"] if {"row", "col"} <= set(events) & set(truth) else ["frame"]
    found = np.zeros(len(truth), dtype=bool)
    matched_detections = 0
    truth = truth.reset_index(drop=True)
    by_frame = dict(list(events.groupby(keys)))
    for key, t in truth.groupby(keys):  # per frame: a handful of frames, not events
        d = by_frame.get(key)
        if d is None:
            continue
        ti, _ = match_to_truth(d[["x", "y"]].to_numpy(), t[["x", "y"]].to_numpy(), radius_px)
        found[t.index.to_numpy()[ti]] = True
        matched_detections += len(ti)
    per_class = truth.assign(found=found).groupby("class")["found"].agg(["mean", "size"])
    return {
        "recall": float(found.mean()) if len(found) else float("nan"),
        "precision": matched_detections / len(events) if len(events) else float("nan"),
        "num_truth": int(len(truth)), "num_detected": int(len(events)),
        "recall_per_class": {k: {"recall": float(v["mean"]), "n": int(v["size"])}
                             for k, v in per_class.iterrows()},
    }
