"""``ctcnet crops``: cut a run's events into a labelled crop dataset, e.g. for ``finetune``.

With ``--reviewed`` the labels are the reviewer's (events confirmed or relabelled in
``ctcnet review``; rejected ones are left out); without it, every event with the model's call.
Crops are cut again from the original frames named in each sample's summary.json, once each
frame is found to be the one predict read (its SHA-256 in the summary): a frame changed since
is refused by name.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import stat
import tempfile

from ctcnet.core.printable import named_counts, printable_name
from ctcnet.errors import InputError
from ctcnet.io.atomic import check_output_folder

log = logging.getLogger(__name__)

# What `ctcnet crops` writes beside the crops (exports.event_crops): the mark of its output.
DATASET_FILE = "dataset.json"
HELP = "Cut a run's reviewed events (or all, with the model's calls) into a crop dataset."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``ctcnet crops`` to its subparser."""
    parser.add_argument("results", metavar="RESULTS",
                        help="a ctcnet predict --out folder (or one sample's folder in it)")
    parser.add_argument("--out", required=True, help="crop dataset folder to write")
    parser.add_argument("--reviewed", action="store_true",
                        help="only events a reviewer confirmed or relabelled, with the "
                             "reviewer's class (review.csv)")
    parser.add_argument("--scans", default=None,
                        help="where the scans are now, if they moved since predict: the "
                             "cartridge, or for several samples the folder holding their "
                             "cartridges")
    parser.add_argument("--all-channels", action="store_true",
                        help="cut every channel of the scans, in their own order (default: "
                             "the channels the model read): for a model of the lab's own that "
                             "reads markers the shipped ones do not (vimentin, EpCAM)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the crops an earlier `ctcnet crops` wrote in --out (its "
                             "dataset.json; refused where the folder holds what that cut did "
                             "not write); the old ones stay until the new ones are written "
                             "(default: refuse a folder that is not empty)")


def run(args: argparse.Namespace) -> int:
    """Run ``ctcnet crops``: cut the reviewed events of a run (or all, with the model's calls)
    into a crop dataset; returns the exit status."""
    from pathlib import Path

    from ctcnet.exports.event_crops import write_event_dataset

    # the library: imported when the command runs (see ctcnet.commands)
    from ctcnet.inference.inputs import check_writable

    out = Path(args.out)
    check_output_folder(out)
    replacing = out.exists() and any(out.iterdir())
    if replacing and not args.overwrite:
        raise InputError("output folder is not empty; choose a new one (or --overwrite to "
                         "replace the crops an earlier `ctcnet crops` wrote there)", out)
    if replacing and not (out / DATASET_FILE).is_file():
        raise InputError(f"--overwrite replaces only a crop dataset ctcnet wrote (its "
                         f"{DATASET_FILE}); this folder holds other files", out)
    added = _not_cut_here(out) if replacing else []
    if added:
        raise InputError(f"--overwrite would delete what the earlier `ctcnet crops` did not "
                         f"write here: {', '.join(added[:5])}"
                         f"{f' and {len(added) - 5} more' if len(added) > 5 else ''}; move "
                         "them out first (and back into the new cut after), or choose "
                         "another --out", out)
    refuse_changed_frames(args.results, args.scans)  # the run read (and refused) first
    created = not out.exists()
    check_writable(out)  # before any crop is cut (made here, empty until the crops go in)
    # The crops go to a folder beside it, put in place once all are written: a refusal or an
    # interruption leaves the earlier crops as they were (or no folder), and a second run
    # into the same --out meanwhile finds it taken, not mixed with its own.
    _remove_killed_runs_cuts(out)
    target = Path(tempfile.mkdtemp(prefix=_cut_prefix(out.name), dir=out.parent))
    try:
        # The folder keeps the access it had (a lab group's 2775, say), not mkdtemp's 0700:
        # before any file is written, as a new file is no more open than its folder (the
        # manifest, panel.json and dataset.json were 0600 beside 0644 crops).
        target.chmod(stat.S_IMODE(out.stat().st_mode))
        info = write_event_dataset(args.results, target, reviewed=args.reviewed,
                                   scans=args.scans, every_channel=args.all_channels)
        _put_in_place(target, out, replacing)
    except BaseException as err:
        shutil.rmtree(target, ignore_errors=True)
        if created and out.is_dir() and not any(out.iterdir()):  # no empty folder left
            out.rmdir()
        # Said of --out, not of the hidden folder the crops were written into (gone now).
        if isinstance(err, InputError) and err.path == str(target):
            message = str(err).removeprefix(f"{printable_name(err.path)}: ")
            raise type(err)(message, out) from None
        if isinstance(err, OSError) and str(err.filename or "").startswith(str(target)):
            raise OSError(err.errno, err.strerror, str(out)) from None  # (a full disk)
        raise
    counts = named_counts(info["class_counts"])
    kinds = [s["decisions"] for s in info["sources"] if "decisions" in s]
    decided = ({k: sum(d[k] for d in kinds) for k in kinds[0]} if kinds else None)
    print(f"{sum(info['class_counts'].values())} crops ({counts}) from "
          f"{len(info['sources'])} sample(s)"
          + (f", of {sum(decided.values())} decisions: {decided['confirmed']} confirmed, "
             f"{decided['relabelled']} relabelled, {decided['rejected']} rejected (left out)"
             if decided else "") + f" -> {out}")
    return 0


def _not_cut_here(out) -> list[str]:
    """What an earlier ``ctcnet crops`` output ``out`` holds that the cut did not write (its
    dataset.json lists every crop it cut, with its label): files added to it (a lab's own
    labelled crops) and manifest.csv lines added or changed (a crop placed by hand in a
    split, a label corrected). Empty where nothing was."""
    import csv
    import json

    from ctcnet.core.paths import desktop_file

    try:
        record = json.loads((out / DATASET_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return [f"{DATASET_FILE} (unreadable: which crops the cut wrote cannot be told)"]
    try:
        with open(out / "manifest.csv", newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error):
        rows = []
    listed = {row.get("path") for row in rows}
    try:
        cut = {str(row["path"]): str(row["label"]) for row in record["crops"]}
    except (TypeError, KeyError):  # a cut that listed no crops of its own: its manifest's
        cut = {str(row.get("path")): str(row.get("label")) for row in rows}
    own = set(cut) | {DATASET_FILE, "manifest.csv", "panel.json"}
    found = [p.relative_to(out).as_posix() for p in sorted(out.rglob("*"))
             if (p.is_file() or p.is_symlink()) and not desktop_file(p.name)]
    found = [name for name in found if name not in own]
    edited = sum(cut.get(row.get("path") or "") != row.get("label") or bool(row.get("split"))
                 for row in rows) + sum(path not in listed for path in cut)
    if edited:
        found.append(f"manifest.csv ({edited} line(s) added, changed or removed since the "
                     "cut)")
    return found


def _cut_prefix(name: str, pid: int | None = None) -> str:
    """The start of the hidden folder beside ``--out`` (``name``) that a run cuts its crops
    into: the run's process and machine in it, so that a later run can tell one a killed
    run left (a folder of crops as large as the cut) from one a run is filling."""
    import os
    import re
    import socket

    host = re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname())[:24]
    return f".{name}.cut{os.getpid() if pid is None else pid}@{host}."


# A cut no file was added to for this long, its process gone from this machine, is a killed
# run's (a cut adds a crop every few milliseconds; a run in another container with this
# machine's name, whose process this one cannot see, is still adding them).
STALE_CUT_S = 15 * 60


def _remove_killed_runs_cuts(out) -> None:
    """Remove the folders beside ``out`` that runs on this machine, killed outright (SIGKILL,
    a power cut), left as they cut their crops: each as large as a cut, never cleaned and
    never said. Another machine's, a running process's and a recent one stay; so does the
    earlier ``--out`` a killed swap took out (``.old``: said, the only copy of those crops)."""
    import glob
    import time

    from ctcnet.core.processes import process_running

    for left in out.parent.glob(f".{glob.escape(out.name)}.cut*@*"):
        pid = left.name[len(f".{out.name}.cut"):].split("@", 1)[0]
        if not (pid.isdigit() and left.name.startswith(_cut_prefix(out.name, int(pid)))) \
                or not left.is_dir() or left.is_symlink() or process_running(int(pid)):
            continue  # (another machine's, not of this form, or its run at work)
        if left.name.endswith(".old"):
            log.warning("%s: %s holds the crops an interrupted --overwrite took out of it: "
                        "move it back, or remove it", out, left)
            continue
        folders = [left, *(p for p in left.iterdir() if p.is_dir() and not p.is_symlink())]
        if time.time() - max(f.stat().st_mtime for f in folders) > STALE_CUT_S:
            shutil.rmtree(left, ignore_errors=True)
            log.info("%s: removed %s, which a killed run left as it cut its crops", out,
                     left.name)


def _put_in_place(target, out, replacing: bool) -> None:
    """``target`` (the crops written) renamed to ``out``; where ``replacing``, the earlier
    folder swapped out first and removed after. ``out`` made by another run meanwhile is
    refused, its crops kept."""
    import errno

    if replacing:
        old = out.with_name(f"{target.name}.old")
        out.rename(old)
        try:
            target.rename(out)
        except OSError:  # the earlier crops back in their place
            old.rename(out)
            raise
        shutil.rmtree(old, ignore_errors=True)
        return
    try:
        target.rename(out)  # onto the empty folder made for it
    except OSError as err:
        if err.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR):
            raise
        raise InputError("another run wrote this folder while this one cut its crops: its "
                         "files are kept; run again with --overwrite to replace them, or "
                         "choose another --out", out) from None


def refuse_changed_frames(results, scans=None) -> None:
    """Refuse (InputError, one line) a run whose frames changed since predict read them (the
    SHA-256 its summary records per frame, ``frame_digests``): crops cut from other pixels
    would carry the calls made on the old ones into a training set. A frame whose files' size
    and time are as recorded is not read again; a summary from before digests were recorded
    has nothing to check against."""
    import functools
    import logging

    from ctcnet.exports.event_crops import check_scans_for, open_scanned_cartridge
    from ctcnet.inference.summary import RunSummary
    from ctcnet.io.digests import frame_change
    from ctcnet.review.runs import find_samples

    samples = find_samples(results)
    check_scans_for(samples, scans, results, every=True)
    for name, folder in samples.items():
        try:
            summary = RunSummary.read(folder)
        except (OSError, ValueError, KeyError, TypeError):
            continue  # said, by name, when the crops are cut
        records = summary.frame_digests
        if not records:
            logging.getLogger(__name__).info("%s: no frame digests recorded (an earlier ctcnet's "
                                             "run): frames not checked", name)
            continue
        # Its files as they are: the check reads bytes, not the model's channels.
        cartridge = open_scanned_cartridge(summary, scans, every_channel=True)
        changed = []
        for frame in cartridge.frames:
            why = frame_change(frame.files, records.get(frame.frame_id),
                               read=functools.partial(cartridge.read, frame))
            if why is not None:
                changed.append((frame.frame_id, why))
        if changed:
            more = f" and {len(changed) - 1} more" if len(changed) > 1 else ""
            raise InputError(f"sample {name}: frame {changed[0][0]} changed since predict read "
                             f"it ({changed[0][1]}){more}: its crops would be cut from other "
                             "pixels than those called; restore it, or predict the scan again",
                             cartridge.root)
