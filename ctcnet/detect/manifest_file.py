"""A crop folder's ``manifest.csv`` read into rows, or refused with the slip named at its line:
a row with more fields than the header (its sample id and split would be read from the wrong
columns: a patient named "extra"), a file a spreadsheet saved with semicolons (a European
locale's CSV), one not in UTF-8 (a byte offset told nobody which line), rows naming files
that are not there."""

from __future__ import annotations

import csv
import difflib
import io
from pathlib import Path

from ctcnet.core.paths import as_listed_within, typed_id
from ctcnet.detect.crop_writing import SAMPLE_SEPARATOR
from ctcnet.errors import InputError, check_regular_file

COLUMNS_TEXT = "path,label[,sample_id][,split][,patient_id]"


def manifest_path(root: Path, written: str) -> Path:
    """A manifest row's path, resolved under ``root``. A manifest written on Windows
    separates folders with backslashes, which are plain name characters here: they are read
    as separators unless a file of that very name exists."""
    path = (root / written).resolve()
    if "\\" in written and not path.exists():
        path = (root / written.replace("\\", "/")).resolve()
    # A name typed composed (é one character) for a file macOS stored decomposed (e and its
    # accent), or the other way round: one name on screen, two to the disk.
    return as_listed_within(root, path)


def manifest_rows(manifest: Path) -> list[dict]:
    """The manifest's rows (each a mapping of its header's columns), after the checks above."""
    raw = manifest.read_bytes()
    try:
        # utf-8-sig: Excel saves CSV with a byte-order mark, which would glue onto "path".
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[:err.start].count(b"\n") + 1
        raise InputError(f"manifest.csv is not UTF-8 (line {line}: byte "
                         f"{raw[err.start:err.start + 1]!r}): save it as UTF-8 (a "
                         "spreadsheet's 'CSV UTF-8')", manifest) from None
    reader = csv.DictReader(io.StringIO(text))
    try:
        header = reader.fieldnames or []
        if not {"path", "label"} <= set(header):
            semicolons = len(header) == 1 and ";" in header[0]
            raise InputError(f"manifest.csv needs the columns {COLUMNS_TEXT}"
                             + (f" separated by commas; its header is {header[0]!r}, separated "
                                "by semicolons (a spreadsheet's CSV in a European locale): "
                                "save it with commas" if semicolons else
                                f"; its header has {', '.join(header) or 'no columns'}: "
                                "rename the columns that hold the crop files and their "
                                "classes"), manifest)
        rows = []
        for row in reader:
            if None in row:  # fields past the header's: every column after them misread
                raise InputError(f"line {reader.line_num} has "
                                 f"{len(header) + len(row[None])} fields where its header has "
                                 f"{len(header)} ({', '.join(header)}): a comma too many?",
                                 manifest)
            rows.append(row)
    except csv.Error as err:
        raise InputError(f"cannot read manifest: {err}", manifest) from None
    return rows


def refuse_files_not_there(paths: list[Path], manifest: Path) -> None:
    """Refuse a manifest whose rows (``paths``, one a row, in order) name files that are not
    there, each with its line (a file renamed or left out of a copy was said as "file not
    found", no row named), and the like-named file beside it where there is one (an
    extension or a case changed)."""
    gone = [(n, path) for n, path in enumerate(paths, start=2) if not path.is_file()]
    if not gone:
        return
    n, path = gone[0]
    beside = ([p.name for p in path.parent.iterdir() if p.is_file()]
              if path.parent.is_dir() else [])
    near = difflib.get_close_matches(path.name, beside, 1, 0.8)
    where = path.relative_to(manifest.parent.resolve())
    raise InputError(f"line {n}: {where} is not there"
                     + (f" ({near[0]} is, beside it)" if near else "")
                     + (f"; nor are those of {len(gone) - 1} more row(s): line(s) "
                        f"{', '.join(str(m) for m, _ in gone[1:6])}"
                        f"{', ...' if len(gone) > 6 else ''}" if len(gone) > 1 else "")
                     + ": correct the rows, or remove them", manifest)


def sample_id_from_name(path: Path) -> str:
    """A crop's sample id where nothing states it: its file name up to the separator
    crop folders are written with (``P017__cell_12.tif``), or its whole stem."""
    return path.stem.split(SAMPLE_SEPARATOR, 1)[0]


def read_manifest(manifest: Path):
    """A crop folder's manifest as (paths, labels, sample ids, splits, patient ids or None
    where no row names one), one a row, each row checked: a path and a label, inside the
    folder, listed once."""
    check_regular_file(manifest, "manifest.csv")  # a FIFO would block, a device fill memory
    try:
        rows = manifest_rows(manifest)
    except OSError as err:
        raise InputError(f"cannot read manifest: {err}", manifest) from None
    if not rows:
        raise InputError("manifest.csv lists no crops (its header alone)", manifest)
    root = manifest.parent.resolve()
    paths, labels, samples, splits, patients = [], [], [], [], []
    first_line: dict[Path, int] = {}
    for n, row in enumerate(rows, start=2):
        # (a NUL byte: no file has such a name)
        if not row.get("path") or not row.get("label") or "\0" in row["path"]:
            raise InputError(f"line {n}: empty path or label, or no file name", manifest)
        path = manifest_path(root, row["path"])
        if not path.is_relative_to(root):
            link = root / row["path"]  # one inside that is a link is said as one
            raise InputError(f"line {n}: path {row['path']!r} points outside the dataset folder"
                             + (f" (a link to {link.readlink()})" if link.is_symlink() else ""),
                             manifest)
        if path in first_line:
            # Counted twice it would weigh double in training and metrics; with two labels
            # one of them is wrong.
            raise InputError(f"line {n}: {row['path']} is already listed on line "
                             f"{first_line[path]}", manifest)
        first_line[path] = n
        paths.append(path)
        labels.append(row["label"].strip())
        samples.append((row.get("sample_id") or "").strip() or sample_id_from_name(path))
        splits.append((row.get("split") or "").strip())
        patients.append(typed_id(row.get("patient_id") or "") or samples[-1])
    # A patient column where any row names one (serial draws: a patient's samples together).
    named = any((row.get("patient_id") or "").strip() for row in rows)
    return paths, labels, samples, splits, patients if named else None
