"""Which of a scan's CK-bright events its leak check reads (:func:`frame_leak_ratios`): a
share of every frame's, the same ones however the frames arrived (pure numpy and pandas).

A frame's ratios are journaled with it, so a resumed run checks every frame's; a frame
journaled when fewer frames had arrived read a larger share, and the check reads the first
of them, the very ones a run of all the frames from the start reads
(:func:`spread_order`): the leak, and the CTC calls a scan's leak holds
(:mod:`ctcnet.inference.scan_leak_hold`), do not depend on the order the scan was copied in.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ctcnet.inference.guard import RULES
from ctcnet.inference.spillover import LEVEL, scan_ratios

# CK-bright events of a cartridge, spread over its frames, whose CK leak ratios are kept for
# the run's check of its leaks against the guard's allowance (spillover.leak_check): the
# lowest mode needs a few hundred. On a simulated cartridge of 8 frames whose CK leaks 30 %
# into CD45 (2 % CTCs, most CK-bright events leukocytes with unspecific CK), 100 read no leak
# into CD45 and 74 % into CD66b, 200-800 read 0.31; on a standard one 0.00-0.05. Each costs
# about 0.25 ms (0.1 s a cartridge).
LEAK_CHECK_EVENTS = 400


def spread_order(rows: np.ndarray, count: int) -> np.ndarray:
    """The first ``count`` of ``rows`` in an order whose every leading part is spread over
    them all: each next the one farthest from those taken and from the two ends (the middle,
    then the quarters...), so that the first ``k`` are the same ``k`` whatever ``count`` is,
    as :func:`~ctcnet.detect.metadata_signs.spread_rows`' are not, and the first and last (as
    a rule cells the frame's borders cut) come last."""
    rows = np.asarray(rows)
    place = np.arange(len(rows)) + 0.5
    room = np.minimum(place, len(rows) - place)  # to the nearest end or row taken
    taken = []
    for _ in range(min(count, len(rows))):
        taken.append(int(np.argmax(room)))
        room = np.minimum(room, np.abs(place - place[taken[-1]]))
        room[taken[-1]] = -1.0
    return rows[np.asarray(taken, np.int64)]


def leak_carriers(measured: pd.DataFrame) -> np.ndarray:
    """The events (rows of their guard ``measured`` table) whose CK can show CK's leak: CK
    over LEVEL / 3 noise units (a 3x3 peak), and clearly so (over LEVEL) where a nucleus lies
    under it."""
    # DAPI's own leak into the CK channel lights a bare nucleus's "CK" at 3-7 units, with none
    # of CK's leak into CD45 to show, and such events set the floor at no leak. On simulated
    # 24-frame cartridges (leaks of 0, 10 and 30 % into CD45, two seeds each) one whose CK
    # leaks 30 % read no leak without this (and was not warned of), 0.287 with it; the others
    # the same within 0.006. Dim CK events without a nucleus (tdEVs) are kept: on a cartridge
    # of few frames they carry the floor.
    peak = measured["ck_peak"].to_numpy()
    on_nucleus = measured["dna_in_ck"].to_numpy() >= RULES.dna_level
    return np.flatnonzero((peak > LEVEL) | ((peak > LEVEL / 3) & ~on_nucleus))


def leak_share(cartridge) -> int:
    """How many of a frame's CK-bright events the leak check reads: its share of
    ``LEAK_CHECK_EVENTS`` over the ``cartridge``'s frames (:class:`~ctcnet.io.scan.Cartridge`)."""
    return -(-LEAK_CHECK_EVENTS // max(len(cartridge.frames), 1))


def frame_leak_ratios(crops: np.ndarray, measured: pd.DataFrame | None, panel,
                      events: int) -> list | None:
    """CK's per-crop leak ratios (:func:`~ctcnet.inference.spillover.scan_ratios`, a row of
    NaN where a crop has none) of up to ``events`` of a frame's :func:`leak_carriers`, in an
    order whose every leading part is spread over them (:func:`spread_order`: not the frame's
    first and last, as a rule cells its borders cut), as JSON-able lists: the frame's journal
    line keeps them, so a resumed run checks every frame's, and a run of more frames reads the
    first of them, the very ones a run of them all from the start reads. A cut cell's ratio is
    read as a whole one's: CK's leak is a copy of the pixels there are, and a cartridge of few
    frames needs every carrier."""
    if measured is None or not len(measured):
        return None
    rows = spread_order(leak_carriers(measured), events)
    ratio, sd = scan_ratios(crops[rows], panel, central=True, every=True)
    return [np.round(ratio, 5).tolist(), np.round(sd, 5).tolist()]
