"""Two models on the same scans: a predict output folder read as the reference of another's
(``ctcnet evaluate NEW_RESULTS --expected OLD_RESULTS``), as a lab validates a new model
version against the one it runs.

The counts are compared as another method's are (:mod:`ctcnet.evaluation.method_comparison`:
bias, limits of agreement, cut-offs), the reference's rate being its automatic CTC count per
7.5 mL. Where both runs read the same scan (its ``cartridge_id``) and each has a rate, their
events of the frames both read are paired (same frame, each other's nearest within
:data:`SAME_PLACE_PX`; a frame one run skipped is left out: the other's events there are no
model's change): the events whose call, count or review differ are listed, and the CTCs
counted by one run alone are tested for a direction (McNemar's exact test: among the
discordant events, as many of each kind under the null). What made each side (model file
and network digests, ctcnet) is named for an audit.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from ctcnet.inference.guard import counted
from ctcnet.inference.model_records import model_file_of

# Events of two runs of one scan that are each other's nearest, at most this far apart (px,
# about 2 um), are one cell. Their ids need not agree: a model of other channels detects on
# those (ctcnet-default against ctcnet-core3 on one scan: 98 % of events within 1 px of
# their partner, 99 % within 3).
SAME_PLACE_PX = 3.0
POSITIVE = "ctc"
# A changed event's columns, the reference run's first.
_PAIRED = ("class", "counted", "review", "p_ctc")


def reference_rates(summaries: dict[str, dict], positive: str = POSITIVE) -> pd.DataFrame:
    """The reference run's rates as :func:`ctcnet.evaluation.expected_file.read_expected` gives a
    reference method's (a ``reference`` column by sample id): each sample's automatic count of
    ``positive`` per 7.5 mL; a failed sample (no rate) is left out."""
    rates = {sample: float(summary["per_7_5_ml"][positive])
             for sample, summary in summaries.items() if has_rate(summary, positive)}
    return pd.DataFrame({"reference": list(rates.values())}, index=list(rates))


def has_rate(summary: dict, positive: str = POSITIVE) -> bool:
    """Whether a run's sample has a rate of ``positive`` (not a failed run: no frame read)."""
    return summary.get("status") != "failed" and \
        (summary.get("per_7_5_ml") or {}).get(positive) is not None


def makers_of(summaries: Iterable[dict]) -> list[dict]:
    """The models (file path and SHA-256, network digest), ctcnet builds (the version, and
    ``software`` in words: the commit, a modified checkout's code digest; one version is every
    build of a release) and frame devices that made ``summaries``, each once; where a run
    resumed frames another build, backend or model file made, ``frames_made_by`` (as
    summary.json's: frames per maker, summed over the resumed samples), for ``software`` and
    ``path`` name the run that finished it, not the one that made its calls."""
    from ctcnet.core.provenance import software_text

    seen = []
    for summary in summaries:
        path, sha256 = model_file_of(summary)
        fingerprint = summary.get("run_fingerprint") or {}
        software = summary.get("software") if isinstance(summary.get("software"), dict) else {}
        entry = {"path": path, "sha256": sha256,
                 "network_sha256": fingerprint.get("model_sha256"),
                 "ctcnet": software.get("ctcnet", summary.get("ctcnet_version")),
                 "software": software_text(software, summary.get("ctcnet_version")),
                 "frame_device": summary.get("frame_device")}
        same = next((e for e in seen if {k: v for k, v in e.items()
                                         if k != "frames_made_by"} == entry), None)
        if same is None:
            seen.append(entry)
            same = entry
        # (each maker once, its frames summed over the resumed samples, the only ones whose
        # summaries say which made them: a sample made by one run has none)
        made = summary.get("frames_made_by")
        for maker, frames in (made.items() if isinstance(made, dict) else ()):
            if isinstance(frames, int) and not isinstance(frames, bool):
                counts = same.setdefault("frames_made_by", {})
                counts[maker] = counts.get(maker, 0) + frames
    return seen


def _event_table(folder: Path) -> pd.DataFrame:
    """A run's events with what the comparison reads of each: its call, whether it is
    counted (a call the guard did not hold), on the review list, and its CTC probability."""
    events = pd.read_parquet(folder / "events.parquet")
    table = events[["frame_id", "event_id", "x", "y", "class"]].copy()
    table["counted"] = np.asarray(counted(events), bool)
    table["review"] = events["review"].to_numpy(bool) if "review" in events else False
    table["p_ctc"] = events["p_ctc"].to_numpy(float) if "p_ctc" in events else np.nan
    table["class"] = table["class"].astype(str)
    return table


def frames_one_run_read(reference: Path, compared: Path) -> set[str]:
    """The frames of one scan that one of two runs read and the other did not (skipped, or
    not among those read: each summary.json's ``skipped_frames``, ``events_by_frame``, where
    it has them): the other never looked there, so their events are no model's change."""
    read, skipped = [], []
    for folder in (reference, compared):
        summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
        if isinstance(summary.get("events_by_frame"), dict):
            read.append({str(f) for f in summary["events_by_frame"]})
        skipped.append({str(s.get("frame")) for s in summary.get("skipped_frames") or ()
                        if isinstance(s, dict)})
    return (skipped[0] ^ skipped[1]) | (read[0] ^ read[1] if len(read) == 2 else set())


def paired_events(reference: Path, compared: Path, left_out: Iterable[str] = ()
                  ) -> tuple[pd.DataFrame, int, int]:
    """The two runs' events of one scan side by side (``<column>_reference`` beside
    ``<column>``: each frame's events paired with their mutual nearest within
    :data:`SAME_PLACE_PX`; an event of one run alone has the other side empty, after the
    pairs), and how many of each run's events have no partner; the events of the frames
    ``left_out`` (:func:`frames_one_run_read`'s) are not compared."""
    from scipy.spatial import cKDTree

    old, new = _event_table(reference), _event_table(compared)
    left_out = list(left_out)
    old = old[~old["frame_id"].astype(str).isin(left_out).to_numpy()]
    new = new[~new["frame_id"].astype(str).isin(left_out).to_numpy()]
    pairs = []
    for frame, here in new.groupby("frame_id", sort=False):
        there = old[old["frame_id"] == frame]
        if not len(there):
            continue
        where_new, where_old = here[["x", "y"]].to_numpy(), there[["x", "y"]].to_numpy()
        distance, nearest = cKDTree(where_old).query(where_new)
        back = cKDTree(where_new).query(where_old)[1]
        mutual = (back[nearest] == np.arange(len(here))) & (distance <= SAME_PLACE_PX)
        pairs.append(pd.concat([there.iloc[nearest[mutual]].add_suffix("_reference")
                                .reset_index(drop=True),
                                here.iloc[np.flatnonzero(mutual)].reset_index(drop=True)],
                               axis=1))
    both = pd.concat(pairs, ignore_index=True) if pairs else pd.DataFrame(
        columns=[*(f"{c}_reference" for c in old.columns), *new.columns])
    # Events one run found alone: a CTC one model counts where the other found no event is
    # as much a change as one called otherwise.
    old_alone = old.loc[_unpaired(old, both["frame_id_reference"], both["event_id_reference"])]
    new_alone = new.loc[_unpaired(new, both["frame_id"], both["event_id"])]
    # (its position under x_reference, y_reference alone: x, y are the compared run's, and a
    # reader filtering those runs' events by position took the reference's for its find)
    alone = [old_alone.add_suffix("_reference").assign(
                 frame_id=old_alone["frame_id"].to_numpy()), new_alone]
    both = pd.concat([both, *[a for a in alone if len(a)]], ignore_index=True)
    return both, len(old_alone), len(new_alone)


def _unpaired(table: pd.DataFrame, frames: pd.Series, ids: pd.Series) -> np.ndarray:
    """Which of ``table``'s events are not among the paired ones (``frames``, ``ids``): a
    boolean mask, which selects no row of a run without events (a list of keys selected
    columns there: a failed reference's empty table fell over on it)."""
    seen = set(zip(frames, ids))
    return np.array([k not in seen for k in zip(table["frame_id"], table["event_id"])], bool)


def mcnemar_exact(only_compared: int, only_reference: int) -> float:
    """McNemar's exact two-sided p of ``only_compared`` events counted by one run against
    ``only_reference`` by the other: a binomial test of the discordant ones at 1/2."""
    from scipy.stats import binomtest

    n = only_compared + only_reference
    return 1.0 if n == 0 else float(binomtest(only_compared, n, 0.5).pvalue)


def event_changes(pairs: list[tuple[str, Path, Path]], positive: str = POSITIVE
                  ) -> tuple[dict, pd.DataFrame]:
    """Over ``pairs`` (sample id, the reference's sample folder, the compared one), each of
    one scan: the summary of what changed, and a table of the events whose call, count or
    review differ (``changed_events.csv``), of the frames both runs read (the summary's
    ``frames_one_run_read`` counts the others)."""
    rows, totals = [], {"samples": 0, "events_paired": 0, "events_reference_only": 0,
                        "events_compared_only": 0, "frames_one_run_read": 0}
    for sample, reference, compared in pairs:
        left_out = frames_one_run_read(reference, compared)
        both, old_only, new_only = paired_events(reference, compared, left_out)
        totals["samples"] += 1
        totals["frames_one_run_read"] += len(left_out)
        totals["events_paired"] += len(both) - old_only - new_only
        totals["events_reference_only"] += old_only
        totals["events_compared_only"] += new_only
        # (an event of one run alone differs in all: its other side is empty)
        differs = (both["class_reference"] != both["class"]) | \
            (both["counted_reference"] != both["counted"]) | \
            (both["review_reference"] != both["review"])
        rows.append(both[differs.to_numpy()].assign(sample_id=sample))
    columns = ["sample_id", "frame_id", "event_id_reference", "event_id", "x", "y",
               "x_reference", "y_reference"] + \
        [c for name in _PAIRED for c in (f"{name}_reference", name)]
    changed = (pd.concat(rows, ignore_index=True) if rows else pd.DataFrame())
    changed = changed.reindex(columns=columns)
    # (the side a run did not find is empty: no call, not counted)
    is_old = (changed["class_reference"] == positive) & changed["counted_reference"].eq(True)
    is_new = (changed["class"] == positive) & changed["counted"].eq(True)
    gained, lost = int((is_new & ~is_old).sum()), int((is_old & ~is_new).sum())
    both_found = changed["class_reference"].notna() & changed["class"].notna()
    moves = (changed["class_reference"].astype(str) + " -> " + changed["class"].astype(str))[
        both_found & (changed["class_reference"] != changed["class"])].value_counts()
    # The same call, counted by one run and held for a person by the other (the guard's
    # flags: a fine-tune's reference can hold every cluster as unusual).
    same = both_found & (changed["class_reference"] == changed["class"]) & \
        (changed["counted_reference"].eq(True) != changed["counted"].eq(True))
    held = (changed["class"].astype(str) + np.where(changed["counted"].eq(True),
                                                    " held -> counted", " counted -> held"))[
        same].value_counts()
    summary = {**totals, "calls_changed": int(moves.sum()),
               "by_change": {k: int(v) for k, v in moves.items()},
               "counting_changed": int(held.sum()),
               "by_counting_change": {k: int(v) for k, v in held.items()},
               "review_changed": int((both_found & (changed["review_reference"] !=
                                                    changed["review"])).sum()),
               f"counted_{positive}": {"compared_only": gained, "reference_only": lost,
                                       "mcnemar_exact_p": mcnemar_exact(gained, lost)}}
    return summary, changed
