"""A sample's sign-off: "reviewed by, on", recorded when a reviewer declares the sample's
review done, and shown beside the model's and the reviewed counts in summary.json, index.html,
the review page and ``ctcnet crops``.

``RESULTS/<sample>/signoff.json`` (written atomically) holds the latest sign-off, and
``signoff_history.jsonl`` every sign-off in order (appended, never rewritten): who, when,
the run it was of, how many decisions counted and how many candidates were left undecided,
the reviewed counts per 7.5 mL it signed and the automatic ones the review started from, what
the decisions changed (``changed``: each call overturned, by event), the agreement with a second
reading if there was one, and how many lines review.csv held then. Its words are
:mod:`ctcnet.review.signoff_words`'. A sign-off holds for the decisions it covered: the
journal only grows, so once a decision is made, changed or taken back (a line appended) it
reads "changed since"; once the same decisions add up to other counts per 7.5 mL than those
signed (the blood volume in cartridge.json corrected, frames read that were not) it reads
"counts changed since"; and after predict ran again (another ``run_id``, or the same events
with other calls: another rule or prior) it reads "calls changed since": it was of the calls
before (shown so, not dropped, which read as a sample never signed off).

A sign-off also does not hold once its record was changed other than by ctcnet ("edited
since"): signoff.json must be the last line of the history; review.csv and review-second.csv
must still begin with the bytes they held when it was made (``journals``: their sizes and
SHA-256 then) and with those ctcnet last wrote (:mod:`ctcnet.review.journal_seal`: a journal
cut back to what the sign-off saw is told), and hold no decision added since that is dated
before it. It reads "model changed since" once another model file made the calls, the same
calls or other ones. These checks find edits by hand and files copied from another folder;
anyone who may write the folder can still rewrite every record and seal consistently, which
only the file system's permissions (or write-once storage) prevent.

A signoff.json that is not a sign-off (cut short, not JSON, a list, a field of the wrong type)
is said in one warning naming the file and read as no sign-off, by ``ctcnet review``,
``ctcnet crops --reviewed`` and ``ctcnet predict`` alike: the decisions stand without it, and
signing the sample off again on the review page writes a good file over it.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from pathlib import Path

from ctcnet.core.json_text import strict_loads
from ctcnet.core.said_once import first_time
from ctcnet.errors import is_resource_error
from ctcnet.io.atomic import append_synced, atomic_write_text
from ctcnet.io.cartridge_info import record_changes
from ctcnet.io.digests import file_sha256_cached
from ctcnet.review.decisions import second_reading_rows
from ctcnet.review.journal_seal import (
    changed_since,
    check_as_sealed,
    last_seal,
    seal_of,
    write_seal,
)
from ctcnet.review.signoff_fields import check_signoff

log = logging.getLogger(__name__)

SIGNOFF_FILE = "signoff.json"
HISTORY_FILE = "signoff_history.jsonl"
CURRENT, CHANGED = "current", "changed since"
# The decisions stand as signed, but the counts per 7.5 mL they add up to moved: the blood
# volume in cartridge.json was corrected, or frames were read that were not before.
COUNTS_CHANGED = "counts changed since"
# The record is not as ctcnet left it: signoff.json is not the history's last sign-off, or a
# journal's lines as signed were changed (edited by hand, or copied from another folder).
EDITED = "edited since"
# Another model file made the calls since (their figures may be the same).
MODEL_CHANGED = "model changed since"
# cartridge.json's own record of the sample (its patient, when it was drawn, a lab's keys)
# reads otherwise than when it was signed: a corrected patient id moved the result to another
# patient.
RECORD_CHANGED = "sample record changed since"
# predict made other calls since (frames read again, another rule or prior): shown so, not
# dropped (a LIMS read a withdrawn sign-off as a sample never reviewed).
CALLS_CHANGED = "calls changed since"
# signoff_record's ``cartridge_info`` when the caller does not check it.
UNCHECKED = object()


@dataclass(frozen=True)
class SignOff:
    """One sign-off of a sample (see the module's notes)."""

    reviewer: str
    signed_at: str                    # ISO 8601, UTC
    run_id: str
    cartridge_id: str | None
    decided: int                      # events with a decision that counts
    unreviewed: int                   # candidates left undecided
    after_review_per_7_5_ml: dict     # the reviewed counts signed
    journal_rows: int                 # review.csv's lines (decisions and take-backs) then
    second_reading: dict | None = None  # agreement with a second reader, when there was one
    calls_id: str | None = None       # the calls it was made on (none: an older sign-off)
    second_journal_rows: int | None = None  # review-second.csv's lines then (none: older)
    # What was signed beyond the counts (none: an older sign-off): the sample's status (a
    # partial scan's rates are estimates), the blood volume its rates are of, and the model
    # file that made the calls.
    sample_status: str | None = None
    blood_volume_read_ml: float | None = None
    model_sha256: str | None = None
    # The decision journals as signed, file name -> {"bytes", "sha256"} (none: an older
    # sign-off): they only grow, so their first bytes must stay these.
    journals: dict | None = None
    # Of the candidates left undecided, the calls the marker guard held (none: older).
    held_undecided: int | None = None
    note: str | None = None  # the reviewer's own words on it (none: none given)
    # The events table signed, as summary.json records it (none: an older sign-off): what
    # ties the record to its table for a reader without ctcnet.
    events_sha256: str | None = None
    # The network that made the calls (run_fingerprint's model_sha256: a checkpoint and its
    # fp32 ONNX export are one; none: an older sign-off).
    network_sha256: str | None = None
    # When the counts signed were made (summary.json's counted_at then; none: older): a run
    # since has made another table.
    counted_at: float | None = None
    # Who made the decisions that count, reviewer -> how many (none: an older sign-off): the
    # signer vouches for them, but need not be the one who made each.
    decided_by: dict | None = None
    # The 95 % blood-draw interval of each figure signed, class -> [low, high] or None (none:
    # an older sign-off): what the headline reports beside each figure, kept as signed.
    after_review_per_7_5_ml_interval: dict | None = None
    # The automatic figures the review started from, reported class -> per 7.5 mL (none: an
    # older sign-off), and what the decisions that count changed, "model call -> decision" ->
    # event ids (a decision that confirms the call changes nothing): the record says what the
    # review did, not only where it ended.
    automatic_per_7_5_ml: dict | None = None
    changed: dict | None = None
    # cartridge.json's keys ctcnet does not read as signed (summary.json's cartridge_info:
    # the patient, the draw's date, a lab's own keys; {} where it had none; none: an older
    # sign-off): what the signature vouches the result is of.
    cartridge_info: dict | None = None

    def to_dict(self) -> dict:
        """The sign-off as plain data."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> SignOff:
        """Read a sign-off back from :meth:`to_dict`'s output (unknown keys left out)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def read_signoff(folder: str | Path) -> SignOff | None:
    """The sample's latest sign-off: signoff.json's; where that is gone or cannot be read or
    is not a sign-off (:func:`check_signoff`, said in one warning naming it), the last one
    signoff_history.jsonl records (whose check then says signoff.json is not as ctcnet left
    it: :func:`edited_since`); None where neither holds one."""
    signed = _signoff_file(Path(folder), warn=True)
    return signed if signed is not None else _last_in_history(Path(folder))


def _signoff_file(folder: Path, warn: bool = False) -> SignOff | None:
    """signoff.json's sign-off; None where it is gone, or (said with ``warn``) cannot be read
    or is not a sign-off."""
    path = folder / SIGNOFF_FILE
    try:
        data = strict_loads(path.read_text(encoding="utf-8"))
        return SignOff.from_dict(check_signoff(data))
    except FileNotFoundError:
        return None
    # UnicodeDecodeError is a ValueError; RecursionError: JSON nested thousands deep
    except (OSError, ValueError, TypeError, RecursionError) as err:
        if is_resource_error(err):
            raise  # the machine's (open files, memory): no sign-off to read as damaged
        if warn:
            _warn_once(path, err)
        return None


def _warn_once(path: Path, err: Exception) -> None:
    # The review server reads the sign-off on every decision: one warning per damaged file
    # (until it changes), not one per request.
    try:
        seen = path.stat()
        key = (str(path), seen.st_mtime_ns, seen.st_size)
    except OSError:
        key = (str(path), None, None)
    if not first_time(__name__, *key):
        return
    log.warning("%s: cannot read the sign-off (%s); until it is signed off again, the "
                "sign-off shown is the last %s records, marked edited since (with none "
                "there, the sample reads as not signed off)", path, err, HISTORY_FILE)


def write_signoff(folder: str | Path, signoff: SignOff) -> None:
    """Write the sign-off into the sample's folder, atomically, and append it to the
    sample's sign-off history (:data:`HISTORY_FILE`: every sign-off, in order, each on one
    line; a later one replaces the earlier in signoff.json, never in the history)."""
    line = json.dumps(signoff.to_dict(), separators=(",", ":")) + "\n"
    # Sealed as a journal is: a history edited by hand (a reviewer's name written over in
    # it, signoff.json and summary.json's copy alike) took no sign-off and read intact.
    check_as_sealed(Path(folder) / HISTORY_FILE)
    earlier = _signoff_file(Path(folder))
    if earlier is not None and before_history(folder, earlier):
        # The sign-off an earlier ctcnet made, which kept no history: its first line, so
        # that signing again leaves who signed the result reported before, and when.
        line = json.dumps(earlier.to_dict(), separators=(",", ":")) + "\n" + line
    # fsync'd: kept before the sign-off it records is shown
    append_synced(Path(folder) / HISTORY_FILE, line.encode("utf-8"))
    write_seal(Path(folder) / HISTORY_FILE)
    atomic_write_text(Path(folder) / SIGNOFF_FILE,
                      json.dumps(signoff.to_dict(), indent=2) + "\n")


def journal_seal(folder: str | Path, names) -> dict:
    """The journals ``names`` of ``folder`` as a sign-off records them (those there): each
    one's size and SHA-256."""
    seals = {name: seal_of(Path(folder) / name) for name in names}
    return {name: seal for name, seal in seals.items() if seal is not None}


def before_history(folder: str | Path, signoff: SignOff) -> bool:
    """Whether ``signoff`` was made by a ctcnet that kept no sign-off history: none there (nor
    its seal), and the sign-off lacks every field that came after the history (the sample's
    status, the journals' seals). Read as not checked, not as edited by hand: every such
    sign-off of an archive read "written by hand" after an upgrade."""
    folder = Path(folder)
    return (signoff.sample_status is None and signoff.journals is None
            and not (folder / HISTORY_FILE).exists()
            and not (folder / f".{HISTORY_FILE}.seal").exists())


def copy_in_history(folder: str | Path, copy) -> bool | None:
    """Whether a summary.json's copy of a sign-off (``copy``: its reviewer and time) is one
    the sample's history records; None where there is no history to ask (an earlier
    ctcnet's, or no copy): a copy whose reviewer was written over by hand was written again
    from the record without a trace."""
    if not isinstance(copy, dict) or not copy.get("signed_at"):
        return None
    try:  # (a line of other bytes is a line not read, as one not JSON)
        lines = (Path(folder) / HISTORY_FILE).read_text(encoding="utf-8",
                                                        errors="replace").splitlines()
    except OSError:
        return None
    signed = set()
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            signed.add((record.get("reviewer"), record.get("signed_at")))
    return (copy.get("reviewer"), copy.get("signed_at")) in signed


def _last_in_history(folder: Path) -> SignOff | None:
    try:
        lines = (folder / HISTORY_FILE).read_text(encoding="utf-8").splitlines()
        return SignOff.from_dict(json.loads(next(line for line in reversed(lines)
                                                 if line.strip())))
    except (OSError, ValueError, TypeError, StopIteration) as err:
        if is_resource_error(err):
            raise
        return None


def edited_since(folder: str | Path, signoff: SignOff) -> str | None:
    """Why the sign-off's record is not as ctcnet left it, in words; None when it is: the
    history's last sign-off is this one, each journal it sealed begins as it did and as
    ctcnet last wrote it (:mod:`ctcnet.review.journal_seal`), and no decision added since is
    dated before it."""
    folder = Path(folder)
    if _signoff_file(folder) != signoff:  # the history's, shown for a file lost or damaged
        state = "is missing (lost in a copy?)" if not (folder / SIGNOFF_FILE).exists() \
            else "cannot be read"
        return (f"{SIGNOFF_FILE} {state}: the sign-off shown is the last {HISTORY_FILE} "
                f"records, by {signoff.reviewer} on {signoff.signed_at}")
    sealed = last_seal(folder / HISTORY_FILE)
    if sealed is not None and changed_since(folder / HISTORY_FILE, sealed):
        return (f"{HISTORY_FILE} no longer holds what ctcnet wrote to it: lines changed or "
                "removed, not appended to (edited by hand?)")
    last = _last_in_history(folder)
    if last != signoff and not before_history(folder, signoff):
        recorded = (f"; the history's last is by {last.reviewer} on {last.signed_at}"
                    if last is not None else f"; {HISTORY_FILE} holds none")
        return (f"{SIGNOFF_FILE} (by {signoff.reviewer}) is not the last sign-off "
                f"{HISTORY_FILE} records (written by hand, or copied from another "
                f"folder){recorded}")
    table = _table_not_signed(folder, signoff)
    if table:
        return table
    if signoff.journals is None and (signoff.held_undecided is not None or signoff.note):
        # The fields came together: a sign-off of a ctcnet that seals its journals, unsealed.
        return f"{SIGNOFF_FILE} holds no seal of the journals it signed (its seal removed)"
    for name, sealed in (signoff.journals or {}).items():
        path = folder / name
        latest = last_seal(path)
        if changed_since(path, sealed) or (latest is not None and changed_since(path, latest)):
            return (f"{name} no longer holds what ctcnet wrote to it: lines changed or removed, "
                    "not appended to (edited by hand?)")
        early = _dated_before(path, sealed["bytes"], signoff.signed_at)
        if early:
            return (f"{name} holds {early} decision(s) added after the sign-off but dated "
                    f"before it ({signoff.signed_at}), or not dated as ctcnet dates them: "
                    "added by hand?")
    return None


def _table_not_signed(folder: Path, signoff: SignOff) -> str | None:
    """Why events.parquet is not the table the sign-off signed while no predict run has
    made another since (summary.json's counts those the sign-off signed, ``counted_at``): a
    table changed, its summary's digest made to match; None where it is, or where a run
    since made it."""
    table = folder / "events.parquet"
    if not signoff.events_sha256 or signoff.counted_at is None or not table.is_file():
        return None
    try:
        counted = json.loads((folder / "summary.json").read_text(
            encoding="utf-8")).get("counted_at")
    except (OSError, ValueError):
        return None
    if counted != signoff.counted_at or file_sha256_cached(table) == signoff.events_sha256:
        return None
    return ("events.parquet is not the table signed (its SHA-256 is not the sign-off's "
            "events_sha256), and no predict run made another since: changed by hand?")


def unsealed_journals(folder: str | Path, signoff: SignOff) -> list[str]:
    """The journals the sign-off sealed whose seal file (``.<journal>.seal``) is gone, and
    the sign-off history where its seal is (a sign-off that seals its journals seals it too:
    without it, a name written over in every record reads as checked)."""
    names = [*(signoff.journals or {}), *([HISTORY_FILE] if signoff.journals is not None
                                          else [])]
    return [name for name in names
            if (Path(folder) / name).exists() and last_seal(Path(folder) / name) is None]


def _dated_before(path: Path, start: int, when: str) -> int:
    """The decisions appended to the journal after its first ``start`` bytes whose time is
    before ``when`` (ISO 8601), or is none ctcnet writes (missing, unreadable, without its
    UTC offset); 0 where none, or where the journal has no time column."""
    try:
        with open(path, "rb") as fh:
            header = fh.readline().decode("utf-8", "replace").strip().split(",")
            fh.seek(start)
            tail = fh.read().decode("utf-8", "replace")
        signed = datetime.fromisoformat(when)
    except (OSError, ValueError):
        return 0
    if "time" not in header:
        return 0
    column, early = header.index("time"), 0
    for row in csv.reader(io.StringIO(tail)):
        if not row:
            continue
        try:
            at = datetime.fromisoformat(row[column])
            early += at.tzinfo is None or at < signed
        except (IndexError, ValueError, TypeError):
            early += 1
    return early


def signoff_record(signoff: SignOff | None, run_id: str, journal_rows: int,
                   calls_id: str | None = None,
                   per_7_5_ml: dict | None = None,
                   second_rows: int | None = None, folder: str | Path | None = None,
                   model_sha256: str | None = None,
                   network_sha256: str | None = None,
                   decided: int | None = None, cartridge_info=UNCHECKED) -> dict | None:
    """What summary.json, index.html and the page show of ``signoff`` for the run ``run_id``
    (with the calls ``calls_id``) whose review.csv now holds ``journal_rows`` lines (and
    review-second.csv ``second_rows``, where known), whose
    reviewed counts per 7.5 mL are now ``per_7_5_ml`` (None: not checked) and whose calls
    the model file of digest ``model_sha256`` made (None: not checked), of the network
    ``network_sha256`` (a checkpoint's fp32 ONNX export is the same network, and a sign-off
    of its calls holds for the checkpoint's same calls), and whose decisions that count are
    now ``decided`` (None: not checked; fewer than signed where one no longer attaches to
    its cell, a frame changed since), and whose cartridge.json record is now
    ``cartridge_info`` (summary.json's; not checked unless given): the sign-off with
    its ``status`` (``current``; ``edited since`` when its record in ``folder`` is not as
    ctcnet left it, with the ``problem``; ``model changed since``; ``sample record changed
    since`` with the ``record_changed`` keys; ``changed since`` once
    decisions moved on; ``counts changed since`` once the same decisions add up to other
    figures than those signed; ``calls changed since`` for another run or other calls, but
    ``model changed since`` where another model file made them);
    None without one."""
    if signoff is None:
        return None
    same_network = bool(signoff.network_sha256) and signoff.network_sha256 == network_sha256
    model_changed = bool(signoff.model_sha256 and model_sha256 and
                         signoff.model_sha256 != model_sha256 and not same_network)
    if signoff.run_id != run_id:  # other events (another model's can be: a new numbering)
        return {**signoff.to_dict(), "status": MODEL_CHANGED if model_changed else CALLS_CHANGED}
    # Before the calls are compared: a table changed by hand has other calls too.
    problem = edited_since(folder, signoff) if folder is not None else None
    if problem:
        return {**signoff.to_dict(), "status": EDITED, "problem": problem}
    if signoff.calls_id is not None and calls_id is not None and signoff.calls_id != calls_id:
        # Other calls by another model file are said as the model's change (above too): what
        # a reader acts on (another model's calls to check), as for the same calls.
        return {**signoff.to_dict(), "status": MODEL_CHANGED if model_changed else CALLS_CHANGED}
    unsealed = unsealed_journals(folder, signoff) if folder is not None else []
    # Said, not a status: an archive that dropped hidden files holds a valid record.
    # (a sign-off older than its automatic figures: its ctcnet may have sealed no history)
    why = "made by an earlier ctcnet, which sealed no sign-off history, or a copy or " \
        "archive without hidden files" if unsealed == [HISTORY_FILE] and \
        signoff.automatic_per_7_5_ml is None else "a copy or archive without hidden files?"
    note = {"unchecked": f"the seal of {', '.join(unsealed)} is missing ({why}): a journal "
                         "cut back to the lines the sign-off saw, or a sign-off rewritten in "
                         "every record, cannot be told"
            } if unsealed else {"unchecked": "made by an earlier ctcnet, which kept no "
                                "sign-off history nor seals: its record is not checked "
                                "against them"} if folder is not None and before_history(
                                    folder, signoff) else {}
    if model_changed:
        return {**signoff.to_dict(), "status": MODEL_CHANGED, **note}
    moved = record_moved(signoff.cartridge_info, cartridge_info)
    if moved:
        return {**signoff.to_dict(), "status": RECORD_CHANGED, "record_changed": moved, **note}
    # A decision of either reading since (the second's move the agreement it recorded).
    second_moved = (signoff.second_journal_rows is not None and second_rows is not None
                    and signoff.second_journal_rows != second_rows)
    status = CURRENT if signoff.journal_rows == journal_rows and not second_moved and (
        decided is None or decided == signoff.decided) else CHANGED
    if status == CURRENT and per_7_5_ml is not None and \
            not same_figures(signoff.after_review_per_7_5_ml, per_7_5_ml):
        status = COUNTS_CHANGED
    return {**signoff.to_dict(), "status": status, **note}


def record_moved(signed: dict | None, now) -> list[str]:
    """The keys of cartridge.json's record that read otherwise now than as signed (``now``:
    summary.json's ``cartridge_info``; :data:`UNCHECKED` or an older sign-off: none)."""
    if signed is None or now is UNCHECKED:
        return []
    return record_changes(signed, now if isinstance(now, dict) else {})


def signoff_in(folder: str | Path, run, matched, per_7_5_ml: dict | None,
               model_sha256: str | None, network_sha256: str | None = None,
               cartridge_info=UNCHECKED) -> tuple[SignOff | None, dict | None]:
    """The sample folder's sign-off and the record of it as it holds now for ``run`` (a
    :class:`~ctcnet.review.runs.RunEvents`), its review journal ``matched`` to it and its
    second reading's, checked against its record in ``folder``, as :func:`signoff_record`
    does: what a command without the review server reports."""
    signed = read_signoff(folder)
    return signed, signoff_record(signed, run.run_id, len(matched.table), run.calls_id,
                                  per_7_5_ml, second_reading_rows(folder, run), folder,
                                  model_sha256, network_sha256, matched.n_decisions,
                                  cartridge_info)


def same_figures(signed: dict, now: dict) -> bool:
    """Whether two sets of counts per 7.5 mL are the same figures (up to JSON's rounding)."""
    if set(signed) != set(now):
        return False
    for name, value in signed.items():
        other = now[name]
        if (value is None) != (other is None):
            return False
        if value is not None and not math.isclose(value, other, rel_tol=1e-9, abs_tol=1e-9):
            return False
    return True
