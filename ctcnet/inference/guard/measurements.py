"""The marker guard's measurements of each crop's centred object (pure numpy and scipy).

Measurements use the same robust background and noise as the network's normalisation (10th
and 30th percentiles of the crop), on the crop the model saw (model pixel size), in noise
units of each channel. The CK area is the centred object's: CK above a level relative to its
own peak (a bright neighbour in the disk does not raise it), saturated pixels included (a
12-bit scan clips the brightest CTCs' whole cytoplasm).

All crops of a batch (one frame's events) are measured at once. The costly parts (the leak
fits behind the CD45 and exclusion columns, the shape comparisons) take the rows that need
them, so the flags can ask for them only where a call or another measurement makes them
matter; every measurement of a crop is independent of the other crops in its batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
from scipy.ndimage import uniform_filter

from ctcnet.inference.guard.around import around_columns, over_area, vouch_columns
from ctcnet.inference.guard.leaks import marker_excess
from ctcnet.inference.guard.masks import (
    box_with_margin,
    central_component,
    disk_core,
    enclosed,
    touching_parts,
)
from ctcnet.inference.guard.nuclei import count_nuclei
from ctcnet.inference.guard.planes import warn_unguarded
from ctcnet.inference.guard.rules import RULES, GuardRules
from ctcnet.inference.guard.shapes import best_move, edge_width, own_structure
from ctcnet.inference.spillover import mean3x3, robust_background
from ctcnet.io.marker_names import EXCLUSION_ROLES

# The columns read only on the rows that need them: CD45 and the other exclusion markers and
# CK's own shape (the costly leak fits and shape comparisons), and the nuclei an object holds
# (a shape analysis per crop, read on cluster calls).
ON_DEMAND_COLUMNS = ("cd45_over_ck", "cd45_core", "cd45_over_cell", "cd45_at_ceiling",
                     "vouch_peak", "exclusion_around_ck", "partner_um2",
                     *(f"partner_um2_{role}" for role in EXCLUSION_ROLES),
                     "ck_own_structure", "nuclei")
# The copy tests' columns: DAPI and CK each over a copy of the other moved by the scan's
# registration (a frame's or sample's, ``Evidence.copy_move``), read by the flags alone.
REGISTERED_COLUMNS = ("dna_own_structure_registered", "ck_own_structure_registered")


def measure(crops: np.ndarray, panel, pixel_size_um: float, rules: GuardRules = RULES,
            cd45_rows: np.ndarray | None = None, *, max_leak: float | None = None
            ) -> pd.DataFrame:
    """Per-crop marker measurements of the centred object (noise units of each channel).

    Columns: ``ck_peak`` (brightest 3x3 CK within ``rules.radius_um`` of the centre),
    ``ck_area`` (pixels of the CK area: the part connected to the centre of CK above
    ``rules.area_level`` and above a quarter of the brightest CK within half the radius,
    saturated pixels included), ``dna_in_ck`` (brightest DAPI inside the CK area),
    ``cd45_over_ck`` (upper quartile of CD45 over the CK area after removing what leaks of the
    other channels could explain, each at most ``max_leak`` of its counts), ``cd45_over_cell``
    (the same over the cell's core, half the radius round the centre, on a crop without a
    CK area: a call without one has its CD45 read there; NaN elsewhere),
    ``cd45_at_ceiling`` (the share of that area's pixels where CD45 is at its channel's
    ceiling: clipped pixels hold no ratio, so an area all clipped reads no quartile, but CD45
    at the camera's top is no leak), ``vouch_peak`` (the brightest excess, within half the
    radius of the centre, of the panel's markers that can vouch for a CK-negative CTC,
    ``CK_NEGATIVE_CTC_ROLES``: vimentin, EpCAM, once what DAPI and CK leak into them is
    taken off, as for CD45: a nucleus's leak lights every cell; NaN on a panel without
    them), ``dna_content``
    (background-subtracted DAPI counts summed over the nucleus: the parts of DAPI above the
    level that touch the CK area or lie within a quarter of the radius of the centre; only
    comparable between crops of one scan), ``nucleus_in_ck`` (the share of that nucleus's
    pixels inside the CK area or enclosed by it, :func:`.masks.enclosed`: a cell's nucleus lies
    within its cytoplasm's outline, CK over it or round it; NaN without a nucleus),
    ``exclusion_around_ck`` (the highest, over the
    panel's ``EXCLUSION_ROLES`` channels, upper quartile of the marker over the CK area grown
    by ``rules.around_ck_um``, once what leaks of CK and DAPI could explain is removed),
    ``partner_um2`` (the part of a band round the CK area, from ``rules.partner_gap_um`` to
    ``rules.partner_reach_um`` off its edge, in um^2, where any of those markers is over
    ``rules.cd45_level``: a cell or platelets attached to the object), ``partner_um2_<role>``
    (the part of it where a marker of that role of ``EXCLUSION_ROLES`` is the strongest
    there, in noise units: which partner it is; 0 where the panel has no marker of that
    role),
    ``dna_edge_um`` (the nucleus's edge width, :func:`.shapes.edge_width`, in µm),
    ``dna_own_structure`` (the structure DAPI has of its own over the CK area once the best
    copy of CK is taken off, as a share of the pixel noise, :func:`.shapes.own_structure`; NaN
    for a CK area under ``rules.copy_min_area_um2`` or clipped in more than
    ``rules.max_clipped_share`` of it), ``copy_move_y`` and ``copy_move_x`` (where
    ``dna_own_structure`` is read and ``dna_in_ck`` reaches ``rules.dna_level``: the
    whole-pixel move, up to ``rules.copy_shift_um``, that lines CK up best with DAPI over the
    CK area, :func:`.shapes.best_move`), ``nuclei`` (how
    many nuclei the nucleus holds, told by its shape, :func:`.nuclei.count_nuclei`), and for
    the out-of-distribution score
    ``peak_<i>`` / ``mean_<i>`` (asinh of the brightest and of the mean signal within the
    radius, channel i). A channel the panel lacks gives NaN for its columns.

    ``cd45_rows`` (bool (N,), default all): the crops whose ``ON_DEMAND_COLUMNS`` are measured
    (the leak fits are the costly part, and only some calls need them); the others get NaN
    there.
    ``max_leak``: ``rules.max_leak`` for these crops (:func:`leak_allowance`).

    Everything but the background estimate looks inside the disk of the radius, so the
    filters run on the disk's bounding box (plus the 3x3 filter's one-pixel margin) only.
    """
    rules = rules.with_leak(max_leak)
    x = np.asarray(crops, np.float32)
    if len(x) == 0:  # the columns (and their dtypes) of one blank crop, no rows
        return measure(np.zeros((1, *x.shape[1:]), np.float32), panel, pixel_size_um,
                       rules).iloc[:0]
    return _measured(_Batch.of(x, panel, pixel_size_um, rules), cd45_rows)


def measure_for_guard(crops: np.ndarray, spec, rules: GuardRules = RULES, *,
                      max_leak: float | None = None) -> pd.DataFrame:
    """What the guard measures on every crop whatever its call (all but
    ``ON_DEMAND_COLUMNS``), so it can be done before the model has called the crops (predict's
    frame workers do it).

    ``dna_own_structure`` is left NaN where DAPI inside the CK area is under
    ``rules.dna_level``: no flag reads it there (such a CK area is ``no_dna`` on a guarded
    call, and neither route to ``possible_ctc`` takes it).
    """
    return measure_for_guard_start(crops, spec, rules.with_leak(max_leak))[0]


def measure_for_guard_start(crops: np.ndarray, spec, rules: GuardRules = RULES
                            ) -> tuple[pd.DataFrame, _Batch | None]:
    """:func:`measure_for_guard` and what it started from (background, filtered signal, CK
    area; None for no crops), for an :class:`ExclusionReader` of the same crops: predict keeps
    it beside a frame's crops until the flags are made, so the costly columns are read
    without preparing the crops again."""
    x = np.asarray(crops, np.float32)
    if len(x) == 0:
        return measure(x, spec.panel, spec.pixel_size_um, rules), None
    batch = _Batch.of(x, spec.panel, spec.pixel_size_um, rules)
    measured = _measured(batch, np.zeros(len(x), bool), own_structure_level=rules.dna_level)
    return measured, batch.for_readers()


# Crops an ExclusionReader prepares at a time when it reads more than this many (a crop set's).
READ_CHUNK = 512


class ExclusionReader:
    """``ON_DEMAND_COLUMNS`` of :func:`measure` for some crops, read group by group on the
    rows that still need each (the same values :func:`measure` gives those crops): CK's own
    shape (``ck_own_structure``), CD45 over the CK area and the cell (``cd45_core``,
    ``cd45_over_ck``, ``cd45_over_cell``), the
    exclusion markers round it (``exclusion_around_ck``), each a leak fit or shape comparison
    that a flag may make moot before the next is read, the nuclei (``nuclei``), and DAPI and
    CK each over a copy of the other moved by given moves (``registered``: the copy tests,
    ``REGISTERED_COLUMNS``)."""

    GROUPS = {"ck_own": ("ck_own_structure",),
              "cd45": ("cd45_core", "cd45_over_ck", "cd45_over_cell", "cd45_at_ceiling"),
              "vouch": ("vouch_peak",),
              "around": ("exclusion_around_ck", "partner_um2",
                         *(f"partner_um2_{role}" for role in EXCLUSION_ROLES)),
              "nuclei": ("nuclei",),
              "registered": REGISTERED_COLUMNS}

    def __init__(self, crops: np.ndarray, panel, pixel_size_um: float,
                 rules: GuardRules = RULES, rows: np.ndarray | None = None,
                 batch: _Batch | None = None):
        """Start from what every group reads (background, filtered signal, CK area) of the
        crops of ``rows`` (bool, default all): the ``batch`` of all the crops if one was
        made (:func:`_measure_for_guard`), else one made here of those rows alone."""
        self.n = len(crops)
        self.index = np.arange(self.n) if rows is None or batch is not None else \
            np.flatnonzero(rows)
        self.batch = batch
        # More rows than a chunk (a crop set's; a frame has a few hundred events): each read
        # prepares the rows it needs a chunk at a time, not all of them held, prepared.
        self._crops = crops if batch is None and len(self.index) > READ_CHUNK else None
        self._made_of = (panel, pixel_size_um, rules)
        if batch is None and len(self.index) and self._crops is None:
            self.batch = _Batch.of(np.asarray(crops[self.index], np.float32), panel,
                                   pixel_size_um, rules)

    def read(self, group: str, rows: np.ndarray, moves: np.ndarray | None = None
             ) -> dict[str, np.ndarray]:
        """The columns of ``group`` (a key of ``GROUPS``) for ``rows`` (bool over all the
        crops, within the reader's ``rows``), NaN elsewhere; ``moves`` ((N, 2) over all the
        crops): the copies' moves, for ``"registered"``."""
        out = {col: np.full(self.n, np.nan, np.float32) for col in self.GROUPS[group]}
        local = np.asarray(rows, bool)[self.index]
        if self._crops is None:
            pieces = [(self.batch, self.index, local)] if self.batch is not None else []
        else:  # prepared a chunk at a time, each when its turn comes
            wanted = self.index[local]
            pieces = ((_Batch.of(np.asarray(self._crops[ids], np.float32), *self._made_of),
                       ids, np.ones(len(ids), bool))
                      for ids in (wanted[i:i + READ_CHUNK]
                                  for i in range(0, len(wanted), READ_CHUNK)))
        for batch, ids, asked in pieces:
            if batch.ck is None or not asked.any():
                break
            part = {col: np.full(len(ids), np.nan, np.float32) for col in out}
            if group == "registered":
                _registered_columns(batch, asked, part, moves[ids])
            else:
                _READERS[group](batch, asked, part)
            for col, values in part.items():
                out[col][ids] = values
        return out


@dataclass
class _Batch:
    """What every measurement of a batch of crops starts from: background and noise, the
    filtered signal on the disk's box, the saturated pixels and the centred CK area."""

    x: np.ndarray            # (N, C, h, w) the crops on the disk's box
    background: np.ndarray   # (N, C)
    noise: np.ndarray        # (N, C)
    signal: np.ndarray       # (N, C, h, w) 3x3 mean above background
    z: np.ndarray            # signal in noise units
    disk: np.ndarray         # (h, w)
    radius_px: float
    box: tuple               # ((y0, y1), (x0, x1)) of the disk within the full crop
    full_shape: tuple        # (H, W)
    pixel_size_um: float
    panel: object
    rules: GuardRules
    ck: int | None
    dna: int | None
    cd45: int | None
    clipped: np.ndarray | None = None   # (N, h, w) saturated in any channel, grown by 1
    ck_z: np.ndarray | None = None      # (N, h, w) CK in noise units, -inf off the disk
    area: np.ndarray | None = None      # (N, h, w) the centred CK area
    ck_area: np.ndarray | None = None   # (N,) its pixels

    @classmethod
    def of(cls, x: np.ndarray, panel, pixel_size_um: float, rules: GuardRules) -> _Batch:
        h_full, w_full = x.shape[2:]
        background, noise = robust_background(x)
        radius_px = rules.radius_um / pixel_size_um
        full_disk = disk_core(h_full, w_full, radius_px)
        (y0, y1), (x0, x1) = box_with_margin(full_disk, 1)
        x = x[:, :, y0:y1, x0:x1]
        signal = mean3x3(x, background[:, :, None, None])
        ck, dna, cd45 = (panel.index_of_role(r) for r in ("epithelial", "nucleus", "leukocyte"))
        warn_unguarded(panel)  # (once a panel: one lacking a plane, or naming one twice)
        batch = cls(x, background, noise, signal, signal / noise[:, :, None, None],
                    full_disk[y0:y1, x0:x1], radius_px, ((y0, y1), (x0, x1)),
                    (h_full, w_full), pixel_size_um, panel, rules, ck, dna, cd45)
        if ck is not None:
            batch._find_ck_area()
        return batch

    def for_readers(self) -> _Batch:
        """The batch less what only :func:`_measured` reads (the signal and CK in noise
        units): what an :class:`ExclusionReader` needs, a third less to keep."""
        self.z = self.ck_z = None
        return self

    def core(self, share: float) -> np.ndarray:
        """The disk of ``share`` of the radius, on the box."""
        (y0, y1), (x0, x1) = self.box
        return disk_core(*self.full_shape, share * self.radius_px)[y0:y1, x0:x1]

    def _find_ck_area(self) -> None:
        n = len(self.x)
        # Saturated pixels (any channel at its ceiling) hold no ratios: a clipped CK under an
        # unclipped leak would look like CD45. They stay out of the CD45 measurement; they do
        # belong to the CK area (a CK clipped at the ceiling is CK-bright: a 12-bit scan clips
        # the brightest CTCs' whole cytoplasm, which once left them without a CK area).
        high = self.panel.saturation_levels
        clipped = self.x[:, 0] >= high[0]
        for i in range(1, len(high)):  # channel by channel: no (N, C, h, w) mask to reduce
            clipped |= self.x[:, i] >= high[i]
        # Grown by a pixel (the 3x3 filter): only on the crops that have a saturated pixel
        # (each crop is filtered on its own, and most have none).
        some = np.flatnonzero(clipped.any(axis=(1, 2)))
        self.clipped = np.zeros_like(clipped)
        if len(some):
            self.clipped[some] = uniform_filter(clipped[some].astype(np.float32),
                                                size=(1, 3, 3)) > 0
        self.ck_z = np.where(self.disk, self.z[:, self.ck], -np.inf)
        centre_score = np.where(self.core(0.5), self.ck_z, -np.inf)
        # The CK area's level is relative to the centred object's own peak: a bright
        # neighbour inside the disk must not raise it above a dim CTC's whole cytoplasm.
        centre_peak = centre_score.reshape(n, -1).max(axis=1)
        level = np.maximum(self.rules.area_level, 0.25 * centre_peak)[:, None, None]
        self.area = central_component(self.ck_z > level, centre_score)
        self.ck_area = self.area.sum(axis=(1, 2)).astype(np.float32)

    def shapes_comparable(self) -> np.ndarray:
        """(N,) bool: a CK area to compare one channel's shape with a copy of another's over
        (``rules.copy_min_area_um2``, at most ``rules.max_clipped_share`` saturated: a clipped
        CK is no template, and the unclipped rim left is too little of the cell to show a shape)."""
        clipped_share = (self.area & self.clipped).sum(axis=(1, 2)) / \
            np.maximum(self.ck_area, 1)
        return (self.ck_area >= self.rules.copy_min_area_um2 / self.pixel_size_um ** 2) & \
            (clipped_share <= self.rules.max_clipped_share)

    def cd45_leak_caps(self, rows: np.ndarray) -> float | np.ndarray:
        """The most of another dye's counts that its leak into CD45 may carry, for ``rows``:
        CD45's ``rules.leak_cap``, or per row ``rules.copy_leak`` where CD45 over the CK area
        is a copy of CK at no more than that share, with no shape of its own
        (``rules.cd45_copy_structure``): a display export's CD45 plane showing a dim-CK
        CTC's CK. A leukocyte's CD45 membrane has a shape of its own."""
        cap = self.rules.leak_cap(self.panel, self.cd45)  # read only where CD45 is in the panel
        return cap if self.ck is None or self.rules.copy_leak <= cap else \
            self._cd45_copy_caps[rows]

    @cached_property
    def _cd45_copy_caps(self) -> np.ndarray:
        """:meth:`cd45_leak_caps` of every crop, once for the CD45 columns and those round CK."""
        rules, comparable = self.rules, np.flatnonzero(self.shapes_comparable())
        caps = np.full(len(self.x), rules.leak_cap(self.panel, self.cd45))
        raw = self.standardised(comparable, [self.cd45, self.ck])
        share, structure = own_structure(raw[:, 0], raw[:, 1],
                                         self.area[comparable] & ~self.clipped[comparable])
        with np.errstate(invalid="ignore"):
            copies = (share <= rules.copy_leak) & (structure < rules.cd45_copy_structure)
        caps[comparable[copies]] = rules.copy_leak
        return caps

    def nucleus(self, rows=slice(None)) -> np.ndarray:
        """(R, h, w) the nucleus of ``rows``: the parts of DAPI above ``rules.area_level`` in
        the disk that touch the CK area or lie within a quarter of the radius of the centre."""
        dna = self.signal[rows, self.dna] / self.noise[rows, self.dna, None, None]
        return touching_parts((dna > self.rules.area_level) & self.disk,
                              self.area[rows] | self.core(0.25))

    def standardised(self, rows: np.ndarray, pair: list[int]) -> np.ndarray:
        """(R, 2, h, w) raw (unfiltered) signal of two channels in noise units, for ``rows``."""
        rows = np.asarray(rows)
        rows = np.flatnonzero(rows) if rows.dtype == bool else rows
        # The two channels of the rows taken at once (the rows' every channel was copied first).
        at = (rows[:, None], np.asarray(pair)[None, :])
        return (self.x[at] - self.background[at][:, :, None, None]) / \
            self.noise[at][:, :, None, None]


def _measured(batch: _Batch, cd45_rows: np.ndarray | None,
              own_structure_level: float | None = None) -> pd.DataFrame:
    """Every column of :func:`measure` for a batch; ``ON_DEMAND_COLUMNS`` on ``cd45_rows``
    only, ``dna_own_structure`` only where ``dna_in_ck`` reaches ``own_structure_level`` (if
    given)."""
    n, c = batch.x.shape[:2]
    disk, z = batch.disk, batch.z
    out = {}
    # The brightest signal within the disk (a maximum, whatever pixels it is taken over).
    peak = z[:, :, disk].max(axis=2)
    mean = (z * disk).reshape(n, c, -1).sum(axis=2) / disk.sum()
    for i in range(c):
        out[f"peak_{i}"] = np.arcsinh(peak[:, i])
        out[f"mean_{i}"] = np.arcsinh(mean[:, i])
    nan = np.full(n, np.nan, np.float32)
    if batch.ck is None:
        out.update(ck_peak=nan, ck_area=nan, dna_in_ck=nan, dna_content=nan,
                   nucleus_in_ck=nan, dna_edge_um=nan, dna_own_structure=nan,
                   cd45_over_ck=nan, cd45_core=nan, cd45_over_cell=nan, cd45_at_ceiling=nan,
                   vouch_peak=nan, exclusion_around_ck=nan, partner_um2=nan,
                   **{f"partner_um2_{role}": nan for role in EXCLUSION_ROLES},
                   ck_own_structure=nan, nuclei=nan, copy_move_y=nan, copy_move_x=nan)
        return pd.DataFrame(out)
    out["ck_peak"] = peak[:, batch.ck]
    out["ck_area"] = batch.ck_area
    if batch.dna is not None:
        _dna_columns(batch, out, own_structure_level)
    else:
        out["dna_in_ck"], out["dna_content"], out["dna_edge_um"] = nan, nan.copy(), nan.copy()
        out["nucleus_in_ck"] = nan.copy()
        out["dna_own_structure"] = nan.copy()
        out["copy_move_y"], out["copy_move_x"] = nan.copy(), nan.copy()
    for col in ON_DEMAND_COLUMNS:
        out[col] = nan.copy()
    rows = np.ones(n, bool) if cd45_rows is None else np.asarray(cd45_rows, bool)
    if rows.any():
        _exclusion_columns(batch, rows, out)
    return pd.DataFrame(out)


def _dna_columns(batch: _Batch, out: dict, own_structure_level: float | None) -> None:
    """``dna_in_ck``, ``dna_content``, ``dna_edge_um`` and ``dna_own_structure`` into ``out``."""
    n = len(batch.x)
    dna, area, disk = batch.dna, batch.area, batch.disk
    has_area = batch.ck_area > 0
    out["dna_in_ck"] = np.where(has_area, np.where(area, batch.z[:, dna], -np.inf)
                                .reshape(n, -1).max(axis=1), 0.0)
    nucleus = batch.nucleus()
    out["dna_content"] = (batch.signal[:, dna] * nucleus).sum(axis=(1, 2))
    nucleus_px = nucleus.sum(axis=(1, 2))
    out["nucleus_in_ck"] = np.where(nucleus_px > 0, (nucleus & enclosed(area)).sum(axis=(1, 2))
                                    / np.maximum(nucleus_px, 1), np.nan).astype(np.float32)
    out["dna_edge_um"] = edge_width(batch.signal[:, dna], nucleus, disk) * batch.pixel_size_um
    comparable = batch.shapes_comparable()
    if own_structure_level is not None:
        comparable &= out["dna_in_ck"] >= own_structure_level
    comparable = np.flatnonzero(comparable)
    # Raw, not 3x3-filtered: own_structure reads the noise from the residual's finest scale.
    # Only the crops with a CK area to compare (most events are leukocytes).
    raw = batch.standardised(comparable, [dna, batch.ck])
    out["dna_own_structure"] = np.full(n, np.nan, np.float32)
    mask = area[comparable] & ~batch.clipped[comparable]
    out["dna_own_structure"][comparable] = own_structure(raw[:, 0], raw[:, 1], mask)[1]
    # The moves where DAPI reaches a nucleus's level, whichever rows the structure was read
    # on, so a frame's registration is read from the same events by every path.
    nucleated = out["dna_in_ck"][comparable] >= batch.rules.dna_level
    moves = np.full((n, 2), np.nan, np.float32)
    moves[comparable[nucleated]] = best_move(raw[nucleated, 0], raw[nucleated, 1],
                                             mask[nucleated],
                                             batch.rules.copy_shift_px(batch.pixel_size_um))
    out["copy_move_y"], out["copy_move_x"] = moves[:, 0], moves[:, 1]


def _exclusion_columns(batch: _Batch, rows: np.ndarray, out: dict) -> None:
    """``ON_DEMAND_COLUMNS`` of ``rows`` into ``out`` (NaN-filled arrays of every row)."""
    for read in _READERS.values():
        read(batch, rows, out)


def _cd45_columns(batch: _Batch, rows: np.ndarray, out: dict) -> None:
    """``cd45_core`` and ``cd45_over_ck``: CD45 over the CK area once every other channel's
    leak is taken off; ``cd45_over_cell``: over the cell's core (read on a call without a CK
    area: a CD45-bright leukocyte called a CTC on a panel whose EpCAM or vimentin may stand
    for CK)."""
    if batch.cd45 is None:
        return
    clipped = batch.clipped[rows]
    others = [i for i in range(batch.x.shape[1]) if i != batch.cd45]
    excess, = marker_excess(batch.signal[rows], batch.noise[rows], clipped, batch.disk,
                            [batch.cd45], others, [batch.cd45_leak_caps(rows)])
    q50, q75 = over_area(excess, clipped, batch.disk, batch.area[rows],
                          batch.ck_area[rows] > 0)
    out["cd45_core"][rows], out["cd45_over_ck"][rows] = q50, q75
    # Over the cell where there is no CK area to read it over (the rest: NaN, not read).
    area = batch.area[rows]
    bare = batch.ck_area[rows] == 0
    if bare.any():
        core = batch.core(0.5)
        cell = np.full(len(bare), np.nan, np.float32)
        cell[bare] = over_area(excess[bare], clipped[bare], batch.disk,
                               np.broadcast_to(core, (int(bare.sum()), *core.shape)),
                               np.ones(int(bare.sum()), bool))[1]
        out["cd45_over_cell"][rows] = cell
        area = np.where(bare[:, None, None], core, area)
    at_top = batch.x[rows, batch.cd45] >= batch.panel.saturation_levels[batch.cd45]
    out["cd45_at_ceiling"][rows] = (at_top & area).sum(axis=(1, 2)) / \
        np.maximum(area.sum(axis=(1, 2)), 1)


def _ck_own_columns(batch: _Batch, rows: np.ndarray, out: dict) -> None:
    """``ck_own_structure``: CK's own shape over its area once the best copy of DAPI is taken
    off (a cytoplasm round a nucleus has one; CK that is DAPI leaking into the CK channel has
    none)."""
    if batch.dna is None:
        return
    raw = batch.standardised(rows, [batch.ck, batch.dna])
    out["ck_own_structure"][rows] = own_structure(raw[:, 0], raw[:, 1],
                                                  batch.area[rows] & ~batch.clipped[rows])[1]


def _registered_columns(batch: _Batch, rows: np.ndarray, out: dict,
                        moves: np.ndarray) -> None:
    """``REGISTERED_COLUMNS``: DAPI's and CK's own shape over the CK area once the best copy
    of the other, moved by ``moves`` ((N, 2) whole pixels, CK against DAPI), is taken off
    (a plane out of register moves a leak's copy with it). DAPI's on the ``rows`` whose CK
    area is comparable (as ``dna_own_structure``), CK's on all ``rows`` (as
    ``ck_own_structure``)."""
    if batch.dna is None or not rows.any():
        return
    moves = np.asarray(moves, np.int64)[rows]
    mask = batch.area[rows] & ~batch.clipped[rows]
    raw = batch.standardised(rows, [batch.dna, batch.ck])
    dna_col, ck_col = REGISTERED_COLUMNS
    out[ck_col][rows] = own_structure(raw[:, 1], raw[:, 0], mask, -moves)[1]
    comparable = batch.shapes_comparable()[rows]
    out[dna_col][np.flatnonzero(rows)[comparable]] = own_structure(
        raw[comparable, 0], raw[comparable, 1], mask[comparable], moves[comparable])[1]


def _nuclei_columns(batch: _Batch, rows: np.ndarray, out: dict) -> None:
    """``nuclei``: how many nuclei the object's nucleus holds, told by its shape (two touching
    nuclei merge into one mask: the evidence a cluster without a partner marker has)."""
    if batch.dna is None:
        return
    rules = batch.rules
    out["nuclei"][rows] = count_nuclei(batch.nucleus(rows), batch.pixel_size_um,
                                       rules.nucleus_min_half_width_um,
                                       rules.nucleus_min_dip_um)


# The groups read on a crop's own (``registered`` needs the moves: ``ExclusionReader.read``).
_READERS = {"ck_own": _ck_own_columns, "cd45": _cd45_columns, "vouch": vouch_columns,
            "around": around_columns, "nuclei": _nuclei_columns}
