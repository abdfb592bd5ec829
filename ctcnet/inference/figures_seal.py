"""The seal of a summary.json's figures (``figures_sha256``): a checksum of the counts, rates
and what they rest on, written again with them, so that a count changed by hand (a "corrected"
figure) is told by whatever reads the file for a report (``ctcnet draws``, ``ctcnet evaluate
--expected``). A checksum, not a signature: whoever edits a file on purpose can seal it again.
And the digests it records of the tables predict wrote (:func:`table_as_recorded`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ctcnet.core.json_text import finite_or_null
from ctcnet.errors import InputError
from ctcnet.io.digests import file_sha256

# What a report's figures rest on: a summary.json whose figures were changed after ctcnet wrote
# them (a count "corrected" by hand) is told by its seal, ``figures_sha256``.
FIGURE_FIELDS = ("sample_id", "status", "counts", "held", "per_7_5_ml", "blood_volume_ml",
                 "blood_volume_processed_ml", "tally", "reviewed", "events_sha256", "problems")


def _seal(data: dict, keys: tuple[str, ...]) -> str:
    """A checksum of ``data``'s ``keys`` as its JSON holds them."""
    sealed = finite_or_null({key: data.get(key) for key in keys})
    text = json.dumps(sealed, sort_keys=True, allow_nan=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def figures_sha256(data: dict) -> str:
    """The seal of a summary's figures (:data:`FIGURE_FIELDS`, as its JSON holds them): a
    checksum that tells an edit by hand, not a signature."""
    return _seal(data, FIGURE_FIELDS)


# What made the figures: the model file and network, the software, the scan's and its frames'
# digests, the panel and the settings the calls were made under. Sealed apart from the figures
# (``provenance_sha256``), so that a summary written before it was still reads; the audit
# (``ctcnet verify --results``) tells one edited by hand: a model digest written over passed.
PROVENANCE_FIELDS = ("model", "software", "ctcnet_version", "cartridge_id", "frame_digests",
                     "panel", "run_fingerprint")


# How much blood was read and how: the frames read and skipped (and why), the events of each,
# the crowding. Sealed apart too (``reading_sha256``): a skipped frame edited away read as a
# whole sample, and the audit passed it.
READING_FIELDS = ("frames", "skipped_frames", "events_per_mm2", "events_by_frame")
# Whose blood and how much of it was stated: cartridge.json's record as predict read it (a
# patient id, a draw's date) and whether the tube's volume was stated. Sealed apart too
# (``sample_record_sha256``): another patient's id edited in read as one patient's draws.
SAMPLE_RECORD_FIELDS = ("cartridge_info", "blood_volume_stated")
# What the rates rest on beside the counts: the sample's status and problems and the blood
# volumes. Sealed apart too (``basis_sha256``): the figures' seal broken, the review server
# wrote the counts again from the events and sealed these as it found them (a volume read
# edited from 7.5 to 2.5 mL tripled the rate, and the audit then passed it).
BASIS_FIELDS = ("sample_id", "status", "problems", "blood_volume_ml",
                "blood_volume_processed_ml")
# Each seal written beside the figures' and what it seals; one an earlier ctcnet did not
# write is absent, and such a summary still reads.
SEALS = {"provenance_sha256": PROVENANCE_FIELDS, "reading_sha256": READING_FIELDS,
         "sample_record_sha256": SAMPLE_RECORD_FIELDS, "basis_sha256": BASIS_FIELDS}


# What each seal keeps, in words for an audit's line or a refusal (its key alone read "what
# summary.json's seal(s) sample_record_sha256 seal was changed").
SEALED_WORDS = {
    "provenance_sha256": "what made its figures (summary.json's model, software, panel, the "
                         "scan's and frames' digests, settings)",
    "reading_sha256": "what its blood read rests on (summary.json's frames read and skipped, "
                      "their events, the events per mm^2)",
    "sample_record_sha256": "its sample's record (summary.json's cartridge_info: the patient, "
                            "the draw's date; whether the blood volume was stated)",
    "basis_sha256": "what its rates rest on (summary.json's status, problems and blood "
                    "volumes)"}


def edited_text(broken: list[str]) -> str:
    """What each of the ``broken`` seals keeps, said changed since ctcnet wrote it."""
    return "; ".join(f"{SEALED_WORDS.get(name, name)} was changed since ctcnet wrote it (its "
                     f"seal, {name}; edited by hand?)" for name in broken)


def sample_record_of(summary: dict) -> dict | None:
    """cartridge.json's record of the sample as a summary.json (parsed) kept it: its
    ``cartridge_info``; {} where the summary seals a record (``sample_record_sha256``) but
    holds none (cartridge.json had no key of its own then); None where it predates the record
    (an earlier ctcnet's: not known, so not compared). A record given since, to a cartridge
    that had none, read as "not known" and was never said."""
    info = summary.get("cartridge_info")
    if isinstance(info, dict):
        return info
    return {} if "sample_record_sha256" in summary else None


def record_seals(data: dict) -> dict[str, str]:
    """Every seal of :data:`SEALS` of a summary's ``data``, by its key."""
    return {name: _seal(data, keys) for name, keys in SEALS.items()}


def seal_edited(data: dict, name: str) -> bool | None:
    """Whether what the seal ``name`` (of :data:`SEALS`) seals is not as ctcnet sealed it;
    None where no such seal was written (an earlier ctcnet's summary)."""
    seal = data.get(name)
    return None if seal is None else seal != _seal(data, SEALS[name])


def refuse_broken_seals(data: dict) -> None:
    """ValueError naming the seals of :data:`SEALS` of a summary's ``data`` that no longer
    hold (an edit by hand where the counts, which the review writes again from the events,
    are not what changed): written over, the edit would be sealed as ctcnet's."""
    broken = broken_seals(data)
    if broken:
        raise ValueError(edited_text(broken) + ": not written over, which would seal the "
                         "edit as ctcnet's; ctcnet verify --results names it, and predict run "
                         "again writes the summary anew")


def refuse_edited_summary(data: dict, folder: str | Path) -> str | None:
    """Refuse (InputError) a summary.json a seal of which no longer holds, naming what was
    edited, before an export or a crop cut carries it on (an edited model path and status
    went into an FCS file's keywords beside its sign-off); :func:`check_figures_sealed`'s
    note for an earlier ctcnet's summary, else None."""
    refuse_edited_seals(data, folder)
    return check_figures_sealed(data, folder)


def refuse_edited_seals(data: dict, folder: str | Path) -> None:
    """Refuse (InputError) a summary.json a seal of :data:`SEALS` of which no longer holds,
    naming what each keeps."""
    broken = broken_seals(data)
    if broken:
        raise InputError(f"{edited_text(broken)}: not read; `ctcnet verify --results` names "
                         "it, and ctcnet predict run again writes the summary anew", folder)


def broken_seals(data: dict) -> list[str]:
    """The seals of :data:`SEALS` of a summary's ``data`` that no longer hold (one absent, an
    earlier ctcnet's, holds nothing to check)."""
    return [name for name in SEALS if seal_edited(data, name)]


def provenance_edited(data: dict) -> bool | None:
    """:func:`seal_edited` of what made a summary's figures."""
    return seal_edited(data, "provenance_sha256")


# A note for a summary without a seal, written before ctcnet sealed its figures.
UNSEALED = ("summary.json written before ctcnet sealed its figures (an earlier version's): "
            "read as it is, its figures unchecked")


def check_figures_sealed(data: dict, folder: str | Path) -> str | None:
    """Refuse a summary.json whose figures are not those ctcnet sealed (:func:`figures_sha256`)
    or whose seal was taken away (a field only a sealing ctcnet writes is there): a draw, a
    spike-in or a method comparison would report a count nobody made. Returns
    :data:`UNSEALED` for a summary an earlier ctcnet wrote (read as it is), else None."""
    seal = data.get("figures_sha256")
    if seal is None:
        if "events_csv_sha256" in data:  # written by a ctcnet that seals: the seal removed
            raise InputError("summary.json's figures have lost their seal (figures_sha256), "
                             "which the ctcnet that wrote it writes: edited by hand? Not read; "
                             "`ctcnet review` on the results folder writes them again from "
                             "the events, or rerun ctcnet predict", folder)
        return UNSEALED
    if seal != figures_sha256(data):
        raise InputError("summary.json's figures were changed since ctcnet wrote them (edited "
                         "by hand?): not read; `ctcnet review` on the results folder writes "
                         "them again from the events, or rerun ctcnet predict", folder)
    return None


def figures_edited(data: dict) -> bool:
    """Whether a summary's figures are not those a sealing ctcnet wrote (its seal differs, or
    was taken away); an earlier ctcnet's unsealed summary is not."""
    try:
        check_figures_sealed(data, "summary.json")
    except InputError:
        return True
    return False


# The digest summary.json records of each table predict writes.
TABLE_DIGESTS = {"events.parquet": "events_sha256", "events.csv": "events_csv_sha256"}


def table_as_recorded(folder: str | Path, summary: dict, table: str = "events.parquet"
                      ) -> bool | None:
    """Whether a sample's ``table`` is the one its summary (as parsed) records by SHA-256; None
    where none is recorded (a summary written before it was); a table missing is not."""
    recorded = summary.get(TABLE_DIGESTS[table]) if isinstance(summary, dict) else None
    if not recorded:
        return None
    try:
        return file_sha256(Path(folder) / table) == recorded
    except OSError:
        return False
