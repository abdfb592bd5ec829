"""The run a reviewer's decisions are made on: a predict output folder read back, the events
put in front of a reviewer (candidates), and the run's identity decisions are keyed by.

Candidates (what a reviewer looks at): every call of a reported class (``ctc``, ``cluster``),
every event the model flagged for review, and a fixed random sample of the rest for quality
control (a model that hides CTCs among confident debris calls is only caught this way), plus
any event an earlier decision attaches to, so no decision counts unseen. The sample is drawn
with a seed taken from the sample id, so it stays the same across reloads and server restarts.

Predict numbers events in scan order, and a re-run (``--overwrite``, another model, other
detection settings) numbers them anew, so an event id alone would hand a decision to another
cell: :func:`run_id` is a digest of a run's numbering, and :class:`RunEvents` finds the event
of the current run nearest a position recorded with an older decision.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import logging
import zlib
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from ctcnet.core.file_modes import account_name, owner_and_mode
from ctcnet.core.paths import same_name
from ctcnet.core.said_once import first_time
from ctcnet.errors import InputError
from ctcnet.inference.summary import RunSummary
from ctcnet.io.atomic import folder_is_held
from ctcnet.io.digests import file_sha256

log = logging.getLogger(__name__)

# One cell's centroid moves by a pixel or two between runs with other detection settings;
# two events are at least a seed distance apart (DetectConfig.seed_distance_um, 7 um), so
# less than half of that never reaches a neighbour instead.
POSITION_TOLERANCE_UM = 3.0
QC_FRACTION = 0.02  # of the events that are neither reported calls nor flagged
QC_MIN = 20
# At most this many: 2 % of a 540,000-event sample was 10,500 events of optional checking
# beside the calls that need a person.
QC_MAX = 200


def default_reviewer() -> str:
    """The login name, or ``reviewer`` where there is none (a bare container)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name in a bare container
        return "reviewer"


def load_sample(sample_dir: str | Path) -> tuple[pd.DataFrame, RunSummary]:
    """A predict output folder's events table and summary; InputError if it is not one."""
    sample_dir = Path(sample_dir)
    summary_path, events_path = sample_dir / "summary.json", sample_dir / "events.parquet"
    if not summary_path.is_file() or not events_path.is_file():
        raise InputError("not a predict output folder (no summary.json / events.parquet)",
                         sample_dir)
    summary = _summary_of(sample_dir)
    try:
        edited = summary.events_sha256 and file_sha256(events_path) != summary.events_sha256
        events = pd.read_parquet(events_path)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise InputError(f"cannot read the predict outputs: events.parquet: {err}",
                         sample_dir) from None
    if edited:  # the calls a review, an export or a crop cut would read are not the run's
        raise InputError("events.parquet was changed since predict wrote it (its SHA-256 is "
                         "not the one summary.json records: edited by hand?); rerun ctcnet "
                         "predict on this sample to write it again from its journal",
                         events_path)
    _refuse_another_samples(sample_dir, summary)
    _say_once(sample_dir, summary)
    return events, summary


# Where a crop folder's calls are read, for a command that reads a cartridge's events.
CROP_SET_CALLS = ("shown with the crops in {page} (the table: predictions.csv): the review "
                  "page, `ctcnet crops` and `export-events` read cartridges' events")


def check_sample_folder(sample_dir: str | Path) -> None:
    """What :func:`load_sample` refuses of a sample folder without reading its events table:
    no summary, one that does not read, or another sample's outputs (copied or renamed)."""
    sample_dir = Path(sample_dir)
    _refuse_another_samples(sample_dir, _summary_of(sample_dir))


def _summary_of(sample_dir: Path) -> RunSummary:
    """A sample folder's summary.json, refused naming it where it does not read as a run's
    record (a hand edit: a field missing, a panel of null, a text where a number belongs
    were tracebacks, or errors naming no file, in the review, crops and exports)."""
    try:
        summary = RunSummary.read(sample_dir)  # (its errors name the file)
        if not isinstance(summary.panel, dict) or not isinstance(
                summary.panel.get("pixel_size_um"), (int, float)):
            raise ValueError("summary.json: its panel is not a panel's record")
        for name in ("blood_volume_ml", "blood_volume_processed_ml"):
            if not isinstance(getattr(summary, name, None), (int, float, type(None))):
                raise ValueError(f"summary.json: {name} is not a number")
    except (OSError, ValueError) as err:
        raise InputError(f"cannot read the predict outputs: {err}", sample_dir) from None
    return summary


def _refuse_another_samples(sample_dir: Path, summary: RunSummary) -> None:
    """Refuse a batch's sample folder that holds another sample's outputs (copied or renamed):
    its review, crops and exports would file one patient's cells under another's name. (In a
    batch's --out each folder is its sample id; a run into a folder of the caller's choosing,
    by the Python API, may be named anything.)"""
    name = sample_dir.resolve().name
    # The folder predict wrote it into, where the summary records it (any run, a batch's or
    # the Python API's); else a batch's, whose folder is its sample id.
    recorded = summary.output_folder or (
        summary.sample_id if (sample_dir.parent / "run.json").exists() else None)
    if recorded and not same_name(name, recorded):
        raise InputError(f"the folder holds the outputs of sample {summary.sample_id!r}, "
                         f"written into a folder named {recorded!r} (copied or renamed?): "
                         "its cells would be filed under another sample's name; rename it "
                         f"back to {recorded!r} to read it (an archive's record stays as it "
                         "was), or run ctcnet predict for the sample id you mean", sample_dir)


def _say_once(sample_dir: Path, summary: RunSummary) -> None:
    """What a reader of a sample folder should know of its record, once a folder: a summary
    that records no digest of its events table (an earlier ctcnet's, or the field removed:
    the table is not checked)."""
    if not first_time(__name__, str(sample_dir.resolve())):  # (the server reads it often)
        return
    if not summary.events_sha256:
        log.warning("%s: summary.json records no digest of events.parquet (written by an "
                    "earlier ctcnet, or the field removed): the table is not checked against "
                    "the run that wrote it", sample_dir)


_LINKS_SAID: set = set()  # (results folder, linked sample folders) already said
_CLOSED_SAID: set = set()  # (results folder, folders this account may not enter) said


def find_samples(results: str | Path) -> dict[str, Path]:
    """Sample id -> folder for a predict ``--out`` folder (or one sample's own folder)."""
    results = Path(results)
    if results.is_file():
        raise InputError(f"is a file; pass the predict output folder (for this file: "
                         f"{results.parent})", results)
    if not results.is_dir():
        raise InputError("results folder not found", results)
    if (results / "summary.json").is_file() and _holds(results, "predictions.parquet") \
            and not _holds(results, "events.parquet"):
        raise InputError("a crop folder's output: its calls are " +
                         CROP_SET_CALLS.format(page="its index.html"), results)
    if (results / "summary.json").is_file():
        return {results.resolve().name: results}
    if (results / "parts").is_dir() or (results / "events.parquet").is_file():
        # A sample's folder without its summary: predict writes it last (a rerun withdrew it)
        raise InputError("a sample's folder without its summary.json: " + (
            "ctcnet predict is writing it; wait for it to finish" if folder_is_held(results)
            else "the run writing it stopped before it finished; the same predict command "
            "resumes it"), results)
    closed = closed_folders(results)
    samples = {p.name: p for p in sorted(results.iterdir())
               if p not in closed and _holds(p, "summary.json", "events.parquet")}
    if closed and (str(results), tuple(closed)) not in _CLOSED_SAID:  # (said once a server)
        _CLOSED_SAID.add((str(results), tuple(closed)))
        log.warning("%s: %d folder(s) this account (%s) may not enter are left out (%s): a "
                    "results folder several accounts read is shared through a group "
                    "(docs/review.md)", results, len(closed), account_name(),
                    "; ".join(f"{p.name}: {owner_and_mode(p)}" for p in closed[:3]))
    # A sample folder that is a link to one elsewhere (another batch's patient) is not read:
    # the review, crops and exports write into sample folders, never through a link.
    linked = sorted(name for name, p in samples.items() if p.is_symlink())
    if linked and (str(results), tuple(linked)) not in _LINKS_SAID:  # (a server looks often)
        _LINKS_SAID.add((str(results), tuple(linked)))
        log.warning("%s: %d sample folder(s) are links to folders elsewhere, not read (%s): "
                    "copy or move the sample's folder here instead", results, len(linked),
                    ", ".join(linked[:3]))
    samples = {name: p for name, p in samples.items() if name not in linked}
    crop_sets = [p.name for p in sorted(results.iterdir()) if _holds(p, "predictions.parquet")]
    said = (f"; {len(crop_sets)} crop folder output(s) ({', '.join(crop_sets[:3])}"
            f"{', ...' if len(crop_sets) > 3 else ''}) hold a crop set's calls, "
            + CROP_SET_CALLS.format(page="each one's index.html") if crop_sets else "")
    if not samples:
        state = _index_state(results)
        # The samples a run began (their journal there) and did not finish, by name.
        begun = [p.name for p in sorted(results.iterdir())
                 if _holds(p, "parts") and not _holds(p, "summary.json")]
        said = (f"; begun and not finished: {', '.join(begun[:10])}"
                f"{', ...' if len(begun) > 10 else ''}" if begun else "") + said
        raise InputError("no predict outputs here " + (
            "yet: run.json says a run is writing into this folder; start once its first "
            "sample is done (the review then serves the others as they finish)"
            if state == "running" else
            f"yet: the run that wrote run.json {state} before its first sample was done; "
            "the same predict command resumes it" if state else
            "(expected a cartridge's <sample>/summary.json and events.parquet, as "
            "ctcnet predict --out writes)") + said, results)
    if crop_sets:
        log.warning("%s: left out%s", results, said)
    return samples


def _holds(folder: Path, *names: str) -> bool:
    """Whether ``folder`` is a folder holding each of ``names``; False where this account
    may not look into it (:func:`closed_folders` names those)."""
    try:
        return folder.is_dir() and all((folder / name).exists() for name in names)
    except PermissionError:
        return False


def closed_folders(results: str | Path) -> list[Path]:
    """The folders in ``results`` this account may not enter (another's, 0700), which may be
    samples; ``logs/`` aside (the runs' logs, no sample). A service account's one folder so
    refused every reviewer the whole results folder."""
    return [p for p in sorted(Path(results).iterdir()) if p.name != "logs" and p.is_dir()
            and not _enterable(p)]


def _enterable(folder: Path) -> bool:
    try:
        (folder / "summary.json").exists()
    except PermissionError:
        return False
    return True


def _index_state(results: Path) -> str | None:
    """What the folder's run.json says of the run writing into it: ``running`` (its process
    alive, or on another host), how it ended where it did ("was stopped", "failed", "was
    killed": a running one whose process on this host is gone), or None (no index, finished)."""
    from ctcnet.core.processes import recorded_process_alive

    try:
        index = json.loads((results / "run.json").read_text(encoding="utf-8"))
        state = index.get("state")
    except (OSError, ValueError, AttributeError):
        return None
    if state == "running":
        return "was killed" if recorded_process_alive(index) is False else "running"
    return {"stopped": "was stopped", "failed": "failed"}.get(state)


def reported_classes(summary: RunSummary) -> list[str]:
    """The classes a report counts per 7.5 mL (predict writes one figure per reported class)."""
    return list(summary.per_7_5_ml)


def select_candidates(events: pd.DataFrame, reported: list[str], sample_id: str,
                      qc_fraction: float = QC_FRACTION, qc_min: int = QC_MIN,
                      decided=()) -> pd.DataFrame:
    """The events to review, in scan order, with a ``why`` column: call, flagged, qc, or
    decided (an event only an earlier decision brings in, e.g. from a run that called it
    otherwise; ``decided`` holds the event ids decisions attach to)."""
    if not len(events):
        return events.assign(why=pd.Series(dtype=object))
    called = events["class"].isin(reported).to_numpy()
    flagged = events["review"].astype(bool).to_numpy()
    rest = np.flatnonzero(~called & ~flagged)
    n_qc = min(len(rest), max(qc_min, min(QC_MAX, int(np.ceil(qc_fraction * len(rest))))))
    rng = np.random.default_rng(zlib.crc32(sample_id.encode("utf-8")))
    qc = np.zeros(len(events), bool)
    qc[rng.choice(rest, size=n_qc, replace=False)] = True
    # After the draw, so the quality-control sample does not depend on what was decided.
    earlier = events["event_id"].isin(list(decided)).to_numpy()
    why = np.where(called, "call", np.where(flagged, "flagged",
                                            np.where(qc, "qc", "decided")))
    keep = called | flagged | qc | earlier
    return events[keep].assign(why=why[keep])


# ---------------------------------------------------------------------------------------------
# The run decisions are matched to.

def run_id(events: pd.DataFrame) -> str:
    """A digest of a run's event numbering: every event's id, frame and position, in order.

    Two runs share it only when each event id names the same position in both, which is
    exactly when a decision's ``event_id`` can be trusted as it is.
    """
    digest = hashlib.sha256()
    digest.update(events["event_id"].to_numpy(np.int64).tobytes())
    codes, frames = pd.factorize(events["frame_id"].astype(str))
    digest.update(codes.astype(np.int64).tobytes())
    digest.update("\0".join(frames).encode("utf-8"))
    for column in ("x", "y"):
        digest.update(events[column].to_numpy(np.float64).tobytes())
    return digest.hexdigest()[:16]


def calls_id(events: pd.DataFrame) -> str:
    """A digest of a run's calls: every event's id and class, in order. A rerun of predict
    with another model, rule or prior keeps the numbering (:func:`run_id`) but not, as a
    rule, every call: a sign-off covers the calls it was made on."""
    digest = hashlib.sha256()
    digest.update(events["event_id"].to_numpy(np.int64).tobytes())
    digest.update("\0".join(events["class"].astype(str)).encode("utf-8"))
    return digest.hexdigest()[:16]


class RunEvents:
    """The current run's events as decisions are matched to them: its id, each event's frame,
    position and call, the position tolerance in scan pixels, when the run was written
    (``written_at``, seconds since the epoch: old-layout decisions older than it were made on
    an earlier run) and the cartridge it scanned (``cartridge_id``; None for a run written
    before cartridges were identified: decisions are then matched as they were), and the
    digest of each frame's pixels (``frame_digests``, frame id: SHA-256, as summary.json's
    ``frame_digests`` records them; empty for a run written before they were), and the
    model's classes (``classes``: a decision's call is one of them, or a rejection; None:
    not checked)."""

    def __init__(self, events: pd.DataFrame, pixel_size_um: float,
                 written_at: float | None = None, cartridge_id: str | None = None,
                 frame_digests: dict | None = None, classes=None):
        self.classes = None if classes is None else tuple(map(str, classes))
        self.run_id = run_id(events)
        self.calls_id = calls_id(events)
        self.cartridge_id = cartridge_id or None
        self.frame_digests = {str(frame): str(record.get("sha256") or "")
                              for frame, record in (frame_digests or {}).items()
                              if isinstance(record, dict)}
        table = events[["event_id", "frame_id", "x", "y", "class"]]
        self.events = table.assign(frame_id=table["frame_id"].astype(str),
                                   **{"class": table["class"].astype(str)}
                                   ).set_index("event_id", drop=False)
        self.tolerance_px = POSITION_TOLERANCE_UM / float(pixel_size_um)
        self.written_at = written_at

    @classmethod
    def of_sample(cls, sample_dir: str | Path, events: pd.DataFrame,
                  summary: RunSummary) -> RunEvents:
        """The run in a predict output folder (``events`` and ``summary`` as load_sample)."""
        try:
            written = (Path(sample_dir) / "events.parquet").stat().st_mtime
        except OSError:
            written = None
        return cls(events, summary.panel["pixel_size_um"], written, summary.cartridge_id,
                   summary.frame_digests, summary.model.classes)

    @property
    def token(self) -> str:
        """What a page or script names this run by in its requests (the state's ``run_id``):
        its numbering and its calls, ``<run_id>.<calls_id>``. A rerun with another model,
        rule or prior keeps the numbering but, as a rule, not every call: a decision or a
        sign-off made on a page of the earlier calls is then refused (409), not recorded
        against calls nobody was shown. review.csv keeps the numbering's part, by which
        decisions attach to events."""
        return f"{self.run_id}.{self.calls_id}"

    def refusal(self, named: str, sample: str) -> str:
        """Why a request naming run ``named`` of ``sample`` is refused, and what to do."""
        if named == self.run_id:  # review.csv's or signoff.json's form: the numbering alone
            return (f"the request names run {named} of {sample}, the numbering of its events "
                    f"alone (as review.csv and signoff.json record it): send the state's "
                    f"run_id, {self.token}, which names its calls too")
        calls = ", other calls of the same events" if "." in named and \
            named.split(".")[0] == self.run_id else ""
        return (f"the request names run {named} of {sample}, but its results hold run "
                f"{self.token}: predict wrote them again since the page was loaded{calls} "
                "(or the request names another run): reload the page (a script: read the "
                "state again)")

    def digests_of(self, frames) -> np.ndarray:
        """The digest of each of ``frames``' pixels in this run ("" where not recorded)."""
        return np.array([self.frame_digests.get(str(f), "") for f in frames], dtype=object)

    @cached_property
    def _by_frame(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        groups = self.events.groupby("frame_id", sort=False).indices
        ids = self.events["event_id"].to_numpy(np.int64)
        xy = self.events[["x", "y"]].to_numpy(np.float64)
        return {str(f): (ids[rows], xy[rows]) for f, rows in groups.items()}

    def nearest(self, frame_id: str, x: float, y: float) -> int:
        """The event of ``frame_id`` nearest (x, y) within the tolerance, or -1."""
        found = self._by_frame.get(str(frame_id))
        if found is None or not (np.isfinite(x) and np.isfinite(y)):
            return -1
        ids, xy = found
        d2 = (xy[:, 0] - x) ** 2 + (xy[:, 1] - y) ** 2
        k = int(np.argmin(d2))
        return int(ids[k]) if d2[k] <= self.tolerance_px ** 2 else -1

