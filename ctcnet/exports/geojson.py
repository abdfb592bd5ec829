"""A predict run's events as GeoJSON detections for QuPath (:func:`events_geojson`): the layout
and coordinates :mod:`ctcnet.exports.event_exports` describes, one FeatureCollection per frame.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ctcnet.core.file_modes import make_folder
from ctcnet.exports.event_codes import EventCodes, guard_flags_of
from ctcnet.exports.event_exports import (
    BOX_COLUMNS,
    REQUIRED_COLUMNS,
    REVIEWER_CALL,
    _check_columns,
    after_review,
    event_parameters,
)
from ctcnet.inference.counts import REJECTED
from ctcnet.inference.guard import counted
from ctcnet.inference.rerun_outputs import file_stem
from ctcnet.io.atomic import atomic_write_bytes
from ctcnet.nn.calls import FAILED_CLASS

log = logging.getLogger(__name__)

# A held call's classification: its class, as QuPath names a derived class ("ctc: held").
HELD = ": held"

# QuPath class colours: the usual CellSearch reading (CTCs red, leukocytes blue); classes of
# other taxonomies take the palette in turn.
CLASS_COLOURS = {"ctc": (220, 30, 30), "cluster": (255, 140, 0), "wbc": (30, 110, 230),
                 "debris": (150, 150, 150), FAILED_CLASS: (200, 0, 200),
                 REJECTED: (70, 70, 70)}
PALETTE = ((44, 160, 44), (148, 103, 189), (140, 86, 75), (227, 119, 194), (23, 190, 207),
           (188, 189, 34), (127, 127, 127))
# Feature ids are UUIDs derived from this namespace, the cartridge and the event.
_ID_NAMESPACE = uuid.UUID("6f0c1d5e-2b7a-4c1e-9d3f-3a8e5b0c7d21")


def class_colours(classes: Sequence[str]) -> dict[str, list[int]]:
    """An RGB colour per class: the known ones fixed, others from the palette in turn."""
    out, others = {}, iter(PALETTE * (1 + len(classes) // len(PALETTE)))
    for name in classes:
        out[name] = list(CLASS_COLOURS.get(name) or next(others))
    return out


def _shortest(values: np.ndarray) -> list[float | None]:
    """float32 values as the shortest decimals that read back as the same float32 (the file
    stays small and exact); not finite -> None (QuPath reads numbers only: left out)."""
    values = np.asarray(values, np.float32)
    return [float(s) if np.isfinite(v) else None for v, s in zip(values, values.astype(str))]


def _geometry(row, kind: str) -> dict:
    if kind == "point":
        return {"type": "Point", "coordinates": [float(row.x) + 0.5, float(row.y) + 0.5]}
    x0, y0, x1, y1 = (int(row.bbox_x0), int(row.bbox_y0), int(row.bbox_x1), int(row.bbox_y1))
    # Counter-clockwise as RFC 7946 asks of an exterior ring, closed on its first corner.
    ring = [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]
    return {"type": "Polygon", "coordinates": [ring]}


def events_geojson(events: pd.DataFrame, summary, where: Path,
                   geometry: str = "box") -> Iterator[tuple[str, dict]]:
    """(frame id, a GeoJSON FeatureCollection of that frame's events as QuPath detections),
    frame by frame in the table's order: one frame's features are built at a time, so a
    sample of half a million events is written without holding them all (its features as
    Python objects took gigabytes)."""
    if geometry not in ("box", "point"):
        raise ValueError(f"geometry must be box or point, not {geometry!r}")
    _check_columns(events, REQUIRED_COLUMNS + (BOX_COLUMNS if geometry == "box" else ()), where)
    codes = EventCodes.of(events, summary.model.classes)
    colours = class_colours(codes.classes)
    # Measurements: the FCS file's numbers, by the names of events.csv, less what QuPath
    # shows another way (the position, the class).
    measured = {p.name: np.asarray(p.values, np.float32)
                for p in event_parameters(events, summary, where, codes)
                if p.name not in ("x", "y", "class", "model_class", REVIEWER_CALL,
                                  "class_after_review")}
    calls = events["class"].astype(str).to_numpy()
    # QuPath colours and counts by classification: a reviewed sample's events as the review
    # left them, the model's call kept in the metadata. A call the marker guard held and no
    # person decided is no count: it is classified "<class>: held" (QuPath's derived class),
    # so that QuPath's count of "ctc" is summary.json's (one held ctc read as 11 against 10).
    shown, kept = after_review(events) if REVIEWER_CALL in events else (calls, counted(events))
    shown = np.where(kept | np.isin(shown, (REJECTED, FAILED_CLASS)), shown,
                     np.char.add(shown.astype(str), HELD))
    model_calls = events["model_class"].astype(str).to_numpy() if "model_class" in events \
        else None
    guards = events["guard"].to_numpy(object) if "guard" in events else None
    reviewed = events[REVIEWER_CALL].astype(str).to_numpy() if REVIEWER_CALL in events \
        else None
    identity = summary.cartridge_id or summary.sample_id
    # Each frame's rows, in the table's order, frames in the order they first appear.
    frame_of, frame_ids = pd.factorize(events["frame_id"].astype(str), sort=False)
    order = np.argsort(frame_of, kind="stable")
    bounds = np.searchsorted(frame_of[order], np.arange(len(frame_ids) + 1))
    for k, frame in enumerate(frame_ids):
        rows = order[bounds[k]:bounds[k + 1]]
        values = {name: _shortest(column[rows]) for name, column in measured.items()}
        features = []
        for j, (i, row) in enumerate(zip(rows, events.iloc[rows].itertuples(index=False))):
            event_id = int(row.event_id)
            guard = "+".join(guard_flags_of(guards[i])) if guards is not None else ""
            metadata = {"sample_id": summary.sample_id, "frame_id": str(frame),
                        "event_id": str(event_id), "class": calls[i]}
            if model_calls is not None:
                metadata["model_class"] = model_calls[i]
            if guard:
                metadata["guard"] = guard
            if reviewed is not None and reviewed[i]:
                metadata[REVIEWER_CALL] = reviewed[i]
            features.append({
                "type": "Feature",
                # The cell's: its scan, frame, place and size, not its row (a rerun that
                # numbers the events otherwise gave another cell the same id).
                "id": str(uuid.uuid5(_ID_NAMESPACE, f"{identity}/{frame}/{row.x:.2f}/"
                                                    f"{row.y:.2f}/{getattr(row, 'area_px', 0)}")),
                "geometry": _geometry(row, geometry),
                "properties": {
                    "objectType": "detection",
                    "name": f"{shown[i]} #{event_id}" + (f" [{guard}]" if guard else ""),
                    "classification": {"name": shown[i],
                                       "color": colours[shown[i].removesuffix(HELD)]},
                    "measurements": {name: v[j] for name, v in values.items()
                                     if v[j] is not None},
                    "metadata": metadata}})
        yield str(frame), {"type": "FeatureCollection", "features": features}
    # A frame read with no event on it is a file too, empty: one missing could not be told
    # from an export that failed, and a script importing each frame stopped on it.
    have = set(map(str, frame_ids))
    for frame in summary.events_by_frame or {}:
        if str(frame) not in have:
            yield str(frame), {"type": "FeatureCollection", "features": []}


def write_geojson_folder(folder: Path, collections: Iterable[tuple[str, dict]],
                          done: list[Path]) -> int:
    """One file per (frame id, collection), each written atomically as it comes and added to
    ``done``; ``.geojson`` files of an earlier export that this one has no frame for are
    removed, so the folder holds this export alone. Returns the frames written."""
    written = set()
    make_folder(folder)  # (a sample of no frame read: said, and there)
    for frame_id, collection in collections:
        path = folder / f"{file_stem(frame_id)}.geojson"
        atomic_write_bytes(path, json.dumps(collection, allow_nan=False).encode("utf-8"))
        done.append(path)
        written.add(path.name)
    if folder.is_dir():
        for stale in sorted(folder.glob("*.geojson")):
            if stale.name not in written:
                log.info("removing %s: an earlier export's frame that this run did not "
                         "read", stale)
                stale.unlink()
    return len(written)
