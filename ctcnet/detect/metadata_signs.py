"""What a scan's cells say of its metadata: whether its planes are the markers ``panel.json``
names (the nucleus lies in the DNA channel's plane, and every neutrophil carries the leukocyte
marker too), and whether its pixel size is one at which its nuclei have a nucleus's size.

A cartridge's planes are markers, and its pixels micrometres, only by ``panel.json``'s word (or
the files' own metadata). An export written in another order, or binned 2 x 2 without its
pixel size doubled, reads exactly as a right one, and ctcnet then counts by the wrong markers
or at the wrong scale without a word: DAPI and CK swapped read 3 of a cartridge's 9 CTCs, CD45
and CD66b swapped 16 "CTCs" against 9, and a pixel size stated at half the true one counted 16
of a cartridge's 30 CTCs. CK and CD45 swapped are caught by the calls themselves
(``ctcnet.inference.counts.implausible_marker_balance``); these signs catch the others.

They are read on a few events of every frame (:func:`frame_signs`, at most ``CHECK_EVENTS`` a
cartridge spread over its frames; the frame's journal keeps them, so a resumed run judges
every frame's), and judged over the cartridge (:func:`metadata_problems`); a folder of raw scan
crops is read the same way (:class:`CropFolderSigns`):

* **The nucleus's plane.** In a cell the nucleus is a compact object inside the cell another
  marker lights (CK's cytoplasm round a CTC's, CD45's membrane round a leukocyte's): the plane
  of the smallest central object inside a larger object of another plane
  (:func:`ctcnet.detect.plane_order.nucleus_plane_of`, which judges composite exports the same
  way). On the 20 counting cartridges (``scripts/cartridge_counts.py``, default panel, 10
  frames, 48-77 events read that show a nucleus) the DNA channel's plane is that plane on at
  least 27 and the most of any, no other on more than 25; DAPI and CK swapped, the CK plane on
  23-49, DAPI's on 15 at most.
* **The leukocyte markers.** Neutrophils carry CD45 as well as CD66b; lymphocytes and
  monocytes CD45 alone. Of the nucleated events, those lit in the neutrophil marker without
  the leukocyte marker are few and those lit the other way many: 0-9 against 12-42 on the
  same cartridges; swapped, the reverse.
* **The nuclei's size.** The median nucleus read (its diameter at half its peak,
  :func:`ctcnet.detect.pixel_size.nucleus_diameter_of`) at the stated pixel size: 6.1-9.4 um on
  simulated cartridges of every look (small and large cells among them), 4.1-4.4 um with the
  pixel size stated at half the true one, 11.6-13.1 um at twice.

A sign that points to another order or scale is a problem of the sample (the run is
``partial``): its counts stand, and a person checks the metadata. What the signs do not tell:
CK from CD45 (the calls do), the platelet marker from another (a platelet's plane lights
nucleated events as often as not: platelets cling to leukocytes), and a pixel size off by less
than about 1.4x (the models read cells from 0.7x to 2x of their scale alike).
"""

from __future__ import annotations

import numpy as np

from ctcnet.detect.pixel_size import nucleus_diameter_of, smoothed_over_ring
from ctcnet.detect.plane_order import nucleus_plane_of

# Events a cartridge's check reads, spread over its frames, and at most this share of a
# frame's events (about 3 ms each: 0.45 s a cartridge at most, under 2 % of a whole one's
# time; the share keeps a small cartridge's check as small beside its other work).
CHECK_EVENTS = 150
CHECK_SHARE = 0.03
# Read only where a crop spans a cell and background round it (the background is read on its
# outer ring), as stated: the shipped models' crops span 51 um, and 80 px crops stated at
# half their 0.64 um/px (a binned export) still 26.
MIN_FIELD_UM = 20.0
# A plane is lit on an event when it peaks this many noise units over the crop's background
# within this radius of the event's centre (its own cell, not a neighbour's).
LIT_NOISE = 10.0
CENTRE_UM = 6.0
# The nucleus is judged on this many events that show one, at least; another plane than the
# DNA channel's is named when it holds the nucleus on this share of them and this many times
# as many events as the DNA channel's plane.
MIN_NUCLEUS_VOTES = 20
NUCLEUS_SHARE = 0.3
NUCLEUS_RATIO = 1.5
# The leukocyte markers are judged on this many nucleated events lit in one of them without
# the other, at least; swapped when the neutrophil marker alone outnumbers the leukocyte
# marker alone this many times.
MIN_ALONE = 10
ALONE_RATIO = 2.0
# The nuclei's size is judged on this many nuclei measured, at least; the median diameter (um)
# a scan's nuclei may have at the stated pixel size (leukocytes' 5-8 um, read at half their
# peak; where counts broke, at half the true pixel size, the median read 4.1-4.4 um), and the one
# a right pixel size gives on the simulator's scans, for the pixel size the nuclei suggest.
MIN_NUCLEI = 20
NUCLEUS_UM = (5.0, 14.0)
SCAN_NUCLEUS_UM = 7.0


def frame_signs(crops: np.ndarray, panel, pixel_size_um: float, frames: int) -> dict | None:
    """The signs of one frame's ``crops`` ((N, C, H, W), ``panel``'s channel order, at
    ``pixel_size_um``) of a cartridge of ``frames`` frames, read on its share of
    ``CHECK_EVENTS`` (``CHECK_SHARE`` of the frame's at most) spread over the frame, as
    JSON-able data: ``nucleus``, per plane the events whose nucleus lies there;
    ``nucleus_um``, the diameters of the DNA channel's nuclei measured;
    ``neutrophil_alone`` and ``leukocyte_alone``, the nucleated events lit in one leukocyte
    marker without the other (absent where the panel lacks either). None for a frame without
    events, or crops too small to read (``MIN_FIELD_UM``)."""
    n = len(crops)
    if not n or min(crops.shape[2:]) * pixel_size_um < MIN_FIELD_UM:
        return None
    events = min(-(-CHECK_EVENTS // max(frames, 1)), int(np.ceil(CHECK_SHARE * n)))
    roles = panel.roles()
    dna = _role(roles, "nucleus")
    leukocyte, neutrophil = _role(roles, "leukocyte"), _role(roles, "neutrophil")
    rows = np.unique(np.linspace(0, n - 1, min(n, events)).round().astype(int))
    votes = np.zeros(panel.num_channels, int)
    lit, diameters = [], []
    for i in rows:
        x = np.asarray(crops[i], np.float32)
        smooth, level, noise = smoothed_over_ring(x)
        above = smooth - level[:, None, None]
        plane = nucleus_plane_of(above, noise)
        if plane is not None:
            votes[plane] += 1
        lit.append(_lit_at_centre(above, noise, pixel_size_um))
        if dna is not None:
            diameters.append(nucleus_diameter_of(above[dna], float(noise[dna])) * pixel_size_um)
    signs = {"nucleus": votes.tolist(),
             "nucleus_um": [round(d, 2) for d in diameters if np.isfinite(d)]}
    if None not in (dna, leukocyte, neutrophil):
        lit = np.asarray(lit)
        nucleated = lit[:, dna]
        signs["neutrophil_alone"] = int((nucleated & lit[:, neutrophil] & ~lit[:, leukocyte])
                                        .sum())
        signs["leukocyte_alone"] = int((nucleated & lit[:, leukocyte] & ~lit[:, neutrophil])
                                       .sum())
    return signs


def metadata_problems(signs: list[dict | None], panel, pixel_size_um: float | None,
                      what: str = "events") -> tuple[list[str], dict]:
    """The problems the frames' ``signs`` (:func:`frame_signs`'s, None for a frame without
    events) point to over a cartridge of ``panel``'s channels whose frames are stated at
    ``pixel_size_um`` (None: not judged, each crop given its own scale), and their sums (what
    ``summary.json`` keeps as ``metadata_check``). ``what``: the things read, as the problems
    name them."""
    kept = [s for s in signs if s]
    names = panel.names
    votes = np.zeros(len(names), int)
    for s in kept:
        if len(s.get("nucleus", ())) == len(names):
            votes += np.asarray(s["nucleus"], int)
    alone = {key: int(sum(s.get(key, 0) for s in kept))
             for key in ("neutrophil_alone", "leukocyte_alone") if any(key in s for s in kept)}
    diameters = [d for s in kept for d in s.get("nucleus_um", ())]
    median = float(np.median(diameters)) if diameters else None
    record = {"events_with_a_nucleus": int(votes.sum()),
              "nucleus_by_plane": dict(zip(names, votes.tolist())), **alone,
              "nuclei_measured": len(diameters),
              "nucleus_median_um": None if median is None else round(median, 2)}
    problems = [p for p in (_nucleus_elsewhere(votes, panel, what),
                            _markers_swapped(alone, panel, what),
                            _off_scale(median, len(diameters), pixel_size_um, what)) if p]
    return problems, record


def _nucleus_elsewhere(votes: np.ndarray, panel, what: str) -> str | None:
    """The nucleus in another plane than the DNA channel's (see the module), said."""
    names, dna = panel.names, _role(panel.roles(), "nucleus")
    if dna is None or votes.sum() < MIN_NUCLEUS_VOTES:
        return None
    plane = int(np.argmax(votes))
    if plane == dna or votes[plane] < NUCLEUS_SHARE * votes.sum() or \
            votes[plane] < NUCLEUS_RATIO * votes[dna]:
        return None
    return (f"the nucleus lies in the {names[plane]} plane on {votes[plane]} of the "
            f"{votes.sum()} {what} that show one, in {names[dna]}'s on {votes[dna]}: are "
            f"{names[dna]} and {names[plane]} swapped? Check panel.json's channel order (or the "
            "files' own channel names): the calls read the markers by it")


def _markers_swapped(alone: dict, panel, what: str) -> str | None:
    """The neutrophil marker lit alone more often than the leukocyte marker, said."""
    roles, names = panel.roles(), panel.names
    leukocyte, neutrophil = _role(roles, "leukocyte"), _role(roles, "neutrophil")
    if None in (leukocyte, neutrophil) or len(alone) < 2 or \
            alone["neutrophil_alone"] < MIN_ALONE or \
            alone["neutrophil_alone"] < ALONE_RATIO * alone["leukocyte_alone"]:
        return None
    return (f"{alone['neutrophil_alone']} nucleated {what} are lit in {names[neutrophil]} "
            f"without {names[leukocyte]}, {alone['leukocyte_alone']} in {names[leukocyte]} "
            f"without {names[neutrophil]}; neutrophils carry both and lymphocytes "
            f"{names[leukocyte]} alone: are {names[leukocyte]} and {names[neutrophil]} "
            "swapped? Check panel.json's channel order (or the files' own channel names): the "
            "calls read the markers by it")


def _off_scale(median: float | None, measured: int, stated: float | None, what: str
               ) -> str | None:
    """Nuclei of a size no nucleus has at the ``stated`` pixel size, said with the pixel size
    they suggest."""
    low, high = NUCLEUS_UM
    if stated is None or median is None or measured < MIN_NUCLEI or low <= median <= high:
        return None
    return (f"the nuclei of the {what} read {median:.1f} um across (median of {measured}) at "
            f"the stated pixel size of {stated:g} um, where a scan's read {low:g}-{high:g}: is "
            f"panel.json's pixel_size_um right? The nuclei suggest about "
            f"{stated * SCAN_NUCLEUS_UM / median:.2g} (a frame binned 2 x 2 has twice its "
            "camera's); cells read at the wrong scale are called by the wrong sizes")


class CropFolderSigns:
    """The signs read over a folder of raw scan crops (counts, not a composite's display
    levels), crop by crop as they are read: on up to ``CHECK_EVENTS`` crops spread over its
    ``total``, each at its pixel size, judged as a cartridge's (:func:`metadata_problems`):
    a crop folder's planes are markers, and its pixels micrometres, by ``panel.json``'s word as
    a scan's are. ``pixel_size_um``: the folder's (None where each crop has its own)."""

    def __init__(self, panel, total: int, pixel_size_um: float | None):
        self.panel, self.pixel_size_um, self.signs = panel, pixel_size_um, []
        self.picks = set(np.linspace(0, total - 1, min(CHECK_EVENTS, total)).astype(int)
                         .tolist()) if total else set()

    def add(self, i: int, crop: np.ndarray, pixel_size_um: float) -> None:
        """Read crop ``i`` ((C, H, W) in the panel's planes) if it is one of the sample."""
        if i in self.picks:
            self.signs.append(frame_signs(crop[None], self.panel, pixel_size_um, 1))

    def problems(self) -> list[str]:
        """:func:`metadata_problems` of the crops read."""
        return metadata_problems(self.signs, self.panel, self.pixel_size_um, "crops")[0]


def _lit_at_centre(above: np.ndarray, noise: np.ndarray, pixel_size_um: float) -> np.ndarray:
    """Bool per plane: it peaks ``LIT_NOISE`` noise units over the background within
    ``CENTRE_UM`` of the crop's centre."""
    h, w = above.shape[1:]
    yy, xx = np.ogrid[:h, :w]
    disc = np.hypot(yy - (h - 1) / 2, xx - (w - 1) / 2) * pixel_size_um <= CENTRE_UM
    return above[:, disc].max(axis=1) > LIT_NOISE * np.maximum(noise, 1e-6)


def _role(roles: list[str], role: str) -> int | None:
    """The channel of ``role``, where the panel has exactly one."""
    at = [i for i, r in enumerate(roles) if r == role]
    return at[0] if len(at) == 1 else None
