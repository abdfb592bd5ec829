"""A scan whose planes are not the markers ``panel.json`` names, told by what blood cells
show: the nucleus lies in the DNA channel's plane, and every neutrophil carries the leukocyte
marker too.

A cartridge's planes are markers only by ``panel.json``'s word (or the files' own names). An
export written in another order reads exactly as a right one, and ctcnet then counts by the
wrong markers without a word: DAPI and CK swapped read 3 of a cartridge's 9 CTCs, CD45 and
CD66b swapped 16 "CTCs" against 9. CK and CD45 swapped are caught by the calls themselves
(``ctcnet.inference.counts.implausible_marker_balance``); these two signs catch the others.

Both are read on a few events of every frame (:func:`frame_plane_signs`, at most
``CHECK_EVENTS`` a cartridge spread over its frames; the frame's journal keeps them, so a
resumed run judges every frame's), and judged over the cartridge
(:func:`plane_order_problems`); a folder of raw scan crops is read the same way
(:class:`CropFolderSigns`):

* **The nucleus.** In a cell the nucleus is a compact object inside the cell another marker
  lights (CK's cytoplasm round a CTC's, CD45's membrane round a leukocyte's): the plane of
  the smallest central object inside a larger object of another plane
  (:func:`ctcnet.detect.plane_order.nucleus_plane_of`, which judges composite exports the
  same way). On the 20 counting cartridges (``scripts/cartridge_counts.py``, default panel,
  10 frames, 48-77 events read that show a nucleus) the DNA channel's plane is that plane on
  at least 27 and the most of any, no other on more than 25; DAPI and CK swapped, the CK
  plane on 23-49, DAPI's on 15 at most.
* **The leukocyte markers.** Neutrophils carry CD45 as well as CD66b; lymphocytes and
  monocytes CD45 alone. Of the nucleated events, those lit in the neutrophil marker without
  the leukocyte marker are few and those lit the other way many: 0-9 against 12-42 on the
  same cartridges; swapped, the reverse.

A sign that points to another order is a problem of the sample (the run is ``partial``): its
counts stand, and a person checks the order. What the signs do not tell: CK from CD45 (the
calls do), and the platelet marker from another (a platelet's plane lights nucleated events
as often as not: platelets cling to leukocytes).
"""

from __future__ import annotations

import numpy as np

from ctcnet.detect.pixel_size import smoothed_over_ring
from ctcnet.detect.plane_order import nucleus_plane_of

# Events a cartridge's check reads, spread over its frames, and at most this share of a
# frame's events (about 3 ms each: 0.45 s a cartridge at most, under 2 % of a whole one's
# time; the share keeps a small cartridge's check as small beside its other work).
CHECK_EVENTS = 150
CHECK_SHARE = 0.03
# Read only where a crop spans a cell and background round it (the background is read on its
# outer ring): the shipped models' crops span 51 um.
MIN_FIELD_UM = 30.0
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


def frame_plane_signs(crops: np.ndarray, panel, pixel_size_um: float, frames: int
                      ) -> dict | None:
    """The signs of one frame's ``crops`` ((N, C, H, W), ``panel``'s channel order, at
    ``pixel_size_um``) of a cartridge of ``frames`` frames, read on its share of
    ``CHECK_EVENTS`` (``CHECK_SHARE`` of the frame's at most) spread over the frame, as
    JSON-able data: ``nucleus``, per plane the events whose nucleus lies there;
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
    lit = []
    for i in rows:
        x = np.asarray(crops[i], np.float32)
        smooth, level, noise = smoothed_over_ring(x)
        above = smooth - level[:, None, None]
        plane = nucleus_plane_of(above, noise)
        if plane is not None:
            votes[plane] += 1
        lit.append(_lit_at_centre(above, noise, pixel_size_um))
    signs = {"nucleus": votes.tolist()}
    if None not in (dna, leukocyte, neutrophil):
        lit = np.asarray(lit)
        nucleated = lit[:, dna]
        signs["neutrophil_alone"] = int((nucleated & lit[:, neutrophil] & ~lit[:, leukocyte])
                                        .sum())
        signs["leukocyte_alone"] = int((nucleated & lit[:, leukocyte] & ~lit[:, neutrophil])
                                       .sum())
    return signs


def plane_order_problems(signs: list[dict | None], panel, what: str = "events"
                         ) -> tuple[list[str], dict]:
    """The problems the frames' ``signs`` (:func:`frame_plane_signs`'s, None for a frame
    without events) point to over a cartridge of ``panel``, and their sums (what
    ``summary.json`` keeps as ``plane_check``). ``what``: the things read, as the problems
    name them."""
    kept = [s for s in signs if s]
    names, roles = panel.names, panel.roles()
    votes = np.zeros(len(names), int)
    for s in kept:
        if len(s.get("nucleus", ())) == len(names):
            votes += np.asarray(s["nucleus"], int)
    alone = {key: int(sum(s.get(key, 0) for s in kept))
             for key in ("neutrophil_alone", "leukocyte_alone") if any(key in s for s in kept)}
    record = {"events_with_a_nucleus": int(votes.sum()),
              "nucleus_by_plane": dict(zip(names, votes.tolist())), **alone}
    problems = []
    dna = _role(roles, "nucleus")
    if dna is not None and votes.sum() >= MIN_NUCLEUS_VOTES:
        plane = int(np.argmax(votes))
        if plane != dna and votes[plane] >= NUCLEUS_SHARE * votes.sum() and \
                votes[plane] >= NUCLEUS_RATIO * votes[dna]:
            problems.append(
                f"the nucleus lies in the {names[plane]} plane on {votes[plane]} of "
                f"the {votes.sum()} {what} that show one, in {names[dna]}'s on {votes[dna]}: "
                f"are {names[dna]} and {names[plane]} swapped? Check panel.json's channel "
                "order (or the files' own channel names): the calls read the markers by it")
    leukocyte, neutrophil = _role(roles, "leukocyte"), _role(roles, "neutrophil")
    if None not in (leukocyte, neutrophil) and len(alone) == 2 and \
            alone["neutrophil_alone"] >= MIN_ALONE and \
            alone["neutrophil_alone"] >= ALONE_RATIO * alone["leukocyte_alone"]:
        problems.append(
            f"{alone['neutrophil_alone']} nucleated {what} are lit in "
            f"{names[neutrophil]} without {names[leukocyte]}, {alone['leukocyte_alone']} in "
            f"{names[leukocyte]} without {names[neutrophil]}; neutrophils carry both and "
            f"lymphocytes {names[leukocyte]} alone: are {names[leukocyte]} and "
            f"{names[neutrophil]} swapped? Check panel.json's channel order (or the files' "
            "own channel names): the calls read the markers by it")
    return problems, record


class CropFolderSigns:
    """The signs read over a folder of raw scan crops (counts, not a composite's display
    levels), crop by crop as they are read: on up to ``CHECK_EVENTS`` crops spread over its
    ``total``, each at its pixel size, judged as a cartridge's (:func:`plane_order_problems`):
    a crop folder's planes are markers by ``panel.json``'s word as a scan's are."""

    def __init__(self, panel, total: int):
        self.panel, self.signs = panel, []
        self.picks = set(np.linspace(0, total - 1, min(CHECK_EVENTS, total)).astype(int)
                         .tolist()) if total else set()

    def add(self, i: int, crop: np.ndarray, pixel_size_um: float) -> None:
        """Read crop ``i`` ((C, H, W) in the panel's planes) if it is one of the sample."""
        if i in self.picks:
            self.signs.append(frame_plane_signs(crop[None], self.panel, pixel_size_um, 1))

    def problems(self) -> list[str]:
        """:func:`plane_order_problems` of the crops read."""
        return plane_order_problems(self.signs, self.panel, "crops")[0]


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
