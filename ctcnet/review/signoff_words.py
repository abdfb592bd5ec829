"""A sign-off record in words: who signed, when, what the review decided and changed, what it
left undecided, and whether it still holds (:func:`signoff_text`, the line the report, the
exports and the console give), and what the decisions that count changed
(:func:`decision_changes`, the record's ``changed``)."""

from __future__ import annotations

from ctcnet.core.printable import utc_text
from ctcnet.review.signoff import (
    CALLS_CHANGED,
    CHANGED,
    COUNTS_CHANGED,
    EDITED,
    MODEL_CHANGED,
    RECORD_CHANGED,
)


def _deciders(record: dict) -> str:
    """Who made the decisions, where others than the signer did: " (13 by A. Second, 2 by
    J. Tech)"; "" otherwise."""
    by = record.get("decided_by") or {}
    if not by or set(by) == {record["reviewer"]}:
        return ""
    return " (" + ", ".join(f"{n} by {name}" for name, n in
                            sorted(by.items(), key=lambda item: -item[1])) + ")"


def decision_changes(decisions, held=frozenset()) -> dict[str, list[int]]:
    """What the decisions that count (a match's ``decisions``: ``event_id``, ``model_call``,
    ``reviewer_call``) changed: "model call -> decision" -> event ids, in order of the events.
    A decision confirming the call is none, but on a call the guard held (``held``: event
    ids), which the confirmation puts into the count: "ctc (held) -> ctc"."""
    out: dict[str, list[int]] = {}
    rows = decisions.sort_values("event_id")
    for event, was, now in zip(rows["event_id"], rows["model_call"], rows["reviewer_call"]):
        on_hold = int(event) in held
        if str(now) != str(was) or on_hold:
            out.setdefault(f"{was}{' (held)' if on_hold else ''} -> {now}", []).append(
                int(event))
    return out


def changes_text(changed: dict, shown: int = 5) -> str:
    """A record's ``changed`` in words: ``ctc -> wbc 1 (#214), wbc -> ctc 1 (#443)``."""
    return ", ".join(f"{k} {len(v)} (" + ", ".join(f"#{e}" for e in v[:shown])
                     + (", ..." if len(v) > shown else "") + ")"
                     for k, v in changed.items())


def signoff_text(record: dict | None) -> str:
    """A sign-off record in a line: who, when, what it left undecided, whether it holds."""
    if record is None:
        return "not signed off"
    text = (f"reviewed by {record['reviewer']} on {utc_text(record['signed_at'])}: "
            f"{record['decided']} event(s) decided{_deciders(record)}, "
            f"{record['unreviewed']} candidate(s) left undecided")
    if record.get("held_undecided"):
        text += f" ({record['held_undecided']} of them held by the marker guard)"
    if record.get("changed"):
        # Of a run whose events were numbered otherwise (a rerun since): said, beside the
        # review so far in this run's numbers.
        text += "; changed " + ("(event numbers of the run it signed) " if record.get(
            "status") in (CALLS_CHANGED, MODEL_CHANGED) else "") + changes_text(record["changed"])
        automatic = record.get("automatic_per_7_5_ml") or {}
        after = record.get("after_review_per_7_5_ml") or {}
        moved = [f"{k} {automatic[k]:.2f} -> {after[k]:.2f}" for k in automatic
                 if automatic.get(k) is not None and after.get(k) is not None]
        if moved:  # where the changes took the figures, from the automatic ones
            text += f" (per 7.5 mL, automatic -> after review: {', '.join(moved)})"
    if record.get("note"):
        text += f'; note: "{record["note"]}"'
    if record.get("sample_status") not in (None, "ok"):
        text += f"; signed on a {record['sample_status']} sample"
    second = record.get("second_reading")
    disagreements = (second or {}).get("disagreements")
    open_ = sum(1 for d in disagreements if isinstance(d, dict) and not d.get("adjudicated")) \
        if isinstance(disagreements, list) else 0
    if second and (second.get("both") or open_):
        kappa = second.get("kappa")
        readers = second.get("second_readers")
        by = f" by {', '.join(map(str, readers))}" if isinstance(readers, list) and readers \
            else ""
        text += (f"; second reading{by}: {second['agree']} of {second['both']} agree, kappa "
                 + ("n/a" if kappa is None else f"{kappa:.2f}"))
        if open_:  # signed with the readers apart on these: said, not hidden in the record
            text += f" ({open_} disagreement(s) not adjudicated)"
        own = second.get("independent")
        if isinstance(own, dict) and own.get("both") and own.get("agree") != second["agree"]:
            # Adjudication moved the first reading toward the second: the readers' own
            # agreement, as each first decided, is the figure an audit reads.
            own_kappa = own.get("kappa")
            text += (f" after adjudication; as first read {own['agree']} of {own['both']}, "
                     "kappa " + ("n/a" if own_kappa is None else f"{own_kappa:.2f}"))
    if record.get("unchecked"):
        text += f"; {record['unchecked']}"
    return text + why_not_holding(record)


def why_not_holding(record: dict) -> str:
    """What the sign-off's line adds where it no longer holds, "; " first ("" where it
    holds)."""
    status = record.get("status")
    if status == EDITED:
        return f"; its record was changed since: {record.get('problem')}"
    if status == RECORD_CHANGED:
        return (f"; cartridge.json's {', '.join(record.get('record_changed') or [])} changed "
                "since the sign-off (a patient or draw corrected?): sign it off again once "
                "checked")
    return {MODEL_CHANGED: "; another model file made the calls since the sign-off: sign it "
                           "off again once checked",
            CHANGED: "; decisions changed since the sign-off: sign it off again once checked",
            CALLS_CHANGED: "; predict ran again since the sign-off and made other calls (the "
                           "decisions follow their cells): review them and sign it off again",
            COUNTS_CHANGED: "; the reviewed counts per 7.5 mL changed since the sign-off (the "
                            "blood volume or the frames read): sign it off again once "
                            "checked"}.get(status, "")
