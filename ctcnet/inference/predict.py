"""Slide-scale inference: detect, crop and classify every event of whole cartridges, or every
crop of a crop dataset. Here: the entry points for cartridges (:func:`predict_cartridge`) and
for any inputs (:func:`predict_inputs`); a run's options are :mod:`ctcnet.inference.options`,
a crop dataset's run :mod:`ctcnet.inference.crop_sets`.

Pipeline per cartridge (``predict_cartridge``):

* **Frames** (:mod:`ctcnet.inference.frames`): frame workers, threads or processes
  (:mod:`ctcnet.inference.frame_workers`), read each frame, detect its events, cut model-sized
  crops and make the marker guard's call-independent measurements, at most ``prefetch`` frames
  ahead of the classifier, BLAS single-threaded and the model's idle threads not spinning
  (:mod:`ctcnet.inference.resources`).
* The **main thread** pools crops across frames into batches and classifies them
  (:mod:`ctcnet.inference.batcher`; torch, on CUDA with pinned memory and fp16 autocast, or
  the ONNX runtime). A **finishing thread** (:mod:`ctcnet.inference.finishing`) then labels
  each frame's event table with array operations (:func:`ctcnet.inference.tables.label_events`);
  the marker guard (``ctcnet.inference.guard``) sends CTC and cluster calls that the measured
  markers contradict, and events unlike the training data, to review (``guard`` column,
  ``RunSummary.guard``). Events cut by the frame border are filed as debris (not intact;
  ``--keep-edge-calls`` keeps the model's call), the model's own call in ``model_class``.
* **Model**: a ``.pt`` checkpoint (torch) or an ``.onnx`` export (ONNX Runtime). Without one,
  the shipped model; on a CPU its ONNX export when that was made from the current checkpoint
  (same weights, faster on a CPU: docs/benchmarks.md); a stale export is logged and skipped.
* **Resume journal** (:mod:`ctcnet.inference.journal`): each finished frame is written
  atomically to ``parts/<frame_id>.parquet`` (plus its gallery crops); a restarted run skips
  frames whose part exists; a journal from another model is refused rather than mixed in.
* **Outputs** (atomic): ``events.parquet`` / ``events.csv`` (:mod:`ctcnet.inference.tables`,
  streamed from the journal), with the report (``PredictOptions.report``, a layer above this
  one) ``gallery/*.png`` and ``index.html``; ``summary.json`` last, the mark of a finished sample
  (:func:`~ctcnet.inference.summary.withdraw_summary`). A corrupt or missing frame is skipped and
  reported with its reason; a panel mismatch stops before any work, and so does metadata no scan or
  blood tube can have (:func:`ctcnet.inference.inputs.checked_cartridge`; where the user may know
  better, it is a ``problems`` entry and the run is ``partial``). A simulated cartridge
  (``ground_truth.csv``) also gets detection recall and true counts in its summary.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from ctcnet.core.paths import as_listed
from ctcnet.core.provenance import software_record
from ctcnet.errors import FinishedEarlierError, InputError, OutputFolderError
from ctcnet.inference.backend_registry import checked_backend
from ctcnet.inference.batcher import CrossFrameBatcher
from ctcnet.inference.crop_sets import predict_crop_dataset
from ctcnet.inference.ctc_repeats import RunHolds
from ctcnet.inference.distributed import shard
from ctcnet.inference.dropped_planes import with_dropped_plane_problems
from ctcnet.inference.finished_runs import kept_finished, stated_of
from ctcnet.inference.finishing import Finishing, FrameFinisher, no_events_table
from ctcnet.inference.frame_device import default_workers, frame_device_name, resolve_frame_device
from ctcnet.inference.frame_workers import (
    finished,
    frames_in_processes,
    prepared_frames,
    sweep_killed_runs,
)
from ctcnet.inference.frames import import_frame_modules, measure_scan_leaks, with_frame_records
from ctcnet.inference.ground_truth import compare_with_ground_truth
from ctcnet.inference.inputs import check_writable, checked_cartridge, checked_inputs
from ctcnet.inference.journal import (
    PARTS_DIR,
    drop_unreadable_parts,
    journal_gallery,
    lost_parts,
    mark_report,
    open_journal,
    run_fingerprint,
)
from ctcnet.inference.model_records import made_by, model_sha256
from ctcnet.inference.options import (
    PredictOptions,
    as_options,
    check_cartridge_options,
    edge_cut_class,
    say_if_a_model_of_exports_reads_scans,
    say_if_no_cartridge_rule,
    say_what_other_reported_classes_lack,
    spec_at_prior,
)
from ctcnet.inference.output_names import (
    refuse_alike_output,
    refuse_another_samples_folder,
    set_aside_or_raise,
    set_aside_record,
    without_alike_outputs,
)
from ctcnet.inference.progress import progress_bar, skipped_note
from ctcnet.inference.report_overlap import PendingReport, ReportJob, report_worker
from ctcnet.inference.rerun_outputs import EarlierRun, tables_from_journal
from ctcnet.inference.resources import keep_frame_buffers, release_free_memory, single_threaded_blas
from ctcnet.inference.run_summary import build_summary
from ctcnet.inference.scan_identity_warnings import (
    warn_of_decisions_on_another_cartridge,
    warn_of_the_same_scans_under_other_names,
)
from ctcnet.inference.spillover import wants_compensation
from ctcnet.inference.summary import SUMMARY_FILE, CropRunSummary, RunSummary, drop_stale_summary
from ctcnet.io.atomic import exclusive_folder, remove_stale_temporaries
from ctcnet.io.digests import file_sha256
from ctcnet.io.frame_checks import skipped_entry
from ctcnet.io.scan import Cartridge, open_cartridge
from ctcnet.nn.calls import CARTRIDGE_PRIOR
from ctcnet.nn.spec import ModelSpec

log = logging.getLogger(__name__)

# How long predict waits for the review server's write to a sample folder (milliseconds as a
# rule; a slow disk's page rewrite can take seconds).
REVIEW_WRITE_WAIT_S = 30.0
# Skipped frames named one by one on the console (all of them are in summary.json).
SKIPS_LOGGED = 10


def predict_cartridge(cartridge: Cartridge | str | Path, backend, out_dir: str | Path,
                      options: PredictOptions | None = None) -> RunSummary:
    """Detect and classify every event of one cartridge, and draw its report when
    ``options.report`` is given (``from ctcnet.report import run_report``); its summary.

    ``out_dir`` is this cartridge's own output folder. The summary holds counts, per-7.5 mL
    figures, skipped frames with reasons and ``timings_s`` (read, digest, detect, crop: summed
    over frames in the worker threads; guard: its measurements there and its flags on the finishing
    thread; classify: main thread; write: the finishing thread's frame parts, then the tables;
    report; ``frame_wait`` and ``finish_wait``: the main thread waiting for the frame threads
    and for the finishing thread; total: wall clock). ``summary.json`` is written last, once
    the report is drawn.

    Parameters
    ----------
    cartridge : Cartridge, str or Path
        The cartridge, or its folder (opened with :func:`open_cartridge`). Its channels are
        matched to the model's by name; one the model needs and the scan lacks is refused.
    backend : Backend
        The model to run (:func:`ctcnet.inference.backends.load_backend`).
    out_dir : str or Path
        This cartridge's output folder. A journal left there by an interrupted run of the same
        model and settings is resumed unless ``options.overwrite``.
    options : PredictOptions (or a dict of its fields), optional
        Threads, batch size, detection settings, prior, report; the defaults otherwise.

    Returns
    -------
    RunSummary
        What ``summary.json`` holds.
    """
    with single_threaded_blas():
        return start_cartridge(cartridge, backend, out_dir, options).draw()


def start_cartridge(cartridge: Cartridge | str | Path, backend, out_dir: str | Path,
                    options: PredictOptions | None = None) -> PendingReport:
    """:func:`predict_cartridge` up to its report: the events tables are written (and
    ``summary.json`` when there is no report to draw; otherwise drawing it writes the summary
    last); the report is returned undrawn (:class:`PendingReport`, holding the folder's lock
    until it is drawn), for the caller to draw now or beside the next cartridge."""
    options = as_options(options)
    backend = checked_backend(backend)  # (a model's name or file, where a loaded one is meant)
    if not isinstance(cartridge, Cartridge):
        cartridge = open_cartridge(cartridge)
    cartridge = checked_cartridge(cartridge)
    # A cartridge is called at cartridge prevalence unless another prior is asked for.
    spec, prior = spec_at_prior(backend.spec, options.prior, CARTRIDGE_PRIOR)
    check_cartridge_options(spec, options)  # before the folder is touched
    cartridge = cartridge.conform(spec.panel)  # the model's channels, by name
    out_dir = as_listed(out_dir)  # (its accents decomposed by a copy through macOS: it)
    refuse_alike_output(out_dir)
    refuse_another_samples_folder(out_dir, cartridge.sample_id, options.overwrite)
    lock = contextlib.ExitStack()
    # The review server holds the folder for moments while it saves a decision: waited for;
    # a sample's folder this user may not write is its refusal (a batch runs the others).
    try:
        lock.enter_context(exclusive_folder(out_dir, "predict", wait_s=REVIEW_WRITE_WAIT_S,
                                            wait_for=("review",)))
    except (PermissionError, FileExistsError, NotADirectoryError) as err:
        raise _unwritable(err, out_dir) from None
    # A run killed mid-write left its temporary files (whole frames' tables, over a night).
    stale = remove_stale_temporaries(out_dir)
    if stale:
        log.info("%s: removed %d temporary file(s) an interrupted run left", out_dir, stale)
    try:
        return _predict_cartridge(cartridge, backend, spec, prior, out_dir, options, lock)
    except BaseException as err:
        if isinstance(err, OSError):  # a write that failed (a refusal changed nothing):
            with contextlib.suppress(OSError):  # (a read-only disk: its own error goes first)
                # No earlier "ok" stays beside tables this run changed (one still there stands).
                drop_stale_summary(out_dir)
        lock.close()
        if isinstance(err, OSError) and err.errno in _NOT_WRITABLE + _BLOCKED and \
                err.filename and \
                Path(os.path.abspath(err.filename)).is_relative_to(os.path.abspath(out_dir)):
            # Its own folder made read-only (a signed-off sample frozen by chmod), or a file
            # where its folders go: this sample's refusal, not the batch's end.
            raise _unwritable(err, out_dir) from None
        raise


# A sample folder's write refused for its permissions or a read-only mount.
_NOT_WRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS)


# A file standing where a sample's folder (or a folder in it) goes, or a folder where one of
# its files goes.
_BLOCKED = (errno.EEXIST, errno.ENOTDIR, errno.EISDIR)


def _unwritable(err: OSError, out_dir: Path) -> OutputFolderError:
    # The path written: a rename's target (its second name), not the hidden temporary file.
    where = getattr(err, "filename2", None) or err.filename or out_dir
    if err.errno in _BLOCKED:
        return OutputFolderError(f"cannot write its output folder: a file stands where a folder "
                                 f"goes, or a folder where a file goes ({err.strerror}): move "
                                 "it away or write to another --out", where)
    return OutputFolderError(f"cannot write its output folder ({err.strerror}): make it "
                             "writable or write to another --out", where)


def _predict_cartridge(cartridge: Cartridge, backend, spec: ModelSpec, prior: str,
                       out_dir: Path, options: PredictOptions,
                       lock: contextlib.ExitStack) -> PendingReport:
    t_start = time.perf_counter()
    warn_of_decisions_on_another_cartridge(out_dir, cartridge)
    compensated = wants_compensation(spec, options.compensate)
    device = resolve_frame_device(options.frame_device, backend)
    device_name = frame_device_name(device)
    fingerprint = run_fingerprint(backend, cartridge, spec, detect=options.detect,
                                  edge_cut_as=options.edge_cut_as, compensated=compensated,
                                  frame_device=device_name)
    # Read before the journal opens, which takes a replaced run's summary out of the folder.
    earlier = EarlierRun.read(out_dir)
    model_file = model_sha256(backend)
    done = open_journal(out_dir, fingerprint, options.overwrite, cartridge.frames,
                        model_file, cartridge.identity or None, cartridge.read,
                        stated_of(cartridge))
    parts = out_dir / PARTS_DIR
    done -= drop_unreadable_parts(parts, cartridge.frames)
    todo = [f for f in cartridge.frames if f.frame_id not in done]
    seconds = dict.fromkeys(("read", "digest", "detect", "crop", "guard", "classify", "write",
                             "frame_wait", "hand_off"), 0.0)
    skipped: list[dict] = []
    batcher = CrossFrameBatcher(backend.predict_proba, options.batch_size or backend.batch_size)
    import_frame_modules(cartridge, spec, device)  # before any frame thread starts
    keep_frame_buffers()  # a cartridge after the first: undo the report's memory setting
    workers = default_workers(backend) if options.workers is None else options.workers
    leaks, spillover = None, None
    if compensated:
        leaks, spillover = measure_scan_leaks(cartridge, spec, options.detect, device, workers)
        seconds["spillover"] = spillover["seconds"]
    job = Finishing(spec, edge_cut_class(spec, options), parts, options.gallery_per_frame,
                    made_by(backend.name, software_record(), model_file),
                    cartridge.panel.pixel_size_um)
    # Frame processes finish the frames they prepared too, as many at once as there are.
    in_processes = frames_in_processes(options.frame_pool, workers, device, len(todo))
    n_events = 0
    # The finishing threads' own stage times (the guard's flags, writing), kept apart from the
    # frame stages this thread adds up and added to them when every frame is finished.
    finishing = {"guard": 0.0, "write": 0.0}
    counting = threading.Lock()

    def finish(work, proba):
        nonlocal n_events
        if proba is None:
            proba = np.zeros((0, spec.num_classes), np.float32)
        events, flagging, writing = finished(job, work, proba)
        work.crops = work.model_crops = work.measured = work.guard_start = work.shared = None
        with counting:
            finishing["guard"] += flagging
            finishing["write"] += writing
            n_events += events
            progress.update(task, advance=1, events=n_events)
        if options.on_frame_done:
            options.on_frame_done(work.frame.frame_id)

    with (progress_bar(len(todo), options.quiet, events=True) as progress,
          FrameFinisher(finish, threaded=workers > 0, ahead=max(2, workers),
                        threads=workers if in_processes else 1) as finisher):
        # Every frame of the cartridge, those a resumed run takes from its journal done.
        task = progress.add_task(cartridge.sample_id, total=len(cartridge.frames),
                                 completed=len(cartridge.frames) - len(todo), events=0,
                                 new_note=" new" if done else "", skipped_note=skipped_note(
                                     0, cartridge.frames_scanned - len(cartridge.frames)))
        frames_ready = prepared_frames(todo, cartridge, spec, options.detect, device, leaks,
                                       workers, max(options.prefetch, workers),
                                       "processes" if in_processes else "threads")
        for work in _timed_waits(frames_ready, seconds, "frame_wait"):
            for stage, s in work.seconds.items():
                seconds[stage] += s
            if work.error is not None:
                skipped.append(skipped_entry(work.frame, work.error, skipped))
                if len(skipped) <= SKIPS_LOGGED:
                    log.warning("%s: frame %s skipped: %s", cartridge.sample_id,
                                work.frame.frame_id, work.error)
                progress.update(task, advance=1, skipped_note=skipped_note(
                    len(skipped), cartridge.frames_scanned - len(cartridge.frames)))
                continue
            batcher.add(work)
            finisher.submit(batcher.ready())
        finisher.submit(batcher.ready(final=True))
        finisher.drain()
    seconds["finish_wait"] = finisher.waited
    seconds["guard"] += finishing["guard"]
    seconds["write"] += finishing["write"]
    seconds["classify"] = batcher.seconds
    if len(skipped) > SKIPS_LOGGED:
        log.warning("%s: %d more frames skipped (skipped_frames in summary.json)",
                    cartridge.sample_id, len(skipped) - SKIPS_LOGGED)
    release_free_memory()  # the frames' buffers, before the tables and the report

    lost = lost_parts(parts, cartridge.frames, skipped)
    if lost:
        raise InputError(f"the journal of {len(lost)} frame(s) ({', '.join(lost[:3])}"
                         f"{', ...' if len(lost) > 3 else ''}) vanished while the run went on "
                         "(the output folder deleted or moved?); nothing was counted without "
                         "them: rerun to redo them", out_dir)
    # The frames' digests, and their notes (saturation) as problems: the sample is partial.
    cartridge, digests, checked, signs, made, journal_s = with_frame_records(
        cartridge, parts, skipped, spec, job.made_by, read_now={f.frame_id for f in todo})
    hold = RunHolds(checked, spec, cartridge.panel.pixel_size_um)
    t0 = time.perf_counter()
    events, events_sha256, counted_before = tables_from_journal(
        out_dir, parts, cartridge, earlier, options.overwrite,
        lambda: no_events_table(cartridge, spec, job.edge_class), hold)
    gallery = journal_gallery(parts, cartridge.frames)
    release_free_memory()  # what reading the journal and writing the tables left in the heap
    seconds["write"] += time.perf_counter() - t0
    seconds["total"] = time.perf_counter() - t_start  # (this run's: see journal_timings_s)
    cartridge = with_dropped_plane_problems(cartridge, spec, options.detect)
    summary = build_summary(cartridge, backend, events, skipped, len(cartridge.frames) - len(todo),
                            seconds, options, spec, prior, new_events=n_events,
                            counted_at=counted_before)
    summary.spillover, summary.frame_digests, summary.journal_timings_s = \
        spillover, digests, journal_s
    summary.frame_device, summary.frames_made_by = device_name, made
    summary.frame_pool = "processes" if in_processes else "threads" if workers else "inline"
    summary.leak_check, summary.metadata_check = {**checked, **hold.record()}, signs
    summary.ground_truth = compare_with_ground_truth(cartridge, events, spec, skipped)
    summary.run_fingerprint = fingerprint  # the journal's, as open_journal recorded it
    summary.events_sha256, summary.output_folder = events_sha256, out_dir.name
    summary.events_csv_sha256 = file_sha256(out_dir / "events.csv")
    job = None
    if not options.report:
        summary.write(out_dir)  # last: the tables are written (with a report: after it)
    else:
        if mark_report(parts, "pending") == "pending":
            log.info("%s: the report of an earlier run was not finished; drawn now from the "
                     "journal", cartridge.sample_id)
        job = ReportJob(options.report, out_dir, parts, events, gallery, cartridge.panel, spec,
                        options.gallery_limit, summary, seconds, t_start,
                        backend.explainer if options.saliency else None)
    if options.refresh_review is not None:
        # Once the folder is released (the review refuses a folder predict holds), whenever
        # that is: after the report, drawn here or beside the next cartridge, or dropped.
        released = contextlib.ExitStack()
        released.callback(_refresh_finished, options.refresh_review, out_dir)
        released.push(lock)
        lock = released
    return PendingReport(cartridge.sample_id, out_dir, summary, job, lock)


def _refresh_finished(refresh, out_dir: Path) -> None:
    """Bring the review's counts back into a summary.json this run finished; a run that
    stopped before writing it (its error already said) has none to bring them into."""
    if (out_dir / SUMMARY_FILE).exists():
        refresh(out_dir)


def _timed_waits(items: Iterable, seconds: dict, key: str) -> Iterable:
    """Yield ``items``, adding the time spent waiting for each to ``seconds[key]``: how long
    the model's thread waits for the frame threads (near zero, the frames keep up and the
    model's side binds the run; large, the frames bind it)."""
    it = iter(items)
    while True:
        t0 = time.perf_counter()
        item = next(it, None)
        seconds[key] += time.perf_counter() - t0
        if item is None:
            return
        yield item


def predict_inputs(inputs: Iterable[str | Path], out: str | Path, backend,
                   options: PredictOptions | None = None, rank: int = 0,
                   world_size: int = 1, split_by_name: bool = False,
                   set_aside: dict | None = None, failed_reports: dict | None = None,
                   share_of_several: bool = False, on_start: Callable[[], None] | None = None
                   ) -> list[RunSummary | CropRunSummary]:
    """Run every cartridge and crop dataset of ``inputs`` (this rank's share) into ``out``.

    Every cartridge's panel is checked against the model before any work starts. With several
    cartridges and ``options.report_overlap``, each one's report is drawn on a background
    worker (a process on a CPU) while the next one runs
    (:mod:`ctcnet.inference.report_overlap`; at most one pending; a failed one raised as
    ``ReportError`` naming its sample, at the next report or the end, or recorded in
    ``failed_reports``).

    Parameters
    ----------
    inputs : iterable of str or Path
        Cartridge folders, folders of cartridges, list files or crop datasets.
    out : str or Path
        The results folder; each input gets a folder named for its sample id (a crop dataset:
        its folder name).
    backend : Backend
        The model to run (:func:`ctcnet.inference.backends.load_backend`).
    options : PredictOptions, optional
        As for :func:`predict_cartridge`.
    rank, world_size : int
        This process's share of the inputs in a distributed run
        (:mod:`ctcnet.inference.distributed`); 0 of 1 runs them all.
    split_by_name : bool
        Split by a hash of each input's name (the jobs of an array, which may see different
        inputs) instead of balancing by frame count (torchrun's ranks, which start together).
    set_aside : dict, optional
        Given, a run of several inputs leaves out a cartridge or crop dataset refused on its
        own (its metadata, its channels, its crops unreadable, another run's journal in its
        folder) and records it here (name: reason); the others run. Not given, the refusal
        stops the run.
    failed_reports : dict, optional
        Given, a report that fails in the background is recorded here (sample id: the error)
        and the others go on; not given, it stops the run at the next report.
    share_of_several : bool
        These inputs are one process's share of a run of several (``--processes``): an input
        refused is set aside even when it is the share's only one.
    on_start : callable, optional
        Called once the inputs, the model's prior and the output folder have passed their
        checks, before any input runs (the command marks ``run.json`` "running" then: a run
        refused before any work leaves no index).

    Returns
    -------
    list of RunSummary or CropRunSummary
        One per input this rank ran, in the order run: cartridges first, then crop folders.
    """
    options = as_options(options)
    spec_at_prior(backend.spec, options.prior, CARTRIDGE_PRIOR)  # a bad --prior: before any work
    resolve_frame_device(options.frame_device, backend)  # one this install lacks: the run's
    cartridges, datasets = checked_inputs(inputs, backend.spec.panel, options.pixel_size,
                                          set_aside, share_of_several)
    out = Path(out)
    check_writable(out)
    # Before run.json is marked "running": a lone input refused so leaves the last index,
    # marked "failed" (commands.predict_index.index_as_the_run_ended).
    record = set_aside_record(set_aside, len(cartridges) + len(datasets), share_of_several)
    cartridges = without_alike_outputs(out, cartridges, record)
    datasets = without_alike_outputs(out, datasets, record, name=lambda d: Path(d).name)
    warn_of_the_same_scans_under_other_names(out, cartridges)
    if on_start is not None:
        on_start()
    sweep_killed_runs()
    jobs = [("cartridge", c, c.sample_id, len(c)) for c in cartridges] + \
           [("crops", d, d.name, 1) for d in datasets]
    mine = shard(jobs, rank, world_size, weight=lambda j: j[3],
                 key=(lambda j: j[2]) if split_by_name else None)
    # Each cartridge's report drawn while the next one runs (at most one pending).
    n_cartridges = sum(kind == "cartridge" for kind, *_ in mine)
    if n_cartridges:
        say_if_no_cartridge_rule(backend.spec, options.prior)
        say_if_a_model_of_exports_reads_scans(backend.spec)
    if mine:
        say_what_other_reported_classes_lack(backend.spec)
    overlap = options.report_overlap and options.report is not None and n_cartridges > 1
    # BLAS on one thread for the cartridges and their reports (as predict_cartridge runs them)
    blas = single_threaded_blas() if n_cartridges else contextlib.nullcontext()
    summaries = []
    with blas, report_worker(backend, options.saliency, overlap, failed_reports) as reports:
        for kind, item, name, _ in mine:
            if kind == "cartridge":
                try:
                    pending = start_cartridge(item, backend, out / name, options)
                except FinishedEarlierError as err:  # its outputs kept, counted as this run's
                    summaries.append(kept_finished(err, name))
                    continue
                except InputError as err:
                    # The run has begun (run.json marked running): a refused input is set
                    # aside even alone, so the index says why beside the output it kept,
                    # not "failed" with that output's figures read as tonight's.
                    set_aside_or_raise(err, name, set_aside, item.root,
                                       say=len(jobs) + len(set_aside or {}) > 1)
                    continue
                summaries.append(pending.summary)  # final once its report is drawn
                reports.submit(pending)
            else:
                try:
                    summaries.append(predict_crop_dataset(item, backend, out / name, options))
                    log.info("%s: finished, %s crops -> %s", name, summaries[-1].crops,
                             out / name)  # (as each cartridge's: a killed night's log)
                except InputError as err:  # its crops unreadable, its folder refused: as above
                    set_aside_or_raise(err, name, set_aside, item,
                                       say=len(jobs) + len(set_aside or {}) > 1)
    return summaries
