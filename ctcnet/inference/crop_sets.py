"""Predict on a crop dataset: every crop of a folder of crops (class folders or a manifest,
panel.json) classified, its markers taking part in the call, written as predictions.parquet /
predictions.csv and summary.json (:func:`predict_crop_dataset`), and with the report a page
that shows every call with its crop (``ctcnet.report.crop_set_page``).

A folder is read a chunk of crops at a time (:func:`read_and_classify`, ``ctcnet evaluate``'s
reading too): its crops wait at model scale in an unnamed file in the output folder, so memory
does not grow with the folder. :func:`first_pass`, :func:`classify_chunks` and
:func:`crop_set_calls` are the reading's, the network's and the markers' part, which crops in
memory share (:func:`ctcnet.inference.crop_calls.call_crops`)."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ctcnet.core.log_capture import kept_warnings
from ctcnet.core.paths import absolute, as_listed
from ctcnet.core.printable import spreadsheet_table
from ctcnet.core.provenance import software_record
from ctcnet.detect.crop_dataset import (
    CHUNK_CROPS,
    UNLABELLED,
    crop_chunks,
    pixel_size_source,
    read_crop_index,
)
from ctcnet.detect.crop_labels import (
    as_class_names,
    class_meant,
    sample_class_layout,
    unknown_labels_error,
)
from ctcnet.errors import InputError
from ctcnet.inference.counts import count_events
from ctcnet.inference.guard import (
    RULES,
    TABLE_MEASURES,
    GuardRules,
    crop_set_measurements,
    guard_events,
    guard_summary,
)
from ctcnet.inference.model_records import model_path, model_sha256
from ctcnet.inference.options import PredictOptions, as_options, spec_for_crop_set, spec_read_as
from ctcnet.inference.progress import StepBars, progress_bar
from ctcnet.inference.review_list import review_list_summary
from ctcnet.inference.sample_folders import refuse_unsafe_folders
from ctcnet.inference.spillover import (
    SampleLeaks,
    compensate_each,
    leak_check,
    wants_compensation,
)
from ctcnet.inference.summary import (
    SUMMARY_FILE,
    CropRunSummary,
    keep_previous_summary,
)
from ctcnet.inference.tables import label_events, with_output_format
from ctcnet.io.atomic import atomic_path, exclusive_folder
from ctcnet.io.data_panel_leaks import said_unread_leaks
from ctcnet.io.frame_checks import at_camera_tops
from ctcnet.io.spilled import SpilledArray
from ctcnet.nn.calls import FAILED_CLASS, decision_weights
from ctcnet.nn.crop_input import display_levels
from ctcnet.nn.spec import ModelSpec

# The most crops of a set whose CK leaks are checked against the guard's allowance when none
# are taken off (the leak is the instrument's: a few hundred CK-bright crops show it).
LEAK_CHECK_CROPS = 256

log = logging.getLogger(__name__)


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
    options = as_options(options)
    if options.report and not callable(getattr(options.report, "write_crop_set_page", None)):
        # (a report made for cartridges alone failed once every crop had been read)
        raise InputError(f"PredictOptions.report {options.report!r} draws no crop folder's "
                         "page (write_crop_set_page): give ctcnet.report.run_report, or None")
    # One writer per output folder, as for a cartridge's: taken before any work.
    out_dir = as_listed(out_dir)  # (its accents decomposed by a copy through macOS: it)
    with exclusive_folder(out_dir, "predict"):
        _refuse_another_crop_folder(root, Path(out_dir))
        refuse_unsafe_folders(out_dir)  # (before any work)
        return _classified(root, backend, Path(out_dir), options)


def _refuse_another_crop_folder(root: str | Path, out_dir: Path) -> None:
    """Refuse (InputError) an output folder holding the results of another crop folder that
    is still there (siteA/crops and siteB/crops both write <out>/crops: the second replaced
    the first's calls without a word). One moved since is taken as these crops moved."""
    try:
        earlier = json.loads((out_dir / SUMMARY_FILE).read_text(encoding="utf-8"))["dataset"]
    except (OSError, ValueError, TypeError, KeyError):
        return
    # (the same folder through a link is these crops)
    if isinstance(earlier, str) and Path(earlier).is_dir() and \
            not os.path.samefile(earlier, root):
        raise InputError(f"{out_dir} holds the results of another crop folder ({earlier}) "
                         f"of the name this one has ({absolute(root)}): give another --out, "
                         "or move those results aside")


def _classified(root: str | Path, backend, out_dir: Path, options: PredictOptions
                ) -> CropRunSummary:
    # A crop set is not a cartridge: the cartridge prevalence rule would call almost no CTC in
    # a near-balanced folder of crops. Its calls are the plain most probable class unless the
    # user states a prior (--prior), as ``ctcnet evaluate`` makes them.
    spec, prior = spec_for_crop_set(backend.spec, options.prior)
    # What the checks of the crops warn of is kept in the summary and on the page: said on
    # the console alone, a folder read at the wrong scale looked right to a later reader.
    with kept_warnings() as said, progress_bar(None, options.quiet) as progress:
        bars = StepBars(progress, Path(root).name)
        index = read_crop_index(root, pixel_size=options.pixel_size, progress=bars)
        said_unread_leaks(index.panel, Path(root) / "panel.json")  # (the model's are read)
        index = index.conform(spec.panel)
        # Labels naming a class but for case and separators (CTC for ctc) are that class,
        # as evaluate and train read them: the accuracy left them out.
        index = replace(index, labels=as_class_names(list(index.labels), spec.class_names,
                                                     Path(root)))
        other = sorted(set(index.labels) - set(spec.class_names) - {UNLABELLED})
        if sample_class_layout(other, spec.class_names, Path(root)):  # P017/ctc/...: refused,
            # as evaluate and train refuse it (the samples read as labels, the classes as
            # samples: the guard's per-sample comparisons made within a class)
            raise unknown_labels_error(other, spec.class_names, Path(root))
        spec = spec_read_as(spec, index.panel, wider_only=True)  # where pixels saturate
        if spec.reads_exports and not index.exported:  # chosen by hand (auto never does)
            log.warning("%s: the model reads 8-bit composite exports only (it was trained on "
                        "them), and these crops are raw channels: its calls here are not what "
                        "its card measured; read them with a model of scans (ctcnet models)",
                        root)
        bars.total = len(index)
        rules = RULES.for_crops(index.exported)
        shape = (len(index), spec.panel.num_channels, spec.crop_size, spec.crop_size)
        # The crops at model scale wait in a file, not in memory: a run holds a chunk at a time.
        with SpilledArray(shape, np.float32, out_dir) as crops:
            reading = read_and_classify(index, spec, backend.predict_proba, crops,
                                        options.compensate, rules, bars)
            return _finish(root, index, reading.read_as or spec, prior, backend, out_dir,
                           options, rules, reading, crops, said)


class CropSetReading(NamedTuple):
    """What the chunked pass over a crop set gives the calls."""

    outputs: np.ndarray               # (N, K) the network's (probabilities or logits)
    measured: pd.DataFrame | None     # the guard's measurements (crop_set_measurements)
    spillover: dict | None            # {sample: leak_record} when compensated
    timings_s: dict                   # read, classify (the network), measure
    leak_check: dict | None = None    # CK's leaks (on a share of the crops) against the
    #                                   guard's allowance (spillover.leak_check)
    read_as: ModelSpec | None = None  # the spec the guard read the crops at (camera tops)


def read_and_classify(index, spec, network: Callable[[np.ndarray], np.ndarray],
                      crops: SpilledArray, compensate: bool | None, rules: GuardRules | None,
                      done: Callable[[str, int], None] = lambda step, n: None
                      ) -> CropSetReading:
    """Read every crop of ``index`` into ``crops`` (each unreadable crop named before any
    work), then a chunk at a time the ``network``'s outputs (a backend's ``predict_proba``, or
    ``predict_logits`` for ``ctcnet evaluate``) and the guard's measurements, which are made
    per crop (the calls, which compare a crop with its sample's leukocytes, come after, from
    the measurements of all). The network sees each sample's crops compensated when asked or
    trained so, the leak measured over all of the sample's crops; the guard reads the crops.
    ``rules``: the guard's levels the measurements are made with (None: none made).
    ``done(step, n)``: n more crops ``read`` or ``classified`` (0: the step begins), for the
    progress bar."""
    t0 = time.perf_counter()
    done("read", 0)
    samples = np.asarray(index.sample_ids).astype(str)

    def read(start: int, chunk: np.ndarray) -> None:
        crops.write(start, chunk)
        done("read", len(chunk))

    spec, leaks, compensated = first_pass(
        crop_chunks(index, spec.crop_size, spec.pixel_size_um, chunk=CHUNK_CROPS), samples,
        spec, compensate, len(index), read)
    t1 = time.perf_counter()
    sample_leaks = leaks.leaks() if compensated else None
    outputs, measured, network_s = classify_chunks(crops.chunks(CHUNK_CROPS), samples, spec,
                                                   network, sample_leaks, rules, done,
                                                   display=index.exported)
    return CropSetReading(
        outputs, measured, leaks.records(sample_leaks) if compensated else None,
        {"read": t1 - t0, "classify": network_s,
         "measure": time.perf_counter() - t1 - network_s},
        leak_check(leaks.pooled(), spec.panel, rules or RULES, str(index.root)), spec)


def first_pass(chunks: Iterable[tuple[int, np.ndarray]], samples: np.ndarray, spec,
               compensate: bool | None, n: int,
               seen: Callable[[int, np.ndarray], None] = lambda start, chunk: None
               ) -> tuple[ModelSpec, SampleLeaks, bool]:
    """What the crops at model scale (``n`` of them, given as (first row, chunk) pairs, each
    handed to ``seen`` too) tell before any is classified: the spec they are read at (a set
    stated wider than its camera records, 12-bit counts stated 0-65535, is read as saturated
    at the camera's top, as a cartridge's frame is), CK's leaks per sample, and whether the
    network sees them compensated. The leaks are measured whether or not they are taken off: a
    leak beyond the guard's allowance is said (leak_check), as it blinds the guard to CTCs.
    Without compensation, on a share of the crops spread over the set (LEAK_CHECK_CROPS; on
    all, 0.6 ms a crop, twice the network's)."""
    leaks = SampleLeaks(spec.panel)
    compensated = wants_compensation(spec, compensate)
    stride = 1 if compensated else max(1, -(-n // LEAK_CHECK_CROPS))
    brightest = np.zeros(spec.panel.num_channels)
    for start, chunk in chunks:
        seen(start, chunk)
        some = np.arange(-start % stride, len(chunk), stride)
        top = chunk.max(axis=(0, 2, 3)) if len(chunk) else brightest
        # (clipped at the camera's top, where the chunk reaches one: 12-bit counts stated
        # 0-65535 clip at 4095, and a clipped CK read a 30 % leak 0)
        leaks.add(chunk[some], samples[start + some],
                  at_camera_tops(spec.panel, top.tolist()).saturation_levels)
        brightest = np.maximum(brightest, top)
    tops = at_camera_tops(spec.panel, brightest.tolist())
    return spec if tops is spec.panel else spec.replace(panel=tops), leaks, compensated


def classify_chunks(chunks: Iterable[tuple[int, np.ndarray]], samples: np.ndarray, spec,
                    network: Callable[[np.ndarray], np.ndarray], sample_leaks: dict | None,
                    rules: GuardRules | None,
                    done: Callable[[str, int], None] = lambda step, n: None,
                    display: bool = False) -> tuple[np.ndarray, pd.DataFrame | None, float]:
    """(the ``network``'s outputs (N, K), the guard's measurements (None without ``rules``),
    the network's seconds) of crops at model scale given as (first row, chunk) pairs: each
    chunk's sample crops compensated for ``sample_leaks`` ({sample: leaks}, None: not) where
    the network sees them, the guard measuring the crops as they are. ``display``: the crops
    are display levels (composite exports: their black is a display's, no clipped background,
    :func:`~ctcnet.nn.crop_input.display_levels`)."""
    outputs, measured, network_s = [], [], 0.0
    done("classified", 0)
    for start, chunk in chunks:
        view = chunk if sample_leaks is None else compensate_each(
            chunk, samples[start:start + len(chunk)], sample_leaks, spec.panel)
        t = time.perf_counter()
        with display_levels(display):
            outputs.append(network(view))
        network_s += time.perf_counter() - t
        del view
        if rules is not None:
            measured.append(crop_set_measurements(chunk, spec, rules))
        done("classified", len(chunk))
    return (np.concatenate(outputs) if outputs else np.zeros((0, len(spec.class_names))),
            pd.concat(measured, ignore_index=True) if measured else None, network_s)


def crop_set_calls(table: pd.DataFrame, crops, outputs: np.ndarray, spec,
                   measured: pd.DataFrame | None, marker_calls: bool, rules: GuardRules
                   ) -> pd.DataFrame:
    """``table`` (one row a crop; a ``sample_id`` column groups the guard's references) with
    the calls of the crops: each a cell someone chose, so its markers take part in the call
    (``guard.crop_set_calls``; ``marker_calls``: they may make it too), a leak read as a
    display export's where ``rules`` are an export's."""
    table = guard_events(label_events(table, outputs, spec), crops, outputs, spec,
                         measured=measured, markers_decide=marker_calls, overrule=marker_calls,
                         rules=rules)
    # A crop of NaN or infinite pixels was not read: its measurements are none, not a blank
    # crop's (no_ck, a CK area of 0), and no flag stands on them.
    failed = (table["class"] == FAILED_CLASS).to_numpy()
    if failed.any():
        table.loc[failed, [c for c in TABLE_MEASURES if c in table]] = np.nan
        table.loc[failed, "guard"] = ""
    return table


def _finish(root, index, spec, prior, backend, out_dir: Path, options: PredictOptions, rules,
            reading: CropSetReading, crops: SpilledArray, said: list[str]) -> CropRunSummary:
    """The calls (the markers taking part), the tables, summary.json and the page."""
    t0 = time.perf_counter()
    table = crop_set_calls(index.table(), crops, reading.outputs, spec, reading.measured,
                           options.marker_calls, rules)
    known = table["label"].isin(spec.class_names)
    other = table["label"][~known & (table["label"] != UNLABELLED)].value_counts()
    if len(other):  # labelled, but with a class the model has not: said, not scored silently
        # (predict needs no labels, so a lab's CTCs/ or wcb/ folder classifies all the same;
        # the class it may mean is named, as evaluate and train, which refuse it, name it)
        meant = [f"{k} -> {m}" for k in other.index if (m := class_meant(k, spec.class_names))]
        log.warning("%s: %d crop(s) labelled with classes the model has not (%s) are left out "
                    "of the accuracy%s; the model's classes are %s", root, int(other.sum()),
                    ", ".join(f"{k} {v}" for k, v in other.items()),
                    f" (did you mean {', '.join(meant)}? rename the folders to score them)"
                    if meant else "", spec.class_names)
    tally = count_events(table, spec.class_names, (), None)  # a crop set has no blood volume
    summary = CropRunSummary(
        dataset=absolute(root), crops=len(table), backend=backend.name,
        software=software_record(),
        written_at=datetime.now(UTC).isoformat(timespec="seconds"),
        device=backend.device_name, model=model_path(backend),
        decision_log_weights=decision_weights(spec.decision), prior=prior,
        pixel_size_um=float(index.panel.pixel_size_um),
        pixel_size_from=pixel_size_source(options.pixel_size),
        counts=tally.counted,
        held=tally.held, reported=list(spec.taxonomy.reported_classes()),
        review=tally.review_events,
        guard=guard_summary(table, spec),
        review_list=review_list_summary(table, spec),
        accuracy=float((table["class"] == table["label"])[known].mean()) if known.any()
        else None,
        accuracy_of=int(known.sum()),
        spillover=reading.spillover,
        leak_check=reading.leak_check,
        model_sha256=model_sha256(backend), markers_decide=bool(options.marker_calls),
        warnings=list(said),
        timings_s={**reading.timings_s, "calls": time.perf_counter() - t0,
                   "total": sum(reading.timings_s.values()) + time.perf_counter() - t0})
    # summary.json last, as a cartridge's: a first run's sample is done once it is there (a
    # Ctrl-C as the page was drawn called it done without its page). An earlier run of other
    # settings, kept in previous/, goes first with its page (a Ctrl-C as the tables were
    # written left its summary and page beside this run's calls); one of the same settings
    # holds for the same calls until this one replaces it.
    if _keep_one_of_other_settings(out_dir, summary):
        for name in (SUMMARY_FILE, "index.html"):
            (out_dir / name).unlink(missing_ok=True)
    with atomic_path(out_dir / "predictions.parquet") as tmp:
        arrow = pa.Table.from_pandas(table, preserve_index=False)
        pq.write_table(arrow.replace_schema_metadata(with_output_format(arrow.schema).metadata),
                       tmp)
    with atomic_path(out_dir / "predictions.csv") as tmp:
        spreadsheet_table(table).to_csv(tmp, index=False, float_format="%.5g")
    if options.report is not None:
        options.report.write_crop_set_page(out_dir, table, crops, spec, summary,
                                           options.gallery_limit)
    summary.write(out_dir)
    return summary


# What makes a crop set's calls, as its summary records it: another of these is another run.
CALL_SETTINGS = ("model_sha256", "prior", "decision_log_weights", "markers_decide",
                 "pixel_size_um", "dataset")


def _keep_one_of_other_settings(out_dir: Path, summary: CropRunSummary) -> bool:
    """Where the folder holds a run of these crops made otherwise (another model, prior,
    pixel size, the markers taking part or not, the folder read from elsewhere), its summary
    is kept in ``previous/`` as a cartridge's is, and said (replaced without a word, its
    calls left no record); whether it was."""
    try:
        earlier = json.loads((out_dir / SUMMARY_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    mine = summary.to_dict()
    differ = [k for k in CALL_SETTINGS if isinstance(earlier, dict) and k in earlier
              and earlier[k] != mine.get(k)]
    if differ:
        kept = keep_previous_summary(out_dir)
        log.warning("%s: replaces a run of these crops made with another %s; its summary is "
                    "kept as %s", out_dir, ", ".join(differ),
                    kept.relative_to(out_dir) if kept else "nothing")
    return bool(differ)
