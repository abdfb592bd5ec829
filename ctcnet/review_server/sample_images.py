"""The pictures of a sample on the review page: where each candidate's tile comes from (a
gallery page predict drew, or cut by the server from the original frame), the sample's display
scale (:mod:`ctcnet.report.display`) and each candidate's marker intensities in noise units.

:class:`SampleImages` is the image half of :class:`ctcnet.review_server.sample.Sample`: it needs the
sample's ``folder``, ``name``, ``summary``, ``run``, ``panel``, ``events``, ``by_id``,
``candidates``, ``frames`` and ``reported`` / ``threshold``.
"""

from __future__ import annotations

import io
import logging
import math
import threading
from functools import cached_property
from urllib.parse import quote

import numpy as np
import pandas as pd

from ctcnet.detect.detection import BOX_COLUMNS
from ctcnet.errors import CtcnetError, InputError
from ctcnet.io.atomic import exclusive_folder
from ctcnet.report import display
from ctcnet.report.colours import DEFAULT_PALETTE
from ctcnet.report.gallery_pages import (
    GAP,
    LABEL_HEIGHT,
    TILE_PX,
    montage_page,
    render_tiles,
    tile_labels,
)
from ctcnet.report.reasons import event_reasons
from ctcnet.report.tile_marks import event_boxes, outside_frame
from ctcnet.review.levels import (
    DisplayLevels,
    level_events,
    levels_from_crops,
    read_levels,
    write_levels,
)

log = logging.getLogger(__name__)

CONTEXT = 3       # a context tile is this many times wider than the event's crop


class SampleImages:
    """Tiles, display levels and marker intensities of one sample (a mixin of ``Sample``)."""

    def _init_images(self, palette: str = DEFAULT_PALETTE) -> None:
        self._levels: list = []  # [levels or None] once found
        self._levels_lock = threading.Lock()
        self.palette = palette

    @cached_property
    def gallery_tiles(self) -> dict[int, dict]:
        """event_id -> where its tile sits on a gallery page (the page keeps the saliency);
        none in another palette than the gallery's: every tile is cut by the server then."""
        tiles = {}
        if self.palette != DEFAULT_PALETTE:
            return tiles
        for info in (self.summary.gallery or {}).values():
            for page in info.get("pages", []):
                ids = page.get("event_ids")
                if not ids:  # a report written before pages listed their events
                    continue
                if not (self.folder / page["path"]).is_file():
                    # A gallery pruned to save disk (or a page lost): its events' tiles are
                    # cut from the scans, as the others are, not left to a 404.
                    continue
                row = (page["height"] - LABEL_HEIGHT) / len(ids)
                for i, event_id in enumerate(ids):
                    # The run in the address: a page of another run is refused, not shown.
                    tiles.setdefault(int(event_id), {
                        "src": f"/files/{quote(self.name, safe='')}/{page['path']}"
                               f"?run={self.run.token}",
                        "width": page["width"], "page_height": page["height"],
                        "header": LABEL_HEIGHT, "top": round(LABEL_HEIGHT + i * row),
                        "height": round(row - GAP)})
        return tiles

    def tile_src(self, event_id: int, kind: str = "tile") -> str:
        """The address of an event's tile (``kind``: tile or saliency), tied to this run."""
        # The sample id escaped: a '#', '?' or '%' in it would end or bend the path.
        return f"/api/{quote(self.name, safe='')}/{kind}/{event_id}.png?run={self.run.token}"

    @cached_property
    def cut_order(self) -> list[int]:
        """The candidates the server cuts tiles of (no gallery picture), in list order."""
        return [int(e) for e in self.candidates["event_id"] if int(e) not in self.gallery_tiles]

    @cached_property
    def cut_position(self) -> dict[int, int]:
        """Each cut candidate's place in :attr:`cut_order`."""
        return {e: k for k, e in enumerate(self.cut_order)}

    def display_levels(self) -> DisplayLevels | None:
        """The sample's display scale (:mod:`ctcnet.report.display`): the run's kept levels,
        else read from crops of the frames of the first candidates (and kept); None when the
        frames cannot be read (tiles are then each stretched to themselves)."""
        with self._levels_lock:
            if not self._levels:
                self._levels.append(self._find_levels())
            return self._levels[0]

    def _find_levels(self) -> DisplayLevels | None:
        names = self.panel.names
        levels = read_levels(self.folder, self.run.run_id, names)
        if levels is not None:
            return levels
        model = self.summary.model
        try:
            crops = self.frames.cut(self._level_events(), model.crop_size, model.pixel_size_um)
        except (CtcnetError, OSError) as err:
            log.warning("%s: no display scale for the sample (%s): each tile is stretched "
                        "to itself", self.folder, err)
            return None
        levels = levels_from_crops(crops, names, self.run.run_id)
        if levels is not None:
            self._keep_levels(levels)
        return levels

    def _level_events(self) -> pd.DataFrame:
        """The events the levels are read from (:func:`~ctcnet.review.levels.level_events`):
        those of the frames of the first candidates, which the reviewer sees first."""
        return level_events(self.events, self.candidates["frame"])

    def _keep_levels(self, levels: DisplayLevels) -> None:
        """Kept in the sample's folder for this run, unless predict holds the folder or
        another run is there (a folder that cannot be written keeps them in memory)."""
        try:
            with exclusive_folder(self.folder, "review"):
                if self.is_current():
                    write_levels(self.folder, levels)
        except (InputError, OSError) as err:
            log.info("%s: display levels not kept: %s", self.folder, err)

    def candidate_markers(self) -> tuple[list, list]:
        """Per candidate: each channel's mean in noise units (None where unknown) and the
        guard's measurements the events table holds."""
        levels = self.display_levels()
        if levels is None:
            means = [None] * len(self.candidates)
        else:
            values = np.round(display.mean_snr(self.candidates, levels), 1)
            means = [[float(v) if math.isfinite(v) else None for v in row] for row in values]
        return means, display.guard_measures(self.candidates)

    def tile_label(self, event_id: int) -> str:
        """The caption of a tile cut by the server: the event and why it is on the list."""
        rows = self.candidates[self.candidates["event_id"] == event_id]
        if not len(rows):  # any event may be asked for: its own reasons, no candidate's
            rows = self.by_id.loc[[event_id]]
            rows = rows.assign(reasons=event_reasons(rows, self.reported, self.threshold))
        return tile_labels(rows, rows["reasons"].tolist(), self.threshold, self.classes,
                           self.reported)[0]

    def render_tile(self, event_id: int, context: bool = False, explain=None) -> bytes:
        """One event's tile as PNG bytes: every channel on the sample's display scale with
        its intensities above it, the overlay, the centre marked on each; ``explain``: the
        model's saliency function (a second row); ``context``: the frame round the event,
        ``CONTEXT`` times wider, its crop outlined."""
        event = self.by_id.loc[[event_id]]
        model = self.summary.model
        s = model.crop_size
        size = s * CONTEXT if context else s
        crops = self.frames.cut(event, size, model.pixel_size_um)
        levels = self.display_levels()
        saliency, call = None, str(event["class"].iloc[0])
        if explain is not None and not context and call in model.classes:  # failed: no call
            saliency = explain(crops, [model.classes.index(call)])
        scale = 1 if context else max(1, int(round(TILE_PX / s)))
        shape = self.frames.cartridge().frame_shape
        sizes = (size, model.pixel_size_um, self.panel.pixel_size_um)  # as the crops were cut
        outside = outside_frame(event["x"], event["y"], shape, *sizes) if shape else None
        boxes = event_boxes(event[list(BOX_COLUMNS)], event["x"], event["y"], *sizes) \
            if set(BOX_COLUMNS) <= set(event) else None
        tiles = render_tiles(crops, self.panel, scale, saliency, levels,
                             box=s if context else None, palette=self.palette, outside=outside,
                             boxes=boxes)
        measures = None
        if levels is not None:
            own = crops[:, :, (size - s) // 2:(size + s) // 2, (size - s) // 2:(size + s) // 2]
            measures = display.measure_texts(display.mean_snr(event, levels),
                                             display.peak_snr(own, levels, model.pixel_size_um))
        label = self.tile_label(event_id) + (f" | context {CONTEXT}x" if context else "")
        image = montage_page(tiles, [label], self.panel.names + ["overlay"], size * scale,
                             measures)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", compress_level=1)
        return buffer.getvalue()

