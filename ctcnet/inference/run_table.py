"""``samples.csv``: the run index (``run.json``) as one row per sample, for a statistics
package or a spreadsheet: what a study reads from a night's batch without opening a JSON file
per sample.

Each row flattens one ``run.json`` output entry: its name, whether its result may be read as
one (``result_state``: ``ctcnet.inference.result_state``), status, input and the scan's
``cartridge_id``, the pixel size it was read at and its channels in the order read, the
model file, the prior, whether spillover was compensated, the ctcnet
and when the counts were made, the events and those on the review list (``review_events``),
then per class the automatic count and the calls the guard held (``count_ctc``,
``held_ctc``), and per reported class (ctc and cluster, and any other a taxonomy reports) the
rate per 7.5 mL to two decimals
(``per_7_5_ml_ctc``) with its 95 % interval (``per_7_5_ml_low_ctc``, ``per_7_5_ml_high_ctc``),
the tube's volume and the frames read of those expected beside the volume read, and the
counts after review where a person decided (``after_review_ctc``,
``after_review_per_7_5_ml_ctc`` with its interval, ``signed_off``), the frames skipped (and
the first ones' reasons) and missing, the problems (joined by ``; ``), and for an input set
aside or missing, why: its ``result_state`` then reads ``set aside`` or ``missing``, but where
a set-aside input keeps the figures (and the state) of the output an earlier run left. The
samples an earlier run left in the folder have their rows too (``earlier_run``). The columns
are the same every night (the model's classes', the counted classes' first; the default
taxonomy's where no sample names any); a
column a sample lacks is left empty, as are a failed sample's counts (it read no blood).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

from ctcnet.core.printable import spreadsheet_cell, unmeasured_text
from ctcnet.inference.counts import interval_at_two_decimals, per_volume_value
from ctcnet.io.atomic import atomic_write_text
from ctcnet.io.cartridge_info import RUN_INDEX_FILE, SAMPLES_FILE
from ctcnet.io.taxonomy import default_taxonomy
from ctcnet.nn.calls import COUNTED_CLASSES

_FIRST = ("name", "result_state", "status", "input", "cartridge_id", "same_scan_as",
          "pixel_size_um",
          "channels", "model_path",
          "model_sha256", "prior", "compensated", "ctcnet_version", "software", "frames_made_by",
          "counted_at",
          "finished_at",
          "events", "events_per_mm2",
          "review_events", "blood_volume_read_ml", "blood_volume_stated", "blood_volume_ml",
          "frames_read", "frames_resumed", "frames_expected", "frames_expected_stated")
# Rates per 7.5 mL to two decimals: a count over a volume read to three figures.
_RATES = ("per_7_5_ml", "after_review_per_7_5_ml")
# run.json's per-class maps, flattened as <prefix>_<class>.
_PER_CLASS = (("counts", "count"), ("held", "held"), ("per_7_5_ml", "per_7_5_ml"),
              ("after_review", "after_review"),
              ("after_review_per_7_5_ml", "after_review_per_7_5_ml"))
_LAST = ("clusters_by_partner", "unread_ctcs_above", "unread_ctcs_above_after_review",
         "decided", "signed_off", "signed_off_by",
         "signed_off_at", "held_undecided", "left_undecided", "signoff_note",
         "signoff_status", "readers_both", "readers_agree", "readers_kappa",
         "readers_own_both", "readers_own_agree", "readers_own_kappa", "frames_skipped",
         "skipped_because", "frames_missing", "problems", "set_aside", "missing", "reason",
         "earlier_run", "earlier_status")
# A row of no result of tonight's: its result_state says why (a set-aside input keeping an
# earlier run's output has that output's state).
NO_RESULT = (("set_aside", "set aside"), ("missing", "missing"))
# Per-class columns: the counted classes first (what a study reports), then the others in the
# model's order; of every class only the counts and the held calls.
_FIRST_CLASSES = COUNTED_CLASSES
_BY_CLASS = ("count", "held")
# A rate's 95 % interval (run.json per_7_5_ml_interval), beside the rate: the automatic one's
# and the one after review, each as <rate>_low_<class>, <rate>_high_<class>.
_BOUNDS = ("low", "high")
_INTERVALS = {"per_7_5_ml": "per_7_5_ml_interval",
              "after_review_per_7_5_ml": "after_review_per_7_5_ml_interval"}


def sample_row(entry: dict) -> dict:
    """One ``run.json`` output entry as a flat row (column -> value)."""
    model = entry.get("model") or {}
    row = {"name": entry.get("name"), "result_state": entry.get("result_state"),
           "status": entry.get("status"),
           "blood_volume_stated": entry.get("blood_volume_stated"),
           "input": entry.get("input"), "cartridge_id": entry.get("cartridge_id"),
           "pixel_size_um": entry.get("pixel_size_um"),
           # One cell in a spreadsheet, in the order the scan was read.
           "channels": " ".join(entry["channels"]) if entry.get("channels") else None,
           "model_path": model.get("path"), "model_sha256": model.get("sha256"),
           "prior": entry.get("prior"), "compensated": entry.get("compensated"),
           "ctcnet_version": entry.get("ctcnet_version"), "software": entry.get("software"),
           # A resumed run's frames made by another build or model file: the row's software
           # and model are the run's that finished it, not necessarily those that called.
           "frames_made_by": list_cell([f"{maker}: {n} frame(s)" for maker, n in
                                        entry["frames_made_by"].items()])
           if isinstance(entry.get("frames_made_by"), dict) else None,
           "counted_at": entry.get("counted_at"),
           "finished_at": entry.get("finished_at"),
           "events": entry.get("events"), "events_per_mm2": entry.get("events_per_mm2"),
           "review_events": entry.get("review_events"),
           "blood_volume_read_ml": entry.get("blood_volume_read_ml"),
           "blood_volume_ml": entry.get("blood_volume_ml"),
           "frames_read": entry.get("frames_read"),
           "frames_resumed": entry.get("frames_resumed"),
           "frames_expected": entry.get("frames_expected"),
           "frames_expected_stated": entry.get("frames_expected_stated")}
    # A failed sample read no blood: its zeros are no count, so its cells stay empty.
    counted = entry.get("status") != "failed"
    for key, prefix in _PER_CLASS:
        for name, value in (entry.get(key) or {}).items():
            if prefix in _RATES and isinstance(value, (int, float)) and \
                    not isinstance(value, bool):
                value = f"{per_volume_value(value):.2f}"  # as every output prints it (8.00)
            row[f"{prefix}_{name}"] = value if counted else None
    for name, span in (entry.get("review_span") or {}).items():
        for side, value in zip(_BOUNDS, span if counted and span else (None, None)):
            row[f"review_span_{side}_{name}"] = value
    for rate, key in _INTERVALS.items():
        for name, bounds in (entry.get(key) or {}).items():
            ends = interval_at_two_decimals(*bounds) if counted and bounds and \
                all(isinstance(v, (int, float)) for v in bounds) else (None, None)
            for side, value in zip(_BOUNDS, ends):
                row[f"{rate}_{side}_{name}"] = None if value is None else f"{value:.2f}"
    for key in _LAST:
        if key in entry:
            value = entry[key]
            row[key] = list_cell(value) if isinstance(value, list) else value
    # Maps in one cell each, as "neutrophil 2; homotypic 1" and "HER2 12 of 23".
    if isinstance(entry.get("clusters_by_partner"), dict):
        row["clusters_by_partner"] = list_cell(
            f"{partner} {n}" for partner, n in entry["clusters_by_partner"].items())
    past = entry.get("unread_leak_past_allowance") or ()
    unmeasured = entry.get("unread_ctcs_unmeasured") or {}
    for key in ("unread_ctcs_above", "unread_ctcs_above_after_review"):
        if isinstance(entry.get(key), dict):
            row[key] = list_cell(
                f"{name} {'n/a' if above is None else above} of {of}"
                + (" (CK's leak past the allowance)" if name in past else "")
                + (unmeasured_text({"counted_ctcs_unmeasured": unmeasured.get(name)})
                   if key == "unread_ctcs_above" else "")
                for name, (above, of) in entry[key].items())
    if not row["result_state"]:
        row["result_state"] = next((state for key, state in NO_RESULT if entry.get(key)), None)
    return row


def list_cell(values) -> str:
    """A list in one cell, its items joined by ``; ``; an item's own ``; `` becomes ``, `` so
    that splitting the cell at ``; `` gives the items back (a problem's text read "its default
    was used in its place; correct the key", one item split in two), each as a cell of its own
    gives it (:func:`spreadsheet_cell`: a sample id "=1+2" is "'=1+2" in the ``name`` column
    and in another row's ``same_scan_as`` alike, not escaped only where it came first)."""
    return "; ".join(str(spreadsheet_cell(str(v))).replace("; ", ", ") for v in values)


def others_of_scan(items: Sequence[dict]) -> list[list[str]]:
    """Per item (a run.json entry, a samples.csv row), the names of the others of its
    ``cartridge_id``: one scan under two sample ids or more (an id corrected and run again,
    a scan copied into a second folder), one blood draw."""
    by_scan: dict[str, list[int]] = {}
    for k, item in enumerate(items):
        if item.get("cartridge_id"):
            by_scan.setdefault(item["cartridge_id"], []).append(k)
    return [[items[j]["name"] for j in by_scan.get(item.get("cartridge_id"), ()) if j != k]
            for k, item in enumerate(items)]


def samples_csv(entries: Sequence[dict]) -> str:
    """The CSV text of ``entries`` (run.json's ``outputs``), a row each."""
    rows = [sample_row(e) for e in entries]
    # One scan under two sample ids: each row names the other, or a spreadsheet counts one
    # blood draw twice.
    for row, others in zip(rows, others_of_scan(rows)):
        row["same_scan_as"] = list_cell(others) or None
    # The classes in the order the entries name them, the counted classes first; on a night
    # whose samples name none (every one failed or set aside), the default taxonomy's.
    named = [name for e in entries for key, _ in _PER_CLASS for name in (e.get(key) or {})]
    classes = list(dict.fromkeys([*_FIRST_CLASSES, *(named or default_taxonomy().names)]))
    classes.sort(key=lambda c: (c not in _FIRST_CLASSES,
                                _FIRST_CLASSES.index(c) if c in _FIRST_CLASSES else 0))
    # Every column every night (empty where a sample has nothing to say): a template or a
    # script keyed on the columns reads any night's table.
    # Rates and counts after review are of the reported classes alone (run.json's): the
    # counted ones every night, and any other a taxonomy reports where an entry names it.
    reported = set(_FIRST_CLASSES) | {name for e in entries for key, prefix in _PER_CLASS
                                      if prefix not in _BY_CLASS for name in (e.get(key) or {})}
    per_class = []
    for _, prefix in _PER_CLASS:
        per_class += [f"{prefix}_{name}" for name in classes
                      if prefix in _BY_CLASS or name in reported]
        if prefix == "held":  # what the review could still make each reported count
            per_class += [f"review_span_{side}_{name}" for name in classes if name in reported
                          for side in _BOUNDS]
        if prefix in _INTERVALS:  # each rate's interval after the rates
            per_class += [f"{prefix}_{side}_{name}" for name in classes if name in reported
                          for side in _BOUNDS]
    columns = [*_FIRST, *per_class, *_LAST]
    text = io.StringIO()
    writer = csv.DictWriter(text, columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        # Text from outside (a sample id such as "=1+2") is not a formula in a spreadsheet.
        writer.writerow({k: ("" if v is None else spreadsheet_cell(v)) for k, v in row.items()})
    return text.getvalue()


def write_samples_csv(out, entries: Sequence[dict]) -> None:
    """``out/samples.csv`` from run.json's ``outputs``, written atomically, with run.json's
    permissions: a run removes the table as it starts and writes it anew, where run.json is
    written over, so the two would otherwise drift apart under jobs of other umasks."""
    from pathlib import Path

    atomic_write_text(Path(out) / SAMPLES_FILE, samples_csv(entries),
                      like=Path(out) / RUN_INDEX_FILE)
