"""Predict on a crop dataset: every crop of a folder of crops (class folders or a manifest,
panel.json) classified, its markers taking part in the call, written as predictions.parquet /
predictions.csv and summary.json (:func:`predict_crop_dataset`), and with the report a page
that shows every call with its crop (``ctcnet.report.crop_set_page``)."""

from __future__ import annotations

import time
from pathlib import Path

from ctcnet.detect.crop_dataset import load_crops, pixel_size_source, read_crop_index
from ctcnet.inference.counts import count_events
from ctcnet.inference.guard import RULES, guard_events, guard_summary
from ctcnet.inference.options import PredictOptions, spec_at_prior
from ctcnet.inference.spillover import network_view
from ctcnet.inference.summary import CropRunSummary, model_sha256
from ctcnet.inference.tables import label_events
from ctcnet.io.atomic import atomic_path, exclusive_folder
from ctcnet.nn.calls import BALANCED_PRIOR, decision_weights


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
    # One writer per output folder, as for a cartridge's: taken before any work.
    with exclusive_folder(out_dir, "predict"):
        return _classified(root, backend, Path(out_dir), options or PredictOptions())


def _classified(root: str | Path, backend, out_dir: Path, options: PredictOptions
                ) -> CropRunSummary:
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
    # Each crop is a cell someone chose: its markers take part in the call
    # (guard.crop_set_calls), a leak read as a display export's when the crops are exports.
    table = guard_events(label_events(index.table(), proba, spec), crops, proba, spec,
                         markers_decide=options.marker_calls, overrule=options.marker_calls,
                         rules=RULES.for_crops(index.exported))
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
        pixel_size_from=pixel_size_source(options.pixel_size),
        counts=tally.counted,
        held=tally.held,
        review=tally.review_events,
        guard=guard_summary(table, spec),
        accuracy=float((table["class"] == table["label"])[known].mean()) if known.any()
        else None,
        accuracy_of=int(known.sum()),
        spillover=spillover,
        model_sha256=model_sha256(backend),
        timings_s={"read": t1 - t0, "classify": t2 - t1, "total": time.perf_counter() - t0})
    summary.write(out_dir)
    if options.report is not None:  # the counts are on disk first, as for a cartridge
        options.report.write_crop_set_page(out_dir, table, crops, spec, summary,
                                           options.gallery_limit)
    return summary
