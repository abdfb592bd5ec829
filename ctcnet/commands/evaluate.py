"""``ctcnet evaluate``: metrics, baselines, calibration and figures for a model on labelled
crops; on simulated cartridges with ground truth, called versus true counts."""

from __future__ import annotations

import argparse
import logging
import re
import sys

from ctcnet.commands import arg_types
from ctcnet.commands.evaluate_calibration import (
    calibrate,
    check_calibration_crops,
    check_save_model,
)
from ctcnet.commands.evaluate_figures import summary_lines, warnings_of
from ctcnet.commands.evaluate_spikes import add_expected_arguments
from ctcnet.commands.report_folders import (
    file_kept_aside,
    refuse_output_in_data,
    report_replaced,
)
from ctcnet.commands.shared_options import (
    add_baseline_arguments,
    add_compensate_argument,
    add_network_calls_argument,
    add_pixel_size_argument,
    add_prior_argument,
    check_baseline_arguments,
)
from ctcnet.core.json_text import strict_json
from ctcnet.core.log_capture import kept_warnings
from ctcnet.errors import CtcnetError, InputError, check_device_name
from ctcnet.io import atomic
from ctcnet.io.input_lists import expand_list_files
from ctcnet.nn.registry import resolve_model

log = logging.getLogger(__name__)

HELP = ("Evaluate a model on labelled crops (against baselines, with calibration), or on "
        "simulated cartridges (called versus true counts).")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``ctcnet evaluate`` to its subparser."""
    parser.add_argument("data", help="labelled crop dataset folder (class folders or "
                                     "manifest.csv, plus panel.json), or simulated cartridges "
                                     "with ground_truth.csv (a cartridge, a folder of them or "
                                     "a list file): then called versus true counts")
    parser.add_argument("--model", help="a shipped model's name (see `ctcnet models`), a .pt "
                                        "checkpoint or an .onnx export (default: the shipped "
                                        "model whose channels the data has)")
    parser.add_argument("--out", required=True, help="output folder: report.json, "
                        "predictions.csv, index.html and PNGs for crops; counts.json, "
                        "counts.png and each cartridge's run for cartridges")
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object "
                        "(report.json's or counts.json's; of crops, with the network's "
                        "macro_f1, accuracy, per_class and ece, cnn's, at its top too)")
    parser.add_argument("--split", metavar="NAME[,NAME]", type=_split_names,
                        help="score only the crops of these manifest.csv splits (e.g. test); "
                             "default: every crop but the split=train ones the baselines fit "
                             "on")
    add_expected_arguments(parser)
    add_baseline_arguments(parser)
    parser.add_argument("--calibrate-on", metavar="VAL_DIR",
                        help="labelled validation crops: fit the temperature and the review "
                             "threshold on them (under 100, pooled with simulated crops; of "
                             "two classes at least), save the calibrated model to "
                             "--save-model, and evaluate that")
    parser.add_argument("--save-model", metavar="PATH", help="where --calibrate-on writes "
                        "the calibrated model (never the --model file itself)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an earlier report in --out and the --save-model file "
                             "(default: refuse, naming them)")
    parser.add_argument("--review-precision", type=arg_types.share, default=0.99,
                        help="precision the automatic calls above the review band must reach "
                             "on the validation crops (default 0.99)")
    add_compensate_argument(parser, "the CNN sees")
    add_prior_argument(parser)
    add_pixel_size_argument(parser)
    add_network_calls_argument(parser)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    parser.add_argument("--batch-size", type=int, default=256, help="crops per model call")


def keep_warnings(report: dict, warnings: list[str], out_dir) -> None:
    """Keep ``warnings`` in the report: its ``warnings`` list, in report.json too, which the
    evaluation wrote before they were known."""
    from pathlib import Path

    report["warnings"] = list(dict.fromkeys([*report.get("warnings", []), *warnings]))
    atomic.atomic_write_text(Path(out_dir) / "report.json", strict_json(report, indent=2) + "\n")


def _note_chosen(args: argparse.Namespace, name: str) -> None:
    """Say which shipped model was chosen for the data, when none was named."""
    from ctcnet.commands.models import say_model

    if args.model is None:
        say_model(None, name)


def run(args: argparse.Namespace) -> int:
    """Run ``ctcnet evaluate``: score a model on a labelled crop dataset or on simulated
    cartridges and write the report (an earlier one in ``--out`` kept until then, with
    ``--overwrite``); returns the exit status."""
    check_device_name(args.device)
    if args.batch_size < 1:
        raise InputError(f"--batch-size must be at least 1, got {args.batch_size}")
    check_baseline_arguments(args)
    refuse_output_in_data(args.out, [args.data, args.calibrate_on, args.expected])
    with report_replaced(args.out, args.overwrite):  # an earlier report kept until then
        return _evaluate(args)


def _evaluate(args: argparse.Namespace) -> int:
    # the library: imported when the command runs (see ctcnet.commands)
    from ctcnet.evaluation.evaluate import evaluate_dataset
    from ctcnet.inference.inputs import resolve_inputs
    from ctcnet.inference.model_choice import choose_for_inputs
    from ctcnet.report.crop_set_page import write_evaluation_page

    if args.expected:  # a predict output folder scored against the cells spiked
        from ctcnet.commands.evaluate_spikes import run_spike_in

        return run_spike_in(args)  # or against another method's counts
    if getattr(args, "count_class", None) is not None:  # (cartridges' figures give every class)
        raise InputError("--class names the class --expected's figures count: give --expected "
                         "(crops and simulated cartridges are scored in every class)")
    cartridges, datasets = resolve_inputs(expand_list_files([args.data]))
    name = args.model
    if name is None:  # the shipped model whose channels the data has, by name
        name = choose_for_inputs(cartridges, datasets, args.pixel_size,
                                 f"the data {args.data}").name
    if cartridges:
        refuse_crop_options(args)
        _note_chosen(args, name)
        args.model = name
        return _run_cartridges(args, cartridges)
    refuse_options_crops_ignore(args)
    refuse_crops_without_torch()
    model = resolve_model(name)
    if args.calibrate_on:  # refused before any work (or note): one line says why
        check_save_model(args, model)
        check_calibration_crops(args.calibrate_on)
    _note_chosen(args, name)
    warnings = []

    def page(out_dir, table, crops, spec, report):  # the console's figures on the page too
        report = {**report, "warnings": list(dict.fromkeys(
            [*report.get("warnings", []), *warnings, *said, *warnings_of(report)]))}
        return write_evaluation_page(out_dir, table, crops, spec, report,
                                     figures=summary_lines(report, args.calibrate_on))

    # What reading the crops (the calibration's too) warned of is kept in the report and on its
    # page, as predict keeps it: a record scored 21 of a folder's 24 crops, 3 named on the
    # console alone. A --save-model replaced is put back where the evaluation does not finish.
    with kept_warnings() as said, file_kept_aside(args.save_model if args.calibrate_on
                                                  else None):
        if args.calibrate_on:
            model = calibrate(args, model, warnings)
        report = evaluate_dataset(
            args.data, model, args.out, with_baselines=not args.no_baselines,
            baseline_train=args.baseline_train, n_train_per_class=args.train_per_class,
            device=args.device, batch_size=args.batch_size, compensate=args.compensate,
            prior=args.prior, pixel_size=args.pixel_size,
            markers_decide=not args.network_calls_only, splits=args.split, page=page,
            progress=sys.stderr.isatty())  # bars for a person at a terminal, not in a pipe
    warnings += [w for w in said if w not in warnings]
    if args.model is not None:  # (once read: a refusal is one line) two logs told apart
        from ctcnet.commands.models import say_model

        # The figures are the calibrated model's where --calibrate-on made one.
        say_model(args.save_model if args.calibrate_on else args.model,
                  calibrated_from=args.model if args.calibrate_on else None)
    for note in warnings_of(report):
        log.warning("%s", note)
        warnings.append(note)
    if warnings:
        keep_warnings(report, warnings, args.out)
    if args.json:
        print(strict_json({"macro_f1": report["cnn"]["macro_f1"],
                          "accuracy": report["cnn"]["accuracy"],
                          "per_class": report["cnn"]["per_class"],
                          "ece": report["cnn"]["ece"], **report}))
    else:
        print("\n".join(summary_lines(report, args.calibrate_on)))
        print(f"report: {args.out}/report.json; the crops called other than their label: "
              f"{args.out}/index.html")
    return 0


def refuse_crops_without_torch() -> None:
    """Scoring a labelled crop set needs the full install (torch for the checkpoint and the
    calibration, scikit-learn for the baselines and AUCs): said so, with what this install
    does evaluate, before any work."""
    from ctcnet.core.install_hint import install_command
    from ctcnet.inference.backends import has_torch

    if not has_torch():
        raise CtcnetError("scoring labelled crops needs torch and scikit-learn, which this "
                          f"install lacks: {install_command('all')}; this install evaluates "
                          "simulated cartridges (ctcnet evaluate CARTRIDGES) and a run's "
                          "counts (--expected)")


# Options only a crop set's evaluation reads, with their defaults: given with cartridges they
# would be ignored (a calibrated model never written, a baseline folder never read).
# (--overwrite is read by both: with cartridges, a cartridge's folder holding another run's
# outputs is done again; one of the same run is resumed either way.)
CROP_ONLY_OPTIONS = {"calibrate_on": None, "save_model": None,
                     "review_precision": 0.99, "pixel_size": None, "network_calls_only": False,
                     "batch_size": 256, "no_baselines": False, "baseline_train": None,
                     "train_per_class": 300, "split": None}


def _split_names(text: str) -> list[str]:
    """``--split``'s value: split names, comma-separated."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError("name a split (train, val, test, or your manifest's)")
    return names


def refuse_crop_options(args: argparse.Namespace) -> None:
    """Refuse, naming them, the crop-set options given for cartridges (which read none)."""
    given = [f"--{name.replace('_', '-')}" for name, default in CROP_ONLY_OPTIONS.items()
             if getattr(args, name, default) != default]
    if given:
        raise InputError(f"{', '.join(given)}: crop-set option{'s' if len(given) > 1 else ''}"
                         f", not read for cartridges ({args.data} holds cartridges); drop "
                         f"{'them' if len(given) > 1 else 'it'}, or pass a crop dataset")


def refuse_options_crops_ignore(args: argparse.Namespace) -> None:
    """Refuse, naming them, options a crop set's evaluation would not read: ``--cutoffs`` (a
    cartridge evaluation's or a comparison's), and ``--save-model`` or ``--review-precision``
    without ``--calibrate-on`` (no calibrated model made: a user who forgot it believed one
    was saved)."""
    unread = {"--cutoffs": (args.cutoffs is not None, "cartridges' and a comparison's"),
              "--save-model": (args.save_model is not None and not args.calibrate_on,
                               "where --calibrate-on writes its model"),
              "--review-precision": (args.review_precision != 0.99 and not args.calibrate_on,
                                     "what --calibrate-on fits the review threshold for")}
    given = [f"{option} ({why})" for option, (said, why) in unread.items() if said]
    if given:
        raise InputError(f"not read for a crop set as asked: {'; '.join(given)}; drop "
                         f"{'them' if len(given) > 1 else 'it'}", args.data)


def _natural(name: str) -> list:
    """A sample id's sort key with its numbers read as numbers (L20 before L100)."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _run_cartridges(args: argparse.Namespace, cartridges: list) -> int:
    """Cartridge-level evaluation: counts per class, automatic and after review."""
    # the library: imported when the command runs (see ctcnet.commands)
    from ctcnet.evaluation.cartridge_evaluation import evaluate_cartridges
    from ctcnet.evaluation.counts import POORLY_MATCHED_SHARE, agreement_text, share_ci
    from ctcnet.inference.counts import per_volume_text
    from ctcnet.nn.calls import COUNTED_CLASSES

    report = evaluate_cartridges(cartridges, args.model, args.out, device=args.device,
                                 compensate=args.compensate, prior=args.prior,
                                 cutoffs=args.cutoffs, resume=True,
                                 overwrite=args.overwrite)
    if report["cartridges"] and len(report.get("left_out", [])) == len(report["cartridges"]):
        # (its bias was None: a traceback after the table; with --json, success and nulls)
        raise InputError("no cartridge had a frame read: nothing to score (each one's "
                         "summary.json says why)")
    if args.json:
        print(strict_json(report))
        return 0
    name = report["positive_class"]
    # Every counted class a cartridge reports (CTCs, and clusters where the model has them):
    # a count off in clusters is as much the lab's business as one in CTCs.
    first = report["cartridges"][0]["true_per_7_5_ml"] if report["cartridges"] else {}
    shown = [k for k in report.get("counted_classes", [name, *COUNTED_CLASSES]) if k in first]
    print(f"{'':16s} " + " ".join(f"{k + ' per 7.5 mL':>21s}" for k in shown))
    print(f"{'cartridge':16s} " + " ".join(f"{'true':>6s} {'auto':>6s} {'review':>7s}"
                                          for _ in shown))
    partial = {c["sample_id"] for c in report["cartridges"]
               if c.get("status", "ok") not in ("ok", "failed")}
    left_out = report.get("left_out", [])
    for c in sorted(report["cartridges"], key=lambda c: _natural(c["sample_id"])):
        mark = "*" if c["sample_id"] in partial else ""  # of the frames read
        print(f"{c['sample_id'][:16 - len(mark)] + mark:16s} " + " ".join(
            f"{'n/a':>6s} {'n/a':>6s} {'n/a':>7s}" if c["sample_id"] in left_out else
            f"{per_volume_text(c['true_per_7_5_ml'][k]):>6s} "
            f"{per_volume_text(c['automatic_per_7_5_ml'][k]):>6s} "
            f"{per_volume_text(c['after_review_per_7_5_ml'][k]):>7s}" for k in shown))
    if left_out:
        print(f"left out of every figure below: {', '.join(left_out)} (no frame read: no "
              "blood counted; why: its summary.json)")
    # "review": the count had every flagged event been resolved to its true class, a perfect
    # reviewer's; what a person's review comes to is measured by their decisions, not here.
    print("review: the count had a reviewer resolved every flagged event to its true class"
          + ("; *: partial, its summary.json's problems or skipped frames say why (where "
             "frames were skipped, truth and calls are of the frames read)" if partial else ""))
    for counted in report.get("counted_classes", [name]):
        for mode in ("automatic", "after_review"):
            entry = report["per_class"][counted][mode]
            ba = entry["bland_altman"]
            limits = (f"limits {ba['lower']:+.2f} to {ba['upper']:+.2f}"
                      if ba["lower"] is not None else "limits need 2 cartridges or more")
            print(f"{mode} ({counted}): bias {ba['bias']:+.2f} ({limits}); "
                  f"{agreement_text(entry)}")
    print("by subtype (counted / true, + shown): " + ", ".join(
        f"{k} {v['counted']}/{v['true']}" + (f" +{v['shown']}" if v["shown"] else "")
        for k, v in report.get("by_subtype", {}).items()))
    match = report.get("detection") or {}
    if match.get("true"):
        print(f"true cells within {match['radius_um']:g} um of an event: {match['matched']}/"
              f"{match['true']} ({match['share']:.0%})"
              + (f"; under {POORLY_MATCHED_SHARE:.0%} in {', '.join(match['poorly_matched'])}:"
                 " truth and frames do not line up there" if match["poorly_matched"] else ""))
    false = report.get("false_calls_per_1000_events", {})
    print("false calls per 1,000 events: " + ", ".join(f"{k} {v:.3f}"
                                                        for k, v in false.items()))
    # Pooled over the cartridges, each share with its 95 % interval: what a validation
    # report states of the automatic count.
    for k in report.get("counted_classes", []):
        auto = report["per_class"][k]["automatic"]
        if "recall" in auto:
            print(f"{k} automatic, pooled: " + "; ".join(
                f"{label} {auto[key]['n']}/{auto[key]['of']}{share_ci(auto[key])}"
                for key, label in (("recall", "recall"), ("precision", "precision"),
                                   ("counted_or_shown", "counted or shown"))))
    guard = report.get("guard")
    # Each counted class the guard held calls of (a lab's ctc_emt beside ctc), ctc's always.
    said = [(k, g, sum(c.get("held_by_guard", {}).get(k, 0) for c in report["cartridges"]))
            for k, g in report.get("guard_by_class", {name: guard} if guard else {}).items()]
    print(f"sent to review: {report['flagged_share']:.1%} of events (every reason)"
          + ("; marker guard: " + "; ".join(
              f"{held} {k} calls held apart from the automatic count ({g['right_held']} of "
              f"them right: its cost), {g['wrong_held']} of {g['wrong_calls']} wrong {k} "
              "calls caught" for k, g, held in said
              if k == name or held or g["wrong_calls"])
             + f"; {guard['flag_share']:.1%} of events flagged by the guard alone"
             if guard else ""))
    out = str(args.out).rstrip("/") or "/"
    print(f"report: {out}/counts.json, {out}/counts.png")
    return 0
