"""FCS 3.1 list-mode files written from an events-by-parameters array.

Every parameter is a 32-bit little-endian float, one event a row. Gating tools have no "no
value", so callers write :data:`MISSING_VALUE` for a value that is not finite. The writer is
ours (numpy and a few lines), not FlowIO's ``create_fcs``: that one doubles its ``/`` delimiter
inside values, so a value that starts with ``/`` (a model path) makes a TEXT segment that
FlowIO and FlowCal themselves read back wrong. Here the delimiter is a character that no
keyword or value holds, so nothing needs escaping.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ctcnet.io.atomic import atomic_path

HEADER_BYTES = 58                 # "FCS3.1", 4 spaces, six 8-character offsets
HEADER_OFFSET_MAX = 99_999_999    # the most an 8-character header field holds
# Tried in turn: the first that no keyword or value holds delimits the TEXT segment. Control
# characters are taken out of values (they never mean anything there), so form feed is always
# free.
DELIMITERS = ("|", "\\", "/", "\x0c")
MISSING_VALUE = -1.0


def _clean_value(value) -> str:
    """A keyword's value as FCS text: control characters (line breaks in a path or a comment)
    become spaces, since they are not text a keyword value may hold."""
    return re.sub(r"[\x00-\x1f\x7f]", " ", str(value)).strip()


def _choose_delimiter(pairs: Sequence[tuple[str, str]]) -> str:
    text = "".join(k + v for k, v in pairs)
    return next(d for d in DELIMITERS if d not in text)


def _text_segment(pairs: Sequence[tuple[str, str]], delimiter: str) -> bytes:
    """The TEXT segment: the delimiter, then ``key<d>value<d>`` per keyword (FCS 3.1 3.2.9)."""
    body = "".join(f"{k}{delimiter}{v}{delimiter}" for k, v in pairs)
    return (delimiter + body).encode("utf-8")


def _header(text_begin: int, text_end: int, data_begin: int, data_end: int) -> bytes:
    """The 58-byte HEADER. A DATA segment reaching past byte 99,999,999 cannot be written in
    8 characters: the standard has both header fields 0 then, and $BEGINDATA/$ENDDATA say it."""
    if data_end > HEADER_OFFSET_MAX:
        data_begin = data_end = 0
    fields = (text_begin, text_end, data_begin, data_end, 0, 0)   # the last two: no ANALYSIS
    return b"FCS3.1    " + "".join(f"{v:>8d}" for v in fields).encode("ascii")


def _parameter_range(values: np.ndarray, upper: float = 0.0) -> str:
    """$PnR of a float parameter: its scale's top (``upper``, or the largest value if higher,
    rounded up) plus one. Readers take a parameter's range as [0, $PnR - 1], as for integer
    data (FlowCal does, and its saturation gate drops events at that top), and FlowJo ends its
    linear axis there: no value lies above it, and one sample plots as the next. Values below
    0 (a negative signal-to-noise, the -1 of a missing value) lie under it (docs/outputs.md:
    a gate's low bound)."""
    finite = values[np.isfinite(values)]
    top = max(float(upper), float(finite.max()) if finite.size else 0.0, 0.0)
    return str(math.ceil(top) + 1)


def _fcs_head(data: np.ndarray, names: Sequence[str], long_names: Sequence[str] | None,
                keywords: dict[str, str] | None, upper: Sequence[float] | None) -> bytes:
    """The HEADER and TEXT segments of :func:`fcs_bytes` (DATA, ``data.tobytes()``, follows)."""
    if data.ndim != 2 or data.shape[1] != len(names):
        raise ValueError(f"data of shape {data.shape} for {len(names)} parameter names")
    bad = [n for n in names if not n or "," in n]
    if bad or len(set(names)) != len(names):
        raise ValueError(f"$PnN names must be unique, non-empty, without commas: {list(names)}")
    n_events, n_params = data.shape
    pairs: list[tuple[str, str]] = [
        ("$BEGINANALYSIS", "0"), ("$ENDANALYSIS", "0"), ("$BEGINSTEXT", "0"), ("$ENDSTEXT", "0"),
        ("$BYTEORD", "1,2,3,4"), ("$DATATYPE", "F"), ("$MODE", "L"), ("$NEXTDATA", "0"),
        ("$PAR", str(n_params)), ("$TOT", str(n_events))]
    for i, name in enumerate(names, start=1):
        pairs += [(f"$P{i}N", name), (f"$P{i}B", "32"), (f"$P{i}E", "0,0"),
                  (f"$P{i}R", _parameter_range(data[:, i - 1],
                                               upper[i - 1] if upper is not None else 0.0))]
        if long_names is not None and _clean_value(long_names[i - 1]):
            pairs.append((f"$P{i}S", _clean_value(long_names[i - 1])))
    pairs += [(k, _clean_value(v)) for k, v in (keywords or {}).items() if _clean_value(v)]
    delimiter = _choose_delimiter(pairs)

    # $BEGINDATA and $ENDDATA sit inside the TEXT whose length places DATA: lengthen the
    # guesses until they agree with the TEXT they are written in (two or three rounds). No
    # events: DATA still begins after TEXT and ends a byte before it begins, as FlowIO and
    # FlowCal read an empty DATA segment (both refuse one at 0, 0).
    begin = end = 0
    while True:
        text = _text_segment(pairs + [("$BEGINDATA", str(begin)), ("$ENDDATA", str(end))],
                             delimiter)
        text_end = HEADER_BYTES + len(text) - 1
        new_begin, new_end = text_end + 1, text_end + data.nbytes
        if (new_begin, new_end) == (begin, end):
            break
        begin, end = new_begin, new_end
    if text_end > HEADER_OFFSET_MAX:  # the primary TEXT must lie within the header's reach
        raise ValueError("FCS TEXT segment too long for the header")
    return _header(HEADER_BYTES, text_end, begin, end) + text


def fcs_bytes(data: np.ndarray, names: Sequence[str], long_names: Sequence[str] | None = None,
              keywords: dict[str, str] | None = None,
              upper: Sequence[float] | None = None) -> bytes:
    """An FCS 3.1 list-mode file: ``data`` (events x parameters) as 32-bit little-endian floats.

    ``names`` are the short names ($PnN: no commas, unique), ``long_names`` the optional
    descriptions ($PnS), ``keywords`` further TEXT keywords (standard ones start with ``$``;
    empty values are left out, as the standard allows none), ``upper`` the top of each
    parameter's scale (default: its largest value) for $PnR. The DATA segment follows TEXT at
    once; its offsets are in $BEGINDATA/$ENDDATA always and in the HEADER while they fit there.
    """
    data = np.ascontiguousarray(np.asarray(data, dtype="<f4"))
    return _fcs_head(data, names, long_names, keywords, upper) + data.tobytes()


def write_fcs(path: str | Path, data: np.ndarray, names: Sequence[str],
              long_names: Sequence[str] | None = None, keywords: dict[str, str] | None = None,
              upper: Sequence[float] | None = None) -> None:
    """:func:`fcs_bytes` written atomically to ``path``, the data straight from the array (no
    second copy of a large table in memory)."""
    data = np.ascontiguousarray(np.asarray(data, dtype="<f4"))
    head = _fcs_head(data, names, long_names, keywords, upper)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(head)
        # Through the file object, not numpy's tofile: tofile reports a full disk as "N
        # requested and M written" with no errno, which no disk-full handler can tell from a
        # bug; the file object raises the system's error (ENOSPC, EDQUOT, EFBIG).
        fh.write(data.reshape(-1).view(np.uint8))
        fh.flush()
        os.fsync(fh.fileno())


def fcs_matrix(parameters: Sequence) -> np.ndarray:
    """The parameters (each with its ``values``, one an event) as a float32 (events x
    parameters) matrix; a value that is not finite becomes :data:`MISSING_VALUE`."""
    matrix = np.zeros((len(parameters[0].values), len(parameters)), np.float32)
    for i, parameter in enumerate(parameters):
        matrix[:, i] = parameter.values
    matrix[~np.isfinite(matrix)] = MISSING_VALUE
    return matrix


def fcs_keyword(path: str | Path, key: str) -> str | None:
    """The value of TEXT keyword ``key`` of an FCS file (None where the file is none, or lacks
    it): read from its HEADER's TEXT offsets, the TEXT's first byte its delimiter."""
    try:
        with open(path, "rb") as f:
            head = f.read(HEADER_BYTES)
            begin, end = int(head[10:18]), int(head[18:26])
            f.seek(begin)
            text = f.read(end - begin + 1).decode("utf-8", "replace")
    except (OSError, ValueError):
        return None
    if not head.startswith(b"FCS") or not text:
        return None
    parts = text[1:].split(text[0])  # (ctcnet's values hold no delimiter: none to unescape)
    pairs = dict(zip(parts[::2], parts[1::2]))
    return pairs.get(key)
