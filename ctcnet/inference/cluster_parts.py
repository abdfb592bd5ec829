"""One cluster, one count: a frame's counted ``cluster`` calls that lie within a cluster's
reach of each other are one cluster read twice (pure numpy and pandas).

Detection can split a CTC-neutrophil cluster into two events, one centred on the CTC and one on
a neutrophil; each crop holds the whole cluster, and both are called ``cluster``. Counted
both, a cluster-rich sample's cluster count is inflated and a review does not fix it (each
tile looks like the same cluster, and confirming both counts it twice). On four simulated
cluster-rich cartridges (cluster rate 4 %, 0.71-0.81 um/px), every pair of counted cluster
calls whose centres lay within 15 um of each other was one drawn cluster (7 of 7), and every
pair 25-40 um apart two (4 of 4): a cluster spans 20-35 um, and two clusters whose centres are
closer than :data:`SAME_CLUSTER_UM` touch, and are one aggregate.

:func:`hold_cluster_repeats` keeps the most confident of such a group in the count and holds
the others for a person, with the guard's flag :data:`SAME_CLUSTER` (counted apart, on the
review list beside the call it repeats, at the same place): a reviewer who finds two clusters
after all confirms it, and it counts. So is a part of the cluster the network read as one more
than as a CTC and the cartridge's prior filed as a CTC (the cluster counted, and its CTC again
beside it).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# Counted cluster calls of one frame whose centres are closer than this are one cluster.
SAME_CLUSTER_UM = 20.0
# The guard's flag on the repeats held apart.
SAME_CLUSTER = "same_cluster"
# ...and on a CTC the markers read twice (:mod:`ctcnet.inference.ctc_repeats`): the flags of a
# cell or cluster read twice, held beside the marker guard's.
SAME_CTC = "same_ctc"
HELD_REPEATS = (SAME_CLUSTER, SAME_CTC)


def counted_kinds(taxonomy) -> tuple[list[str], list[str]]:
    """The reported classes the guard checks as a CTC, and as a cluster (a lab's
    ``ctc_cluster`` checked as a cluster is held as one)."""
    reported = taxonomy.reported_classes()
    return ([c for c in taxonomy.of_kind("ctc") if c in reported],
            [c for c in taxonomy.of_kind("cluster") if c in reported])


def hold_cluster_repeats(events: pd.DataFrame, pixel_size_um: float | None,
                         reach_um: float = SAME_CLUSTER_UM,
                         kinds: tuple[list[str], list[str]] = (["ctc"], ["cluster"])
                         ) -> pd.DataFrame:
    """A labelled, guarded frame table (``class``, ``confidence``, ``guard``, ``review``,
    ``x``, ``y``; ``p_*``) with the counted cluster calls that repeat a more confident one
    nearer than ``reach_um`` held (``guard`` :data:`SAME_CLUSTER`, ``review`` True), and the
    counted CTC calls to which the network gives a cluster more than a CTC that near a
    counted cluster (``kinds``: the classes of each, :func:`counted_kinds`); the table as it
    is without a pixel size or such calls."""
    if not pixel_size_um or "guard" not in events or not len(events):
        return events
    ctc_classes, cluster_classes = kinds
    guard = events["guard"].fillna("").astype(str).to_numpy(object)
    calls = events["class"].to_numpy(object)
    clusters = np.flatnonzero(np.isin(calls, cluster_classes) & (guard == ""))
    # A part of a cluster the prior filed as a CTC (the network gives it a cluster more than
    # a CTC): counted beside the cluster, one cluster gave a cluster and a CTC.
    seen = _likelier(events, cluster_classes) > _likelier(events, ctc_classes)
    parts = np.flatnonzero(np.isin(calls, ctc_classes) & seen & (guard == ""))
    if clusters.size < 2 and not (clusters.size and parts.size):
        return events
    confidence = np.nan_to_num(events["confidence"].to_numpy(np.float64)[clusters], nan=-1.0)
    order = clusters[np.argsort(-confidence, kind="stable")]
    xy = events[["x", "y"]].to_numpy(np.float64) * float(pixel_size_um)
    kept: list[int] = []
    repeats: list[int] = []

    def near_a_kept_cluster(row: int) -> bool:
        return any(np.hypot(*(xy[row] - xy[k])) < reach_um for k in kept)

    for row in order:
        (repeats if near_a_kept_cluster(row) else kept).append(row)
    repeats += [row for row in parts if near_a_kept_cluster(row)]
    if not repeats:
        return events
    events = events.copy()
    rows = np.asarray(repeats, np.int64)
    guard[rows] = SAME_CLUSTER
    events["guard"] = pd.Series(guard, index=events.index, dtype=object)
    review = events["review"].to_numpy(bool).copy()
    review[rows] = True
    events["review"] = review
    return events


def _likelier(events: pd.DataFrame, classes) -> np.ndarray:
    """The network's highest probability of any of ``classes`` per event (-1: no column)."""
    found = [events[f"p_{c}"].to_numpy(np.float64) for c in classes if f"p_{c}" in events]
    return np.max(found, axis=0) if found else np.full(len(events), -1.0)


def clusters_held_again(events: pd.DataFrame,
                        kinds: tuple[list[str], list[str]] = (["ctc"], ["cluster"])
                        ) -> pd.DataFrame:
    """An events table (of one cartridge or several: ``sample_id`` and ``frame_id`` where
    present group its frames) with :func:`hold_cluster_repeats` read afresh per frame, at the
    frame's pixel size (``area_um2`` over ``area_px``), its earlier holds taken off first:
    re-scoring under another rule, whose cluster calls may differ (a hold kept from the
    earlier calls left a cluster counted nowhere, and one not made counted a cluster twice).
    The table as it is without positions or sizes."""
    need = {"x", "y", "area_um2", "area_px", "guard", "class", "confidence", "review"}
    if not need <= set(events.columns) or not len(events):
        return events
    guard = events["guard"].fillna("").astype(str).to_numpy(object)
    guard[guard == SAME_CLUSTER] = ""
    events = events.copy()
    events["guard"] = pd.Series(guard, index=events.index, dtype=object)
    calls = events["class"].to_numpy(object)
    seen = _likelier(events, kinds[1]) > _likelier(events, kinds[0])
    standing = guard == ""
    clusters = standing & np.isin(calls, kinds[1])
    # Only the frames with a counted cluster call and another call it may repeat, and only
    # their candidates: the rest of a frame is never held (a fit re-scores many times).
    candidates = clusters | (standing & np.isin(calls, kinds[0]) & seen)
    keys = [k for k in ("sample_id", "frame_id") if k in events]
    groups = events.groupby(keys, sort=False).indices.values() if keys \
        else [np.arange(len(events))]
    with np.errstate(divide="ignore", invalid="ignore"):
        px = np.sqrt(events["area_um2"].to_numpy(np.float64) /
                     events["area_px"].to_numpy(np.float64))
    for rows in groups:
        rows = rows[candidates[rows]]
        if len(rows) < 2 or not clusters[rows].any():
            continue
        sizes = px[rows][np.isfinite(px[rows])]
        part = events.iloc[rows]
        held = hold_cluster_repeats(part, float(np.median(sizes)) if len(sizes) else None,
                                    kinds=kinds)
        if held is not part:
            guard[rows] = held["guard"].to_numpy(object)
    held_rows = guard == SAME_CLUSTER
    events["guard"] = pd.Series(guard, index=events.index, dtype=object)
    events["review"] = events["review"].to_numpy(bool) | held_rows
    return events
