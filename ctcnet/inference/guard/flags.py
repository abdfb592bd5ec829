"""The guard's flags: calls whose measured markers contradict the class definition, and events
unlike the training data, go to a person. Each flag is one row of :data:`FLAG_RULES` (the
calls it checks, the evidence that fires it); the levels are :class:`GuardRules`'.

The network decides from the whole crop; the guard re-measures the few facts the CellSearch
definition rests on (:mod:`.measurements`) and flags a ``ctc`` or ``cluster`` call that they
contradict. A call is checked as the kind its class is (``Taxonomy.guard_kind``: a lab's
``ctc_emt`` that includes the simulator's ``ctc_dim``, or says ``"checked_as": "ctc"``, as a
``ctc``; a ``lymphocyte`` class as a ``wbc``), so "``ctc`` calls" below are those of every
class checked as one:

* ``cd45_positive`` (``ctc`` calls): CD45 above its positivity level over the CK area (a call
  without a CK area, over the cell's core: a CD45-bright leukocyte called a CTC on a panel
  whose EpCAM stands for CK, where ``no_ck`` does not hold it), or, on scans, at the camera's
  ceiling on ``GuardRules.cd45_ceiling_share`` of that area or more. Leaks
  of other dyes into the CD45 channel (bleed-through: a copy of their pattern at up to
  ``max_leak`` of their counts; a bounded least-squares fit) are removed first, so a bright
  CTC's ghost is not read as CD45; saturated pixels are left out. A CTC is CD45 negative. (A
  cluster may carry CD45: leukocytes attached to a CTC are one kind of cluster.)
* ``no_dna``: no DAPI inside the CK area (a CK+ fragment or vesicle is debris, not a cell).
* ``dna_copies_ck``: DAPI inside the CK area, but no more than a copy of the CK pattern: once
  the best copy of CK is taken off, what is left has no structure beyond pixel noise. A
  nucleus has a shape of its own inside its cytoplasm; DAPI that is a scaled copy of CK is CK
  leaking into the DAPI channel (a tdEV or fragment of a bright stain) or one body glowing in
  every channel (autofluorescent debris, a dye blob). The share of the copy is free, so the
  check needs no leak estimate and holds at any spillover; the noise is read from the
  residual itself, so it holds at any brightness. The copy is moved by the frame's (or
  sample's) registration first: planes out of register move a leak's copy with the plane it
  is imaged in (``Evidence.copy_move``).
  It fires too where both channels read as copies of each other (DAPI over CK and CK over
  DAPI both under ``body_level``): one body lit in both, such as a vesicle whose CK leaks
  strongly into DAPI, whose copy alone reads within the copies' own noise spread.
* ``low_dna``: DAPI inside the object, but far less DNA than a nucleus holds: its DAPI content
  under ``dna_share`` of the median leukocyte's in the same frame (a crop set: the same
  sample). A CTC fragment's nuclear speck passes ``no_dna`` but holds a few per cent of a
  nucleus's DNA. With fewer than ``min_reference_events`` leukocyte calls there is no
  reference and no flag.
* ``no_ck``: no CK area at all, nor, on a panel with vimentin or EpCAM (which can vouch for a
  CK-negative CTC), that marker lit at the cell once DAPI's and CK's leaks into it are taken
  off (``Evidence.no_epithelial_marker``): a CTC is an epithelial cell, and a call with no
  epithelial marker is a guess from shape alone.
* ``out_of_focus`` (``ctc`` calls): the nucleus's edge over ``focus_ratio`` times as wide as
  the median leukocyte's in the same frame. The cartridge holds the cells in one plane, so a
  CTC is as sharp as the leukocytes beside it; an object out of that plane (a blob of dye or
  debris lit in CK and DAPI) is blurred wider, and no marker the other checks read
  contradicts a CTC there. Not for clusters, nor for a nucleus that reads as two (``nuclei``):
  touching nuclei merge below half their peak and read as a wide edge.
* ``one_cell`` (``cluster`` calls): one cell, not a cluster. A cluster is a CTC with
  leukocytes or platelets attached, or two CTCs or more: a ``cluster`` call where no exclusion
  marker (CD45, CD61, CD66b) lights ``partner_min_um2`` or more of a band round its CK area
  (beyond what CK and DAPI could leak there: a partner attached at one side), and
  with one nucleus (:mod:`.nuclei`: two touching nuclei are two domes of one mask), is a
  single cell by that definition, most often a CTC whose elongated outline the network took
  for two. Panels without an exclusion marker or DAPI never flag it. With a CTC's markers
  such a cell is a CTC by them (``MARKERS_CTC``, :meth:`.evidence.Evidence.lone_ctc_cell`):
  on a cartridge the markers' call makes it ``ctc``.
* ``possible_ctc`` (the guard's other direction): a ``wbc`` or ``debris`` call that shows what
  the CellSearch definition asks of a CTC, a CK area of at least a 4 um cell clearly CK
  positive, with DNA of its own inside it (not a speck far below a leukocyte's DNA), a nucleus
  and a cytoplasm each with a shape of its own and no CD45 over it, nor any exclusion marker
  (CD45, CD61, CD66b) over it or round it beyond what CK and DAPI could leak there: a
  possible missed CTC, shown to a person. The network's own doubt is the other route: a
  ``wbc``, ``debris`` or ``cluster`` call to which it still gives a CTC
  ``possible_ctc_proba`` or more, with dim CK that is more than a copy of DAPI, DNA in the
  CK area that is more than a copy of CK, in a nucleus as sharp as the leukocytes' (what a
  ``ctc`` call must pass). On either route a CK+CD45+ event stays a leukocyte, a CK+CD66b+
  one a granulocyte: they are never flagged.
* ``unusual``: the event's measured intensity profile lies far from what the model was
  trained on (:func:`.reference.ood_distance` above the reference's threshold), on a call of a
  counted class (the model's reported classes: ``ctc``, ``cluster`` or a lab's own) or an
  event with a CTC's CK and DNA and no CD45 or other exclusion marker over or round its CK
  area: where a CTC could hide. A ``ctc`` call
  whose markers meet the CellSearch definition on their own (that CK and DNA, none of those
  markers, DNA of a whole cell) rests on them and is counted, not flagged.
  Models without a reference (``spec.metrics["guard"]``) never flag it.

:func:`review_flags` is the one entry point for predict, the model card and the robustness
matrix.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ctcnet.inference.guard.evidence import Evidence
from ctcnet.inference.guard.measurements import (
    REGISTERED_COLUMNS,
    ExclusionReader,
    measure_for_guard_start,
)
from ctcnet.inference.guard.rules import (
    CLUSTER_PARTNER,
    DOUBTED_CALLS,
    FLAGS,
    GUARDED_CLASSES,
    MARKERS_CTC,
    MARKERS_VOUCH,
    RULES,
    GuardRules,
)
from ctcnet.nn.calls import DecisionRule, top_class


@dataclass(frozen=True)
class FlagRule:
    """One flag: the calls it checks (the kinds of call, ``GUARD_KINDS``, that the taxonomy's
    classes are checked as: a ``ctc`` rule checks a lab's ``ctc_emt`` too; ``None``: every
    call), what fires it, and whether the model and panel let it apply at all."""

    flag: str
    calls: tuple[str, ...] | None
    fires: Callable[[Evidence], np.ndarray]
    applies: Callable[[Evidence], bool] = lambda e: True


def _cd45_positive(e: Evidence) -> np.ndarray:
    return np.asarray(e.rules.cd45_positive(e.col), bool)


def _unusual(e: Evidence) -> np.ndarray:
    # An unusual event can change a count only where a CTC could hide: a call of a counted
    # class (the model's reported classes: ctc, cluster, or a lab's own), or an event with a
    # CTC's CK and DNA (a cell's CK area, clearly CK positive, a nucleus of its own inside
    # it: a CTC is CK positive and nucleated by definition) and no
    # CD45 or other exclusion marker over or round that CK area, once the leaks are taken off
    # (the CellSearch line ``possible_ctc`` holds too: a CK+CD45+ event called a leukocyte
    # stays one). Unusual debris or leukocytes without them are reported by the profile
    # alone, not queued for a person. On the 20 counting cartridges (10 frames) the unusual
    # events with a CK area were 1,124 (1.96 % of the events; tdEVs, aggregates, fragments,
    # bare nuclei and lymphocytes), 2 of them CTCs, both called ctc. The CD45 line takes 165
    # more off the list there (157 CK+CD45+ leukocytes called wbc, 8 debris, no CTC): events
    # shown 1.06 % -> 0.77 %.
    #
    # A ``ctc`` call whose markers meet the CellSearch definition on their own (a CTC's CK and
    # DNA, no CD45 or other exclusion marker over or round the CK area, DNA of a whole cell)
    # rests on the markers, not on the network's reading of an unfamiliar profile: it is
    # counted, not held (a CK+ CD45- nucleated cell is counted unless the evidence says
    # otherwise). The demo cartridge held one dim CTC so; on the 20 counting cartridges (10
    # frames) one CTC more is counted (projected recall 0.938 -> 0.943), no false CTC call.
    vouched = e.ctc_call_on_markers()
    # Not read (no CK area, no such channel): nothing seen lit.
    return e.far_from_reference & ~vouched & (e.is_call(e.spec.taxonomy.reported_classes()) |
                                              (e.markers_of_ctc & ~e.exclusion_marker_lit()))


# In the order of ``FLAGS`` (the flags table's columns).
FLAG_RULES = (
    FlagRule("cd45_positive", ("ctc",), _cd45_positive),
    FlagRule("no_dna", GUARDED_CLASSES, lambda e: e.no_dna_in_ck),
    # Each contradiction is measured once per event: the flags and the doubt route read the
    # same arrays. A CK area without DNA is ``no_dna``, not a copy.
    FlagRule("dna_copies_ck", GUARDED_CLASSES,
             lambda e: ~e.no_dna_in_ck & (e.dna_copies_ck | e.one_body)),
    FlagRule("low_dna", GUARDED_CLASSES, lambda e: e.has_ck_area & e.little_dna),
    FlagRule("no_ck", GUARDED_CLASSES, Evidence.no_epithelial_marker),
    FlagRule("out_of_focus", ("ctc",), Evidence.out_of_focus),
    FlagRule("one_cell", ("cluster",), lambda e: e.one_cell),
    FlagRule("unusual", None, _unusual, applies=lambda e: bool(e.reference)),
    # wbc and debris calls by their markers, wbc, debris and cluster calls by the network's
    # own doubt (each route checks its own calls).
    FlagRule("possible_ctc", DOUBTED_CALLS, Evidence.possible_ctc),
)
assert tuple(rule.flag for rule in FLAG_RULES) == FLAGS

# The guard's measurements an event table carries, so that a hold can be checked from the
# table and the review page shows what the flags read: noise units of the crop's own
# background, but the CK area (µm² at the model's scale) and the nucleus's edge (µm). A
# column read only where a flag could turn on it (``ON_DEMAND_COLUMNS``) is NaN elsewhere.
TABLE_MEASURES = ("ck_peak", "ck_area_um2", "dna_in_ck", "cd45_over_ck", "exclusion_around_ck",
                  "dna_own_structure", "dna_edge_um")
# DAPI's own structure is a share of the residual's pixel noise: where that noise is all but
# absent (a small or clipped area, a smooth upsampled crop) the share runs to millions (9 of
# 896 events of one simulated cartridge), which the flags read only against levels near 1.
# The table (and the review page) gives it up to this bound.
OWN_STRUCTURE_SHOWN = 1000.0


def table_measures(measured: pd.DataFrame, pixel_size_um: float) -> dict[str, np.ndarray]:
    """``TABLE_MEASURES`` of the guard's ``measured`` table (float32; NaN for a column it
    lacks)."""
    n = len(measured)
    out = {}
    for name in TABLE_MEASURES:
        source = "ck_area" if name == "ck_area_um2" else name
        values = measured[source].to_numpy(np.float32) if source in measured else \
            np.full(n, np.nan, np.float32)
        out[name] = values * np.float32(pixel_size_um ** 2) if source == "ck_area" else values
    out["dna_own_structure"] = np.minimum(out["dna_own_structure"], OWN_STRUCTURE_SHOWN)
    return out


def call_indices(called: np.ndarray, proba: np.ndarray, class_names,
                 decision: DecisionRule | None) -> np.ndarray:
    """Class indices of calls given by name. A row whose call is none of the model's classes
    (``failed``: non-finite probabilities) keeps the index the decision rule's argmax gives, as
    when the calls are made here (its measurements still meet the out-of-distribution check)."""
    index = pd.Index(list(class_names)).get_indexer(np.asarray(called, dtype=object))
    missing = index < 0
    if missing.any():
        index[missing] = top_class(np.asarray(proba)[missing], class_names, decision)[0]
    return index


def review_flags(crops: np.ndarray, proba: np.ndarray, spec, rules: GuardRules = RULES,
                 measured: pd.DataFrame | None = None, groups: np.ndarray | None = None,
                 decision: DecisionRule | str | None = "spec", *,
                 max_leak: float | None = None,
                 called: np.ndarray | None = None, start=None,
                 markers_cd45: str | None = None) -> pd.DataFrame:
    """Boolean flags per event (columns ``FLAGS``, ``any``, ``MARKERS_CTC`` and
    ``MARKERS_VOUCH``) for crops and their calls (``MARKERS_CTC``: a ``wbc`` or ``debris`` call
    whose markers meet the CellSearch definition of a CTC on their own, the first route to
    ``possible_ctc``; ``MARKERS_VOUCH``: a ``ctc`` call doubted toward a cluster whose markers
    meet it on one cell, which that doubt does not queue; neither is a review flag), and
    ``CLUSTER_PARTNER``, the partners a ``cluster`` call's markers read
    (:meth:`.evidence.Evidence.cluster_partner`).

    ``rules``: the levels (:class:`GuardRules`); ``max_leak`` overrides its leak allowance
    (:func:`leak_allowance`: more on display exports). ``groups``: one label per crop (e.g.
    sample ids) whose leukocytes are the DNA and focus reference (default: the crops are one
    frame). ``measured``: :func:`measure_for_guard` (or :func:`measure`) of the crops with the
    same rules, if already made; CD45 is then measured here on the events whose flags read
    it. ``called``: the calls the flags check (class names, one per crop: predict's
    ``model_class``, a crop set's network calls), taken as given; None: made here with
    ``decision``, the rule the calls were made with (default ``"spec"``: the model's own at
    cartridge prevalence; a crop set's calls are made without one, None, or at a stated
    prior). ``start``: what :func:`measure_for_guard_start` started ``measured`` from, if
    kept (the CD45 columns are then read without preparing the crops again).
    ``markers_cd45``: what ``MARKERS_CTC`` and ``MARKERS_VOUCH`` also ask of CD45 over the
    CK area, where the markers make calls (:data:`MARKERS_CD45`: a cartridge's
    ``"background"``, a crop set's ``"no_excess"``).
    """
    rules = rules.with_leak(max_leak)
    proba = np.asarray(proba)
    n = len(proba)
    if n == 0:
        flags = pd.DataFrame({f: np.zeros(0, bool) for f in FLAGS})
        flags["any"] = np.zeros(0, bool)
        return flags.assign(**{name: np.zeros(0, np.float32) for name in TABLE_MEASURES})
    rule = spec.decision if decision == "spec" else decision
    called = (top_class(proba, spec.class_names, rule)[0] if called is None
              else call_indices(called, proba, spec.class_names, rule))
    if measured is None:
        measured, start = measure_for_guard_start(crops, spec, rules)
    elif start is not None and start.rules != rules:  # made under other levels: not reused
        start = None
    e = Evidence(measured.copy(), called, proba, spec, rules, groups)
    _read_exclusion_markers(e, crops, spec, rules, start)
    flags = {}
    for rule in FLAG_RULES:
        if not rule.applies(e):
            flags[rule.flag] = np.zeros(n, bool)
            continue
        fired = np.asarray(rule.fires(e), bool)
        flags[rule.flag] = fired if rule.calls is None else fired & e.is_kind(rule.calls)
    # ``any`` on the arrays, with the flags in one table (a pandas row reduction and a column
    # write cost a frame more than the flags' logic).
    flags["any"] = np.logical_or.reduce([flags[f] for f in FLAGS])
    table = pd.DataFrame(flags)
    table[MARKERS_CTC] = e.markers_ctc(flags["possible_ctc"], markers_cd45)
    table[MARKERS_VOUCH] = e.markers_vouch(markers_cd45)
    table[CLUSTER_PARTNER] = e.cluster_partner()
    # (one join: a pandas write a column costs more than the columns)
    return pd.concat([table, pd.DataFrame(table_measures(e.m, spec.pixel_size_um))], axis=1)


def _read_exclusion_markers(e: Evidence, crops: np.ndarray, spec, rules: GuardRules,
                            batch=None) -> None:
    """Fill ``ON_DEMAND_COLUMNS`` of ``e.m`` where not measured already, each on the events
    whose flags could still turn on it (their leak fits are most of the cost of measuring):
    DAPI and CK over a copy of each other moved by the group's registration where its planes
    are out of register (the copy tests and a CTC's body), CK's own shape on the possible
    CTCs, on the ``ctc`` and ``cluster`` calls whose DAPI reads near a copy of CK and on the
    ``ctc`` calls with a CTC's body that the network doubts toward a cluster
    (``markers_vouch``), CD45 on ``ctc`` calls and on the possible
    CTCs whose route holds, the exclusion markers over and round the CK area where CD45 is not
    lit (on those and those ``ctc`` calls) and on ``cluster`` calls, and the nuclei of the
    cluster calls and those ``ctc`` calls that no partner marker makes a cluster and of the
    ``ctc`` calls whose nucleus reads blurred.
    Elsewhere a column stays NaN: every flag comes out as it would with it read.
    ``batch``: the measurements' own start (when made here), so the crops are not prepared
    twice."""
    # In a frame (or sample) out of register, DAPI and CK over each other's copy lined up
    # first: which events the other columns are read on depends on them (``candidates``).
    # Read where DAPI reaches a nucleus's level in a CK area: the copy tests and a CTC's body
    # read nothing elsewhere.
    copies = e.moved & e.has_ck_area & ~e.no_dna_in_ck
    if copies.any():
        for col in REGISTERED_COLUMNS:
            if col not in e.m:
                e.set_col(col, np.full(len(e.names), np.nan, np.float32))
        copies &= np.isnan(e.col(REGISTERED_COLUMNS[1]))
        _fill(e, ExclusionReader(crops, spec.panel, spec.pixel_size_um, rules, copies, batch),
              "registered", copies, e.copy_move)
    is_ctc, clusters = e.is_kind(("ctc",)), e.is_kind(("cluster",))
    # The clusters whose partner and nuclei are read: the cluster calls (``one_cell``) and
    # the other clusters the network saw with a CTC's body (``lone_ctc_cell``).
    clusters = clusters | (e.cluster_seen & e.lone_cell_body)
    candidates = e.candidates()
    unusual = e.unusual_with_ctc_body()
    # The ctc calls with a CTC's body doubted toward a cluster, whose markers may settle it
    # (``markers_vouch``).
    vouch = is_ctc & e.markers_of_ctc & ~e.little_dna & e.cluster_next
    # The ctc calls whose nucleus reads blurred: one nucleus or two (``out_of_focus``).
    blurred = is_ctc & e.blurred & np.isnan(e.col("nuclei"))
    # CK's own shape in place is read where the planes are in register: out of register the
    # flags read it over the copy lined up (``Evidence.copy_structure``), read above.
    ck_in_place = ~e.moved & np.isnan(e.col("ck_own_structure"))
    # (numpy, not a pandas selection of two columns: a millisecond a frame)
    todo = ((is_ctc | candidates | unusual) & np.isnan(e.col("cd45_over_ck"))) | \
        ((clusters | vouch) & (np.isnan(e.col("partner_um2")) | np.isnan(e.col("nuclei")))) | \
        blurred | (vouch & (ck_in_place | np.isnan(e.col("exclusion_around_ck"))))
    # The guarded calls without a CK area on a panel whose EpCAM or vimentin may stand for
    # it: that marker's excess (``no_ck``).
    bare = e.is_kind(GUARDED_CLASSES) & (e.col("ck_area") == 0) & \
        np.isnan(e.col("vouch_peak")) if e.vouching_panel else np.zeros(len(todo), bool)
    todo = todo | bare
    if not todo.any():
        return
    reader = ExclusionReader(crops, spec.panel, spec.pixel_size_um, rules, todo, batch)

    def fill(group: str, rows: np.ndarray) -> None:
        _fill(e, reader, group, rows & todo)

    # CK's own shape on the possible CTCs, and on the ctc and cluster calls whose DAPI reads
    # close to a copy of CK (``one_body``).
    fill("ck_own", (candidates | (e.is_kind(GUARDED_CLASSES) & e.dna_near_copy) | vouch) &
         ck_in_place)
    holds = candidates & e.route_holds()
    fill("cd45", is_ctc | holds | unusual)
    fill("vouch", bare)
    with np.errstate(invalid="ignore"):  # NaN: CD45 unread over an all-saturated area
        # One read for both (the leak fit's cost is mostly its fixed part)
        fill("around", ((holds | unusual | vouch) &
                        (e.col("cd45_over_ck") <= rules.cd45_level)) |
             (clusters & np.isnan(e.col("partner_um2"))))
        fill("nuclei", ((clusters | vouch) & (e.col("partner_um2") < rules.partner_min_um2)) |
             blurred)
    # A lone cell called a cluster with a CTC's CK and DNA (``MARKERS_CTC`` may call it a CTC):
    # CD45 over its CK area and CK's own shape, where not read above.
    lone = clusters & e.one_cell & e.lone_cell_body
    fill("cd45", lone & np.isnan(e.col("cd45_over_ck")))
    fill("ck_own", lone & ck_in_place)


def _fill(e: Evidence, reader: ExclusionReader, group: str, rows: np.ndarray,
          moves: np.ndarray | None = None) -> None:
    """Read ``group``'s columns on ``rows`` into the evidence (its other rows kept)."""
    if not rows.any():  # nothing to read: no column rewritten (a pandas write costs)
        return
    for col, values in reader.read(group, rows, moves).items():
        column = e.col(col).copy()
        column[rows] = values[rows]
        e.set_col(col, column)
