"""What a scan's cells say of its metadata: whether its planes are the markers ``panel.json``
names (the nucleus lies in the DNA channel's plane, every neutrophil carries the leukocyte
marker too, the DNA stain, CD45 and CK light what blood holds, and each plane's cells lie on
the nuclei), and whether its pixel size is one at which its nuclei have a nucleus's size.

A cartridge's planes are markers, and its pixels micrometres, only by ``panel.json``'s word (or
the files' own metadata). An export written in another order, or binned 2 x 2 without its
pixel size doubled, reads exactly as a right one, and ctcnet then counts by the wrong markers
or at the wrong scale without a word: DAPI and CK swapped read 3 of a cartridge's 9 CTCs, CD45
and CD66b swapped 16 "CTCs" against 9, a pixel size stated at half the true one counted 16 of
a cartridge's 30 CTCs, and a CK channel whose lamp failed none of them. CK and CD45 swapped
are caught by the calls themselves (``ctcnet.inference.counts.implausible_marker_balance``);
these signs catch the others.

They are read on a few events of every frame (:func:`frame_signs`, about ``CHECK_EVENTS`` a
cartridge spread over its frames and at least one a frame, whole cells where the frame has
any; the frame's journal keeps them, so a resumed run judges every frame's), and judged over
the cartridge (:func:`metadata_problems`); a folder of raw scan crops is read the same way
(:class:`~ctcnet.detect.crop_folder_signs.CropFolderSigns`):

* **The nucleus's plane.** In a cell the nucleus is a compact object inside the cell another
  marker lights (CK's cytoplasm round a CTC's, CD45's membrane round a leukocyte's): the plane
  of the smallest central object inside a larger object of another plane, or the plane that
  object is a dim copy of (a bleed of DAPI shows the nucleus in another plane)
  (:func:`ctcnet.detect.plane_order.nucleus_plane_of`, which judges composite exports the same
  way). On the 20 counting cartridges (``scripts/cartridge_counts.py``, default panel, 10
  frames, 48-76 events read that show a nucleus) the DNA channel's plane is that plane on at
  least 31 and the most of any, no other on more than 18 (a lead of 18 at the least); DAPI
  and CK swapped, the CK plane on 30-58, DAPI's on 17 at most.
* **The leukocyte markers.** Neutrophils carry CD45 as well as CD66b; lymphocytes and
  monocytes CD45 alone. Of the nucleated events, those lit in the neutrophil marker without
  the leukocyte marker are few and those lit the other way many: 0-9 against 12-42 on the
  same cartridges; swapped, the reverse.
* **A dark plane.** The DNA stain lights every cell's nucleus, the leukocyte marker every
  leukocyte, and CK some of a blood sample's events whether it holds CTCs or not (leukocytes
  stained non-specifically, tumour-derived vesicles, dye aggregates bright in every channel,
  other dyes' bleed): DNA or CD45 lighting almost none of the events read, or CK none, is a
  channel that failed (a lamp, a filter, an exposure: the plane the camera's dark noise) or
  another plane under its name. On the simulator's cartridges DAPI lights 55 % of the events
  read at least, CD45 38 %, CK 34 %; with one of them dark (three counting cartridges each),
  none, and each was said; with CK dark, one holding 30 CTCs had counted none, as ``ok``. On
  real scans the share CK lights is not measured here.
* **The planes in register.** Each lit plane's centre near the event's centre against the
  nucleus's: on a cell in register a few tenths of a micrometre either way, more than 0.5 um
  on about 40 % of the events (a ring's centre, a neighbour's plane), so the median over the
  events of a scan in register reads a few tenths (0.21 um at most on the 20 counting
  cartridges) but can be chance on a small sample (0.79 um on 21 events of a dense cartridge
  of three frames); a plane shifted between exposures shifts on every cell alike (CK moved
  2 px, 1.3 um: read 1.31 um), so a plane is said where its median is far off and its events
  lie off that way with 90 % confidence. The guard compares DAPI with CK lined up by each
  frame's registration, but the network and CD45 over CK read the planes as given.
* **The nuclei's size.** The median nucleus read (its diameter at half its peak,
  :func:`ctcnet.detect.pixel_size.nucleus_diameter_of`) at the stated pixel size: 6.1-9.4 um on
  simulated cartridges of every look (small and large cells among them), 4.1-4.4 um with the
  pixel size stated at half the true one, 11.6-13.1 um at twice. A crowded frame's nuclei read
  small at that half-peak (the crop's brightest DNA is often a neighbour's), so small nuclei
  are said only where they read small at their own half-peak as well
  (:func:`ctcnet.detect.pixel_size.own_nucleus_diameter_of`, ``OWN_NUCLEUS_SMALL_UM``).

A sign that points to another order, a dark plane, planes out of register or another scale is
a problem of the sample (the run is ``partial``): its counts stand, and a person checks the
metadata. What the signs do not tell: CK from CD45 (the calls do), the platelet marker from
another (a platelet's plane lights nucleated events as often as not: platelets cling to
leukocytes), a pixel size stated less than about 1.4x too small or 2x too large (the models
read cells from 0.7x to 2x of their scale alike), a shift under 0.6 um, nor anything of a
cartridge too small to read enough events. On a crop folder no plane is judged dark (its crops
were chosen: a folder of CTCs shows no CD45).
"""

from __future__ import annotations

import numpy as np

from ctcnet.detect.pixel_size import (
    nucleus_diameter_of,
    own_nucleus_diameter_of,
    smoothed_over_ring,
)
from ctcnet.detect.plane_order import nucleus_plane_of
from ctcnet.detect.plane_register import (
    REGISTER_UM,
    median_offsets,
    offsets_from_dna,
    out_of_register,
)

# Events a cartridge's check reads, spread over its frames (at least one a frame), and at most
# this share of a frame's events (about 3 ms each: 0.5 s of a 175-frame cartridge's 66 s of
# CPU; the share keeps a small cartridge's check small beside its other work); where a
# frame's first events look as another description's would (frame_signs), up to this many a
# cartridge, enough to judge a dark plane (MIN_READ) and the nucleus's votes
# (MIN_NUCLEUS_VOTES).
CHECK_EVENTS = 150
CHECK_SHARE = 0.03
CHECK_MIN_EVENTS = 100
# Read only where a crop spans a cell and background round it (the background is read on its
# outer ring), as stated: the shipped models' crops span 51 um, and 80 px crops stated at
# half their 0.64 um/px (a binned export) still 26.
MIN_FIELD_UM = 20.0
# A plane is lit on an event when it peaks this many noise units over the crop's background
# within this radius of the event's centre (its own cell, not a neighbour's).
LIT_NOISE = 10.0
CENTRE_UM = 6.0
# The nucleus is judged on this many events that show one, at least; another plane than the
# DNA channel's is named when it holds the nucleus on this share of them, this many times as
# many events as the DNA channel's plane, and as many events itself (a dark DNA plane leaves a
# few small objects of other planes, not a nucleus's plane).
MIN_NUCLEUS_VOTES = 20
NUCLEUS_SHARE = 0.3
NUCLEUS_RATIO = 1.5
# The leukocyte markers are judged on this many nucleated events lit in one of them without
# the other, at least; swapped when the neutrophil marker alone outnumbers the leukocyte
# marker alone this many times (a swap lights next to none in the leukocyte marker alone: 40
# against 0; a correct simulated scan of 4 frames read 10 against 5, and at 2 times was
# called swapped and partial).
MIN_ALONE = 10
ALONE_RATIO = 3.0
# ...each marker read as lit there only past this share of the event's DNA peak: a DNA stain's
# bleed into another plane (up to 10 % in the simulator) is no marker of its own.
BLEED_SHARE = 0.12
# A DNA stain lights every cell's nucleus, the leukocyte marker every leukocyte, and CK some
# of a blood sample's cells faintly (non-specific staining, bright nuclei's bleed): judged on
# this many events read, at least, a plane of these roles lit on no more than this share of
# them is dark (CK on none: a sample without CTCs lights few).
MIN_READ = 60
DARK_SHARE = {"nucleus": 0.05, "leukocyte": 0.05, "epithelial": 0.0}
# The nuclei's size is judged on this many nuclei measured, at least; the median diameter (um)
# a scan's nuclei may have at the stated pixel size (leukocytes' 5-8 um at half their peak read
# 6.0-7.2 um on simulated scans of 0.25-2 um/px; at half the true pixel size, where counts
# broke, 4.0-4.4 um at 0.64 and 4.7-5.0 at 1-1.6 um/px, a few pixels blurring wider; a size
# too large is told past about 2x, where counts held), and the one a right pixel size gives.
MIN_NUCLEI = 20
NUCLEUS_UM = (5.4, 14.0)
SCAN_NUCLEUS_UM = 7.0
# A crowded frame's neighbours read its nuclei small too (above): small nuclei are said only
# where each at its own half-peak (:func:`own_nucleus_diameter_of`) reads under this as well.
# Correctly stated: 6.1-9.4 um over 9 simulated cartridges of three looks, 6.7-6.9 on 5
# crowded ones (1,400-3,600 events a mm2) whose nuclei at the crop's half-peak read 4.2-6.4;
# at half the true pixel size 4.6-5.8 (the crop's half-peak: 3.2-5.2).
OWN_NUCLEUS_SMALL_UM = 6.0
# A crop narrower than this holds no whole cell (a tight export is ~1.3 cell diameters wide).
CELL_MIN_UM = 8.0


def spread_rows(rows: np.ndarray, count: int, whole: np.ndarray | None = None) -> np.ndarray:
    """Up to ``count`` of a frame's event ``rows`` (indices, in detection's order), the middle
    of each of ``count`` equal shares of them, taken among the whole cells (``whole``: (N,)
    bool over all the frame's events, the crops lying whole in the frame) where any of
    ``rows`` is one: detection lists a frame's events from its top, so its first and last are
    as a rule cells the frame's borders cut, whose planes read off (a cartridge of 175 frames
    reads one to three events a frame)."""
    rows = np.asarray(rows)
    if whole is not None:
        inside = rows[np.asarray(whole, bool)[rows]]
        rows = inside if len(inside) else rows
    count = min(len(rows), count)
    if not count:
        return rows[:0]
    return rows[np.unique(((np.arange(count) + 0.5) * len(rows) / count).astype(int))]


def frame_signs(crops: np.ndarray, panel, pixel_size_um: float, frames: int,
                whole: np.ndarray | None = None) -> dict | None:
    """The signs of one frame's ``crops`` ((N, C, H, W), ``panel``'s channel order, at
    ``pixel_size_um``) of a cartridge of ``frames`` frames, read on its share of
    ``CHECK_EVENTS`` (``CHECK_SHARE`` of the frame's at most; ``CHECK_MIN_EVENTS`` a
    cartridge where the first look as another description's would) spread over it, as
    JSON-able data:
    ``read``, the events read; ``lit``, per plane those it lights at their centre; ``nucleus``,
    per plane the events whose nucleus lies there; ``nucleus_um``, the diameters of the DNA
    channel's nuclei measured; ``offset_um``, [plane, dx, dy] of each lit plane's centre from
    the nucleus's; ``neutrophil_alone`` and ``leukocyte_alone``, the nucleated events lit in one
    leukocyte marker without the other (absent where the panel lacks either). ``whole``: (N,)
    bool, the events whose crops lie whole in the frame (None: all); only those are read where
    the frame has any, a cell the frame border cuts reading its planes' centres off (the visible
    parts of a ring and of its nucleus lie at different distances from the cut). None for a
    frame without events, or crops too small to read (``MIN_FIELD_UM``)."""
    n = len(crops)
    if not n or min(crops.shape[2:]) * pixel_size_um < MIN_FIELD_UM:
        return None
    frames = max(frames, 1)
    events = min(-(-CHECK_EVENTS // frames), int(np.ceil(CHECK_SHARE * n)))
    roles = panel.roles()
    dna = single_role(roles, "nucleus")
    leukocyte, neutrophil = single_role(roles, "leukocyte"), single_role(roles, "neutrophil")
    rows = list(spread_rows(np.arange(n), events, whole))
    votes = np.zeros(panel.num_channels, int)
    lit, peaks, snrs, diameters, own, offsets = [], [], [], [], [], []
    # Where each crop is read (one shape for a frame's crops): its centre and its cell.
    h, w = crops.shape[2:]
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    from_centre = np.hypot(yy - (h - 1) / 2, xx - (w - 1) / 2) * pixel_size_um
    # (at least the pixels nearest the centre: a crop read at 10 um/px, a speck of debris
    # fitted to one size, had none within CENTRE_UM, and the run ended in a traceback)
    nearest = float(from_centre.min())
    centre, cell = (from_centre <= max(CENTRE_UM, nearest),
                    from_centre <= max(REGISTER_UM, nearest))

    def read(which) -> None:
        for i in which:
            x = np.asarray(crops[i], np.float32)
            smooth, level, noise = smoothed_over_ring(x)
            above = smooth - level[:, None, None]
            plane = nucleus_plane_of(above, noise)
            if plane is not None:
                votes[plane] += 1
            peaks.append(above[:, centre].max(axis=1))
            snrs.append(peaks[-1] / np.maximum(noise, 1e-6))
            lit.append(snrs[-1] > LIT_NOISE)
            if dna is not None:
                diameters.append(nucleus_diameter_of(above[dna], float(noise[dna]))
                                 * pixel_size_um)
                own.append(own_nucleus_diameter_of(above[dna], float(noise[dna]))
                           * pixel_size_um)
                offsets.extend(offsets_from_dna(above, noise, dna, cell, (xx, yy),
                                                pixel_size_um, LIT_NOISE))

    def alone() -> dict:
        """The nucleated events read lit in one leukocyte marker without the other."""
        if None in (dna, leukocyte, neutrophil) or not lit:
            return {}
        # A leukocyte marker lit past what DNA's bleed into it can carry: a DNA stain leaking
        # 8 % into CD66b lit it alone on a CTC-rich cartridge's CTCs and bare nuclei, and on
        # its lymphocytes beside CD45 (10 alone against 1 of 43 read: "swapped?").
        shown, bright, over = np.asarray(lit), np.asarray(peaks), np.asarray(snrs)
        marked = shown & (bright > BLEED_SHARE * np.maximum(bright[:, [dna]], 0))
        # Not an event whose CK outshines both leukocyte markers over their noise: a CTC, its
        # CD66b lit by a leak (CTC candidates read "swapped?"); a leukocyte's CK stays under.
        ck = single_role(roles, "epithelial")
        nucleated = shown[:, dna] & (True if ck is None else
                                     over[:, ck] <= over[:, [leukocyte, neutrophil]].max(axis=1))
        return {"neutrophil_alone": int((nucleated & marked[:, neutrophil]
                                         & ~marked[:, leukocyte]).sum()),
                "leukocyte_alone": int((nucleated & marked[:, leukocyte]
                                        & ~marked[:, neutrophil]).sum())}

    read(rows)
    # A short cartridge's share of its events is too few to judge a plane dark (MIN_READ),
    # the leukocyte markers (MIN_ALONE) or the nucleus's plane (MIN_NUCLEUS_VOTES): at 3 %, 5
    # frames read 45 events and DAPI and CK swapped went unsaid; 3 frames 21-33, and a CK lamp
    # that had failed (0 of 30 CTCs counted) and CD45 and CD66b swapped (31-45 CTCs for 18-30)
    # read "ok". Where the frame's first events look so (the nucleus in another plane 1.5 times
    # as often, twice at least; a plane every sample lights lit on too few; CD66b alone as often
    # as CD45 alone), more are read, CHECK_MIN_EVENTS a cartridge; a frame that looks as a scan
    # in its order reads no more (a short cartridge's 0.3 s, the guard's stage 2x its floor).
    more = min(-(-CHECK_EVENTS // frames), -(-CHECK_MIN_EVENTS // frames))
    markers = alone()
    if more > len(rows) and _looks_described_otherwise(votes, dna, np.asarray(lit), markers,
                                                        panel):
        seen = set(rows)
        extra = [int(i) for i in spread_rows(np.arange(n), more, whole)
                 if int(i) not in seen][:more - len(rows)]
        if extra:
            read(extra)
            rows += extra
            markers = alone()
    shown = np.asarray(lit)
    return {"read": len(rows), "lit": shown.sum(axis=0).astype(int).tolist(),
            "nucleus": votes.tolist(),
            "nucleus_um": [round(d, 2) for d in diameters if np.isfinite(d)],
            "own_nucleus_um": [round(d, 2) for d in own if np.isfinite(d)],
            "offset_um": offsets, **markers}


def _looks_described_otherwise(votes: np.ndarray, dna: int | None, lit: np.ndarray,
                               alone: dict, panel) -> bool:
    """Whether a frame's first events read (``votes`` of the nucleus's plane, ``lit`` (events,
    planes), :func:`frame_signs`' leukocyte markers ``alone``) look as another description's
    would: the nucleus elsewhere than in the DNA plane, a plane every blood sample lights lit
    on too few of them (as :func:`_dark_planes` judges, without its least number read), or
    the neutrophil marker alone as often as the leukocyte marker alone."""
    elsewhere = int(np.delete(votes, dna).max()) if dna is not None and len(votes) > 1 else 0
    if dna is not None and elsewhere >= max(2, NUCLEUS_RATIO * votes[dna]):
        return True
    if len(lit) and _dark_planes(lit.sum(axis=0), len(lit), panel, least=1):
        return True
    return bool(alone) and 0 < alone["neutrophil_alone"] >= alone["leukocyte_alone"]


def metadata_problems(signs: list[dict | None], panel, pixel_size_um: float | None,
                      what: str = "events", whole_sample: bool = True
                      ) -> tuple[list[str], dict]:
    """The problems the frames' ``signs`` (:func:`frame_signs`'s, None for a frame without
    events) point to over a cartridge of ``panel``'s channels whose frames are stated at
    ``pixel_size_um`` (None: not judged, each crop given its own scale), and their sums (what
    ``summary.json`` keeps as ``metadata_check``). ``what``: the things read, as the problems
    name them; ``whole_sample``: they are a blood sample's events, whose cells the DNA stain
    and the leukocyte marker light (not crops someone chose, which may all be CTCs: no plane
    is judged dark)."""
    names = panel.names
    # (A frame's signs of another panel, a journal of another model's run, are not summed.)
    kept = [s for s in signs if s and len(s.get("nucleus", ())) == len(names)
            and len(s.get("lit", names)) == len(names)]
    votes, lit = np.zeros(len(names), int), np.zeros(len(names), int)
    for s in kept:
        votes += np.asarray(s["nucleus"], int)
        lit += np.asarray(s.get("lit", [0] * len(names)), int)
    read = int(sum(s.get("read", 0) for s in kept))
    alone = {key: int(sum(s.get(key, 0) for s in kept))
             for key in ("neutrophil_alone", "leukocyte_alone") if any(key in s for s in kept)}
    diameters = [d for s in kept for d in s.get("nucleus_um", ())]
    # (a frame's journal written before its signs held them reads None: the crop's alone)
    own = [d for s in kept for d in s.get("own_nucleus_um", ())] \
        if all("own_nucleus_um" in s for s in kept) else []
    own_median = float(np.median(own)) if len(own) >= MIN_NUCLEI else None
    offsets = [o for s in kept for o in s.get("offset_um", ())]
    median = float(np.median(diameters)) if diameters else None
    record = {"events_read": read, "lit_by_plane": dict(zip(names, lit.tolist())),
              "events_with_a_nucleus": int(votes.sum()),
              "nucleus_by_plane": dict(zip(names, votes.tolist())), **alone,
              "nuclei_measured": len(diameters),
              "nucleus_median_um": None if median is None else round(median, 2),
              "own_nucleus_median_um": None if own_median is None else round(own_median, 2),
              # Whether the pixel size was judged by the nuclei: a small scan's too few left it
              # unjudged, and nothing said so (a wrong size read only as "crowded").
              "pixel_size_judged": pixel_size_um is not None and len(diameters) >= MIN_NUCLEI,
              "median_offset_um": median_offsets(offsets, names)}
    elsewhere = nucleus_elsewhere(votes, panel, what)
    swapped = _markers_swapped(alone, panel, what)
    # A dark plane is said as such. A dark CD45 leaves every neutrophil lit in CD66b alone: not
    # the swap that says (CD66b in CD45's place still lights the neutrophils). A dark DNA
    # plane and the nucleus in another plane are both said: CK in DNA's place may light few
    # events, and a dark DNA plane leaves CK's cytoplasm inside CD45's ring looking nuclear.
    dark = _dark_planes(lit, read if whole_sample else 0, panel)
    problems = [p for p in (
        _dark_said(dark, lit, read, panel, what) if dark else None, elsewhere,
        None if single_role(panel.roles(), "leukocyte") in dark else swapped,
        _off_scale(median, len(diameters), pixel_size_um, what, own_median),
        out_of_register(record["median_offset_um"], names, single_role(panel.roles(), "nucleus"),
                         what)) if p]
    return problems, record


def _dark_planes(lit: np.ndarray, read: int, panel, least: int = MIN_READ) -> list[int]:
    """The planes of the markers every blood sample lights that light fewer of the events
    read than ``DARK_SHARE`` asks of their role (judged on ``least`` events read at least)."""
    if read < least:
        return []
    roles = panel.roles()
    at = {role: single_role(roles, role) for role in DARK_SHARE}
    return [i for role, i in at.items() if i is not None and lit[i] <= DARK_SHARE[role] * read]


def _dark_said(dark: list[int], lit: np.ndarray, read: int, panel, what: str) -> str:
    names = panel.names
    planes = " and ".join(f"{names[i]} lights {lit[i]}" for i in dark)
    return (f"{planes} of the {read} {what} read, where a blood sample lights the DNA stain "
            "and CD45 on most and CK on some: a channel that failed (lamp, filter, exposure), "
            "or another plane under its name? Check the frames and panel.json's channel "
            "order: the counts read the markers by them")


def nucleus_elsewhere(votes: np.ndarray, panel, what: str) -> str | None:
    """The nucleus in another plane than the DNA channel's (see the module), said."""
    names, dna = panel.names, single_role(panel.roles(), "nucleus")
    if dna is None or votes.sum() < MIN_NUCLEUS_VOTES:
        return None
    plane = int(np.argmax(votes))
    if plane == dna or votes[plane] < NUCLEUS_SHARE * votes.sum() or \
            votes[plane] < max(NUCLEUS_RATIO * votes[dna], MIN_NUCLEUS_VOTES):
        return None
    return (f"the nucleus lies in the {names[plane]} plane on {votes[plane]} of the "
            f"{votes.sum()} {what} that show one, in {names[dna]}'s on {votes[dna]}: are "
            f"{names[dna]} and {names[plane]} swapped? Check panel.json's channel order (or the "
            "files' own channel names): the calls read the markers by it")


def _markers_swapped(alone: dict, panel, what: str) -> str | None:
    """The neutrophil marker lit alone more often than the leukocyte marker, said."""
    roles, names = panel.roles(), panel.names
    leukocyte, neutrophil = single_role(roles, "leukocyte"), single_role(roles, "neutrophil")
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


def _off_scale(median: float | None, measured: int, stated: float | None, what: str,
               own_median: float | None = None) -> str | None:
    """Nuclei of a size no nucleus has at the ``stated`` pixel size, said with the pixel size
    they suggest; small ones only where their median at their own half-peak (``own_median``,
    None: not measured) is small too (a crowded frame's are not)."""
    low, high = NUCLEUS_UM
    if stated is None or median is None or measured < MIN_NUCLEI or low <= median <= high:
        return None
    if median < low and own_median is not None and own_median >= OWN_NUCLEUS_SMALL_UM:
        return None
    hint = "a frame binned 2 x 2 has twice its camera's pixel size" if median < low else \
        "frames enlarged, or the pixel size of another objective?"
    # --pixel-size sets a crop folder's alone; a cartridge's is its panel.json's or files'.
    where = "panel.json's pixel_size_um, the files' own" + (", or --pixel-size"
                                                            if what == "crops" else "")
    return (f"the nuclei of the {what} read {median:.1f} um across (median of {measured}) at "
            f"the stated pixel size of {stated:g} um, where a scan's read {low:g}-{high:g}: is "
            f"that pixel size right ({where})? The nuclei suggest {'at least ' * (median < low)}"
            f"about {stated * SCAN_NUCLEUS_UM / median:.2g} ({hint}); cells read at the wrong "
            "scale are called by the wrong sizes")


def single_role(roles: list[str], role: str) -> int | None:
    """The channel of ``role``, where the panel has exactly one."""
    at = [i for i, r in enumerate(roles) if r == role]
    return at[0] if len(at) == 1 else None
