"""Count-level truth: called versus true event counts of whole cartridges.

Per-crop figures on balanced sets overstate a cartridge's precision: at real prevalence
(debris ~200x CTCs) a 0.5 % debris->CTC rate doubles the count. What a clinic reads is the
CTC count per 7.5 mL and whether it reaches a cut-off, so this module compares counts:

* :func:`truth_class_of_events`: the true class of each detected event (one-to-one matching
  within a radius, per frame), or None for a detection with no true object;
* :func:`cartridge_counts`: true, automatic and after-review counts per class of one
  cartridge; *after review* means every flagged event resolved to its true class (a flagged
  detection of nothing is filed as debris), as a reviewer would;
* :func:`bland_altman`, :func:`cutoff_agreement`, :func:`within_tolerance`: the agreement of
  called and true counts over many cartridges (pure numpy); :func:`share_interval` the 95 %
  interval of such a share (14 of 20 cartridges is anything from 48 to 85 %: two models an
  evaluation of 20 cartridges tells apart differ by more than a cartridge or two);
* :func:`count_report`: all of it for a list of cartridges (its figure:
  :mod:`ctcnet.evaluation.counts_figure`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ctcnet.core.kappa import cohen_kappa
from ctcnet.detect.truth_matching import MATCH_RADIUS_UM, match_to_truth
from ctcnet.inference.counts import count_events, per_7_5_ml
from ctcnet.inference.guard import counted
from ctcnet.nn.calls import COUNTED_CLASSES
from ctcnet.simulate import simulate_cartridge

# Clinical cut-offs in CTCs per 7.5 mL (CellSearch: >= 5 in metastatic breast and prostate
# cancer, >= 3 in colorectal; >= 1 for detection at all); ``ctcnet evaluate --cutoffs``
# states a lab's own.
CUTOFFS = (1, 3, 5)
# Automatic CTC count within max(ABS_TOLERANCE, REL_TOLERANCE x truth) of the truth.
REL_TOLERANCE, ABS_TOLERANCE = 0.15, 1.0
FLAG_COLUMNS = ("review",)


def match_events(events: pd.DataFrame, truth: pd.DataFrame, pixel_size_um: float,
                 radius_um: float = MATCH_RADIUS_UM) -> np.ndarray:
    """Position in ``truth`` of the true event each event matches (-1: none within
    ``radius_um``); matched one-to-one per frame (``row``, ``col``), an event the guard did
    not hold before one it held (:func:`match_to_truth`'s ``preferred``)."""
    out = np.full(len(events), -1, np.int64)
    if not len(events) or not len(truth):
        return out
    keys = ["row", "col"]
    truth = truth.reset_index(drop=True)
    by_frame = {k: g for k, g in truth.groupby(keys)}
    kept = counted(events)
    for key, ev in events.assign(_pos=np.arange(len(events))).groupby(keys):
        t = by_frame.get(key)
        if t is None:
            continue
        ti, di = match_to_truth(ev[["x", "y"]].to_numpy(), t[["x", "y"]].to_numpy(),
                                radius_um / pixel_size_um, kept[ev["_pos"].to_numpy()])
        out[ev["_pos"].to_numpy()[di]] = t.index.to_numpy()[ti]
    return out


def truth_class_of_events(events: pd.DataFrame, truth: pd.DataFrame, pixel_size_um: float,
                          radius_um: float = MATCH_RADIUS_UM, column: str = "class",
                          idx: np.ndarray | None = None) -> np.ndarray:
    """The true class (or another ``column`` of the truth: its ``subtype``) of each event
    (object array, None where no true event lies within ``radius_um``); matched one-to-one
    per frame (``row``, ``col``), or as ``idx`` (:func:`match_events`) says."""
    idx = match_events(events, truth, pixel_size_um, radius_um) if idx is None else idx
    out = np.full(len(events), None, dtype=object)
    hit = idx >= 0
    out[hit] = truth[column].to_numpy(object)[idx[hit]]
    return out


def flagged(events: pd.DataFrame, flag_columns: Sequence[str] = FLAG_COLUMNS) -> np.ndarray:
    """Events sent to review: any of the flag columns present is true."""
    out = np.zeros(len(events), bool)
    for col in flag_columns:
        if col in events:
            out |= events[col].to_numpy(bool)
    return out


def cartridge_counts(events: pd.DataFrame, truth: pd.DataFrame, class_names: Sequence[str],
                     pixel_size_um: float, blood_volume_ml: float = 7.5,
                     flag_columns: Sequence[str] = FLAG_COLUMNS,
                     unmatched_as: str = "debris",
                     counted_classes: Sequence[str] = COUNTED_CLASSES) -> dict:
    """True, automatic and after-review counts per class of one cartridge, also per 7.5 mL
    (``counted_classes``: the taxonomy's reported ones, whose subtypes are given apart).

    ``truth`` must already be restricted to the frames that were processed, and
    ``blood_volume_ml`` is then the blood of those frames (``summary.json``'s
    ``blood_volume_processed_ml``). The automatic count and the calls the marker guard held
    apart are predict's own tally (:func:`ctcnet.inference.counts.count_events`).
    """
    names = list(class_names)
    called = events["class"].to_numpy(object) if len(events) else np.zeros(0, object)
    flags = flagged(events, flag_columns)
    tally = count_events(events, names, names, blood_volume_ml)
    kept = counted(events)
    guarded = ~kept
    matches = match_events(events, truth, pixel_size_um)
    true_of_event = truth_class_of_events(events, truth, pixel_size_um, idx=matches)
    resolved = np.where(true_of_event == None, unmatched_as, true_of_event)  # noqa: E711
    after = np.where(flags, resolved, called)
    wrong = flags & (called != resolved)
    true = {n: int((truth["class"] == n).sum()) for n in names}
    auto, held = tally.counted, tally.held
    review = {n: int((after == n).sum()) for n in names}
    # Automatic calls whose truth differs (false calls), and true events of the class detected
    # but called otherwise (misses), per class.
    false_calls = {n: int(((called == n) & kept & (resolved != n)).sum()) for n in names}
    missed = {n: int(((resolved == n) & ~((called == n) & kept)).sum()) for n in names}
    # The guard's work on calls of each class: wrong calls it held, right calls it held.
    guard = {n: {"wrong_calls": int(((called == n) & (resolved != n)).sum()),
                 "wrong_held": int(((called == n) & (resolved != n) & guarded).sum()),
                 "right_held": int(((called == n) & (resolved == n) & guarded).sum())}
             for n in names}
    # True events of each class a person sees as such: called so, or flagged for review
    # (the guard's possible_ctc flag shows a CTC the network called otherwise).
    called_or_flagged = {n: int(((resolved == n) & ((called == n) | flags)).sum())
                         for n in names}
    # Of each subtype of the counted classes' true cells (a CK-dim EMT CTC beside a bright
    # one): how many were counted as their class, and how many more a person is shown. A
    # count that loses only its dim CTCs reads fine in total.
    by_subtype = {}
    if "subtype" in truth and len(truth):
        subtype_of = truth_class_of_events(events, truth, pixel_size_um, column="subtype",
                                           idx=matches)
        for (name, subtype), group in truth.groupby(["class", "subtype"], sort=True):
            if name not in counted_classes:
                continue
            mine = (subtype_of == subtype) & (resolved == name)
            hit = mine & (called == name) & kept
            by_subtype[f"{name}/{subtype}"] = {"true": int(len(group)),
                                               "counted": int(hit.sum()),
                                               "shown": int((mine & ~hit & flags).sum())}
    return {"events": int(len(events)), "true_events": int(len(truth)),
            "true_matched": int(len(np.unique(matches[matches >= 0]))),
            "by_subtype": by_subtype,
            "false_calls": false_calls, "missed_calls": missed,
            "called_or_flagged": called_or_flagged,
            "flagged": int(flags.sum()), "flagged_wrong": int(wrong.sum()),
            "guard_flagged": int(guarded.sum()), "held_by_guard": held, "guard": guard,
            "blood_volume_ml": float(blood_volume_ml),
            "true": true, "automatic": auto, "after_review": review,
            "true_per_7_5_ml": {n: per_7_5_ml(v, blood_volume_ml) for n, v in true.items()},
            "automatic_per_7_5_ml": tally.per_7_5_ml,
            "after_review_per_7_5_ml": {n: per_7_5_ml(v, blood_volume_ml)
                                        for n, v in review.items()}}


def false_call_kinds(events: pd.DataFrame, truth: pd.DataFrame, pixel_size_um: float,
                     positive: str = "ctc", crop_um: float = 51.2) -> pd.DataFrame:
    """One row per wrong automatic ``positive`` call: what it truly was and why it may look so.

    Columns: ``kind`` (the true event's simulator subtype, else its class; ``no object`` for a
    detection of nothing), ``p`` (the model's probability of ``positive``), ``guard`` (the
    guard flags that fired), ``counted`` (whether it entered the automatic count) and
    ``neighbour`` (a true ``positive`` or cluster lies within the crop, ``crop_um`` across).
    """
    cols = ["kind", "p", "guard", "counted", "neighbour"]
    if not len(events):
        return pd.DataFrame(columns=cols)
    truth = truth.reset_index(drop=True)
    idx = match_events(events, truth, pixel_size_um)
    hit = idx >= 0
    kind_col = "subtype" if "subtype" in truth else "class"
    true_class = np.full(len(events), None, dtype=object)
    true_class[hit] = truth["class"].to_numpy(object)[idx[hit]]
    kind = np.full(len(events), "no object", dtype=object)
    kind[hit] = truth[kind_col].to_numpy(object)[idx[hit]]
    wrong = (events["class"].to_numpy(object) == positive) & (true_class != positive)
    rows = events[wrong]
    # A true positive event (or cluster) in view of the crop: its light may drive the call.
    near = np.zeros(len(rows), bool)
    rare = truth[truth["class"].isin([positive, "cluster"])]
    half = crop_um / 2 / pixel_size_um
    for i, (_, ev) in enumerate(rows.iterrows()):
        same = rare[(rare["row"] == ev["row"]) & (rare["col"] == ev["col"])]
        d = np.maximum(np.abs(same["x"] - ev["x"]), np.abs(same["y"] - ev["y"]))
        near[i] = bool(((d <= half) & (d > MATCH_RADIUS_UM / pixel_size_um)).any())
    guard = (rows["guard"].fillna("").astype(str).to_numpy(object) if "guard" in rows
             else np.full(len(rows), "", dtype=object))
    return pd.DataFrame({"kind": kind[wrong], "p": rows.get(f"p_{positive}", np.nan),
                         "guard": guard, "counted": counted(rows), "neighbour": near})


def summarise_false_calls(table: pd.DataFrame) -> dict:
    """Per true kind: wrong calls, how many the guard held apart, median probability, and how
    many had a true positive event in view."""
    out = {}
    for kind, g in table.groupby("kind"):
        out[str(kind)] = {"n": int(len(g)), "held_by_guard": int((~g["counted"]).sum()),
                          "median_p": float(np.nanmedian(g["p"])) if len(g) else None,
                          "neighbour_in_crop": int(g["neighbour"].sum())}
    return dict(sorted(out.items(), key=lambda kv: -kv[1]["n"]))


def patient_counts(n: int, maximum: int) -> list[int]:
    """0 .. maximum, most of them low (quadratic spacing): the true counts of ``n`` patients'
    cartridges (DOMAIN.md: CTCs are often 0-5 per 7.5 mL)."""
    return [round(maximum * (i / max(n - 1, 1)) ** 2) for i in range(n)]


def cartridge_panel_for(model_panel):
    """The panel to simulate a model's fitting and counting cartridges in: the default
    five-channel panel (None) when it holds every channel the model reads (a three-channel
    model reads those cartridges as a scan of more channels), else the model's own (a lab's
    six-channel model with vimentin)."""
    from ctcnet.io.panel import load_panel

    names = {n.upper() for n in load_panel(None).names}
    return None if all(n.upper() in names for n in model_panel.names) else model_panel


def simulate_count_cartridges(out_dir: str | Path, n: int, frames: int, seed: int,
                              events_per_frame: float = 300, ctc_max: int = 30,
                              cluster_max: int = 3, prefix: str = "count",
                              panel=None) -> list[Path]:
    """``n`` simulated cartridges (seeds ``seed``, ``seed + 1``, ...) at patient-like
    prevalence: cartridge ``i`` holds about ``patient_counts(n, ctc_max)[i]`` CTCs and the
    reverse order of 0..``cluster_max`` clusters among ``frames x events_per_frame`` events,
    in ``panel``'s channels (None: the default panel; :func:`cartridge_panel_for`). A
    cartridge already there (its ground_truth.csv) is kept."""
    expected = frames * events_per_frame
    ctcs = patient_counts(n, ctc_max)
    clusters = patient_counts(n, cluster_max)[::-1]
    paths = []
    for i, (k, c) in enumerate(zip(ctcs, clusters)):
        path = Path(out_dir) / f"c{i:02d}"
        if not (path / "ground_truth.csv").exists():
            simulate_cartridge(path, panel=panel, num_frames=frames, seed=seed + i,
                               events_per_frame=events_per_frame,
                               rare_rates={"ctc": k / expected, "cluster": c / expected},
                               sample_id=f"{prefix}{i:02d}")
        paths.append(path)
    return paths


def bland_altman(called, true) -> dict:
    """Bias (mean of called - true), its sd and the 95 % limits of agreement."""
    called, true = np.asarray(called, np.float64), np.asarray(true, np.float64)
    diff = called - true
    if not diff.size:
        return {"n": 0, "bias": None, "sd": None, "lower": None, "upper": None}
    bias = float(diff.mean())
    if diff.size < 2:  # one cartridge: a bias, but no spread to draw limits from
        return {"n": 1, "bias": bias, "sd": None, "lower": None, "upper": None}
    sd = float(diff.std(ddof=1))
    return {"n": int(diff.size), "bias": bias, "sd": sd,
            "lower": bias - 1.96 * sd, "upper": bias + 1.96 * sd}


def share_interval(k: int, n: int, confidence: float = 0.95) -> list[float] | None:
    """Wilson score interval of a share of ``k`` in ``n`` (None for n = 0)."""
    from scipy.stats import binomtest

    if n <= 0:
        return None
    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return [float(ci.low), float(ci.high)]


def share_ci(entry: dict) -> str:
    """`` (95 % CI 48-85 %)`` for a report entry with ``ci95``, else ``""``."""
    ci = entry.get("ci95")
    return f" (95 % CI {100 * ci[0]:.0f}-{100 * ci[1]:.0f} %)" if ci else ""


def agreement_text(entry: dict) -> str:
    """The positive class's count agreement of one mode of :func:`count_report` in a line:
    within tolerance and each cut-off, with their 95 % intervals."""
    tol = entry["within_tolerance"]
    cuts = ", ".join(f">= {c['cutoff']:g}: {c['agree']}/{c['n']}{share_ci(c)}"
                     for c in entry.get("cutoffs", ()))
    return f"within tolerance {tol['n']}/{tol['of']}{share_ci(tol)}" + \
        (f"; cut-offs agree {cuts}" if cuts else "")


def cutoff_agreement(called, true, cutoff: float) -> dict:
    """How often called and true counts fall on the same side of a cut-off (>= cutoff)."""
    pos_called = np.asarray(called, np.float64) >= cutoff
    pos_true = np.asarray(true, np.float64) >= cutoff
    agree = pos_called == pos_true
    both, neither = int((pos_called & pos_true).sum()), int((~pos_called & ~pos_true).sum())
    positive, negative = int(pos_true.sum()), int((~pos_true).sum())
    # Positive and negative percent agreement (CLSI EP12): of the samples the reference puts
    # at or over the cut-off, the share called so too; and of those under it.
    return {"cutoff": float(cutoff), "n": int(agree.size), "agree": int(agree.sum()),
            "agreement": float(agree.mean()) if agree.size else None,
            "ci95": share_interval(int(agree.sum()), int(agree.size)),
            "false_positive": int((pos_called & ~pos_true).sum()),
            "false_negative": int((~pos_called & pos_true).sum()),
            "both_positive": both, "both_negative": neither,  # with the two above: the 2 x 2
            "positive_agreement": both / positive if positive else None,
            "positive_ci95": share_interval(both, positive),
            "negative_agreement": neither / negative if negative else None,
            "negative_ci95": share_interval(neither, negative),
            # Agreement beyond chance (the two methods' own shares of positives): read beside
            # the overall agreement, which a cut-off few samples reach makes high by itself.
            "kappa": cohen_kappa(pos_called.tolist(), pos_true.tolist())}


def within_tolerance(called, true, rel: float = REL_TOLERANCE,
                     absolute: float = ABS_TOLERANCE) -> np.ndarray:
    """Per cartridge: |called - true| <= max(absolute, rel x true)."""
    called, true = np.asarray(called, np.float64), np.asarray(true, np.float64)
    return np.abs(called - true) <= np.maximum(absolute, rel * true)


def _recall_and_precision(cartridges: list[dict], name: str) -> dict:
    """Pooled over the cartridges, of the automatic count of class ``name``: the true cells
    counted (recall: of every true cell, detected or not), the counted that are true
    (precision), and the true shown to a person or counted, each with its 95 % Wilson
    interval; the cells as independent draws (cells of one cartridge share its look)."""
    true = sum(c["true"][name] for c in cartridges)
    counted_n = sum(c["automatic"][name] for c in cartridges)
    hits = counted_n - sum(c.get("false_calls", {}).get(name, 0) for c in cartridges)
    seen = sum(c.get("called_or_flagged", {}).get(name, 0) for c in cartridges)

    def share(n: int, of: int) -> dict:
        return {"n": int(n), "of": int(of), "share": n / of if of else None,
                "ci95": share_interval(int(n), int(of))}

    return {"recall": share(hits, true), "precision": share(hits, counted_n),
            "counted_or_shown": share(seen, true)}


def has_rates(cartridge: dict) -> bool:
    """Whether a cartridge's counts have rates per 7.5 mL (some blood was read)."""
    return all(v is not None for v in cartridge["true_per_7_5_ml"].values())


def count_report(cartridges: list[dict], class_names: Sequence[str],
                 positive: str = "ctc", cutoffs: Sequence[float] = CUTOFFS,
                 reported: Sequence[str] | None = None) -> dict:
    """Agreement of called and true counts per 7.5 mL over cartridges (each from
    :func:`cartridge_counts` plus ``sample_id``), automatic and after review: for every class
    a bias; for every counted class (``reported``, the model's reported classes: CTCs and
    clusters, a sample reports both, or a lab's own; default those two) the share within
    tolerance and the false calls per 1,000 events; for the ``positive`` class the clinical
    ``cutoffs``' agreement. A cartridge without rates (no frame read: no blood to count in)
    is listed among ``cartridges`` and named in ``left_out``, and takes part in no figure:
    scored as a count of 0 it would agree at every cut-off it never measured."""
    reported = COUNTED_CLASSES if reported is None else reported
    counted_classes = [positive, *(c for c in reported if c != positive and c in class_names)]
    out = {"cartridges": cartridges, "positive_class": positive,
           "counted_classes": counted_classes, "per_class": {},
           "left_out": [c["sample_id"] for c in cartridges if not has_rates(c)]}
    cartridges = [c for c in cartridges if has_rates(c)]
    for name in class_names:
        true = [c["true_per_7_5_ml"][name] for c in cartridges]
        entry = {"true_total": int(sum(c["true"][name] for c in cartridges))}
        for mode in ("automatic", "after_review"):
            called = [c[f"{mode}_per_7_5_ml"][name] for c in cartridges]
            entry[mode] = {"called_total": int(sum(c[mode][name] for c in cartridges)),
                           "bland_altman": bland_altman(called, true)}
            if name in counted_classes:
                ok = within_tolerance(called, true)
                entry[mode]["within_tolerance"] = {
                    "rule": f"|called - true| <= max({ABS_TOLERANCE:g}, "
                            f"{REL_TOLERANCE:.0%} of true)",
                    "n": int(ok.sum()), "of": int(ok.size),
                    "ci95": share_interval(int(ok.sum()), int(ok.size))}
                if name == positive:  # the clinical cut-offs are of CTCs alone
                    entry[mode]["cutoffs"] = [cutoff_agreement(called, true, c)
                                              for c in cutoffs]
        if name in counted_classes:
            entry["automatic"].update(_recall_and_precision(cartridges, name))
        out["per_class"][name] = entry
    events = sum(c["events"] for c in cartridges)
    false = {name: sum(c.get("false_calls", {}).get(name, 0) for c in cartridges)
             for name in counted_classes}
    out["false_positive_calls_per_1000_events"] = 1000.0 * false[positive] / max(events, 1)
    # A false cluster on a blank is reported per 7.5 mL as a false CTC is.
    out["false_calls_per_1000_events"] = {name: 1000.0 * n / max(events, 1)
                                          for name, n in false.items()}
    subtypes: dict[str, dict[str, int]] = {}
    for c in cartridges:  # the counted classes' subtypes over every cartridge
        for key, got in c.get("by_subtype", {}).items():
            total = subtypes.setdefault(key, {"true": 0, "counted": 0, "shown": 0})
            for what in total:
                total[what] += got[what]
    out["by_subtype"] = dict(sorted(subtypes.items()))
    out["detection"] = detection_match(cartridges)
    out["flagged_share"] = (sum(c["flagged"] for c in cartridges) /
                            max(sum(c["events"] for c in cartridges), 1))
    if all("guard" in c for c in cartridges):
        # The marker guard: share of all events it flags, and of the wrong automatic-or-held
        # calls of each counted class, the share it holds apart (and the right ones it holds:
        # its cost); ``guard`` is the positive class's, ``guard_by_class`` every counted one's.
        by_class = {}
        for name in counted_classes:
            g = {k: sum(c["guard"].get(name, {}).get(k, 0) for c in cartridges)
                 for k in ("wrong_calls", "wrong_held", "right_held")}
            # (null where there was no wrong call to catch: 0.0 read "catches none")
            by_class[name] = {**g, "catch_share": g["wrong_held"] / g["wrong_calls"]
                              if g["wrong_calls"] else None}
        out["guard"] = {**by_class[positive],
                        "flag_share": sum(c["guard_flagged"] for c in cartridges) /
                        max(events, 1)}
        out["guard_by_class"] = by_class
    return out


# Under this share of a cartridge's true cells (of at least POORLY_MATCHED_MIN) within the
# matching radius of an event, its truth and its frames are said not to line up: every miss and
# false call it scores may be a position off, not a call.
POORLY_MATCHED_SHARE, POORLY_MATCHED_MIN = 0.8, 10


def detection_match(cartridges: list[dict]) -> dict:
    """Of the true cells (``cartridge_counts``' ``true_events``), those matched to an event
    within :data:`MATCH_RADIUS_UM`, pooled, and the cartridges where under
    :data:`POORLY_MATCHED_SHARE` of them were (``poorly_matched``: truth whose positions or
    pixel size do not fit its frames; each of its misses and false calls may be that)."""
    true = sum(c.get("true_events", 0) for c in cartridges)
    matched = sum(c.get("true_matched", 0) for c in cartridges)
    poor = [c["sample_id"] for c in cartridges
            if c.get("true_events", 0) >= POORLY_MATCHED_MIN
            and c.get("true_matched", 0) < POORLY_MATCHED_SHARE * c["true_events"]]
    return {"radius_um": MATCH_RADIUS_UM, "true": int(true), "matched": int(matched),
            "share": matched / true if true else None, "poorly_matched": poor}
