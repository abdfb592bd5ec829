"""What a review request may say, checked: a decision (one event or a grid page of them), the
reviewer's name and note as they are recorded (one line, never a spreadsheet formula), the run
it was made for and which reading it is of. Each malformed request is refused with the form
it should have had."""

from __future__ import annotations

import json

from ctcnet.core.json_text import strict_loads
from ctcnet.core.printable import spreadsheet_cell
from ctcnet.errors import InputError

# The calls a decision request may make besides a class name; "undecided" takes a decision back.
CONFIRM, REJECT, UNDECIDED = "confirm", "reject", "undecided"
DECISION_FORM = ('a decision is {"event_id": N, "call": "confirm" | "reject" | "undecided" | '
                 'CLASS, "reviewer": NAME, "run_id": RUN, "reading": "first" | "second", '
                 '"was": the decision read (null: undecided; optional: without it the last '
                 'decision wins)}')
BATCH_FORM = ('decisions at once are {"event_ids": [N, ...], "call": "confirm" | "reject" | '
              'CLASS, "reviewer": NAME, "run_id": RUN, "reading": "first" | "second", '
              '"undecided_only": true (optional: leave events decided meanwhile as they are)}')
MAX_EVENT_ID = 2 ** 63 - 1  # event ids are int64
MAX_BATCH = 500   # events decided in one request (a grid page holds 100)
FIRST, SECOND = "first", "second"


# The keys each request may carry: another is refused by name, not dropped (a "note" sent with
# an adjudication was answered 200 and recorded nowhere; a sign-off's "reading" ignored).
DECISION_KEYS = {"event_id", "call", "reviewer", "run_id", "reading", "was"}
BATCH_KEYS = {"event_ids", "call", "reviewer", "run_id", "reading", "undecided_only"}
SIGNOFF_KEYS = {"reviewer", "run_id", "stamp", "note", "second_stamp", "signed_seen"}


def _known_keys(body: dict, keys: set[str], what: str) -> None:
    """Refuse a request carrying a key its form has not, naming it."""
    other = sorted(set(body) - keys)
    if other:
        why = ("; a decision carries no note (a sign-off's note says why calls are signed as "
               "they stand)" if "note" in other else "") + (
            "; a sign-off is the first reading's alone" if "reading" in other else "")
        raise InputError(f"{what} has no {', '.join(map(repr, other))}{why}")


def _event_id(value) -> int:
    """An event id of a request: a JSON integer. ``true`` (a bool is an int in Python) and
    ``2.9`` (a float) name no event, and are refused rather than rounded to one."""
    if type(value) is not int or not 0 <= value <= MAX_EVENT_ID:
        raise InputError(f"event_id must be a whole number of 0 or more, not "
                         f"{json.dumps(value)[:40]}")
    return value


def _common_fields(body) -> tuple[str, str | None, str, str]:
    """(call, reviewer, run id, reading) of a decision request."""
    call = body.get("call")
    if not isinstance(call, str) or not call:
        raise InputError("call must be a string")
    reviewer, run_id = reviewer_and_run(body)
    if run_id is None:  # a rerun of predict renumbers events: a bare number may name another
        raise InputError("run_id must name the run whose event numbers the request uses (the "
                         "state's run_id; the review page sends the one it shows)")
    return call, reviewer, run_id, parse_reading(body.get("reading"))


def reviewer_and_run(body) -> tuple[str | None, str | None]:
    """(reviewer, run id) of a decision or sign-off request, each a string or absent."""
    reviewer, run_id = body.get("reviewer"), body.get("run_id")
    if reviewer is not None and not isinstance(reviewer, str):
        raise InputError("reviewer must be a string")
    if run_id is not None and not isinstance(run_id, str):
        raise InputError("run_id must be a string")
    return reviewer, run_id


SIGNOFF_FORM = ('a sign-off is {"reviewer": NAME, "run_id": RUN, "stamp": STAMP, "note": '
                'TEXT, "second_stamp": STAMP, "signed_seen": SIGNED}: the run and the '
                'decisions it signs (the run_id and stamp of the state the signer read, where '
                'a second reading was made the second_stamp of the agreement read, and where '
                'the state showed a sign-off its signed_seen; the review page sends those it '
                'shows), the note needed where counted or held calls are left undecided')


def parse_signoff(body) -> tuple[str | None, str, str, str | None]:
    """(reviewer, run id, stamp, note) of a sign-off request: a signature names what it
    signs, the run the reviewer saw and the decisions as they read them (the journal's stamp
    then), so that decisions recorded meanwhile, by another page or script, are not signed
    unseen. InputError when malformed."""
    if not isinstance(body, dict):
        raise InputError(SIGNOFF_FORM)
    try:
        _known_keys(body, SIGNOFF_KEYS, "a sign-off")
    except InputError as err:
        raise InputError(f"{err}; {SIGNOFF_FORM}") from None
    reviewer, run_id = reviewer_and_run(body)
    stamp, note = body.get("stamp"), body.get("note")
    if run_id is None or not isinstance(stamp, str):
        raise InputError(SIGNOFF_FORM)
    if note is not None and not isinstance(note, str):
        raise InputError("note must be a string")
    if not isinstance(body.get("second_stamp") or "", str):  # (null: none read)
        raise InputError("second_stamp must be a string (the agreement's) or null")
    return reviewer, run_id, stamp, note


# The longest reviewer name and sign-off note kept: audit records, refused past it rather
# than cut short without a word (a name cut at 64 characters read as another's).
REVIEWER_CHARS, NOTE_CHARS = 64, 500


def reviewer_name(given: str | None, default: str, reading: str = FIRST) -> str:
    """The name a decision or sign-off of ``reading`` is recorded under: the one given, its
    control characters (a newline would split review.csv's line for line-based tools) made
    spaces, a leading ``= + - @`` kept from a spreadsheet's formulas by a ``'``, at most
    :data:`REVIEWER_CHARS` (BadRequest past it); the server's ``--reviewer`` where none is
    given, but for a second reading (BadRequest): the server's name is usually the first
    reader's, and a second reader's decisions filed under it were theirs in neither reading."""
    name = one_line(given, REVIEWER_CHARS, "the reviewer's name")
    if given and given.strip() and not name:
        # Given, but nothing a person can read (a zero-width space, a bell): filed under the
        # server's account, a sign-off was pinned on whoever ran the server.
        raise BadRequest("the reviewer's name holds no character that can be shown: type the "
                         "name, or send none for the server's --reviewer")
    if not name and reading == SECOND:
        raise BadRequest("a second reading's decision needs its reader's own name (the "
                         "page's reviewer box, a request's \"reviewer\"): the server's "
                         "--reviewer is not taken for it")
    return name or default


def one_line(given: str | None, limit: int, what: str = "the note") -> str:
    """Free text as one line: control characters made spaces, a leading ``= + - @`` kept from
    a spreadsheet's formulas by a ``'`` (a file opened in Excel); BadRequest past ``limit``
    characters (``what``: the text, named)."""
    text = " ".join("".join(ch if ch.isprintable() else " " for ch in given or "").split())
    text = spreadsheet_cell(text)
    if len(text) > limit:
        raise BadRequest(f"{what} is {len(text)} characters, over the {limit} kept: shorten it")
    return text


class BadRequest(InputError):
    """A request malformed in its address (a query value no route takes): 400 on a GET too,
    where an InputError is a problem of the results (409)."""


def parse_reading(value) -> str:
    """Which reading a request is of: the first (counted) unless it says ``second``."""
    if value is None or value == FIRST:
        return FIRST
    if value == SECOND:
        return SECOND
    raise BadRequest(f"reading must be {FIRST!r} or {SECOND!r}, not {json.dumps(value)[:40]}")


def parse_decision(body) -> tuple[int, str, str | None, str, str]:
    """(event id, call, reviewer, run id, reading) of a decision request; InputError when
    malformed."""
    if not isinstance(body, dict):
        raise InputError(DECISION_FORM)
    try:
        _known_keys(body, DECISION_KEYS, "a decision")
        event_id = _event_id(body.get("event_id"))
        return (event_id, *_common_fields(body))
    except InputError as err:
        raise InputError(f"{err}; {DECISION_FORM}") from None


def shown_decision(body: dict, decisions, absent, decided):
    """The decision a request says its page showed (``"was"``): ``absent`` where it says none,
    else null (undecided), one of ``decisions``, or the event's decision as it stands
    (``decided()``: one made under another model's classes, which the page shows as it is);
    InputError otherwise (a word no decision is would never match: a 409 "read again" that a
    script retries for ever)."""
    was = body.get("was", absent)
    if was is not absent and was is not None and was not in decisions and \
            (not isinstance(was, str) or was != decided()):
        raise InputError(f"was must be the decision the page showed: one of "
                         f"{', '.join(map(repr, decisions))} or null, not "
                         f"{json.dumps(was)[:40]}")
    return was


def parse_batch(body) -> tuple[list[int], str, str | None, str, str]:
    """(event ids, call, reviewer, run id, reading) of a request deciding several events at
    once (a grid's page); InputError when malformed, repeated or too many."""
    if not isinstance(body, dict) or not isinstance(body.get("event_ids"), list):
        raise InputError(BATCH_FORM)
    try:
        _known_keys(body, BATCH_KEYS, "decisions at once")
        ids = [_event_id(v) for v in body["event_ids"]]
        fields = _common_fields(body)
    except InputError as err:
        raise InputError(f"{err}; {BATCH_FORM}") from None
    if not 0 < len(ids) <= MAX_BATCH or len(set(ids)) != len(ids):
        raise InputError(f"event_ids must name 1 to {MAX_BATCH} events, each once")
    if fields[0] == UNDECIDED:
        raise InputError("decisions are taken back one at a time")
    if not isinstance(body.get("undecided_only", False), bool):
        # ("true" or 1 read as false: another reviewer's decisions written over, unsaid)
        raise InputError(f"undecided_only must be true or false; {BATCH_FORM}")
    return (ids, *fields)


def saved_text(sample: str, what: str, body: dict, default_reviewer: str) -> str:
    """A saved request as the review's log says it: who, which reading, and what (the event
    and call, a batch's events, a sign-off's note); an audit read only "decision saved by"."""
    reviewer = one_line(body.get("reviewer"), REVIEWER_CHARS) or default_reviewer
    reading = body.get("reading") or FIRST
    if what == "decision":
        detail = f"event {body.get('event_id')}: {body.get('call')}"
    elif what == "decisions":
        ids = [str(e) for e in body.get("event_ids") or []]
        detail = (f"{len(ids)} events: {body.get('call')} ({', '.join(ids[:20])}"
                  f"{', ...' if len(ids) > 20 else ''})")
    else:
        note = one_line(body.get("note"), NOTE_CHARS)
        detail = f'note "{note}"' if note else "no note"
    return f"{sample}: {what} saved by {reviewer} ({reading} reading): {detail}"


def _no_repeated_keys(pairs: list) -> dict:
    keys = [k for k, _ in pairs]
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:  # {"call": "confirm", "call": "reject"} was recorded as the last, unsaid
        raise ValueError(f"the key(s) {', '.join(map(repr, repeated))} given more than once")
    return dict(pairs)


def parse_json(raw: bytes):
    """A request body as JSON; NaN and Infinity (which Python's parser takes) are refused, and
    so is a key given twice in one object (which it takes as the last)."""
    return strict_loads(raw, object_pairs_hook=_no_repeated_keys)
