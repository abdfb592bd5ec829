"""A cartridge's own words: ``cartridge.json`` read and its values checked, and the sample id,
which names the output folder, made a plain name.

``cartridge.json`` is optional; a value it states must be of its kind (a positive blood volume,
whole frame counts and sizes), never guessed past; a key that is not read but looks like one that
is (``blood_volume``) is named. Without a ``sample_id`` the cartridge's name gives it.
"""

from __future__ import annotations

import difflib
import json
import logging
import math
import os
import re
import unicodedata
from pathlib import Path

from ctcnet.core.decimal_comma import meant_by_comma
from ctcnet.core.paths import written_lately
from ctcnet.core.run_log import LOGS_DIR
from ctcnet.core.said_once import first_time
from ctcnet.errors import InputError
from ctcnet.io.hand_edits import json_error_text
from ctcnet.io.metadata_text import read_metadata_text
from ctcnet.io.sources import claim

log = logging.getLogger(__name__)


def say_once(path: Path, message: str) -> None:
    """Warn of a cartridge's metadata once per process: a run opens a cartridge several times
    (its channels looked at, then checked, then read)."""
    if first_time(__name__, str(path), message):
        log.warning("%s: %s", path, message)


def positive_number(info: dict, key: str, default: float, root: Path) -> float:
    """A finite number > 0 from cartridge.json (null, a bool, text or 0 is refused, not
    guessed); ``default`` only when the key is absent."""
    value = info.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not math.isfinite(value) or value <= 0:
        unknown = (" (null: state it, or leave the key out"
                   + (f" to read {default:g})" if default > 0 else ")")
                   if value is None else "")
        meant = meant_by_comma(value)
        unknown += (f" (a decimal comma, as text: write {meant}, a number without quotes)"
                    if meant else "")
        raise InputError(f"cartridge.json: {key} must be a positive number, got "
                         f"{'null' if value is None else repr(value)}{unknown}", root)
    return value


# No scan holds more frames, rows or columns, nor frames of more pixels a side: a larger
# number is a slip (num_frames 10^9 scaled a 4-frame cartridge's counts by 2.5 x 10^8).
MAX_STATED = 1_000_000


def whole_number(info: dict, key: str, root: Path) -> int | None:
    """A whole number from 1 to :data:`MAX_STATED` from cartridge.json, None when the key is
    absent (anything else refused by name)."""
    value = info.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not float(value).is_integer() or not 1 <= value <= MAX_STATED:
        raise InputError(f"cartridge.json: {key} must be a whole number from 1 to "
                         f"{MAX_STATED:,}, got {value!r}", root)
    return int(value)


def check_stated_layout(info: dict, root: Path) -> None:
    """What cartridge.json states of the layout must be numbers of its kind: whole frame
    sizes and rows, a positive pixel size (which must agree with the one read:
    :func:`ctcnet.io.plausibility.plausibility_problems`)."""
    for key in ("rows", "frame_height", "frame_width"):
        whole_number(info, key, root)
    if "pixel_size_um" in info:
        positive_number(info, "pixel_size_um", 0.0, root)


# A sample id names folders and files with suffixes of their own (``<id>_geojson``).
MAX_SAMPLE_ID_BYTES = 200


# The files a batch writes at the top of its --out, beside the samples' folders: no sample's
# folder may take their names.
RUN_INDEX_FILE = "run.json"
SAMPLES_FILE = "samples.csv"
RESERVED_OUT_NAMES = (RUN_INDEX_FILE, SAMPLES_FILE, LOGS_DIR)
# The layout of what predict writes (run.json, samples.csv, summary.json, the events and
# predictions tables), recorded in each as ``format_version``: raised when a field is removed
# or renamed, or changes its meaning, type or unit; a field added leaves it (a reader keyed on
# the fields it knows reads on). docs/outputs.md lists the fields of this version.
OUTPUT_FORMAT_VERSION = 1


def output_format() -> dict:
    """What names an output's layout and the software that wrote it: ``format_version``
    (:data:`OUTPUT_FORMAT_VERSION`) and ``ctcnet_version``."""
    from ctcnet import __version__

    return {"format_version": OUTPUT_FORMAT_VERSION, "ctcnet_version": __version__}


# What a file name may not hold on Windows (and so on a lab's share that Windows users open),
# and the names it keeps for devices, whatever their suffix ("CON", "nul.txt").
WINDOWS_FORBIDDEN = '<>:"|?*'
WINDOWS_DEVICES = {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$",
                   *(f"{port}{n}" for port in ("COM", "LPT") for n in "0123456789¹²³")}


def say_if_mistyped(sample_id: str, root: Path) -> None:
    """Warn where cartridge.json's sample id is its folder's name with a slip (``P20_WK3`` in
    ``P02_WK3``: two characters swapped, one changed): the output goes by the id, and a draw
    looked for under the folder's name is not found. Ids unlike their folder's name (a lab
    naming folders by run) are no slip and are not said."""
    name = unicodedata.normalize("NFC", root.name)
    # Case and separators aside (PTA-D0 in PTA_D0: a lab's convention for ids and folders,
    # said on every command that read it), the same name.
    if _separators_aside(sample_id) == _separators_aside(name):
        return
    if difflib.SequenceMatcher(None, sample_id.lower(), name.lower()).ratio() >= 0.8:
        say_once(root, f"cartridge.json's sample_id {sample_id!r} is not its folder's name "
                       f"{name!r}, nearly: a slip in one of them? The outputs go by the "
                       f"sample id ({sample_id})")


def _separators_aside(name: str) -> str:
    """A name in lower case without its separators (``-``, ``_``, ``.``, spaces)."""
    return re.sub(r"[-_.\s]", "", name.lower())


def safe_sample_id(value, root: Path, source: str = "cartridge.json: sample_id") -> str:
    """The sample id names the output folder: one plain path component, never a path; its
    accents composed (NFC), as a folder copied through macOS (decomposed) and one named on
    Windows or Linux are one sample. ``source``: where the value came from, for the
    refusal."""
    sid = unicodedata.normalize("NFC", str(value).strip()) if isinstance(value, (str, int)) \
        and not isinstance(value, bool) else ""
    # Path(sid).name differs from sid for anything with a drive or root (Windows "c:x").
    if not sid or sid in (".", "..") or "/" in sid or "\\" in sid or \
            ("\0" not in sid and sid != Path(sid).name):
        problem = (("text or a whole number, not a " + type(value).__name__) if not
                   isinstance(value, (str, int)) or isinstance(value, bool) else
                   "an empty name") if not sid else "no '/', '\\' or '..'"
    elif any(unicodedata.category(c) == "Cc" for c in sid):
        problem = "no control characters (a line break, a tab)"
    elif any(unicodedata.category(c) == "Cs" for c in sid):  # "\udce9" in JSON: no text
        problem = "no lone surrogates (it cannot be written as a file name)"
    elif sid.startswith("."):
        problem = "no leading '.' (a hidden folder)"
    elif len(sid.encode("utf-8")) > MAX_SAMPLE_ID_BYTES:
        problem = f"at most {MAX_SAMPLE_ID_BYTES} bytes (file systems allow 255 per name)"
    elif sid.lower() in RESERVED_OUT_NAMES:
        problem = f"not {sid!r}: a batch's --out holds a file or folder of that name"
    elif any(c in WINDOWS_FORBIDDEN for c in sid) or sid.endswith("."):
        problem = (f"none of {' '.join(WINDOWS_FORBIDDEN)} and no trailing '.' (Windows cannot "
                   "name a file so: the output could not be opened from a lab's share)")
    elif sid.split(".")[0].upper() in WINDOWS_DEVICES:
        problem = (f"not {sid.split('.')[0]!r}, with or without a suffix: Windows keeps the "
                   "name for a device, so the output could not be opened from a lab's share")
    else:
        if isinstance(value, str) and value.strip() != value:
            say_once(root, f"{source} {value!r} has spaces at its ends: read as {sid!r} (the "
                           "output folder's and every table's name; a LIMS keyed on the id as "
                           "written finds it by that)")
        return sid
    raise InputError(f"{source} {value!r} must be a plain name (it names the output folder): "
                     f"{problem}", root)


# The cartridge.json key naming the patient a draw is of (``ctcnet draws --patient-key``;
# ``ctcnet crops`` carries it into a crop folder's manifest).
PATIENT_KEY = "patient_id"
# The cartridge.json keys ctcnet reads; others (a lab's own records, the simulator's) are
# kept as they are.
CARTRIDGE_KEYS = ("sample_id", "num_frames", "columns", "rows", "frame_height", "frame_width",
                  "blood_volume_ml", "pixel_size_um", "repeated_frames", "tile_px")


def unread_keys(info: dict, most: int = 20) -> dict | None:
    """cartridge.json's keys ctcnet does not read whose values are plain (text, numbers,
    true/false): a lab's own record of the scan (``site``, ``scanner``, ``operator``) that
    the outputs carry; the first ``most``, texts cut to 200 characters; None where none. A
    number JSON cannot hold (NaN, Infinity, which Python's json writes) is left out: the
    summary it goes into must parse anywhere."""
    kept = {str(k): (v[:200] if isinstance(v, str) else v) for k, v in info.items()
            if k not in CARTRIDGE_KEYS and isinstance(v, (str, int, float, bool))
            and not (isinstance(v, float) and not math.isfinite(v))}
    return dict(list(kept.items())[:most]) or None


def record_changes(before: dict | None, now: dict | None) -> list[str]:
    """The keys of a sample's record (:func:`unread_keys`'; None: none) that read otherwise
    ``now`` than ``before``: a patient id or a draw's date corrected."""
    before, now = before or {}, now or {}
    return sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))


def record_changes_text(before: dict | None, now: dict | None) -> str:
    """:func:`record_changes` in words: ``patient_id 'PAT-001', now 'PAT-002'; ...``."""
    before, now = before or {}, now or {}
    return "; ".join(f"{k} {before.get(k)!r}, now {now.get(k)!r}"
                     for k in record_changes(before, now))


# Words of a key naming a person or a patient's identifier (patient_name, dob, mrn,
# hospital_number): copied into summary.json and the report's header like any other key.
_PERSONAL_WORDS = re.compile(r"(^|_)(surname|firstname|lastname|forename|dob|birth|"
                             r"birthdate|dateofbirth|mrn|hospital|nhs|ssn|address|phone|"
                             r"email|operator|technician|doctor|physician|clinician)(_|$)|"
                             r"(^|_)(patient|first|last|full|given|family|person)_?name|"
                             r"^name$")


def personal_keys_note(info: dict) -> str | None:
    """What to say of cartridge.json's unread keys that look like personal data (a patient's
    name, date of birth or hospital number, a staff member's name: an operator, a referring
    doctor; a coded ``patient_id`` is none), or None."""
    kept = unread_keys(info) or {}
    personal = [k for k in kept
                if _PERSONAL_WORDS.search(re.sub(r"[^a-z0-9]+", "_", k.lower()))]
    if not personal:
        return None
    return (f"cartridge.json's {', '.join(personal)} "
            f"{'looks' if len(personal) == 1 else 'look'} like personal data: copied into "
            "summary.json (cartridge_info) and the report's header; leave them out of "
            "cartridge.json where results leave the lab (docs/outputs.md, Identifiers in "
            "the outputs)")


# The keys a sample's counts or rates rest on: one of them misspelt leaves its default in
# use (7.5 mL of blood, panel.json's pixel size, the frames found), so the sample is partial
# with the slip said, not ok with a warning a night's batch scrolls past.
RESULT_KEYS = ("blood_volume_ml", "pixel_size_um", "num_frames")


def misspelled_keys(info: dict) -> dict[str, str]:
    """cartridge.json's keys that are not read but look like one that is (``blood_volume``
    for ``blood_volume_ml``): key -> the key meant. Such a value would be passed over and
    its default used (7.5 mL) without a word."""
    import difflib

    out = {}
    for key in info:
        if key not in CARTRIDGE_KEYS:
            close = difflib.get_close_matches(str(key).lower(), CARTRIDGE_KEYS, n=1, cutoff=0.75)
            if close and close[0] not in info:
                out[key] = close[0]
    return out


def key_slips(info: dict) -> tuple[list[str], list[str]]:
    """cartridge.json's misspelt keys said: (problems: those of :data:`RESULT_KEYS`, whose
    defaults the counts or rates then rest on; warnings: the rest)."""
    problems, warnings = [], []
    for key, meant in misspelled_keys(info).items():
        line = f"cartridge.json's {key!r} is not read (did you mean {meant!r}?)"
        if meant in RESULT_KEYS:
            problems.append(f"{line}: its default was used in its place; correct the key and "
                            "run the same command again")
        else:
            warnings.append(line)
    return problems, warnings


def read_cartridge_info(root: Path) -> dict:
    """cartridge.json as a checked mapping (empty when the file is absent)."""
    path = root / "cartridge.json"
    if not path.exists():
        return {}
    text = read_metadata_text(path)
    try:
        info = json.loads(text)
    except (ValueError, RecursionError) as err:  # RecursionError: nested past Python's limit
        writing = (" (written in the last minutes: if the scanner is still writing it, run "
                   "again once it is whole)") if written_lately([path]) else ""
        raise InputError(f"cartridge.json is not valid JSON: {json_error_text(err, text)}"
                         f"{writing}", root) from None
    if not isinstance(info, dict):
        raise InputError("cartridge.json must hold one JSON object (sample_id, columns, "
                         f"blood_volume_ml, ...), got {type(info).__name__}", root)
    return info


def unopened_sample_id(root: str | Path) -> str:
    """The name a cartridge that cannot be opened (no frames, a frame list that does not
    read) is set aside under: the sample id its cartridge.json states where that file reads,
    so the refusal reaches the lab's system under the sample it knows; else the folder's
    (or the file's) name."""
    root = Path(root)
    try:
        info = read_cartridge_info(root) if root.is_dir() else {}
        if "sample_id" in info:
            return safe_sample_id(info["sample_id"], root)
    except (InputError, OSError):  # the file itself unreadable: the folder names it
        pass
    return root.name


def name_as_sample_id(root: Path) -> str:
    """The sample id a cartridge's name gives when cartridge.json states none: the folder's
    name (a container's up to its first dot). A name that is not UTF-8 (b'cart\\xe9': a
    Latin-1 system's "carté") is read as Windows-1252, bytes it lacks as '_', with a warning:
    the id names the output folder and is written in every table, as UTF-8."""
    name = root.name if claim(root) is None else root.name.split(".")[0]
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        readable = os.fsencode(name).decode("cp1252", errors="replace").replace("\ufffd", "_")
    say_once(root, f"its name {ascii(os.fsencode(name))} is not UTF-8: sample id "
                    f"{readable!r} (read as Windows-1252); set sample_id in cartridge.json "
                    "to choose another")
    return readable
