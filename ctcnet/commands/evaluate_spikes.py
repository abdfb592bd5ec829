"""``ctcnet evaluate RESULTS --expected FILE``: a spike-in validation of a run's counts
(:mod:`ctcnet.evaluation.spike_in`): recovery per sample and level, linearity, limit of blank
and of detection, written to ``--out`` (``spike_in.json``, ``spike_in.csv``) and said on the
console. ``RESULTS`` is a predict ``--out`` folder, or a folder of them (a study's nights,
pooled; a sample with results in two is refused)."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from ctcnet.core.paths import absolute
from ctcnet.errors import InputError

log = logging.getLogger(__name__)


def run_spike_in(args: argparse.Namespace) -> int:
    """Score predict's outputs in ``args.data`` against ``args.expected``; exit status 0."""
    from ctcnet.evaluation.spike_in import read_expected, rows_csv, sample_rows, spike_report
    from ctcnet.io.atomic import atomic_write_text
    from ctcnet.review.runs import find_samples

    if args.model is not None or args.calibrate_on:
        raise InputError("--expected scores the counts of a predict output folder as they "
                         "are: --model and --calibrate-on do not apply (run ctcnet predict "
                         "with the model first)")
    expected = read_expected(args.expected)
    summaries, read_from = {}, {}
    for name, folder in _samples_of_nights(Path(args.data), find_samples).items():
        try:
            summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise InputError(f"cannot read its summary: {err}", folder) from None
        sample = str(summary.get("sample_id") or name)
        if sample in read_from:  # one tube, one result: two would be pooled as two tubes
            raise InputError(f"sample {sample!r} has results in two folders ({read_from[sample]} "
                             f"and {folder.parent}): keep one", args.data)
        summaries[sample], read_from[sample] = summary, folder.parent
    rows = sample_rows(summaries, expected)
    report = spike_report(rows)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "spike_in.csv", rows_csv(rows))
    atomic_write_text(out / "spike_in.json", json.dumps(
        {**report, "results": absolute(args.data),
         "expected": absolute(args.expected)}, indent=2) + "\n")
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"{'spiked':>8s} {'samples':>7s} {'called per 7.5 mL':>18s} {'CV':>6s} "
          f"{'Poisson CV':>10s} {'recovery':>8s}")
    for level in report["levels"]:
        mean, cv = level["mean_called_per_7_5_ml"], level["cv"]
        poisson, recovery = level["poisson_cv"], level["mean_recovery"]
        print(f"{level['spiked']:8g} {level['samples']:7d} {_shown(mean, '.2f'):>18s} "
              f"{_shown(cv, '.0%'):>6s} {_shown(poisson, '.0%'):>10s} "
              f"{_shown(recovery, '.0%'):>8s}")
    line = report["linearity"]
    if line:
        print(f"linearity over {line['samples']} spiked samples: called = "
              f"{line['slope']:.3f} (95 % CI {line['slope_ci95'][0]:.3f}-"
              f"{line['slope_ci95'][1]:.3f}) x expected {line['intercept']:+.2f}, "
              f"R^2 {line['r2']:.3f}")
    lob, lod = report["limit_of_blank_per_7_5_ml"], report["limit_of_detection_per_7_5_ml"]
    print("limit of blank: " + ("-" if lob["value"] is None else f"{lob['value']:.2f}")
          + f" per 7.5 mL ({lob['method']})")
    print("limit of detection: " + ("-" if lod["value"] is None else f"{lod['value']:.2f}")
          + f" per 7.5 mL ({lod['method']}; {lod['results']} results)")
    if report["partial_samples"]:
        print(f"{report['partial_samples']} sample(s) not 'ok' (spike_in.csv: status): their "
              "rates are estimates from the frames read")
    if report["made_by_several"]:
        log.warning("the samples' counts were made by more than one %s "
                    "(spike_in.csv: model_sha256, software): the figures above pool them",
                    " and ".join(report["made_by_several"]))
    print(f"report: {out}/spike_in.json, {out}/spike_in.csv")
    return 0


def _samples_of_nights(data: Path, find_samples) -> dict[str, Path]:
    """Sample folders of ``data``: a predict ``--out`` folder, or a folder of them (a spike-in
    study's nights, each run into its own ``--out``), pooled."""
    try:
        return find_samples(data)
    except InputError:
        nights = [p for p in sorted(data.iterdir())
                  if p.is_dir() and (p / "run.json").is_file()] if data.is_dir() else []
        if not nights:
            raise
    folders: dict[str, Path] = {}
    for night in nights:
        for name, folder in find_samples(night).items():
            folders[f"{night.name}/{name}"] = folder
    log.info("pooling %d predict output folders: %s", len(nights),
             ", ".join(p.name for p in nights))
    return folders


def _shown(value, spec: str) -> str:
    """A figure as the console shows it, ``-`` where there is none."""
    return "-" if value is None else format(value, spec)
