"""What the guard's flags read of a batch of events (:class:`Evidence`): their calls, the
network's probabilities and the marker measurements, each array made once and shared by the
flag rules (:mod:`.flags`), and the routes by which the markers vouch for a CTC (a ``wbc`` or
``debris`` call with a CTC's markers; a cluster the network saw on one cell; a ``ctc`` call
the network doubts toward a cluster, on one cell).
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import pandas as pd

from ctcnet.inference.guard.measurements import REGISTERED_COLUMNS
from ctcnet.inference.guard.reference import group_shift, leukocyte_reference, ood_distance
from ctcnet.inference.guard.rules import (
    DOUBTED_CALLS,
    MISSED_CTC_CALLS,
    GuardRules,
)
from ctcnet.io.marker_names import EXCLUSION_ROLES
from ctcnet.io.panel import CK_NEGATIVE_CTC_ROLES

# What ``MARKERS_CTC`` asks of CD45 over the CK area beyond the route's ``cd45_level``, by
# where the markers make calls: nothing (flags alone); on a cartridge, CD45 read as background
# (``GuardRules.markers_cd45_band``); on a crop set, no median excess over what the leaks
# explain (``GuardRules.crop_markers_cd45_core``, set for display exports).
MARKERS_CD45 = (None, "background", "no_excess")


class Evidence:
    """What the flags read of a batch of events: their calls, their measurements (NaN reads as
    no contradiction) and the references, each array made once and shared by the rules."""

    def __init__(self, measured: pd.DataFrame, called: np.ndarray, proba: np.ndarray, spec,
                 rules: GuardRules, groups: np.ndarray | None):
        """``measured``: the events' measurements (a copy this may fill); ``called``: class
        indices; ``groups``: the reference groups (frames or samples)."""
        self.m, self.called, self.proba, self.spec = measured, called, proba, spec
        self.rules, self.groups = rules, groups
        self.names = np.asarray(spec.class_names, dtype=object)[called]
        # The kind each call is checked as (the taxonomy's ``guard_kind``: a lab's ``ctc_emt``
        # as a ``ctc``); the default classes are their own kinds.
        self.kinds = np.asarray(spec.taxonomy.guard_kinds(), dtype=object)[called]
        # The columns as arrays, each taken out of the table once: the rules read them
        # hundreds of times a frame, and a pandas column lookup costs more than the rule.
        self._columns: dict[str, np.ndarray] = {}

    def col(self, name: str) -> np.ndarray:
        """A measurement column as an array."""
        if name not in self._columns:
            self._columns[name] = self.m[name].to_numpy()
        return self._columns[name]

    def set_col(self, name: str, values: np.ndarray) -> None:
        """Replace a measurement column (in the table and in what :meth:`col` gives)."""
        self.m[name] = values
        self._columns[name] = values

    def is_call(self, names) -> np.ndarray:
        """Bool per event: called one of ``names``."""
        return np.isin(self.names, names)

    def is_kind(self, kinds) -> np.ndarray:
        """Bool per event: a call the guard checks as one of ``kinds`` (``GUARD_KINDS``)."""
        return np.isin(self.kinds, kinds)

    @cached_property
    def reference(self) -> dict | None:
        """The model's out-of-distribution reference, if it has one."""
        return self.spec.metrics.get("guard") if isinstance(self.spec.metrics, dict) else None

    @cached_property
    def has_ck_area(self) -> np.ndarray:
        """A CK area at all."""
        return self.col("ck_area") > 0

    @cached_property
    def vouching_panel(self) -> bool:
        """The panel holds a marker that can stand for CK on a CTC (vimentin, EpCAM:
        ``CK_NEGATIVE_CTC_ROLES``)."""
        return bool(set(self.spec.panel.roles()) & set(CK_NEGATIVE_CTC_ROLES))

    def no_epithelial_marker(self) -> np.ndarray:
        """No CK area, nor (on a :attr:`vouching_panel`) that marker lit at the cell:
        ``vouch_peak``, its excess once DAPI's and CK's leaks are off, over the CK area's own
        level, ``rules.area_level``. (Read after ``vouch_peak`` is, on the guarded calls
        without a CK area.)"""
        with np.errstate(invalid="ignore"):  # NaN: no such marker in the panel
            return (self.col("ck_area") == 0) & \
                ~(self.col("vouch_peak") > self.rules.area_level)

    @cached_property
    def no_dna_in_ck(self) -> np.ndarray:
        """A CK area without DAPI at a nucleus's level inside it."""
        return self.has_ck_area & (self.col("dna_in_ck") < self.rules.dna_level)

    @cached_property
    def copy_move(self) -> np.ndarray:
        """(N, 2) int per event, the whole pixels CK lies off DAPI in its group's planes
        (frame or sample): per axis, the median over the group's events of the move that lines
        up their CK with their DAPI best (``copy_move_y``, ``copy_move_x``), rounded, where
        ``rules.register_min_events`` or more are read and ``rules.register_min_share`` of
        them lie off the same way (:func:`.reference.group_shift`); 0 elsewhere. Most cells'
        CK and DAPI are concentric, or one is a copy of the other, so in a scan most events
        agree on the planes' registration, whatever one cell's nucleus off its centre reads.
        (A table without the moves, made elsewhere than :func:`.measure`: in register.)"""
        if not {"copy_move_y", "copy_move_x"} <= set(self.m.columns):
            return np.zeros((len(self.names), 2), np.int64)
        rules = self.rules
        moves = [group_shift(self.col(col), self.groups, rules.register_min_events,
                             rules.register_min_share) for col in ("copy_move_y", "copy_move_x")]
        return np.stack(moves, axis=1).astype(np.int64)

    @cached_property
    def moved(self) -> np.ndarray:
        """Bool per event: its group's planes read out of register (:attr:`copy_move`)."""
        return self.copy_move.any(axis=1)

    def copy_structure(self, channel: str) -> np.ndarray:
        """``"dna"`` or ``"ck"``: the channel's own shape over a copy of the other, the copy
        moved by :attr:`copy_move` (``REGISTERED_COLUMNS``) where the group's planes are out
        of register, in place (``dna_own_structure``, ``ck_own_structure``) elsewhere: what
        the copy tests and a CTC's body (a nucleus and a cytoplasm each with a shape of its
        own) read."""
        registered = REGISTERED_COLUMNS[("dna", "ck").index(channel)]
        in_place = self.col(f"{channel}_own_structure")
        return np.where(self.moved, self.col(registered), in_place) \
            if registered in self.m else in_place

    @cached_property
    def dna_copies_ck(self) -> np.ndarray:
        """DAPI over the CK area no more than a copy of CK (:meth:`copy_structure`)."""
        with np.errstate(invalid="ignore"):  # NaN: CK area too small to compare shapes
            return self.copy_structure("dna") < self.rules.copy_level

    @property
    def dna_near_copy(self) -> np.ndarray:
        """DAPI with little shape of its own over the CK area (under ``body_level``): one half
        of ``one_body``, and where CK's own shape is worth reading for it."""
        with np.errstate(invalid="ignore"):
            return self.copy_structure("dna") < self.rules.body_level

    @property
    def one_body(self) -> np.ndarray:
        """DAPI and CK each no more than a copy of the other (read after
        ``ck_own_structure`` is): one body lit in both channels."""
        with np.errstate(invalid="ignore"):
            return self.dna_near_copy & (self.copy_structure("ck") < self.rules.body_level)

    @cached_property
    def little_dna(self) -> np.ndarray:
        """Far less DNA than the group's median leukocyte holds."""
        reference = leukocyte_reference(self.col("dna_content"), self.kinds, self.groups,
                                        self.rules)
        with np.errstate(invalid="ignore"):  # NaN: no reference in this group
            return self.col("dna_content") < self.rules.dna_share * reference

    @cached_property
    def blurred(self) -> np.ndarray:
        """A nucleus edge wider than the group's leukocytes' allow."""
        reference = leukocyte_reference(self.col("dna_edge_um"), self.kinds, self.groups,
                                        self.rules)
        with np.errstate(invalid="ignore"):
            return self.col("dna_edge_um") > self.rules.focus_ratio * reference

    def out_of_focus(self) -> np.ndarray:
        """:attr:`blurred`, on one nucleus (``nuclei`` not read, NaN: one): two touching nuclei
        merge below half their peak and read as a wide edge whatever the focus (a CTC pressed
        to a neighbour, read whole). (Read after ``nuclei`` is, on the blurred calls.)"""
        with np.errstate(invalid="ignore"):
            return self.blurred & ~(self.col("nuclei") >= 2)

    def ctc_body(self, ck_peak: float) -> np.ndarray:
        """A cell's CK area, CK peaking at ``ck_peak`` or more, a nucleus with DNA and a shape
        of its own inside it (on scans, ``rules.nucleus_in_ck_share`` of it at least)."""
        r = self.rules
        with np.errstate(invalid="ignore"):
            body = (self.col("ck_area") * self.spec.pixel_size_um ** 2
                    >= r.possible_ctc_min_area_um2) & \
                (self.col("ck_peak") >= ck_peak) & \
                (self.col("dna_in_ck") >= r.dna_level) & \
                (self.copy_structure("dna") >= r.flag_structure)
            if r.nucleus_in_ck_share is not None:
                body &= self.col("nucleus_in_ck") >= r.nucleus_in_ck_share
        return body

    @cached_property
    def markers_of_ctc(self) -> np.ndarray:
        """CK and DNA as a CTC shows them (before CD45 is read): a cell's CK area, clearly CK
        positive, a nucleus with DNA and a shape of its own inside it."""
        return self.ctc_body(self.rules.possible_ctc_ck_peak)

    @cached_property
    def lone_cell_body(self) -> np.ndarray:
        """What :meth:`lone_ctc_cell` asks of CK and DNA (before CD45 is read): a CTC's body,
        its CK as the doubt route asks it (``possible_ctc_doubt_ck_peak``): the cluster the
        network saw already says a CTC is there."""
        return self.ctc_body(self.rules.possible_ctc_doubt_ck_peak)

    @cached_property
    def far_from_reference(self) -> np.ndarray:
        """The measured intensity profile far from the training events of the call's class
        (:func:`.reference.ood_distance` over the reference's threshold; none without one)."""
        if not self.reference:
            return np.zeros(len(self.names), bool)
        return ood_distance(self.m, self.called, self.reference, self.spec.in_chans) > \
            self.reference["threshold"]

    def unusual_with_ctc_body(self) -> np.ndarray:
        """Unusual events with a CTC's CK and DNA, of an uncounted call or a call checked as a
        ``ctc``: their ``unusual`` flag waits on CD45 (and the exclusion markers) over and
        round the CK area (a call of another reported class is flagged unusual whatever they
        read)."""
        return self.far_from_reference & self.markers_of_ctc & \
            ~(self.is_call(self.spec.taxonomy.reported_classes()) & ~self.is_kind(("ctc",)))

    @cached_property
    def doubt(self) -> np.ndarray:
        """The network's own doubt: a CTC probability of ``possible_ctc_proba`` or more (equal
        priors), with DNA in the CK area."""
        if "ctc" not in self.spec.class_names:
            return np.zeros(len(self.names), bool)
        with np.errstate(invalid="ignore"):
            return (self.proba[:, self.spec.class_names.index("ctc")]
                    >= self.rules.possible_ctc_proba) & \
                (self.col("dna_in_ck") >= self.rules.dna_level)

    @cached_property
    def marker_route(self) -> np.ndarray:
        """A missed-CTC call whose markers make it a CTC (CD45 aside): ``possible_ctc``'s
        first route."""
        return self.is_kind(MISSED_CTC_CALLS) & self.markers_of_ctc

    def doubt_route(self, with_cd45: bool) -> np.ndarray:
        """A doubted call that passes what a ``ctc`` call must (``with_cd45``: CK's own shape,
        read with CD45, too: more than a copy of DAPI, read at
        ``possible_ctc_doubt_ck_structure`` where CK is dim, under
        ``possible_ctc_ck_peak``, at ``copy_level`` where it is clearly positive)."""
        r = self.rules
        with np.errstate(invalid="ignore"):
            out = self.is_kind(DOUBTED_CALLS) & self.doubt & ~self.dna_copies_ck & \
                ~self.blurred & (self.col("ck_peak") >= r.possible_ctc_doubt_ck_peak)
            if with_cd45:  # NaN (CK's shape not read): not read as a copy
                level = np.where(self.col("ck_peak") >= r.possible_ctc_ck_peak, r.copy_level,
                                 r.possible_ctc_doubt_ck_structure)
                out &= ~(self.copy_structure("ck") < level)
        return out

    def candidates(self) -> np.ndarray:
        """The possible CTCs the checks made before CD45 leave standing: only these (and
        ``ctc`` calls) have flags that turn on the leak fits' columns."""
        return (self.marker_route | self.doubt_route(with_cd45=False)) & ~self.little_dna

    def route_holds(self) -> np.ndarray:
        """Either route to ``possible_ctc`` once CK's own shape is read (CD45 aside)."""
        with np.errstate(invalid="ignore"):
            marker = self.marker_route & \
                (self.copy_structure("ck") >= self.rules.flag_structure)
        return marker | self.doubt_route(with_cd45=True)

    def no_exclusion_marker(self) -> np.ndarray:
        """No CD45 over the CK area nor any exclusion marker over or round it (each at
        ``rules.cd45_level`` or under; not read, NaN: not clear). A method, not a cached
        property: the columns are read on demand, after the first flags."""
        level = self.rules.cd45_level
        with np.errstate(invalid="ignore"):
            return (self.col("cd45_over_ck") <= level) & \
                (self.col("exclusion_around_ck") <= level)

    def exclusion_marker_lit(self) -> np.ndarray:
        """CD45 over the CK area or an exclusion marker over or round it, over
        ``rules.cd45_level``: :meth:`no_exclusion_marker`'s opposite where both are read, and
        false where they are not (NaN: nothing seen lit)."""
        level = self.rules.cd45_level
        with np.errstate(invalid="ignore"):
            return (self.col("cd45_over_ck") > level) | \
                (self.col("exclusion_around_ck") > level)

    def possible_ctc(self) -> np.ndarray:
        """Either route, and no CD45 or other exclusion marker over or round the CK area."""
        # The CellSearch line holds on both routes: an event lit in CD45 (or any exclusion
        # marker) is never shown as a possible CTC, whatever the network thinks.
        return self.route_holds() & ~self.little_dna & self.no_exclusion_marker()

    @property
    def one_cell(self) -> np.ndarray:
        """No exclusion marker attached round the CK area and one nucleus (read on ``cluster``
        calls): a single cell, not a cluster. (Read after ``partner_um2`` and ``nuclei`` are.)"""
        with np.errstate(invalid="ignore"):  # NaN: not read (no such channel): not one cell
            return (self.col("partner_um2") < self.rules.partner_min_um2) & \
                (self.col("nuclei") <= 1)

    def cluster_partner(self) -> np.ndarray:
        """(N,) object: what each ``cluster`` call's markers say is attached to its CTC
        (``CLUSTER_PARTNER``): the roles whose markers light ``partner_min_um2`` or more of
        the band round the CK area, a neutrophil's CD45 read as the neutrophil's; with none,
        ``homotypic`` (two nuclei or more) or ``none`` (one cell); '' on other calls and where
        the band or the nuclei were not read (no exclusion marker, or no DAPI, in the panel).
        (Read after ``partner_um2`` and ``nuclei`` are.)"""
        out = np.full(len(self.names), "", dtype=object)
        rows = self.is_kind(("cluster",)) & np.isfinite(self.col("partner_um2"))
        if not rows.any():
            return out
        level = self.rules.partner_min_um2
        roles = [role for role in EXCLUSION_ROLES if f"partner_um2_{role}" in self.m]
        areas = np.stack([self.col(f"partner_um2_{role}") for role in roles], axis=1) \
            if roles else np.zeros((len(out), 0))
        lit = areas >= level
        if "neutrophil" in roles and "leukocyte" in roles:  # a neutrophil is CD45+ too
            lit[:, roles.index("leukocyte")] &= ~lit[:, roles.index("neutrophil")]
        nuclei = self.col("nuclei")
        for i in np.flatnonzero(rows):
            named = [role for j, role in enumerate(roles) if lit[i, j]]
            if not named and roles and self.col("partner_um2")[i] >= level and \
                    np.isfinite(areas[i]).all():
                # Lit in the band by the markers together, by none alone: the largest.
                named = [roles[int(np.argmax(areas[i]))]]
            if named:
                out[i] = "+".join(named)
            elif np.isfinite(nuclei[i]):  # no DAPI read: neither kind can be told
                out[i] = "homotypic" if nuclei[i] >= 2 else "none"
        return out

    @cached_property
    def cluster_seen(self) -> np.ndarray:
        """The network saw a cluster: a ``cluster`` call, or a ``wbc`` or ``debris`` call (made
        under the cartridge's prior) to which the network itself gives a cluster at least the
        probability of its call, and more than a CTC's."""
        out = self.is_kind(("cluster",))
        if "cluster" not in self.spec.class_names:
            return out
        cluster = self._proba_of("cluster")
        with np.errstate(invalid="ignore"):  # a row not finite has no call
            return out | (self.is_kind(MISSED_CTC_CALLS) & (cluster >= self._proba_of_call) &
                          (cluster > self._proba_of("ctc")))

    def _proba_of(self, name: str) -> np.ndarray:
        """The network's probability of class ``name`` per event (-inf: no such class)."""
        names = list(self.spec.class_names)
        if name not in names:
            return np.full(len(self.names), -np.inf)
        return np.asarray(self.proba, np.float64)[:, names.index(name)]

    @cached_property
    def _proba_of_call(self) -> np.ndarray:
        return np.take_along_axis(np.asarray(self.proba, np.float64), self.called[:, None],
                                  axis=1)[:, 0]

    def lone_ctc_cell(self) -> np.ndarray:
        """A cluster the network saw (:attr:`cluster_seen`) on one cell (:attr:`one_cell`)
        with a CTC's CK and DNA (:attr:`lone_cell_body`), no CD45 over its CK area nor any
        exclusion marker round it, and DNA of a nucleus: a cluster is a CTC with a partner or
        a second cell, so one without either is a CTC. (Read after CD45, CK's own shape and
        the nuclei are.)"""
        return self.cluster_seen & self.one_cell & self.lone_cell_body & ~self.little_dna & \
            self.no_exclusion_marker()

    def markers_ctc(self, possible_ctc: np.ndarray, cd45: str | None = None) -> np.ndarray:
        """The CellSearch definition read off the markers (``marker_calls``): the first
        route's evidence on a ``wbc`` or ``debris`` call, which no network output enters; where
        the network saw a cluster (:attr:`cluster_seen`), the markers must also find one cell
        (:meth:`lone_ctc_cell`: a CTC beside a CD45-dim lymphocyte the network took for a pair
        is not one CTC, nor is a cluster of CTCs one). The network's CTC as likely as its call
        once spared that: where it gave a cluster 0.997, a CTC 0.002 and a leukocyte 0.001,
        five CTCs in one cluster were counted as one CTC. ``cd45``: what more it asks of CD45
        over the CK area where the markers make a call (:data:`MARKERS_CD45`)."""
        first = possible_ctc & self.marker_route & ~self.cluster_seen
        return (first | self.lone_ctc_cell()) & self._markers_call(cd45)

    def ctc_call_on_markers(self) -> np.ndarray:
        """A ``ctc`` call with a CTC's CK and DNA (:attr:`markers_of_ctc`), DNA of a whole
        cell and no CD45 over the CK area nor any exclusion marker over or round it: the
        CellSearch definition as the flags read it. (Read after CD45 and the exclusion markers
        are.)"""
        return self.is_kind(("ctc",)) & self.markers_of_ctc & ~self.little_dna & \
            self.no_exclusion_marker()

    def markers_vouch(self, cd45: str | None = None) -> np.ndarray:
        """A ``ctc`` call (counted on it where it is the network's own: ``guard_events``)
        whose markers alone meet the CellSearch definition as the markers' call reads it
        (:meth:`markers_ctc`: :meth:`ctc_call_on_markers`, a nucleus inside a cytoplasm each
        with a shape of its own, CD45 as ``cd45`` asks) and settle the network's doubt: the
        doubt is toward a cluster (:attr:`cluster_next`, read on the network's probabilities
        before the cartridge's prior, which may then weigh a leukocyte next: the markers
        settle the doubt the network has, not the prevalence), and the markers read one cell
        (:attr:`one_cell`: no partner marker round it, one nucleus), which is a CTC by the
        definition a cluster call is checked with. The markers settle no other doubt: not
        one toward debris (whether the cell is intact is its shape's to say), nor one toward
        a leukocyte (a leukocyte's dim CD45 under bright non-specific CK reads as none).
        (Read after CK's own shape, the exclusion markers round the CK area and the nuclei
        are.)"""
        return self.ctc_call_on_markers() & self._markers_call(cd45) & \
            self.cluster_next & self.one_cell

    @cached_property
    def cluster_next(self) -> np.ndarray:
        """The network's likeliest class after a CTC is a cluster."""
        names = list(self.spec.class_names)
        if "cluster" not in names or "ctc" not in names:
            return np.zeros(len(self.names), bool)
        others = np.nan_to_num(np.asarray(self.proba, np.float64), nan=-1.0).copy()
        others[:, names.index("ctc")] = -np.inf
        return others.argmax(axis=1) == names.index("cluster")

    def _markers_call(self, cd45: str | None) -> np.ndarray:
        """What the markers ask beyond the flags before they make or back a call: more shape
        of its own than the flag may ask (``shown_ctc_structure``), a nucleus inside a
        cytoplasm in both channels, and CD45 as ``cd45`` (:data:`MARKERS_CD45`) asks."""
        if cd45 not in MARKERS_CD45:
            raise ValueError(f"cd45 must be one of {MARKERS_CD45}, not {cd45!r}")
        rules = self.rules
        band = rules.markers_cd45_band
        with np.errstate(invalid="ignore"):
            out = (self.copy_structure("ck") >= rules.possible_ctc_structure) & \
                (self.copy_structure("dna") >= rules.possible_ctc_structure)
            if cd45 == "background":
                out &= (np.abs(self.col("cd45_core")) <= band) & \
                    (np.abs(self.col("cd45_over_ck")) <= band)
            elif cd45 == "no_excess" and rules.crop_markers_cd45_core is not None:
                out &= self.col("cd45_core") <= rules.crop_markers_cd45_core
        return out
