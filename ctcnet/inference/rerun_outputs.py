"""What a rerun of a sample keeps of the results it changes, and where a sample's exports lie.

``ctcnet export-events`` writes a sample's FCS file and GeoJSON folder beside its events
(``<sample>/<sample>.fcs``, ``<sample>/geojson/``). They hold the calls of the tables they
were made from. A rerun that writes the tables again (``--overwrite``, or frames done since:
a frame repaired, a scan finished) moves them into ``previous/exports-<when they were
written, UTC>/`` and keeps the summary it replaces in ``previous/summary-<when its counts
were made>.json``, and says so: the counts before stay on record, and no export sits beside
counts it no longer adds up to. A rerun that finds every frame in its journal writes the same
tables: it keeps the earlier counts' time (``counted_at``), and the exports stay.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import datetime, timezone
from pathlib import Path

from ctcnet.inference.summary import PREVIOUS_DIR, SUMMARY_FILE, keep_previous_summary

log = logging.getLogger(__name__)

GEOJSON_DIR = "geojson"


def file_stem(name: str) -> str:
    """A frame or sample id as a file name: they come from file and folder names already, but
    a separator or control character must never reach the path."""
    return re.sub(r"[^A-Za-z0-9._+=-]", "_", name).lstrip(".") or "_"


def in_folder_exports(folder: Path, sample: str) -> tuple[Path, Path]:
    """The FCS file and the GeoJSON folder of ``sample``'s exports beside its events."""
    return Path(folder) / f"{file_stem(sample)}.fcs", Path(folder) / GEOJSON_DIR


def retire_exports(folder: str | Path, sample: str) -> Path | None:
    """Move the exports beside ``sample``'s events (:func:`in_folder_exports`), if any, into
    ``previous/exports-<stamp>/`` (the newest one's modification time, UTC); returns that
    folder (None: nothing moved)."""
    present = [p for p in in_folder_exports(Path(folder), sample) if p.exists()]
    if not present:
        return None
    stamp = datetime.fromtimestamp(max(p.stat().st_mtime for p in present), timezone.utc)
    kept = Path(folder) / PREVIOUS_DIR / f"exports-{stamp:%Y%m%dT%H%M%SZ}"
    for n in range(2, 1000):  # exports of the same second kept before: another folder
        if not kept.exists():
            break
        kept = kept.with_name(f"exports-{stamp:%Y%m%dT%H%M%SZ}-{n}")
    kept.mkdir(parents=True)
    for path in present:
        path.rename(kept / path.name)
    log.warning("%s: the exports of the run's earlier tables (%s) no longer match the tables "
                "this run writes: moved to %s (ctcnet export-events makes this run's)",
                sample, ", ".join(p.name for p in present), kept.relative_to(Path(folder)))
    return kept


def keep_replaced(folder: str | Path, sample: str, frames_to_do: bool, overwrite: bool
                  ) -> float | None:
    """Before a run of ``sample`` writes its tables into ``folder``: where they change (frames
    to do, or ``overwrite``), the earlier exports moved aside (:func:`retire_exports`) and, on
    a resume (``overwrite`` kept it already: ``journal.open_journal``), the earlier summary
    kept in ``previous/``; returns None. Where they do not, the earlier counts' time, to be
    kept (None: no earlier summary)."""
    folder = Path(folder)
    if frames_to_do or overwrite:
        retire_exports(folder, sample)
        if not overwrite:
            kept = keep_previous_summary(folder)
            if kept is not None:
                log.warning("%s: frames done since the earlier run change its tables; its "
                            "summary is kept as %s", sample, kept.relative_to(folder))
        return None
    try:
        counted = json.loads((folder / SUMMARY_FILE).read_text()).get("counted_at")
    except (OSError, ValueError, AttributeError):
        return None
    return float(counted) if isinstance(counted, (int, float)) else None
