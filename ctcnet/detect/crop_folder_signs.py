"""What a crop folder of raw scan crops says of its metadata, read crop by crop as the crops
are read (:class:`CropFolderSigns`): the signs :mod:`ctcnet.detect.metadata_signs` reads on
a cartridge's frames, on crops spread over the folder, judged as a cartridge's are, and its
samples' nuclei against each other (:func:`samples_off_scale`: a sample of another scanner's
pixel size copied in).
"""

from __future__ import annotations

import numpy as np

from ctcnet.detect.metadata_signs import (
    CELL_MIN_UM,
    CHECK_EVENTS,
    MIN_FIELD_UM,
    MIN_NUCLEUS_VOTES,
    NUCLEUS_UM,
    frame_signs,
    metadata_problems,
    nucleus_elsewhere,
    single_role,
)
from ctcnet.detect.plane_order import samples_in_another_order


class CropFolderSigns:
    """The signs read over a folder of raw scan crops (counts, not a composite's display
    levels), crop by crop as they are read: on up to ``CHECK_EVENTS`` crops spread over its
    ``total``, each at its pixel size, judged as a cartridge's (:func:`metadata_problems`):
    a crop folder's planes are markers, and its pixels micrometres, by ``panel.json``'s word as
    a scan's are. ``pixel_size_um``: the folder's (None where each crop has its own)."""

    def __init__(self, panel, total: int, pixel_size_um: float | None,
                 sample_ids: list[str] | None = None):
        self.panel, self.pixel_size_um, self.signs = panel, pixel_size_um, []
        self.picks = set(np.linspace(0, total - 1, min(CHECK_EVENTS, total)).astype(int)
                         .tolist()) if total else set()
        self.sample_ids = sample_ids
        self.nuclei: dict[str, list[float]] = {}  # per sample, the nuclei measured (um)
        self.nucleus_planes: dict[str, np.ndarray] = {}  # per sample, its crops' nuclei
        self.fields: list[float] = []  # the crops' narrower side, in um

    def add(self, i: int, crop: np.ndarray, pixel_size_um: float) -> None:
        """Read crop ``i`` ((C, H, W) in the panel's planes) if it is one of the sample."""
        if i in self.picks:
            self.fields.append(min(crop.shape[1:]) * float(pixel_size_um))
            signs = frame_signs(crop[None], self.panel, pixel_size_um, 1)
            self.signs.append(signs)
            if signs is not None and self.sample_ids is not None:
                sample = self.sample_ids[i]
                self.nuclei.setdefault(sample, []).extend(signs["nucleus_um"])
                self.nucleus_planes[sample] = self.nucleus_planes.get(sample, 0) + \
                    np.asarray(signs["nucleus"], int)

    def problems(self) -> list[str]:
        """:func:`metadata_problems` of the crops read, and the samples whose nuclei read at
        another scale than the other samples' (:func:`samples_off_scale`)."""
        found, record = metadata_problems(self.signs, self.panel, self.pixel_size_um, "crops",
                                          whole_sample=False)
        apart = samples_off_scale(self.nuclei)
        dna, names = single_role(self.panel.roles(), "nucleus"), self.panel.names
        if dna is not None and nucleus_elsewhere(np.array(
                [record["nucleus_by_plane"][n] for n in names]), self.panel, "crops") is None:
            found += [line for line in [samples_in_another_order(
                self.nucleus_planes, names, dna)] if line]
        # Crops narrower than a nucleus at the stated pixel size hold no whole one to measure:
        # a pixel size ten times too small read every crop as debris, unsaid.
        field = float(np.median(self.fields)) if self.fields else None
        narrow = [f"the crops are {field:.1f} um across (median) at the stated pixel size "
                  f"of {self.pixel_size_um:g} um, too narrow to hold a cell (a nucleus alone "
                  f"is {NUCLEUS_UM[0]:g}-{NUCLEUS_UM[1]:g} um): is that pixel size right "
                  "(panel.json's pixel_size_um, or --pixel-size)? Cells read at the wrong "
                  "scale are called by the wrong sizes"] if field is not None and \
            field < CELL_MIN_UM and self.pixel_size_um is not None else []
        return found + ([apart] if apart else []) + narrow

    def order_unjudged(self) -> str | None:
        """What a command fitting a model from the crops says where too few of those read
        show a nucleus in the DNA stain's plane (``MIN_NUCLEUS_VOTES``) for the channel order
        to be judged by it (another plane holding it on more is named): silent, a fine-tune
        on 8 crops a class with DAPI and CK swapped in panel.json (the nucleus in the CK
        plane on 17 of 26, too few to be called a swap) was written, reading its held-out
        crops at 0.77 against 1.00 in order."""
        dna = single_role(self.panel.roles(), "nucleus")
        if dna is None:
            return None
        record = metadata_problems(self.signs, self.panel, self.pixel_size_um, "crops",
                                   whole_sample=False)[1]
        votes, names = record["nucleus_by_plane"], self.panel.names
        # (a swap the nuclei already show is said by problems())
        if votes[names[dna]] >= MIN_NUCLEUS_VOTES or nucleus_elsewhere(
                np.array([votes[n] for n in names]), self.panel, "crops") is not None:
            return None
        most, shown = max(votes, key=votes.get), votes[names[dna]]
        learnt = ("a model fitted from crops whose planes are named in another order learns "
                  "them so: check panel.json's channel order on a few crops by eye")
        field = max(self.fields) if self.fields else None
        if field is not None and field < MIN_FIELD_UM:
            # Too narrow to hold a cell with background round it: no crop was read, which is
            # no sign of the order ("0 of the crops read show a nucleus" read as a swap).
            return (f"the crops are {field:.1f} um across at most, too narrow to read a "
                    f"nucleus inside its cell (at least {MIN_FIELD_UM:g} um), so the channel "
                    f"order is not checked by the nuclei, and {learnt}")
        if most != names[dna] and votes[most] > shown:
            return (f"the nucleus lies in the {most} plane on {votes[most]} of the "
                    f"{record['events_with_a_nucleus']} crops read that show one, in "
                    f"{names[dna]}'s on {shown}: are {names[dna]} and {most} swapped? Too few "
                    f"to be sure ({MIN_NUCLEUS_VOTES} are needed), and {learnt}")
        return (f"{shown} of the crops read show a nucleus in {names[dna]}'s plane, too few "
                f"({MIN_NUCLEUS_VOTES} are needed) to check the channel order by it, and "
                f"{learnt}")


# A sample's nuclei (SAMPLE_NUCLEI or more measured) whose median differs from the other
# samples' by this factor or more: a folder merged from two scanners under one panel.json's
# pixel size (one scanner's crops enlarged 3x read 24-26 um nuclei beside the others' 9). On
# simulated folders of five looks (8 samples of 40 crops each) a sample's median differed from
# the folder's by 1.38x at most; a frame binned 2 x 2 differs by 2x. A sample of large cells
# alone (CTCs) may read 1.5x.
SAMPLE_NUCLEI, SAMPLE_SCALE = 5, 1.8

_ADVICE = ("crops of another scanner or objective at another pixel size? panel.json states one "
           "for the folder (a manifest cannot state one a crop): give each scanner's crops a "
           "folder of their own")


def samples_off_scale(nuclei: dict[str, list[float]]) -> str | None:
    """The samples whose nuclei read at another scale than the other samples', in words."""
    medians = {s: float(np.median(d)) for s, d in nuclei.items() if len(d) >= SAMPLE_NUCLEI}
    if len(medians) < 2:
        return None
    # Each sample against the median of the others' medians, a vote a sample: with the nuclei
    # pooled, a sample of many crops pulled the folder's figure towards its own scale (one of
    # three samples enlarged 2x went unsaid; of two, the right one was named).
    others = {s: float(np.median([v for t, v in medians.items() if t != s])) for s in medians}
    off = {s: m for s, m in medians.items() if _apart(m, others[s]) >= SAMPLE_SCALE}
    if not off:
        return None
    # Where the samples named read a nucleus's size at the stated pixel size and the others
    # do not (most samples enlarged), or every sample is off (two apart, two against two),
    # those whose nuclei read a nucleus's size are taken to be right.
    right = {s for s, m in medians.items() if NUCLEUS_UM[0] <= m <= NUCLEUS_UM[1]}
    if len(off) == len(medians) or (set(off) <= right and not set(medians) <= right):
        if not right or right == set(medians):
            listed = ", ".join(f"{s} ({m:.1f} um)" for s, m in sorted(medians.items()))
            return (f"the nuclei of the {len(medians)} samples read at scales "
                    f"{_apart(max(medians.values()), min(medians.values())):.1f}x apart: "
                    f"{listed}; {_ADVICE}")
        off = {s: m for s, m in medians.items() if s not in right}
    named = ", ".join(f"{s} ({m:.1f} um against {others[s]:.1f})" for s, m in
                      sorted(off.items(), key=lambda x: -_apart(x[1], others[x[0]]))[:3])
    return (f"the nuclei of {len(off)} of {len(medians)} samples read at another scale than "
            f"the other samples': {named}{' ...' if len(off) > 3 else ''}; {_ADVICE}")


def _apart(a: float, b: float) -> float:
    """How many times the larger of two sizes is the smaller."""
    return max(a, b) / max(min(a, b), 1e-6)
