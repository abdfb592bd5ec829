"""Which rows of review.csv a later row replaces: the decisions on one cell (the same event of
the run a row was made in, or a position in the same frame within the tolerance from another
run), of which the latest counts (pure pandas/numpy, on the file's rows alone: the run a row
was made in may be gone)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ctcnet.inference.counts import REJECTED


def replaced_by_rows(parts: list[pd.DataFrame], rows: pd.DataFrame,
                      tolerance_px: float) -> np.ndarray:
    """Which rows of ``parts`` (the table so far, in pieces) ``rows`` (appended after them)
    replace (:func:`superseded_rows`'s rule). Only a row of the same event id, or one within
    the tolerance in the same frame, can be replaced, so only those are compared: a few
    numeric passes per new row, not a comparison with every row of the file."""
    new_ids = rows["event_id"].to_numpy(np.int64)
    new_x, new_y = rows["x"].to_numpy(np.float64), rows["y"].to_numpy(np.float64)
    new_frames = rows["frame_id"].to_numpy(dtype=object)
    n = sum(len(p) for p in parts)
    out = np.zeros(n, bool)
    near_rows, near_parts, start = [], [], 0
    for part in parts:
        if not len(part):
            continue
        ids = part["event_id"].to_numpy(np.int64)
        x, y = part["x"].to_numpy(np.float64), part["y"].to_numpy(np.float64)
        frames = None
        near = np.isin(ids, new_ids)
        for j in range(len(rows)):
            close = np.flatnonzero((np.abs(x - new_x[j]) <= tolerance_px) &
                                   (np.abs(y - new_y[j]) <= tolerance_px))
            if len(close):
                if frames is None:
                    frames = part["frame_id"].to_numpy(dtype=object)
                near[close[frames[close] == new_frames[j]]] = True
        at = np.flatnonzero(near)
        if len(at):
            near_rows.append(start + at)
            near_parts.append(part.iloc[at])
        start += len(part)
    if not near_rows:
        return out
    earlier = np.concatenate(near_rows)
    small = pd.concat([*near_parts, rows], ignore_index=True)
    k, m = len(earlier), len(rows)
    i = np.repeat(np.arange(k), m)
    j = np.tile(np.arange(k, k + m), k)
    out[earlier[i[_replaces(small, i, j, tolerance_px)]]] = True
    return out


def superseded_rows(table: pd.DataFrame, tolerance_px: float) -> np.ndarray:
    """Which rows of review.csv a later row replaces (bool per row, file order).

    A decision (or a take-back) replaces every earlier row that attached to its event in the
    run it was made in, as a rewrite of the file once dropped them; read from the file alone,
    since that run may be gone. An earlier row attached there when it is of the same run and
    event (an old-layout row: the same event id and call), or of another run with a position in
    the same frame within the tolerance; not when it was set aside as made on another
    cartridge, nor, a rejection, when it saw another call than the later row did."""
    n = len(table)
    out = np.zeros(n, bool)
    if n < 2:
        return out
    i, j = _neighbour_pairs(table, tolerance_px)
    out[i[_replaces(table, i, j, tolerance_px)]] = True
    return out


def _replaces(table: pd.DataFrame, i: np.ndarray, j: np.ndarray,
              tolerance_px: float) -> np.ndarray:
    """Per pair of rows (``i`` earlier, ``j`` later), whether row j replaces row i."""
    if not len(i):
        return np.zeros(0, bool)
    col = {c: table[c].to_numpy(dtype=object) for c in ("run_id", "cartridge_id", "frame_id",
                                                         "model_call", "reviewer_call",
                                                         "frame_digest")}
    event = table["event_id"].to_numpy(np.int64)
    x, y = table["x"].to_numpy(np.float64), table["y"].to_numpy(np.float64)
    run, cart, call = col["run_id"], col["cartridge_id"], col["model_call"]
    same_event = event[i] == event[j]
    same_run = (run[i] == run[j]) & (run[i] != "")
    close = (col["frame_id"][i] == col["frame_id"][j]) & (col["frame_id"][i] != "") & \
        ((x[i] - x[j]) ** 2 + (y[i] - y[j]) ** 2 <= tolerance_px ** 2)
    attached = np.where(same_run, same_event,
                        np.where(run[i] == "", same_event & (call[i] == call[j]), close))
    # On another cartridge, unless on the same pixels of the same frame (a frame of the
    # cartridge fixed between the two).
    digest = col["frame_digest"]
    same_pixels = (digest[i] != "") & (digest[i] == digest[j])
    aside = (cart[j] != "") & ~same_pixels & (
        ((cart[i] != "") & (cart[i] != cart[j])) |
        ((cart[i] == "") & (run[i] != "") & (run[i] != run[j])))
    other_call = (col["reviewer_call"][i] == REJECTED) & (call[i] != call[j])
    return attached & ~aside & ~other_call & (run[j] != "")


def _neighbour_pairs(table: pd.DataFrame, tolerance_px: float) -> tuple[np.ndarray, np.ndarray]:
    """Row pairs (earlier, later) that may be decisions on one cell: the same event id, or the
    same frame within the tolerance (sorted by frame and x, so a pass per neighbour offset
    ends once no row has a neighbour that near)."""
    n = len(table)
    rows = np.arange(n)
    pairs = []
    ids = table["event_id"].to_numpy(np.int64)
    repeated = pd.Series(ids).duplicated(keep=False).to_numpy()
    if repeated.any():
        same = pd.DataFrame({"e": ids[repeated], "r": rows[repeated]})
        both = same.merge(same, on="e")
        both = both[both["r_x"] < both["r_y"]]
        pairs.append((both["r_x"].to_numpy(), both["r_y"].to_numpy()))
    frames, _ = pd.factorize(table["frame_id"].astype(str))
    x = table["x"].to_numpy(np.float64)
    placed = np.flatnonzero(np.isfinite(x) & (table["frame_id"].astype(str) != "").to_numpy())
    order = placed[np.lexsort((x[placed], frames[placed]))]
    for k in range(1, len(order)):
        a, b = order[:-k], order[k:]
        near = (frames[a] == frames[b]) & (x[b] - x[a] <= tolerance_px)
        if not near.any():
            break
        a, b = a[near], b[near]
        pairs.append((np.minimum(a, b), np.maximum(a, b)))
    if not pairs:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    i = np.concatenate([p[0] for p in pairs])
    j = np.concatenate([p[1] for p in pairs])
    unique = np.unique(i * n + j)
    return unique // n, unique % n
