"""``ctcnet draws``: one patient's serial draws side by side (``ctcnet.inference.serial_draws``).

A line per draw (the figure its report says to use, its 95 % blood-draw interval, the cut-off,
the change from the draw before and from the first with an exact test), what makes the draws
not comparable, and the table as CSV with ``--out``. Exit status 0; 2 for an output that is
not a cartridge's, or cannot be read.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ctcnet.errors import InputError

HELP = ("Put one patient's serial draws side by side: each draw's figure to report with its "
        "blood-draw interval, against a cut-off, and the change between draws (an exact test "
        "of two rates).")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``ctcnet draws`` to its subparser."""
    from ctcnet.commands.arg_types import positive

    parser.add_argument("samples", nargs="+", metavar="SAMPLE",
                        help="predict output folders of one sample each (<--out>/<sample>), "
                             "in the order the blood was drawn (a shell's wildcard lists "
                             "WK12 before WK3: draws dated out of order are said)")
    parser.add_argument("--class", dest="class_name", default="ctc",
                        help="the counted class compared (default ctc)")
    parser.add_argument("--cutoff", type=positive, default=None, metavar="PER_7_5_ML",
                        help="the cut-off per 7.5 mL each draw is read against (default 5, "
                             "CellSearch's in metastatic breast and prostate cancer; 3 in "
                             "colorectal)")
    parser.add_argument("--date-key", default=None, metavar="KEY",
                        help="a cartridge.json key holding the draw's date, shown beside it")
    parser.add_argument("--patient-key", default="patient_id", metavar="KEY",
                        help="the cartridge.json key naming the patient (default patient_id): "
                             "draws naming other patients are refused")
    parser.add_argument("--out", metavar="CSV",
                        help="also write the table to this file (-: to standard output, the "
                             "lines then on standard error)")
    parser.add_argument("--overwrite", action="store_true",
                        help="write over an existing --out file (refused otherwise)")
    # ``ctcnet --quiet`` sets it: the lines are then kept off the console only where --out
    # keeps the table (without it, they are the only answer asked for).
    parser.set_defaults(quiet=False)


def run(args: argparse.Namespace) -> int:
    """Run ``ctcnet draws``; returns 0."""
    import sys

    from ctcnet.inference.counts import interval_text, per_volume_text
    from ctcnet.inference.serial_draws import DEFAULT_CUTOFF, OTHER_SCANNERS, compare_draws
    from ctcnet.io.cartridge_info import RESERVED_OUT_NAMES

    cutoff = DEFAULT_CUTOFF if args.cutoff is None else args.cutoff
    to_stdout = args.out == "-"
    if args.out and not to_stdout:  # refused before the draws are read
        _check_out(args.out, args.samples, args.overwrite)
    lines = []
    # `draws results/*`: the --out folder's own files (and a draws table written there)
    # passed over, said (not sample folders)
    own = [s for s in args.samples if Path(s).name.lower() in RESERVED_OUT_NAMES
           and not (Path(s) / "summary.json").is_file() or _readable_table(Path(s))]
    if own:
        lines.append(f"(passed over: {', '.join(map(str, own))}, the results folder's own "
                     "files or a draws table, not samples)")
    samples = [s for s in args.samples if s not in own]
    if not samples:
        raise InputError("no sample folder among the inputs: give each draw's output folder "
                         "(<--out>/<sample>)")
    check = SignoffNow()
    draws, differ = compare_draws(samples, args.class_name, cutoff, args.date_key, check,
                                  args.patient_key)
    check.say_edited(draws)
    patients = {d.patient for d in draws if d.patient is not None}  # (one: others refused)
    if patients:  # whose draws these are, first, as draws.csv's column says it
        lines.insert(0, f"patient {next(iter(patients))!r} ({args.patient_key})")
    if args.class_name != "ctc" and args.cutoff is None:
        lines.append(f"(the default cut-off, {cutoff:g}, is CellSearch's for CTCs: give "
                     f"--cutoff for {args.class_name})")
    shared = [n for n in draws[0].notes if n.startswith(OTHER_SCANNERS[:30])]
    for d in draws:
        rate = "n/a" if d.per_7_5_ml is None else (
            f"{per_volume_text(d.per_7_5_ml)} (95 % {interval_text(d.low, d.high, '-')})")
        line = f"{d.draw}. {d.name}" + (f" ({d.drawn_at})" if d.drawn_at else "") + (
            ": no result" if d.count is None else
            f": {args.class_name} {d.count} in {_ml(d.blood_volume_read_ml)} mL, {rate} per "
            f"7.5 mL, {d.figure}; {d.against_cutoff} {cutoff:g}"
            + (" (the interval spans it)" if d.interval_spans_cutoff else ""))
        for what, ratio, p in (("previous", d.change_from_previous, d.p_from_previous),
                               ("first", d.change_from_first, d.p_from_first)):
            if p is not None and (what == "previous" or d.draw > 2):
                line += (f"; from the {what}: " + (f"x{ratio:.2f}" if ratio is not None
                                                   else "from 0") + f", {_p_text(p)}")
        lines.append(line + "".join(f"\n   {note}" for note in d.notes
                                    if note not in shared))
    lines += shared  # of the series, said once
    if differ:
        lines.append(f"NOT COMPARABLE as they stand: the draws were counted by other models or "
                     f"at other settings ({'; '.join(differ)}; each summary.json's "
                     "run_fingerprint holds them): run them again with one model and settings")
    dated = next((d.keys_near["date"] for d in draws if "date" in d.keys_near), None)
    if dated and len(draws) > 1:  # (the order given is not checked without it)
        lines.append(f"(the draws' order is taken as given: their cartridge.json has "
                     f"{dated!r}; --date-key {dated} shows each draw's date and checks the "
                     "order)")
    if len(draws) > 1:
        lines.append("p: exact test of one rate in both draws (the blood sampled, not the "
                     "calls); the intervals are each draw's alone")
    if not (args.quiet and args.out):
        print("\n".join(lines), file=sys.stderr if to_stdout else sys.stdout)
    if args.out:
        _write_table([d.row() for d in draws], None if to_stdout else Path(args.out))
        if not to_stdout and not args.quiet:  # (as crops, export-events and predict end)
            print(f"table: {len(draws)} draw(s) -> {args.out}")
    return 0


def _check_out(out: str, samples: list[str], overwrite: bool) -> None:
    """Refuse an ``--out`` that is not a file to write, is another table (without
    ``--overwrite``) or lies in a draw's own output folder (written over its summary.json)."""
    from ctcnet.io.atomic import check_output_file

    check_output_file(out, example="draws.csv")
    table = None
    if Path(out).is_file():  # --overwrite replaces a draws table, never a frame or a record
        try:
            table = is_draws_table(Path(out), empty=True)
        except OSError as err:
            raise InputError(f"cannot be read to check it is a draws table: {err}", out) from None
        if table and not overwrite:
            check_output_file(out, example="draws.csv", earlier="another series' table")
    inside = [s for s in samples
              if Path(s).is_dir() and Path(out).resolve().is_relative_to(Path(s).resolve())]
    if inside:
        raise InputError(f"--out lies in the draw's output folder {inside[0]}, whose files the "
                         "draws are read from: write the table outside it", out)
    if table is False:
        raise InputError("exists and is not a draws table (its first line is not one's "
                         "header): --overwrite writes over an earlier draws table only; "
                         "choose another --out", out)


# How a draws table's header begins: --overwrite writes over such a file, never another.
TABLE_HEADER = "draw,name,folder,result_state,"


def is_draws_table(path: Path, empty: bool = False) -> bool:
    """Whether ``path`` is a file holding a draws table (its header, a spreadsheet's byte
    order mark or quotes aside; ``empty``: an empty file too); OSError if unreadable."""
    if not path.is_file():
        return False
    with open(path, encoding="utf-8-sig", errors="replace") as file:
        first = file.readline(4096)
    return (empty and not first) or first.replace('"', "").lstrip().startswith(TABLE_HEADER)


def _readable_table(path) -> bool:
    """Whether ``path`` is a draws table (one unreadable is none: its error comes later)."""
    try:
        return is_draws_table(path)
    except OSError:
        return False


def _write_table(rows: list[dict], path) -> None:
    """The draws' rows as CSV to ``path``, written whole at once, or to standard output."""
    import csv
    import io
    import sys

    from ctcnet.core.printable import spreadsheet_cell
    from ctcnet.io.atomic import atomic_write_text

    text = io.StringIO()
    writer = csv.DictWriter(text, list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: "" if v is None else spreadsheet_cell(v) for k, v in r.items()}
                     for r in rows)
    if path is None:
        sys.stdout.write(text.getvalue())
    else:
        atomic_write_text(path, text.getvalue())


class SignoffNow:
    """:func:`signoff_holds_now` of each draw, keeping what a record edited by hand says
    (``edited``: by folder, its problem), which draws said as a review under way again."""

    def __init__(self):
        self.edited: dict[str, str] = {}

    def __call__(self, folder) -> bool:
        """Whether the draw's sign-off holds (:func:`signoff_holds_now`), kept if edited."""
        return signoff_holds_now(folder, self.edited)

    def say_edited(self, draws) -> None:
        """A note on each draw whose record was changed by hand: no review under way."""
        for draw in draws:
            if draw.folder in self.edited:
                draw.notes.append(f"its review record was changed by hand since the sign-off "
                                  f"({self.edited[draw.folder]}): `ctcnet verify --results` "
                                  "names what; the automatic count stands")


def signoff_holds_now(folder, edited: dict | None = None) -> bool:
    """Whether a sample's sign-off holds as its record and its decisions are now, as `crops`
    and `export-events` check it (a review.csv edited after the sign-off, a signoff.json
    altered): summary.json's copy is as fresh as the last command that wrote it."""
    import pandas as pd

    from ctcnet.exports.sample_review import signoff_now
    from ctcnet.inference.summary import RunSummary
    from ctcnet.review.signoff import CURRENT, EDITED

    try:
        events = pd.read_parquet(folder / "events.parquet")
        # (said quietly: the draw's note says a sign-off that no longer holds, in its words)
        record = signoff_now(folder, events, RunSummary.read(folder), say=False)
    except (OSError, ValueError, InputError):
        return False  # (its table unreadable: no sign-off of it holds)
    if record is not None and record["status"] == EDITED and edited is not None:
        edited[str(folder)] = str(record.get("problem") or EDITED)
    return record is not None and record["status"] == CURRENT


def _p_text(p: float) -> str:
    """A p-value as a report gives it: three significant figures, never ``p = 0`` (a p under
    1e-10 is said to be so, beyond what the sums' rounding can tell)."""
    return "p < 1e-10" if p < 1e-10 else f"p = {p:.3g}"


def _ml(volume: float | None) -> str:
    """A blood volume read as the console says it: 4.5, 5.333 (not 5.333333333333)."""
    return "n/a" if volume is None else f"{volume:.4g}"
