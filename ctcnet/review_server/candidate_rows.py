"""What the review page shows of each candidate of a sample but its decision: its call and
probability, the network's and the prior's, its reasons in words, its tile, its markers and the
guard's measurements, and the events beside it (one cell or cluster read as two events:
:mod:`ctcnet.review.neighbours`). The same for the whole run, so made once a run."""

from __future__ import annotations

import math

import numpy as np

from ctcnet.report.reasons import GUARD_PREFIX, described, own_calls
from ctcnet.review.neighbours import events_beside
from ctcnet.review_server.signoff_checks import could_be_counted


def candidate_rows(sample) -> list[dict]:
    """The rows of a :class:`~ctcnet.review_server.sample.Sample`'s candidates, in its order
    (thousands of rows take a while: the words of reasons shared by many are made once)."""
    means, measures = sample.candidate_markers()
    unread = _unread_planes(sample)
    rows, said = [], {}
    columns = ["event_id", "frame_id", "x", "y", "class", "confidence", "review",
               "edge_cut", "why", "reasons"]
    own, own_p = own_calls(sample.candidates, sample.classes, sample.reported)
    beside = events_beside(sample.events, sample.candidates["event_id"].to_numpy(),
                           sample.reported, sample.panel.pixel_size_um)
    values = zip(*(sample.candidates[c].tolist() for c in columns),
                 sample.candidates.get("model_class", sample.candidates["class"]).tolist(),
                 own, own_p, sample.candidates.get("cluster_partner", [""] * len(own)))
    for k, (event_id, frame_id, x, y, call, p, review, edge_cut, why, codes,
            model_call, own_call, own_prob, partner) in enumerate(values):
        event_id, p = int(event_id), float(p)
        # Unrounded: the page, the reasons and the tile captions round it alike. The words
        # depend on the codes and p as printed: said once for the candidates that share them.
        key = (tuple(codes), f"{p:.2f}")
        if key not in said:
            said[key] = described(codes, p, sample.threshold, sample.reported)
        tile = sample.gallery_tiles.get(event_id) or {"src": sample.tile_src(event_id)}
        rows.append({"event_id": event_id, "frame_id": str(frame_id),
                     "x": round(float(x), 1), "y": round(float(y), 1), "call": str(call),
                     # JSON has no NaN: an event without a call has no confidence.
                     # It is the network's call's (model_call), which ``call`` may not be.
                     "confidence": p if math.isfinite(p) else None,
                     "model_call": str(model_call),
                     # The most probable class before the prior (own_calls): a cluster
                     # the prior filed away is named on the tile (call_text).
                     "own_call": own_call, "own_p": own_prob,
                     "partner": partner if isinstance(partner, str) and partner else None,
                     "flagged": bool(review), "edge_cut": bool(edge_cut),
                     "held": any(c.startswith(GUARD_PREFIX) for c in codes),
                     # another call on the list for a count it could change (a sign-off
                     # leaving it undecided needs a note: signoff_checks)
                     "could_be_counted": could_be_counted(call, codes, sample.reported),
                     "why": why, "reasons": said[key],
                     "tile": tile, "context": sample.tile_src(event_id, "context"),
                     "markers": means[k]})
        if measures[k]:  # the guard's measurements, where the events table has them
            rows[-1]["measures"] = measures[k]
        if unread:  # planes the model does not read (a therapy marker): what a reviewer asks
            rows[-1]["unread"] = [_unread_value(sample, k, name, above, event_id)
                                  for name, above in unread.items()]
        if event_id in beside:  # one cell or cluster read as two events: decided together
            rows[-1]["beside"] = beside[event_id]
    return rows


def decided_rows(rows: list[dict], candidates, decided) -> tuple[list[dict], np.ndarray]:
    """The rows a reading's page lists (:func:`listed_in_reading`), each with its decision
    (``decided``: the reading's decisions that count) and the call that decision was made on
    where it is not this run's (:func:`decided_on_other_calls`); and which were listed."""
    calls = dict(zip(decided["event_id"].astype(int), decided["reviewer_call"]))
    listed = listed_in_reading(candidates, calls)
    seen = decided_on_other_calls(decided)
    return [{**r, "decision": calls.get(r["event_id"]), "decided_on": seen.get(r["event_id"])}
            for r, shown in zip(rows, listed) if shown], listed


def decided_on_other_calls(decided) -> dict[int, str]:
    """Per event whose decision was made looking at another call than this run's (another
    model, rule or prior since: the decisions follow their cells), the call the reviewer saw:
    the page says a confirmation of a ``ctc`` call now on a ``wbc`` one as that, not as a
    relabelling to ``ctc``."""
    if "decided_call" not in decided or not len(decided):
        return {}
    saw, now = decided["decided_call"].astype(str), decided["model_call"].astype(str)
    other = (saw != now).to_numpy() & decided["decided_call"].notna().to_numpy()
    return dict(zip(decided["event_id"].to_numpy()[other].astype(int).tolist(),
                    saw.to_numpy()[other].tolist()))


def listed_in_reading(candidates, decided) -> np.ndarray:
    """Which of ``candidates`` a reading's page lists, ``decided`` being the event ids its own
    decisions are on: every one but those only another reading's decision brings onto the list
    (``why`` decided): a blind second reader's page neither shows which events the first
    reader decided beyond the list nor loses those the second reader decided."""
    return (candidates["why"] != "decided").to_numpy() | \
        candidates["event_id"].isin(list(decided)).to_numpy()


def _unread_planes(sample) -> dict[str, set | None]:
    """Per plane the model does not read that the candidates carry (``mean_<plane>``), the
    counted CTCs summary.json calls above the leukocytes (None: no level, too few)."""
    planes = ((getattr(sample.summary, "unread_markers", None) or {}).get("planes") or {})
    return {name: None if record.get("above_event_ids") is None
            else set(record["above_event_ids"])
            for name, record in planes.items() if f"mean_{name}" in sample.candidates}


def _unread_value(sample, k: int, name: str, above: set | None, event_id: int) -> dict:
    """One candidate's mean over its object in an unread plane (counts), the line it must
    pass to be above the leukocytes (the plane's level and what its own CK may leak: a held
    candidate is judged by it before it is confirmed), and whether the automatic count's
    figure counts it above (None: no level, or not one of its CTCs)."""
    from ctcnet.inference.unread_markers import line_of

    candidates = sample.candidates
    unread = sample.summary.unread_markers or {}
    value = float(candidates[f"mean_{name}"].iloc[k])
    ck = unread.get("ck_plane")
    ck_mean = float(candidates[f"mean_{ck}"].iloc[k]) if ck and f"mean_{ck}" in candidates \
        else None
    guard = candidates["guard"].iloc[k] if "guard" in candidates else ""
    counted = str(candidates["class"].iloc[k]) in (unread.get("ctc_classes") or ["ctc"]) and \
        not (guard if isinstance(guard, str) else "")
    return {"plane": name, "mean": round(value, 1) if math.isfinite(value) else None,
            "line": line_of(unread, name, ck_mean),
            "above": None if above is None or not counted else event_id in above}
