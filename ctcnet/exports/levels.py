"""A sample's intensities in its own noise units for its exports: the background and noise per
channel the report kept for the run (``gallery/levels.json``), by which the review page writes
a marker's mean as ``m`` and an FCS file gives ``snr_<channel>``. Raw counts carry the camera's
offset and the sample's background (CD45's 243 counts in one sample, 145 in the next), so a
gate set in counts on one sample does not carry to another. Where the run kept none (its
report drew no tile: a sample without a candidate, a negative; ``--no-report``), they are read
from crops cut from the scan's first frames, as the review reads a sample without a candidate
(:func:`~ctcnet.review.levels.level_events`), unless the frames moved or changed since."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from ctcnet.errors import CtcnetError
from ctcnet.exports.event_crops import (
    cut_event_crops,
    open_scanned_cartridge,
    read_as_predicted,
)
from ctcnet.review.levels import DisplayLevels, level_events, levels_from_crops, read_levels
from ctcnet.review.runs import run_id

log = logging.getLogger(__name__)


def sample_levels(folder: Path, events: pd.DataFrame, summary=None
                  ) -> dict[str, tuple[float, float]]:
    """Channel -> (background, noise) in counts: the sample's display levels the report kept
    in ``gallery/levels.json`` for this run (its event numbering's digest), else, given its
    ``summary``, read from its frames (:func:`levels_from_frames`); {} where there are none
    (no report drawn and the frames unreadable, another run's)."""
    key = run_id(events)
    kept = read_levels(folder, key)
    if kept is None and summary is not None and len(events):
        kept = levels_from_frames(summary, events, key)
    if kept is None:
        return {}
    return {c: (b, n) for c, b, n in zip(kept.channels, kept.background, kept.noise) if n > 0}


def levels_from_frames(summary, events: pd.DataFrame, key: str = "") -> DisplayLevels | None:
    """The sample's levels from crops of its events cut from its first frames as predict read
    them, as the review server reads a sample without a candidate where no levels were kept;
    None where the scan cannot be read as predict read it (moved, a frame changed since:
    said in a note)."""
    try:
        cartridge = open_scanned_cartridge(summary)
        crops = cut_event_crops(cartridge, level_events(events), summary.model.crop_size,
                                summary.model.pixel_size_um, lambda frame: read_as_predicted(
                                    cartridge, frame, summary.frame_digests))
    except (CtcnetError, OSError, ValueError) as err:
        log.info("%s: its levels not read from the frames: %s", summary.sample_id, err)
        return None
    return levels_from_crops(crops, cartridge.panel.names, key)
