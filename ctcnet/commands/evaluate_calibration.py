"""``ctcnet evaluate --calibrate-on``: the calibration crops and ``--save-model`` checked before
any work, and the calibrated model written."""

from __future__ import annotations

import argparse
import logging

from ctcnet.core.printable import stated_percent
from ctcnet.errors import InputError
from ctcnet.io import atomic
from ctcnet.io.panel import load_panel

log = logging.getLogger(__name__)


def _crop_index(folder):
    """A crop set's files and labels, or None where it cannot be indexed here (its own error
    comes later, where it is read)."""
    # the library: imported when the command runs (see ctcnet.commands)
    from ctcnet.detect.crop_dataset import read_crop_index

    try:  # any panel: only files and labels are wanted, not the channels or the pixel size
        return read_crop_index(folder, panel=load_panel(None))
    except InputError:
        return None


def _crop_files(folder, splits=None) -> set:
    """The crop files a crop set names (resolved; of the manifest ``splits`` alone where
    given, as ``--split`` scores them), or the folder itself."""
    from pathlib import Path

    index = _crop_index(folder)
    if index is None:
        return {Path(folder).resolve()}
    return {p.resolve() for p, split in zip(index.paths, index.splits)
            if not splits or split in splits}


def _scored_classes(data, splits=None) -> list[str] | None:
    """The labels the crops to be scored hold (of the manifest ``splits`` alone where given),
    or None where the set cannot be indexed here."""
    index = _crop_index(data)
    if index is None:
        return None
    return sorted({label for label, split in zip(index.labels, index.splits)
                   if not splits or split in splits})


def check_calibration_crops(calibrate_on) -> None:
    """Refuse, before any work, calibration crops too few to fit on even pooled with simulated
    crops (:mod:`ctcnet.evaluation.recalibration`)."""
    from collections import Counter

    # the library: imported when the command runs (see ctcnet.commands)
    from ctcnet.evaluation.recalibration import few_shortfall

    index = _crop_index(calibrate_on)
    problem = None if index is None else few_shortfall(Counter(index.labels))
    if problem:
        raise InputError(problem, calibrate_on)


def calibration_overlap_warning(data, calibrate_on, splits=None) -> str | None:
    """A calibration set that shares crops with the evaluated set (``data``'s ``splits``, as
    ``--split`` scores them): its ECE and review band are then measured on what they were
    fitted on, and look better than they are."""
    calibration, evaluated = _crop_files(calibrate_on), _crop_files(data, splits)
    shared = len(calibration & evaluated)
    if not shared:
        return None
    return (f"{shared} of the {len(evaluated)} evaluated crops ({data}"
            + (f", split {','.join(splits)}" if splits else "") + f") are among the "
            f"{len(calibration)} calibration crops ({calibrate_on}): ECE, the review band and "
            "other figures of the calibrated probabilities are optimistic; calibrate on crops "
            "kept apart")


def _states_pixel_size(folder) -> bool:
    """Whether a crop folder's panel.json states its pixel size: ``--pixel-size`` is then the
    evaluated crops' alone, and the calibration crops are read at their own (``fit`` over a
    lab's stated 0.64 fitted the temperature on crops read unlike its scans)."""
    from pathlib import Path

    from ctcnet.io.metadata_text import read_mapping

    try:  # (the reader every panel.json goes through; one it cannot read is refused later)
        stated = read_mapping(Path(folder) / "panel.json")
    except (OSError, InputError):
        return False
    return isinstance(stated, dict) and "pixel_size_um" in stated


def check_save_model(args: argparse.Namespace, model) -> None:
    """``--save-model`` before any work: given, writable, not the model read, not an
    existing file unless ``--overwrite``."""
    from ctcnet.commands.export import refuse_non_checkpoint_name

    if not args.save_model:
        raise InputError("--calibrate-on needs --save-model (never overwrite a model in place)")
    refuse_non_checkpoint_name(args.save_model, "--save-model")
    from pathlib import Path

    from ctcnet.commands.report_folders import EVALUATION, refuse_output_in_data

    saved = Path(args.save_model).absolute()
    # The model and its card (.json, .md) beside it: none a file of the report, none over
    # another file unasked (report.pt's card was the report's report.json).
    written = [saved, saved.with_suffix(".json"), saved.with_suffix(".md")]
    clash = [p.name for p in written if p.parent == Path(args.out).absolute()
             and p.name in (*EVALUATION.reports, *EVALUATION.files)]
    if clash:
        raise InputError(f"--save-model {saved.name}: its {clash[0]} is a file of the report "
                         "written into --out, and one would be written over by the other; "
                         "give the model another name")
    atomic.refuse_overwriting_inputs(args.save_model, [model], "--save-model")
    refuse_output_in_data(args.save_model, [args.data, args.calibrate_on], "--save-model")
    atomic.check_output_file(args.save_model, "--save-model")
    atomic.refuse_existing(written, args.overwrite, "--save-model")


def calibrate(args: argparse.Namespace, model, warnings: list[str]):
    """``--calibrate-on`` (its output and crops checked by ``run``): the calibrated model
    written to ``--save-model``; returns its path (what is evaluated). A calibration set that
    overlaps the evaluated one is warned about now and its warning added to ``warnings``."""
    import sys

    # the library: imported when the command runs (see ctcnet.commands)
    from ctcnet.evaluation.recalibrated_model import calibrate_model_file

    overlap = calibration_overlap_warning(args.data, args.calibrate_on, args.split)
    if overlap:
        log.warning("%s", overlap)
        warnings.append(overlap)
    try:
        spec = calibrate_model_file(model, args.calibrate_on, args.save_model,
                                    args.review_precision, args.device, args.batch_size,
                                    None if _states_pixel_size(args.calibrate_on)
                                    else args.pixel_size,
                                    _scored_classes(args.data, args.split))
    except InputError as err:
        if err.path is not None:
            raise
        # An error that names no file is about the calibration crops: name them.
        raise InputError(str(err), args.calibrate_on) from None
    from ctcnet.evaluation.recalibration import MIN_CALIBRATION_PER_CLASS, describe

    filled = spec.metrics["calibration"].get("filled_from_reference")
    if filled:
        said = (f"{args.calibrate_on}: under {MIN_CALIBRATION_PER_CLASS} calibration crops of "
                f"{', '.join(filled)}, which the evaluated crops hold: the simulator's crops of "
                f"{'it' if len(filled) == 1 else 'them'} stand in for the lab's in the fit; "
                "calibrate on crops of every class scored")
        log.warning("%s", said)
        warnings.append(said)
    print(f"calibrated: {describe(spec.metrics['calibration'])} -> {args.save_model}",
          file=sys.stderr)
    band = spec.decision.review_band_record if spec.decision is not None else None
    if band and band.get("level") is not None and band.get("fitted_for"):
        # The cartridges' band is kept, its miss rate measured on the base's calls only.
        level, confidence = band["level"], band.get("confidence", 0.95)
        print(f"  cartridges' review band kept: its stated miss rate ({stated_percent(level)}, "
              f"{stated_percent(confidence)} confidence) was measured on the base model's "
              "calls, not again on these", file=sys.stderr)
    _say_leaks(spec, args.calibrate_on)
    return args.save_model


def _say_leaks(spec, crops) -> None:
    """The instrument's leaks the labelled CTCs of ``crops`` showed (the guard's allowances),
    and those of the model they replace, on the console: they change what the guard holds
    (report.json's ``leak_check`` reads the evaluated crops, not these)."""
    import sys

    from ctcnet.evaluation.recalibration import leaks_line

    found = spec.metrics.get("leaks") or {}
    if not found:
        return
    print("  " + leaks_line(found, spec, crops).removeprefix("- "), file=sys.stderr)
    replaced = found.get("replaced") or {}
    if replaced:
        print("  replacing the model's: " + ", ".join(
            f"{name} {', '.join(f'{v:.1%} of {k}' for k, v in leaks.items())}"
            for name, leaks in replaced.items()), file=sys.stderr)
