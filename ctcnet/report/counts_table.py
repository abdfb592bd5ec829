"""The counts table of a sample's report page: per class the model's counts and, once decided,
the reviewed ones, the row of the calls the guard held or flagged, the span a review could
still take a count over, and the review decisions; each header's meaning printed under it on
paper. The review page shows the same keys (review_page.html, renderSummary)."""

from __future__ import annotations

import html

from ctcnet.core.printable import named_counts, utc_text
from ctcnet.inference.counts import (
    Counts,
    ReviewedCounts,
    held_apart,
    interval_text,
    per_volume_text,
)
from ctcnet.report.reasons import GUARD_FLAGS

# The counts table's columns: (key of Counts.to_dict / ReviewedCounts.to_dict, heading). The
# review page shows the same keys (review_page.html, renderSummary).
MODEL_COLUMNS = [("counted", "counted"), ("per_7_5_ml", "per 7.5 mL"),
                 ("per_7_5_ml_interval", "95 % blood-draw interval per 7.5 mL"),
                 ("held", "held by the guard"), ("review", "sent to review"),
                 ("confident", "not sent to review")]
REVIEWED_COLUMNS = [("confirmed", "confirmed"), ("confirmed_per_7_5_ml", "confirmed per 7.5 mL"),
                    ("after_review", "after review"),
                    ("after_review_per_7_5_ml", "after review per 7.5 mL"),
                    ("after_review_per_7_5_ml_interval",
                     "95 % blood-draw interval after review"),
                    ("decided", "calls decided")]


# What each column of the counts means, shown over its heading (a reader of the page alone has
# no docs beside it).
COLUMN_MEANINGS = {
    "counted": "The automatic count: the calls of this class the marker guard did not hold. "
               "Calls sent to review are counted until a person decides otherwise.",
    "per_7_5_ml": "The count over the blood whose frames were read, scaled to 7.5 mL.",
    "per_7_5_ml_interval": "The exact 95 % Poisson interval of that rate: the uncertainty of "
                           "sampling one tube of blood, not of the calls.",
    "held": "Calls of this class the marker guard held for a person (not counted): their "
            "markers disagree with the call.",
    "review": "Calls of this class, counted or held, on the review list: a person's "
              "decision could change a count.",
    "confident": "Calls of this class, counted or held, on no review list (with those sent "
                 "to review, every call of the class: counted plus held).",
    "confirmed": "Events a reviewer called this class: the class's calls confirmed, and "
                 "events of another call relabelled to it.",
    "confirmed_per_7_5_ml": "The confirmed events over the blood read, scaled to 7.5 mL.",
    "after_review": "The count with every review decision applied (relabelled events moved, "
                    "rejected ones left out).",
    "after_review_per_7_5_ml": "The count after review over the blood read, scaled to 7.5 mL "
                               "(the rate to report once signed off).",
    "after_review_per_7_5_ml_interval": "The exact 95 % Poisson interval of the rate after "
                                         "review (the count to report once signed off).",
    "decided": "Calls of this class a reviewer decided on."}


def _cell(value) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, list):  # an interval
        return interval_text(*value)
    return per_volume_text(value) if isinstance(value, float) else str(value)


def _class_cell(values: dict, name: str, no_result: bool) -> str:
    """A class's cell of one column: empty where the column has no figure for the class (per
    7.5 mL of an unreported class), '-' for a sample with no result."""
    if name not in values:
        return ""
    return "-" if no_result else _cell(values[name])


def held_text(tally: Counts) -> str:
    """The calls the guard held or flagged in a line: how many, by flag, and by call: those of
    a counted class (held from the count) apart from the others (flagged)."""
    # The flags in the words of the page's review line and the gallery's captions.
    flags = ", ".join(f"{GUARD_FLAGS.get(k, (k.replace('_', ' '),))[0]} {v}"
                      for k, v in tally.held_by_flag.items())
    # A counted class's call is held out of its count; another call the guard flags (debris
    # with a CTC's markers) is shown to a person, nothing held back: said apart, as the
    # console says them.
    parts = [flags] if flags else []
    for words, calls in zip(("held from the count", "flagged, not a counted call"),
                            held_apart(tally.held, tally.reported)):
        parts += [f"{words}: {named_counts(calls)}"] if calls else []
    return f"{tally.held_total}" + (f" ({'; '.join(parts)})" if tally.held_total else "")


def counts_table(tally: Counts, reviewed: ReviewedCounts | None, no_result: bool = False,
                 signed: bool = False, order_in_doubt: bool = False) -> str:
    """Per class the model's counts (and the reviewed ones, when there are decisions), then a
    row of the calls the guard held apart; cells carry ``data-class`` / ``data-col``.
    ``no_result``: a failed sample's, whose cells read '-' (its zeros are no count);
    ``signed``: a sign-off holds, so the span a review could still take the count over is no
    longer given (it told a signed-off sample's reader to wait "until the review is done");
    ``order_in_doubt``: the sample's channel order is in doubt, which no review decision
    corrects, so the span is not given either (it read as a range a review could settle)."""
    columns = MODEL_COLUMNS + (REVIEWED_COLUMNS if reviewed is not None else [])
    values = {**tally.to_dict(), **(reviewed.to_dict() if reviewed is not None else {})}
    head = "".join(f'<th scope="col" title="{html.escape(COLUMN_MEANINGS.get(key, ""))}">'
                   f"{html.escape(h)}</th>" if key in COLUMN_MEANINGS else
                   f'<th scope="col">{html.escape(h)}</th>' for key, h in columns)
    rows = [f'<tr><th scope="col">class</th>{head}</tr>']
    for name in tally.classes:
        # Per 7.5 mL is given for the reported classes only: the other cells stay empty.
        cells = "".join(f'<td data-col="{key}">{_class_cell(values[key], name, no_result)}</td>'
                        for key, _ in columns)
        rows.append(f'<tr data-class="{html.escape(name)}">'
                    f'<th scope="row">{html.escape(name)}</th>'
                    f"{cells}</tr>")
    rows.append(f'<tr data-row="held"><th scope="row">held or flagged by the guard</th>'
                f'<td colspan="{len(columns)}" data-col="held_total">'
                f"{'-' if no_result else html.escape(held_text(tally))}</td></tr>")
    rates = tally.review_span_per_7_5_ml
    span = ", ".join(f"{name} {low} to {high}" + (
        f" ({per_volume_text(rates[name][0])} to {per_volume_text(rates[name][1])} per "
        "7.5 mL)"
        if rates.get(name) and tally.blood_volume_ml != 7.5 else "")
        for name, (low, high) in tally.review_span.items() if high > low)
    # How far the count may move: a clinician's first question before anyone decided. Once
    # decisions are taken the after-review column says where it stands (the span, of the
    # calls as predict made them, could then read 8 to 9 beside an after-review 6).
    if order_in_doubt and not no_result:
        rows.append(f'<tr data-row="review_span"><th scope="row">the count after review</th>'
                    f'<td colspan="{len(columns)}">not what a review settles: the channel '
                    "order is in doubt (the problems below), and every count rests on it. "
                    "If the tiles show CK and CD45 swapped, correct panel.json, run this "
                    "sample again with --overwrite, then review; a sample rich in CTCs (a "
                    "spike-in) reads alike, and its counts then stand</td></tr>")
    elif span and not no_result and not signed and reviewed is None:
        rows.append(f'<tr data-row="review_span"><th scope="row">the count after review may be</th>'
                    f'<td colspan="{len(columns)}">{html.escape(span)} (from the calls on no '
                    "review list alone to those plus every listed event found to be one: "
                    "read the automatic count with this beside it until the review is "
                    "done)</td></tr>")
    if reviewed is not None:
        note = (f"{reviewed.reviewed} event(s) decided, {reviewed.rejected} rejected"
                + (f"; {reviewed.unattached} decision(s) count for no event of this run"
                   if reviewed.unattached else "") + f"; latest {utc_text(reviewed.updated)}")
        rows.append(f'<tr data-row="reviewed"><th scope="row">review decisions</th>'
                    f'<td colspan="{len(columns)}">{html.escape(note)}</td></tr>')
    # On paper a header's meaning (its tooltip on screen) is printed under the table.
    meanings = "".join(f"<dt>{html.escape(h)}</dt><dd>{html.escape(COLUMN_MEANINGS[key])}</dd>"
                       for key, h in columns if COLUMN_MEANINGS.get(key))
    return (f'<table id="counts">{"".join(rows)}</table>'
            + (f'<dl class="print-only" id="counts-meanings">{meanings}</dl>' if meanings
               else ""))
