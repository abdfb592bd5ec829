"""Which of a tile's events are its own. A stitched scan's scene is cut into tiles, each read
with a margin of its neighbours' pixels (``ctcnet.io.sources.microscopy.TILE_MARGIN_UM``): a
cell on a boundary lies whole in both tiles, and each event is kept by the one tile whose own
part holds its centre, so it is counted once. A split object's whole and members go
together, by the whole's centre.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ctcnet.detect.members import GROUP, PART


def owned_events(events: pd.DataFrame, core: tuple[int, int, int, int]) -> np.ndarray:
    """(N,) bool: the events whose centre lies in the tile's own part ``core`` ((y0, x0, y1,
    x1) in the tile's pixels, a pixel spanning its index +- 0.5: two neighbours' parts meet
    without a gap or an overlap); a split object's rows as its whole's."""
    y0, x0, y1, x1 = core
    x, y = events["x"].to_numpy(np.float64), events["y"].to_numpy(np.float64)
    inside = (x >= x0 - 0.5) & (x < x1 - 0.5) & (y >= y0 - 0.5) & (y < y1 - 0.5)
    if GROUP in events and len(events):
        group = events[GROUP].to_numpy(np.int64)
        whole = (group >= 0) & ~events[PART].to_numpy(bool)
        by_group = dict(zip(group[whole].tolist(), inside[whole].tolist()))
        split = group >= 0
        inside[split] = [by_group.get(g, inside[i]) for i, g in zip(np.flatnonzero(split),
                                                                     group[split].tolist())]
    return inside
