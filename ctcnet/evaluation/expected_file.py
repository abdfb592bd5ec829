"""``expected.csv`` of a spike-in validation or a method comparison, read and checked: each
tube's sample id and the cells spiked into it (``spiked``; 0 for a blank, an optional
``level`` grouping tubes into one spike level), or another method's CTCs per 7.5 mL of it
(``reference_per_7_5_ml``). A mistake that would change a figure is refused in one line (a
column read but for its case, a count missing or negative, a tube twice, a level of blanks
and spiked tubes); a column not read is said.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from ctcnet.core.paths import composed
from ctcnet.errors import InputError

log = logging.getLogger(__name__)

# The column of another method's rates on the same tubes (a method comparison,
# :mod:`ctcnet.evaluation.method_comparison`), in place of ``spiked``.
REFERENCE_COLUMN = "reference_per_7_5_ml"


def read_expected(path: str | Path) -> pd.DataFrame:
    """``expected.csv`` as a table indexed by sample id: ``sample_id,spiked`` (cells spiked
    into each tube, 0 for a blank), or ``sample_id,reference_per_7_5_ml`` (another method's
    CTCs per 7.5 mL of each tube: its column ``reference``); InputError naming the line for
    anything else."""
    path = Path(path)
    try:
        table = _read_table(path)
    except (OSError, ValueError, UnicodeDecodeError, csv.Error) as err:
        raise InputError(f"cannot read the expected counts: {str(err).strip()}"
                         + _separator_hint(path), path) from None
    reference = REFERENCE_COLUMN in table.columns
    if "sample_id" not in table.columns or reference == ("spiked" in table.columns):
        raise InputError("the expected counts need the columns sample_id,spiked (cells "
                         "spiked into each tube; 0 for a blank) or sample_id,"
                         f"{REFERENCE_COLUMN} (another method's CTCs per 7.5 mL of each "
                         f"tube, e.g. CellSearch's), not {list(table.columns)}"
                         + _separator_hint(path), path)
    _say_columns_not_read(table.columns, REFERENCE_COLUMN if reference else "spiked", path)
    if reference and "level" in table.columns:
        raise InputError("level groups spiked tubes; a method comparison has none", path)
    column = REFERENCE_COLUMN if reference else "spiked"
    # A row with nothing in it (what a spreadsheet leaves under its table) is no tube.
    blank = table.apply(lambda cells: cells.isna() | (cells.astype(str).str.strip() == ""))
    table = table[~blank.all(axis=1)]  # (its index: the file's rows, for their lines)
    if table.empty:  # (a header alone: every figure after it was of no tube)
        raise InputError("the expected counts list no tube (a header and no row under it)",
                         path)
    spiked = pd.to_numeric(table[column], errors="coerce")
    # Compared as stripped: "L1 " typed beside "L1" is the same tube, not a second one; and
    # with accents composed, as predict names samples (macOS writes them decomposed).
    ids = table["sample_id"].str.strip().map(composed, na_action="ignore")
    bad = table.index[~np.isfinite(spiked) | (spiked < 0) | ids.isna() | (ids == "")]
    if len(bad):
        what = "a reference rate" if reference else "a spiked number of cells"
        row = table.loc[bad[0], ["sample_id", column]].fillna("").to_dict()
        row = {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
        raise InputError(f"line {int(bad[0]) + 2}: a sample id and {what} (0 or more) are "
                         f"needed, not {row}", path)
    twice = ids[ids.duplicated()]
    if len(twice):
        raise InputError(f"sample {twice.iloc[0]!r} is listed twice", path)
    if reference:
        return pd.DataFrame({"reference": spiked.to_numpy(np.float64)}, index=ids.to_numpy())
    out = pd.DataFrame({"spiked": spiked.to_numpy(np.float64)}, index=ids.to_numpy())
    if "level" in table:  # the lab's own grouping of tubes into levels (their exact counts)
        out["level"] = _checked_levels(table["level"], spiked, path)
    return out


def _read_table(path: Path) -> pd.DataFrame:
    """The file's rows as text (a tube named NA, None or null is that tube, never "no id";
    counts are read as numbers by the caller, an empty level as none), indexed by their line
    less 2. A spreadsheet's trailing commas, on the header too, are no column; a value past
    the header's named fields (``A,15,5``: a decimal comma unquoted) is refused at its line:
    read as 15 and a field of 5, it was a count cut short, or pandas took the ids for an
    index and read each count under another tube."""
    with open(path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, [])
        named = [k for k, name in enumerate(header) if name.strip()]
        width = named[-1] + 1 if named else len(header)
        columns = [name if name.strip() else f"Unnamed: {k}"
                   for k, name in enumerate(header[:width])]
        twice = [name for k, name in enumerate(columns) if name in columns[:k]]
        if twice:  # (a table of two such columns ended in a traceback)
            raise InputError(f"the column {twice[0]!r} is given twice in the header", path)
        unnamed = [k for k in range(width) if not header[k].strip()]
        rows, lines = [], []
        for row in reader:
            if not row:  # a blank line
                continue
            if any(cell.strip() for cell in row[width:]) or \
                    any(k < len(row) and row[k].strip() for k in unnamed):
                if len(header) == 1 and _separator_hint(path):
                    break  # refused by the caller, its separator said
                raise InputError(f"line {reader.line_num} has {len(row)} fields where its "
                                 f"header names {len(named)}: a comma too many (a decimal "
                                 "comma? write 15.5, with '.')", path)
            rows.append(row[:width] + [""] * (width - len(row)))
            lines.append(reader.line_num - 2)
    table = pd.DataFrame(rows, columns=columns, index=lines, dtype=object)
    if "level" in table:
        table["level"] = table["level"].where(table["level"] != "")
    return table


def _separator_hint(path: Path) -> str:
    """Where the file's header holds ';' or a tab (another locale's spreadsheet, a
    tab-separated export), a clause saying to separate its columns by commas; else ""."""
    try:
        header = path.read_text(encoding="utf-8-sig").splitlines()[0]
    except (OSError, UnicodeDecodeError, IndexError):
        return ""
    sep = next((s for s in (";", "\t") if s in header), None)
    return f" (its columns separated by {sep!r}? separate them by commas, with '.' for " \
        "decimals)" if sep else ""


def _say_columns_not_read(columns, counted: str, path: Path) -> None:
    """Refuse a column that is one read but for its case or spaces (``Level``: the grouping was
    dropped, each cell count its own level, and no detection limit); warn of the others, which
    are not read (a ``blood_volume_ml`` column: the volumes are each summary.json's)."""
    # (a method comparison reads no level: refused by name below, not suggested)
    read = ("sample_id", counted) + (("level",) if counted == "spiked" else ())
    for column in columns:
        name = str(column)
        if name in read or name == "level" or name.startswith("Unnamed:"):
            continue  # (Unnamed: a spreadsheet's trailing comma, a column with no name)
        meant = next((r for r in read if name.strip().lower() == r), None)
        if meant is not None:
            raise InputError(f"column {name!r} is not read (did you mean {meant!r}?)", path)
        log.warning("%s: column %r is not read (%s)", path, name,
                    "the blood volumes are each sample's summary.json's, as cartridge.json "
                    "stated them" if "volume" in name.lower() else
                    f"the columns read: {', '.join(read)}")


def _checked_levels(column: pd.Series, spiked: pd.Series, path: Path) -> np.ndarray:
    """The ``level`` column, refused where a label is empty, where two labels differ only in
    case (``Mid``, ``mid``) or where a level holds blanks and spiked tubes: a level's mean, CV
    and the detection limit read it as one spike."""
    levels = column.fillna("").astype(str).str.strip()
    empty = levels.index[levels == ""]
    if len(empty):
        raise InputError(f"line {int(empty[0]) + 2}: the level is empty", path)
    by_case: dict[str, str] = {}
    for name in levels.unique():
        other = by_case.setdefault(name.lower(), name)
        if other != name:
            raise InputError(f"levels {other!r} and {name!r} differ only in case: one level?",
                             path)
    for name, group in spiked.groupby(levels.to_numpy()):
        if (group == 0).any() and (group > 0).any():
            raise InputError(f"level {name!r} holds blanks (spiked 0) and spiked tubes", path)
        if (group > 0).all() and group.max() > 2 * group.min():
            log.warning("level %r holds tubes of %g to %g cells: its mean and CV read them as "
                        "one spike", name, group.min(), group.max())
    return levels.to_numpy()
