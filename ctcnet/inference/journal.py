"""The resume journal of a predict run: each finished frame written atomically to
``parts/<frame_id>.parquet`` (plus the crops its review gallery may show,
``parts/<frame_id>.gallery.npz``), so a killed run loses and duplicates nothing, and a restarted
one skips the frames whose part exists.

``parts/run.json`` records what shaped the rows (:func:`run_fingerprint`: the model, panel,
settings and the guard's levels); a journal of another model or other settings is refused
rather than mixed in. ``parts/frames.json`` records each frame's files
(:func:`frame_signatures`), so a frame replaced since its part was written is done again.
Which events' crops are kept is the caller's choice (a function given to :func:`write_part`).
"""

from __future__ import annotations

import json
import logging
import shutil
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ctcnet.core.file_modes import make_folder
from ctcnet.core.paths import absolute
from ctcnet.detect.detection import DetectConfig
from ctcnet.errors import OutputFolderError, SampleIdTakenError
from ctcnet.inference.cluster_parts import SAME_CLUSTER_UM
from ctcnet.inference.finished_runs import refuse_to_redo_finished
from ctcnet.inference.frames import journaled_frames, mended_frame_records
from ctcnet.inference.guard import RULES, TABLE_MEASURES
from ctcnet.inference.model_records import network_sha256
from ctcnet.inference.run_differences import (
    SCAN_PIXEL_SIZE,
    differing_keys,
    overwrite_advice,
    what_differs,
)
from ctcnet.inference.sample_folders import refuse_unsafe_folders
from ctcnet.inference.scan_leak_hold import LEAK_NEEDED
from ctcnet.inference.setting_differences import comparable, device_kind
from ctcnet.inference.summary import (
    SUMMARY_FILE,
    keep_previous_summary,
    withdraw_report_page,
)
from ctcnet.io.atomic import atomic_path, atomic_write_text, refuse_not_a_folder
from ctcnet.io.panel import DEFAULT_VALUE_RANGE
from ctcnet.io.scan import Cartridge, FrameRef
from ctcnet.nn.spec import ModelSpec

PARTS_DIR = "parts"
# What a journal part's rows hold beyond detection's columns and the calls' first ones (class,
# probabilities, confidence, review); a journal whose parts hold other columns (written by an
# earlier ctcnet) is refused, not mixed in: the events files are assembled from every part
# under one schema.
TABLE_COLUMNS = ["filed_by_prior", "guard", "markers_ctc", "markers_vouch",
                 "cluster_partner", *TABLE_MEASURES, LEAK_NEEDED]

log = logging.getLogger(__name__)


def run_fingerprint(backend, cartridge: Cartridge, spec: ModelSpec, *, detect: DetectConfig,
                    edge_cut_as: str | None, compensated: bool,
                    frame_device: str = "numpy") -> dict:
    """What must match for a journal to be resumed: model, scan folder, panel and the
    settings that shape each frame's rows (detection and where its dense work runs, edge-cut
    policy, spillover compensation, the decision rule when it is not the model's own).

    Parameters
    ----------
    backend : Backend
        The model that runs (its file and its own spec).
    cartridge : Cartridge
        The cartridge predicted.
    spec : ModelSpec
        The model's spec as the run applies it (its decision rule at the run's prior).
    detect : DetectConfig
        The detection settings.
    edge_cut_as : str or None
        The class edge-cut events are filed as.
    compensated : bool
        Spillover is compensated.
    frame_device : str
        Where the frames' dense work runs (``frame_device_name``): a torch device's
        detection differs from numpy's in the last digits (positions by 1e-4 px, a fused
        probability by 2e-3 on 2,747 events), so frames of both are not mixed in one run.
        Recorded by kind (``cuda``, not ``cuda:1``: every GPU runs the same kernels).

    Returns
    -------
    dict
        Plain JSON data; the decision rule, when recorded, as its stored dict.
    """
    digest = network_sha256(backend)  # an ONNX graph's: its checkpoint's
    # Only when on, so journals written before the option existed still resume.
    compensate = {"compensate": True} if compensated else {}
    on_device = ({"frame_device": device_kind(frame_device)} if frame_device != "numpy"
                 else {})
    # Likewise only when the calls are made under another rule than the model's own (--prior).
    rule = ({"decision": spec.decision.to_dict()} if spec.decision != backend.spec.decision
            else {})
    # Which of the files' planes are read as which channel, where that is not the model's
    # names in order: a panel.json corrected (CK and CD45 swapped) makes other calls, so its
    # journal is another run's, not one to resume with the calls of the wrong order.
    planes = ({"plane_order": {"file": cartridge.file_panel.names,
                          "read": list(cartridge.channels or range(len(cartridge.panel.names)))}}
              if cartridge.file_panel is not None
              and cartridge.file_panel.names != cartridge.panel.names else {})
    # The value ranges (a panel.json corrected since makes other calls), off 12 bits only.
    ranges = [list(c.value_range) for c in cartridge.panel.channels]
    ranges = {"value_ranges": ranges} if any(r != list(DEFAULT_VALUE_RANGE) for r in ranges) \
        else {}
    # The guard's levels decide flags and the markers' call: frames made under other levels
    # must not be mixed into one count. The scan folder too: another cartridge of the same
    # sample id, into the same --out, is another run to refuse, not frames "changed since".
    return {"model_sha256": digest, "input": absolute(cartridge.root),
            "panel": cartridge.panel.names,
            "scan_pixel_size_um": cartridge.panel.pixel_size_um, **planes, **ranges,
            "detect": asdict(detect), "edge_cut_as": edge_cut_as, **compensate, **rule,
            **on_device, "guard": asdict(RULES), "same_cluster_um": SAME_CLUSTER_UM,
            "table_columns": TABLE_COLUMNS}


def frame_signatures(frames: list[FrameRef]) -> dict[str, list]:
    """Name, size and modification time of each frame's files: what tells a resumed run that a
    frame was replaced since its part was written (as make and rsync tell, without reading)."""
    out = {}
    for f in frames:
        sig = []
        for path in f.files:
            try:
                st = path.stat()
                sig.append([path.name, st.st_size, st.st_mtime_ns])
            except OSError:
                sig.append([path.name, None, None])
        out[f.frame_id] = sig
    return out


def open_journal(out_dir: Path, fingerprint: dict, overwrite: bool,
                 frames: list[FrameRef] = (), model_file_sha256: str | None = None,
                 cartridge_id: str | None = None,
                 read: Callable[[FrameRef], np.ndarray] | None = None,
                 stated: dict | None = None) -> set[str]:
    """Prepare ``out_dir/parts``; return the frame ids already done by an earlier run.

    A part whose frame's files changed since it was written (or whose files were not recorded)
    is dropped, so that frame is done again from the new pixels. Files whose name, size or
    time differ but whose bytes (or pixels, read with ``read``) are those the part was made
    of are the same frame (a scan restored from an archive, copied without its times). With
    ``overwrite`` the journal goes, and the summary.json of the run replaced is kept in
    ``previous/``. An earlier run of another model is refused (without ``overwrite``), from
    its journal or, where the journal was deleted, from what its summary.json records
    (``model_file_sha256``: this run's model file; ``fingerprint``: this run's;
    ``cartridge_id``: the scan's identity, ``Cartridge.identity``; ``stated``: what
    cartridge.json states of the sample, as :func:`~ctcnet.inference.finished_runs.
    refuse_to_redo_finished` compares it)."""
    parts = out_dir / PARTS_DIR
    manifest = parts / "run.json"
    refuse_unsafe_folders(out_dir)  # refused before any frame, not once they are done
    refuse_not_a_folder(parts, "the run's journal (deleted and rewritten)")  # (and rmtree'd)
    signatures_file = parts / "frames.json"
    if overwrite:
        # The run replaced stays on record (its counts, model, software and sign-off), kept
        # before its journal goes: a refusal to keep it leaves the run as it was.
        kept = keep_previous_summary(out_dir)
        if kept is not None:
            log.info("%s: the summary of the run --overwrite replaces is kept as %s",
                     out_dir, kept.relative_to(out_dir))
            # Its journal goes now: a run stopped before it writes its own summary leaves the
            # sample missing from the index, not listed with the replaced run's counts.
            (Path(out_dir) / SUMMARY_FILE).unlink(missing_ok=True)
            withdraw_report_page(out_dir, kept)  # nor a page of its counts
        if parts.exists():
            shutil.rmtree(parts)
    try:
        recorded = json.loads(signatures_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        recorded = {}
    current = frame_signatures(list(frames))
    done = {p.name[:-len(".parquet")] for p in parts.glob("*.parquet")
            if not p.name.startswith(".")}
    recorded = _same_bytes_as_journaled(parts, frames, done, recorded, current, read)
    journal_agrees = False
    if manifest.exists():
        try:
            previous = json.loads(manifest.read_text(encoding="utf-8"))
        except ValueError:
            previous = None
        # (one whose fingerprint recorded the frames' GPU, cuda:1, is this run's on cuda:0)
        journal_agrees = isinstance(previous, dict) and comparable(previous) == comparable(
            fingerprint) or _same_scan_moved(previous, fingerprint, done, recorded, current, parts)
        if not journal_agrees and done:
            refuse_to_redo_finished(out_dir, isinstance(previous, dict) and differing_keys(
                previous, fingerprint), done, recorded, current, stated)
            moved = _moved(previous, fingerprint)
            # Read from another folder, of other frames or another pixel size: another scan
            # with this sample id (the lab's matter), not the output folder's.
            another_scan = bool(moved) and (
                any(recorded.get(f) != current.get(f) for f in done)
                or SCAN_PIXEL_SIZE in differing_keys(previous, fingerprint))
            raise (SampleIdTakenError if another_scan else OutputFolderError)(
                # (the error names out_dir before its words: "it", not the path again)
                (f"it holds a run of this sample read from another folder{moved}"
                 if moved else
                 f"it holds a run with another model, other settings, another "
                 f"version's event columns or of another scan (it differs in "
                 f"{what_differs(previous, fingerprint)})")
                + "; use another --out or --overwrite (which redoes every input of the run: "
                "give this one alone to redo it alone)" + overwrite_advice(out_dir), out_dir)
        # A journal of no frame (a run that read none: its cartridge renamed or gone as it
        # began) keeps no work apart: this run starts afresh, checked against a finished
        # run's summary as a folder without a journal is.
    if not journal_agrees and not overwrite:
        _refuse_a_finished_run_of_another_model(out_dir, model_file_sha256, fingerprint,
                                                cartridge_id, journal=manifest.exists())
    make_folder(parts)
    changed = sorted(f for f in done if f in current and recorded.get(f) != current[f])
    records = mended_frame_records(parts)  # a part without its record is done again
    damaged = sorted(f for f in done - set(changed)
                     if f not in records or not _part_readable(parts, f))
    if damaged:
        log.warning("%s: %d journal part(s) unreadable, of another frame or without their "
                    "frame's record (a crash, a file copied?), done again: %s", out_dir,
                    len(damaged), ", ".join(damaged[:10]))
    changed = sorted({*changed, *damaged})
    for frame_id in changed:
        for stale in (parts / f"{frame_id}.parquet", parts / f"{frame_id}.gallery.npz"):
            stale.unlink(missing_ok=True)
    if len(changed) > len(damaged):
        log.warning("%s: %d frame(s) changed since the earlier run, done again: %s",
                    out_dir, len(changed) - len(damaged),
                    ", ".join([f for f in changed if f not in damaged][:10]))
    atomic_write_text(signatures_file, json.dumps(current, sort_keys=True) + "\n")
    atomic_write_text(manifest, json.dumps(fingerprint, indent=2, sort_keys=True) + "\n")
    return done - set(changed)


def _same_bytes_as_journaled(parts: Path, frames: Iterable[FrameRef], done: set[str],
                             recorded: dict, current: dict,
                             read: Callable[[FrameRef], np.ndarray] | None) -> dict:
    """``recorded`` (the frames' signatures as the journal has them) with those of the
    journaled frames (``done``) whose files' names, sizes or times differ now (``current``)
    but whose SHA-256 is the one the journal recorded as the frame was read
    (:func:`ctcnet.io.digests.frame_change`) taken as they are now: the same frame (times
    reset by an archive, a copy, a restore), not a frame to do again. Said."""
    from ctcnet.io.digests import frame_change

    differ = {f.frame_id: f for f in frames
              if f.frame_id in done and recorded.get(f.frame_id) != current.get(f.frame_id)}
    if not differ:
        return recorded
    records = journaled_frames(parts)
    same = sorted(fid for fid, frame in differ.items()
                  if (records.get(fid) or {}).get("record")
                  and frame_change(frame.files, records[fid]["record"],
                                   read=(lambda f=frame: read(f)) if read else None) is None)
    if same:
        log.info("%s: %d frame(s) whose files' names, sizes or times differ from the journal's "
                 "hold the bytes it was made of (a copy or restore that reset their times): "
                 "kept", parts.parent, len(same))
    return {**recorded, **{fid: current[fid] for fid in same}}


def _same_scan_moved(previous, fingerprint: dict, done: set[str], recorded: dict,
                     current: dict, parts: Path) -> bool:
    """Whether an earlier run differs in its input folder alone and every frame it journaled
    (``done``) is in the new folder by the same name, size and time (``recorded`` then,
    ``current`` now: :func:`frame_signatures`): the scan moved (a folder renamed as the
    scanner finished it, a share mounted elsewhere), resumed where it was. Said."""
    if not isinstance(previous, dict) or what_differs(previous, fingerprint) != "input":
        return False
    if not done or any(f not in current or recorded.get(f) != current[f] for f in done):
        return False
    before, now = previous.get("input"), fingerprint["input"]
    # (its old folder still there: a copy, not a move)
    how = (f"moved from {before} to {now}" if not Path(str(before)).exists() else
           f"read from {before} before, is read from a copy at {now} (the first still there)")
    log.warning("%s: the scan %s; the %d frame(s) its journal holds are there unchanged: "
                "resumed", parts.parent, how, len(done))
    return True


def _moved(previous, fingerprint: dict) -> str:
    """Where the earlier run read another input folder (and its frames are not all there
    unchanged): what that may be (the same scan copied, or another scan of the sample id),
    with what else differs."""
    if not isinstance(previous, dict) or "input" not in differing_keys(previous, fingerprint):
        return ""
    others = what_differs({**previous, "input": fingerprint.get("input")}, fingerprint)
    before, now = str(previous.get("input")), str(fingerprint["input"])
    # Two names a screen shows alike: one accent composed (NFC), the other decomposed (NFD).
    alike = (" (the two names differ only in how their accents are encoded)"
             if before != now and unicodedata.normalize("NFC", before) ==
             unicodedata.normalize("NFC", now) else "")
    return (f": it read {before}, this run reads {now}{alike}, "
            + (f"and the runs differ in {others}" if others else
               "whose frames are not all the journal's (names, sizes, bytes)")
            + ". The same scan copied is run again from there with --overwrite, the review's "
            "decisions following their cells (by frame digest and position). Another cartridge "
            "that has this sample id (its folder's name, where its cartridge.json states none) "
            "is given its own sample_id in its cartridge.json: --overwrite would replace this "
            "sample's results with it")


def _refuse_a_finished_run_of_another_model(out_dir: Path, model_file_sha256: str | None,
                                            fingerprint: dict | None = None,
                                            cartridge_id: str | None = None,
                                            journal: bool = False) -> None:
    """An output whose journal was deleted (``parts/`` is about half a sample's disk, and a
    finished sample needs it no more) still says in summary.json what made it: a run of
    another model is refused, as the journal would refuse it, and so, where a person reviewed
    the sample, is one that differs in anything else (its recorded fingerprint,
    ``run_fingerprint``, against this run's) or reads another scan of the sample id (its
    ``cartridge_id``; the scan's folder alone may have moved): such a run would write over
    reviewed calls. An unreviewed sample of other settings is done again (nothing of it is
    mixed in: every frame is redone). A summary written before the fingerprint was recorded is
    told by its model file (another copy of the same model, its ``.pt`` for its ``.onnx``, is
    refused too: its file differs) and, reviewed, refused as of unknown settings (an earlier
    ctcnet's calls may differ from this one's). ``--overwrite`` runs it. ``journal``: the
    journal is there but holds no frame (the same rules: it keeps no work apart)."""
    try:
        summary = json.loads((out_dir / "summary.json").read_text(encoding="utf-8"))
        model = summary["model"]
        before = model.get("sha256")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return  # none, or not a summary: nothing to tell a model by
    where = "as its summary.json says; its journal parts/ " + (
        "holds no frame" if journal else "was deleted")
    reviewed = [name for name in ("review.csv", "signoff.json") if (out_dir / name).exists()]
    recorded = summary.get("run_fingerprint")
    if isinstance(recorded, dict) and fingerprint is not None:
        keys = set(differing_keys(recorded, fingerprint))
        other_scan = "input" in keys and summary.get("cartridge_id") and cartridge_id and \
            summary["cartridge_id"] != cartridge_id
        if "model_sha256" in keys or (reviewed and (keys - {"input"} or other_scan)):
            what = (f"it differs in {what_differs(recorded, fingerprint)}" if keys - {"input"}
                    else f"another scan of the sample id, read from {recorded.get('input')}")
            raise OutputFolderError(f"{out_dir} holds the outputs of a run with another "
                                    f"model, other settings, another version's event columns "
                                    f"or another scan ({what}, {where}); use another --out or "
                                    f"--overwrite{overwrite_advice(out_dir)}", out_dir)
        return
    if before and model_file_sha256 and before != model_file_sha256:
        raise OutputFolderError(f"{out_dir} holds the outputs of a run with another model "
                                f"file ({model.get('path')}, SHA-256 {before[:12]}..., "
                                f"{where}); use another --out or --overwrite"
                                f"{overwrite_advice(out_dir)}", out_dir)
    if reviewed and fingerprint is not None:
        version = (summary.get("software") or {}).get("ctcnet") or summary.get(
            "ctcnet_version", "an earlier version")
        raise OutputFolderError(f"{out_dir} holds reviewed outputs ({', '.join(reviewed)}) of "
                                f"a run whose settings its summary.json does not record "
                                f"(ctcnet {version}; {where}): this run's calls may differ "
                                "from those reviewed. Use another --out, or --overwrite (the "
                                "decisions are carried over by position, and those made on "
                                f"other calls said){overwrite_advice(out_dir)}", out_dir)


def _part_readable(parts: Path, frame_id: str) -> bool:
    """Whether a frame's journal part (its table's footer, its gallery's index) can be read,
    and its rows are that frame's: a power cut can leave a part named but empty, which would
    stop every resume of it; a part copied over another frame's counted one frame twice and
    lost the other."""
    try:
        part = pq.ParquetFile(parts / f"{frame_id}.parquet")
        if "frame_id" in part.schema_arrow.names and part.metadata.num_rows and \
                set(part.read(columns=["frame_id"]).column(0).to_pylist()) != {frame_id}:
            return False
        gallery = parts / f"{frame_id}.gallery.npz"
        if gallery.exists():
            with np.load(gallery) as blob:
                _ = blob["rows"], blob["crops"]  # each decompressed: the index is checked
    except Exception:  # pyarrow and numpy raise several types on a damaged file
        return False
    return True


def drop_unreadable_parts(parts: Path, frames: list[FrameRef]) -> set[str]:
    """Journal parts of frames the listing now marks unreadable (a channel file gone, a copy of
    another frame's bytes) are dropped, so the frame is skipped with its reason instead of
    resumed; returns their frame ids."""
    dropped = set()
    for frame in frames:
        if frame.problem is None:
            continue
        for path in (parts / f"{frame.frame_id}.parquet", parts / f"{frame.frame_id}.gallery.npz"):
            if path.exists():
                path.unlink()
                dropped.add(frame.frame_id)
    return dropped


# The gallery's crops are kept at half precision (display only: a few per frame); a 16-bit
# scan's brightest counts (65505-65535) lie past its top and would be kept as infinity.
HALF_TOP = float(np.finfo(np.float16).max)


def gallery_values(crops: np.ndarray) -> np.ndarray:
    """``crops`` as the journal keeps the gallery's: float16, within its range."""
    return np.clip(crops, -HALF_TOP, HALF_TOP).astype(np.float16)


def write_part(parts: Path, frame_id: str, events: pd.DataFrame, crops: np.ndarray | None,
               choose_gallery: Callable[[pd.DataFrame], np.ndarray],
               crop_rows: np.ndarray | None = None) -> None:
    """Journal one finished frame: the crops of the events ``choose_gallery`` picks (row
    positions: the events the review gallery may show) first, then the table (the completion
    mark). ``crop_rows``: each event's row among ``crops`` (None: the event's own row)."""
    pick = choose_gallery(events)
    if len(pick) and crops is not None:
        rows = pick if crop_rows is None else crop_rows[pick]
        with atomic_path(parts / f"{frame_id}.gallery.npz") as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, rows=pick, crops=gallery_values(crops[rows]))
    with atomic_path(parts / f"{frame_id}.parquet") as tmp:
        events.to_parquet(tmp, index=False)


def journal_tables(parts: Path, frames: list[FrameRef]) -> Iterable[pa.Table]:
    """The journaled event tables, one frame at a time in scan order, as Arrow tables (the
    events files are written from their columns, no pandas table between); frames without
    events are left out: they add no rows, and their empty columns carry no dtypes."""
    for frame in frames:
        path = parts / f"{frame.frame_id}.parquet"
        if path.exists():
            table = pq.read_table(path)
            if len(table):
                yield _placed_now(table, frame)


def lost_parts(parts: Path, frames: list[FrameRef], skipped: list[dict]) -> list[str]:
    """The frames neither skipped nor journaled: their part vanished while the run went on (the
    output folder deleted or moved under it). Counting without them would report a sample
    ``ok`` with their events missing."""
    set_aside = {s["frame"] for s in skipped}
    return [f.frame_id for f in frames if f.frame_id not in set_aside
            and not (parts / f"{f.frame_id}.parquet").exists()]


def _placed_now(table: pa.Table, frame: FrameRef) -> pa.Table:
    """A journaled frame's rows with the frame's place in the scan as the listing gives it
    now: a frame added or restored since the part was written moves the scan-order index of
    the frames after it, and the gallery and the review page find crops by that index."""
    for name, value in (("frame", frame.index), ("row", frame.row), ("col", frame.col)):
        at = table.schema.get_field_index(name)
        if at >= 0 and table.column(at)[0].as_py() != value:
            table = table.set_column(at, table.schema.field(at),
                                     pa.array(np.full(len(table), value),
                                              type=table.schema.field(at).type))
    return table


def journal_gallery(parts: Path, frames: list[FrameRef]) -> dict:
    """Gallery crops in the journal, by frame index: (journaled rows, the ``.gallery.npz``
    holding their crops, read only when the gallery shows them)."""
    gallery = {}
    for frame in frames:
        gpath = parts / f"{frame.frame_id}.gallery.npz"
        if gpath.exists() and (parts / f"{frame.frame_id}.parquet").exists():
            with np.load(gpath) as blob:
                gallery[frame.index] = (blob["rows"], gpath)
    return gallery


REPORT_STATE = "report.json"


def mark_report(parts: Path, state: str) -> str | None:
    """Record in the journal where the cartridge's report stands: ``"pending"`` once its events
    tables are written, ``"done"`` once the gallery and index.html are (summary.json follows);
    returns the state an earlier run left (None: none recorded). A run that finds
    ``"pending"`` was stopped while drawing the report (a background one, while the next
    cartridge ran): every frame is in the journal, so the rerun draws the report from it and
    does no frame again."""
    path = parts / REPORT_STATE
    try:
        before = json.loads(path.read_text(encoding="utf-8")).get("report")
    except (OSError, ValueError, AttributeError):
        before = None
    if state != before:
        atomic_write_text(path, json.dumps({"report": state}) + "\n")
    return before
