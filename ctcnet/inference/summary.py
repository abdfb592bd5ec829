"""The run summary of one predicted cartridge (``summary.json``) as typed records.

:func:`ctcnet.inference.predict.predict_cartridge` builds a :class:`RunSummary`; the report
(:mod:`ctcnet.report.report_page`), the CLI and the benchmark read its fields by name, so a
renamed or missing field fails where it is read, not as a ``KeyError`` deep in a report.
``to_dict()`` is the JSON written to ``summary.json``; ``RunSummary.read(folder)`` reads it back.
:class:`CropRunSummary` is the same for a crop dataset. :func:`sample_status` and
:func:`volume_read_ml` make two fields: whether the counts stand, and the volume they are of.

The counts (``counts``, ``per_7_5_ml``, ``counts_confident``, ``review``) are the fields of
one tally, ``tally`` (:class:`ctcnet.inference.counts.Counts`), kept under their own names for
readers of older summaries; ``reviewed`` is what a reviewer's decisions add up to, written by
the review server (:mod:`ctcnet.review_server.server`) whenever a decision is saved.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from ctcnet.core.json_text import known_fields, strict_json
from ctcnet.errors import InputError
from ctcnet.inference.counts import Counts, ReviewedCounts
from ctcnet.inference.figures_seal import (
    SEALS,
    figures_sha256,
    record_seals,
    table_as_recorded,
)
from ctcnet.inference.result_state import RESEARCH_USE, result_state, signoff_holds  # noqa: F401
from ctcnet.inference.sample_folders import PREVIOUS_DIR, previous_folder
from ctcnet.io.atomic import atomic_path, atomic_write_text
from ctcnet.io.cartridge_info import output_format

log = logging.getLogger(__name__)

SUMMARY_FILE = "summary.json"


@dataclass
class ModelUsed:
    """Which model made the calls, and the settings that shape them."""

    path: str | None  # None: a model given in memory (Python API)
    arch: str
    version: str
    classes: list[str]
    crop_size: int
    pixel_size_um: float
    temperature: float
    review_threshold: float
    # The decision rule the calls were made with: log weights added to the log probabilities
    # before the call; empty = the top calibrated probability alone.
    decision_log_weights: dict = field(default_factory=dict)
    # The class prior they come from (``ctcnet.nn.calls.prior_rule``): "cartridge" (the model's
    # rule fitted at cartridge prevalence), "balanced" (none) or stated "class=p,...".
    prior: str = "cartridge"
    # The model file's SHA-256 (models/SHA256SUMS lists the shipped files'; None: a model
    # given in memory): what says which file made the calls, re-exports of one version apart.
    sha256: str | None = None


@dataclass
class FrameCounts:
    """The frames of a run: in the cartridge, processed, skipped, taken from the journal of an
    earlier run, and missing (listed by cartridge.json's ``num_frames``, not in the folder:
    their blood was not read); ``expected_stated``: whether the scan states how many frames
    it holds (None: not recorded), else ``missing`` cannot tell a truncated copy."""
    total: int
    processed: int
    skipped: int
    resumed_from_journal: int
    missing: int = 0
    expected_stated: bool | None = None


@dataclass
class RunSummary:
    """Counts, settings and timings of one cartridge's run."""

    sample_id: str
    input: str
    ctcnet_version: str
    model: ModelUsed
    backend: str
    device: str
    panel: dict                      # Panel.to_dict() of the scan
    resampled_window_px: int         # scan pixels one model crop covers
    blood_volume_ml: float
    frames: FrameCounts
    skipped_frames: list[dict]       # {"frame": frame id, "reason": text}
    problems: list[str]              # in the scan folder or its metadata: any makes it partial
    events: int
    counts: dict[str, int]           # per class
    # Reported classes per 7.5 mL of the blood whose frames were processed; None: no frame.
    per_7_5_ml: dict[str, float | None]
    counts_confident: dict[str, int]  # per class, calls not sent to review
    review: int
    edge_cut: int
    detection: dict                  # DetectConfig as a dict
    edge_cut_as: str | None
    batch_size: int
    workers: int
    timings_s: dict[str, float]
    events_per_s: float | None
    classify_events_per_s: float | None
    peak_memory_mb: float
    # ok; partial (frames skipped, events not classified, or problems: inputs accepted though
    # implausible, frames missing); failed (no frame processed).
    status: str = "ok"
    failed_events: int = 0           # events whose model output was not finite
    blood_volume_processed_ml: float | None = None
    # Whether cartridge.json stated the blood volume (False: the default tube's assumed); None
    # in a summary written before it was recorded.
    blood_volume_stated: bool | None = None
    # Detected events per mm^2 of the frames processed (io.plausibility.CROWDED_PER_MM2 and over
    # is a problem); None in a summary written before it was recorded.
    events_per_mm2: float | None = None
    # Detected events per frame read, by frame id: a frame far under the others (a bubble, a
    # blank or blurred area) stands out; None in a summary written before it was.
    events_by_frame: dict | None = None
    # (height, width) of the scan's frames (most of them); None in a summary written before.
    frame_shape: list[int] | None = None
    guard: dict | None = None         # calls the marker guard sent to review, by flag and call
    # Counted cluster calls by the partners their markers read (neutrophil, leukocyte,
    # platelet, homotypic; guard.cluster_partners); None in a summary written before it.
    clusters_by_partner: dict | None = None
    # The scan's planes the model does not read: the leukocytes' level in each and the counted
    # CTCs above it (unread_markers); None where it has none, or in a summary written before.
    unread_markers: dict | None = None
    ground_truth: dict | None = None  # simulated cartridges: detection recall, true counts
    gallery: dict | None = None       # per gallery category: total, shown, pages
    # --compensate: CK's spillover taken off the crops before the model, and where from.
    spillover: dict | None = None
    # CK's leaks over some CK-bright events of every frame, against what the marker guard
    # allows (spillover.leak_check); a leak beyond it is warned of.
    leak_check: dict | None = None
    # What a few events of every frame say of the metadata (the nucleus's plane, the
    # leukocyte markers, dark planes, the planes' register, the nuclei's size:
    # ctcnet.detect.metadata_signs); each sign pointing to a wrong description is a problem.
    metadata_check: dict | None = None
    # The scanned cartridge's identity (``Cartridge.identity``: a digest of its frame list):
    # review decisions carry it, so none attaches to another scan of the id. None: unrecorded.
    cartridge_id: str | None = None
    # Every count above, from one tally of the events (None in a summary written before it).
    tally: Counts | None = None
    # When predict made these counts (seconds since the epoch; a rerun writing the same tables
    # keeps the earlier run's) and when a run last finished the sample, which a later refusal
    # is dated against (the file's time moves with each review decision). None: unrecorded.
    counted_at: float | None = None
    finished_at: float | None = None
    # events.parquet's SHA-256 as predict wrote it: a table changed since (by hand) is told
    # from the run's own (None in a summary written before it was recorded).
    events_sha256: str | None = None
    # events.csv's likewise: a spreadsheet's save over it is told, and kept on a rerun.
    events_csv_sha256: str | None = None
    # The reviewer's decisions counted (review.csv matched to this run); None: none yet.
    reviewed: ReviewedCounts | None = None
    # Per frame processed, its files and SHA-256 as read (ctcnet.io.digests.frame_record):
    # what `ctcnet crops` and the review's tiles check a frame against before cutting it again.
    frame_digests: dict | None = None
    # The review list by reason, the doubt left off it, and the review band's stated miss rate
    # (ctcnet.inference.review_list); None in a summary written before it was recorded.
    review_list: dict | None = None
    # The software that made the counts (ctcnet.core.provenance.software_record: ctcnet's
    # version and commit, Python, the platform, the numeric libraries), and where the frames'
    # dense work ran (numpy, or a torch device: its numbers differ in the last digits); None
    # in a summary written before they were recorded.
    software: dict | None = None
    frame_device: str | None = None
    frame_pool: str | None = None  # where frames were prepared: threads, processes or inline
    # A run resumed on frames another backend or ctcnet made (its .pt and .onnx resume each
    # other's runs): how many frames each made; None where one made them all.
    frames_made_by: dict | None = None
    journal_timings_s: dict | None = None  # a resumed run's journaled frames' stage seconds
    # What must match for a rerun to add to these outputs (the journal's fingerprint:
    # ``ctcnet.inference.journal.run_fingerprint``), kept here too: a rerun whose journal
    # parts/ was deleted is refused on it. None in a summary written before it was recorded.
    run_fingerprint: dict | None = None
    # What the counts include (``ctcnet.inference.run_summary.count_definition``: the reported
    # classes' descriptions, and whether a cell without CK is counted); None: a crop set, or
    # a summary written before it was recorded.
    counted_as: dict | None = None
    # cartridge.json's plain keys ctcnet does not read (a lab's site, scanner, operator:
    # ctcnet.io.cartridge_info.unread_keys); None: none, or a crop set.
    cartridge_info: dict | None = None
    # The name of the folder predict wrote it into: a copy under another name is told apart
    # (ctcnet.review.runs); None in a summary written before it was recorded.
    output_folder: str | None = None
    # The seals (figures_seal.SEALS) an earlier ctcnet's summary.json was read without: written
    # again (a review's counts) it stays without them, as no run sealed what they keep (a look
    # sealed an old file's model and frames as this version's). Not a field of the file.
    unsealed: tuple[str, ...] = ()

    @staticmethod
    def count_fields(tally: Counts) -> dict:
        """The summary's count fields (for ``RunSummary(...)`` or ``replace``), all of one
        tally."""
        return {"tally": tally, "counts": dict(tally.counted), "per_7_5_ml": tally.per_7_5_ml,
                "counts_confident": dict(tally.confident), "review": tally.review_events,
                "failed_events": tally.failed}

    @property
    def network_sha256(self) -> str | None:
        """The network that made the calls (``run_fingerprint``'s ``model_sha256``: a
        checkpoint's, also for its fp32 ONNX export); None in a summary without it."""
        fingerprint = self.run_fingerprint if isinstance(self.run_fingerprint, dict) else {}
        value = fingerprint.get("model_sha256")
        return value if isinstance(value, str) else None

    @property
    def volume_read_ml(self) -> float | None:
        """The blood volume the per-7.5 mL figures are of: that of the frames processed (the
        whole tube's in a summary written before it was recorded)."""
        if self.blood_volume_processed_ml is not None:
            return self.blood_volume_processed_ml
        return self.blood_volume_ml

    def to_dict(self) -> dict:
        """The JSON form (``summary.json``); absent optional parts are left out."""
        out = asdict(self)
        for key in ("tally", "reviewed"):  # with their derived per-7.5 mL figures
            record = getattr(self, key)
            out[key] = None if record is None else record.to_dict()
        for key in ("ground_truth", "gallery", "spillover", "tally", "reviewed",
                    "frame_digests", "review_list", "cartridge_info", "counted_as"):
            if out[key] is None:
                del out[key]
        if self.counted_at is not None:  # the same instant in words (UTC), beside the number
            out["counted_at_utc"] = self.counted_at_utc
        # Whether the result may be read as one, before its numbers (the review's sign-off,
        # written beside it, decides it again: report_page.write_summary_and_page).
        out["result_state"] = result_state(out)
        out["figures_sha256"] = figures_sha256(out)
        del out["unsealed"]
        out.update({k: v for k, v in record_seals(out).items() if k not in self.unsealed})
        return {**output_format(), "intended_use": RESEARCH_USE, **out}

    @classmethod
    def from_dict(cls, data: dict) -> RunSummary:
        """Read a summary back from :meth:`to_dict`'s output (keys it does not know are left
        out; ValueError where ``data`` is no JSON object: :func:`known_fields`)."""
        values = known_fields(cls, data)
        model = dict(data["model"])
        if model.get("path") == "None":  # a model given in memory, as older summaries say it
            model["path"] = None
        # (each record's keys it knows: a later ctcnet's, rolled back from, adds some)
        values["model"] = ModelUsed(**known_fields(ModelUsed, model))
        values["frames"] = FrameCounts(**known_fields(FrameCounts, data["frames"]))
        values["unsealed"] = tuple(name for name in SEALS if name not in data)
        for key, record in (("tally", Counts), ("reviewed", ReviewedCounts)):
            if values.get(key) is not None:
                values[key] = record.from_dict(values[key])
        return cls(**values)

    @classmethod
    def read(cls, out_dir: str | Path) -> RunSummary:
        """The summary.json in ``out_dir`` (a ValueError names the file; the caller the folder)."""
        try:
            return cls.from_dict(json.loads((Path(out_dir) / SUMMARY_FILE).read_bytes()))
        except (ValueError, TypeError, KeyError, AttributeError) as err:  # (a field edited)
            raise ValueError(f"{SUMMARY_FILE}: {err}") from None

    @property
    def counted_at_utc(self) -> str:
        """When the counts were made, in words (ISO 8601, UTC); empty where not recorded."""
        if self.counted_at is None:
            return ""
        return datetime.fromtimestamp(self.counted_at, UTC).isoformat(
            timespec="seconds")

    def write(self, out_dir: str | Path) -> None:
        """Write summary.json into ``out_dir``, atomically."""
        atomic_write_text(Path(out_dir) / SUMMARY_FILE,
                          strict_json(self.to_dict(), indent=2) + "\n")


@dataclass
class CropRunSummary:
    """What classifying a crop dataset gave (``summary.json`` beside its predictions)."""

    dataset: str
    crops: int
    backend: str
    device: str
    model: str | None                # as ModelUsed.path
    counts: dict[str, int]           # the calls the guard let stand, per class
    review: int
    accuracy: float | None           # against the dataset's labels, where they are classes
    guard: dict | None = None        # calls the marker guard sent to review
    # The calls the guard's flags hold for a person, per class: with ``counts``, every crop.
    held: dict[str, int] = field(default_factory=dict)
    # The classes a count reports (the model's taxonomy's: a lab's ctc_emt beside ctc); None
    # in a summary written before it was recorded.
    reported: list[str] | None = None
    timings_s: dict[str, float] = field(default_factory=dict)
    decision_log_weights: dict = field(default_factory=dict)  # as in ModelUsed
    # As in ModelUsed; a crop set's default is "balanced": the cartridge rule is not for it.
    prior: str = "balanced"
    # The crops' um per pixel as read, and where it came from (panel.json, given, estimated).
    pixel_size_um: float | None = None
    pixel_size_from: str = "panel.json"
    spillover: dict | None = None    # --compensate: per sample_id, CK's leaks taken off
    # CK's leaks measured over all the crops, against what the marker guard allows
    # (spillover.leak_check); a leak beyond it is warned of.
    leak_check: dict | None = None
    model_sha256: str | None = None  # as ModelUsed.sha256
    # The crops ``accuracy`` is over: those labelled with one of the model's classes (a label
    # it lacks, "CTC" for "ctc" or "unlabelled", is left out of it).
    accuracy_of: int | None = None
    # The review list by reason and the review band's statement, as a cartridge's
    # (ctcnet.inference.review_list); None in a summary written before it was recorded.
    review_list: dict | None = None
    # What made it: as RunSummary's, and when (UTC).
    software: dict | None = None
    written_at: str | None = None
    # Whether the crops' markers took part in the calls (False: --network-calls-only); None
    # in a summary written before it was recorded.
    markers_decide: bool | None = None
    # What the run warned of (a pixel size the nuclei belie, saturated or 8-bit crops).
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """The summary as plain data (``spillover`` only when measured)."""
        out = asdict(self)
        if out["spillover"] is None:
            del out["spillover"]
        return {**output_format(), "intended_use": RESEARCH_USE, **out}

    def write(self, out_dir: str | Path) -> None:
        """Write summary.json into ``out_dir``, atomically."""
        atomic_write_text(Path(out_dir) / SUMMARY_FILE,
                          strict_json(self.to_dict(), indent=2) + "\n")


def keep_not_as_written(out_dir: str | Path, name: str, move: bool = False) -> Path:
    """A sample's file that is not as ctcnet wrote it (edited by hand, saved by a spreadsheet)
    kept as the evidence, ``previous/<stem>-<now, UTC>-not-as-written<suffix>``, before
    ctcnet writes its own (``move``: the file itself moved there, else a copy). Returns it."""
    source = Path(out_dir) / name
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    kept = previous_folder(out_dir) / f"{source.stem}-{stamp}-not-as-written{source.suffix}"
    if move:
        source.replace(kept)
    else:
        with atomic_path(kept) as tmp:
            shutil.copyfile(source, tmp)
    return kept


def keep_previous_summary(out_dir: str | Path, keep_events: bool = False) -> Path | None:
    """Copy a sample's summary.json into ``previous/`` before ``--overwrite`` replaces its
    run (as ``summary-<when its counts were made, UTC>.json``; ``-2``, ``-3`` ... after it where
    another summary of that time is kept already, a volume corrected twice): the counts, the
    model and software that made them and their sign-off stay on record beside the new run's;
    for a
    reviewed sample (review.csv or signoff.json beside it), or with ``keep_events``, its
    events table too (``events-<when>.parquet``): the calls a review and a sign-off were made
    on, or a table changed by hand. Returns the copy (None: no summary to keep)."""
    source = Path(out_dir) / SUMMARY_FILE
    try:
        text = source.read_text(encoding="utf-8")
    except OSError:
        return None
    try:
        counted = float(json.loads(text).get("counted_at"))
    except (ValueError, TypeError, AttributeError):
        counted = source.stat().st_mtime
    stamp = datetime.fromtimestamp(counted, UTC).strftime("%Y%m%dT%H%M%SZ")
    kept = previous_folder(out_dir) / f"summary-{stamp}.json"
    for n in range(2, 1000):  # another summary of the same counts' time (a volume corrected)
        if not kept.is_file() or kept.read_text(encoding="utf-8") == text:
            break
        kept = kept.with_name(f"summary-{stamp}-{n}.json")
    try:
        atomic_write_text(kept, text)
        if keep_events or any((Path(out_dir) / name).exists()
                              for name in ("review.csv", "signoff.json")):
            _keep_events_table(Path(out_dir), kept.parent, stamp, json.loads(text))
    except OSError as err:  # not kept: the run it would replace stays as it is
        raise InputError(f"cannot keep the summary it replaces there ({err.strerror or err}): "
                         "make it writable, or move it away, then rerun", kept) from None
    return kept


def withdraw_report_page(out_dir: str | Path, kept: Path | None,
                         why: str = "<code>ctcnet predict --overwrite</code>") -> None:
    """Where a run withdrew a sample's summary (``why``: ``--overwrite``, a rerun whose tables
    change; kept as ``kept``, if it was), its index.html says it is being run again, not the
    replaced counts: a run stopped before its own page leaves none read as current."""
    import html
    page = Path(out_dir) / "index.html"
    if not page.exists():
        return
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    name = html.escape(Path(out_dir).name)
    atomic_write_text(page, (
        f'<!doctype html><meta charset="utf-8"><title>{name}: being run again</title>'
        f'<p id="result-state" data-state="rerunning"><b>{name} is being run again</b> '
        f"({why}, started {when}). "
        + (f"The counts of the run it replaces are kept in "
           f"<code>previous/{html.escape(kept.name)}</code>; " if kept is not None else "")
        + "this page is drawn anew when the new run ends with its report (one run with "
        "<code>--no-report</code> draws none). Where it stopped first, <code>run.json</code> "
        "beside the sample folders says why.</p>\n"))


def kept_summaries(out_dir: str | Path) -> list[Path]:
    """The summaries :func:`keep_previous_summary` kept in a sample folder's ``previous/``,
    oldest counts first (their names' stamps); none where it has no such folder of its own
    (a link is none: :func:`previous_folder` refuses it)."""
    folder = Path(out_dir) / PREVIOUS_DIR
    if folder.is_symlink() or not folder.is_dir():
        return []

    def order(path: Path) -> tuple[str, int]:  # summary-<stamp>[-<n>].json
        stamp, _, n = path.stem.removeprefix("summary-").partition("-")
        return stamp, int(n) if n.isdigit() else 1

    return sorted((p for p in folder.glob("summary-*.json") if p.is_file()
                   and not p.stem.endswith("-not-as-written")), key=order)


def _keep_events_table(out_dir: Path, previous: Path, stamp: str, summary: dict) -> None:
    """The events table as ``previous/events-<stamp>.parquet``: a second name for its file
    where the file system has them (the run writes its new table under a new file, so the old
    one stays as it was, for no space), else a copy. A table that is not the one its summary
    records (changed by hand) is kept as ``events-<stamp>-not-as-written.parquet``, said."""
    table = out_dir / "events.parquet"
    if not table.is_file():
        return
    edited = table_as_recorded(out_dir, summary) is False
    kept = previous / f"events-{stamp}{'-not-as-written' if edited else ''}.parquet"
    if kept.exists():
        return
    if edited:
        log.warning("%s: its events table is not the one predict wrote (changed by hand?): "
                    "kept as %s, not as the calls its review was made on", out_dir, kept.name)
    try:
        os.link(table, kept)
    except OSError:
        with atomic_path(kept) as tmp:
            shutil.copyfile(table, tmp)


def withdraw_summary(out_dir: str | Path) -> None:
    """Remove a sample folder's summary.json before its tables are written again, and when a
    write of its outputs failed: written last, it marks a finished sample, and a run stopped on
    the way (a full disk) leaves none from before beside outputs it changed."""
    (Path(out_dir) / SUMMARY_FILE).unlink(missing_ok=True)


def drop_stale_summary(out_dir: str | Path) -> None:
    """After a write of a run's outputs failed (a full disk): the summary withdrawn
    (:func:`withdraw_summary`) unless the events table is still the one it counted (its
    ``events_sha256``: a rerun whose frames all came from the journal writes the same tables,
    and a write that failed atomically left the earlier file), so that a finished sample read
    again from a moved scan onto a full disk keeps its result."""
    path = Path(out_dir) / SUMMARY_FILE
    try:
        holds = table_as_recorded(out_dir, json.loads(path.read_text(encoding="utf-8"))) is True
    except (OSError, ValueError):
        holds = False
    if not holds:
        withdraw_summary(out_dir)


def sample_status(frames_total: int, frames_skipped: int, failed_events: int,
                  problems: int = 0) -> str:
    """``failed`` when no frame was processed: zero counts would read as a clean negative.
    ``partial`` when some frames were skipped, some events could not be classified, or the
    inputs have ``problems`` (metadata accepted though implausible, frames missing): a count
    that stands only if a person agrees. Otherwise ``ok``."""
    if frames_total - frames_skipped <= 0:
        return "failed"
    if frames_skipped or failed_events or problems:
        return "partial"
    return "ok"


def volume_read_ml(volume_ml: float, frames_total: int, frames_skipped: int,
                   frames_scanned: int | None = None) -> float:
    """The blood volume of the frames processed, which the per-7.5 mL figures are of: frames
    cover equal areas of the cartridge (``frames_scanned``: the frames the volume spreads over,
    more than ``frames_total`` when some are missing); 0 when none was processed."""
    spread = max(frames_total, frames_scanned or 0)
    # The share read first: every frame read is the stated volume itself (not 6.900000000000001
    # in every table); to 12 decimals, the float's noise alone (5 of 6 frames of 5.4 mL: 4.5,
    # not 4.500000000000001): rates are divided by it (to 6, 16.875 per 7.5 mL read 16.874998
    # and showed 16.87), each rate then taken to 9 decimals (counts.per_7_5_ml).
    return round(volume_ml * ((frames_total - frames_skipped) / spread), 12) if spread else 0.0
