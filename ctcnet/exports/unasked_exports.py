"""The export of the other format, left as it was: ``export-events --fcs --overwrite`` after a
review changed writes the FCS file anew and leaves the GeoJSON detections beside it as an
earlier export wrote them (and the other way round), so that QuPath would show calls the
FCS file no longer holds. Said where that export is older than what it holds of the sample's
review (its latest decision; an FCS file's sign-off too); nothing is written or moved."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

from ctcnet.inference.rerun_outputs import in_folder_exports

log = logging.getLogger(__name__)

# What in a sample's folder an export of each format holds: the decisions (both), the
# sign-off (the FCS file's keywords alone; a GeoJSON detection has none).
REVIEW_RECORDS = {"--fcs": ("review.csv", "signoff.json"), "--geojson": ("review.csv",)}


def unasked_export(name: str, folder: Path, fcs: Path | None, geojson: Path | None
                   ) -> tuple[Path, str] | None:
    """The path of the format not asked for this time, where this export's scheme would put
    it (beside the sample's events, or side by side in ``--out``), and the option that writes
    it; None where both formats were asked for."""
    if fcs is not None and geojson is not None:
        return None
    if fcs is not None:
        beside = fcs.parent == folder
        return (in_folder_exports(folder, name)[1] if beside else
                fcs.with_name(f"{fcs.stem}_geojson")), "--geojson"
    beside = geojson.parent == folder
    return (in_folder_exports(folder, name)[0] if beside else
            geojson.with_name(geojson.name.removesuffix("_geojson") + ".fcs")), "--fcs"


def _written_at(path: Path) -> float:
    """When an export was last written: a file's time, or a folder's newest file's."""
    if path.is_dir():
        return max([path.stat().st_mtime] + [p.stat().st_mtime for p in path.iterdir()])
    return path.stat().st_mtime


def say_unasked_stale(name: str, folder: Path, fcs: Path | None, geojson: Path | None) -> bool:
    """Warn where the other format's earlier export is older than what it holds of the
    sample's review (its latest decision; for an FCS file, its sign-off too); returns
    whether it was said."""
    other = unasked_export(name, folder, fcs, geojson)
    if other is None or not other[0].exists():
        return False
    path, option = other
    try:
        reviewed = max((folder / r).stat().st_mtime for r in REVIEW_RECORDS[option]
                       if (folder / r).is_file())
        written = _written_at(path)
    except (OSError, ValueError):  # no review record: nothing it could be behind
        return False
    if written >= reviewed:
        return False
    when = datetime.fromtimestamp(written, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    log.warning("%s: %s was exported at %s, before the review's latest %s, and is left as "
                "it was: it holds a review this export no longer does; export it again with "
                "%s --overwrite", name, path, when,
                "decision or sign-off" if option == "--fcs" else "decision", option)
    return True

