"""The members of a merged object whose own markers read as a CTC's, offered as events of their
own beside the whole (pure numpy, on detection's working grid).

Detection keeps touching cells together (:func:`ctcnet.detect.detection.split_and_merge`), so
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
whole only when one of them is called a counted class and the whole is not a cluster.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

# A member reads as a CTC by its own markers: CK and DNA over detection's core threshold, and
# CD45 under this share of its CK peak. The peaks are maxima over the member's pixels, so they
# take in a neighbour's blur at the shared border; a CTC beside a leukocyte showed CD45 at 0.11
# of its CK there, the leukocyte 1.6x and a bright aggregate 0.6x.
CTC_CD45_SHARE = 0.3
# The columns an event table with alternates carries (:func:`attach_parts`).
GROUP = "alternate_group"
PART = "alternate_part"


def ctc_like(peaks: np.ndarray, nucleus: int, epithelial: int, leukocyte: int | None,
             threshold_snr: float) -> np.ndarray:
    """Per piece: do its own markers read as a CTC's (CK and DNA shown, CD45 low)?"""
    ck, dna = peaks[:, epithelial], peaks[:, nucleus]
    like = (ck >= threshold_snr) & (dna >= threshold_snr)
    if leukocyte is not None:
        like &= peaks[:, leukocyte] < CTC_CD45_SHARE * ck
    return like


def marker_parts(labels: np.ndarray, pieces: np.ndarray, pairs: tuple[np.ndarray, np.ndarray],
                 peaks: np.ndarray, channels: tuple[int, int, int | None],
                 threshold_snr: float) -> tuple[np.ndarray, np.ndarray]:
    """The alternate members of merged objects that hold CTC-like and other members.

    ``labels``: the objects (after merging); ``pieces``: the watershed's pieces they were
    merged from (same grid) and ``pairs``, their 4-adjacent pairs; ``peaks``: the (n + 1, C)
    peak signal-to-noise per channel of each piece 0..n; ``channels``: the (nucleus,
    epithelial, leukocyte or None) channel positions.
    Returns a label image of the parts (0 elsewhere) and, per part label 0..k, the object
    label it came from (0 for none). Neighbouring pieces of one kind (CTC-like or not) form
    one part, so a CTC cut at two CK maxima stays one cell.
    """
    n = int(pieces.max())
    empty = np.zeros_like(labels), np.zeros(1, np.int64)
    if n < 2:
        return empty
    nucleus, epithelial, leukocyte = channels
    like = ctc_like(peaks, nucleus, epithelial, leukocyte, threshold_snr)
    # Each piece's object (every pixel of a piece lies in one object).
    owner = np.zeros(n + 1, np.int64)
    fg = pieces > 0
    owner[pieces[fg]] = labels[fg]
    like[0] = False
    # Objects holding both kinds of member are split; the rest are left alone.
    n_obj = int(labels.max())
    has_like = np.bincount(owner[like], minlength=n_obj + 1) > 0
    has_other = np.bincount(owner[~like & (owner > 0)], minlength=n_obj + 1) > 0
    split = has_like & has_other
    split[0] = False
    if not split.any():
        return empty
    # Parts: pieces of split objects joined to neighbours of the same object and kind.
    a, b = pairs
    same = split[owner[a]] & (owner[a] == owner[b]) & (like[a] == like[b])
    graph = coo_matrix((np.ones(int(same.sum())), (a[same], b[same])), shape=(n + 1, n + 1))
    _, component = connected_components(graph, directed=False)
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
    parts = parts[keep].assign(**{GROUP: parent_of[keep], PART: True})
    split = np.isin(whole_label, parent_of[keep])
    wholes = wholes.assign(**{GROUP: np.where(split, whole_label, -1), PART: False})
    out = pd.concat([wholes, parts], ignore_index=True) if len(parts) else wholes
    return out.drop(columns=[label])
