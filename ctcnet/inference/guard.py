"""Marker-consistency guard: calls whose measured markers contradict the class definition, and
events unlike the training data, go to a person (pure numpy; no torch, so it runs beside the
ONNX runtime too).

The network decides from the whole crop; this guard re-measures the few facts the CellSearch
definition rests on and flags a ``ctc`` or ``cluster`` call that they contradict:

* ``cd45_positive`` (``ctc`` calls): CD45 above its positivity level over the CK area. Leaks
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
  residual itself, so it holds at any brightness.
* ``low_dna``: DAPI inside the object, but far less DNA than a nucleus holds: its DAPI content
  (background-subtracted counts summed over the nucleus) under ``dna_share`` of the median
  leukocyte's in the same frame (a crop set: the same sample). Leukocytes are the scan's own
  diploid reference, as in DNA-content cytometry, so the check holds at any stain strength. A
  CTC fragment's nuclear speck passes ``no_dna`` but holds a few per cent of a nucleus's DNA.
  With fewer than ``MIN_REFERENCE_EVENTS`` leukocyte calls there is no reference and no flag.
* ``no_ck``: no CK area at all, on a panel without vimentin or EpCAM that could vouch for a
  CK-negative CTC.
* ``out_of_focus`` (``ctc`` calls): the nucleus's edge (DAPI falling from 75 % to 25 % of its
  peak) over ``focus_ratio`` times as wide as the median leukocyte's in the same frame. The
  cartridge holds the cells in one plane, so a CTC is as sharp as the leukocytes beside it;
  an object out of that plane (a blob of dye or debris lit in CK and DAPI) is blurred wider,
  and no marker the other checks read contradicts a CTC there. Relative to the frame, the
  check holds for a whole frame out of focus. Not for clusters: touching nuclei merge below
  half their peak and read as a wide edge.
* ``possible_ctc`` (``wbc`` and ``debris`` calls; the guard's other direction): the event
  shows what the CellSearch definition asks of a CTC, a CK area of at least a 4 um cell
  (``POSSIBLE_CTC_MIN_AREA_UM2``) clearly CK positive (``POSSIBLE_CTC_CK_PEAK``), with DNA of
  its own inside it (``dna_level``, not a speck far below a leukocyte's DNA), a nucleus and a
  cytoplasm each with a shape of its own (``POSSIBLE_CTC_STRUCTURE``: neither is a leak of the
  other) and no CD45 over it, nor any exclusion marker (CD45, CD61, CD66b: ``EXCLUSION_ROLES``)
  over it or round it (``AROUND_CK_UM``) beyond what CK and DAPI could leak there, yet the
  network called it something else: a possible missed CTC, shown to a person. The network's
  own doubt is the other route to the flag: a ``wbc``, ``debris`` or ``cluster`` call to which
  it still gives a CTC ``POSSIBLE_CTC_PROBA`` or more (calibrated, equal priors). It asks
  less of CK than the first route, so that dim CK and an apoptotic CTC's fragmented nucleus
  pass: CK at ``POSSIBLE_CTC_DOUBT_CK_PEAK`` that is more than a copy of DAPI, with DNA in
  the CK area that is more than a copy of CK, in a nucleus as sharp as the leukocytes' (what
  a ``ctc`` call must pass). (On either route a CK+CD45+ event stays a leukocyte, a CK+CD66b+
  one a granulocyte: they are never flagged.)
* ``unusual`` (every class): the event's measured intensity profile lies far from what the
  model was trained on: Mahalanobis distance of a few per-channel features to the training
  events of the called class, above the 99.5th percentile seen on validation. It needs the
  reference that training stores in the model spec (``spec.metrics["guard"]``, made by
  :func:`fit_reference`); models without one never flag ``unusual``. A change to the
  measurements needs the reference re-fitted (``scripts/refit_guard.py``).

The CK area is the centred object's: CK above a level relative to its own peak (a bright
neighbour in the disk does not raise it), saturated pixels included (a 12-bit scan clips the
brightest CTCs' whole cytoplasm).

Measurements use the same robust background and noise as the network's normalisation (10th
and 30th percentiles of the crop), on the crop the model saw (model pixel size).
``review_flags(crops, proba, spec)`` is the one entry point for predict and the robustness
matrix.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from scipy.ndimage import binary_dilation, binary_erosion, label, uniform_filter

from ctcnet.inference.spillover import robust_background
from ctcnet.nn.calls import top_class

log = logging.getLogger(__name__)

MARKER_FLAGS = ("cd45_positive", "no_dna", "dna_copies_ck", "low_dna", "no_ck")
FLAGS = MARKER_FLAGS + ("out_of_focus", "unusual", "possible_ctc")
GUARDED_CLASSES = ("ctc", "cluster")
# The column of ``review_flags`` that marks a CTC by its markers alone (see ``marker_calls``).
MARKERS_CTC = "markers_ctc"
# Calls checked for a missed CTC (the guard's other direction), and the least CK area such an
# event must show: a cell over 4 um across (the CellSearch size rule), pi * 2^2 um^2.
MISSED_CTC_CALLS = ("wbc", "debris")
POSSIBLE_CTC_MIN_AREA_UM2 = 12.5
# ... and its CK peak (noise units, 3x3 mean): clearly positive. At 5, the faint green
# autofluorescence of neutrophils passed (2 % of simulated leukocytes flagged); the CTCs the
# default network misses reach 14 and more (simulated held-out set, seed 424242).
POSSIBLE_CTC_CK_PEAK = 10.0
# The other route to that flag: the network's own doubt. A ``wbc``, ``debris`` or ``cluster``
# call to which it still gives a CTC at least this probability under equal priors (the model's
# calibrated probability, before any decision rule), that passes the checks below and has no
# exclusion marker over or round it. It finds the CTCs whose markers the checks above cannot
# vouch for: dim CK (peaks of 3-7 noise units) and apoptotic CTCs whose fragmented nucleus
# reads as two cells (called ``cluster``). The level was chosen on a simulated set of its own
# (750 a class, seed 47000, neither training nor any card's), with the route's first form
# (DNA and no exclusion marker only): at 0.1 core3 showed 99.6 % of true CTCs (98.8 % without
# the route), for 0.9 % more events sent to review. The default network showed 99.1 % (98.9 %),
# for 0.4 % more. At 0.05 the extra load was 1.5 % and 0.7 %; at 0.2 core3 showed 99.5 %.
# With the checks below it shows 99.2 % and 99.07 % there. On 20 full-size cartridges it adds
# about 1,000 events to the guard's 3,343 (0.1 % of events).
# (docs/robustness_matrix.md: the network's own doubt as a second route to possible_ctc)
POSSIBLE_CTC_PROBA = 0.1
# ... and the least CK such a call must show (noise units, 3x3 mean peak): CK positive, if
# dimly. Without it, bare nuclei (DAPI, no CK) the network half believed were 7,105 of the
# 15,397 events the route showed on 20 full-size cartridges; the dim CTCs it is for reach
# 2.9-7.
POSSIBLE_CTC_DOUBT_CK_PEAK = 3.0
DOUBTED_CALLS = ("wbc", "debris", "cluster")
# How far past the CK area the exclusion markers are read for that check (a membrane ring
# round a nucleus).
AROUND_CK_UM = 2.0
# The markers a lone CTC lacks (one lit means a leukocyte, platelet or granulocyte is there),
# and the dyes it carries, whose leaks are all that may show in those channels. Fitting the
# leaks of the others too would explain a neutrophil's dim CD45 away as a copy of its own
# CD66b (or of unspecific CK): in a simulated cartridge whose leukocytes carry CK, half the
# neutrophils were flagged possible_ctc that way (4,400 events; docs/robustness_matrix.md).
EXCLUSION_ROLES = ("leukocyte", "platelet", "neutrophil")
CTC_DYE_ROLES = ("epithelial", "nucleus")
# ... and the least shape of its own that DAPI (over CK) and CK (over DAPI) must each have
# (``_own_structure``, noise units): a nucleus inside a cytoplasm. At the copy check's 0.2,
# autofluorescent bodies, blobs, fibres and edge-cut cells passed (2.5 % of the events of
# simulated full-size cartridges); at 1.0, 0.13 % (CTC nuclei: median 2.7).
POSSIBLE_CTC_STRUCTURE = 1.0
# The DNA and focus references: leukocyte calls of the same frame (or sample), at least this
# many.
REFERENCE_CLASS = "wbc"
MIN_REFERENCE_EVENTS = 10
# The levels of a nucleus edge (shares of its peak: low, contour, high; see _edge_width).
EDGE_LEVELS = (0.25, 0.5, 0.75)
# The most of another dye's counts that its leak into a channel may carry (the share a copy of
# its pattern may take off before what is left counts as the channel's own marker). In a scan
# that is the dyes' spillover, 1-10 % per ordered pair. In a display export (an 8-bit RGB
# composite) each plane was stretched by the viewer on its own, so a leak's share is set by
# the stretch, not by the dyes: published dim-CK CTCs show a copy of their CK at 15-30 % in
# the CD45 plane, which is no CD45. At 0.2, 83 % of hand-drawn CTCs (30 % of them with such a
# copy) read CD45-negative and 1 % of simulated CK+CD45+ leukocytes' exports do; at 0.12 72 %
# and 1 %, at 0.25 91 % and 2 %, at 0.35 93 % and 3 % (scripts/drawn_composites.py; the
# shape-swap family's CK+CD45+ set).
MAX_LEAK = 0.12
EXPORT_MAX_LEAK = 0.2


def leak_allowance(exported: bool) -> float:
    """``max_leak`` for crops that are display exports (``exported``) or scans."""
    return EXPORT_MAX_LEAK if exported else MAX_LEAK


# The least CK area (um^2, ~20 model pixels) over which DAPI is compared with a copy of CK: a
# few pixels cannot tell a shape from noise.
COPY_MIN_AREA_UM2 = 8.0
# ... nor over a CK area clipped at the scanner's ceiling in more than this share of it.
MAX_CLIPPED_SHARE = 0.05


def measure(crops: np.ndarray, panel, pixel_size_um: float, radius_um: float = 12.0,
            max_leak: float = MAX_LEAK, level: float = 2.0,
            cd45_rows: np.ndarray | None = None) -> pd.DataFrame:
    """Per-crop marker measurements of the centred object (noise units of each channel).

    Columns: ``ck_peak`` (brightest 3x3 CK within ``radius_um`` of the centre), ``ck_area``
    (pixels of the CK area: the part connected to the centre of CK above ``level`` and above a
    quarter of the brightest CK within half the radius, saturated pixels included), ``dna_in_ck``
    (brightest DAPI inside the CK area), ``cd45_over_ck`` (upper quartile of CD45 over the CK
    area after removing what leaks of the other channels could explain, each at most
    ``max_leak`` of its counts), ``dna_content`` (background-subtracted DAPI counts summed over
    the nucleus: the parts of DAPI above ``level`` that touch the CK area or lie within a
    quarter of the radius of the centre; only comparable between crops of one scan),
    ``exclusion_around_ck`` (the highest, over the panel's ``EXCLUSION_ROLES`` channels, upper
    quartile of the marker over the CK area grown by ``AROUND_CK_UM``, once what leaks of CK
    and DAPI could explain is removed),
    ``dna_edge_um`` (the nucleus's edge width, :func:`_edge_width`, in µm),
    ``dna_own_structure`` (the structure DAPI has of its own over the CK area once the best
    copy of CK is taken off, as a share of the pixel noise, :func:`_own_structure`; NaN for a
    CK area under ``COPY_MIN_AREA_UM2`` or clipped in more than ``MAX_CLIPPED_SHARE`` of it),
    and for
    the out-of-distribution score
    ``peak_<i>`` / ``mean_<i>`` (asinh of the brightest and of the mean signal within the
    radius, channel i). A channel the panel lacks gives NaN for its columns.

    ``cd45_rows`` (bool (N,), default all): the crops whose CD45 columns are measured (the leak
    fit is the costly part, and only ``ctc`` calls need it); the others get NaN there.

    Everything but the background estimate looks inside the disk of ``radius_um``, so the
    filters run on the disk's bounding box (plus the 3x3 filter's one-pixel margin) only.
    """
    x = np.asarray(crops, np.float32)
    n, c, h_full, w_full = x.shape
    min_copy_px = COPY_MIN_AREA_UM2 / pixel_size_um ** 2
    if n == 0:  # the columns (and their dtypes) of one blank crop, no rows
        return measure(np.zeros((1, c, h_full, w_full), np.float32), panel, pixel_size_um,
                       radius_um, max_leak, level).iloc[:0]
    background, noise = robust_background(x)
    radius_px = radius_um / pixel_size_um
    full_disk = disk_core(h_full, w_full, radius_px)
    (y0, y1), (x0, x1) = _box_with_margin(full_disk, 1)
    x = x[:, :, y0:y1, x0:x1]
    h, w = x.shape[2:]
    disk = full_disk[y0:y1, x0:x1]
    signal = uniform_filter(x - background[:, :, None, None], size=(1, 1, 3, 3))
    z = signal / noise[:, :, None, None]
    out = {}
    zin = np.where(disk, z, -np.inf)
    peak = zin.reshape(n, c, -1).max(axis=2)
    mean = (z * disk).reshape(n, c, -1).sum(axis=2) / disk.sum()
    for i in range(c):
        out[f"peak_{i}"] = np.arcsinh(peak[:, i])
        out[f"mean_{i}"] = np.arcsinh(mean[:, i])
    ck, dna, cd45 = (panel.index_of_role(r) for r in ("epithelial", "nucleus", "leukocyte"))
    nan = np.full(n, np.nan, np.float32)
    if ck is None:
        out.update(ck_peak=nan, ck_area=nan, dna_in_ck=nan, dna_content=nan, dna_edge_um=nan,
                   dna_own_structure=nan, cd45_over_ck=nan, cd45_core=nan,
                   exclusion_around_ck=nan, ck_own_structure=nan)
        return pd.DataFrame(out)
    # Saturated pixels (any channel at its ceiling) hold no ratios: a clipped CK under an
    # unclipped leak would look like CD45. They stay out of the CD45 measurement; they do
    # belong to the CK area (a CK clipped at the ceiling is CK-bright: a 12-bit scan clips
    # the brightest CTCs' whole cytoplasm, which once left them without a CK area).
    ceiling = np.array([hi for _, hi in (ch.value_range for ch in panel.channels)], np.float32)
    clipped = (x >= 0.999 * ceiling[None, :, None, None]).any(axis=1)
    clipped = uniform_filter(clipped.astype(np.float32), size=(1, 3, 3)) > 0
    ck_z = zin[:, ck]
    core = disk_core(h_full, w_full, 0.5 * radius_px)[y0:y1, x0:x1]
    centre_score = np.where(core, ck_z, -np.inf)
    # The CK area's level is relative to the centred object's own peak: a bright neighbour
    # inside the disk must not raise it above a dim CTC's whole cytoplasm.
    centre_peak = centre_score.reshape(n, -1).max(axis=1)
    area = _central_component(ck_z > np.maximum(level, 0.25 * centre_peak)[:, None, None],
                              centre_score)
    out["ck_peak"] = peak[:, ck]
    out["ck_area"] = area.sum(axis=(1, 2)).astype(np.float32)
    has_area = out["ck_area"] > 0
    if dna is not None:
        out["dna_in_ck"] = np.where(has_area, np.where(area, z[:, dna], -np.inf)
                                    .reshape(n, -1).max(axis=1), 0.0)
        centre = disk_core(h_full, w_full, 0.25 * radius_px)[y0:y1, x0:x1]
        nucleus = _touching_parts((z[:, dna] > level) & disk, area | centre)
        out["dna_content"] = (signal[:, dna] * nucleus).sum(axis=(1, 2))
        out["dna_edge_um"] = _edge_width(signal[:, dna], nucleus, disk) * pixel_size_um
        # A clipped CK is no template: its copy would fall short of the DAPI under it, and
        # the unclipped rim left is too little of the cell to show a nucleus.
        clipped_share = (area & clipped).sum(axis=(1, 2)) / np.maximum(out["ck_area"], 1)
        comparable = np.flatnonzero((out["ck_area"] >= min_copy_px) &
                                    (clipped_share <= MAX_CLIPPED_SHARE))
        # Raw, not 3x3-filtered: _own_structure reads the noise from the residual's finest
        # scale. Only the crops with a CK area to compare (most events are leukocytes).
        pair = [dna, ck]
        raw = (x[comparable][:, pair] - background[comparable][:, pair, None, None]) / \
            noise[comparable][:, pair, None, None]
        out["dna_own_structure"] = nan.copy()
        out["dna_own_structure"][comparable] = _own_structure(
            raw[:, 0], raw[:, 1], area[comparable] & ~clipped[comparable])
    else:
        out["dna_in_ck"], out["dna_content"], out["dna_edge_um"] = nan, nan.copy(), nan.copy()
        out["dna_own_structure"] = nan.copy()
    out["cd45_over_ck"], out["cd45_core"] = nan.copy(), nan.copy()
    out["exclusion_around_ck"], out["ck_own_structure"] = nan.copy(), nan.copy()
    rows = np.ones(n, bool) if cd45_rows is None else np.asarray(cd45_rows, bool)
    if cd45 is not None and rows.any():
        others = [i for i in range(c) if i != cd45]
        excess = _marker_excess(signal[rows], noise[rows, cd45], clipped[rows], disk, cd45,
                                others, max_leak)
        q50, q75 = _over_area(excess, clipped[rows], disk, area[rows], has_area[rows])
        out["cd45_core"][rows], out["cd45_over_ck"][rows] = q50, q75
    exclusion = [i for i, role in enumerate(panel.roles()) if role in EXCLUSION_ROLES]
    if exclusion and rows.any():
        # A leukocyte's CD45 is a membrane ring round its nucleus: where CK is only a leak of
        # DAPI, the CK area is the nucleus and the ring lies outside it. Read the markers over
        # the CK area grown by the membrane's reach (for the missed-CTC check).
        grow = max(1, int(round(AROUND_CK_UM / pixel_size_um)))
        around = binary_dilation(area[rows], structure=_IN_PLANE, iterations=grow) & disk
        own = [i for i, role in enumerate(panel.roles()) if role in CTC_DYE_ROLES]
        worst = np.full(int(rows.sum()), -np.inf, np.float32)
        for target in exclusion:
            excess = _marker_excess(signal[rows], noise[rows, target], clipped[rows], disk,
                                    target, own, max_leak)
            # NaN (the area all saturated) stays NaN: no reading, no flag.
            worst = np.maximum(worst, _over_area(excess, clipped[rows], disk, around,
                                                 has_area[rows])[1])
        out["exclusion_around_ck"][rows] = worst
    if dna is not None and rows.any():
        # CK's own shape over its area once the best copy of DAPI is taken off: a cytoplasm
        # round a nucleus has one; CK that is DAPI leaking into the CK channel has none.
        pair = [ck, dna]
        raw = (x[rows][:, pair] - background[rows][:, pair, None, None]) / \
            noise[rows][:, pair, None, None]
        out["ck_own_structure"][rows] = _own_structure(raw[:, 0], raw[:, 1],
                                                       area[rows] & ~clipped[rows])
    return pd.DataFrame(out)


def _marker_excess(signal: np.ndarray, noise_target: np.ndarray, clipped: np.ndarray,
                   disk: np.ndarray, target: int, sources: list[int], max_leak: float
                   ) -> np.ndarray:
    """(N, P) a marker's excess over the disk's pixels (noise units) once leaks are taken off.

    A dye may leak into the ``target`` channel as a copy of its own pattern at up to
    ``max_leak`` of its counts: fit the target over the disk as a sum of the ``sources``
    channels (least squares, each share clipped to [0, max_leak]) and keep what is left. A
    real CD45 membrane has its own pattern (or, on a CK+CD45+ leukocyte, a ratio no leak has).
    """
    if not sources:
        return (signal[:, target][:, disk] / noise_target[:, None]).astype(np.float32)
    usable = (~clipped)[:, disk][:, None, :]
    leaking = signal[:, sources][:, :, disk] * usable                # (N, K, P)
    wanted = signal[:, target][:, disk] * usable[:, 0]               # (N, P)
    gram = np.einsum("nip,njp->nij", leaking, leaking)
    gram += 1e-6 * np.trace(gram, axis1=1, axis2=2)[:, None, None] * np.eye(len(sources)) \
        + 1e-6
    share = box_least_squares(gram, np.einsum("nip,np->ni", leaking, wanted), 0.0, max_leak)
    residual = wanted - np.einsum("ni,nip->np", share, leaking)
    return (residual / noise_target[:, None]).astype(np.float32)


def _over_area(excess: np.ndarray, clipped: np.ndarray, disk: np.ndarray, area: np.ndarray,
               has_area: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Median and upper quartile of a marker's excess (:func:`_marker_excess`) over an area.
    """
    # Upper quartile: a membrane ring covers the rim of the CK area, not all of it. A crop
    # without a CK area measures 0; one whose CK area is all saturated, NaN (no call).
    inside = area[:, disk] & ~clipped[:, disk] & has_area[:, None]
    q50, q75 = row_percentiles(excess, inside, (50, 75))
    return np.where(has_area, q50, 0.0), np.where(has_area, q75, 0.0)


def box_least_squares(gram: np.ndarray, rhs: np.ndarray, low: float, high: float,
                      sweeps: int = 60) -> np.ndarray:
    """Per row, ``argmin_s |A s - t|^2`` with every ``s_i`` in ``[low, high]``, from the normal
    equations (``gram`` = A'A (N, K, K), ``rhs`` = A't (N, K)); cyclic coordinate descent,
    all rows at once.

    Solving unconstrained and clipping afterwards is not this: the nucleus and the cytoplasm
    overlap, so their leak shares trade off, and one clipped at 0 or at ``high`` leaves the
    other wrong (a bright CTC's 10 % CK leak then reads as CD45).
    """
    n, k = rhs.shape
    diag = np.maximum(np.einsum("nii->ni", gram), 1e-12)
    share = np.clip(rhs / diag, low, high)
    for _ in range(sweeps):
        for i in range(k):
            rest = np.einsum("nj,nj->n", gram[:, i], share) - gram[:, i, i] * share[:, i]
            share[:, i] = np.clip((rhs[:, i] - rest) / diag[:, i], low, high)
    return share


def row_percentiles(values: np.ndarray, mask: np.ndarray, qs) -> list[np.ndarray]:
    """Percentiles (numpy's linear method) of each row of ``values`` over its ``mask``ed
    entries, all rows at once (NaN for a row with none): ``np.nanpercentile`` row by row
    without its Python loop over rows."""
    n, p = values.shape
    ranked = np.sort(np.where(mask, values, np.inf), axis=1)
    count = mask.sum(axis=1)
    rows = np.arange(n)
    out = []
    for q in qs:
        pos = (q / 100.0) * np.maximum(count - 1, 0)
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, np.maximum(count - 1, 0))
        t = (pos - lo).astype(values.dtype)
        a, b = ranked[rows, lo], ranked[rows, hi]
        # numpy's lerp: from the nearer end, so equal neighbours give exactly their value
        # (rows with no entry hold inf here; they become NaN below)
        with np.errstate(invalid="ignore"):
            value = np.where(t >= 0.5, b - (b - a) * (1 - t), a + (b - a) * t)
        out.append(np.where(count > 0, value, np.nan))
    return out


def _box_with_margin(mask: np.ndarray, margin: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """Row and column ranges of ``mask``'s bounding box grown by ``margin`` (within bounds)."""
    ys, xs = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if not len(ys):
        return (0, mask.shape[0]), (0, mask.shape[1])
    return ((max(0, ys[0] - margin), min(mask.shape[0], ys[-1] + 1 + margin)),
            (max(0, xs[0] - margin), min(mask.shape[1], xs[-1] + 1 + margin)))


def disk_core(h: int, w: int, radius_px: float) -> np.ndarray:
    """Boolean (H, W) disk of ``radius_px`` round the crop centre."""
    yy, xx = np.mgrid[:h, :w]
    return (yy - (h - 1) / 2) ** 2 + (xx - (w - 1) / 2) ** 2 <= radius_px ** 2


# 4-connectivity within each crop of an (N, H, W) stack; never connects two crops.
_IN_PLANE = np.zeros((3, 3, 3), bool)
_IN_PLANE[1] = [[0, 1, 0], [1, 1, 1], [0, 1, 0]]


def _central_component(mask: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Per crop, the connected part of ``mask`` holding the best-scoring central pixel: the
    centred object's own CK, not a neighbour's."""
    n = len(mask)
    labels, _ = label(mask, structure=_IN_PLANE)
    best = np.where(mask, score, -np.inf).reshape(n, -1).argmax(axis=1)
    chosen = labels.reshape(n, -1)[np.arange(n), best]
    return (labels == chosen[:, None, None]) & (chosen[:, None, None] > 0)


def _touching_parts(mask: np.ndarray, seed: np.ndarray) -> np.ndarray:
    """Per crop, the connected parts of ``mask`` that share a pixel with ``seed`` (an
    apoptotic nucleus in pieces keeps all its pieces inside the CK area)."""
    labels, count = label(mask, structure=_IN_PLANE)
    keep = np.zeros(count + 1, bool)
    keep[labels[mask & seed]] = True
    keep[0] = False
    return keep[labels]


def _edge_width(dna: np.ndarray, nucleus: np.ndarray, disk: np.ndarray) -> np.ndarray:
    """Per crop, the width (px) of the nucleus's edge: how far its DAPI takes to fall from 75 %
    to 25 % of its own peak, as (area above 25 % - area above 75 %) / length of the 50 %
    contour, over the parts above 25 % that touch the nucleus mask (a dim nucleus's 25 % level
    lies below the mask's). A nucleus in the focal plane has an edge about the optics' blur
    wide; an object above or below it (an out-of-focus blob) one several times wider.
    Independent of size and brightness, and it holds for a nucleus in pieces (areas and
    contours add up). NaN: no nucleus."""
    n = len(dna)
    peak = np.where(nucleus, dna, -np.inf).reshape(n, -1).max(axis=1)
    level = np.maximum(peak, 0.0)[:, None, None]
    low, mid, high = EDGE_LEVELS
    # The parts above the low level that touch the nucleus: the area above ``low`` itself.
    outline = _touching_parts((dna > low * level) & disk, nucleus)
    above = {low: outline, **{share: outline & (dna > share * level) for share in (mid, high)}}
    contour = (above[mid] & ~binary_erosion(above[mid], structure=_IN_PLANE)).sum(axis=(1, 2))
    width = (above[low].sum(axis=(1, 2)) - above[high].sum(axis=(1, 2))) / \
        np.maximum(contour, 1)
    return np.where(contour > 0, width, np.nan).astype(np.float32)


def _own_structure(target: np.ndarray, source: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per crop, the structure ``target`` has of its own over ``mask``: the best copy of
    ``source`` (least squares, share >= 0) taken off, the power left that a 3x3 mean keeps,
    beyond what pixel noise would keep, as a share of that noise. Both inputs are raw
    (unfiltered) signal in noise units.

    White noise keeps 1/9 of its power under a 3x3 mean; an object's structure keeps nearly
    all. The noise is read from the residual itself (its power the mean removes), so the
    measure holds whatever the photon noise of a bright object: ~0 for a target that is a copy
    of the source plus noise, well above it where the target has a shape of its own (a
    nucleus in its cytoplasm). NaN where the mask is empty."""
    t = np.where(mask, target, 0.0).astype(np.float64)
    s = np.where(mask, source, 0.0).astype(np.float64)
    share = np.maximum((s * t).sum(axis=(1, 2)) / np.maximum((s * s).sum(axis=(1, 2)), 1e-12),
                       0.0)
    # The residual everywhere (its 3x3 mean at the mask's rim needs its neighbours), read over
    # the mask.
    residual = target.astype(np.float64) - share[:, None, None] * source
    count = mask.sum(axis=(1, 2))
    raw = (np.where(mask, residual, 0.0) ** 2).sum(axis=(1, 2)) / np.maximum(count, 1)
    smooth = (np.where(mask, uniform_filter(residual, size=(1, 3, 3)), 0.0) ** 2) \
        .sum(axis=(1, 2)) / np.maximum(count, 1)
    noise = np.maximum((raw - smooth) * 9.0 / 8.0, 1e-6)
    structure = (smooth - noise / 9.0) / noise
    return np.where(count > 0, structure, np.nan).astype(np.float32)


def leukocyte_reference(values: np.ndarray, called_names: np.ndarray,
                        groups: np.ndarray | None = None) -> np.ndarray:
    """Per event, the median of ``values`` (a measurement: DAPI content, nucleus edge width)
    over the leukocyte calls of its group (one frame, or one sample of a crop set; default: all
    events are one group); NaN where the group has fewer than ``MIN_REFERENCE_EVENTS`` of
    them."""
    values = np.asarray(values, np.float64)
    groups = np.zeros(len(values), np.int64) if groups is None else np.asarray(groups)
    keys, group_index = np.unique(groups, return_inverse=True)
    leukocyte = (np.asarray(called_names, dtype=object) == REFERENCE_CLASS) & \
        np.isfinite(values)
    # One grouped pass (a crop set may give every crop a sample of its own).
    stats = pd.Series(values[leukocyte]).groupby(group_index[leukocyte]).agg(["median", "size"])
    enough = stats[stats["size"] >= MIN_REFERENCE_EVENTS]
    reference = np.full(len(keys), np.nan)
    reference[enough.index.to_numpy()] = enough["median"].to_numpy()
    return reference[group_index]


def _ood_features(m: pd.DataFrame, channels: int) -> np.ndarray:
    cols = [f"peak_{i}" for i in range(channels)] + [f"mean_{i}" for i in range(channels)]
    area = np.log1p(np.nan_to_num(m["ck_area"].to_numpy(np.float64)))
    return np.column_stack([m[cols].to_numpy(np.float64), area])


def fit_reference(crops: np.ndarray, targets: np.ndarray, spec,
                  quantile: float = 0.995) -> dict:
    """The out-of-distribution reference from training or validation crops (plain JSON).

    Class means and a pooled, slightly regularised covariance of the features; the threshold
    is the ``quantile`` of the distances of these crops to their own class.
    """
    feats = _ood_features(measure(crops, spec.panel, spec.pixel_size_um), spec.in_chans)
    targets = np.asarray(targets)
    means = np.stack([feats[targets == k].mean(axis=0) if (targets == k).any()
                      else feats.mean(axis=0) for k in range(spec.num_classes)])
    centred = feats - means[targets]
    cov = np.cov(centred, rowvar=False) + 1e-3 * np.eye(feats.shape[1])
    inv = np.linalg.inv(cov)
    dist = np.sqrt(np.einsum("ij,jk,ik->i", centred, inv, centred))
    return {"means": means.tolist(), "cov_inv": inv.tolist(),
            "threshold": float(np.quantile(dist, quantile)), "quantile": quantile,
            "n": int(len(targets))}


def ood_distance(measurements: pd.DataFrame, called: np.ndarray, reference: dict,
                 channels: int) -> np.ndarray:
    """Mahalanobis distance of each event to the training events of its called class."""
    feats = _ood_features(measurements, channels)
    centred = feats - np.asarray(reference["means"])[called]
    inv = np.asarray(reference["cov_inv"])
    return np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", centred, inv, centred), 0.0))


def measure_for_guard(crops: np.ndarray, spec, max_leak: float = MAX_LEAK) -> pd.DataFrame:
    """What the guard measures on every crop whatever its call (all but CD45), so it can be
    done before the model has called the crops (predict's frame workers do it)."""
    return measure(crops, spec.panel, spec.pixel_size_um, max_leak=max_leak,
                   cd45_rows=np.zeros(len(crops), bool))


def review_flags(crops: np.ndarray, proba: np.ndarray, spec, cd45_level: float = 2.0,
                 dna_level: float = 3.0, dna_share: float = 0.08, focus_ratio: float = 1.8,
                 copy_level: float = 0.2,
                 measured: pd.DataFrame | None = None,
                 groups: np.ndarray | None = None, decision: dict | str | None = "spec",
                 max_leak: float = MAX_LEAK) -> pd.DataFrame:
    """Boolean flags per event (columns ``FLAGS``, ``any`` and ``MARKERS_CTC``) for crops and
    their calls (``MARKERS_CTC``: a ``wbc`` or ``debris`` call whose markers meet the CellSearch
    definition of a CTC on their own, the first route to ``possible_ctc``; not a review flag).

    ``cd45_level`` is the CD45 positivity level (upper quartile over the CK area, in noise units
    after the leaks are removed); ``dna_level`` the DAPI level a nucleus must reach inside it;
    ``dna_share`` the least DAPI content a nucleus holds, as a share of the median leukocyte's
    of its group (``groups``: one label per crop, e.g. sample ids; default: the crops are one
    frame). ``focus_ratio``: the widest nucleus edge a ``ctc`` call may have, as a multiple of
    its group's median leukocyte's. ``measured``: :func:`measure_for_guard` of the crops, if
    already made; CD45 is then measured here on the ``ctc`` calls and on the CTC-like others.
    ``decision``: the rule the calls were made with (default ``"spec"``: the model's own).
    ``max_leak``: the most a leak may carry (:func:`leak_allowance`: more on display exports).

    ``copy_level``: the least structure of its own (``dna_own_structure``) the DAPI inside the
    CK area must have. 0.2: on simulated crops at model scale (seeds 7 and 11, 1,800 CTCs and
    clusters, 16 samples) it holds 4 CTCs and clusters (0.2 %: dim or textured CK over a
    nucleus), and of the debris that passes ``no_dna`` 82-87 % of tdEVs (CK leaking into DAPI),
    58-79 % of autofluorescent bodies and 55-81 % of out-of-focus blobs (one body lit in every
    channel); copies sit mostly at 0.0-0.4 (median 0.15: the noise's own spread, a little
    correlated by resampling to model scale), CTCs and clusters mostly above 0.4 (median
    2.7). On the card's held-out test it holds 10 more right CTC calls (0.7 %), in samples
    with coarse pixels or dim nuclei, where little of a nucleus's shape shows above the noise
    (docs/robustness_matrix.md, stop 35).

    ``focus_ratio`` 1.8: on simulated crops (400 a class, 8 samples) single CTCs reach 1.56 and
    leukocytes 1.72 of their sample's median; out-of-focus blobs with DAPI over 10 noise units
    sit at 1.5-3.5 (97 % above 1.8), over 5 units 87 %. On the card's held-out test it holds
    10 of ~1,430 right CTC calls, in samples where bright CK bleeds into DAPI and widens the
    nucleus's lower edge (docs/robustness_matrix.md, stop 34).

    ``dna_share`` 0.08: a CTC fragment's speck holds 0-14 % of a leukocyte's DAPI content, the
    smallest simulated CTC nuclei from 3 % (a biological nucleus holds 50 % or more: the
    simulator draws CTC nuclei smaller and dimmer than biology would, so the share is set low
    to hold almost none of them: 6 of 1,500 simulated CTCs, and 88 % of fragments with a speck;
    docs/robustness_matrix.md, stop 30).
    """
    proba = np.asarray(proba)
    n = len(proba)
    flags = pd.DataFrame({f: np.zeros(n, bool) for f in FLAGS})
    if n == 0:
        flags["any"] = np.zeros(0, bool)
        return flags
    # The call predict makes: ``decision`` "spec" is the model's rule at cartridge prevalence
    # (if it has one); a crop set's calls are made without it (None) or with a stated prior.
    called = top_class(proba, spec.class_names,
                       spec.decision if decision == "spec" else decision)[0]
    called_names = np.asarray(spec.class_names, dtype=object)[called]
    guarded = np.isin(called_names, GUARDED_CLASSES)
    roles = set(spec.panel.roles())
    is_ctc = called_names == "ctc"
    if measured is None:
        measured = measure_for_guard(crops, spec, max_leak)
    m = measured.copy()
    # Other calls that look like a CTC by CK and DNA (the CD45 check decides): a possible
    # missed CTC. CD45 is read on these and on ``ctc`` calls only: its leak fit is most of
    # the cost of measuring.
    with np.errstate(invalid="ignore"):  # NaN (shapes not comparable): not CTC-like
        ctc_like = np.isin(called_names, MISSED_CTC_CALLS) & \
            (m["ck_area"].to_numpy() * spec.pixel_size_um ** 2 >= POSSIBLE_CTC_MIN_AREA_UM2) & \
            (m["ck_peak"].to_numpy() >= POSSIBLE_CTC_CK_PEAK) & \
            (m["dna_in_ck"].to_numpy() >= dna_level) & \
            (m["dna_own_structure"].to_numpy() >= POSSIBLE_CTC_STRUCTURE)
        # The network's own doubt (``POSSIBLE_CTC_PROBA``): the markers below still decide.
        doubted = np.zeros(n, bool)
        if "ctc" in spec.class_names:
            doubted = np.isin(called_names, DOUBTED_CALLS) & \
                (proba[:, spec.class_names.index("ctc")] >= POSSIBLE_CTC_PROBA) & \
                (m["dna_in_ck"].to_numpy() >= dna_level)
    read_cd45 = is_ctc | ctc_like | doubted
    if read_cd45.any():
        again = measure(crops[read_cd45], spec.panel, spec.pixel_size_um, max_leak=max_leak)
        for col in ("cd45_over_ck", "cd45_core", "exclusion_around_ck", "ck_own_structure"):
            m.loc[read_cd45, col] = again[col].to_numpy()
    flags["cd45_positive"] = is_ctc & (m["cd45_over_ck"].to_numpy() > cd45_level)
    flags["no_dna"] = guarded & (m["ck_area"].to_numpy() > 0) & \
        (m["dna_in_ck"].to_numpy() < dna_level)
    # Each contradiction is measured once per event: the flags on ``ctc``/``cluster`` calls
    # and the doubt route below read the same arrays. NaN compares False: no contradiction.
    with np.errstate(invalid="ignore"):  # NaN: CK area too small to compare shapes, no flag
        copies_ck = m["dna_own_structure"].to_numpy() < copy_level
        flags["dna_copies_ck"] = guarded & ~flags["no_dna"].to_numpy() & copies_ck
    leukocyte_dna = leukocyte_reference(m["dna_content"].to_numpy(), called_names, groups)
    leukocyte_edge = leukocyte_reference(m["dna_edge_um"].to_numpy(), called_names, groups)
    with np.errstate(invalid="ignore"):  # NaN: no reference in this group, no flag
        little_dna = m["dna_content"].to_numpy() < dna_share * leukocyte_dna
        blurred = m["dna_edge_um"].to_numpy() > focus_ratio * leukocyte_edge
        flags["low_dna"] = guarded & (m["ck_area"].to_numpy() > 0) & little_dna
        flags["out_of_focus"] = is_ctc & blurred
        # A doubted call must also pass what a ``ctc`` call must: DAPI that is more than a
        # copy of CK, a nucleus as sharp as the frame's leukocytes. Without these, tdEVs,
        # blobs and autofluorescent bodies the network half believes were shown by the
        # thousand on full-size cartridges (docs/robustness_matrix.md, the network's own doubt).
        doubted &= ~copies_ck & ~blurred & \
            (m["ck_peak"].to_numpy() >= POSSIBLE_CTC_DOUBT_CK_PEAK) & \
            ~(m["ck_own_structure"].to_numpy() < copy_level)
        # The CellSearch line holds on both routes: an event lit in CD45 (or any exclusion
        # marker) is never shown as a possible CTC, whatever the network thinks.
        flags["possible_ctc"] = (
            (ctc_like & (m["ck_own_structure"].to_numpy() >= POSSIBLE_CTC_STRUCTURE))
            | doubted) & ~little_dna & \
            (m["cd45_over_ck"].to_numpy() <= cd45_level) & \
            (m["exclusion_around_ck"].to_numpy() <= cd45_level)
    if not roles & {"mesenchymal", "epcam"}:
        flags["no_ck"] = guarded & (m["ck_area"].to_numpy() == 0)
    reference = spec.metrics.get("guard") if isinstance(spec.metrics, dict) else None
    if reference:
        dist = ood_distance(m, called, reference, spec.in_chans)
        flags["unusual"] = dist > reference["threshold"]
    flags = flags.fillna(False).astype(bool)
    flags["any"] = flags[list(FLAGS)].any(axis=1)
    # The CellSearch definition read off the markers alone (``marker_calls``): the first
    # route's evidence, which no network output enters.
    flags[MARKERS_CTC] = flags["possible_ctc"].to_numpy() & ctc_like & \
        (m["ck_own_structure"].to_numpy() >= POSSIBLE_CTC_STRUCTURE)
    return flags


def marker_calls(called: np.ndarray, flags: pd.DataFrame, class_names) -> np.ndarray:
    """The calls with the CellSearch definition read off the markers put over the network's:
    a ``wbc`` or ``debris`` call whose markers make it a CTC on their own (a CK area of a cell
    over 4 um, clearly CK positive, a nucleus with DNA and a shape of its own, no CD45 or other
    exclusion marker over or round it: ``MARKERS_CTC``) becomes ``ctc``; a ``ctc`` call with
    CD45 over its CK area (``cd45_positive``) becomes ``wbc``. Both stay flagged for review."""
    out = np.asarray(called, dtype=object).copy()
    if "ctc" in class_names:
        out[flags[MARKERS_CTC].to_numpy(bool) & np.isin(out, MISSED_CTC_CALLS)] = "ctc"
    if "wbc" in class_names:
        out[flags["cd45_positive"].to_numpy(bool) & (out == "ctc")] = "wbc"
    return out


def crop_set_calls(called: np.ndarray, flags: pd.DataFrame, crops: np.ndarray,
                   proba: np.ndarray, spec, decision: dict | None = None,
                   cd45_level: float = 2.0, max_leak: float = MAX_LEAK,
                   measured: pd.DataFrame | None = None) -> np.ndarray:
    """The calls ctcnet makes on a crop set (each crop a cell someone chose), the markers
    taking part: with the model's marker fusion (``spec.metrics["marker_fusion"]``,
    :mod:`ctcnet.inference.marker_fusion`) the most probable class of the network's
    probabilities and the measured markers read together, at ``decision``'s prior, a ``wbc``
    call with a CTC's markers and no CD45 made ``ctc``; without one, the marker rule
    (:func:`marker_calls`) over the network's ``called``. Either way the
    CellSearch line holds: an event with CD45 over its CK area (``cd45_level``, noise units
    once the leaks are removed, each up to ``max_leak``: :func:`leak_allowance`) is never
    called ``ctc``. A row whose probabilities are not finite keeps its call (``failed``).
    ``measured``: :func:`measure` of the crops with every column (CD45 on every row, at
    ``max_leak``), if made (:func:`crop_set_review` makes it once for the flags and this)."""
    from ctcnet.inference.marker_fusion import fused_proba
    from ctcnet.nn.calls import deployment_proba

    names = list(spec.class_names)
    fusion = _marker_fusion(spec)
    if not fusion or not len(called):
        return marker_calls(called, flags, names)
    if measured is None:
        measured = measure(crops, spec.panel, spec.pixel_size_um, max_leak=max_leak)
    fused = deployment_proba(fused_proba(fusion, proba, measured, names), names,
                             decision).astype(np.float64)
    if "ctc" in names:
        with np.errstate(invalid="ignore"):  # NaN: no CK area to read CD45 over
            cd45 = measured["cd45_over_ck"].to_numpy(np.float64) > cd45_level
        fused[cd45, names.index("ctc")] = -1.0
    out = np.asarray(called, dtype=object).copy()
    finite = np.isfinite(np.asarray(proba, np.float64)).all(axis=1)
    out[finite] = np.asarray(names, dtype=object)[fused[finite].argmax(axis=1)]
    # A leukocyte has CD45: a ``wbc`` call on an event whose markers meet the CellSearch
    # definition on their own (``MARKERS_CTC``: no CD45 or other exclusion marker over or
    # round a clear CK area with a nucleus of its own) is a CTC. (A ``debris`` call stays: an
    # edge-cut cell or a blob can show the same markers.) On the shape-swap family this moves
    # CTC-vs-rest by at most 0.003 either way; on hand-drawn composites the fused core3 calls
    # 83 % of CTCs with it, 74 % without (scripts/drawn_composites.py).
    if "ctc" in names:
        out[finite & (out == "wbc") & flags[MARKERS_CTC].to_numpy(bool)] = "ctc"
    return out


def _marker_fusion(spec) -> dict | None:
    """The model's marker fusion (``spec.metrics["marker_fusion"]``), if it carries one."""
    return spec.metrics.get("marker_fusion") if isinstance(spec.metrics, dict) else None


def crop_set_review(crops: np.ndarray, proba: np.ndarray, spec, called: np.ndarray,
                    groups: np.ndarray | None = None, decision: dict | None = None,
                    max_leak: float = MAX_LEAK) -> tuple[np.ndarray, pd.DataFrame]:
    """(calls, flags) of a crop set: :func:`review_flags` and :func:`crop_set_calls` over the
    network's ``called``, the crops measured once for both (every column, when the model's
    fusion needs CD45 on every crop). ``max_leak``: :func:`leak_allowance` of the crops."""
    full = None
    if _marker_fusion(spec) and len(crops):
        full = measure(crops, spec.panel, spec.pixel_size_um, max_leak=max_leak)
    flags = review_flags(crops, proba, spec, measured=full, groups=groups, decision=decision,
                         max_leak=max_leak)
    calls = crop_set_calls(called, flags, crops, proba, spec, decision, max_leak=max_leak,
                           measured=full)
    return calls, flags


def guard_events(events: pd.DataFrame, crops: np.ndarray | None, proba: np.ndarray,
                 spec, measured: pd.DataFrame | None = None,
                 markers_decide: bool = False, max_leak: float = MAX_LEAK) -> pd.DataFrame:
    """Add ``guard`` (the flags that fired, joined by '+', or '') to a labelled event table
    and send flagged events to review (``measured``: :func:`measure_for_guard`, if made). The
    table's events are one frame, or, with a ``sample_id`` column, grouped by it.

    ``markers_decide``: the ``class`` column takes :func:`crop_set_calls` (crop sets, where
    each crop is a cell someone chose; on a cartridge, where a CTC is one event in tens of
    thousands, the markers send such events to review instead). ``max_leak``: see
    :func:`leak_allowance`."""
    events = events.copy()
    if crops is None or not len(events):
        events["guard"] = pd.Series([""] * len(events), index=events.index, dtype=object)
        return events
    groups = events["sample_id"].astype(str).to_numpy() if "sample_id" in events else None
    if markers_decide:
        events["class"], flags = crop_set_review(crops, proba, spec,
                                                 events["class"].to_numpy(object), groups,
                                                 spec.decision, max_leak)
    else:
        flags = review_flags(crops, proba, spec, measured=measured, groups=groups,
                             max_leak=max_leak)
    names = np.array(FLAGS, dtype=object)
    fired = flags[list(FLAGS)].to_numpy()
    events["guard"] = ["+".join(names[row]) for row in fired]
    events["review"] = events["review"].to_numpy(bool) | flags["any"].to_numpy()
    return events


def counted(events: pd.DataFrame) -> np.ndarray:
    """Bool per event: its call enters the automatic count. A call the guard flagged (markers
    contradict it, or the event is unlike the training data) is held for review and counted
    apart (``guard_summary``: ``by_call``)."""
    if "guard" not in events:
        return np.ones(len(events), bool)
    return events["guard"].fillna("").astype(str).to_numpy(object) == ""


def guard_summary(events: pd.DataFrame, spec) -> dict:
    """Counts for summary.json: events the guard sent to review, per flag and per call."""
    if "guard" not in events or not len(events):
        return {"flagged": 0, "by_flag": {f: 0 for f in FLAGS}, "by_call": {}}
    guard = events["guard"].fillna("").astype(str)
    hit = guard != ""
    by_call = events.loc[hit, "model_class"].value_counts()
    return {"flagged": int(hit.sum()),
            "by_flag": {f: int(guard.str.contains(f, regex=False).sum()) for f in FLAGS},
            "by_call": {name: int(by_call.get(name, 0)) for name in spec.class_names}}
