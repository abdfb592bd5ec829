"""``samples.csv`` audited against ``run.json``, of which it is a view (``ctcnet verify
--results``): a row for each entry, none for a sample the index does not list, each row's
figures and sign-off cells as the sample's summary gives them. The table is what a
laboratory system or a spreadsheet reads, and the one file of a run a person is likely to
open, edit and save again.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from ctcnet.core.printable import FORMULA_STARTS
from ctcnet.inference.run_table import sample_row
from ctcnet.io.cartridge_info import SAMPLES_FILE

# samples.csv's cells of a sign-off, empty where the summary has none that holds: a row
# reading "signed off, by Dr X" of a sample nobody reviewed passed as intact.
SIGNOFF_CELLS = ("signed_off", "signed_off_by", "signed_off_at", "signoff_status", "decided",
                 "left_undecided", "held_undecided")


def table_not_as_index(table: Path, index: dict, expected: dict) -> list[str]:
    """Where ``samples.csv`` (``table``) is not a row for each of ``run.json``'s entries
    (``index``), each as its sample's summary gives it (``expected``: name: run.json's entry
    made from the summary)."""
    problems = []
    if not table.is_file() or not expected:
        return problems
    try:
        # (utf-8-sig: a table saved again by a spreadsheet starts with a byte-order mark, and
        # its first column then read "\ufeffname": no row was checked, an edit passed)
        rows = list(csv.DictReader(table.read_text(encoding="utf-8-sig").splitlines()))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        return problems + [f"{SAMPLES_FILE} cannot be read: {err}"]
    header = list(rows[0]) if rows else []
    if "name" not in header and any(";" in str(column) for column in header):
        # (its rows read as rows of None, and every sample as missing from it)
        return problems + [f"{SAMPLES_FILE} is separated by semicolons, not commas: saved again "
                           "by a spreadsheet in a European locale (the table edited); its "
                           "rows cannot be checked against run.json"]
    # A row a table is a view of run.json's entries, one each: a row removed is a sample a
    # laboratory system never sees, a row renamed its counts filed under another sample.
    # (its other rows: the samples an earlier run left in the folder, and those a run began
    # and did not finish)
    listed = [e.get("name") for e in index.get("outputs") or [] if isinstance(e, dict)]
    others = [*(index.get("other_outputs") or []), *(index.get("unfinished_outputs") or {})]
    named = [cell_text(row.get("name")) for row in rows]
    lost = [str(name) for name in listed if name not in named]
    added = [str(name) for name in named if name not in listed and name not in others]
    if lost:
        problems.append(f"{SAMPLES_FILE} has no row of {', '.join(lost[:5])}, which run.json "
                        "lists (the table edited?)")
    if added:
        problems.append(f"{SAMPLES_FILE} has a row of {', '.join(added[:5])}, which run.json "
                        "does not list (the table edited?)")
    for row in rows:
        name = cell_text(row.get("name"))
        want = sample_row(expected[name]) if name in expected else None
        if want is None:
            continue
        # (a sign-off's note is free text, written escaped against a spreadsheet's formulas)
        moved = [k for k in dict.fromkeys([*want, *SIGNOFF_CELLS]) if k in row
                 and k != "signoff_note" and not same_cell(row[k], want.get(k))]
        if moved:
            problems.append(f"{SAMPLES_FILE}'s row of {name} is not its summary.json's "
                            f"in {', '.join(moved[:5])} (the table or the summary edited?)")
    return problems


def cell_text(cell):
    """A cell as the text it holds: a sample id written so that a spreadsheet shows it as text
    (``'+PC``, :func:`~ctcnet.core.printable.spreadsheet_cell`) read as the id (``+PC``)."""
    if isinstance(cell, str) and cell.startswith("'") and cell[1:].startswith(FORMULA_STARTS):
        return cell[1:]
    return cell


def same_cell(cell: str, value) -> bool:
    """Whether a samples.csv cell says ``value``: a rate or an interval's end (text at two
    decimals) within the hundredth its rounding takes (a table written by an earlier ctcnet
    wrote 8.0 for 8.00, and an interval's end rounded to nearest), a number as written,
    anything else as written (a path of bytes no encoding names, a
    folder named on a Windows share: as the file holds it, its escape ``\udcfc``)."""
    if value is None:
        return cell == ""
    if isinstance(value, str) and value.replace(".", "", 1).isdigit():  # a rate, "8.00"
        try:
            return abs(float(cell) - float(value)) <= 0.011
        except ValueError:
            return False
    if isinstance(value, float):  # written whole (a pixel size, a volume, a kappa): as it is
        # (within the hundredth too, a pixel size 2 % off or a volume 7.51 passed as intact)
        try:
            return math.isclose(float(cell), value, rel_tol=1e-9, abs_tol=1e-12)
        except ValueError:
            return False
    written = str(value).encode("utf-8", "backslashreplace").decode("utf-8")
    return cell_text(cell) in (str(value), written) or cell in (str(value), written)
