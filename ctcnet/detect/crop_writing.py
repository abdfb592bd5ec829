"""Writing a labelled crop dataset in the layout :mod:`ctcnet.detect.crop_dataset` reads:
class folders of ``<sample id>__<number>.tif`` crops, ``manifest.csv``, ``panel.json`` and,
where a writer records its sources, ``dataset.json``. Whole (:func:`write_crop_dataset`) or a
chunk at a time (:func:`write_crop_files`, then :func:`finish_crop_dataset`), so a writer
never need hold every crop.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ctcnet.io.atomic import atomic_write_text
from ctcnet.io.images import write_tiff
from ctcnet.io.panel import Panel, save_panel

# Between a crop file's sample id and its number (``S1__0000007.tif``).
SAMPLE_SEPARATOR = "__"
MANIFEST_COLUMNS = ("path", "label", "sample_id", "split")


def write_manifest(root: str | Path, rows, patient_ids: Sequence[str] | None = None) -> None:
    """A crop dataset's ``manifest.csv``, written atomically: one (path relative to ``root``,
    label, sample id, split or "") row per crop, and a ``patient_id`` column where
    ``patient_ids`` (one per row, "" for none) names any."""
    # The csv module's quoting: a sample id "Mueller, Anna" is one field, as read back.
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    named = patient_ids is not None and any(patient_ids)
    writer.writerow(MANIFEST_COLUMNS + (("patient_id",) if named else ()))
    writer.writerows([[str(v) for v in row] + ([patient_ids[k]] if named else [])
                      for k, row in enumerate(rows)])
    atomic_write_text(Path(root) / "manifest.csv", text.getvalue())


def write_crop_dataset(root: str | Path, crops: np.ndarray, labels: Sequence[str],
                       panel: Panel, sample_ids: Sequence[str] | None = None,
                       splits: Sequence[str] | None = None, extra: dict | None = None) -> Path:
    """Write crops as class folders plus manifest.csv and panel.json; returns the root."""
    n = len(crops)
    if len(labels) != n:
        raise ValueError("one label per crop")
    sample_ids = list(sample_ids) if sample_ids is not None else [f"s{i:06d}" for i in range(n)]
    rows = write_crop_files(root, crops, labels, sample_ids, panel, splits=splits)
    return finish_crop_dataset(root, rows, panel, extra)


def write_crop_files(root: str | Path, crops, labels: Sequence[str], sample_ids: Sequence[str],
                     panel: Panel, first: int = 0, splits: Sequence[str] | None = None) -> list:
    """Each crop as ``<label>/<sample id>__<number>.tif`` (numbered on from ``first``: a
    dataset written a chunk at a time); returns their manifest rows."""
    rows = []
    for k, (crop, label, sample) in enumerate(zip(crops, labels, sample_ids)):
        rel = Path(label) / f"{sample}{SAMPLE_SEPARATOR}{first + k:07d}.tif"
        write_tiff(Path(root) / rel, crop, panel.names, panel.pixel_size_um)
        rows.append((rel.as_posix(), label, sample, splits[k] if splits is not None else ""))
    return rows


def finish_crop_dataset(root: str | Path, rows, panel: Panel, extra: dict | None = None,
                        patient_ids: Sequence[str] | None = None) -> Path:
    """manifest.csv (``rows``, ``patient_ids``: :func:`write_manifest`), panel.json and, with
    ``extra``, dataset.json of the crops written: last, so a dataset cut short has none and
    is not read as one; returns the root."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    write_manifest(root, rows, patient_ids)
    save_panel(panel, root / "panel.json")
    if extra:
        atomic_write_text(root / "dataset.json", json.dumps(extra, indent=2) + "\n")
    return root


def dataset_record(root: str | Path) -> dict:
    """What the writer of a crop folder recorded of it (``dataset.json``: its sources, whose
    labels, ...); {} where it recorded nothing or the file cannot be read."""
    try:
        record = json.loads((Path(root) / "dataset.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}
