"""A sample's intensities in its own noise units for its exports: the background and noise per
channel the report kept for the run (``gallery/levels.json``), by which the review page writes
a marker's mean as ``m`` and an FCS file gives ``snr_<channel>``. Raw counts carry the camera's
offset and the sample's background (CD45's 243 counts in one sample, 145 in the next), so a
gate set in counts on one sample does not carry to another."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd


def sample_levels(folder: Path, events: pd.DataFrame) -> dict[str, tuple[float, float]]:
    """Channel -> (background, noise) in counts, the sample's display levels the report kept
    in ``gallery/levels.json`` for this run (its event numbering's digest); {} where there
    are none for it (no report drawn, another run's)."""
    from ctcnet.review.runs import run_id  # (the review's digest of a run's events)

    try:
        kept = json.loads((Path(folder) / "gallery" / "levels.json").read_text(encoding="utf-8"))
        if kept["run_id"] != run_id(events):
            return {}
        return {str(c): (float(b), float(n)) for c, b, n in
                zip(kept["channels"], kept["background"], kept["noise"]) if float(n) > 0}
    except (OSError, ValueError, KeyError, TypeError):
        return {}
