"""How a reviewer sees a sample's markers: one display scale per channel for the whole sample,
and each marker's intensity in noise units.

A tile stretched to its own crop shows every channel white somewhere, so a neighbour's CD45 or
a CK leak looks like a marker. Here each channel is shown on one scale for every tile of the
sample: black is the sample's background, white a high percentile of its cells (and never
less than ``MIN_SNR`` noise units above the background), so a dim marker looks dim beside a
bright one. Between the two the scale is an arcsinh of the signal over ``KNEE_SNR`` noise
units: nearly linear up to a few noise units, logarithmic above. On a linear scale a sample's
bright CTCs (CK 500 noise units) put a dim-CK CTC (CK 10-20) at 2-4 % of white, black to the
eye, and a reviewer judges exactly those cells; on this one it shows at about 30-40 % grey,
noise stays near black, and a brighter marker is still brighter on every tile. The levels
are read from model-scale crops of the sample's events (every crop predict journals for the
gallery; the review server cuts some from the frames for a run without them) and kept in
``gallery/levels.json`` with the run they belong to, so the gallery pages and the tiles the
server cuts share them.

Intensities are in noise units of the sample: ``(counts - background) / noise``, the mean over
the object (the events table's ``mean_<channel>``) and the peak (a 3x3 mean) within
``PEAK_RADIUS_UM`` of the centre.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd

from ctcnet.inference.guard.flags import TABLE_MEASURES
from ctcnet.review.levels import DisplayLevels

log = logging.getLogger(__name__)

# The colour overlay mixes every channel's noise into speckles of every hue, which a dim CK
# has to stand out of: it takes this many noise units off each channel first (the grey
# panels keep them, so the noise a marker stands on stays visible there).
OVERLAY_FLOOR_SNR = 1.0
PEAK_RADIUS_UM = 8.0      # a cell's own area: its peak is read within this of the centre
# The guard's own measurements (noise units but the edge), shown where the events table has them.
GUARD_MEASURES = {"ck_peak": "CK peak", "ck_area_um2": "CK area um2",
                  "cd45_over_ck": "CD45 over CK", "dna_in_ck": "DAPI in CK",
                  "exclusion_around_ck": "exclusion around CK",
                  "dna_own_structure": "DAPI structure", "dna_edge_um": "nucleus edge um"}
assert set(GUARD_MEASURES) == set(TABLE_MEASURES)
# ... and shown beside them: what a scan-leak hold (cd45_positive) compares with the scan's leak.
SHOWN_MEASURES = {**GUARD_MEASURES, "cd45_leak_needed": "CK leak CD45 needs"}


def peak_snr(crops: np.ndarray, levels: DisplayLevels, pixel_size_um: float) -> np.ndarray:
    """(N, C) each channel's peak (3x3 mean) within ``PEAK_RADIUS_UM`` of the crop's centre,
    in noise units: a marker of the cell itself, not of a neighbour at the border."""
    x = np.asarray(crops, np.float32)
    n, c, s, _ = x.shape
    r = max(1.0, PEAK_RADIUS_UM / float(pixel_size_um))
    lo, hi = max(0, int(s / 2 - r) - 1), min(s, int(math.ceil(s / 2 + r)) + 1)
    box = x[:, :, lo:hi, lo:hi]
    k = box.shape[-1]
    smooth = sum(box[:, :, dy:k - 2 + dy, dx:k - 2 + dx] for dy in range(3) for dx in range(3))
    smooth = smooth / 9.0
    yy, xx = np.mgrid[lo + 1:hi - 1, lo + 1:hi - 1] + 0.5
    inside = (yy - s / 2) ** 2 + (xx - s / 2) ** 2 <= r * r
    peaks = smooth[:, :, inside].max(axis=2)
    return levels.in_noise_units(peaks)


def mean_snr(events: pd.DataFrame, levels: DisplayLevels) -> np.ndarray:
    """(N, C) each channel's mean over the object (``mean_<channel>`` of the events table) in
    noise units; NaN for a channel the table has no column of."""
    means = np.full((len(events), len(levels.channels)), np.nan)
    for i, name in enumerate(levels.channels):
        column = f"mean_{name}"
        if column in events:
            means[:, i] = events[column].to_numpy(np.float64)
    return levels.in_noise_units(means)


def measure_texts(means: np.ndarray | None, peaks: np.ndarray | None) -> list[list[str]]:
    """Per tile, per channel: ``m<mean> pk<peak>`` in noise units (what is known of the two;
    ``pk``, not ``p``, which the captions give a call's probability)."""
    rows = len(means) if means is not None else len(peaks)
    columns = (means if means is not None else peaks).shape[1]
    out = []
    for i in range(rows):
        cells = []
        for k in range(columns):
            parts = []
            for tag, values in (("m", means), ("pk", peaks)):
                if values is not None and np.isfinite(values[i, k]):
                    # (a value just under 0 rounds to "0.0", not "-0.0")
                    parts.append(f"{tag}{round(float(values[i, k]), 1) + 0.0:.1f}")
            cells.append(" ".join(parts))
        out.append(cells)
    return out


def guard_measures(events: pd.DataFrame) -> list[dict[str, float]]:
    """Per event, the guard's measurements the events table holds (finite ones, rounded)."""
    present = [c for c in SHOWN_MEASURES if c in events]
    if not present:
        return [{} for _ in range(len(events))]
    values = events[present].to_numpy(np.float64)
    return [{SHOWN_MEASURES[c]: round(float(v), 3 if c == "cd45_leak_needed" else 2)
             for c, v in zip(present, row) if math.isfinite(v)} for row in values]
