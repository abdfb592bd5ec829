"""The dates of serial draws (``ctcnet draws``): read as ISO 8601 texts, and a note on a draw
given out of the order its date says, or dated the day of the draw before it (which was drawn
first cannot be told). Dates are compared as instants where both carry a time, zoned alike,
else by the day each is written on."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ctcnet.inference.serial_draws import Draw


def drawn_time(text: str | None) -> datetime | None:
    """A draw's date or time as an ISO 8601 text states it (``2026-04-19``, with a time, with
    an offset or ``Z``), as UTC where an offset is given; None where it is not such a text
    (a day-first ``19.04.2026`` is shown as written, never guessed at)."""
    try:
        when = datetime.fromisoformat(str(text).strip())
    except ValueError:
        return None
    return when.astimezone(UTC) if when.tzinfo else when


def say_dates_out_of_order(draws: list[Draw]) -> None:
    """A note on each draw dated before the draw given before it (the changes are computed
    in the order given: a shell's wildcard lists WK12 before WK3, so a fall would read as a
    rise), or dated the same day or time as it (which came first cannot be told). Compared as
    instants where both carry a time, zoned alike, else by the day each is written on."""
    read = [(d, drawn_time(d.drawn_at)) for d in draws]
    dated = [(d, t) for d, t in read if t is not None]
    for draw, when in read:  # its order against the other draws unchecked, said
        if when is None and draw.drawn_at and len(draws) > 1:
            # An ISO form of a day no calendar has (2026-02-30) is said as such, not as another
            # form.
            form = ("is no date (an ISO 8601 form of a day no calendar has)"
                    if re.fullmatch(r"\d{4}-\d{2}-\d{2}([T ].*)?", str(draw.drawn_at).strip())
                    else "is not ISO 8601 (a date written as YYYY-MM-DD)")
            draw.notes.append(f"its date {draw.drawn_at!r} {form}: its order against the "
                              "other draws is not checked")
    mixed = len({t.tzinfo is None for _, t in dated}) > 1
    # Zoned draws are held to each other by the instant as well (one date without a time
    # among them took the check to days, and two zoned draws out of order by hours passed).
    zoned = [(d, t) for d, t in dated if t.tzinfo is not None] if mixed else []
    if mixed:
        # A time without a zone among zoned ones is checked by its day alone, said.
        for draw, when in dated:
            if when.tzinfo is None and _has_time(draw):
                draw.notes.append(f"its time {draw.drawn_at!r} has no time zone, other "
                                  "draws' have: its order against them is checked by the day "
                                  "alone")
    for pairs in (zip(dated, dated[1:]), zip(zoned, zoned[1:])):
        for (before, t0), (draw, t1) in pairs:
            # By the instant where both carry a time, zoned alike; else by the day each is
            # written on (a draw at 23:30 -05:00 is that day's, not the next UTC day's; a day
            # alone is no midnight: it was read as drawn before that day's 10:00).
            by_instant = _has_time(before) and _has_time(draw) and \
                (t0.tzinfo is None) == (t1.tzinfo is None)
            first, second = (t0, t1) if by_instant else (_day(before), _day(draw))
            if second < first:
                note = (f"drawn before draw {before.draw} ({before.drawn_at}), given after it: "
                        "the changes are read in the order given; give the draws in the order "
                        "drawn")
            elif second == first:
                note = (f"dated the {'time' if by_instant else 'day'} of draw {before.draw} "
                        f"({before.drawn_at}): which was drawn first, and so the change "
                        "between them, cannot be told from the dates (one tube given twice, "
                        "or a date mistyped?)")
            else:
                continue
            if note not in draw.notes:
                draw.notes.append(note)


def _has_time(draw: Draw) -> bool:
    """Whether a draw's date is written with a time of day (``2026-03-01T10:00``)."""
    return "T" in str(draw.drawn_at).strip().upper().replace(" ", "T")


def _day(draw: Draw):
    """The day a draw's date is written on (its own zone's, not UTC's)."""
    return datetime.fromisoformat(str(draw.drawn_at).strip()).date()
