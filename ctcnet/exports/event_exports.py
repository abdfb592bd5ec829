"""A predict run's events for single-cell tools: FCS 3.1 files to gate and plot in flow-cytometry
software (FlowJo, FCS Express, FlowCal), GeoJSON detections to see on the frame in QuPath.

**FCS** (:func:`events_fcs`, written by :func:`ctcnet.exports.fcs.write_fcs`): one list-mode
file per sample, one event a row. Parameters: ``event_id`` (its row in events.csv, to find a
gated event again), ``frame``, ``x``, ``y``, ``area_um2``, each ``mean_<channel>``, each
``p_<class>`` (the network's), ``fused_p_<class>`` (what the call reads, the markers taking
part, where the model carries a cartridge fusion), ``confidence``, then codes: ``class`` and
``model_class`` (``CTCNET_CLASS_CODES`` names them: the model's classes in its order, then
``failed`` and ``rejected``), ``review`` (1 = sent to review), ``guard`` (the marker guard's
flags, one bit each: ``CTCNET_GUARD_BITS``), ``counted`` (1 = the call enters the sample's
counts; 0 = held by the guard for a person: ``class`` and ``counted`` together give
summary.json's counts),
``edge_cut``, ``markers_ctc`` (1 = a ``wbc``, ``debris`` or one-cell ``cluster`` call whose
markers alone make a CTC) and ``markers_vouch`` (1 = a ``ctc`` call whose doubt toward a
cluster the markers settle: one CTC), and where the sample was reviewed ``reviewer_call`` (the
class a reviewer gave the event, or ``rejected``, by the same codes; -1: not decided),
``class_after_review`` and ``counted_after_review`` (the two together give summary.json's
``reviewed.after_review``, as ``class`` and ``counted`` give its counts). A value
that is not finite (a ``failed`` event's probabilities and confidence) is written as -1
(``CTCNET_MISSING``).

**GeoJSON** (:func:`ctcnet.exports.geojson.events_geojson`): one FeatureCollection per frame,
in the layout QuPath (0.4 and later) reads and writes (``PathObjectTypeAdapters`` in
qupath-core): per event a Feature whose ``properties`` hold ``objectType: "detection"``,
``name``, ``classification`` (``{"name", "color": [r, g, b]}``), ``measurements`` (a map of
name to number: QuPath reads numbers only, so a value that is not finite is left out) and
``metadata`` (strings; a reviewed event's ``reviewer_call`` among them). A reviewed sample's
events are classified as the review left them (the reviewer's call where decided,
``rejected`` included), a call the guard held that no person decided as ``<class>: held``
(so QuPath counts what the sample counts), the model's call kept in ``metadata`` ``class``.
The geometry is the event's bounding box as a Polygon (or its centre as a Point) in QuPath's
image coordinates: pixels, origin at the top-left corner of the top-left pixel, so a pixel's
centre is at +0.5 (events.csv's ``x, y`` count pixel centres from 0; its boxes' ends are
exclusive and land on pixel edges as they are). Open the frame's image (``r00c00.tif``) in
QuPath and import ``r00c00.geojson`` onto it (File > Import objects from file, or drag the
file onto the viewer).
Each feature's ``id`` is a UUID fixed by the cartridge and event, so an import of the same run
again names the same objects.

:func:`export_events` writes both for a predict ``--out`` folder (or one sample's folder),
atomically and as one (a write that fails takes back those before it), refusing to replace
what exists unless told to, and refusing a table that its summary or predict would not write.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from ctcnet import __version__
from ctcnet.core.said_once import first_time
from ctcnet.detect.detection import BOX_COLUMNS
from ctcnet.errors import InputError
from ctcnet.exports import batch_checks
from ctcnet.exports.coded import check_codes, coded
from ctcnet.exports.event_codes import EventCodes
from ctcnet.exports.event_crops import sealed_as_written
from ctcnet.exports.fcs import MISSING_VALUE, fcs_matrix, write_fcs
from ctcnet.exports.levels import sample_levels
from ctcnet.exports.sample_review import (  # noqa: F401 (read here by callers)
    REVIEWER_CALL,
    signoff_now,
    with_reviewer_calls,
)
from ctcnet.exports.unasked_exports import say_unasked_stale
from ctcnet.inference.counts import REJECTED
from ctcnet.inference.guard import counted
from ctcnet.inference.rerun_outputs import file_stem, in_folder_exports
from ctcnet.io.atomic import (
    check_output_folder,
    exclusive_folder,
    refuse_existing,
)
from ctcnet.io.written_together import written_together
from ctcnet.review.decisions import find_samples, load_sample
from ctcnet.review.records_read import review_records_read

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("event_id", "frame", "frame_id", "x", "y", "class", "review")


def _check_columns(events: pd.DataFrame, needed: Iterable[str], where: Path) -> None:
    missing = [c for c in needed if c not in events.columns]
    if missing:
        raise InputError(f"the events table lacks column(s) {', '.join(missing)}; is it a "
                         "ctcnet predict events table?", where)


def check_events(events: pd.DataFrame, where: Path, geometry: str | None = None) -> None:
    """Refuse a table that is not a predict events table: a required column missing (the
    boxes too for ``geometry="box"``), a column of numbers holding something else, or an event
    without the id, frame, centre (or box) that predict gives every event."""
    _check_columns(events, REQUIRED_COLUMNS + (BOX_COLUMNS if geometry == "box" else ()), where)
    numbers = ["event_id", "frame", "x", "y", "area_um2", "confidence", *BOX_COLUMNS,
               *[c for c in events.columns if c.startswith(("mean_", "p_"))]]
    for column in [c for c in numbers if c in events.columns]:
        if not (pd.api.types.is_numeric_dtype(events[column])
                or pd.api.types.is_bool_dtype(events[column])):
            raise InputError(f"column {column} of the events table is not numeric", where)
    # A value missing here is a table changed since predict wrote it; an export that left the
    # event out (or placed it nowhere) would disagree with the others and with the counts, so
    # the table is refused whole, before anything is written.
    for column in ["event_id", "frame", "x", "y", *(BOX_COLUMNS if geometry == "box" else ())]:
        bad = ~np.isfinite(events[column].to_numpy(np.float64, na_value=np.nan))
        if not bad.any():
            continue
        ids = [] if column == "event_id" else events["event_id"][bad].tolist()
        which = f" (event_id {', '.join(f'{i:g}' for i in ids[:3])}" \
                f"{', ...' if len(ids) > 3 else ''})" if ids else ""
        point = ", or export the centres alone (--geometry point)" if column in BOX_COLUMNS \
            else ""
        raise InputError(f"column {column} of the events table holds {bad.sum()} missing or "
                         f"infinite value(s){which}, which predict never writes: restore the "
                         f"table (rerun ctcnet predict on the sample){point}; nothing was "
                         "exported", where)


def _numeric(events: pd.DataFrame, column: str, where: Path) -> np.ndarray:
    try:
        return pd.to_numeric(events[column]).to_numpy(np.float64)
    except (TypeError, ValueError):
        raise InputError(f"column {column} of the events table is not numeric", where) from None


def _frame_names(events: pd.DataFrame) -> dict[int, str]:
    pairs = events[["frame", "frame_id"]].drop_duplicates()
    return {int(f): str(i) for f, i in zip(pairs["frame"], pairs["frame_id"])}


# Codes, yes/no values, frame and event indices: one step above their largest, so that no code
# sits on the top of the range a reader takes ([0, $PnR - 1]): FlowCal's saturation gate
# (gate.high_low) drops the events there, every counted call and the last class's code among
# them. Measurements keep their scale's top: a value there is saturated; so do probabilities
# (1, where FlowJo ends their axis), whose surest calls lie on it (docs/outputs.md says so).
YES, HEADROOM = 1.0, 1.0


@dataclass
class Parameter:
    """One number per event: an FCS parameter and a QuPath measurement."""

    name: str                  # events.csv's column name: $PnN, the measurement's name
    long_name: str             # $PnS
    values: np.ndarray         # float64, NaN where there is no value
    upper: float = 0.0         # the top of its scale, if it has one (probabilities: 1)


def event_parameters(events: pd.DataFrame, summary, where: Path,
                     codes: EventCodes | None = None) -> list[Parameter]:
    """The numbers each event carries, in the order the FCS file writes them."""
    _check_columns(events, REQUIRED_COLUMNS, where)
    classes = list(summary.model.classes)
    codes = codes or EventCodes.of(events, classes)
    channel_top = {c["name"]: float(c.get("value_range", [0, 0])[1])
                   for c in (summary.panel or {}).get("channels", [])}

    def number(column: str, long_name: str, upper: float = 0.0) -> Parameter:
        return Parameter(column, long_name, _numeric(events, column, where), upper)

    def flag(column: str, long_name: str, missing: bool) -> Parameter:
        values = events[column].fillna(missing).astype(bool).to_numpy(np.float64)
        return Parameter(column, long_name, values, YES + HEADROOM)

    # x and y on the frame's scale: the same in every file of a scan's size (the largest value
    # gave 1380 in one file, 1378 in the next: gates did not carry).
    height, width = (getattr(summary, "frame_shape", None) or (0, 0))[:2]
    frames = getattr(getattr(summary, "frames", None), "total", 0) or 0
    ids = _numeric(events, "event_id", where)
    out = [Parameter("event_id", "Event id (its row of events.csv)", ids,
                     float(np.nanmax(ids, initial=0)) + HEADROOM),
           number("frame", "Frame index (CTCNET_FRAMES names it)", frames - 1 + HEADROOM),
           number("x", "Centre x (frame pixels)", width), number("y", "Centre y (frame pixels)",
                                                                  height)]
    if "area_um2" in events:
        out.append(number("area_um2", "Area (um^2)"))
    levels = sample_levels(where.parent, events, summary)
    if not levels and len(events) and first_time(__name__, str(where.parent), "levels"):
        # (a gate set on snr_ carries across samples: one file without them breaks it)
        log.warning("%s: no snr_<channel> parameters: no levels are kept for this run "
                    "(gallery/levels.json: its report drew no tile, or the file was deleted) "
                    "and its frames cannot be read as predict read them (moved, or changed "
                    "since: `ctcnet -v` says which); `ctcnet review --scans` takes them from "
                    "the scans where they lie now and keeps them: then export again",
                    where.parent)
    for col in [c for c in events.columns if c.startswith("mean_")]:
        channel = col.removeprefix("mean_")
        out.append(number(col, f"{channel} mean intensity", channel_top.get(channel, 0.0)))
    # The same in the sample's noise units above its background (the review page's m): one
    # gate carries across samples whose offsets and backgrounds differ, counts do not.
    for col in [c for c in events.columns if c.startswith("mean_")]:
        channel = col.removeprefix("mean_")
        if channel in levels:
            background, noise = levels[channel]
            out.append(Parameter(f"snr_{channel}", f"{channel} mean above background (noise "
                                 "units)", (_numeric(events, col, where) - background) / noise))
    out += [number(f"p_{c}", f"P({c})", 1.0) for c in classes if f"p_{c}" in events]
    # What the call is read from where the model's cartridge fusion ran (scan_fused): the
    # network's and the markers' evidence together; the network's own elsewhere. Gating on
    # the network's alone contradicts calls the markers made.
    out += [number(f"fused_p_{c}", f"P({c}) with the markers", 1.0) for c in classes
            if f"fused_p_{c}" in events]
    if "confidence" in events:
        out.append(number("confidence", "Confidence of the call", 1.0))
    top_code = len(codes.classes) - 1 + HEADROOM
    out.append(Parameter("class", "Class code (CTCNET_CLASS_CODES)",
                         codes.class_code(events["class"]), top_code))
    if "model_class" in events:
        out.append(Parameter("model_class", "Network's class code (CTCNET_CLASS_CODES)",
                             codes.class_code(events["model_class"]), top_code))
    out.append(flag("review", "Sent to review (1) or not (0)", True))
    if "guard" in events:
        out.append(Parameter("guard", "Guard flags (bits: CTCNET_GUARD_BITS)",
                             codes.guard_code(events["guard"]),
                             (1 << len(codes.guard_flags)) - 1 + HEADROOM))
    # The sample's counts are of the calls the guard did not hold: class and counted together
    # give summary.json's counts (a ctc call held by the guard is shown, not counted).
    out.append(Parameter("counted", "Call counted (1), or held by the guard for a person (0)",
                         counted(events).astype(np.float64), YES + HEADROOM))
    if "edge_cut" in events:
        out.append(flag("edge_cut", "Cut by the frame border (1)", False))
    if "markers_ctc" in events:
        out.append(flag("markers_ctc", "A wbc, debris or one-cell cluster call whose markers "
                        "alone make a CTC (1)", False))
    if "markers_vouch" in events:
        out.append(flag("markers_vouch", "A ctc call the markers read as one CTC, its doubt "
                        "toward a cluster settled (1)", False))
    if REVIEWER_CALL in events:
        out.append(Parameter(REVIEWER_CALL, "Reviewer's class code (CTCNET_CLASS_CODES; "
                             "CTCNET_MISSING: not decided)",
                             codes.class_code(events[REVIEWER_CALL]), top_code))
        final, kept = after_review(events)
        out.append(Parameter("class_after_review", "Class code after review "
                             "(CTCNET_CLASS_CODES): the reviewer's where decided",
                             codes.class_code(pd.Series(final)), top_code))
        # class_after_review and counted_after_review together give summary.json's
        # reviewed.after_review, as class and counted give its counts.
        out.append(Parameter("counted_after_review", "Counted after review (1): a decided "
                             "event as its reviewer's call, rejected (0), the rest as counted",
                             kept.astype(np.float64), YES + HEADROOM))
    return out


def after_review(events: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Each event's class after review and whether it is counted then, as the review's counts
    read them (``ctcnet.inference.counts.count_reviewed``): a decided event as its reviewer's
    call (``rejected``: counted nowhere; a held call a person confirms counts), an undecided
    one as the automatic count has it."""
    said = events[REVIEWER_CALL].astype(str).to_numpy()
    decided = said != ""
    final = np.where(decided, said, events["class"].astype(str).to_numpy())
    kept = np.where(decided, said != REJECTED, counted(events))
    return final, kept


def _commit_of(software: dict | None) -> str:
    """A summary's ``software`` record's commit, "+modified" where its checkout had changes."""
    commit = (software or {}).get("commit") or ""
    return commit + ("+modified" if commit and (software or {}).get("modified") else "")


def fcs_names(names) -> list[str]:
    """Parameter names as $PnN may hold them: a comma (a panel's channel names are free text)
    written ``_``, and a name that then clashes with another's (planes "X,Y" and "X_Y") given
    ``_2``, ``_3``: the export of the whole batch ended in a traceback."""
    out: list[str] = []
    for name in names:
        base = written = name.replace(",", "_")
        n = 2
        while written in out:
            written, n = f"{base}_{n}", n + 1
        out.append(written)
    return out


def events_fcs(events: pd.DataFrame, summary, where: Path, file_name: str = "",
               signoff: dict | None = None) -> dict:
    """One sample's events table as the arguments of :func:`~ctcnet.exports.fcs.fcs_bytes` /
    :func:`~ctcnet.exports.fcs.write_fcs`, with the run's facts in TEXT keywords (``summary``:
    the sample's :class:`~ctcnet.inference.summary.RunSummary`; ``signoff``: its sign-off as
    it holds now, :func:`signoff_now`)."""
    classes = list(summary.model.classes)
    codes = EventCodes.of(events, classes)
    parameters = event_parameters(events, summary, where, codes)
    panel = summary.panel or {}
    frames = _frame_names(events) if len(events) else {}
    keywords = {
        "$CYT": "ctcnet", "$SRC": summary.sample_id, "$FIL": file_name,
        "$COM": "ctcnet predict events; CTCNET_* keywords describe the codes",
        "CTCNET_SAMPLE_ID": summary.sample_id,
        "CTCNET_VERSION": __version__,
        "CTCNET_PREDICT_VERSION": summary.ctcnet_version,
        "CTCNET_MODEL": summary.model.path or "",  # empty: a model given in memory
        "CTCNET_MODEL_ARCH": summary.model.arch,
        "CTCNET_MODEL_VERSION": summary.model.version,
        "CTCNET_MODEL_SHA256": summary.model.sha256 or "",
        # The checkout that made the calls, where predict ran from one ("+modified": with
        # changes not committed).
        "CTCNET_PREDICT_COMMIT": _commit_of(summary.software),
        "CTCNET_MODEL_CLASSES": ",".join(classes),
        "CTCNET_PRIOR": summary.model.prior,
        "CTCNET_PANEL": panel.get("name", ""),
        "CTCNET_PANEL_CHANNELS": ",".join(c["name"] for c in panel.get("channels", [])),
        "CTCNET_PIXEL_SIZE_UM": panel.get("pixel_size_um", ""),
        "CTCNET_CARTRIDGE_ID": summary.cartridge_id or "",
        "CTCNET_STATUS": summary.status,
        # The run the calls are of: summary.json's counted_at_utc.
        "CTCNET_COUNTED_AT": summary.counted_at_utc,
        "CTCNET_BLOOD_VOLUME_ML": summary.blood_volume_processed_ml or summary.blood_volume_ml,
        # The file is a snapshot: when it was written, and the latest review decision its
        # after-review columns hold (a decision made since is not in them).
        "CTCNET_EXPORTED_AT": datetime.now(UTC).isoformat(timespec="seconds"),
        "CTCNET_REVIEW_UPDATED": (summary.reviewed.updated or "") if summary.reviewed else "",
        # Whether the after-review columns were signed off, by whom and when, and whether the
        # sign-off held (its status) as the file was written.
        "CTCNET_SIGNOFF": (f"{signoff.get('status', 'current')}; {signoff.get('reviewer')}; "
                           f"{signoff.get('signed_at')}" if isinstance(signoff, dict) else ""),
        **codes.keywords(),
        "CTCNET_FRAMES": ",".join(f"{i}={n}" for i, n in sorted(frames.items())),
        "CTCNET_MISSING": f"{MISSING_VALUE:g}",   # written for a value that is not finite
    }
    return {"data": fcs_matrix(parameters), "names": fcs_names(p.name for p in parameters),
            "long_names": [p.long_name for p in parameters], "keywords": keywords,
            "upper": [p.upper for p in parameters]}


# --- Whole runs ---------------------------------------------------------------------------------

@dataclass
class SampleExport:
    """Where one sample's exports go, and what was written."""

    name: str
    folder: Path                  # the sample's predict output folder
    fcs: Path | None
    geojson: Path | None          # a folder: one file per frame
    events: int = 0
    frames: int = 0


def plan_exports(results: str | Path, fcs: bool, geojson: bool,
                 out: str | Path | None = None, codes: dict[str, str] | None = None
                 ) -> list[SampleExport]:
    """The outputs for every sample of ``results``: beside each sample's events
    (``<sample>/<sample>.fcs``, ``<sample>/geojson/``), or with ``out`` every sample's side by
    side, as gating tools open a folder of FCS files (``out/<sample>.fcs``,
    ``out/<sample>_geojson/``); named by their ``codes`` where given."""
    samples = find_samples(results)
    if codes is not None:
        check_codes(codes, list(samples), out)
    plans, stems = [], {}
    for name, folder in samples.items():
        stem = file_stem(name if codes is None else codes[name])
        # Side by side, two sample ids that differ only where a file name cannot hold them
        # ("Patient 17", "Patient_17"), or only in case, would write one file.
        if out is not None and stem.casefold() in stems:
            raise InputError(f"samples {stems[stem.casefold()]!r} and {name!r} would both be "
                             f"exported as {stem}: " + (
                                 "give them codes that differ in more than case" if codes
                                 else "export without --out (beside each sample) or each "
                                 "into its own --out"), Path(out))
        stems[stem.casefold()] = name
        fcs_file, geojson_dir = in_folder_exports(folder, name) if out is None else \
            (Path(out) / f"{stem}.fcs", Path(out) / f"{stem}_geojson")
        plans.append(SampleExport(name, folder, fcs=fcs_file if fcs else None,
                                  geojson=geojson_dir if geojson else None))
    return plans


def _load(plan: SampleExport, geometry: str, decisions: bool = True):
    """A sample's events and summary, checked before anything is written: one bad sample of
    several stops the export with nothing half done; ``decisions``: with its reviewer calls
    (what is said of them said once, as it is exported)."""
    events, summary = load_sample(plan.folder)
    sealed_as_written(plan.folder)
    where = plan.folder / "events.parquet"
    check_events(events, where, geometry if plan.geojson else None)
    # A table cut short or added to since predict wrote it would be exported as a count the
    # run never made, without a word: refused (rerun predict to write both again).
    if len(events) != summary.events:
        raise InputError(f"holds {len(events)} events but summary.json counts "
                         f"{summary.events}: the events table and the summary disagree (the "
                         "table changed since predict wrote it?); nothing was exported: rerun "
                         "ctcnet predict on this sample to write both again", where)
    return (with_reviewer_calls(plan.folder, events, summary) if decisions else events), summary


def export_events(results: str | Path, fcs: bool = True, geojson: bool = False,
                  out: str | Path | None = None, overwrite: bool = False,
                  geometry: str = "box", codes: dict[str, str] | None = None
                  ) -> list[SampleExport]:
    """Write FCS files and/or GeoJSON detections for every sample of a predict ``--out`` folder
    (or one sample's folder). Every sample is read and checked (:func:`check_events`, its
    table's rows against its summary's count; one sample's table held at a time) and existing
    outputs are refused (unless ``overwrite``) before anything is written, and a write that
    fails takes back those before it; a sample whose run failed (no frame read) is skipped
    with a warning, since its empty table is no measurement. Returns what was written, per
    sample. ``codes``: sample id -> code, for a coded copy in ``out``
    (:mod:`ctcnet.exports.coded`)."""
    if not (fcs or geojson):
        raise InputError("nothing to export: ask for --fcs and/or --geojson")
    if geometry not in ("box", "point"):
        raise InputError(f"--geometry {geometry!r} is not box or point")
    if geometry != "box" and not geojson:  # (an FCS file has no geometry to change)
        raise InputError(f"--geometry {geometry} shapes the GeoJSON detections: add --geojson")
    if out is not None:
        check_output_folder(out)
    with contextlib.ExitStack() as held:
        if out is not None:  # two exports at once into one --out: the second refused, not
            held.enter_context(exclusive_folder(out, "export-events"))  # mixed in
        return _export(results, fcs, geojson, out, overwrite, geometry, codes)


def _export(results, fcs: bool, geojson: bool, out, overwrite: bool, geometry: str,
            codes: dict[str, str] | None) -> list[SampleExport]:
    """:func:`export_events` once its options are checked (and its ``--out`` held)."""
    plans = plan_exports(results, fcs, geojson, out, codes)
    if out is None:  # beside each sample: an archive on read-only media cannot take them
        for plan in plans:
            if not os.access(plan.folder, os.W_OK):
                raise InputError("cannot be written (read-only media, an archive?): export "
                                 "into a folder of your own with --out", plan.folder)
    refuse_existing([p for plan in plans for p in (plan.fcs, plan.geojson) if p is not None],
                    overwrite)
    for plan in plans:  # --overwrite replaces an export, never something else of that name
        for path, kind, ok in ((plan.fcs, "file", Path.is_file),
                               (plan.geojson, "folder", Path.is_dir)):
            if path is not None and (path.is_symlink() or (path.exists() and not ok(path))):
                raise InputError(f"is not an export's {kind}: move it away, then export",
                                 path)
    batch_checks.refuse_another_samples_files(plans, codes, out)
    batch_checks.say_unfinished(Path(results))
    # Every sample checked first, its table let go before the next is read (a night of large
    # samples held at once took gigabytes), then each read again as it is written.
    failed = [_load(plan, geometry, decisions=False)[1].status == "failed" for plan in plans]
    if all(failed):
        raise InputError("nothing to export: the run of every sample failed (no frame was "
                         "read)", results)
    done = []
    # One export: a write that fails (a full disk) takes back the files written before it.
    folders = [out] if out is not None else []
    folders += [plan.geojson for plan in plans if plan.geojson is not None]
    # An earlier export --overwrite replaces is put back if this one fails.
    earlier = [plan.fcs for plan in plans if plan.fcs is not None]
    earlier += [f for plan in plans if plan.geojson is not None and plan.geojson.is_dir()
                for f in plan.geojson.glob("*.geojson")]
    with written_together(folders, earlier) as written:
        for plan, was_failed in zip(plans, failed):
            if was_failed:
                log.warning("%s: its run failed (no frame was read); nothing exported",
                            plan.name)
                continue
            # The decisions, sign-off and summary of one moment, a review going on or not.
            with review_records_read(plan.folder):
                events, summary = _load(plan, geometry)
                signoff = signoff_now(plan.folder, events, summary) if plan.fcs else None
            where = plan.folder / "events.parquet"
            plan.events = len(events)
            if codes is not None:
                summary, signoff = coded(summary, signoff, codes[plan.name])
            if plan.fcs is not None:
                write_fcs(plan.fcs, **events_fcs(events, summary, where, plan.fcs.name,
                                                 signoff))
                written.append(plan.fcs)
            if plan.geojson is not None:
                # (it builds on this module)
                from ctcnet.exports.geojson import events_geojson, write_geojson_folder

                plan.frames = write_geojson_folder(
                    plan.geojson, events_geojson(events, summary, where, geometry), written)
            say_unasked_stale(plan.name, plan.folder, plan.fcs, plan.geojson)
            done.append(plan)
    return done
