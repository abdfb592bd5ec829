"""Colour composite crops whose R, G, B planes are not the markers ``panel.json`` names: the
nucleus found in another plane than the DNA channel's, across the folder.

A composite's planes are markers only by ``panel.json``'s word (``"channels"`` names the R, G,
B planes in order). A viewer set to another order (B = CK, R = DAPI) gives files that read
exactly as the right ones, and the model then sees CK where it expects DNA: a user's folder
so read scored macro-F1 0.64 against 0.91 in its order, without a word.

The images say which plane is the nucleus. In a cell the nucleus is a compact object at the
centre, lying inside the cell that another marker lights (CK's cytoplasm round a CTC's
nucleus, CD45's membrane round a leukocyte's). :func:`nucleus_plane` finds, in one crop, the
plane of the smallest central object that lies inside a larger object of another plane (or
the plane it is a dim copy of: a bleed of DAPI into another plane is no nucleus);
:class:`PlaneVotes` counts those planes over a sample of a folder's crops and
:meth:`PlaneVotes.warning` speaks when the DNA channel is that plane on few crops and another
plane on most. Crops that show no such nesting (debris, a lone marker) do not vote, and a
folder with too few votes is not judged. Only the nucleus is placed: CK and CD45 swapped with
each other are not told apart here.

On the simulator's composite exports (``ctcnet simulate crops --export rgb-jpeg`` or
``tight``, PNG or JPEG, clean or shifted, every class or one; 40-160 crops) the DNA plane is
that plane on 64-88 % of the voting crops and any other plane on at most 30 %; planes
swapped, the reverse, and the warning comes. A folder of debris only splits its few votes
without a winner, and is not warned of.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from ctcnet.detect.pixel_size import central_part, filled_holes, smoothed_over_ring

# R, G, B of published composites: the order a folder's planes most often take, and the one
# offered when the nucleus lies where it puts DNA (a rotated order is not a swap).
PUBLISHED_PLANES = ("CK", "CD45", "DAPI")
# A plane is lit when its peak (99.5th percentile, smoothed) stands this many noise units above
# the background of the crop's outer ring.
LIT_NOISE = 5.0
# A plane's object: its pixels over this share of its peak above the background, the part
# nearest the centre, holes filled; and, as the cell round a nucleus, over the lower share.
OBJECT_LEVEL = 0.5
CELL_LEVEL = 0.2
# The object must come within this share of the crop's shorter side of its centre.
CENTRE_REACH = 0.25
# Inside another plane's cell: at least this share of its pixels, the cell at least this many
# times its area (a plane lit with the same body is not a nucleus inside a cell).
INSIDE_SHARE = 0.8
LARGER = 1.5
# A plane whose object is the smallest's, this many times as bright in noise units, is the one
# the smallest copies (checked on the 20 counting cartridges: at 3 the DNA plane's lead over any
# other plane grew, 12 -> 18 votes at the least; at 1, a CTC's compact CK fell to it).
COPY_BRIGHTER = 3.0
# Crops are judged at about this side or more (px): a larger one is binned down by a whole
# factor first (a 189 px single-cell export, 44 ms a crop, to 94 px, 12 ms); the nesting of a
# nucleus in its cell shows at any such size.
JUDGED_SIDE = 64
# Crops a folder's judgement reads (spread over it), and the votes it needs to judge.
SAMPLE_CROPS = 120
MIN_VOTES = 10
# Warned when another plane is the nucleus on at least this share of the votes, and on at least
# this many times as many crops as the DNA channel's plane.
WINNER_SHARE = 0.5
WINNER_RATIO = 2.0
PLANES = "RGB"  # a composite's planes, as a viewer names them


def nucleus_plane(crop: np.ndarray) -> int | None:
    """The plane of a (C, H, W) crop that shows the nucleus: of the planes lit at its centre,
    the one with the smallest central object (at ``OBJECT_LEVEL`` of its peak) that lies inside
    a larger object of another plane (at ``CELL_LEVEL``), or the plane that object copies (the
    same object ``COPY_BRIGHTER`` times as bright: a bleed's source); None where no plane
    does."""
    x = _binned(np.asarray(crop, np.float32))
    smooth, level, noise = smoothed_over_ring(x)
    return nucleus_plane_of(smooth - level[:, None, None], noise)


def nucleus_plane_of(above: np.ndarray, noise: np.ndarray) -> int | None:
    """:func:`nucleus_plane` of a crop already smoothed, its background taken off (``above``,
    (C, H, W)), with each plane's ``noise`` (:func:`smoothed_over_ring`'s)."""
    peak = np.percentile(above.reshape(len(above), -1), 99.5, axis=1)
    reach = CENTRE_REACH * min(above.shape[1:])
    objects, cells = [], []
    for p in range(len(above)):
        part = None
        if peak[p] > max(LIT_NOISE * noise[p], 1e-6):
            part = central_part(above[p] > OBJECT_LEVEL * peak[p], reach)
        objects.append(None if part is None else filled_holes(part))
        # (the lower level's mask holds the object's, so its central part exists too)
        cells.append(None if part is None else
                     filled_holes(central_part(above[p] > CELL_LEVEL * peak[p])))
    inner = [p for p, obj in enumerate(objects) if obj is not None and any(
        q != p and cell is not None and cell.sum() >= LARGER * obj.sum()
        and (obj & cell).sum() >= INSIDE_SHARE * obj.sum() for q, cell in enumerate(cells))]
    if not inner:
        return None
    smallest = min(inner, key=lambda p: objects[p].sum())
    # The smallest may be a copy of the nucleus: DAPI's bleed into a FITC or far-red plane
    # shows the same object, and thresholded at its own peak a dim, noisy copy's is as small
    # or smaller, so it took about half the crops. A plane showing the same object
    # COPY_BRIGHTER times as bright in noise units is the source (a bleed is a fraction of it).
    snr = peak / np.maximum(noise, 1e-6)
    sources = [p for p in inner if _same_object(objects[p], objects[smallest])
               and snr[p] >= COPY_BRIGHTER * snr[smallest]]
    return max(sources, key=lambda p: snr[p]) if sources else smallest


def _same_object(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two planes' objects are one: neither ``LARGER`` times the other's area, and
    ``INSIDE_SHARE`` of the smaller inside the larger."""
    small, large = sorted((int(a.sum()), int(b.sum())))
    return large < LARGER * small and (a & b).sum() >= INSIDE_SHARE * small


def _binned(x: np.ndarray) -> np.ndarray:
    """A (C, H, W) crop binned by the whole factor that keeps its shorter side at least
    ``JUDGED_SIDE`` (itself when it is smaller than twice that)."""
    k = min(x.shape[1:]) // JUDGED_SIDE
    if k < 2:
        return x
    c, h, w = x.shape
    return x[:, :h // k * k, :w // k * k].reshape(c, h // k, k, w // k, k).mean(axis=(2, 4))


class PlaneVotes:
    """The nucleus's plane counted over a sample of a composite folder's crops, by name.

    ``names``: the composite's R, G, B planes as ``panel.json`` names them; ``dna``: which of
    them is the DNA channel; ``total``: the folder's crops, of which :meth:`wants` picks up to
    ``SAMPLE_CROPS`` spread over it.
    """

    def __init__(self, names: list[str], dna: int, total: int):
        self.names, self.dna = list(names), dna
        self.picks = set(np.linspace(0, total - 1, min(SAMPLE_CROPS, total)).astype(int)
                         .tolist()) if total else set()
        self.votes: Counter = Counter()

    def wants(self, i: int) -> bool:
        """Whether crop ``i`` of the folder is one of the sample."""
        return i in self.picks

    def add(self, crop: np.ndarray) -> None:
        """Count the nucleus's plane of one (C, H, W) crop in the panel's plane order."""
        plane = nucleus_plane(crop)
        if plane is not None:
            self.votes[plane] += 1

    def likely_order(self, plane: int) -> list[str]:
        """The planes' names with the DNA channel in ``plane``: the published order
        (:data:`PUBLISHED_PLANES`) where the panel names its three markers and it puts DNA
        there (R = DAPI, G = CK, B = CD45 read with the nucleus in B is the published order
        rotated, not a swap), else the DNA channel's and ``plane``'s names swapped."""
        published = [name.upper() for name in PUBLISHED_PLANES]
        if sorted(n.upper() for n in self.names) == sorted(published) and \
                published.index(self.names[self.dna].upper()) == plane:
            by_name = {n.upper(): n for n in self.names}
            return [by_name[n] for n in published]
        names = list(self.names)
        names[self.dna], names[plane] = names[plane], names[self.dna]
        return names

    def warning(self) -> str | None:
        """One line when another plane than the DNA channel's holds the nucleus on most of the
        voting crops (see the module's rule); None otherwise."""
        n = sum(self.votes.values())
        if n < MIN_VOTES:
            return None
        plane, count = self.votes.most_common(1)[0]
        own = self.votes[self.dna]
        if plane == self.dna or count < WINNER_SHARE * n or count < WINNER_RATIO * own:
            return None
        order = ", ".join(f'"{name}"' for name in self.likely_order(plane))
        return (f"the nucleus (a compact object inside the cell) is in the {PLANES[plane]} plane "
                f"on {count} of the {n} crops that show one, in the {PLANES[self.dna]} plane "
                f"({self.names[self.dna]} by panel.json) on {own}: are the planes in another "
                'order? panel.json\'s "channels" names the R, G, B planes in order; likely '
                f"[{order}] (the nucleus's plane is told by the images; CK and CD45 are not "
                "told apart here)")


# A sample (a patient's crops, exported apart) whose nucleus lies in another plane: judged on
# this many of its crops that show one, another plane holding it on at least SAMPLE_SHARE of
# them and WINNER_RATIO times the DNA plane's. Stricter than a folder's judgement (fewer
# votes); said only where the folder as a whole reads in order.
SAMPLE_VOTES, SAMPLE_SHARE = 8, 0.5


def samples_in_another_order(votes: dict[str, np.ndarray], names: list[str],
                             dna: int) -> str | None:
    """The samples whose crops show the nucleus in another plane than the DNA channel's
    (``votes``: per sample, the crops whose nucleus lies in each plane), in words: one
    patient's crops exported in another channel order under the folder's panel.json."""
    off = {}
    for sample, counts in votes.items():
        counts = np.asarray(counts, int)
        plane = int(np.argmax(counts))
        if counts.sum() >= SAMPLE_VOTES and plane != dna and \
                counts[plane] >= SAMPLE_SHARE * counts.sum() and \
                counts[plane] >= WINNER_RATIO * counts[dna]:
            off[sample] = (names[plane], int(counts[plane]), int(counts.sum()), int(counts[dna]))
    if not off or len(off) == len(votes):
        return None
    named = "; ".join(f"{s}: in {plane} on {n} of {total}, in {names[dna]} on {own}"
                      for s, (plane, n, total, own) in sorted(off.items())[:3])
    return (f"the nucleus of {len(off)} of {len(votes)} samples lies in another plane than "
            f"{names[dna]}'s, on their crops that show one ({named}"
            f"{' ...' if len(off) > 3 else ''}), where the other samples show it in "
            f"{names[dna]}'s: their crops exported in another channel order? panel.json "
            "states one order for the folder: give those crops a folder of their own with "
            "theirs, or export them again in this order; a model fitted from them learns the "
            "planes so")
