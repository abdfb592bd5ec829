"""Slide-scale inference: detect, crop and classify every event of whole cartridges.

Pipeline per cartridge (``predict_cartridge``):

* **Workers** (threads: tifffile, numpy and scipy release the GIL for the heavy work) read a
  frame, detect its events (``ctcnet.detect.detection``), cut model-sized crops
  (``ctcnet.detect.cropping``) and make the marker guard's call-independent measurements, at
  most ``prefetch`` frames ahead of the classifier, so I/O and detection overlap with the
  model. On a 2-core CPU: two frame threads and one model thread (``default_workers``,
  ``ctcnet.inference.backends.cpu_frame_workers``: the frame work outweighs the model's, so
  the second frame thread fills the model core's idle time), BLAS single-threaded and the
  model's idle threads not spinning.
* The **main thread** pools crops across frames into batches and classifies them (views of
  each frame's crops; only a batch spanning two frames is copied) (``torch.inference_mode``;
  on CUDA pinned memory, non-blocking copies and fp16 autocast; or the ONNX runtime), then
  attaches classes, probabilities and the review flag to each frame's
  event table with array operations (no per-event Python); the marker guard
  (``ctcnet.inference.guard``) sends CTC and cluster calls that the measured markers contradict,
  and events unlike the training data, to review (``guard`` column, ``RunSummary.guard``).
  Events cut by the frame border are filed as debris (not intact; ``--keep-edge-calls`` keeps
  the model's call), the model's own call stays in ``model_class``.
* **Model**: a ``.pt`` checkpoint (torch) or an ``.onnx`` export (ONNX Runtime). Without one,
  the shipped model; on a CPU its ONNX export when that was made from the current checkpoint
  (same weights, faster on a CPU: docs/benchmarks.md); a stale export is logged and skipped.
* **Resume journal**: each finished frame is written atomically to ``parts/<frame_id>.parquet``
  (plus its gallery crops); a restarted run skips frames whose part exists, so a killed run
  loses and duplicates nothing. ``parts/run.json`` records the model and settings; a journal
  from another model is refused rather than mixed in.
* **Outputs** (atomic): ``events.csv`` / ``events.parquet`` (streamed from the journal a row
  group at a time; only the columns the summary and report read stay in memory, so memory does
  not grow with the cartridge), ``summary.json``, and, when the caller hands in the report
  (``PredictOptions.report``: ``ctcnet.report.review``, a layer above this one),
  ``gallery/*.png`` and ``index.html``. A corrupt or missing frame is skipped and reported
  with its reason; a panel mismatch stops before any work, and so does metadata no scan or
  blood tube can have (``checked_cartridge``; where the user may know better, it is a
  ``problems`` entry and the run is ``partial``). A simulated cartridge
  (``ground_truth.csv``) also gets detection recall and true counts in its summary.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import resource
import shutil
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

from ctcnet import __version__
from ctcnet.detect.crop_dataset import load_crops, read_crop_index
from ctcnet.detect.cropping import extract_crops, window_size
from ctcnet.detect.detection import DetectConfig, detect_events, detection_recall, empty_event_table
from ctcnet.errors import CtcnetError, InputError
from ctcnet.inference.backends import TORCH_INSTALL, cpu_cores, cpu_frame_workers, has_torch
from ctcnet.inference.counts import count_events
from ctcnet.inference.distributed import shard
from ctcnet.inference.gallery import gallery_rows
from ctcnet.inference.guard import (
    guard_events,
    guard_summary,
    leak_allowance,
    measure_for_guard,
)
from ctcnet.inference.spillover import (
    compensate,
    leak_record,
    leaks_from_ratios,
    network_view,
    scan_ratios,
    wants_compensation,
)
from ctcnet.inference.summary import CropRunSummary, FrameCounts, ModelInfo, RunSummary
from ctcnet.io.atomic import atomic_path, atomic_write_text, exclusive_folder
from ctcnet.io.images import is_rgb_composite, read_image
from ctcnet.io.input_lists import expand_list_files
from ctcnet.io.panel import Panel
from ctcnet.io.scan import Cartridge, FrameRef, is_cartridge, open_cartridge, plausibility_problems
from ctcnet.nn.calls import (
    BALANCED_PRIOR,
    CARTRIDGE_PRIOR,
    FAILED_CLASS,
    calls_from_proba,
    decision_weights,
    prior_rule,
)
from ctcnet.nn.spec import ModelSpec

PARTS_DIR = "parts"
# --compensate: frames (spread over the cartridge) whose events measure its spillover; 12
# frames hold ~3,400 events, ~1,000 of them CK+ (docs/robustness_matrix.md).
SPILLOVER_FRAMES = 12

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------
# Per-frame work (runs in worker threads).

@dataclass
class FrameWork:
    """One frame after reading, detection and cropping (or the reason it was skipped)."""

    frame: FrameRef
    events: pd.DataFrame | None = None
    crops: np.ndarray | None = None        # as the scanner wrote them: the guard, the gallery
    model_crops: np.ndarray | None = None  # what the model sees, when unlike ``crops``
    error: str | None = None
    seconds: dict = field(default_factory=dict)
    measured: pd.DataFrame | None = None  # the guard's call-independent measurements


# What a frame's detection or cropping raises on pixels no check foresaw: the frame is skipped
# with the reason. Anything else (ImportError, AttributeError, TypeError, a CUDA error...) is
# about the program or the machine, not this frame: skipping would drop an intact frame behind
# exit 0, so it stops the run (the journal keeps the frames done; a rerun resumes).
FRAME_DATA_ERRORS = (ValueError, ArithmeticError, IndexError, MemoryError)


def import_frame_modules(cartridge: Cartridge, spec: ModelSpec, device=None) -> None:
    """Import, in the calling (main) thread, every module the frame threads would otherwise
    import lazily on first use: tifffile (and its codecs), Pillow's plugins, the scipy and
    scikit-image parts of detection, and torch where the frames need it (the torch frame path
    only: crops of another pixel size are resampled in numpy).

    A first import of a heavy module from several threads at once can fail (a partially
    initialised module, an ImportError or AttributeError); in a frame thread that failure once
    became a skipped frame and the run still exited 0.
    ``tests/test_frame_threads.py`` checks that no module is first imported in a frame thread.
    """
    import tifffile  # noqa: F401 - with its codecs (imagecodecs)
    from PIL import Image
    from scipy.sparse import coo_matrix  # noqa: F401 - detection.split_and_merge
    from scipy.sparse.csgraph import connected_components  # noqa: F401

    # scikit-image loads these submodules lazily, on first attribute access.
    from skimage.filters import apply_hysteresis_threshold  # noqa: F401
    from skimage.segmentation import watershed  # noqa: F401

    Image.preinit()  # the PNG and JPEG plugins, which Image.open would import on first use
    # pandas' Arrow-backed strings import parts of pyarrow when the first string index is made
    # (detection's event table).
    pd.DataFrame({"frame_id": ["r00c00"]})
    # Crops of another pixel size are resampled in numpy (detect.cropping); torch is needed
    # only for frames on the model's GPU.
    if device is not None:
        import ctcnet.detect.device  # noqa: F401 - torch: the frames on the model's GPU


def prepare_frame(frame: FrameRef, cartridge: Cartridge, spec: ModelSpec,
                  config: DetectConfig, device=None, leaks: np.ndarray | None = None,
                  guard: bool = True) -> FrameWork:
    """Read one frame, detect its events, cut their crops and make the marker guard's
    measurements (``guard=False``: not, for a pass that only reads the crops); with the scan's
    CK ``leaks``, also the compensated crops the model sees (the guard measures the crops as
    the scanner wrote them: an independent check, which an over-estimated leak cannot blind).
    Errors about the frame (unreadable, odd pixels: :data:`FRAME_DATA_ERRORS`) become a skip
    reason; any other error is raised, with a note naming the frame.
    With a torch ``device`` the frame's dense work and the cropping run there
    (:mod:`ctcnet.detect.device`), else in numpy. In threads, call
    :func:`import_frame_modules` in the main thread first."""
    t0 = time.perf_counter()
    try:
        pixels = cartridge.read(frame)
    except InputError as err:
        return FrameWork(frame, error=str(err), seconds={"read": time.perf_counter() - t0})
    except (OSError, ValueError, MemoryError) as err:  # e.g. a file that vanished mid-run
        return FrameWork(frame, error=f"{frame.stem}: cannot read: {err}",
                         seconds={"read": time.perf_counter() - t0})
    t1 = time.perf_counter()
    try:
        detect, cut = detect_events, extract_crops
        if device is not None:
            # torch; already imported by import_frame_modules (main thread): a look-up here.
            from ctcnet.detect import device as on_device

            pixels = on_device.upload(pixels, device)
            detect, cut = on_device.detect_events, on_device.extract_crops
        events = detect(pixels, cartridge.panel, config)
        t2 = time.perf_counter()
        crops, padded = cut(pixels, events["x"].to_numpy(), events["y"].to_numpy(),
                            spec.crop_size, spec.pixel_size_um, cartridge.panel.pixel_size_um)
        model_crops = compensate(crops, leaks, spec.panel) if leaks is not None else None
        t3 = time.perf_counter()
        # The marker guard's measurements need no call: made here, beside the model.
        measured = measure_for_guard(crops, spec) if guard and len(crops) else None
    except InputError as err:
        return FrameWork(frame, error=f"{frame.stem}: {err}",
                         seconds={"read": t1 - t0, "detect": time.perf_counter() - t1})
    except FRAME_DATA_ERRORS as err:  # one odd frame must not end the cartridge
        # A frame readable but odd in a way no check foresaw: skip it with its reason (the
        # other frames still finish); the traceback goes to the debug log, not the screen.
        log.debug("frame %s: detection or cropping failed", frame.stem, exc_info=True)
        return FrameWork(frame, error=f"{frame.stem}: detection failed on this frame "
                                      f"({type(err).__name__}: {err})",
                         seconds={"read": t1 - t0, "detect": time.perf_counter() - t1})
    except Exception as err:
        err.add_note(f"ctcnet predict: raised while preparing frame {frame.stem} (not an error "
                     "of its data, so the run stops; rerunning resumes)")
        raise
    events.insert(0, "frame_id", frame.frame_id)
    events.insert(0, "col", frame.col)
    events.insert(0, "row", frame.row)
    events.insert(0, "frame", frame.index)
    events["padded"] = padded
    t4 = time.perf_counter()
    return FrameWork(frame, events, crops, seconds={"read": t1 - t0, "detect": t2 - t1,
                                                    "crop": t3 - t2, "guard": t4 - t3},
                     model_crops=model_crops, measured=measured)


def ordered_prefetch(items: list, work: Callable, workers: int, ahead: int) -> Iterable:
    """Yield ``work(item)`` in order, computed by ``workers`` threads up to ``ahead`` items ahead.

    ``workers=0`` runs inline (no overlap), for clean per-stage timings.
    """
    if workers <= 0:
        for item in items:
            yield work(item)
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ctcnet-frame") as pool:
        pending: deque[Future] = deque()
        it = iter(items)
        try:
            for item in it:
                pending.append(pool.submit(work, item))
                if len(pending) >= ahead:
                    break
            while pending:
                result = pending.popleft().result()
                nxt = next(it, None)
                if nxt is not None:
                    pending.append(pool.submit(work, nxt))
                yield result
        finally:
            for f in pending:
                f.cancel()


# ---------------------------------------------------------------------------------------------
# Classification across frames.

def label_events(events: pd.DataFrame, proba: np.ndarray, spec: ModelSpec,
                 edge_cut_class: str | None = None) -> pd.DataFrame:
    """Attach class, per-class probabilities, confidence and the review flag (vectorised).

    ``model_class`` is the model's own call. ``class`` is the same, except that with
    ``edge_cut_class`` an event cut by the frame border gets that class: only intact cells
    count as CTCs (CellSearch rule), and a reviewer files an edge-cut object as debris. A row
    of non-finite probabilities is no call (``ctcnet.nn.calls``): class ``failed``, reviewed.
    """
    events = events.copy()
    called, confidence, review, failed = calls_from_proba(proba, spec.class_names,
                                                          spec.review_threshold, spec.decision)
    if failed.any():
        log.warning("%d of %d events have non-finite probabilities: marked %r and sent to "
                    "review", int(failed.sum()), len(failed), FAILED_CLASS)
    events["model_class"] = pd.Series(called, index=events.index, dtype=object)
    events["class"] = events["model_class"]
    if edge_cut_class is not None and "edge_cut" in events and len(events):
        edge = events["edge_cut"].to_numpy(bool) & ~failed
        events["class"] = np.where(edge, edge_cut_class, called)
    for k, name in enumerate(spec.class_names):
        events[f"p_{name}"] = proba[:, k].astype(np.float32)
    events["confidence"] = confidence
    events["review"] = review
    return events


def spec_at_prior(spec: ModelSpec, prior: str | None, default: str) -> tuple[ModelSpec, str]:
    """The model's spec with the decision rule of ``prior`` (``PredictOptions.prior``; None:
    ``default``, the input's own), and the prior's name for summary.json."""
    rule, name = prior_rule(prior, spec.class_names, spec.decision, default)
    return (spec if rule == (spec.decision or {}) else spec.replace(decision=rule)), name


def edge_cut_class(spec: ModelSpec, options: PredictOptions) -> str | None:
    """The class edge-cut events are filed under, if the option is on and the class exists."""
    name = options.edge_cut_as
    return name if name and name in spec.class_names else None


class CrossFrameBatcher:
    """Pools the crops of consecutive frames into batches of ``batch_size`` for the model.

    ``add(work)`` queues a frame; ``ready(final)`` classifies whole batches (all that is left when
    ``final``) and returns the frames whose every event now has probabilities, in order.
    """

    def __init__(self, classify: Callable[[np.ndarray], np.ndarray], batch_size: int):
        self.classify = classify
        self.batch_size = max(1, int(batch_size))
        self.frames: deque[FrameWork] = deque()
        self.crops: list[np.ndarray] = []      # not yet classified, in frame order
        self.waiting = 0                       # crops queued but not classified
        self.proba: list[np.ndarray] = []      # classified, not yet handed back
        self.done = 0
        self.seconds = 0.0

    def add(self, work: FrameWork) -> None:
        self.frames.append(work)
        crops = work.crops if work.model_crops is None else work.model_crops
        if len(crops):
            self.crops.append(crops)
            self.waiting += len(crops)

    def ready(self, final: bool = False) -> list[tuple[FrameWork, np.ndarray]]:
        take = self.waiting if final else (self.waiting // self.batch_size) * self.batch_size
        if take:
            t0 = time.perf_counter()
            for batch in self._take(take):
                self.proba.append(self.classify(batch))
            self.seconds += time.perf_counter() - t0
            self.waiting -= take
            self.done += take
        out = []
        available = np.concatenate(self.proba) if len(self.proba) > 1 else \
            (self.proba[0] if self.proba else None)
        used = 0
        while self.frames:
            n = len(self.frames[0].events)
            if n > self.done - used:
                break
            work = self.frames.popleft()
            out.append((work, available[used:used + n] if n else None))
            used += n
        if used:
            rest = available[used:]
            self.proba = [rest] if len(rest) else []
            self.done -= used
        return out

    def _take(self, count: int) -> Iterable[np.ndarray]:
        """The first ``count`` queued crops, as model calls of whole batches where possible.

        A frame's crops go to the model as views of its own array; only a batch that spans two
        frames is copied (at most ``batch_size`` crops), never the whole pool.
        """
        size = self.batch_size
        while count > 0:
            head = self.crops[0]
            if len(head) >= min(size, count):  # straight from this frame's array
                n = min(count, len(head))
                n = (n // size) * size if n >= size else n
                batch = head[:n]
                self._drop(n)
            else:  # one batch across frames
                pieces, need = [], min(size, count)
                while need:
                    part = self.crops[0][:need]
                    pieces.append(part)
                    need -= len(part)
                    self._drop(len(part))
                batch = np.concatenate(pieces)
            count -= len(batch)
            yield batch

    def _drop(self, n: int) -> None:
        rest = self.crops[0][n:]
        if len(rest):
            self.crops[0] = rest
        else:
            self.crops.pop(0)


# ---------------------------------------------------------------------------------------------
# The journal of finished frames (resume).

def run_fingerprint(backend, cartridge: Cartridge, options: PredictOptions,
                    spec: ModelSpec | None = None) -> dict:
    """What must match for a journal to be resumed: model, panel and the settings that shape
    each frame's rows (detection, edge-cut policy, spillover compensation, the decision rule
    when it is not the model's own: ``spec``, the model's spec as the run applies it)."""
    spec = spec or backend.spec
    digest = hashlib.sha256(backend.model_path.read_bytes()).hexdigest()
    # Only when on, so journals written before the option existed still resume.
    compensate = {"compensate": True} if wants_compensation(spec, options.compensate) \
        else {}
    # Likewise only when the calls are made under another rule than the model's own (--prior).
    rule = {"decision": spec.decision} if spec.decision != backend.spec.decision else {}
    return {"model_sha256": digest, "panel": cartridge.panel.names,
            "scan_pixel_size_um": cartridge.panel.pixel_size_um,
            "detect": asdict(options.detect), "edge_cut_as": options.edge_cut_as, **compensate,
            **rule}


def measure_scan_leaks(cartridge: Cartridge, spec: ModelSpec, config: DetectConfig,
                       device=None) -> tuple[np.ndarray, dict]:
    """CK's spillover of a scan, from the events of up to ``SPILLOVER_FRAMES`` frames spread
    evenly over it (the same frames on every run of the cartridge, so a resumed run takes off
    the same leaks). Returns the (C,) leaks in model channel order and their record."""
    t0 = time.perf_counter()
    frames = cartridge.frames
    picks = np.unique(np.linspace(0, len(frames) - 1, min(len(frames), SPILLOVER_FRAMES))
                      .round().astype(int)) if frames else []
    ratios, sds, events = [], [], 0
    for i in picks:
        work = prepare_frame(frames[i], cartridge, spec, config, device, guard=False)
        if work.error is None and len(work.crops):
            ratio, sd = scan_ratios(work.crops, spec.panel)
            ratios.append(ratio)
            sds.append(sd)
            events += len(work.crops)
    width = spec.panel.num_channels
    ratio = np.concatenate(ratios) if ratios else np.zeros((0, width))
    sd = np.concatenate(sds) if sds else np.zeros((0, width))
    leaks = leaks_from_ratios(ratio, sd, spec.panel)
    record = leak_record(leaks, spec.panel, frames=len(picks), events=events,
                         ck_events=int(len(ratio)), seconds=round(time.perf_counter() - t0, 3))
    log.info("%s: CK spillover %s (from %d CK+ events of %d frames)", cartridge.sample_id,
             record["leaks"], len(ratio), len(picks))
    return leaks, record


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
                 frames: list[FrameRef] = ()) -> set[str]:
    """Prepare ``out_dir/parts``; return the frame ids already done by an earlier run.

    A part whose frame's files changed since it was written (or whose files were not recorded)
    is dropped, so that frame is done again from the new pixels.
    """
    parts = out_dir / PARTS_DIR
    manifest = parts / "run.json"
    signatures_file = parts / "frames.json"
    if overwrite and parts.exists():
        shutil.rmtree(parts)
    if manifest.exists():
        try:
            previous = json.loads(manifest.read_text())
        except ValueError:
            previous = None
        if previous != fingerprint:
            raise InputError(f"{out_dir} holds a run with another model or other settings; "
                             "use another --out or --overwrite", out_dir)
    parts.mkdir(parents=True, exist_ok=True)
    try:
        recorded = json.loads(signatures_file.read_text())
    except (OSError, ValueError):
        recorded = {}
    current = frame_signatures(list(frames))
    done = {p.name[:-len(".parquet")] for p in parts.glob("*.parquet")
            if not p.name.startswith(".")}
    changed = sorted(f for f in done if f in current and recorded.get(f) != current[f])
    for frame_id in changed:
        for stale in (parts / f"{frame_id}.parquet", parts / f"{frame_id}.gallery.npz"):
            stale.unlink(missing_ok=True)
    if changed:
        log.warning("%d frame(s) changed since the earlier run, done again: %s", len(changed),
                    ", ".join(changed[:10]))
    atomic_write_text(signatures_file, json.dumps(current, sort_keys=True) + "\n")
    atomic_write_text(manifest, json.dumps(fingerprint, indent=2, sort_keys=True) + "\n")
    return done - set(changed)


def warn_of_decisions_on_another_cartridge(out_dir: Path, cartridge: Cartridge) -> None:
    """A results folder reviewed on one cartridge, predicted again from another with the same
    sample id: its decisions will be set aside (``ctcnet.report.decisions``); said now, while
    the person who ran it can still pick another ``--out``."""
    try:
        before = json.loads((out_dir / "summary.json").read_text()).get("cartridge_id")
    except (OSError, ValueError, AttributeError):
        return
    if before and cartridge.identity and before != cartridge.identity and \
            (out_dir / "review.csv").exists():
        log.warning("%s: review.csv holds decisions made on another cartridge with sample id "
                    "%s (cartridge %s; this scan is %s): they will be set aside, not counted",
                    out_dir, cartridge.sample_id, before, cartridge.identity)


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


def write_part(parts: Path, work: FrameWork, events: pd.DataFrame, crops: np.ndarray | None,
               spec: ModelSpec, gallery_per_frame: int) -> None:
    """Journal one finished frame: gallery crops first, then the table (the completion mark)."""
    frame_id = work.frame.frame_id
    pick = gallery_rows(events, spec, gallery_per_frame)
    if len(pick) and crops is not None:
        with atomic_path(parts / f"{frame_id}.gallery.npz") as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, rows=pick, crops=crops[pick].astype(np.float16))
    with atomic_path(parts / f"{frame_id}.parquet") as tmp:
        events.to_parquet(tmp, index=False)


def journal_tables(parts: Path, frames: list[FrameRef]) -> Iterable[pd.DataFrame]:
    """The journaled event tables, one frame at a time in scan order (frames without events
    are left out: they add no rows, and their empty columns carry no dtypes)."""
    for frame in frames:
        path = parts / f"{frame.frame_id}.parquet"
        if path.exists():
            table = pd.read_parquet(path)
            if len(table):
                yield table


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


# ---------------------------------------------------------------------------------------------
# One cartridge.

class RunReport(Protocol):
    """What draws a run's report (``ctcnet.report.review`` is one): the gallery pages from the
    journaled crops, then ``index.html`` from the summary once its timings are final."""

    def write_gallery(self, out_dir: Path, events: pd.DataFrame, gallery: dict, panel: Panel,
                      spec: ModelSpec, limit: int, explain=None) -> dict: ...

    def write_html(self, out_dir: Path, summary: RunSummary) -> None: ...


@dataclass
class PredictOptions:
    """How a run behaves; the defaults suit a 2-core CPU and scale up on a GPU node."""

    batch_size: int | None = None  # crops per model call; None: the backend's (by device)
    # Reader/detector threads; 0 = inline (clean per-stage timings); None = chosen by
    # ``default_workers`` (2 on a 2-core CPU, up to 8 threads to feed a GPU).
    workers: int | None = None
    # Frames prepared ahead of the classifier (bounds memory: ~60 MB a frame of 1384 x 1036 x
    # 5 channels with its crops); at least one per frame thread.
    prefetch: int = 2
    # Where detection's whole-frame work and the cropping run: "auto" (on the model's GPU when
    # it runs on one, else numpy), "numpy", or a torch device ("cuda", "cuda:1"; "cpu" runs the
    # torch twin on the CPU, which tests use).
    frame_device: str = "auto"
    detect: DetectConfig = field(default_factory=DetectConfig)
    overwrite: bool = False     # discard an existing journal instead of resuming it
    quiet: bool = False
    gallery_per_frame: int = 32  # per category, so a runaway model cannot fill the disk
    gallery_limit: int = 200     # per category in the final gallery
    # What draws the review gallery and index.html once the tables are written
    # (``ctcnet.report.review``, as ``ctcnet predict`` passes it); None: no report. Handed in
    # because the report is a layer above this one.
    report: RunReport | None = None
    saliency: bool = True        # per-channel saliency maps in the review gallery
    # Class for events cut by the frame border (not intact, so never counted as CTCs); None
    # keeps the model's call. The model's own call stays in the ``model_class`` column.
    edge_cut_as: str | None = "debris"
    # Take CK's spillover into the other marker channels off every crop before the model (the
    # guard and the gallery keep the crops as the scanner wrote them), measured on the scan's
    # own events (``ctcnet.inference.spillover``; per cartridge from ``SPILLOVER_FRAMES``
    # frames spread over it, per sample_id on a crop set). None: as the model was trained
    # (``spec.compensated_input``).
    compensate: bool | None = None
    # The class prior the calls are made at (``ctcnet.nn.calls.prior_rule``): None = the
    # input's default (cartridges: "cartridge", the model's fitted prevalence rule; crop sets:
    # "balanced", the plain most probable class), or "cartridge", "balanced", or stated class
    # frequencies "ctc=0.01,cluster=0.005".
    prior: str | None = None
    # Crop sets: um per pixel where panel.json does not state it, "auto" (estimated from the
    # nuclei, ``ctcnet.detect.pixel_size``) or "fit" (a scale per crop, its cell brought to one
    # size); None: panel.json's. Cartridges: not used.
    pixel_size: float | str | None = None
    # Crop sets: the markers take part in the call (``guard.crop_set_calls``: the model's
    # marker fusion, or the marker rule; a CD45+ event is never a CTC); False: the network's
    # call alone. Cartridges: not used (there the markers flag events for review).
    marker_calls: bool = True
    # Test hook: called with each journaled frame id (e.g. to interrupt a run deterministically).
    on_frame_done: Callable[[str], None] | None = None


def default_workers(backend=None) -> int:
    """Frame threads when not given. On a GPU: enough CPU cores to keep it fed. On a CPU:
    ``cpu_frame_workers`` (two on 2-3 cores, one per four cores on larger machines, whose
    other cores go to the model)."""
    cores = cpu_cores()
    if backend is not None and backend.gpu is not None:
        return max(1, min(8, cores - 1))
    return cpu_frame_workers(cores)


def resolve_frame_device(option: str | None, backend=None):
    """The torch device for the frames' dense work (see ``PredictOptions.frame_device``), or
    None for numpy. ``auto`` takes the model's GPU (torch: its device; onnxruntime: its CUDA
    provider's device) when torch can use it, else numpy; a device asked for by name must
    exist."""
    option = (option or "numpy").strip().lower()
    if option == "auto":
        option = _model_gpu(backend)
        if option is None:
            return None
    if option == "numpy":
        return None
    if not has_torch():
        raise InputError(f"frame device {option!r} needs torch, which this install lacks: "
                         f"{TORCH_INSTALL} (or --frame-device numpy)")
    try:
        import torch

        device = torch.device(option)
    except (ImportError, RuntimeError) as err:
        raise InputError(f"frame device {option!r}: {err}") from None
    if device.type not in ("cpu", "cuda"):
        raise InputError(f"frame device {option!r}: use auto, numpy, cpu or cuda[:N]")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"frame device {option!r}: no CUDA device is available")
        index = torch.cuda.current_device() if device.index is None else device.index
        if index >= torch.cuda.device_count():
            raise InputError(f"frame device {option!r}: there are "
                             f"{torch.cuda.device_count()} CUDA device(s)")
        device = torch.device("cuda", index)  # one name per device: cuda and cuda:0 alike
    return device


def _model_gpu(backend) -> str | None:
    """The GPU a backend runs on (``Backend.gpu``), when torch can use it too; else None."""
    gpu = backend.gpu if backend is not None else None
    if gpu is None:
        return None
    try:
        import torch
    except ImportError:
        return None
    return gpu if torch.cuda.is_available() else None


def _progress(total: int, description: str, quiet: bool):
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[events]} events"), TimeElapsedColumn(),
                    TimeRemainingColumn(), disable=quiet, transient=False)


def predict_cartridge(cartridge: Cartridge | str | Path, backend, out_dir: str | Path,
                      options: PredictOptions | None = None) -> RunSummary:
    """Detect and classify every event of one cartridge, and draw its report when
    ``options.report`` is given (``ctcnet.report.review``); returns its summary.

    ``out_dir`` is this cartridge's own output folder. The summary holds counts, per-7.5 mL
    figures, skipped frames with reasons and ``timings_s`` (read, detect, crop: summed over
    frames in the worker threads; classify, write, report: main thread; total: wall clock).
    """
    options = options or PredictOptions()
    if not isinstance(cartridge, Cartridge):
        cartridge = open_cartridge(cartridge)
    cartridge = checked_cartridge(cartridge)
    # A cartridge is called at cartridge prevalence unless another prior is asked for.
    spec, prior = spec_at_prior(backend.spec, options.prior, CARTRIDGE_PRIOR)
    cartridge = cartridge.conform(spec.panel)  # the model's channels, by name
    out_dir = Path(out_dir)
    with exclusive_folder(out_dir, "predict"), single_threaded_blas():
        return _predict_cartridge(cartridge, backend, spec, prior, out_dir, options)


def checked_cartridge(cartridge: Cartridge) -> Cartridge:
    """The cartridge with what its metadata claim checked (``plausibility_problems``: refused
    by InputError, or added to its problems, which make the run ``partial``); every predict
    entry point goes through here, some twice (a problem is listed once)."""
    new = [p for p in plausibility_problems(cartridge) if p not in cartridge.problems]
    for problem in new:
        log.warning("%s: %s", cartridge.sample_id, problem)
    return replace(cartridge, problems=[*cartridge.problems, *new]) if new else cartridge


def single_threaded_blas():
    """BLAS on one thread for the run: its matrix products are small (crop resampling, the
    guard's leak fit) and run beside the model; a BLAS pool of its own would fight the model's
    threads for the cores (and spins on a busy machine)."""
    import contextlib

    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # scikit-learn brings it; without it BLAS keeps its own setting
        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


def _predict_cartridge(cartridge: Cartridge, backend, spec: ModelSpec, prior: str,
                       out_dir: Path, options: PredictOptions) -> dict:
    t_start = time.perf_counter()
    warn_of_decisions_on_another_cartridge(out_dir, cartridge)
    done = open_journal(out_dir, run_fingerprint(backend, cartridge, options, spec),
                        options.overwrite, cartridge.frames)
    parts = out_dir / PARTS_DIR
    done -= drop_unreadable_parts(parts, cartridge.frames)
    todo = [f for f in cartridge.frames if f.frame_id not in done]
    seconds = {"read": 0.0, "detect": 0.0, "crop": 0.0, "guard": 0.0, "classify": 0.0,
               "write": 0.0}
    skipped: list[dict] = []
    batcher = CrossFrameBatcher(backend.predict_proba, options.batch_size or backend.batch_size)
    device = resolve_frame_device(options.frame_device, backend)
    import_frame_modules(cartridge, spec, device)  # before any frame thread starts
    leaks, spillover = None, None
    if wants_compensation(spec, options.compensate):
        leaks, spillover = measure_scan_leaks(cartridge, spec, options.detect, device)
        seconds["spillover"] = spillover["seconds"]
    work_fn = lambda f: prepare_frame(f, cartridge, spec, options.detect, device,  # noqa: E731
                                      leaks)
    edge_class = edge_cut_class(spec, options)
    n_events = 0

    def finish(ready):
        nonlocal n_events
        for work, proba in ready:
            t0 = time.perf_counter()
            if proba is None:
                proba = np.zeros((0, spec.num_classes), np.float32)
            events = label_events(work.events, proba, spec, edge_class)
            events = guard_events(events, work.crops, proba, spec, work.measured)
            write_part(parts, work, events, work.crops, spec, options.gallery_per_frame)
            work.crops = work.model_crops = work.measured = None
            seconds["write"] += time.perf_counter() - t0
            n_events += len(events)
            progress.update(task, advance=1, events=n_events)
            if options.on_frame_done:
                options.on_frame_done(work.frame.frame_id)

    with _progress(len(todo), cartridge.sample_id, options.quiet) as progress:
        task = progress.add_task(cartridge.sample_id, total=len(todo), events=0)
        workers = default_workers(backend) if options.workers is None else options.workers
        for work in ordered_prefetch(todo, work_fn, workers, max(options.prefetch, workers)):
            for stage, s in work.seconds.items():
                seconds[stage] += s
            if work.error is not None:
                skipped.append({"frame": work.frame.frame_id, "reason": work.error})
                progress.update(task, advance=1)
                continue
            batcher.add(work)
            finish(batcher.ready())
        finish(batcher.ready(final=True))
    seconds["classify"] = batcher.seconds
    release_free_memory()  # the frames' buffers, before the tables and the report

    t0 = time.perf_counter()
    gallery = journal_gallery(parts, cartridge.frames)
    tables = journal_tables(parts, cartridge.frames)
    first = next(tables, None)
    if first is None:  # no events at all: the files still get every column
        first = label_events(empty_frame_table(cartridge), np.zeros((0, spec.num_classes),
                                                                    np.float32), spec)
    events = write_tables(out_dir, itertools.chain([first], tables))
    release_free_memory()  # what reading the journal and writing the tables left in the heap
    seconds["write"] += time.perf_counter() - t0
    seconds["total"] = time.perf_counter() - t_start
    summary = build_summary(cartridge, backend, events, skipped, len(cartridge.frames) - len(todo),
                            seconds, options, spec, prior)
    summary.spillover = spillover
    summary.ground_truth = compare_with_ground_truth(cartridge, events, spec, skipped)
    if options.report:
        t0 = time.perf_counter()
        explain = backend.explainer() if options.saliency else None
        summary.gallery = options.report.write_gallery(out_dir, events, gallery, cartridge.panel,
                                                       spec, options.gallery_limit, explain)
        seconds["report"] = time.perf_counter() - t0
        seconds["total"] = time.perf_counter() - t_start
        summary.timings_s = {k: round(v, 4) for k, v in seconds.items()}
        summary.events_per_s = len(events) / seconds["total"]
        # After the timings are final, so index.html shows summary.json's (its own few
        # milliseconds are in neither).
        options.report.write_html(out_dir, summary)
    summary.write(out_dir)
    return summary


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
    return volume_ml * (frames_total - frames_skipped) / spread if spread else 0.0


def compare_with_ground_truth(cartridge: Cartridge, events: pd.DataFrame, spec: ModelSpec,
                              skipped: list[dict]) -> dict | None:
    """For a simulated cartridge (``ground_truth.csv`` beside the frames): detection recall and
    true versus called counts per class, over the frames that were processed."""
    path = cartridge.root / "ground_truth.csv"
    if not path.exists():
        return None
    try:
        truth = pd.read_csv(path)
    except (OSError, ValueError) as err:
        return {"error": f"cannot read {path.name}: {err}"}
    if not {"x", "y", "class", "row", "col"} <= set(truth.columns):
        return {"error": f"{path.name} lacks the columns x, y, class, row, col"}
    truth = truth_of_processed_frames(cartridge, truth, skipped)
    recall = detection_recall(events, truth, cartridge.panel.pixel_size_um)
    return {"detection": recall,
            "true_counts": {n: int((truth["class"] == n).sum()) for n in spec.class_names}}


def truth_of_processed_frames(cartridge: Cartridge, truth: pd.DataFrame,
                              skipped: list[dict]) -> pd.DataFrame:
    """The ground-truth rows of the frames that were processed (not skipped)."""
    skipped_ids = {s["frame"] for s in skipped}
    processed = pd.MultiIndex.from_tuples(
        [(f.row, f.col) for f in cartridge.frames if f.frame_id not in skipped_ids],
        names=["row", "col"])
    return truth[pd.MultiIndex.from_frame(truth[["row", "col"]]).isin(processed)]


def empty_frame_table(cartridge: Cartridge) -> pd.DataFrame:
    table = empty_event_table(cartridge.panel)
    for col, dtype in (("frame_id", object), ("col", "int64"), ("row", "int64"),
                       ("frame", "int64")):
        table.insert(0, col, pd.Series(dtype=dtype))
    table["padded"] = pd.Series(dtype=bool)
    return table


# What the summary, the ground-truth comparison and the report read of the events table: the
# one table predict keeps in memory after the frame loop (a few bytes per event).
SUMMARY_COLUMNS = ("event_id", "frame", "frame_id", "row", "col", "x", "y", "edge_cut",
                   "model_class", "class", "confidence", "review", "guard")
ROWS_PER_GROUP = 16384  # parquet row group: thousands of rows (one frame holds hundreds)


def write_tables(out_dir: Path, tables: Iterable[pd.DataFrame],
                 keep: Iterable[str] = SUMMARY_COLUMNS) -> pd.DataFrame:
    """Stream tables (scan order; at least one) into events.parquet and events.csv, each written
    atomically, numbering ``event_id`` across them; return only the ``keep`` columns of every
    row, strings as categoricals.

    The whole table is never held: a cartridge of a million events is written a row group at a
    time, so memory does not grow with the cartridge beyond the returned columns.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    kept, pending, offset, header = ColumnKeeper(keep), [], 0, True
    with atomic_path(out_dir / "events.parquet") as parquet_tmp, \
            atomic_path(out_dir / "events.csv") as csv_tmp, open(csv_tmp, "w") as csv:
        writer = None

        def flush():
            nonlocal writer
            if not pending:
                return
            block = pa.Table.from_pandas(pd.concat(pending, ignore_index=True),
                                         preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(parquet_tmp, block.schema)
            writer.write_table(block.cast(writer.schema))
            pending.clear()

        try:
            for table in tables:
                table = table.reset_index(drop=True)
                table.insert(0, "event_id", np.arange(offset, offset + len(table),
                                                      dtype=np.int64))
                table.to_csv(csv, index=False, header=header, float_format="%.5g")
                header = False
                kept.add(table)
                pending.append(table)
                offset += len(table)
                if sum(len(t) for t in pending) >= ROWS_PER_GROUP:
                    flush()
            flush()
        finally:
            if writer is not None:
                writer.close()
    return kept.table()


class ColumnKeeper:
    """A few columns of many tables, gathered as plain arrays: strings become integer codes into
    one vocabulary per column (a handful of calls, flags and frame ids), so each kept event costs
    a few bytes. A list of a thousand small DataFrames (or of Python strings) would cost several
    times the data itself."""

    def __init__(self, names: Iterable[str]):
        self.names = list(names)
        self.arrays: dict[str, list[np.ndarray]] = {}
        self.vocabulary: dict[str, dict] = {}

    def add(self, table: pd.DataFrame) -> None:
        for name in self.names:
            if name not in table:
                continue
            column = table[name]
            if column.dtype == object or pd.api.types.is_string_dtype(column.dtype):
                codes, uniques = pd.factorize(column)  # a missing value is code -1
                vocabulary = self.vocabulary.setdefault(name, {})
                lookup = np.array([vocabulary.setdefault(u, len(vocabulary)) for u in uniques]
                                  + [-1], dtype=np.int32)
                values = lookup[codes]
            else:  # a copy: a view would keep the table's whole block of columns alive
                values = column.to_numpy(copy=True)
            self.arrays.setdefault(name, []).append(values)

    def table(self) -> pd.DataFrame:
        """The kept columns of every table added, in order; strings as categoricals."""
        out = {}
        for name, arrays in self.arrays.items():
            values = np.concatenate(arrays)
            if name in self.vocabulary:
                categories = list(self.vocabulary[name])
                values = pd.Categorical.from_codes(values, categories=categories)
            out[name] = values
        return pd.DataFrame(out)


def release_free_memory() -> None:
    """Hand freed memory back to the system (glibc's ``malloc_trim``), and from here on unmap
    every block of 1 MiB or more when it is freed. Called after the frame loop and again after
    the events tables are written (reading a thousand journal parts leaves tens of MB of small
    free blocks in the heap).

    numpy's frame-sized buffers come and go many times a second; glibc then keeps them in its
    heaps instead of unmapping them, so the process would carry the loop's peak into the
    report (which loads torch for saliency). glibc also raises its mmap threshold (up to
    32 MiB) after the first large free, after which the report's saliency batches, freed and
    allocated again per batch, pile up in the heap: fixing the threshold at 1 MiB took the
    saliency of 400 crops from +300 MB to +135 MB. The frame loop keeps glibc's default (its
    buffers are reused, and unmapping them would cost page faults). Elsewhere a no-op.
    """
    import ctypes
    import ctypes.util

    m_mmap_threshold = -3  # glibc's mallopt parameter number (malloc.h)
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        libc.malloc_trim(0)
        libc.mallopt(m_mmap_threshold, 1 << 20)
    except (OSError, AttributeError, TypeError):
        pass
    if "pyarrow" in sys.modules:  # Arrow's own allocator keeps freed blocks for reuse
        sys.modules["pyarrow"].default_memory_pool().release_unused()


def peak_memory_mb() -> float:
    """Peak resident memory of this process so far, MB.

    Linux's ``VmHWM`` (the high-water mark of this process's own memory); ``ru_maxrss`` is the
    fallback elsewhere, but on Linux a child started by a big process inherits the parent's
    ``ru_maxrss``, so a benchmark worker would report its parent's peak.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def build_summary(cartridge: Cartridge, backend, events: pd.DataFrame, skipped: list[dict],
                  resumed: int, seconds: dict, options: PredictOptions,
                  spec: ModelSpec | None = None, prior: str = CARTRIDGE_PRIOR) -> RunSummary:
    spec = spec or backend.spec
    total, skips = len(cartridge.frames), len(skipped)
    volume = volume_read_ml(cartridge.blood_volume_ml, total, skips, cartridge.frames_scanned)
    # Every count of the summary from one tally; calls the marker guard held for review are
    # counted apart (tally.held, RunSummary.guard["by_flag"]).
    tally = count_events(events, spec.class_names, spec.taxonomy.reported_classes(), volume)
    n = len(events)
    classify = seconds.get("classify", 0.0)
    return RunSummary(
        sample_id=cartridge.sample_id,
        input=str(cartridge.root),
        ctcnet_version=__version__,
        model=ModelInfo(path=str(backend.model_path), arch=spec.arch, version=spec.version,
                        classes=spec.class_names, crop_size=spec.crop_size,
                        pixel_size_um=spec.pixel_size_um, temperature=spec.temperature,
                        review_threshold=spec.review_threshold,
                        decision_log_weights=decision_weights(spec.decision),
                        prior=prior),
        backend=backend.name,
        device=backend.device_name,
        panel=cartridge.panel.to_dict(),
        resampled_window_px=window_size(spec.crop_size, spec.pixel_size_um,
                                        cartridge.panel.pixel_size_um),
        blood_volume_ml=cartridge.blood_volume_ml,
        blood_volume_processed_ml=volume,
        status=sample_status(total, skips, tally.failed, len(cartridge.problems)),
        frames=FrameCounts(total=total, processed=total - skips, skipped=skips,
                           resumed_from_journal=resumed),
        skipped_frames=skipped,
        problems=list(cartridge.problems),
        cartridge_id=cartridge.identity or None,
        events=n,
        **RunSummary.count_fields(tally),
        guard=guard_summary(events, spec),  # calls the marker guard sent to review, by flag
        edge_cut=int(events["edge_cut"].sum()) if n else 0,
        detection=asdict(options.detect),
        edge_cut_as=edge_cut_class(spec, options),
        batch_size=options.batch_size or backend.batch_size,
        workers=default_workers(backend) if options.workers is None else options.workers,
        timings_s={k: round(v, 4) for k, v in seconds.items()},
        events_per_s=n / seconds["total"] if seconds.get("total") else None,
        classify_events_per_s=n / classify if classify else None,
        peak_memory_mb=round(peak_memory_mb(), 1),
    )


# ---------------------------------------------------------------------------------------------
# Inputs: cartridges, folders or lists of cartridges, crop datasets.

def resolve_inputs(inputs: Iterable[str | Path]) -> tuple[list[Path], list[Path]]:
    """Sort the given paths into (cartridge folders, crop dataset folders).

    A path may be a cartridge folder, a folder whose sub-folders are cartridges, a text file
    listing such paths (one per line, ``#`` comments), or a crop dataset folder.
    """
    cartridges, datasets = [], []
    for path in expand_list_files(inputs):  # list files read, a list naming itself refused
        if not path.is_dir():
            raise InputError("input not found (a cartridge folder, a folder of cartridges, a "
                             "list file, or a crop dataset)", path)
        elif is_cartridge(path):
            cartridges.append(path)
        elif (path / "manifest.csv").exists() or (path / "panel.json").exists():
            datasets.append(path)
        else:
            subs = sorted(p for p in path.iterdir() if p.is_dir() and is_cartridge(p))
            if not subs:
                raise InputError("neither a cartridge, a folder of cartridges nor a crop "
                                 "dataset", path)
            cartridges += subs
    return cartridges, datasets


def input_panels(cartridges: Iterable[Path], datasets: Iterable[Path],
                 pixel_size: float | str | None = None) -> list[Panel]:
    """The panel of every cartridge and crop dataset (:func:`resolve_inputs` of the inputs;
    reads no pixels but one frame per cartridge and one crop per dataset; ``pixel_size``: as
    ``PredictOptions.pixel_size``, which only the channel names are read for here)."""
    return ([_cartridge_panel(open_cartridge(c)) for c in cartridges] +
            [read_crop_index(d, pixel_size=_stated(pixel_size)).panel for d in datasets])


def _cartridge_panel(cartridge: Cartridge) -> Panel:
    """A cartridge's panel, marked an RGB composite exactly when its first frame is an 8-bit
    colour file (as a crop folder's is marked by its first crop): a model that reads exports
    only must not get 16-bit frames whose panel.json says "composite", and a colour export
    whose panel.json does not say so is still one. A frame that cannot be read leaves the
    panel's word; the run reports the frame itself."""
    files = cartridge.frames[0].files
    if len(files) != 1 or cartridge.panel.num_channels != 3:
        return replace(cartridge.panel, composite=None)
    try:
        rgb = is_rgb_composite(read_image(files[0])[0])
    except InputError:
        return cartridge.panel
    return replace(cartridge.panel, composite="rgb" if rgb else None)


def _stated(pixel_size: float | str | None) -> float | None:
    """A placeholder pixel size where only a crop set's channels are read: an ``auto``
    estimate reads hundreds of crops, and is made once, by the run itself."""
    return None if pixel_size is None else (1.0 if isinstance(pixel_size, str) else pixel_size)


def predict_crop_dataset(root: str | Path, backend, out_dir: str | Path,
                         options: PredictOptions | None = None) -> CropRunSummary:
    """Classify every crop of a crop dataset; writes predictions.csv/parquet and summary.json."""
    options = options or PredictOptions()
    # A crop set is not a cartridge: the cartridge prevalence rule would call almost no CTC in
    # a near-balanced folder of crops. Its calls are the plain most probable class unless the
    # user states a prior (--prior), as ``ctcnet evaluate`` makes them.
    spec, prior = spec_at_prior(backend.spec, options.prior, BALANCED_PRIOR)
    t0 = time.perf_counter()
    index = read_crop_index(root, pixel_size=options.pixel_size).conform(spec.panel)
    crops = load_crops(index, spec.crop_size, spec.pixel_size_um)
    t1 = time.perf_counter()

    # The model sees compensated crops when asked or trained so; the guard reads the crops.
    model_crops, spillover = network_view(spec, crops, index.sample_ids, options.compensate)
    proba = backend.predict_proba(model_crops)
    del model_crops
    t2 = time.perf_counter()
    table = pd.DataFrame({"path": [str(p.relative_to(index.root)) if p.is_relative_to(index.root)
                                   else str(p) for p in index.paths],
                          "label": index.labels, "sample_id": index.sample_ids})
    # Each crop is a cell someone chose: its markers take part in the call
    # (guard.crop_set_calls), a leak read as a display export's when the crops are exports.
    table = guard_events(label_events(table, proba, spec), crops, proba, spec,
                         markers_decide=options.marker_calls,
                         max_leak=leak_allowance(index.exported))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / "predictions.parquet") as tmp:
        table.to_parquet(tmp, index=False)
    with atomic_path(out_dir / "predictions.csv") as tmp:
        table.to_csv(tmp, index=False, float_format="%.5g")
    known = table["label"].isin(spec.class_names)
    tally = count_events(table, spec.class_names, (), None)  # a crop set has no blood volume
    summary = CropRunSummary(
        dataset=str(root), crops=len(table), backend=backend.name,
        device=backend.device_name, model=str(backend.model_path),
        decision_log_weights=decision_weights(spec.decision), prior=prior,
        pixel_size_um=float(index.panel.pixel_size_um),
        pixel_size_from="panel.json" if options.pixel_size is None else
        ({"auto": "estimated from the nuclei", "fit": "each crop fitted to its cell"}
         .get(options.pixel_size, "given") if isinstance(options.pixel_size, str) else "given"),
        counts=tally.counted,
        review=tally.review_events,
        guard=guard_summary(table, spec),
        accuracy=float((table["class"] == table["label"])[known].mean()) if known.any()
        else None,
        spillover=spillover,
        timings_s={"read": t1 - t0, "classify": t2 - t1, "total": time.perf_counter() - t0})
    summary.write(out_dir)
    return summary


def predict_inputs(inputs: Iterable[str | Path], out: str | Path, backend,
                   options: PredictOptions | None = None, rank: int = 0,
                   world_size: int = 1) -> list[RunSummary | CropRunSummary]:
    """Run every cartridge and crop dataset of ``inputs`` (this rank's share) into ``out``.

    Every cartridge's panel is checked against the model before any work starts.
    """
    options = options or PredictOptions()
    spec_at_prior(backend.spec, options.prior, CARTRIDGE_PRIOR)  # a bad --prior: before any work
    cartridge_paths, datasets = resolve_inputs(inputs)
    # Every cartridge's metadata are checked before any work: a refusal stops the whole run.
    cartridges = [checked_cartridge(open_cartridge(p)) for p in cartridge_paths]
    ids = [c.sample_id for c in cartridges]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise InputError(f"several cartridges share the sample id(s) {duplicates}; their "
                         "outputs would collide")
    cartridges = [c.conform(backend.spec.panel) for c in cartridges]  # refuses missing channels

    for d in datasets:
        read_crop_index(d, pixel_size=_stated(options.pixel_size)).conform(backend.spec.panel)
    out = Path(out)
    check_writable(out)
    jobs = [("cartridge", c, c.sample_id, len(c)) for c in cartridges] + \
           [("crops", d, d.name, 1) for d in datasets]
    summaries = []
    for kind, item, name, _ in shard(jobs, rank, world_size, weight=lambda j: j[3]):
        if kind == "cartridge":
            summaries.append(predict_cartridge(item, backend, out / name, options))
        else:
            summaries.append(predict_crop_dataset(item, backend, out / name, options))
    return summaries


def check_writable(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise CtcnetError(f"cannot create output folder {out}: {err.strerror or err}") from None
    if not os.access(out, os.W_OK):
        raise CtcnetError(f"output folder {out} is not writable")
