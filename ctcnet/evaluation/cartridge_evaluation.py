"""``ctcnet evaluate`` on simulated cartridges with ground truth: predicts each, compares its
automatic and after-review counts with the truth of the frames read
(:mod:`ctcnet.evaluation.counts`), and writes ``counts.json`` (with the model, the software
and when, for an audit) and ``counts.png``."""

from __future__ import annotations

import logging
from pathlib import Path

from ctcnet.core.json_text import strict_json
from ctcnet.inference.backends import load_backend
from ctcnet.inference.model_records import scored_by
from ctcnet.io.atomic import atomic_write_text
from ctcnet.io.scan import open_cartridge
from ctcnet.nn.calls import CARTRIDGE_PRIOR
from ctcnet.simulate.cartridge import read_truth

log = logging.getLogger(__name__)


def evaluate_cartridges(cartridges, model_path, out_dir: str | Path, device: str = "auto",
                        workers: int | None = None, quiet: bool = True, compensate: bool |
                        None = None, prior: str | None = None, cutoffs=None,
                        resume: bool = False, overwrite: bool = True) -> dict:
    """Cartridge-level evaluation: predict every cartridge and compare its automatic and
    after-review counts with its ground truth (of the frames read: a partial one's status).

    Parameters
    ----------
    cartridges : iterable of str, Path or Cartridge
        Simulated cartridges, each with its ground_truth.csv (checked before any work).
    model_path : str or Path
        The model, as for :func:`evaluate_dataset`.
    out_dir : str or Path
        Each cartridge's predict output goes into ``out_dir/<sample id>/``; counts.json and
        counts.png beside them.
    device, workers, quiet, compensate, prior
        As ``ctcnet predict`` takes them; the prior defaults to cartridge prevalence.
    cutoffs : sequence of float, optional
        CTCs per 7.5 mL whose agreement is given (default ``counts.CUTOFFS``).
    resume, overwrite : bool
        ``resume``: a run of the same model and settings in a cartridge's folder is resumed,
        as predict resumes it (an evaluation stopped part-way goes on where it stopped), and
        one of another model or settings is done again with ``overwrite``, else refused as
        predict refuses it. Not ``resume``: every cartridge is predicted afresh (the scripts
        that measure a change of the code: the run's record does not tell code apart).

    Returns
    -------
    dict
        What counts.json holds: each cartridge's called and true counts, and their agreement
        per 7.5 mL over the cartridges, automatic and after review.
    """
    import pandas as pd  # cartridges only

    from ctcnet.evaluation.counts import CUTOFFS, cartridge_counts, count_report
    from ctcnet.evaluation.counts_figure import counts_png
    from ctcnet.inference.ground_truth import truth_by_taxonomy, truth_of_processed_frames
    from ctcnet.inference.options import say_if_no_cartridge_rule
    from ctcnet.inference.options import say_what_other_reported_classes_lack as say_others
    from ctcnet.inference.output_names import set_aside_colliding
    from ctcnet.inference.predict import PredictOptions, spec_at_prior

    backend = load_backend(model_path, device=device)
    names = backend.spec.class_names
    say_others(backend.spec)
    prior_name = spec_at_prior(backend.spec, prior, CARTRIDGE_PRIOR)[1]  # a bad prior: now
    say_if_no_cartridge_rule(backend.spec, prior)
    # Refuse before any work: truth present, the model's channels there (by name).
    opened = [open_cartridge(c).conform(backend.spec.panel) for c in cartridges]
    for cart in opened:
        _say_frames_without_truth(cart, read_truth(cart.root))
    # Two of one sample id would be one output folder, the second's run replacing the first's
    # (simulate names each cartridge sim<seed>: a shifted copy of a seed is its namesake).
    set_aside_colliding([(cart.sample_id, cart.root) for cart in opened], None)
    _say_one_scan_twice(opened)
    out_dir = Path(out_dir)
    reported = backend.spec.taxonomy.reported_classes()
    rows = []
    for cart in opened:
        summary = _predicted(cart, backend, out_dir / cart.sample_id, PredictOptions(
            quiet=quiet, report=None, workers=workers, compensate=compensate, prior=prior,
            overwrite=not resume), overwrite)
        events = pd.read_parquet(out_dir / cart.sample_id / "events.parquet")
        truth = truth_by_taxonomy(read_truth(cart.root), backend.spec.taxonomy)
        truth = truth_of_processed_frames(cart, truth, summary.skipped_frames)
        # The blood of the frames read, as the truth is of those frames only.
        row = cartridge_counts(events, truth, names, cart.panel.pixel_size_um,
                               summary.volume_read_ml, counted_classes=reported)
        rows.append({"sample_id": cart.sample_id, "status": summary.status, **row})
    report = count_report(rows, names, cutoffs=cutoffs or CUTOFFS, reported=reported)
    for row in rows:
        if row["sample_id"] in report["detection"]["poorly_matched"]:
            log.warning("%s: only %d of its %d true cells lie within %g um of an event: the "
                        "truth's positions or the pixel size do not fit its frames, and its "
                        "misses and false calls may be positions off, not calls", row["sample_id"],
                        row["true_matched"], row["true_events"],
                        report["detection"]["radius_um"])
    report.update(**scored_by(backend), prior=prior_name, review_flags=(
        "review column of events: sent to a person where the doubt could change a count (a "
        "counted class in doubt or within the review band, or the marker guard's flags); "
        "each sample's summary.json review_list gives how many each reason brings"))
    counts_png(report, out_dir / "counts.png")
    atomic_write_text(out_dir / "counts.json", strict_json(report, indent=2) + "\n")
    return report


def _predicted(cart, backend, out_dir: Path, options, overwrite: bool):
    """The summary of ``cart``'s predict run into ``out_dir`` (``options.overwrite``: afresh;
    else resumed where the folder holds a run of the same model and settings: an evaluation
    stopped part-way redid every cartridge, the finished ones too). A refusal that
    ``--overwrite`` answers (another model's or settings' run, an earlier version's) is run
    afresh with ``overwrite``, as predict's ``--overwrite`` runs it; others stand (the folder
    held by another process, or not writable)."""
    from dataclasses import replace

    from ctcnet.errors import FinishedEarlierError, FolderHeldError, OutputFolderError
    from ctcnet.inference.finished_runs import kept_finished
    from ctcnet.inference.predict import predict_cartridge

    try:
        return predict_cartridge(cart, backend, out_dir, options)
    except FinishedEarlierError as err:  # an earlier version's finished run: kept, as predict
        if not overwrite:
            return kept_finished(err, cart.sample_id)
    except OutputFolderError as err:
        if not overwrite or isinstance(err, FolderHeldError) or "--overwrite" not in str(err):
            raise
    return predict_cartridge(cart, backend, out_dir, replace(options, overwrite=True))


def _say_frames_without_truth(cart, truth) -> None:
    """Warn of frames ``truth`` (ground_truth.csv) holds no cell of: each is scored as a frame
    of no cells, its events as false calls; a file cut short at a row's end loses its last
    frames so."""
    drawn = set(zip(truth["row"].astype(int), truth["col"].astype(int)))
    empty = [f.frame_id for f in cart.frames if (f.row, f.col) not in drawn]
    if empty and len(empty) < len(cart.frames):
        log.warning("%s: ground_truth.csv holds no cell of %d of its %d frames (%s%s): each is "
                    "scored as a frame of none, its events as false calls (a file cut short "
                    "loses its last frames so)", cart.sample_id, len(empty), len(cart.frames),
                    ", ".join(empty[:5]), ", ..." if len(empty) > 5 else "")


def _say_one_scan_twice(opened) -> None:
    """Warn where two cartridges are one scan (the same frames under two sample ids): each is
    scored, but an agreement over the two is of one blood draw counted twice."""
    by_scan: dict[str, list[str]] = {}
    for cart in opened:
        if cart.identity:
            by_scan.setdefault(cart.identity, []).append(cart.sample_id)
    for ids in by_scan.values():
        if len(ids) > 1:
            log.warning("%s are one scan (the same frames, cartridge_id alike): each is "
                        "scored, but the agreement over the cartridges counts that blood "
                        "draw %d times, not as independent cartridges", " and ".join(ids),
                        len(ids))
