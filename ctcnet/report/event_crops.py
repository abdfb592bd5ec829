"""Crops of chosen events, cut again from a cartridge's original frames.

Predict keeps crops only for the gallery (reported calls and flagged events, capped per
frame). The review page's quality-control tiles and the reviewed training set need the crops
of any event: they are cut here exactly as predict cut them (``extract_crops`` at the
model's crop size and pixel size), one frame read per frame that holds a wanted event.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from ctcnet.detect.cropping import extract_crops
from ctcnet.errors import InputError
from ctcnet.io.panel import Panel
from ctcnet.io.scan import Cartridge, open_cartridge, read_frame

log = logging.getLogger(__name__)


def open_scanned_cartridge(summary: dict, scans: str | Path | None = None) -> Cartridge:
    """The cartridge a predict run read (the path its summary records, or ``scans``)."""
    root = Path(scans) if scans is not None else Path(summary["input"])
    if not root.is_dir():
        raise InputError(f"the scan of sample {summary.get('sample_id')} is not here any more "
                         "(moved? pass its folder with --scans)", root)
    cartridge = open_cartridge(root)
    Panel.from_dict(summary["panel"]).check_matches(cartridge.panel,
                                                    what=f"cartridge {root}")
    return cartridge


def cut_event_crops(cartridge: Cartridge, events: pd.DataFrame, crop_size: int,
                    model_pixel_um: float) -> np.ndarray:
    """(N, C, crop_size, crop_size) float32 crops of ``events`` (rows of events.parquet), in
    the table's order. Events of a frame that cannot be read any more raise InputError."""
    out = np.zeros((len(events), cartridge.panel.num_channels, crop_size, crop_size),
                   np.float32)
    by_index = {f.index: f for f in cartridge.frames}
    positions = np.arange(len(events))
    for frame_index, rows in pd.Series(positions).groupby(events["frame"].to_numpy()):
        frame = by_index.get(int(frame_index))
        if frame is None:
            raise InputError(f"frame {frame_index} is not in the cartridge any more",
                             cartridge.root)
        pixels = read_frame(frame, cartridge.panel)
        chosen = events.iloc[rows.to_numpy()]
        crops, _ = extract_crops(pixels, chosen["x"].to_numpy(), chosen["y"].to_numpy(),
                                 crop_size, model_pixel_um, cartridge.panel.pixel_size_um)
        out[rows.to_numpy()] = crops
    log.debug("cut %d crops from %s", len(events), cartridge.root)
    return out
