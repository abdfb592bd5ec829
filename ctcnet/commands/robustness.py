"""``ctcnet robustness``: the robustness matrix of a model on labelled crops."""

from __future__ import annotations

import argparse

HELP = "Robustness matrix: flips and macro-F1 under physical perturbations, CNN and baselines."
FAMILIES = ("stain", "bleed", "nonspecific", "background", "optics", "camera", "export", "crop")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data", help="labelled crop dataset folder (class folders or "
                                     "manifest.csv, plus panel.json)")
    parser.add_argument("--model", help="ctcnet .pt or .onnx model (default: the shipped model)")
    parser.add_argument("--out", required=True, help="output folder for robustness.json/.png")
    parser.add_argument("--no-baselines", action="store_true",
                        help="skip the marker gate and the feature classifier")
    parser.add_argument("--baseline-train", metavar="DIR",
                        help="labelled crops to fit the baselines on (default: rows with split "
                             "'train' in DATA, else crops simulated for the model's panel)")
    parser.add_argument("--train-per-class", type=int, default=300,
                        help="simulated baseline training crops per class (default 300)")
    parser.add_argument("--families", nargs="+", choices=FAMILIES, metavar="FAMILY",
                        help=f"only these perturbation families (of {', '.join(FAMILIES)})")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random perturbations")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")


def run(args: argparse.Namespace) -> int:
    from ctcnet.errors import InputError
    from ctcnet.evaluation.matrix import matrix_table, robustness_dataset

    if args.train_per_class < 10:
        raise InputError(f"--train-per-class must be at least 10, got {args.train_per_class}")
    matrix = robustness_dataset(args.data, args.model, args.out,
                                with_baselines=not args.no_baselines,
                                baseline_train=args.baseline_train,
                                n_train_per_class=args.train_per_class, seed=args.seed,
                                device=args.device, families=args.families)
    print("\n".join(matrix_table(matrix)))
    for note in matrix["notes"]:
        print(f"note: {note}")
    check = matrix["check"]
    verdict = "all issue-12 targets met" if check["passed"] else \
        f"{len(check['failures'])} target(s) missed at range ends"
    print(f"{verdict}; report: {args.out}/robustness.json, {args.out}/robustness.png")
    return 0
