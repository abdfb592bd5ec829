"""A sample's display levels: per channel its background, noise and the counts shown white,
read from the run's crops and kept in ``gallery/levels.json`` with the run they belong to
(``run_id``: :func:`ctcnet.review.runs.run_id`). The report's gallery and the review server's
tiles draw on them (``ctcnet.report.display`` says how they are made and shown); an export's
``snr_<channel>`` reads a marker in the same noise units.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ctcnet.core.robust import CELL_PERCENTILE, crop_statistics
from ctcnet.io.atomic import atomic_write_text

log = logging.getLogger(__name__)

LEVELS_FILE = Path("gallery") / "levels.json"
SAMPLE_PERCENTILE = 95.0  # white: this percentile of the cells' brightest signals
MIN_SNR = 12.0            # white is at least this many noise units above the background
KNEE_SNR = 4.0            # the scale is nearly linear below this many noise units, log above


@dataclass(frozen=True)
class DisplayLevels:
    """Per channel (``channels``, the panel's order): the sample's background and noise and
    the counts shown white; ``run_id`` the run they were read from, ``cells`` from how many
    crops."""

    channels: tuple[str, ...]
    background: tuple[float, ...]
    noise: tuple[float, ...]
    white: tuple[float, ...]
    run_id: str = ""
    cells: int = 0

    def _column(self, values) -> np.ndarray:
        return np.asarray(values, np.float32)[None, :, None, None]

    def stretch(self, crops: np.ndarray, floor_snr: float = 0.0) -> np.ndarray:
        """(N, C, S, S) counts -> [0, 1] on the sample's scale (the same for every crop):
        ``asinh(signal / knee) / asinh(white's signal / knee)``, the signal the counts over
        the background and the knee ``KNEE_SNR`` noise units (at least a hundredth of white's
        signal); ``floor_snr``: noise units taken off the signal first (the overlay's:
        :data:`OVERLAY_FLOOR_SNR`)."""
        black = self._column(self.background)
        noise = self._column(self.noise)
        span = np.maximum(self._column(self.white) - black, 1e-3)
        # A background clipped to black reads as no noise: the knee then stays a hundredth of
        # the span, or one count above black would be drawn mid-grey.
        knee = np.maximum(noise * KNEE_SNR, span / 100.0)
        signal = np.maximum(np.asarray(crops, np.float32) - black - floor_snr * noise, 0.0)
        return np.clip(np.arcsinh(signal / knee) / np.arcsinh(span / knee), 0.0, 1.0)

    def in_noise_units(self, counts: np.ndarray) -> np.ndarray:
        """(N, C) counts -> noise units above the sample's background."""
        counts = np.asarray(counts, np.float64)
        return (counts - np.asarray(self.background)) / np.maximum(self.noise, 1e-6)

    def to_dict(self) -> dict:
        """The levels as plain data (``display_levels.json``), with the constants they were made
        with."""
        return {"channels": list(self.channels), "background": list(self.background),
                "noise": list(self.noise), "white": list(self.white), "run_id": self.run_id,
                "cells": self.cells, "min_snr": MIN_SNR, "knee_snr": KNEE_SNR,
                "cell_percentile": CELL_PERCENTILE,
                "sample_percentile": SAMPLE_PERCENTILE}

    @classmethod
    def from_dict(cls, data: dict) -> DisplayLevels:
        """Read levels back from :meth:`to_dict`'s output; a ``ValueError`` unless each channel
        has finite values."""
        floats = {k: tuple(float(v) for v in data[k]) for k in ("background", "noise", "white")}
        if any(len(v) != len(data["channels"]) or not all(map(math.isfinite, v))
               for v in floats.values()):
            raise ValueError("display levels: one finite value per channel expected")
        return cls(tuple(str(c) for c in data["channels"]), **floats,
                   run_id=str(data.get("run_id", "")), cells=int(data.get("cells", 0)))


def levels_from_statistics(channels, background: np.ndarray, noise: np.ndarray,
                           top: np.ndarray, run_id: str = "") -> DisplayLevels | None:
    """The sample's levels from its crops' statistics (:func:`crop_statistics`, stacked);
    None without a crop. The median background and noise of the crops, and white at the
    ``SAMPLE_PERCENTILE`` of the cells' brightest signals over their own background."""
    if not len(background):
        return None
    black = np.median(background, axis=0)
    sd = np.maximum(np.median(noise, axis=0), 1e-3)
    bright = np.percentile(top - background, SAMPLE_PERCENTILE, axis=0)
    white = black + np.maximum(bright, MIN_SNR * sd)
    as_floats = lambda v: tuple(float(a) for a in v)  # noqa: E731
    return DisplayLevels(tuple(channels), as_floats(black), as_floats(sd), as_floats(white),
                         run_id, int(len(background)))


def levels_from_crops(crops: np.ndarray, channels, run_id: str = "") -> DisplayLevels | None:
    """Display levels from a run's crops (:func:`levels_from_statistics`); None without a crop."""
    return levels_from_statistics(channels, *crop_statistics(crops), run_id=run_id)


# Where a run kept no levels (no crop in its gallery: a sample without a candidate), they are
# read from crops cut from the frames: every event (the sample's cells, not only candidates)
# of the first LEVEL_FRAMES frames asked for, at most LEVEL_EVENTS of them.
LEVEL_FRAMES = 4
LEVEL_EVENTS = 240


def level_events(events: pd.DataFrame, frames=()) -> pd.DataFrame:
    """The events a sample's levels are read from where its run kept none: every event of
    the first :data:`LEVEL_FRAMES` of ``frames`` (the review's first candidates', whose frames
    are then read already), or of the sample's first frames where they hold none (a sample
    without a candidate: a few frames read, not every one), evenly thinned to
    :data:`LEVEL_EVENTS`; the review server and the exports read the same ones."""
    chosen = events[events["frame"].isin(list(dict.fromkeys(frames))[:LEVEL_FRAMES])]
    if not len(chosen):
        chosen = events[events["frame"].isin(
            sorted(events["frame"].drop_duplicates())[:LEVEL_FRAMES])]
    if len(chosen) <= LEVEL_EVENTS:
        return chosen
    # (a step and a cut at LEVEL_EVENTS left the last frames out: 400 events read 3 of 4)
    return chosen.iloc[np.linspace(0, len(chosen) - 1, LEVEL_EVENTS).astype(np.int64)]


def read_levels(sample_dir: str | Path, run_id: str, channels=None) -> DisplayLevels | None:
    """The levels kept for run ``run_id`` (of these ``channels``, where given), or None (none
    kept, another run's, unreadable)."""
    path = Path(sample_dir) / LEVELS_FILE
    try:
        levels = DisplayLevels.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as err:
        log.warning("%s: unreadable display levels, read again: %s", path, err)
        return None
    if levels.run_id != run_id or (channels is not None
                                   and list(levels.channels) != list(channels)):
        return None
    return levels


def write_levels(sample_dir: str | Path, levels: DisplayLevels) -> None:
    """Write ``levels`` into the sample's folder, atomically."""
    atomic_write_text(Path(sample_dir) / LEVELS_FILE, json.dumps(levels.to_dict(), indent=1))
