"""``ctcnet robustness``: the robustness matrix of a model on labelled crops."""

from __future__ import annotations

import argparse

from ctcnet.commands import arg_types
from ctcnet.commands.report_folders import ROBUSTNESS, refuse_output_in_data, report_replaced
from ctcnet.commands.shared_options import (
    add_baseline_arguments,
    add_compensate_argument,
    add_pixel_size_argument,
    check_baseline_arguments,
    shipped_model_for_crops,
)

HELP = "Robustness matrix: flips and macro-F1 under physical perturbations, CNN and baselines."
FAMILIES = ("stain", "bleed", "nonspecific", "background", "optics", "camera", "export", "crop",
            "registration")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``ctcnet robustness`` to its subparser."""
    parser.add_argument("data", help="labelled crop dataset folder (class folders or "
                                     "manifest.csv, plus panel.json)")
    parser.add_argument("--model", help="ctcnet .pt or .onnx model, or a shipped model's name "
                                        "(default: the shipped model whose channels the crops "
                                        "have, as predict chooses)")
    parser.add_argument("--out", required=True, help="output folder for robustness.json/.png")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an earlier report in --out (default: refuse, naming it)")
    add_baseline_arguments(parser)
    parser.add_argument("--families", nargs="+", choices=FAMILIES, metavar="FAMILY",
                        help=f"only these perturbation families (of {', '.join(FAMILIES)})")
    parser.add_argument("--seed", type=arg_types.seed, default=0,
                        help="seed of the random perturbations (default 0)")
    add_compensate_argument(parser, "the CNN sees each perturbed crop with")
    add_pixel_size_argument(parser)
    parser.add_argument("--device", default="auto",
                        help="auto, cpu, cuda or cuda:N (default auto)")


def run(args: argparse.Namespace) -> int:
    """Run ``ctcnet robustness``: score a model on perturbed copies of a crop dataset and write
    the matrix; returns the exit status."""
    check_baseline_arguments(args)
    refuse_output_in_data(args.out, args.data)
    with report_replaced(args.out, args.overwrite, ROBUSTNESS):  # the earlier kept till then
        return _robustness(args)


def _robustness(args: argparse.Namespace) -> int:
    # the library: imported when the command runs (see ctcnet.commands)
    from ctcnet.evaluation.matrix import matrix_table, review_lines, robustness_dataset

    model = args.model or shipped_model_for_crops(args.data, pixel_size=args.pixel_size)
    matrix = robustness_dataset(args.data, model, args.out,
                                with_baselines=not args.no_baselines,
                                baseline_train=args.baseline_train,
                                n_train_per_class=args.train_per_class, seed=args.seed,
                                device=args.device, families=args.families,
                                compensate=args.compensate, pixel_size=args.pixel_size)
    print("\n".join(matrix_table(matrix)))
    print("review flags:")
    for line in review_lines(matrix):
        print(f"  {line}")
    for note in matrix["notes"]:
        print(f"note: {note}")
    check = matrix["check"]
    if check.get("clean_below_target") is not None:  # before any perturbation: said first
        print(f"unperturbed: macro-F1 {check['clean_below_target']:.4f} under the target "
              f"{check['targets']['min_macro_f1']}; range ends no worse than it are not listed")
    verdict = ("all robustness targets met" if check["passed"] else
               f"{len(check['failures'])} target(s) missed at range ends") + (
        " (on too few crops to tell: the note above)" if check.get("too_few_crops") else "")
    print(f"{verdict}; report: {args.out}/robustness.json, {args.out}/robustness.png")
    for failure in check["failures"]:  # with the commonest flips: which marker misled it
        print(f"  - {failure}")
    return 0
