"""What the guard's flags do to the calls and the counts: the marker rule over the network's
calls (:func:`marker_calls`), the calls of a crop set with the markers taking part
(:func:`crop_set_calls`, :func:`crop_set_review`), an event table's ``guard`` column
(:func:`guard_events`), which calls enter the automatic count (:func:`counted`), and the
guard's lines of summary.json (:func:`guard_summary`, :func:`cluster_partners`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ctcnet.core.columns import with_columns
from ctcnet.inference.cluster_parts import HELD_REPEATS
from ctcnet.inference.guard.flags import FLAG_RULES, TABLE_MEASURES, review_flags
from ctcnet.inference.guard.measurements import (
    READ_CHUNK,
    measure,
    measure_for_guard,
    measure_for_guard_start,
)
from ctcnet.inference.guard.rules import (
    CLUSTER_PARTNER,
    FLAGS,
    GUARDED_CLASSES,
    MARKERS_CTC,
    MARKERS_DEBRIS_CTC,
    MARKERS_VOUCH,
    MISSED_CTC_CALLS,
    RULES,
    GuardRules,
)
from ctcnet.inference.marker_fusion import fused_proba, marker_fusion_of
from ctcnet.inference.tables import filed_by_prior_of
from ctcnet.nn.calls import DecisionRule, deployment_proba


def marker_calls(called: np.ndarray, flags: pd.DataFrame, class_names,
                 kinds=None, proba: np.ndarray | None = None, reported=None) -> np.ndarray:
    """The calls with the CellSearch definition read off the markers put over the network's:
    a ``wbc`` or ``debris`` call whose markers make it a CTC on their own (a CK area of a cell
    over 4 um, clearly CK positive, a nucleus with DNA and a shape of its own, no CD45 or other
    exclusion marker over or round it: ``MARKERS_CTC``) becomes ``ctc`` (:func:`markers_call`
    of ``proba`` and ``reported``: a lab's ``ctc_emt`` where the network rates it higher); a
    call checked as a
    ``ctc`` (``kinds``: the guard kind of each of ``class_names``, the taxonomy's
    ``guard_kinds()``; default: each its own) with CD45 over its CK area (``cd45_positive``)
    becomes ``wbc``. Both stay flagged for review."""
    out = np.asarray(called, dtype=object).copy()
    # The classes by their kinds, whatever a lab names them (its "leukocyte" was never made
    # a CTC's, nor a CD45+ "tumour" call a leukocyte's).
    missed = [n for kind in MISSED_CTC_CALLS for n in _of_kind(kind, class_names, kinds)]
    if _of_kind("ctc", class_names, kinds):
        made = flags[MARKERS_CTC].to_numpy(bool) & np.isin(out, missed)
        out[made] = markers_call(proba, class_names, kinds, len(out), reported)[made]
    leukocytes = _of_kind("wbc", class_names, kinds)
    if leukocytes:
        out[flags["cd45_positive"].to_numpy(bool) &
            np.isin(out, _of_kind("ctc", class_names, kinds))] = leukocytes[0]
    return out


def markers_call(proba: np.ndarray | None, class_names, kinds=None, n: int = 0,
                 reported=None) -> np.ndarray:
    """(N,) the class a CTC's markers call each event: of the reported classes (``reported``;
    None: every class) checked as a ``ctc`` (``kinds``), the one the network rates highest
    (``ctc`` for the default classes; a lab's ``ctc_emt`` where the network finds it likelier
    than ``ctc``; never a class the sample does not count); ``n`` rows without ``proba``."""
    ctcs = _of_kind("ctc", class_names, kinds, reported)
    rows = n if proba is None else len(proba)
    if len(ctcs) < 2 or proba is None:
        return np.full(rows, "ctc" if "ctc" in ctcs or not ctcs else ctcs[0], dtype=object)
    names = list(class_names)
    columns = np.asarray(proba, np.float64)[:, [names.index(c) for c in ctcs]]
    return np.asarray(ctcs, dtype=object)[np.nan_to_num(columns, nan=-1.0).argmax(axis=1)]


def _of_kind(kind: str, class_names, kinds=None, reported=None) -> list[str]:
    """The classes of ``class_names`` checked as ``kind`` (``kinds``: their guard kinds;
    default: each its own), of ``reported`` only where given."""
    kinds = list(class_names) if kinds is None else list(kinds)
    return [n for n, k in zip(class_names, kinds)
            if k == kind and (reported is None or n in reported)]


def markers_overrule(model_class: np.ndarray, markers_ctc: np.ndarray, proba: np.ndarray,
                     class_names, filed: np.ndarray | None = None,
                     edge_cut: np.ndarray | None = None, kinds=None,
                     reported=None) -> np.ndarray:
    """Bool per event: a cartridge event's ``wbc``, ``debris`` or lone-cell ``cluster`` call
    that its markers make ``ctc`` (``filed``: the class each event is filed as, if not its
    call; ``edge_cut``: the events cut by the frame border, which stay as filed).

    The CellSearch definition met on the markers alone (``MARKERS_CTC``: a CK area of a cell,
    clearly CK positive, a nucleus with a shape of its own, no CD45 or other exclusion marker
    over or round it), and the network itself finding the event at least as likely a CTC (or
    a cluster) as what it was called (its probabilities before the cartridge's prior): the
    prior, which keeps the rare CTC call from the far more numerous leukocytes, then no longer
    holds a CK+ CD45- nucleated cell back unless the network's own evidence says otherwise. On
    the 20 full-size counting cartridges (the simulator's look of the day) the 190 ``wbc``
    calls with those markers were 13 CTCs, 21 debris and 155 leukocytes (and one no object of
    the truth), and the 15 this picks 13 CTCs and 2 debris (with CD45 read at the background,
    ``GuardRules.markers_cd45_band``: 3 leukocytes more without it). A ``debris`` call is
    counted so only where the network also gives a CTC or a cluster ``MARKERS_DEBRIS_CTC``
    (0.75) or more before the prior (a cluster only where the markers read one cell,
    :meth:`~.evidence.Evidence.lone_ctc_cell`: a cluster is a CTC with a partner or a second
    cell): on full-size cartridges 41 of the 49 debris calls those markers make CTCs were bare
    nuclei and CK+ blobs, most at lower p(ctc). Where the network gives a cluster more than a
    CTC, ``markers_ctc`` already asks for one cell (:meth:`~.evidence.Evidence.markers_ctc`).
    The other calls with those markers stay possible CTCs for a person."""
    names = list(class_names)
    if not _of_kind("ctc", names, kinds) or not len(model_class):
        return np.zeros(len(model_class), bool)
    proba = np.asarray(proba, np.float64)
    model_class = np.asarray(model_class, object)
    filed = np.asarray(model_class if filed is None else filed, object)
    # A cluster is the network's CTC with a partner or a second cell; its markers are a CTC's
    # only where the guard found neither (``one_cell``). A cluster call already holds the CTC
    # the network saw; a wbc or debris call, where the network finds a CTC or a cluster as
    # likely as its call.
    likelier = np.isin(model_class, _of_kind("cluster", names, kinds))
    # (a lab's classes checked as a CTC or a cluster, ``kinds``, bear one too; and its
    # classes checked as wbc or debris, whatever their names, are those calls)
    bearing = [names.index(c) for kind in ("ctc", "cluster")
               for c in _of_kind(kind, names, kinds, reported)]
    for kind in MISSED_CTC_CALLS:
        for call in _of_kind(kind, names, kinds):
            with np.errstate(invalid="ignore"):  # a row not finite has no call ("failed")
                agrees = (proba[:, bearing] >= proba[:, [names.index(call)]]).any(axis=1)
                if kind == "debris":  # the network itself sure of a CTC or a cluster
                    agrees &= (proba[:, bearing] >= MARKERS_DEBRIS_CTC).any(axis=1)
                likelier |= (model_class == call) & agrees
    out = likelier & (filed == model_class) & np.asarray(markers_ctc, bool)
    if edge_cut is not None:
        out &= ~np.asarray(edge_cut, bool)
    return out


def crop_set_calls(called: np.ndarray, flags: pd.DataFrame, crops: np.ndarray,
                   proba: np.ndarray, spec, decision: DecisionRule | None = None,
                   rules: GuardRules = RULES, measured: pd.DataFrame | None = None, *,
                   max_leak: float | None = None) -> np.ndarray:
    """The calls ctcnet makes on a crop set (each crop a cell someone chose), the markers
    taking part: with the model's marker fusion (``spec.metrics["marker_fusion"]``,
    :mod:`ctcnet.inference.marker_fusion`) the most probable class of the network's
    probabilities and the measured markers read together, at ``decision``'s prior, a ``wbc``
    call with a CTC's markers and no CD45 made ``ctc``; without one, the marker rule
    (:func:`marker_calls`) over the network's ``called``. Either way the CellSearch line
    holds: an event that reads CD45 positive (:meth:`GuardRules.cd45_positive`: over its CK
    area, or its core without one, past ``rules.cd45_level``, noise units once the leaks are
    removed, each up to ``max_leak``: :func:`leak_allowance`; or clipped at the camera's
    ceiling) is never called ``ctc``. A row whose probabilities are not finite keeps its
    call (``failed``).
    ``measured``: :func:`measure` of the crops with every column (CD45 on every row, with
    these rules), if made (:func:`crop_set_review` makes it once for the flags and this)."""
    rules = rules.with_leak(max_leak)
    names = list(spec.class_names)
    fusion = marker_fusion_of(spec)
    kinds, reported = spec.taxonomy.guard_kinds(), spec.taxonomy.reported_classes()
    if not fusion or not len(called):
        return marker_calls(called, flags, names, kinds, proba, reported)
    if measured is None:
        measured = measure(crops, spec.panel, spec.pixel_size_um, rules)
    fused = deployment_proba(fused_proba(fusion, proba, measured, names), names,
                             decision).astype(np.float64)
    # (the flag's line: a leukocyte without CK reads CD45 over its core, an aggregate clipped
    # at the camera's ceiling in CD45)
    cd45 = np.asarray(rules.cd45_positive(lambda name: measured[name].to_numpy(np.float64)),
                      bool)
    for name in _of_kind("ctc", names, kinds):  # a lab's ctc_emt as a ctc
        fused[cd45, names.index(name)] = -1.0
    out = np.asarray(called, dtype=object).copy()
    finite = np.isfinite(np.asarray(proba, np.float64)).all(axis=1)
    out[finite] = np.asarray(names, dtype=object)[fused[finite].argmax(axis=1)]
    # A leukocyte has CD45: a ``wbc`` call on an event whose markers meet the CellSearch
    # definition on their own (``MARKERS_CTC``: no CD45 or other exclusion marker over or
    # round a clear CK area with a nucleus of its own; on display exports, CD45's median over
    # it no more than the leaks explain: ``crop_set_review``'s flags) is a CTC. (A ``debris``
    # call stays: an edge-cut cell or a blob can show the same markers.) On the shape-swap
    # family this moves CTC-vs-rest by at most 0.003 either way; on hand-drawn composites the
    # fused core3 calls 83 % of CTCs with it, 74 % without (scripts/drawn_composites.py).
    made = finite & np.isin(out, _of_kind("wbc", names, kinds)) & \
        flags[MARKERS_CTC].to_numpy(bool)
    if _of_kind("ctc", names, kinds):
        out[made] = markers_call(proba, names, kinds, reported=reported)[made]
    return out


def crop_set_measurements(crops: np.ndarray, spec, rules: GuardRules = RULES) -> pd.DataFrame:
    """What :func:`crop_set_review` measures of a crop set's crops before the calls: every
    column when the model's marker fusion reads CD45 on every crop, else what the guard
    measures whatever the call (the rest is read on the calls that need it). Each crop on its
    own, ``READ_CHUNK`` at a time: the arrays made on the way are several copies of a crop."""
    fusion = marker_fusion_of(spec)
    parts = [measure(part, spec.panel, spec.pixel_size_um, rules) if fusion
             else measure_for_guard(part, spec, rules)
             for part in (crops[start:start + READ_CHUNK]
                          for start in range(0, max(len(crops), 1), READ_CHUNK))]
    return parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)


def crop_set_review(crops: np.ndarray, proba: np.ndarray, spec, called: np.ndarray,
                    groups: np.ndarray | None = None, decision: DecisionRule | None = None,
                    max_leak: float | None = None, rules: GuardRules = RULES,
                    measured: pd.DataFrame | None = None) -> tuple[np.ndarray, pd.DataFrame]:
    """(calls, flags) of a crop set: :func:`review_flags` and :func:`crop_set_calls` over the
    network's ``called``, the crops measured once for both (:func:`crop_set_measurements`,
    or ``measured`` if made with these rules), and the checks of a ``ctc`` or ``cluster``
    call that the markers or the fusion made where the network called another class added to
    its flags. ``max_leak``: :func:`leak_allowance` of the crops."""
    rules = rules.with_leak(max_leak)
    full = start = None
    if measured is not None:
        full = measured
    elif (marker_fusion_of(spec) or len(crops) > READ_CHUNK) and len(crops):
        full = crop_set_measurements(crops, spec, rules)
    elif len(crops):  # measured once for both passes below (the second, when it runs)
        full, start = measure_for_guard_start(crops, spec, rules)
    flags = review_flags(crops, proba, spec, rules, measured=full, groups=groups,
                         decision=decision, called=called, start=start,
                         markers_cd45="no_excess")
    calls = crop_set_calls(called, flags, crops, proba, spec, decision, rules, measured=full)
    guarded = [n for kind in GUARDED_CLASSES
               for n in _of_kind(kind, spec.class_names, spec.taxonomy.guard_kinds())]
    made = (calls != np.asarray(called, object)) & np.isin(calls, guarded)
    if made.any():
        # A ctc or cluster call the markers or the fusion made is checked as one too (a
        # cluster the fusion made of a network's ctc call has its second cell or partner
        # looked for): the checks of the call made are added, none taken away.
        checked = review_flags(crops, proba, spec, rules, measured=full, groups=groups,
                               decision=decision, called=calls, start=start)
        for rule in FLAG_RULES:
            # (``unusual`` checks every call: the made call's distance is to its own class)
            if rule.calls is None or set(rule.calls) <= set(GUARDED_CLASSES):
                flags[rule.flag] = flags[rule.flag].to_numpy() | \
                    (made & checked[rule.flag].to_numpy())
        flags["any"] = flags[list(FLAGS)].any(axis=1)
        flags[CLUSTER_PARTNER] = np.where(made, checked[CLUSTER_PARTNER].to_numpy(object),
                                          flags[CLUSTER_PARTNER].to_numpy(object))
        for name in TABLE_MEASURES:  # what the checks of the call made read
            flags[name] = np.where(made, checked[name].to_numpy(np.float32),
                                   flags[name].to_numpy(np.float32))
    return calls, flags


def guard_events(events: pd.DataFrame, crops: np.ndarray | None, proba: np.ndarray,
                 spec, measured: pd.DataFrame | None = None,
                 markers_decide: bool = False, max_leak: float | None = None,
                 rules: GuardRules = RULES, start=None, overrule: bool = True,
                 reviewed: tuple[np.ndarray, pd.DataFrame] | None = None) -> pd.DataFrame:
    """Add ``guard`` (the flags that fired, joined by '+', or '') and ``CLUSTER_PARTNER`` (the
    partners of the calls filed as ``cluster``) to a labelled event table and send flagged
    events to review (``measured``: :func:`measure_for_guard`, or with
    ``markers_decide`` :func:`crop_set_measurements`, if made). The table's events are one
    frame, or, with a ``sample_id`` column, grouped by it.

    ``markers_decide``: the ``class`` column takes :func:`crop_set_calls` (crop sets, where
    each crop is a cell someone chose; on a cartridge, where a CTC is one event in tens of
    thousands, the markers send such events to review instead, but for the ``wbc`` calls of
    :func:`markers_overrule`, called ``ctc``; the ``markers_ctc`` column marks the events
    whose markers alone make a CTC). ``overrule``: without ``markers_decide``, whether
    :func:`markers_overrule`'s calls are made (False: every call is the network's, as a crop
    set read with ``--network-calls-only`` asks). ``max_leak``: see
    :func:`leak_allowance`. ``start``: what ``measured`` was started from
    (:func:`measure_for_guard_start`), if kept. ``reviewed``: with ``markers_decide``, the
    (calls, flags) :func:`crop_set_review` already gave for these events, not made again."""
    rules = rules.with_leak(max_leak)
    events = events.copy()
    if crops is None or not len(events):
        events["guard"] = pd.Series([""] * len(events), index=events.index, dtype=object)
        if not markers_decide:
            events[MARKERS_CTC] = np.zeros(len(events), bool)
        events[MARKERS_VOUCH] = np.zeros(len(events), bool)
        events[CLUSTER_PARTNER] = pd.Series([""] * len(events), index=events.index,
                                            dtype=object)
        return with_columns(events, {name: np.full(len(events), np.nan, np.float32)
                                     for name in TABLE_MEASURES})
    groups = events["sample_id"].astype(str).to_numpy() if "sample_id" in events else None
    if markers_decide:
        events["class"], flags = reviewed if reviewed is not None else crop_set_review(
            crops, proba, spec, events["class"].to_numpy(object), groups, spec.decision,
            rules=rules, measured=measured)
    else:
        # The guard checks the model's own call as predict made it (``model_class``, not an
        # edge-cut event's filed class); a table without it has its calls made here.
        given = events["model_class"].to_numpy(object) if "model_class" in events else None
        # The markers' call on a cartridge reads CD45 at the background (markers_cd45_band).
        flags = review_flags(crops, proba, spec, rules, measured=measured, groups=groups,
                             called=given, start=start, markers_cd45="background")
        if given is not None and overrule:
            flags = _overruled_by_markers(events, given, flags, crops, proba, spec, rules,
                                          measured, groups, start)
    # The new columns gathered and set in one step (with_columns: a pandas write a column
    # costs more than making them).
    new = {"guard": fired_names(np.stack([flags[f].to_numpy(bool) for f in FLAGS], axis=1))}
    # (``MARKERS_VOUCH`` reads the call checked; the class filed may differ: an edge cut.)
    vouched = flags[MARKERS_VOUCH].to_numpy(bool)
    if "model_class" in events:
        vouched = vouched & (events["model_class"].to_numpy(object) == "ctc")
    # (a table without its calls: those the flags read, a vouched one a ctc call)
    calls = events["class"].to_numpy(object) if "class" in events else \
        np.where(vouched, "ctc", "").astype(object)
    markers = flags[MARKERS_CTC].to_numpy(bool) if not markers_decide and MARKERS_CTC in flags \
        else np.zeros(len(events), bool)
    model_class = events["model_class"].to_numpy(object) if "model_class" in events else calls
    new["review"], vouched = guarded_review(
        events["review"].to_numpy(bool), flags["any"].to_numpy(), vouched,
        filed_by_prior_of(events), model_class, calls, markers,
        spec.taxonomy.reported_classes())
    if not markers_decide and MARKERS_CTC in flags:
        new[MARKERS_CTC] = markers
    new[MARKERS_VOUCH] = vouched
    # The partners of the calls filed as clusters (an edge-cut event filed as debris has
    # none); a table without its calls has those the flags were made on.
    partner = flags[CLUSTER_PARTNER].to_numpy(object)
    if "class" in events:
        partner = np.where(events["class"].to_numpy(object) == "cluster", partner, "")
    new[CLUSTER_PARTNER] = partner
    new.update({name: flags[name].to_numpy(np.float32) for name in TABLE_MEASURES})
    return with_columns(events, new)


def guarded_review(review: np.ndarray, held: np.ndarray, vouched: np.ndarray,
                   by_prior: np.ndarray, model_class: np.ndarray, calls: np.ndarray,
                   markers_ctc: np.ndarray, counted) -> tuple[np.ndarray, np.ndarray]:
    """(review, vouched) per event once the guard has read it: what :func:`guard_events` and
    a re-scored table (:func:`ctcnet.evaluation.decision.rescore`) show.

    A flag is shown (``held``). The network's own ``ctc`` call whose doubt toward a cluster the
    markers settle (``vouched``: one CTC, no partner, one nucleus,
    :meth:`~ctcnet.inference.guard.Evidence.markers_vouch`) is counted and that doubt not
    queued, but only a doubt: where the prior alone filed the call (``by_prior``: the
    network, with the markers a scan fusion read, finds a cluster the likeliest), the
    markers' one cell does not overturn that evidence; a dim second cell or dim platelets
    read as none (2 doublets and a CTC-platelet cluster among 20 dense simulated
    cartridges). A call the markers moved from one counted class to another (``markers_ctc``:
    a network's ``cluster`` made ``ctc`` as one cell) is shown: either call changes two
    counts. A ``ctc`` call the markers made against the network's ``wbc`` or ``debris`` stays
    shown where the network's doubt showed it: a leukocyte's dim CD45 under bright
    non-specific CK can read as none."""
    calls = np.asarray(calls, object)
    model_class = np.asarray(model_class, object)
    vouched = np.asarray(vouched, bool) & (calls == "ctc") & ~np.asarray(by_prior, bool)
    moved = np.asarray(markers_ctc, bool) & np.isin(model_class, list(counted)) & \
        np.isin(calls, list(counted)) & (calls != model_class)
    return (np.asarray(review, bool) & ~vouched) | np.asarray(held, bool) | moved, vouched


def fired_names(fired: np.ndarray) -> list[str]:
    """Per row of (N, F) bools over ``FLAGS``, the names of the flags set, joined by '+'
    ('' for none): joined once per pattern that occurs (a frame has a few), not per event."""
    if not len(fired):
        return []
    patterns, inverse = np.unique(fired, axis=0, return_inverse=True)
    names = np.array(FLAGS, dtype=object)
    joined = np.array(["+".join(names[row]) for row in patterns], dtype=object)
    return joined[inverse.reshape(-1)].tolist()


def _overruled_by_markers(events: pd.DataFrame, given: np.ndarray, flags: pd.DataFrame,
                          crops, proba, spec, rules, measured, groups, start) -> pd.DataFrame:
    """Call ``ctc`` the ``wbc`` and ``debris`` events that :func:`markers_overrule` picks (in
    ``events``'s ``class``; an edge-cut event keeps the class it is filed as), and return the
    flags of the calls as now made: those of a ``ctc`` call on these events (the frame's
    leukocyte reference without them), ``MARKERS_CTC`` as first read."""
    filed = events["class"].to_numpy(object) if "class" in events else given
    edge = events["edge_cut"].to_numpy(bool) if "edge_cut" in events else None
    kinds, reported = spec.taxonomy.guard_kinds(), spec.taxonomy.reported_classes()
    overruled = markers_overrule(given, flags[MARKERS_CTC], proba, spec.class_names, filed,
                                 edge, kinds, reported)
    if not overruled.any():
        return flags
    made = given.copy()
    made[overruled] = markers_call(proba, spec.class_names, kinds, reported=reported)[overruled]
    events["class"] = np.where(overruled, made, filed).astype(object)
    first = flags[MARKERS_CTC].to_numpy(bool)
    flags = review_flags(crops, proba, spec, rules, measured=measured, groups=groups,
                         called=made, start=start, markers_cd45="background")
    flags[MARKERS_CTC] = first
    return flags


def counted(events: pd.DataFrame) -> np.ndarray:
    """Bool per event: its call enters the automatic count. A call the guard flagged (markers
    contradict it, or the event is unlike the training data) is held for review and counted
    apart (``guard_summary``: ``by_call``)."""
    if "guard" not in events:
        return np.ones(len(events), bool)
    return events["guard"].fillna("").astype(str).to_numpy(object) == ""


def guard_summary(events: pd.DataFrame, spec) -> dict:
    """Counts for summary.json: events the guard sent to review, per flag and per call."""
    # Beside the marker guard's flags, the repeats of a cluster or a CTC held apart.
    flags = (*FLAGS, *HELD_REPEATS)
    if "guard" not in events or not len(events):
        return {"flagged": 0, "by_flag": {f: 0 for f in flags}, "by_call": {}}
    guard = events["guard"].fillna("").astype(str)
    hit = guard != ""
    by_call = events.loc[hit, "model_class"].value_counts()
    return {"flagged": int(hit.sum()),
            "by_flag": {f: int(guard.str.contains(f, regex=False).sum()) for f in flags},
            "by_call": {name: int(by_call.get(name, 0)) for name in spec.class_names}}


def cluster_partners(events: pd.DataFrame) -> dict[str, int]:
    """Counted ``cluster`` calls by the partners their markers read (``CLUSTER_PARTNER``), for
    summary.json: e.g. ``{"neutrophil": 2, "platelet": 1}`` (a cluster's kind matters: CTC-
    neutrophil clusters are the most metastatic); ``unread`` where the panel lets none be
    read (no exclusion marker, or no DAPI to count nuclei). Empty where none is counted."""
    if CLUSTER_PARTNER not in events or not len(events):
        return {}
    kept = counted(events) & (events["class"].astype(str).to_numpy(object) == "cluster")
    partners = events[CLUSTER_PARTNER].fillna("").astype(str).to_numpy(object)[kept]
    names, counts = np.unique(np.where(partners == "", "unread", partners).astype(str),
                              return_counts=True)
    return {str(k): int(v) for k, v in zip(names, counts)}
