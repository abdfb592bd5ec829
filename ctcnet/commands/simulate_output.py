"""Where ``ctcnet simulate`` writes: an existing output refused unless ``--overwrite``; with
it, the earlier one set aside while the new one is written, put back where the run fails or
is stopped; a run that fails or is stopped leaves no file of its own (also in a folder the
user made for it), and one killed outright leaves a mark naming its files simulate's."""

from __future__ import annotations

import contextlib
import logging
import os

from ctcnet.core.paths import desktop_file
from ctcnet.errors import MACHINE_ERRNOS, InputError
from ctcnet.io.atomic import (
    check_output_folder,
    existing_outputs,
    refuse_existing,
)
from ctcnet.io.written_together import written_together

log = logging.getLogger(__name__)

# Beside a simulate output being written (the kind, crops or cartridge): a run killed before
# its output was whole left files --overwrite refused as nobody's.
UNFINISHED_MARK = ".ctcnet-simulate-unfinished"


def _unfinished(out, what: str) -> bool:
    """Whether ``out`` is a ``simulate what`` run's output that was killed before it was whole
    (its folder made empty by that run, so every file in it is the run's)."""
    try:
        return (out / UNFINISHED_MARK).read_text(encoding="utf-8").strip() == what
    except (OSError, UnicodeDecodeError):
        return False


def _simulated_by_us(out, what: str) -> bool:
    """Whether folder ``out`` is an earlier ``ctcnet simulate crops|cartridge`` output, by the
    marker its writer leaves: dataset.json's ``generator``, cartridge.json's ``simulated``;
    or one a killed run left (:data:`UNFINISHED_MARK`)."""
    import json

    if _unfinished(out, what):
        return True

    marker, check = {"crops": ("dataset.json", lambda d: str(d.get("generator", ""))
                               .startswith("ctcnet.simulate")),
                     "cartridge": ("cartridge.json", lambda d: d.get("simulated") is True)}[what]
    try:
        data = json.loads((out / marker).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and check(data)


_OWN_FILES = {"crops": {"manifest.csv", "panel.json", "dataset.json"},  # (beside its crops
              "cartridge": {"cartridge.json", "panel.json", "ground_truth.csv"}}  # or frames)


def _not_simulated(out, what: str) -> list[str]:
    """The files of an earlier simulate output ``out`` that simulate did not write (paths
    relative to it): not its crops (manifest.csv's), frames or its own records."""
    import csv
    import re

    own = set(_OWN_FILES[what]) | {UNFINISHED_MARK}
    # A run killed before its record was written: its crops named as simulate names them
    # (<class>/<sample>__<number>.<format>); anything else is someone's.
    crop = re.compile(r"[^/]+/[^/]+__\d+\.(tif|png|jpg)") if _unfinished(out, what) else None
    if what == "crops":
        try:
            with open(out / "manifest.csv", newline="", encoding="utf-8") as f:
                own.update(row.get("path") or "" for row in csv.DictReader(f))
        except (OSError, UnicodeDecodeError, csv.Error):
            pass
    frame = re.compile(r"r\d+c\d+(_c\d+)?\.(tif|png)")
    # (a gallery drawn into the folder later: simulate's too, as gallery_<class>.png)
    gallery = re.compile(r"gallery_[^/]+\.png")
    found = []
    for path in sorted(p for p in out.rglob("*") if p.is_file() or p.is_symlink()):
        name = path.relative_to(out).as_posix()
        # A file a desktop leaves in any folder it shows is no one's work.
        if name in own or desktop_file(path.name) or \
                (what == "cartridge" and "/" not in name and frame.fullmatch(name)) or \
                (crop is not None and crop.fullmatch(name)) or gallery.fullmatch(name):
            continue
        found.append(name)
    return found


@contextlib.contextmanager
def output_replaced(args, taxonomy):
    """Refuse an existing output unless --overwrite; with it, set the earlier one aside (a
    hidden folder beside it) while the new one is written: removed once it is whole, put
    back where the run fails or is stopped (an option refused deep in the simulator deleted
    the earlier output and wrote nothing). A run that fails leaves no part of its own."""
    import shutil
    from pathlib import Path

    out = Path(args.out)
    check_output_folder(out, "OUT folder")
    if args.what == "gallery":  # files in a folder that may hold other things
        files = [out / f"gallery_{name}.png" for name in taxonomy.names]
        refuse_existing(files, args.overwrite, "OUT folder")
        _made(out)
        # As one: a run stopped after two classes' images left them, and its rerun was
        # refused for them; the earlier images an --overwrite replaced are put back.
        with written_together(replacing=files) as written:
            try:
                yield
            finally:
                written.extend(f for f in files if f.exists())
        return
    _say_killed_replacements(out)
    aside = None
    if existing_outputs([out]):
        # A folder simulate did not make is never offered --overwrite, which would refuse it.
        if not out.is_dir() or not _simulated_by_us(out, args.what):
            # (one a killed run set aside, its pid gone, lies beside it: said, not lost)
            kept = sorted(out.resolve().parent.glob(f".{out.resolve().name}.replaced-*"))
            raise InputError(f"exists and is not an earlier ctcnet simulate {args.what} "
                             "output (which --overwrite would replace); remove it yourself or "
                             "choose another OUT folder" + (
                                 f" (the output a killed run set aside lies in {kept[0]}: "
                                 "move it back)" if kept else ""), out)
        refuse_existing([out], args.overwrite, "OUT folder")
        others = _not_simulated(out, args.what)
        if others:  # a lab's notes or hand-added crops would go with the earlier output
            raise InputError(f"holds {len(others)} file(s) ctcnet simulate did not write "
                             f"({', '.join(others[:5])}{', ...' if len(others) > 5 else ''}): "
                             "--overwrite replaces the whole folder; move them out first",
                             out)
        if out.resolve() in (Path.cwd(), *Path.cwd().parents):  # (set aside, it'd be written)
            raise InputError("is the folder this command runs in (or holds it): --overwrite "
                             "sets a folder aside while it writes anew; run it from elsewhere",
                             out)
        aside = out.resolve().with_name(f".{out.resolve().name}.replaced-{os.getpid()}")
        out.rename(aside)
    made = not out.exists()  # (an empty folder the user made stays, as it was)
    there = set() if made else {p.name for p in out.iterdir()}  # (none: refused above)
    try:
        _made(out)
        # A run killed outright (SIGKILL, the machine's memory) leaves its files without
        # the record that names them simulate's: this mark does, until the output is whole.
        (out / UNFINISHED_MARK).write_text(args.what + "\n", encoding="utf-8")
        yield
        (out / UNFINISHED_MARK).unlink(missing_ok=True)
    except BaseException:
        if made:
            shutil.rmtree(out, ignore_errors=True)
        else:  # a folder the user made (mkdir -p OUT): emptied of this run's files alone
            for path in list(out.iterdir()):
                if path.name not in there:
                    if path.is_dir() and not path.is_symlink():
                        shutil.rmtree(path, ignore_errors=True)
                    else:
                        path.unlink(missing_ok=True)
        if aside is not None:
            aside.rename(out)
        raise
    if aside is not None:
        shutil.rmtree(aside)


def _say_killed_replacements(out) -> None:
    """Say the earlier output an ``--overwrite`` run killed outright (SIGKILL, the machine's
    memory) set aside, ``.<OUT>.replaced-<pid>``, its process gone from this machine: it lay
    hidden for good, as large as a cartridge, and no rerun named it. Said, not moved: a run
    on another machine sharing the folder (or in another container) may still be writing."""
    import glob

    from ctcnet.core.processes import process_running

    name = out.resolve().name
    for aside in sorted(out.resolve().parent.glob(f".{glob.escape(name)}.replaced-*")):
        pid = aside.name.rsplit("-", 1)[-1]
        if pid.isdigit() and aside.is_dir() and not process_running(int(pid)):
            log.warning("%s: %s holds the earlier output an --overwrite run set aside and did "
                        "not finish replacing (killed?): move it back to %s, or remove it",
                        out, aside, out.name)


def _made(out) -> None:
    """Make the output folder, or say in one line why it cannot be made (a file in its path,
    a place no folder can be made): a traceback before."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        if err.errno in MACHINE_ERRNOS:  # (a full or read-only disk: the machine's, exit 4)
            raise
        raise InputError(f"cannot make the output folder here: {err.strerror}", out) from None
