"""What a signoff.json must hold to be read as a sign-off (:func:`check_signoff`): every field
the summary, the page and dataset.json read, of its type, so that a damaged file is refused
where it is read, not failed on later."""

from __future__ import annotations

import math

_TEXTS = ("reviewer", "signed_at", "run_id")
_OPTIONAL_TEXTS = ("cartridge_id", "calls_id", "sample_status", "model_sha256", "note",
                   "events_sha256", "network_sha256")
_COUNTS = ("decided", "unreviewed", "journal_rows")


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_number(value) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def check_signoff(data) -> dict:
    """``data`` (a signoff.json as parsed) when it is a sign-off, else ValueError saying what
    is wrong: every field ``signoff.signoff_record`` and ``signoff_words.signoff_text`` read, of
    its type, so a damaged file cannot fail the summary, the page or dataset.json later on."""
    if not isinstance(data, dict):
        kind = {list: "list", str: "string", bool: "boolean", type(None): "null"}.get(
            type(data), "number")
        raise ValueError(f"a JSON {kind}, not a sign-off object")
    wrong = [k for k in _TEXTS if not isinstance(data.get(k), str)]
    wrong += [k for k in _OPTIONAL_TEXTS if not isinstance(data.get(k), (str, type(None)))]
    wrong += [k for k in _COUNTS if not _is_count(data.get(k))]
    wrong += [k for k in ("second_journal_rows", "held_undecided")
              if data.get(k) is not None and not _is_count(data[k])]
    wrong += [k for k in ("counted_at",) if data.get(k) is not None and not _is_number(data[k])]
    by = data.get("decided_by")
    if by is not None and not (isinstance(by, dict) and all(
            isinstance(k, str) and _is_count(v) for k, v in by.items())):
        wrong.append("decided_by")
    journals = data.get("journals")
    if journals is not None and not (isinstance(journals, dict) and all(
            isinstance(v, dict) and _is_count(v.get("bytes")) and isinstance(v.get("sha256"), str)
            for v in journals.values())):
        wrong.append("journals")
    if data.get("cartridge_info") is not None and not isinstance(data["cartridge_info"], dict):
        wrong.append("cartridge_info")
    if data.get("blood_volume_read_ml") is not None and \
            not _is_number(data["blood_volume_read_ml"]):
        wrong.append("blood_volume_read_ml")
    automatic = data.get("automatic_per_7_5_ml")
    if automatic is not None and not (isinstance(automatic, dict) and all(
            v is None or _is_number(v) for v in automatic.values())):
        wrong.append("automatic_per_7_5_ml")
    changed = data.get("changed")
    if changed is not None and not (isinstance(changed, dict) and all(
            isinstance(k, str) and isinstance(v, list) and all(map(_is_count, v))
            for k, v in changed.items())):
        wrong.append("changed")
    counts = data.get("after_review_per_7_5_ml")
    if not isinstance(counts, dict) or not all(v is None or _is_number(v)
                                               for v in counts.values()):
        wrong.append("after_review_per_7_5_ml")
    intervals = data.get("after_review_per_7_5_ml_interval")
    if intervals is not None and not (isinstance(intervals, dict) and all(
            v is None or (isinstance(v, list) and len(v) == 2 and all(map(_is_number, v)))
            for v in intervals.values())):
        wrong.append("after_review_per_7_5_ml_interval")
    second = data.get("second_reading")
    if second is not None and not (
            isinstance(second, dict) and _is_count(second.get("both"))
            and _is_count(second.get("agree"))
            and (second.get("kappa") is None or _is_number(second.get("kappa")))):
        wrong.append("second_reading")
    if wrong:
        raise ValueError("not a sign-off: " + ", ".join(wrong) + " missing or of the wrong type")
    return data
