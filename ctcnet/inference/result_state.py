"""Whether a sample's result may be read as one, said before its numbers: the line the report,
the review page, ``summary.json`` and ``samples.csv`` lead with.

A sample's ``status`` says how much of the scan was read; whether a person reviewed and signed
off its counts is another matter. :func:`result_state` puts both in one headline:

* ``failed``: no frame was read, so there is no result (its zeros are no negative);
* ``partial``: frames skipped or missing, events unclassified, or problems with the inputs:
  the rates per 7.5 mL are estimates from the blood read, and the problems say why;
* ``preliminary``: the automatic counts, not signed off after review (its headline says a
  review begun: the events decided, the counts after review so far);
* ``signed off``: a person signed off the counts after review, and the sign-off holds;
* ``sign-off stale``: signed off, but decisions or the counts moved on since: review again.

A partial or failed sample says so whatever its review. Every page carries
:data:`RESEARCH_USE` beside it.
"""

from __future__ import annotations

from ctcnet.core.printable import utc_text
from ctcnet.inference.counts import PER_ML, interval_text, per_volume_text

RESEARCH_USE = ("Research use only, not for diagnostic use. ctcnet is not a cleared test, "
                "and its shipped models were trained on simulated scans only: validate the "
                "model on your own labelled samples before using its counts.")
STATES = ("failed", "partial", "preliminary", "signed off", "sign-off stale")


def signoff_holds(summary: dict) -> bool:
    """Whether a summary.json (as parsed) is signed off on its figures: it has a sign-off
    whose ``status`` is current (one written before sign-offs had a status counts as
    current), not one the decisions or the counts moved on from."""
    signoff = summary.get("signoff") or {}
    return bool(signoff) and signoff.get("status", "current") == "current"


def result_state(summary: dict, review: bool = True) -> dict:
    """``{"state": one of STATES (or ``complete``, below), "text": the headline}`` of a
    summary.json (as parsed; its
    ``signoff`` record, where the review wrote one, decides between the last three).
    ``review=False``: the scan's part alone (the review page says its sign-off itself):
    ``complete`` for a whole scan read, not ``preliminary`` (a script read a signed-off
    sample's state as unreviewed)."""
    review_state, review_text = _review(summary) if review else ("complete", "")
    status = summary.get("status", "ok")
    if status == "failed":
        return {"state": "failed", "text": "FAILED: no frame was read, so there is no result "
                "(its counts of 0 are no negative)."}
    notes = _volume_notes(summary)
    if status == "partial":
        return {"state": "partial",
                "text": " ".join(t for t in (f"PARTIAL: {_partial_why(summary)}.", *notes,
                                             review_text) if t)}
    return {"state": review_state, "text": " ".join(t for t in (review_text, *notes) if t)}


def _review(summary: dict) -> tuple[str, str]:
    signoff = summary.get("signoff") or {}
    decided = (summary.get("reviewed") or {}).get("reviewed") or 0
    if not signoff and decided:
        # A review begun: "not reviewed" above the counts after review read false.
        figures = _signed_figures(summary)
        return "preliminary", (f"UNDER REVIEW, NOT SIGNED OFF: {decided} event(s) decided; "
                               "the automatic counts stand until a person signs off"
                               + (f" (after review so far: {figures})." if figures else "."))
    if not signoff:
        return "preliminary", ("PRELIMINARY: automatic counts, not reviewed and signed off by "
                               "a person (`ctcnet review` on the results folder shows the "
                               "events that could change a count, for a decision and a "
                               "sign-off).")
    who = f"{signoff.get('reviewer', '?')} on {utc_text(signoff.get('signed_at', '?'))}"
    if signoff_holds(summary):
        held = signoff.get("held_undecided") or 0
        decided, undecided = signoff.get("decided"), signoff.get("unreviewed")
        # How much of the review list a person decided: a sign-off on 7 of 55 candidates read
        # as final as one on all of them.
        shown = (f" ({decided} of {decided + undecided} candidates decided, {undecided} left "
                 "as called)" if isinstance(decided, int) and isinstance(undecided, int)
                 and undecided else "")
        left = shown + ((f" ({held} call(s) held by the marker guard left undecided, as its "
                         "note may say)") if held else "")
        figures = _signed_figures(summary)
        return "signed off", (f"SIGNED OFF by {who}{left}: report the counts after review"
                              + (f": {figures}." if figures else "."))
    return "sign-off stale", (f"SIGN-OFF NO LONGER HOLDS ({signoff.get('status')}; signed by "
                              f"{who}): review again and sign off before reporting.")


def reviewed_figures(summary: dict) -> dict:
    """A summary.json's (as parsed) counts after review of the reported classes, their rates
    per 7.5 mL and the rates' blood-draw intervals (``after_review``,
    ``after_review_per_7_5_ml``, ``after_review_per_7_5_ml_interval``; None where the summary
    holds none): where no decision was taken (a sign-off on none), the automatic ones."""
    reviewed = summary.get("reviewed") or {}
    if reviewed.get("reviewed"):
        reported = reviewed.get("reported") or list(summary.get("counts") or {})
        after = reviewed.get("after_review") or {}
        return {"after_review": {c: after.get(c) for c in reported},
                "after_review_per_7_5_ml": reviewed.get("after_review_per_7_5_ml"),
                "after_review_per_7_5_ml_interval":
                    reviewed.get("after_review_per_7_5_ml_interval")}
    return automatic_figures(summary)


def automatic_figures(summary: dict) -> dict:
    """A summary.json's (as parsed) automatic counts of the reported classes, their rates and
    intervals, in :func:`reviewed_figures`' form."""
    rates = summary.get("per_7_5_ml") or {}
    return {"after_review": {c: (summary.get("counts") or {}).get(c) for c in rates},
            "after_review_per_7_5_ml": rates,
            "after_review_per_7_5_ml_interval":
                (summary.get("tally") or {}).get("per_7_5_ml_interval")}


def _signed_figures(summary: dict) -> str:
    """The figures a sign-off says to report (:func:`reviewed_figures`): :func:`figures_text`."""
    return figures_text(reviewed_figures(summary))


def figures_text(figures: dict) -> str:
    """Figures of :func:`reviewed_figures`' form, each with its blood-draw interval: ``ctc 6
    (6.00 per 7.5 mL, 95 % blood-draw interval 2.20 to 13.06)`` (of sampling one tube, not of
    the calls)."""
    counts, rates, intervals = (figures[k] or {} for k in (
        "after_review", "after_review_per_7_5_ml", "after_review_per_7_5_ml_interval"))
    parts = []
    for name, rate in rates.items():
        if counts.get(name) is None or rate is None:
            continue
        bounds = intervals.get(name)
        parts.append(f"{name} {counts[name]} ({per_volume_text(rate)} per 7.5 mL"
                     + (f", 95 % blood-draw interval {interval_text(*bounds)}"
                        if bounds else "") + ")")
    return ", ".join(parts)


def channel_order_doubt(summary: dict) -> bool:
    """Whether a summary.json's (as parsed) problems put its channel order in doubt: every
    count rests on it, and no review decision corrects it (panel.json corrected, the sample
    is run again)."""
    return any(_order_doubt(str(p)) for p in summary.get("problems") or [])


def _order_doubt(problem: str) -> bool:
    """Whether a problem's words put the channel order in doubt (metadata_signs' and
    counts' checks say "channel order")."""
    return "channel order" in problem


def _frames_read(summary: dict) -> str | None:
    """"4 of 5 frames read" where frames were skipped or missing (None: none)."""
    frames = summary.get("frames") or {}
    if not (frames.get("skipped") or frames.get("missing")):
        return None
    total = (frames.get("total") or 0) + (frames.get("missing") or 0)
    return f"{frames.get('processed', 0)} of {total} frames read"


def partial_in_brief(summary: dict) -> str:
    """Why a partial sample is partial, in a few words (a batch's tally names each): its
    channel order in doubt first, then the frames read, the events not classified; empty
    where none of these says it (its problems do)."""
    if channel_order_doubt(summary):
        return "channel order in doubt, its counts not to be reported until it is checked"
    problems = [str(p) for p in summary.get("problems") or []]
    # (sample_checks' problems, by their first words)
    if any(p.startswith("almost nothing detected") for p in problems):
        return "almost nothing detected, its zeros no negative"
    read = _frames_read(summary)
    if read:
        return read
    if summary.get("failed_events"):
        return f"{summary['failed_events']} event(s) not classified"
    return ""


def _partial_why(summary: dict) -> str:
    parts: list[str] = []
    frames_read = _frames_read(summary)
    if frames_read:
        read, tube = summary.get("blood_volume_processed_ml"), summary.get("blood_volume_ml")
        parts.append(frames_read
                     + (f" ({read:.3g} of {tube:.3g} mL)" if read is not None and tube else "")
                     + ", so its rates per 7.5 mL are estimates from the blood read")
    if summary.get("failed_events"):
        parts.append(f"{summary['failed_events']} event(s) not classified")
    # A channel order in doubt leads: every other reading (a leak, a count) rests on it.
    problems = sorted((str(p) for p in summary.get("problems") or []),
                      key=lambda p: not _order_doubt(p))
    if problems:  # the first in its own words: what a reader must weigh before the number
        first = problems[0] if len(problems[0]) <= 240 else \
            problems[0][:237].rsplit(" ", 1)[0].rstrip(",;:.") + " ..."
        said = first + (f" (and {len(problems) - 1} more problem(s) of the inputs)"
                        if len(problems) > 1 else "")
        # A channel order in doubt before even the frames read: the counts rest on it.
        parts.insert(0 if _order_doubt(problems[0]) else len(parts), said)
    return "; ".join(parts) or "see the sample's problems"


def _volume_notes(summary: dict) -> list[str]:
    """What the per-7.5 mL figures rest on where it is not one stated tube: a volume the
    cartridge did not state (assumed), or another than a tube's."""
    volume = summary.get("blood_volume_ml")
    read = summary.get("blood_volume_processed_ml")
    if summary.get("blood_volume_stated") is False:
        return [f"Blood volume not stated in cartridge.json: {volume:g} mL assumed, so the "
                "rates per 7.5 mL rest on that assumption."]
    if volume and read and float(read) < float(volume) - 1e-9:  # part of the tube read
        # (to 5 figures: 1.125 shown as 1.12 did not give the rate beside it by hand)
        return [f"The rates per 7.5 mL are the counts scaled by {PER_ML / float(read):.5g} "
                f"(7.5 / {float(read):.4g} mL read)."]
    if volume and abs(float(volume) - PER_ML) > 0.5:
        return [f"Blood volume {volume:g} mL: the rates per 7.5 mL are the counts scaled by "
                f"{PER_ML / float(volume):.5g}."]
    return []
