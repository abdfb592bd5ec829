"""The members of a merged object whose own markers read as a CTC's, offered as events of their
own beside the whole (pure numpy, on detection's working grid).

Detection keeps touching cells together (:func:`ctcnet.detect.splitting.split_and_merge`), so
that a CTC with attached neutrophils or platelets stays one cluster event. At a working pixel
of about 1.9 um it cannot tell a contact from a gap of a couple of micrometres: a bright cell's
blur fills the gap to a dim neighbour, or a dim CTC sits on the tail of a bright aggregate, and
the saddle between them reads as one object. A CTC beside a debris blob or a leukocyte then
became part of one event called ``debris`` or ``wbc`` and was lost to the count (three of the
twelve CTCs of the demo cartridge).

The markers tell what the geometry cannot: a member with CK and DNA of its own and little CD45
beside one that has CD45 or is bright in every channel is two cells, touching or not. Whether
they form a cluster is the classifier's question, so detection asks it both ways: a merged
object whose members differ so is kept whole and its members are added as alternate events
("parts"); the calls resolve them (:mod:`ctcnet.inference.alternates`): the parts replace the
whole only where reading it whole would lose a counted cell (the whole not a counted call free
of the guard's flags, and a part called a counted class, made one by its markers or held as a
possible CTC).
Where the detection image gives such a CTC no seed of its own (a brighter neighbour's maximum
lies within a seed distance), CK's and DNA's own maxima seed its piece (:func:`marker_seeds`);
:func:`with_marker_parts` reads the pieces' markers and adds the parts to a frame's events.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from ctcnet.detect.splitting import LabelRuns, nonzero_2d, pair_saddles, window_max_at
from ctcnet.io.marker_names import EXCLUSION_ROLES
from ctcnet.io.panel import Panel

# A member reads as a CTC by its own markers: CK and DNA over detection's core threshold, and
# CD45 under this share of its CK peak. CD45 is read where the member's CK peaks, not as its
# maximum over the member: the maximum takes in a neighbour's blur at the shared border (over
# 20 dense simulated cartridges, 9 of the CTCs lost inside a leukocyte's or a neutrophil's
# event showed their neighbour's CD45 at 0.3-0.9 of their CK there). A CTC beside a leukocyte
# showed CD45 at 0.11 of its CK, the leukocyte 1.6x and a bright aggregate 0.6x.
CTC_CD45_SHARE = 0.3
# A member lit in every exclusion marker (CD45, a platelet's CD61, a neutrophil's CD66b) at
# this share of its CK or more is an aggregate or a fibre, bright in every channel, not a CTC:
# a fibre showed CD45 at 0.26 of its CK, CD61 at 0.29 and CD66b at 0.40, passed the CD45 test
# alone, read as one cell with the CTC it touched, and that CTC was lost inside its event
# (exported-style cells placed into scans). One lit marker is a neighbour's blur or a leak (a
# CTC beside a platelet-coated cell showed CD61 at 0.35 of its CK, one with a bright nucleus
# CD66b at 0.51: DAPI leaks into the free channels), so all must be, of two or more. Each is
# read where the member's CK peaks and where its DNA peaks, the lower standing: that CTC's CK
# peaked on its border with the fibre (all three over 0.2 there), its nucleus showed none.
AGGREGATE_SHARE = 0.2
# Two CTC-like members are one cell when both the CK and the DNA between them stay at this
# share of the lower of their peaks (a CTC cut at two CK maxima, a lobed nucleus); a lower
# saddle in either is a gap between two cells (a CTC beside a CK+ blob or a second CTC, its
# CK on the slope of the other's but its nucleus apart), each then offered alone.
SAME_CELL_RATIO = 0.5
# A member's CK must be more than this share of its DNA: bleed-through of DAPI into the CK
# channel (a few per cent, up to 10 % in the simulator) and a CTC's CK blurred over a bare
# nucleus beside it (0.05 of its DNA) are not a CK of its own.
CK_DNA_SHARE = 0.1
# ...and its own CD45 peak (anywhere over it) under this multiple of its CK peak: a leukocyte
# beside a CTC takes the CTC's CK blur at their border as its CK peak, where its own CD45 is
# low (a lymphocyte's CD45 peaked at 4x the CK blur it took in), while a dim CTC's member
# takes in a neighbour's CD45 blur up to about its own CK.
CD45_OUTSHINES = 2.0
# The columns an event table with alternates carries (:func:`attach_parts`).
GROUP = "alternate_group"
PART = "alternate_part"


def ctc_like(peaks: np.ndarray, nucleus: int, epithelial: int, leukocyte: int | None,
             threshold_snr: float, cd45_peak: np.ndarray | None = None,
             exclusion: np.ndarray | None = None) -> np.ndarray:
    """Per piece: do its own markers read as a CTC's (CK of its own and DNA shown, CD45
    low, not lit in every exclusion marker)? ``peaks``: per piece and channel, the peak
    signal-to-noise; in the leukocyte channel, the level where the piece's CK peaks;
    ``cd45_peak``: the leukocyte channel's own peak per piece, if read; ``exclusion``: per
    piece, each exclusion marker's level where its CK or its DNA peaks, the lower (columns:
    the panel's exclusion markers; :data:`AGGREGATE_SHARE`), if read."""
    ck, dna = peaks[:, epithelial], peaks[:, nucleus]
    like = (ck >= threshold_snr) & (dna >= threshold_snr) & (ck > CK_DNA_SHARE * dna)
    if leukocyte is not None:
        like &= peaks[:, leukocyte] < CTC_CD45_SHARE * ck
        if cd45_peak is not None:
            like &= cd45_peak < CD45_OUTSHINES * ck
    if exclusion is not None and exclusion.shape[1] >= 2:
        like &= ~(exclusion >= AGGREGATE_SHARE * ck[:, None]).all(axis=1)
    return like


def marker_parts(labels: np.ndarray, pieces: np.ndarray, pairs: tuple[np.ndarray, np.ndarray],
                 peaks: np.ndarray, channels: tuple[int, int, int | None],
                 threshold_snr: float, saddles: tuple | None = None,
                 cd45_peak: np.ndarray | None = None,
                 exclusion: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The alternate members of merged objects that hold a CTC-like member and another.

    ``labels``: the objects (after merging); ``pieces``: the watershed's pieces they were
    merged from (same grid) and ``pairs``, their 4-adjacent pairs; ``peaks``: the (n + 1, C)
    peak signal-to-noise per channel of each piece 0..n (:func:`ctc_like`); ``channels``: the
    (nucleus, epithelial, leukocyte or None) channel positions; ``saddles``: per pair, the
    highest CK and the highest DNA along its border
    (:func:`ctcnet.detect.splitting.adjacent_saddles`), if read;
    ``cd45_peak``, ``exclusion``: see :func:`ctc_like`.
    Returns a label image of the parts (0 elsewhere) and, per part label 0..k, the object
    label it came from (0 for none). Neighbouring pieces that are not CTC-like form one part;
    CTC-like ones do where the CK and the DNA between them stay high (``SAME_CELL_RATIO``;
    without ``saddles``, always), so a CTC cut at two CK maxima stays one cell and a CTC beside
    another CK-bright object (a tdEV, a CK+ blob, a second CTC) is offered on its own.
    """
    n = int(pieces.max())
    empty = np.zeros_like(labels), np.zeros(1, np.int64)
    if n < 2:
        return empty
    nucleus, epithelial, leukocyte = channels
    like = ctc_like(peaks, nucleus, epithelial, leukocyte, threshold_snr, cd45_peak, exclusion)
    # Each piece's object (every pixel of a piece lies in one object).
    owner = np.zeros(n + 1, np.int64)
    fg = pieces > 0
    owner[pieces[fg]] = labels[fg]
    like[0] = False
    # Members: neighbouring pieces of one object and kind, CTC-like ones of one cell.
    a, b = pairs
    same = (owner[a] == owner[b]) & (like[a] == like[b])
    if saddles is not None and len(a):
        ck, dna = peaks[:, epithelial], peaks[:, nucleus]
        one_cell = (saddles[0] >= SAME_CELL_RATIO * np.minimum(ck[a], ck[b])) & \
            (saddles[1] >= SAME_CELL_RATIO * np.minimum(dna[a], dna[b]))
        same &= ~like[a] | one_cell
    graph = coo_matrix((np.ones(int(same.sum())), (a[same], b[same])), shape=(n + 1, n + 1))
    _, component = connected_components(graph, directed=False)
    # Objects holding a CTC-like member and another member (of the other kind, or a second
    # CTC-like one across a CK gap) are split; the rest are left alone.
    n_obj = int(labels.max())
    members = np.unique(np.stack([component, owner, like.astype(np.int64)], 1)[1:], axis=0)
    members = members[members[:, 1] > 0]
    n_like = np.bincount(members[members[:, 2] == 1, 1], minlength=n_obj + 1)
    n_other = np.bincount(members[members[:, 2] == 0, 1], minlength=n_obj + 1)
    split = (n_like >= 1) & (n_like + n_other >= 2)
    split[0] = False
    if not split.any():
        return empty
    in_split = split[owner]
    in_split[0] = False
    # Number the parts 1..k over the pieces of split objects only.
    kept, part_of_piece = np.unique(component[in_split], return_inverse=True)
    lookup = np.zeros(n + 1, np.int64)
    lookup[np.flatnonzero(in_split)] = part_of_piece.ravel() + 1
    parts = lookup[pieces]
    parent = np.zeros(len(kept) + 1, np.int64)
    parent[lookup[in_split]] = owner[in_split]
    return parts, parent


def attach_parts(wholes: pd.DataFrame, parts: pd.DataFrame, parent: np.ndarray,
                 label: str) -> pd.DataFrame:
    """The event table with the parts as rows of their own: :data:`GROUP` names each split
    object's whole and its parts by the whole's label (-1 on the other events), :data:`PART`
    marks the parts. ``label``: the column holding each row's label (dropped here). Parts
    whose whole was dropped (by size) are left out with it."""
    whole_label = wholes[label].to_numpy(np.int64)
    parent_of = parent[parts[label].to_numpy(np.int64)] if len(parts) else np.zeros(0, np.int64)
    keep = np.isin(parent_of, whole_label) & (parent_of > 0)
    split = np.isin(whole_label, parent_of[keep])
    # One table built from the columns' arrays: a frame's few dozen rows cost pandas more in
    # assign, concat and drop (4.6 ms a frame) than in the one constructor.
    columns = {c: np.concatenate([wholes[c].to_numpy(), parts[c].to_numpy()[keep]])
               for c in wholes.columns if c != label}
    columns[GROUP] = np.concatenate([np.where(split, whole_label, -1), parent_of[keep]])
    columns[PART] = np.arange(len(whole_label) + int(keep.sum())) >= len(whole_label)
    return pd.DataFrame(columns)


def marker_seeds(snr: np.ndarray, mask: np.ndarray, channels: tuple, seed_radius: int,
                 threshold_snr: float) -> np.ndarray | None:
    """Seeds where the markers say a CTC sits: local maxima of the CK or DNA map
    (``seed_radius`` apart in each), with DNA over ``threshold_snr`` there, CK over it there or
    within a working pixel (a nucleus's own CK can dip under it inside a lit ring), and CD45
    under :data:`CTC_CD45_SHARE` of that CK. The detection image is the largest
    signal of any channel, so a CTC within a seed distance of a brighter neighbour (a debris
    blob, a leukocyte's CD45, a tdEV's CK) has no maximum of its own there; its CK and DNA
    still peak where it is. ``channels``: (nucleus, epithelial, leukocyte or None); None
    without a nucleus or a CK channel."""
    nucleus, epithelial, leukocyte = channels
    if nucleus is None or epithelial is None:
        return None
    # The maps as detection smoothed them (about the PSF): smoothing them again as the
    # detection image is for its seeds found the same CTCs at a quarter more detection time.
    ck, dna = snr[epithelial], snr[nucleus]
    nucleated = mask & (dna >= threshold_snr)
    # CK is the cytoplasm's: over a nucleus's own peak it can dip under the threshold while
    # the ring round it is lit (a dim CTC beside a CK+ neutrophil, the demo's seed, had CK 4
    # over its DNA peak of 13 and 6-8 a working pixel off), so there CK is read within one.
    ck_at = np.where(nucleated & (ck >= threshold_snr), ck, 0.0)
    ys, xs = nonzero_2d(nucleated & (ck < threshold_snr))
    ck_at[ys, xs] = window_max_at(ck, ys, xs, 3)
    candidates = nucleated & (ck_at >= threshold_snr)
    if leukocyte is not None:
        candidates &= snr[leukocyte] < CTC_CD45_SHARE * ck_at
    if not candidates.any():
        return candidates
    ys, xs = nonzero_2d(candidates)
    size = 2 * seed_radius + 1
    # CK's maxima, and DNA's: a CTC's CK on the slope of a brighter CK neighbour's (a CK+
    # blob) has no maximum of its own, its nucleus still has one. Read at the candidates
    # alone: a few hundred pixels of a frame.
    peak = (ck[ys, xs] == window_max_at(ck, ys, xs, size)) | \
        (dna[ys, xs] == window_max_at(dna, ys, xs, size))
    seeds = np.zeros_like(candidates)
    seeds[ys[peak], xs[peak]] = True
    return seeds


def marker_channels(panel: Panel) -> tuple:
    """(nucleus, epithelial, leukocyte) channel positions of ``panel``, None where missing."""
    return tuple(panel.index_of_role(r) for r in ("nucleus", "epithelial", "leukocyte"))


LABEL = "_label"  # an object's label in a label image, while alternates are attached


def with_marker_parts(events: pd.DataFrame, labels: np.ndarray, pieces: np.ndarray | None,
                      pairs, snr: np.ndarray, panel: Panel, config,
                      table) -> pd.DataFrame:
    """``events`` (with their :data:`LABEL`) and the members of merged objects whose own
    markers read as a CTC's (:func:`ctcnet.detect.members.marker_parts`) as rows of their own,
    measured by ``table`` like every event; without DNA or CK channels, just ``events``."""
    channels = marker_channels(panel)
    # Every object one piece (no merge on this frame): no members to offer, and no per-channel
    # peaks to take over the frame's pixels.
    if pieces is None or None in channels[:2] or int(pieces.max()) == int(labels.max()):
        return attach_parts(events, events.iloc[:0], np.zeros(1, np.int64), LABEL)
    n = int(pieces.max())
    runs = LabelRuns(pieces, n)  # one sort of the pieces' pixels for every reduction below
    peaks = np.stack([runs.max(c) for c in snr], axis=1)
    nucleus, epithelial, leukocyte = channels
    # Each exclusion marker where each piece's CK peaks and where its DNA does, the lower
    # (AGGREGATE_SHARE); CD45 where CK peaks is also CTC_CD45_SHARE's reading, below.
    at_ck = {c: runs.at_max(snr[c], snr[epithelial])
             for c in panel.indices_of_roles(EXCLUSION_ROLES)}
    exclusion = np.stack([np.fmin(level, runs.at_max(snr[c], snr[nucleus]))
                          for c, level in at_ck.items()] or [np.zeros(n + 1)], axis=1)
    cd45_peak = None
    if leukocyte is not None:  # CD45 where each piece's CK peaks (members.CTC_CD45_SHARE)
        cd45_peak = peaks[:, leukocyte].copy()
        peaks[:, leukocyte] = at_ck[leukocyte]
    a, b = pairs
    saddles = pair_saddles(pieces, [snr[epithelial], snr[nucleus]], a, b) if len(a) else None
    parts, parent = marker_parts(labels, pieces, pairs, peaks, channels, config.threshold_snr,
                                 saddles, cd45_peak, exclusion)
    found = table(parts) if len(parent) > 1 else events.iloc[:0]
    return attach_parts(events, found, parent, LABEL)
