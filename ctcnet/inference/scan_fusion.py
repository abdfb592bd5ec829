"""Marker fusion on cartridges: the network's probabilities and the guard's marker measurements
read together into one posterior, which the cartridge's decision rule acts on or only its
review band reads (the fusion's ``role``, below; pure numpy at run time, no torch, so it runs
beside ONNX too).

A cartridge's prior (``spec.decision``, a log weight near -3.75 for ``ctc``) keeps the rare CTC
call from the far more numerous debris. Read on the network's probabilities alone, it files a
bright-CK, CD45-negative, nucleated cell that the network gives p(ctc) 0.75-0.96 as a leukocyte
or debris, and such a cell reaches a person only as a possible CTC. The fusion is the crop
sets' multinomial logistic regression (:mod:`ctcnet.inference.marker_fusion`, the same inputs
and format) fitted on the events of simulated cartridges as predict detects, crops and measures
them, each class weighed alike, so that its posterior stands where the network's did: at the
balanced training prior, before the cartridge's prior (``scripts/fit_scan_fusion.py``; then the
decision rule or the review band is fitted on the fused posterior, ``scripts/fit_decision.py``,
``scripts/fit_review_band.py``). It travels in
the model spec as ``spec.metrics["scan_fusion"]`` (the checkpoint and the ONNX metadata carry
it); crop sets keep their own (``metrics["marker_fusion"]``). A model without one calls a
cartridge's events as before.

A fusion's ``role`` says what it decides. ``calls``: the cartridge's rule acts on the fused
posterior. ``review`` (the shipped default model's): the calls stay the network's (with the
markers' call on ``wbc`` and ``debris`` calls, :func:`ctcnet.inference.guard.markers_overrule`)
and the review band reads the fused posterior's counted classes instead of the network's
(:func:`ctcnet.nn.calls.calls_from_proba`'s ``band_proba``), so a leukocyte or debris event the
network gives a CTC a percent of, whose markers say otherwise, is not queued. Read on the
calls, the fusion also called bare nuclei and CK+ blobs ``ctc`` (false CTC calls 0.087 -> 0.296
per 1,000 events on the 20 counting cartridges, its rule refitted); read on the review band
alone it leaves the calls and counts as they were.

After the fusion the CellSearch line holds: an event that reads CD45 positive
(:meth:`GuardRules.cd45_positive`, the ``cd45_positive`` flag's line: CD45 over its CK area, or
over the cell's core without one, past ``GuardRules.cd45_level``, or clipped at the camera's
ceiling) is given no CTC probability, so it is never called ``ctc``.

The fusion reads the guard's costly columns (CK's own shape, CD45 over the CK area, the
exclusion markers round it: the leak fits), which predict otherwise reads only on the events
whose flags need them. Read on every event of a frame they cost 0.52 ms an event on this
project's CPU (two frames of 300 events, the frame's own start reused), 27 s of a 52,500-event
cartridge. So the fusion reads them, and applies, only where it could change a counted call
(:func:`fusion_rows`; its floors are stored with the fusion): events to which the network gives
a counted class (``ctc``, ``cluster``) 1 % or more, or whose columns measured on every event
read as a CTC's (bright CK with DNA inside it, CD45's peak no more than a leak). Elsewhere the
network's probabilities stand.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ctcnet.inference.guard.measurements import ExclusionReader
from ctcnet.inference.guard.rules import RULES, GuardRules
from ctcnet.inference.marker_fusion import (
    MEASURES,
    fused_proba,
    scan_fusion_of,
    scan_fusion_role,
)
from ctcnet.inference.tables import label_events
from ctcnet.nn.calls import COUNTED_CLASSES

# The events table's column marking the events whose probabilities are the fused posterior
# (written only by a model that carries a scan fusion).
FUSED_COLUMN = "scan_fused"
# The guard's column groups the fusion reads beyond what predict measures on every event
# (``ExclusionReader.GROUPS``: ck_own_structure; the CD45 columns; exclusion_around_ck).
READ_GROUPS = ("ck_own", "cd45", "around")
# Where the fusion applies, unless the fitted fusion states its own (``fusion["gate"]``).
# On the fitting cartridges (16 CTC-rich cartridges, 20,727 events, 616 CTCs, seed 64000) a
# counted class at 0.01 or more holds 26.0 % of the events and 614 of the CTCs (the other two:
# p(ctc) 0.004-0.007); the markers' route adds 2.8 % of the events and takes in every CTC
# (452-486 of them read so), and the CK+ CD45- nucleated cells the network reads at 1e-6
# (hand-drawn composites placed in scans) with them; 0.2 % of the leukocytes. Together 28.8 %
# of the events: 0.15 ms an event.
DEFAULT_GATE = {"counted_p": 0.01, "ck_peak": 8.0, "dna_in_ck": 3.0, "cd45_peak_share": 0.2,
                "cd45_peak_floor": 5.0}


def fusion_rows(proba: np.ndarray, measured: pd.DataFrame, spec,
                gate: dict | None = None) -> np.ndarray:
    """Bool per event: the fusion applies (its inputs are read there). A counted class holds
    ``gate["counted_p"]`` or more of the network's probability, or the markers read as a
    CTC's on the columns measured on every event: the CK area's peak at ``gate["ck_peak"]``
    noise units or more, DAPI inside it at ``gate["dna_in_ck"]`` or more, and CD45's peak
    within the disk no more than ``gate["cd45_peak_share"]`` of CK's peak plus
    ``gate["cd45_peak_floor"]`` (a leak; a leukocyte's membrane reads far over it). A row
    whose probabilities are not finite never (it stays ``failed``)."""
    gate = {**DEFAULT_GATE, **(gate or {})}
    proba = np.asarray(proba, np.float64)
    names = list(spec.class_names)
    counted = [names.index(c) for c in COUNTED_CLASSES if c in names]
    ck_peak = measured["ck_peak"].to_numpy(np.float64)
    cd45 = spec.panel.index_of_role("leukocyte")
    with np.errstate(invalid="ignore"):
        rows = proba[:, counted].sum(axis=1) >= gate["counted_p"] if counted else \
            np.zeros(len(proba), bool)
        markers = (ck_peak >= gate["ck_peak"]) & \
            (measured["dna_in_ck"].to_numpy(np.float64) >= gate["dna_in_ck"])
        if cd45 is not None:
            markers &= np.sinh(measured[f"peak_{cd45}"].to_numpy(np.float64)) <= \
                gate["cd45_peak_share"] * ck_peak + gate["cd45_peak_floor"]
    return (rows | markers) & np.isfinite(proba).all(axis=1)


def completed(crops: np.ndarray, spec, measured: pd.DataFrame, rows: np.ndarray,
              start=None, rules: GuardRules = RULES) -> pd.DataFrame:
    """``measured`` (:func:`~ctcnet.inference.guard.measure_for_guard`) with the columns the
    fusion reads beyond it filled on ``rows`` where still unread: the values
    :func:`~ctcnet.inference.guard.measure` gives those crops. ``start``: what ``measured``
    was started from (:func:`~ctcnet.inference.guard.measure_for_guard_start`), if kept."""
    out = measured.copy()
    rows = np.asarray(rows, bool)
    if not rows.any():
        return out
    if start is not None and start.rules != rules:  # made under other levels: not reused
        start = None
    reader = ExclusionReader(crops, spec.panel, spec.pixel_size_um, rules, rows, start)
    for group in READ_GROUPS:
        # (column by column: a pandas selection of several columns costs more than the test)
        need = rows & np.logical_or.reduce([np.isnan(out[col].to_numpy(np.float64))
                                            for col in ExclusionReader.GROUPS[group]])
        if not need.any():
            continue
        for col, values in reader.read(group, need).items():
            column = out[col].to_numpy(np.float32, copy=True)
            column[need] = values[need]
            out[col] = column
    return out


def fuse(proba: np.ndarray, measured: pd.DataFrame, class_names, fusion: dict,
         rows: np.ndarray, rules: GuardRules = RULES) -> np.ndarray:
    """(N, K) float32: the fused posterior on ``rows`` (the network's ``proba`` elsewhere),
    with no CTC probability left where CD45 reads positive (:meth:`GuardRules.cd45_positive`)."""
    out = np.array(proba, np.float32, copy=True)
    rows = np.asarray(rows, bool)
    if not rows.any():
        return out
    names = list(class_names)
    # The measures as arrays of the rows (what fused_proba reads of a table): a pandas
    # selection of columns and rows costs more than the fusion.
    measures = {m: measured[m].to_numpy()[rows] for m in MEASURES}
    out[rows] = fused_proba(fusion, out[rows], measures, names).astype(np.float32)
    if "ctc" in names:
        positive = rows & np.asarray(rules.cd45_positive(
            lambda name: measured[name].to_numpy(np.float64)), bool)
        if positive.any():
            out[positive] = _without_ctc(out[positive], np.asarray(proba)[positive],
                                         names.index("ctc"))
    return out


def _without_ctc(fused: np.ndarray, network: np.ndarray, ctc: int) -> np.ndarray:
    """Rows of ``fused`` with no CTC probability, renormalised over the other classes. A row
    the markers gave to CTC alone (the rest underflowed float32) takes the network's other
    classes, and failing those all of them alike: never a row of zeros, which is called
    ``ctc`` (the first class) as if the CTC probability had been kept."""
    out = np.array(fused, np.float64, copy=True)
    for fallback in (network, np.ones_like(out)):
        out[:, ctc] = 0.0
        empty = out.sum(axis=1) <= 0
        out[empty] = np.asarray(fallback, np.float64)[empty]
    out[:, ctc] = 0.0
    total = out.sum(axis=1, keepdims=True)
    return (out / np.where(total > 0, total, 1.0)).astype(np.float32)


def apply_scan_fusion(proba: np.ndarray, crops: np.ndarray | None,
                      measured: pd.DataFrame | None, spec, start=None,
                      rules: GuardRules = RULES
                      ) -> tuple[np.ndarray, pd.DataFrame | None, np.ndarray | None]:
    """(probabilities, measurements, fused rows) of a frame's events: with the model's scan
    fusion, the fused posterior where :func:`fusion_rows` says it applies and the guard's
    measurements completed there (the guard reuses them); without one (or no events),
    ``proba`` and ``measured`` as given and None."""
    fusion = scan_fusion_of(spec)
    if fusion is None or crops is None or measured is None or not len(proba):
        return proba, measured, None
    rows = fusion_rows(proba, measured, spec, fusion.get("gate"))
    measured = completed(crops, spec, measured, rows, start, rules)
    return fuse(proba, measured, spec.class_names, fusion, rows, rules), measured, rows


def marked_fused(events: pd.DataFrame, fused: np.ndarray | None) -> pd.DataFrame:
    """A labelled frame table with :data:`FUSED_COLUMN` (``fused``: :func:`apply_scan_fusion`'s
    rows; None, a model without a scan fusion: the table as it is)."""
    if fused is not None:
        events[FUSED_COLUMN] = np.asarray(fused, bool)
    return events


def fused_labels(work, proba: np.ndarray, spec, edge_class: str | None
                 ) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame | None]:
    """A frame's labelled events (:func:`ctcnet.inference.tables.label_events`), its
    probabilities and its guard measurements, with the model's scan fusion, if it carries
    one, taking part: with the role ``calls`` the posterior the cartridge's prior acts on is
    the network's and the markers' together; with ``review`` the calls stay the network's
    and the review band reads the fused posterior (its ``fused_p_<class>`` columns).
    ``work``: the frame's work (events, crops, measured, guard_start)."""
    fused_proba, measured, fused = apply_scan_fusion(proba, work.crops, work.measured, spec,
                                                     work.guard_start)
    if fused is not None and scan_fusion_role(spec) == "review":
        events = label_events(work.events, proba, spec, edge_class, band_proba=fused_proba)
        return marked_fused(events, fused), proba, measured
    return marked_fused(label_events(work.events, fused_proba, spec, edge_class), fused), \
        fused_proba, measured
