"""Slide-scale inference: detect, crop and classify every event of whole cartridges, or every
crop of a crop dataset. Here: the run's options (:class:`PredictOptions`) and its entry points
(:func:`predict_cartridge`, :func:`predict_crop_dataset`, :func:`predict_inputs`).

Pipeline per cartridge (``predict_cartridge``):

* **Frames** (:mod:`ctcnet.inference.frames`): frame threads read each frame, detect its
  events, cut model-sized crops and make the marker guard's call-independent measurements, at
  most ``prefetch`` frames ahead of the classifier, BLAS single-threaded and the model's idle
  threads not spinning (:mod:`ctcnet.inference.resources`).
* The **main thread** pools crops across frames into batches and classifies them
  (:mod:`ctcnet.inference.batcher`; torch, on CUDA with pinned memory and fp16 autocast, or
  the ONNX runtime), then labels each frame's event table with array operations
  (:func:`ctcnet.inference.tables.label_events`); the marker guard
  (``ctcnet.inference.guard``) sends CTC and cluster calls that the measured markers
  contradict, and events unlike the training data, to review (``guard`` column,
  ``RunSummary.guard``). Events cut by the frame border are filed as debris (not intact;
  ``--keep-edge-calls`` keeps the model's call), the model's own call stays in
  ``model_class``.
* **Model**: a ``.pt`` checkpoint (torch) or an ``.onnx`` export (ONNX Runtime). Without one,
  the shipped model; on a CPU its ONNX export when that was made from the current checkpoint
  (same weights, faster on a CPU: docs/benchmarks.md); a stale export is logged and skipped.
* **Resume journal** (:mod:`ctcnet.inference.journal`): each finished frame is written
  atomically to ``parts/<frame_id>.parquet`` (plus its gallery crops); a restarted run skips
  frames whose part exists; a journal from another model is refused rather than mixed in.
* **Outputs** (atomic): ``events.parquet`` / ``events.csv`` (:mod:`ctcnet.inference.tables`,
  streamed from the journal), ``summary.json``, and, when the caller hands in the report
  (``PredictOptions.report``: ``ctcnet.report.review``, a layer above this one),
  ``gallery/*.png`` and ``index.html``. A corrupt or missing frame is skipped and reported
  with its reason; a panel mismatch stops before any work, and so does metadata no scan or
  blood tube can have (:func:`ctcnet.inference.inputs.checked_cartridge`; where the user may
  know better, it is a ``problems`` entry and the run is ``partial``). A simulated cartridge
  (``ground_truth.csv``) also gets detection recall and true counts in its summary.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

from ctcnet import __version__
from ctcnet.detect.crop_dataset import load_crops, read_crop_index
from ctcnet.detect.cropping import window_size
from ctcnet.detect.detection import DetectConfig
from ctcnet.inference.batcher import CrossFrameBatcher
from ctcnet.inference.counts import count_events
from ctcnet.inference.distributed import shard
from ctcnet.inference.frames import (
    default_workers,
    import_frame_modules,
    measure_scan_leaks,
    ordered_prefetch,
    prepare_frame,
    resolve_frame_device,
)
from ctcnet.inference.gallery import gallery_rows
from ctcnet.inference.ground_truth import compare_with_ground_truth
from ctcnet.inference.guard import guard_events, guard_summary, leak_allowance
from ctcnet.inference.inputs import check_writable, checked_cartridge, checked_inputs
from ctcnet.inference.journal import (
    PARTS_DIR,
    drop_unreadable_parts,
    journal_gallery,
    journal_tables,
    open_journal,
    run_fingerprint,
    warn_of_decisions_on_another_cartridge,
    write_part,
)
from ctcnet.inference.resources import (
    peak_memory_mb,
    release_free_memory,
    single_threaded_blas,
)
from ctcnet.inference.spillover import network_view, wants_compensation
from ctcnet.inference.summary import (
    CropRunSummary,
    FrameCounts,
    ModelUsed,
    RunSummary,
    sample_status,
    volume_read_ml,
)
from ctcnet.inference.tables import empty_frame_table, label_events, write_tables
from ctcnet.io.atomic import atomic_path, exclusive_folder
from ctcnet.io.panel import Panel
from ctcnet.io.scan import Cartridge, open_cartridge
from ctcnet.nn.calls import BALANCED_PRIOR, CARTRIDGE_PRIOR, decision_weights, prior_rule
from ctcnet.nn.spec import ModelSpec


class RunReport(Protocol):
    """What draws a run's report (``ctcnet.report.review`` is one): the gallery pages from the
    journaled crops, then ``index.html`` from the summary once its timings are final."""

    def write_gallery(self, out_dir: Path, events: pd.DataFrame, gallery: dict, panel: Panel,
                      spec: ModelSpec, limit: int, explain=None) -> dict:
        """Write the gallery pages of ``events`` from the journaled crops; returns what the
        summary records of them."""

    def write_html(self, out_dir: Path, summary: RunSummary) -> None:
        """Write ``index.html`` from the finished summary."""


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




def spec_at_prior(spec: ModelSpec, prior: str | None, default: str) -> tuple[ModelSpec, str]:
    """The model's spec with the decision rule of ``prior`` (``PredictOptions.prior``; None:
    ``default``, the input's own), and the prior's name for summary.json."""
    rule, name = prior_rule(prior, spec.class_names, spec.decision, default)
    return (spec if rule == (spec.decision or {}) else spec.replace(decision=rule)), name


def edge_cut_class(spec: ModelSpec, options: PredictOptions) -> str | None:
    """The class edge-cut events are filed under, if the option is on and the class exists."""
    name = options.edge_cut_as
    return name if name and name in spec.class_names else None


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
    frames in the worker threads; guard: its measurements there and its flags on the main
    thread; classify, write, report: main thread; total: wall clock). ``summary.json`` is
    written before the report is drawn, and again with the report's timing once it is.

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
    options : PredictOptions, optional
        Threads, batch size, detection settings, prior, report; the defaults otherwise.

    Returns
    -------
    RunSummary
        What ``summary.json`` holds.
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


def _predict_cartridge(cartridge: Cartridge, backend, spec: ModelSpec, prior: str,
                       out_dir: Path, options: PredictOptions) -> dict:
    t_start = time.perf_counter()
    warn_of_decisions_on_another_cartridge(out_dir, cartridge)
    compensated = wants_compensation(spec, options.compensate)
    fingerprint = run_fingerprint(backend, cartridge, spec, detect=options.detect,
                                  edge_cut_as=options.edge_cut_as, compensated=compensated)
    done = open_journal(out_dir, fingerprint, options.overwrite, cartridge.frames)
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
    if compensated:
        leaks, spillover = measure_scan_leaks(cartridge, spec, options.detect, device)
        seconds["spillover"] = spillover["seconds"]
    work_fn = lambda f: prepare_frame(f, cartridge, spec, options.detect, device,  # noqa: E731
                                      leaks)
    edge_class = edge_cut_class(spec, options)
    # The events whose crops the review gallery may show: a capped share per category.
    choose_gallery = lambda events: gallery_rows(events, spec,  # noqa: E731
                                                 options.gallery_per_frame)
    n_events = 0

    def finish(ready):
        nonlocal n_events
        for work, proba in ready:
            t0 = time.perf_counter()
            if proba is None:
                proba = np.zeros((0, spec.num_classes), np.float32)
            events = label_events(work.events, proba, spec, edge_class)
            t1 = time.perf_counter()
            events = guard_events(events, work.crops, proba, spec, work.measured)
            # The guard's flags are guard work (its measurements ran in the frame threads).
            flagging = time.perf_counter() - t1
            seconds["guard"] += flagging
            write_part(parts, work.frame.frame_id, events, work.crops, choose_gallery)
            work.crops = work.model_crops = work.measured = None
            seconds["write"] += time.perf_counter() - t0 - flagging
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
        # The counts first: summary.json is on disk before the gallery and its saliency maps
        # are drawn (rewritten below with the report's timing and gallery).
        summary.write(out_dir)
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


def build_summary(cartridge: Cartridge, backend, events: pd.DataFrame, skipped: list[dict],
                  resumed: int, seconds: dict, options: PredictOptions,
                  spec: ModelSpec | None = None, prior: str = CARTRIDGE_PRIOR) -> RunSummary:
    """The summary of a cartridge's run: its counts (one tally), status, the blood volume
    read, the settings and the stage timings so far (the report's are added after)."""
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
        model=ModelUsed(path=str(backend.model_path), arch=spec.arch, version=spec.version,
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


def predict_crop_dataset(root: str | Path, backend, out_dir: str | Path,
                         options: PredictOptions | None = None) -> CropRunSummary:
    """Classify every crop of a crop dataset; writes predictions.csv/parquet and summary.json.

    Parameters
    ----------
    root : str or Path
        The crop dataset folder (class folders or manifest.csv, plus panel.json).
    backend : Backend
        The model to run (:func:`ctcnet.inference.backends.load_backend`).
    out_dir : str or Path
        The output folder.
    options : PredictOptions, optional
        As for :func:`predict_cartridge`; the prior defaults to balanced here, since a crop set
        is not at cartridge prevalence.

    Returns
    -------
    CropRunSummary
        What ``summary.json`` holds.
    """
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

    Returns
    -------
    list of RunSummary or CropRunSummary
        One per input this rank ran, in the order run.
    """
    options = options or PredictOptions()
    spec_at_prior(backend.spec, options.prior, CARTRIDGE_PRIOR)  # a bad --prior: before any work
    cartridges, datasets = checked_inputs(inputs, backend.spec.panel, options.pixel_size)
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
