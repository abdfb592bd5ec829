"""Whether a scan's planes lie in register: each plane's centre against the DNA plane's on the
events lit in both, their median offset per plane, and a sign test's bound on it (pure numpy).
A filter or stage shift between exposures moves every cell's plane alike; a small sample's
median can be chance (a ring's centre, a neighbour's plane), so a plane is said out of register
only where its events lie off the same way surely (:func:`sure_offset`)."""

from __future__ import annotations

import math

import numpy as np

from ctcnet.detect.pixel_size import CROSS

# Each plane's centre against the DNA plane's, on events lit in both (within this radius of
# the event's centre: the cell, not a neighbour): judged on this many events of a plane at
# least, a plane whose median offset is this far (um) is out of register (in register the
# simulator's scans read 0.46 um at most; CK 2 px, 1.3 um, off read 1.31)...
REGISTER_UM = 8.0
MIN_OFFSETS = 20
SHIFT_UM = 0.6
# ...when its events also lie off that way with this confidence: the order statistic that
# bounds the median of their offsets along the median's direction from below (a sign test's
# interval) is this far at least. A shift moves every cell alike, so its bound stays near
# the median (42 shifted planes read 0.6-5.3 um off in simulated cartridges: 0.41 at least;
# CK 1 px, 0.64 um, off: median 0.69, bound 0.59); in register a plane's centre lies more
# than 0.5 um off the nucleus's on about 40 % of the events (a ring's centre, a neighbour),
# so a small sample's median can be chance (CD45 read 0.79 um off on 21 events of a dense
# cartridge of three frames, bound 0.04; 0.00 on all its 610 events).
SURE_UM = 0.3
SURE_CONFIDENCE = 0.9

def offsets_from_dna(above: np.ndarray, noise: np.ndarray, dna: int, near: np.ndarray,
                     grid: tuple[np.ndarray, np.ndarray], pixel_size_um: float,
                     lit_noise: float) -> list[list[float]]:
    """[plane, dx, dy] (um, x to the right, y down) of each plane's centre from the DNA
    plane's, on one crop, for the planes lit (``lit_noise`` noise units over the background)
    ``near`` its centre (within ``REGISTER_UM``; each plane's centre: the mean position, on
    the (x, y) ``grid``, of its pixels there over half its peak, in the part of them nearest
    the nucleus: a neighbour's apart)."""
    from scipy import ndimage

    xx, yy = grid
    h, w = near.shape

    def centre_of(p: int, at: tuple[float, float]):
        """Plane ``p``'s centre: of the part of it over half its peak whose centre lies
        nearest ``at`` (x, y), a neighbour's pixels in the disk apart (in a crowded frame they
        pulled the centre off, and a plane in register was said out of it)."""
        part = np.where(near, above[p], 0.0)
        top = float(part.max())
        if top <= lit_noise * max(float(noise[p]), 1e-6):
            return None
        weight = np.where(part > 0.5 * top, part, 0.0)
        labels, n = ndimage.label(weight > 0, CROSS)
        centres = np.asarray(ndimage.center_of_mass(weight, labels, range(1, n + 1)))[:, ::-1]
        return centres[np.argmin(np.hypot(*(centres - np.asarray(at)).T))]

    own = centre_of(dna, ((w - 1) / 2, (h - 1) / 2))
    if own is None:
        return []
    centres = [own if p == dna else centre_of(p, tuple(own)) for p in range(len(above))]
    return [[p, *np.round((c - centres[dna]) * pixel_size_um, 2).tolist()]
            for p, c in enumerate(centres) if p != dna and c is not None]


def median_offsets(offsets: list, names: list[str]) -> dict:
    """Per plane with ``MIN_OFFSETS`` events at least, its median offset [dx, dy] (um) from
    the DNA plane, the events measured, and ``sure_um``: how far along the median's direction
    the events lie off with ``SURE_CONFIDENCE`` (:func:`sure_offset`)."""
    out = {}
    for p, name in enumerate(names):
        mine = np.asarray([o[1:] for o in offsets if int(o[0]) == p], np.float64)
        if len(mine) >= MIN_OFFSETS:
            median = np.median(mine, axis=0)
            out[name] = {"dx": round(float(median[0]), 2), "dy": round(float(median[1]), 2),
                         "events": len(mine), "sure_um": round(sure_offset(mine, median), 2)}
    return out


def sure_offset(offsets: np.ndarray, median: np.ndarray,
                confidence: float = SURE_CONFIDENCE) -> float:
    """The lower ``confidence`` bound (um) of the median of ``offsets`` ((N, 2), um) along the
    direction of their ``median``: the order statistic a sign test puts it above, free of any
    assumption on how the offsets spread (0 where the median is 0)."""
    length = float(np.hypot(*median))
    if length == 0:
        return 0.0
    along = np.sort(offsets @ (median / length))
    # The k-th smallest lies under the median with probability P(Binomial(n, 1/2) >= k); k
    # is the binomial's 1 - confidence quantile (the smallest k with P(<= k) at least that).
    n, below, k = len(along), 0.0, 0
    while k < n:
        below += math.comb(n, k) / 2**n  # exact integers: no overflow at any n
        if below >= 1.0 - confidence:
            break
        k += 1
    return float(along[max(k - 1, 0)])


def out_of_register(median: dict, names: list[str], dna: int | None, what: str) -> str | None:
    """Planes whose median offset from the DNA plane is ``SHIFT_UM`` or more, their events
    lying off that way surely (``SURE_UM``), said."""
    far = {name: m for name, m in median.items()
           if np.hypot(m["dx"], m["dy"]) >= SHIFT_UM and m["sure_um"] >= SURE_UM}
    if not far or dna is None:
        return None
    said = "; ".join(f"{name} {np.hypot(m['dx'], m['dy']):.1f} um off {names[dna]}'s centre "
                     f"(x {m['dx']:+.1f}, y {m['dy']:+.1f}) on the median of {m['events']} "
                     f"{what}" for name, m in far.items())
    return (f"{said}, where a scan in register reads a few tenths: are the channels out of "
            "register (a filter or stage shift between exposures)? Every marker is read round "
            "the nucleus: the guard compares DAPI with CK lined up by each frame's "
            "registration, but the network and CD45 over CK read the planes as given (CK 1 um "
            "off moves about 3 % of the network's calls); register the planes before predict")
