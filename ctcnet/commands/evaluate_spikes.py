"""``ctcnet evaluate RESULTS --expected FILE``: a spike-in validation of a run's counts
(:mod:`ctcnet.evaluation.spike_in`): recovery per sample and level, linearity, limit of blank
and of detection, written to ``--out`` (``spike_in.json``, ``spike_in.csv``) and said on the
console; or, where FILE gives another method's rates (``reference_per_7_5_ml``), a method
comparison (:mod:`ctcnet.evaluation.method_comparison`: bias, limits of agreement, tolerance
and the clinical cut-offs' agreement, ``comparison.json``, ``comparison.csv``). ``RESULTS``
is a predict ``--out`` folder, or a folder of them (a study's nights, pooled; a sample with
results in two is scored as the expected counts name it, ``<folder>/<sample_id>``, and
refused otherwise)."""

from __future__ import annotations

import argparse
import json
import logging
from datetime import UTC
from pathlib import Path

from ctcnet.commands.evaluate_models import model_comparison, say_models
from ctcnet.commands.spike_in_console import rate_shown, say_spike_in, shown
from ctcnet.core.json_text import strict_json
from ctcnet.core.paths import absolute
from ctcnet.errors import InputError

log = logging.getLogger(__name__)


def add_expected_arguments(parser: argparse.ArgumentParser) -> None:
    """``--expected`` (a spike-in validation or a method comparison of predict's outputs)
    and ``--cutoffs`` (the clinical cut-offs a comparison or a cartridge evaluation gives)."""
    parser.add_argument("--expected", metavar="CSV|RESULTS",
                        help="score a predict --out folder (or a folder of them) as DATA: CSV "
                             "lists sample_id,spiked[,level] (cells spiked per tube, 0 for a "
                             "blank: recovery, linearity, LoB, LoD; docs/training.md) or "
                             "sample_id,reference_per_7_5_ml (another method's CTCs per 7.5 mL "
                             "of the same tubes, e.g. CellSearch's: bias, limits of agreement, "
                             "cut-off agreement); or another predict --out folder of the "
                             "same scans (another model's: a model comparison, both models "
                             "named and the events whose call changed); a tube scanned twice "
                             "named <folder>/<sample_id>")
    parser.add_argument("--class", dest="count_class", metavar="NAME", default=None,
                        help="the class --expected's figures count (default ctc; a lab's own "
                             "reported CTC class, e.g. ctc_emt, scored on its own)")
    parser.add_argument("--cutoffs", metavar="N[,N]", type=_cutoffs, default=None,
                        help="clinical cut-offs in CTCs per 7.5 mL (>= N is positive) whose "
                             "agreement is given, with a reference's rates or simulated "
                             "cartridges' truth (default 1,3,5: detection; CellSearch's >= 3 "
                             "in colorectal, >= 5 in breast and prostate cancer)")


def _cutoffs(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        values = ()
    if not values or any(not v > 0 or v != v or v == float("inf") for v in values):
        raise argparse.ArgumentTypeError(f"cut-offs are CTCs per 7.5 mL above 0, comma-"
                                         f"separated (e.g. 3,5), not {text!r}")
    return tuple(sorted(set(values)))


def run_spike_in(args: argparse.Namespace) -> int:
    """Score predict's outputs in ``args.data`` against ``args.expected``; exit status 0."""
    from ctcnet.evaluation.expected_file import read_expected
    from ctcnet.evaluation.spike_in import rows_csv, sample_rows, spike_report
    from ctcnet.io.atomic import atomic_write_text
    from ctcnet.review.runs import find_samples

    if args.model is not None or args.calibrate_on:
        raise InputError("--expected scores the counts of a predict output folder as they "
                         "are: --model and --calibrate-on do not apply (run ctcnet predict "
                         "with the model first)")
    positive = args.count_class or "ctc"
    reference_runs = None
    if Path(args.expected).is_dir():  # another model's predict output of the same scans
        reference_runs = _reference_runs(Path(args.expected), find_samples)
        from ctcnet.evaluation.model_comparison import reference_rates

        reference = {k: summary for k, (_, summary) in reference_runs.items()}
        say_classes_counted(reference, positive, args.count_class is not None, said=False)
        expected = reference_rates(reference, positive)
    else:
        expected = read_expected(args.expected)
    if args.cutoffs is not None and "reference" not in expected:
        raise InputError("--cutoffs are a method comparison's (reference_per_7_5_ml) or "
                         "simulated cartridges': a spike-in validation has none", args.expected)
    folders, nights = _samples_of_nights(Path(args.data), find_samples)
    results = _results(folders)
    expected.index = [_named(i, results) for i in expected.index]
    summaries, read_from = _summaries(results, expected.index)
    if reference_runs is not None and expected.index.isin(list(summaries)).any():
        # A reference run's samples this run did not read (a subset of its tubes run again):
        # not compared, named beside the figures (model_comparison); a list of expected
        # counts names each sample it wants scored.
        expected = expected[expected.index.isin(list(summaries))]
    say_classes_counted(summaries, positive, args.count_class is not None)
    rows = sample_rows(summaries, expected, positive, _signoff_now(read_from))
    rows.insert(1, "results_folder", [str(read_from[s].parent) for s in rows["sample_id"]])
    if "reference" in expected:
        return _run_comparison(args, rows, summaries, expected, nights,
                               model_comparison(reference_runs, summaries, read_from,
                                                positive))
    report = spike_report(rows, positive, level_column="level" in expected)
    report["results_not_expected"] = _not_expected(summaries, expected)
    report["results_folders"] = [str(p) for p in nights]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "spike_in.csv", rows_csv(rows, report))
    record = {**report, "results": absolute(args.data), "expected": absolute(args.expected),
              **_provenance(args.expected, "expected")}
    atomic_write_text(out / "spike_in.json", strict_json(record, indent=2) + "\n")
    if args.json:  # the record as written, its provenance too (a pipeline keeps stdout)
        print(strict_json(record))
        return 0
    if len(nights) > 1:
        print(f"pooled {len(nights)} predict output folders: "
              + ", ".join(p.name for p in nights))
    say_spike_in(report)
    _say_left_out(report, summaries=summaries)
    print(f"report: {out}/spike_in.json, {out}/spike_in.csv")
    return 0


def say_classes_counted(summaries: dict[str, dict], positive: str, asked: bool,
                        said: bool = True) -> None:
    """Refuse a class (``positive``, ``asked``: given as ``--class``) a run's model does not
    call or does not report (a rate per 7.5 mL of it, as ``ctcnet draws`` refuses it); say
    (``said``) the reported classes the runs count besides it (a lab's ctc_emt: its CK-dim
    CTCs were left out of a recovery read as the CTCs'), with how to score them."""
    from ctcnet.inference.serial_draws import refuse_unreported

    def classes(summary: dict) -> list:
        return (summary.get("model") or {}).get("classes") or [] \
            if isinstance(summary.get("model"), dict) else []

    # (a run whose model calls no such class read as a failed run, left out unsaid)
    lacking = sorted(k for k, s in summaries.items() if classes(s) and positive not in classes(s))
    if lacking:
        raise InputError(f"{'--class ' if asked else ''}{positive}: the runs of "
                         f"{', '.join(lacking[:5])}{', ...' if len(lacking) > 5 else ''} were "
                         f"made by a model that calls no {positive} (its classes: "
                         f"{', '.join(classes(summaries[lacking[0]]))})"
                         + ("" if asked else "; --class names the class to score"))
    for sample, summary in summaries.items():  # (one called and not counted read as failed)
        refuse_unreported(summary.get("per_7_5_ml"), positive, sample)
    reported = {c for s in summaries.values()
                for c in (s.get("tally") or {}).get("reported") or ()} - {positive, "cluster"}
    if reported and said:
        log.warning("the figures count %s alone; the runs also report %s, not in them "
                    "(--class NAME scores one of them)", positive, ", ".join(sorted(reported)))


def _signoff_now(read_from: dict[str, Path]):
    """Whether a sample's sign-off holds as its record and decisions are now, by the id it is
    scored under, as ``ctcnet draws`` reads it: a review.csv edited since the sign-off read as
    signed off with the edited count (summary.json's copy). A record changed by hand is
    warned of."""
    from ctcnet.commands.draws import signoff_holds_now

    def holds(sample: str) -> bool:
        edited: dict[str, str] = {}
        if signoff_holds_now(read_from[sample], edited):
            return True
        for problem in edited.values():
            log.warning("%s: its review record was changed by hand since the sign-off (%s): "
                        "`ctcnet verify --results` names what; the automatic count stands",
                        sample, problem)
        return False
    return holds


def _reference_runs(folder: Path, find_samples) -> dict[str, tuple[Path, dict]]:
    """A reference model's predict output (or a folder of them): each sample id's folder and
    summary; a tube with two results there is refused (which one is the reference?)."""
    found = _results(_samples_of_nights(folder, find_samples)[0])
    twice = sorted(s for s, both in found.items() if len(both) > 1)
    if twice:
        raise InputError(f"the reference holds {len(found[twice[0]])} results of sample "
                         f"{twice[0]!r}: score one predict output of each tube", folder)
    return {sample: both[0] for sample, both in found.items()}


def _run_comparison(args: argparse.Namespace, rows, summaries: dict, expected,
                    nights: list[Path], models: dict | None = None) -> int:
    """A method comparison of ``rows`` (:func:`~ctcnet.evaluation.spike_in.sample_rows` of a
    reference) written to ``--out`` and said (``models``: where the reference is another
    model's run, :func:`_model_comparison`'s); exit status 0."""
    from ctcnet.evaluation.counts import CUTOFFS
    from ctcnet.evaluation.method_comparison import comparison_csv, comparison_report
    from ctcnet.io.atomic import atomic_write_text

    cutoffs = args.cutoffs or CUTOFFS
    report = comparison_report(rows, cutoffs, args.count_class or "ctc")
    report["results_not_expected"] = _not_expected(summaries, expected)
    report["results_folders"] = [str(p) for p in nights]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "comparison.csv", comparison_csv(rows, cutoffs))
    if models is not None:
        report.update({k: v for k, v in models.items() if not k.startswith("_")})
        atomic_write_text(out / "changed_events.csv",
                          models["_table"].to_csv(index=False, float_format="%.5g"))
    record = {**report, "results": absolute(args.data), "reference": absolute(args.expected),
              **_provenance(args.expected, "reference")}
    atomic_write_text(out / "comparison.json", strict_json(record, indent=2) + "\n")
    _warn_comparison(report, args.expected, args.data)
    if args.json:  # the record as written, its provenance too (a pipeline keeps stdout)
        print(strict_json(record))
        return 0
    print(f"{'sample':16s} {'reference':>9s} {'ctcnet':>7s} {'difference':>10s} "
          f"{'after review':>12s}  status   ("
          + ("CTCs" if report.get("class", "ctc") == "ctc" else report["class"])
          + " per 7.5 mL)")
    for r in rows.itertuples():
        after = rate_shown(r.after_review_per_7_5_ml)
        print(f"{str(r.sample_id)[:16]:16s} {rate_shown(r.expected_per_7_5_ml):>9s} "
              f"{rate_shown(r.called_per_7_5_ml):>7s} "
              f"{shown(r.called_per_7_5_ml - r.expected_per_7_5_ml, '+10.2f'):>10s} "
              f"{after:>12s}  {r.status}")
    _say_comparison(report, "ctcnet")
    if report["after_review"]:
        _say_comparison(report["after_review"], "after review")
    _say_left_out(report, "comparison.csv", summaries)
    if models is not None:
        say_models(report)
    print(f"report: {out}/comparison.json, {out}/comparison.csv"
          + (f", {out}/changed_events.csv" if models is not None else ""))
    return 0


def _warn_comparison(report: dict, reference, data) -> None:
    """Warnings of a method comparison whose figures are not what they seem: a reference (the
    file or run folder given) in another unit, a reference run made by several models, the
    results folder given as its own reference."""
    if report.get("reference_units_in_doubt"):
        log.warning("the reference: %s", report["reference_units_in_doubt"])
    models = report.get("reference_models") or []
    if len({m.get("sha256") for m in models}) > 1:
        log.warning("the reference's counts were made by more than one model (%s): the "
                    "figures pool them", "; ".join(f"{Path(m['path'] or 'in memory').name} "
                                                  f"({(m['sha256'] or '?')[:12]})"
                                                  for m in models))
    if Path(reference).resolve() == Path(data).resolve():
        log.warning("the reference is the results folder itself: every figure compares a run "
                    "with itself")



def _provenance(source, name: str) -> dict:
    """What a validation report (spike_in.json, comparison.json) cites of itself: when it
    was made, the digest of the file it scored against (``<name>_sha256``: ``expected`` or
    ``reference``; the figures are of it as it was then; a reference run's models are named
    beside) and the software that scored it."""
    from datetime import datetime

    from ctcnet.core.provenance import software_record
    from ctcnet.io.digests import file_sha256

    return {"written_at": datetime.now(UTC).isoformat(timespec="seconds"),
            **({f"{name}_sha256": file_sha256(source)} if Path(source).is_file() else {}),
            "software": software_record()}


def _say_comparison(reading: dict, who: str) -> None:
    """One reading's agreement with the reference, on the console."""
    from ctcnet.evaluation.counts import share_ci

    ba, tol = reading["bland_altman"], reading["within_tolerance"]
    limits = (f" (95 % limits of agreement {ba['lower']:+.2f} to {ba['upper']:+.2f})"
              if ba["lower"] is not None else "")
    if ba.get("bias_ci95"):
        limits = f", 95 % CI {ba['bias_ci95'][0]:+.2f} to {ba['bias_ci95'][1]:+.2f}" + limits
    outside = f" (outside: {', '.join(tol['outside'])})" if tol["outside"] else ""
    print(f"{who}: bias {shown(ba['bias'], '+.2f')} per 7.5 mL{limits}; within "
          f"max(1, 15 % of the reference) {tol['n']}/{tol['of']}{share_ci(tol)}{outside}")
    line = reading.get("passing_bablok")
    note = f" ({line['note']})" if line and line.get("note") else ""
    if line and line["slope"] is None:
        print(f"  Passing-Bablok: {line['note']}")
    elif line and line["slope_ci95"] is None:
        print(f"  Passing-Bablok: {who} = {line['slope']:.3f} x reference "
              f"{line['intercept']:+.2f}{note}")
    elif line:
        (s_low, s_high), (i_low, i_high) = line["slope_ci95"], line["intercept_ci95"]
        print(f"  Passing-Bablok: {who} = {line['slope']:.3f} (95 % CI {s_low:.3f} to "
              f"{s_high:.3f}) x reference {line['intercept']:+.2f} (95 % CI {i_low:+.2f} to "
              f"{i_high:+.2f}){note}")
    for cut in reading["at_cutoffs"]:
        parts = [f"agree {cut['agree']}/{cut['n']}{share_ci(cut)} (both positive "
                 f"{cut['both_positive']}, {who} alone {cut['false_positive']}, reference "
                 f"alone {cut['false_negative']}, both negative {cut['both_negative']})"]
        for kind in ("positive", "negative"):
            share = cut[f"{kind}_agreement"]
            if share is not None:
                parts.append(f"{kind} {share:.0%}{share_ci({'ci95': cut[f'{kind}_ci95']})}")
        if cut.get("kappa") is not None:
            parts.append(f"Cohen's kappa {cut['kappa']:.2f}")
        apart = ", ".join(f"{d['sample_id']} (reference {rate_shown(d['reference_per_7_5_ml'])}"
                          f", {who} {rate_shown(d['called_per_7_5_ml'])})"
                          for d in cut["discordant"])
        print(f"  at >= {cut['cutoff']:g}: " + ", ".join(parts)
              + (f"; on opposite sides: {apart}" if apart else ""))


def _not_expected(summaries: dict, expected) -> list[str]:
    """Results the expected counts do not list, with their status where not ok: not scored,
    and said (a mistyped id)."""
    return [key + ("" if summaries[key].get("status", "ok") == "ok"
                   else f" ({summaries[key].get('status')})")
            for key in sorted(summaries) if key not in expected.index]


def _results(folders: dict[str, Path]) -> dict[str, list]:
    """Each sample id's results, as (folder, summary.json parsed): one, or a tube's several
    (scanned again another night)."""
    from ctcnet.inference.figures_seal import check_figures_sealed

    read: dict[str, list] = {}
    for name, folder in folders.items():
        try:
            summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise InputError(f"cannot read its summary: {err}", folder) from None
        unsealed = check_figures_sealed(summary, folder) if isinstance(summary, dict) else None
        if unsealed:
            log.warning("%s: %s", folder, unsealed)
        read.setdefault(str(summary.get("sample_id") or name), []).append((folder, summary))
    return read


def _key(folder: Path) -> str:
    """A result's own name, ``<predict output folder>/<sample folder>``: what names one of a
    tube's several results (scanned again another night) in the expected counts."""
    return f"{folder.parent.name}/{folder.name}"


def _named(listed: str, results: dict[str, list]) -> str:
    """An expected count's id as the results know it: ``<folder>/<sample>`` (or a path ending
    so, as spike_in.csv's ``results_folder`` writes it) names one result, by its sample folder
    or its sample id in that folder; a tube with one result is its plain id either way."""
    night, _, sample = str(listed).replace("\\", "/").rstrip("/").rpartition("/")
    if not night:
        return listed
    night = night.rpartition("/")[2]
    found = [(sid, folder) for sid, both in results.items() for folder, _ in both
             if folder.parent.name == night and sample in (folder.name, sid)]
    by_folder = [(sid, folder) for sid, folder in found if folder.name == sample]
    found = by_folder if len(by_folder) == 1 else found
    if len(found) != 1:
        where = ", ".join(_key(f) for f, _ in results.get(sample, []))
        raise InputError(f"expected sample {listed!r}: " + (
            f"no result of {sample!r} in a folder {night!r}" + (
                f" (it has results in {where})" if where else "") if not found else
            f"{len(found)} results in {night!r}: " + ", ".join(_key(f) for _, f in found)))
    sid, folder = found[0]
    return sid if len(results[sid]) == 1 else _key(folder)


def _summaries(results: dict[str, list], listed) -> tuple[dict, dict]:
    """Each result's summary by the id it is scored under, and its sample folder. A tube with
    results in two folders (scanned again another night) is scored under :func:`_key`:
    refused when the expected counts list it plainly, or list more than one of its results,
    or one twice (one tube, one result)."""
    seen: set = set()
    for name in listed:  # "low" and "night1/low" name one result: listed twice
        if name in seen:
            raise InputError(f"the expected counts name the result {name!r} twice")
        seen.add(name)
    summaries, where = {}, {}
    listed = seen
    for sample, found in results.items():
        keys = [sample] if len(found) == 1 else [_key(folder) for folder, _ in found]
        named = sorted(listed & set(keys))
        if len(found) > 1 and (sample in listed or len(named) > 1):
            where = ", ".join(str(f) for f, _ in found)
            raise InputError(
                f"sample {sample!r} has {len(found)} results ({where}): the expected counts "
                + (f"name {len(named)} of them ({', '.join(named)}): keep one line, one tube, "
                   "one result" if len(named) > 1 else
                   f"list it as {sample!r}" + (f" beside {named[0]!r}: keep that line alone"
                                               if named else
                                               f": name the one to score, as "
                                               f"{' or '.join(keys)}")))
        for key, (folder, summary) in zip(keys, found):
            summaries[key], where[key] = summary, folder
    return summaries, where


def _say_left_out(report: dict, table: str = "spike_in.csv", summaries: dict | None = None
                  ) -> None:
    """What the figures leave out or rest on, on the console: samples without a rate,
    results not listed, samples not ok, the review, and counts made by several (``table``:
    the per-sample table that says more; ``summaries``: the scored samples', to say how
    their settings differ)."""
    # Printed with the figures, not logged: what they leave out is part of them (--quiet
    # keeps the figures, so it keeps this too).
    if report["samples_without_rate"]:
        print(f"left out of every figure, no rate (their runs failed; {table}: status, "
              f"problems): {', '.join(report['samples_without_rate'])}")
    if report["results_not_expected"]:
        print(f"{len(report['results_not_expected'])} result(s) the expected counts do not "
              f"list, not scored: {', '.join(report['results_not_expected'][:10])}"
              + (", ... (every one in the JSON file's results_not_expected)"
                 if len(report["results_not_expected"]) > 10 else ""))
    if report["partial_samples"]:
        print(f"{report['partial_samples']} sample(s) not 'ok', scored as they stand "
              f"({table}: status, problems):")
        for sample, problems in report["partial_problems"].items():
            print(f"  {sample}: {problems}")
    reviewed = report["reviewed_samples"]  # (a review is final once signed off)
    if reviewed:
        waiting = report["samples_not_reviewed"]
        wait = "" if report["after_review"] else (
            "; the figures after review wait on " + ", ".join(waiting[:10])
            + (", ..." if len(waiting) > 10 else "") + " (a sample's review is final once "
            "signed off)")
        print(f"{reviewed} of {report['samples']} samples signed off{wait} ({table}: "
              "after_review_per_7_5_ml, review_complete)")
    elif report["samples"]:  # the docs' "the figures are the automatic counts", said
        print(f"none of the {report['samples']} samples is signed off: the figures are the "
              "automatic counts, before a person's review")
    undecided = report.get("samples_decided_not_final") or []
    if undecided:  # a review under way reads as none in the figures: said, not left silent
        print(f"{len(undecided)} sample(s) hold review decisions not signed off (or whose "
              "sign-off no longer holds), scored by their automatic counts: "
              + ", ".join(undecided[:10]) + (", ..." if len(undecided) > 10 else "")
              + f" ({table}: review_decisions, review_complete)")
    if report["made_by_several"]:
        log.warning("the samples' counts were made by more than one %s: the figures above "
                    "pool them", "; and more than one ".join(report["made_by_several"]))
        if summaries is not None and any(m.startswith("setting") for m in
                                         report["made_by_several"]):
            from ctcnet.inference.setting_differences import how_settings_differ

            fingerprints = {sample: summaries[sample].get("run_fingerprint") or {}
                            for sample in summaries
                            if sample not in report["samples_without_rate"]}
            log.warning("the runs' settings differ in: %s",
                        "; ".join(how_settings_differ(fingerprints)))
    if report.get("blood_volume_assumed"):
        log.warning("%s: cartridge.json stated no blood volume, 7.5 mL assumed: the rates per "
                    "7.5 mL (the limits, linearity, a comparison's rates) rest on it "
                    "(%s: blood_volume_stated)", ", ".join(report["blood_volume_assumed"][:10])
                    + (", ..." if len(report["blood_volume_assumed"]) > 10 else ""), table)


def _samples_of_nights(data: Path, find_samples) -> tuple[dict[str, Path], list[Path]]:
    """Sample folders of ``data`` and the predict ``--out`` folders they are in: ``data``
    itself, or the folders it holds (a spike-in study's nights, each run into its own
    ``--out``), pooled."""
    try:
        return find_samples(data), [data]
    except InputError:
        nights = [p for p in sorted(data.iterdir())
                  if p.is_dir() and (p / "run.json").is_file()] if data.is_dir() else []
        if not nights:
            raise
    folders: dict[str, Path] = {}
    for night in nights:
        for name, folder in find_samples(night).items():
            folders[f"{night.name}/{name}"] = folder
    return folders, nights
