"""Text from outside (file and folder names, metadata values) as a console or a log file shows
it: control characters escaped. A frame named with ``ESC [2J`` cleared an operator's terminal
as predict warned about it, and stayed in the run's log to do it again when read; a bidi
override would show a name other than the file's. Line breaks and tabs are kept (a message's
own layout). And counts by name as a person reads them (:func:`named_counts`), and a CSV
cell a spreadsheet does not run as a formula (:func:`spreadsheet_cell`), an ISO 8601 time
in the form every page and report line gives times (:func:`utc_text`), and a stated level or
confidence as a percentage that says what it is (:func:`stated_percent`)."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime

# Bidi embeddings, overrides and isolates: they reorder what follows them on screen.
_BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
# Lone surrogates: the bytes of a file name that is not UTF-8, as Python decodes it
# (surrogateescape); no UTF-8 file or terminal takes them.
_UNSAFE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f" + _BIDI + "\ud800-\udfff]")


def _escaped(char: str) -> str:
    """One unsafe character as an escape: a name's undecodable byte as that byte (``\\xe9``)."""
    if 0xDC80 <= ord(char) <= 0xDCFF:
        return f"\\x{ord(char) - 0xDC00:02x}"
    return char.encode("unicode_escape", "backslashreplace").decode("ascii")


def printable(text: str) -> str:
    """``text`` with control characters (but line breaks and tabs) and bidi controls written
    as escapes (``\\x1b``, ``\\u202e``), and a file name's bytes that are not UTF-8 as those
    bytes (``\\xe9``)."""
    if not _UNSAFE.search(text):
        return text
    return _UNSAFE.sub(lambda m: _escaped(m.group()), text)


def printable_name(name: str) -> str:
    """A file, folder or sample name as a message quotes it: :func:`printable`, and its line
    breaks and tabs escaped too (a folder named ``line1\\nline2`` split a warning in two,
    the second line without a time in the run's log)."""
    return printable(str(name)).replace("\n", "\\n").replace("\r", "\\r") \
        .replace("\t", "\\t")


class PrintableFormatter(logging.Formatter):
    """A formatter whose lines are :func:`printable`."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as the base formatter gives it, made printable."""
        return printable(super().format(record))


def named_counts(counts, empty: str = "none") -> str:
    """``{"ctc": 3, "wbc": 900}`` as a console line says it, ``ctc 3, wbc 900`` (not a Python
    dict); ``empty`` for none. No thousands separators: their commas would read as the
    list's."""
    if not isinstance(counts, dict) or not counts:
        return empty
    return ", ".join(f"{name} {n}" for name, n in counts.items())


# What a spreadsheet opening a CSV runs as a formula when a cell starts with it.
FORMULA_STARTS = ("=", "+", "-", "@")


def spreadsheet_table(table):
    """A copy of a pandas ``table`` whose text cells are :func:`spreadsheet_cell`'s (a crop
    named ``=HYPERLINK(...).tif`` gave predictions.csv a formula a spreadsheet runs); for its
    CSV, not its Parquet, which keeps each value as it is."""
    out = table.copy()
    for column in out.columns:
        if out[column].dtype.kind == "O":  # text: object, or pandas 3's str dtype
            out[column] = out[column].map(spreadsheet_cell)
    return out


def spreadsheet_cell(value):
    """A CSV cell a spreadsheet shows as the text it is: text starting as a formula does
    (``=1+2``, ``@SUM(...)``: a sample id or a name from outside) gets a leading ``'``, which
    Excel and LibreOffice read as "text"; anything else is returned as it is."""
    return "'" + value if isinstance(value, str) and value.startswith(FORMULA_STARTS) else value


def utc_text(iso: str | None) -> str:
    """An ISO 8601 time (``2026-12-02T14:31:55+00:00``, as records keep it) as pages and
    report lines give times: ``2026-12-02 14:31:55 UTC``; text that is no such time, as it
    is (a time without a zone is taken as UTC)."""
    if not isinstance(iso, str):
        return str(iso)
    try:
        when = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return iso
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def unmeasured_text(record: dict) -> str:
    """What a plane's "above of counted" leaves unread, in words: " (2 not measured)" where
    counted CTCs lie in frames that lack the plane's file, else ''."""
    n = record.get("counted_ctcs_unmeasured")
    return f" ({n} not measured: a frame lacks the plane)" if n else ""


def stated_percent(share: float) -> str:
    """A stated share (a guarantee's level or confidence) as a percentage with the decimals it
    needs: 0.01 as ``1%``, 0.95 as ``95%``, 0.005 as ``0.5%``, 0.995 as ``99.5%``. Rounded to
    whole percents, a level of 0.5 % read "at most 0%" and 99.5 % confidence "100%": other
    statements than the one made. (Ten decimals: a float's own error, 7.000000000000001, is
    not said.)"""
    return f"{float(share) * 100:.10f}".rstrip("0").rstrip(".") + "%"
