"""A sample's intensities in its own noise units for its exports: the background and noise per
channel the report kept for the run (``gallery/levels.json``), by which the review page writes
a marker's mean as ``m`` and an FCS file gives ``snr_<channel>``. Raw counts carry the camera's
offset and the sample's background (CD45's 243 counts in one sample, 145 in the next), so a
gate set in counts on one sample does not carry to another."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ctcnet.review.levels import read_levels
from ctcnet.review.runs import run_id


def sample_levels(folder: Path, events: pd.DataFrame) -> dict[str, tuple[float, float]]:
    """Channel -> (background, noise) in counts, the sample's display levels the report kept
    in ``gallery/levels.json`` for this run (its event numbering's digest); {} where there
    are none for it (no report drawn, another run's)."""
    kept = read_levels(folder, run_id(events))
    if kept is None:
        return {}
    return {c: (b, n) for c, b, n in zip(kept.channels, kept.background, kept.noise) if n > 0}
