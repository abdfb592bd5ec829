"""Where a sample's exports for other tools lie in its predict folder, and what becomes of them
when predict writes the sample's tables again.

``ctcnet export-events`` writes a sample's FCS file and GeoJSON folder beside its events
(``<sample>/<sample>.fcs``, ``<sample>/geojson/``). They hold the calls of the tables they
were made from: a rerun that replaces or extends those tables (``--overwrite``, frames done
since) would leave them beside counts they no longer add up to. Predict moves them into
``previous/exports-<when they were written, UTC>/`` before it writes, and says so; exporting
again gives the new run's.
"""

from __future__ import annotations

import logging
import re
import shutil
from datetime import datetime, timezone
from pathlib import Path

from ctcnet.inference.summary import PREVIOUS_DIR  # beside the summaries of runs replaced

log = logging.getLogger(__name__)

GEOJSON_DIR = "geojson"


def file_stem(name: str) -> str:
    """A frame or sample id as a file name: they come from file and folder names already, but
    a separator or control character must never reach the path."""
    return re.sub(r"[^A-Za-z0-9._+=-]", "_", name).lstrip(".") or "_"


def in_folder_exports(folder: Path, sample: str) -> tuple[Path, Path]:
    """The FCS file and the GeoJSON folder of ``sample``'s exports beside its events."""
    return Path(folder) / f"{file_stem(sample)}.fcs", Path(folder) / GEOJSON_DIR


def retire_exports(folder: str | Path, sample: str, tables_change: bool = True
                   ) -> Path | None:
    """Where the run's tables change (``tables_change``), move the exports beside ``sample``'s
    events (:func:`in_folder_exports`), if any, into ``previous/exports-<stamp>/`` (the newest
    one's modification time, UTC); returns that folder (None: nothing moved)."""
    present = [p for p in in_folder_exports(Path(folder), sample) if p.exists()] \
        if tables_change else []
    if not present:
        return None
    stamp = datetime.fromtimestamp(max(p.stat().st_mtime for p in present), timezone.utc)
    kept = Path(folder) / PREVIOUS_DIR / f"exports-{stamp:%Y%m%dT%H%M%SZ}"
    kept.mkdir(parents=True, exist_ok=True)
    for path in present:
        target = kept / path.name
        if target.exists():  # moved there before (a rerun stopped after moving it)
            shutil.rmtree(target) if target.is_dir() else target.unlink()
        path.rename(target)
    log.warning("%s: the exports of the run's earlier tables (%s) no longer match the tables "
                "this run writes: moved to %s (ctcnet export-events makes this run's)",
                sample, ", ".join(p.name for p in present), kept.relative_to(Path(folder)))
    return kept
