"""A reviewer's decisions on one cartridge: which events to show, review.csv, confirmed counts.

Candidates (what a reviewer looks at): every call of a reported class (``ctc``, ``cluster``),
every event the model flagged for review, and a fixed random sample of the rest for quality
control (a model that hides CTCs among confident debris calls is only caught this way). The
sample is drawn with a seed taken from the sample id, so it stays the same across reloads and
server restarts.

``RESULTS/<sample>/review.csv`` holds one row per decided event (the latest decision wins):
``event_id, model_call, reviewer_call, reviewer, time``. ``reviewer_call`` is a class name
(the model's own on a confirmation, another on a relabel) or ``rejected`` (not what the model
said, class unknown). Each decision rewrites the file atomically, so it is never half written.
"""

from __future__ import annotations

import getpass
import json
import zlib
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from ctcnet.errors import InputError
from ctcnet.io.atomic import atomic_path

REVIEW_FILE = "review.csv"
REJECTED = "rejected"
COLUMNS = ["event_id", "model_call", "reviewer_call", "reviewer", "time"]
QC_FRACTION = 0.02  # of the events that are neither reported calls nor flagged
QC_MIN = 20


def default_reviewer() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name in a bare container
        return "reviewer"


def load_sample(sample_dir: str | Path) -> tuple[pd.DataFrame, dict]:
    """A predict output folder's events table and summary; InputError if it is not one."""
    sample_dir = Path(sample_dir)
    summary_path, events_path = sample_dir / "summary.json", sample_dir / "events.parquet"
    if not summary_path.is_file() or not events_path.is_file():
        raise InputError("not a predict output folder (no summary.json / events.parquet)",
                         sample_dir)
    try:
        summary = json.loads(summary_path.read_text())
        events = pd.read_parquet(events_path)
    except (OSError, ValueError) as err:
        raise InputError(f"cannot read the predict outputs: {err}", sample_dir) from None
    return events, summary


def find_samples(results: str | Path) -> dict[str, Path]:
    """Sample id -> folder for a predict ``--out`` folder (or one sample's own folder)."""
    results = Path(results)
    if not results.is_dir():
        raise InputError("results folder not found", results)
    if (results / "summary.json").is_file():
        return {results.resolve().name: results}
    samples = {p.name: p for p in sorted(results.iterdir())
               if p.is_dir() and (p / "summary.json").is_file()
               and (p / "events.parquet").is_file()}
    if not samples:
        raise InputError("no predict outputs here (expected <sample>/summary.json and "
                         "events.parquet, as ctcnet predict --out writes)", results)
    return samples


def reported_classes(summary: dict) -> list[str]:
    """The classes a report counts per 7.5 mL (predict writes one figure per reported class)."""
    return list(summary.get("per_7_5_ml", {}))


def select_candidates(events: pd.DataFrame, reported: list[str], sample_id: str,
                      qc_fraction: float = QC_FRACTION, qc_min: int = QC_MIN) -> pd.DataFrame:
    """The events to review, in scan order, with a ``why`` column: call, flagged or qc."""
    if not len(events):
        return events.assign(why=pd.Series(dtype=object))
    called = events["class"].isin(reported).to_numpy()
    flagged = events["review"].astype(bool).to_numpy()
    rest = np.flatnonzero(~called & ~flagged)
    n_qc = min(len(rest), max(qc_min, int(np.ceil(qc_fraction * len(rest)))))
    rng = np.random.default_rng(zlib.crc32(sample_id.encode("utf-8")))
    qc = np.zeros(len(events), bool)
    qc[rng.choice(rest, size=n_qc, replace=False)] = True
    why = np.where(called, "call", np.where(flagged, "flagged", "qc"))
    keep = called | flagged | qc
    return events[keep].assign(why=why[keep])


def read_decisions(sample_dir: str | Path) -> pd.DataFrame:
    """review.csv as a table (empty with the right columns when nobody has reviewed yet)."""
    path = Path(sample_dir) / REVIEW_FILE
    if not path.exists():
        return pd.DataFrame({c: pd.Series(dtype="int64" if c == "event_id" else object)
                             for c in COLUMNS})
    try:
        table = pd.read_csv(path, dtype={"model_call": str, "reviewer_call": str,
                                         "reviewer": str, "time": str})
    except (OSError, ValueError) as err:
        raise InputError(f"cannot read the review decisions: {err}", path) from None
    if list(table.columns) != COLUMNS:
        raise InputError(f"review.csv needs the columns {','.join(COLUMNS)}", path)
    return table


def record_decision(sample_dir: str | Path, event_id: int, model_call: str,
                    reviewer_call: str, reviewer: str, now: datetime | None = None
                    ) -> pd.DataFrame:
    """Add or replace one event's decision; review.csv is rewritten atomically. Returns it.

    Callers serialise calls per folder (the server holds a lock): two writers at once would
    each rename a complete file, and the later one would drop the other's decision.
    """
    when = (now or datetime.now(timezone.utc)).isoformat(timespec="seconds")
    table = read_decisions(sample_dir)
    table = table[table["event_id"] != int(event_id)]
    row = pd.DataFrame([[int(event_id), model_call, reviewer_call, reviewer, when]],
                       columns=COLUMNS)
    table = pd.concat([table, row], ignore_index=True) if len(table) else row
    table = table.sort_values("event_id", kind="stable")
    with atomic_path(Path(sample_dir) / REVIEW_FILE) as tmp:
        table.to_csv(tmp, index=False)
    return table


def review_counts(events: pd.DataFrame, decisions: pd.DataFrame, summary: dict) -> dict:
    """Model counts beside reviewed counts, per class and per 7.5 mL of blood.

    ``confirmed`` counts the events whose reviewer call is the class (confirmed calls plus
    events relabelled into it); ``decided`` how many of the model's calls were looked at.
    """
    volume = float(summary.get("blood_volume_ml") or 7.5)
    model_counts = events["class"].value_counts() if len(events) else pd.Series(dtype=int)
    reviewer = decisions["reviewer_call"].value_counts()
    decided = decisions["model_call"].value_counts()
    rows = {}
    for name in summary.get("model", {}).get("classes") or sorted(model_counts.index):
        model, confirmed = int(model_counts.get(name, 0)), int(reviewer.get(name, 0))
        rows[name] = {"model": model, "model_per_7_5_ml": model * 7.5 / volume,
                      "confirmed": confirmed, "confirmed_per_7_5_ml": confirmed * 7.5 / volume,
                      "decided": int(decided.get(name, 0))}
    return {"blood_volume_ml": volume, "classes": rows,
            "rejected": int((decisions["reviewer_call"] == REJECTED).sum()),
            "reviewed": int(len(decisions))}


def reviewed_labels(decisions: pd.DataFrame) -> pd.DataFrame:
    """The decisions that give a label: confirmed or relabelled events (rejections give none)."""
    return decisions[decisions["reviewer_call"] != REJECTED]
