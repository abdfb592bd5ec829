"""``ctcnet finetune``: adapt a model to a lab's labelled crops (e.g. from ``ctcnet crops``).

The same is available as a LightningCLI config (``ctcnet train --config
configs/finetune.yaml``) for runs that need every Trainer option; this command adds the
held-out comparison, recalibration and model card (see :mod:`ctcnet.training.finetune`).
"""

from __future__ import annotations

import argparse

from ctcnet.commands import arg_types
from ctcnet.commands.export import add_overwrite_argument, refuse_non_checkpoint_name
from ctcnet.commands.shared_options import add_pixel_size_argument, shipped_model_for_crops
from ctcnet.errors import InputError

HELP = ("Fine-tune a model on a lab's labelled crops; recalibrates (pooled with simulated "
        "crops when the labels are few) and writes a model card.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``ctcnet finetune`` to its subparser."""
    # The library's defaults, read when the parser is built (numpy comes with them).
    from ctcnet.training.finetune import FinetuneOptions

    d = FinetuneOptions()
    parser.add_argument("data", metavar="DATA", help="crop dataset folder (panel.json and "
                                                     "manifest.csv or class folders)")
    parser.add_argument("--out", required=True, help="model file to write (.pt); its card "
                                                     "goes beside it (.md, and .json, which "
                                                     "`ctcnet models` reads)")
    parser.add_argument("--base", "--model", dest="base", default=None,
                        help="model to start from, a shipped model's name or a file (--model, "
                             "as the other commands name it, is the same; default: the "
                             "shipped model whose channels the crops have, as predict "
                             "chooses)")
    parser.add_argument("--steps", type=arg_types.whole_at_least(1), default=d.steps,
                        help=f"optimiser steps (default {d.steps})")
    parser.add_argument("--train-blocks", type=arg_types.whole_at_least(0), default=0,
                        help="train only the last N backbone blocks (default 0: all)")
    parser.add_argument("--lr", type=arg_types.positive, default=d.lr, help=f"peak learning rate "
                                                               f"(default {d.lr})")
    parser.add_argument("--batch-size", type=int, default=d.batch_size,
                        help=f"crops per optimiser step (default {d.batch_size})")
    parser.add_argument("--simulated-per-class", type=arg_types.whole_at_least(0),
                        default=d.simulated_per_class,
                        help="simulated crops per class mixed into training (default: as "
                             "many as the data's mean per class, at most 100; 0: none)")
    parser.add_argument("--holdout", type=arg_types.decimal, default=d.holdout,
                        help=f"share of the crops held out for figures and calibration "
                             f"(default {d.holdout})")
    parser.add_argument("--sim-check-per-class", type=arg_types.whole_at_least(0),
                        default=d.sim_check_per_class,
                        help="simulated test crops per class to check nothing was forgotten "
                             f"(default {d.sim_check_per_class}; 0: skip)")
    parser.add_argument("--seed", type=arg_types.seed, default=d.seed,
                        help=f"random seed of the split, the simulated crops and the "
                             f"training (default {d.seed})")
    parser.add_argument("--device", default=d.device,
                        help=f"auto, cpu, cuda or cuda:N (default {d.device})")
    add_pixel_size_argument(parser)

    add_overwrite_argument(parser, "the model file and its card")


def run(args: argparse.Namespace) -> int:
    """Run ``ctcnet finetune``: adapt a model to a lab's labelled crops and write it with its
    card; returns the exit status."""
    # the library: imported when the command runs (see ctcnet.commands)
    from ctcnet.training.finetune import FinetuneOptions, finetune

    for bad, says in ((args.batch_size < 2,
                       f"--batch-size must be at least 2, got {args.batch_size}"),
                      (not 0 < args.holdout < 1,
                       f"--holdout must be a share between 0 and 1, got {args.holdout}")):
        if bad:
            raise InputError(says)
    refuse_non_checkpoint_name(args.out, "--out")
    _say_a_shipped_name(args.out)
    options = FinetuneOptions(steps=args.steps, train_blocks=args.train_blocks or None,
                              lr=args.lr, batch_size=args.batch_size,
                              simulated_per_class=None if args.simulated_per_class is None
                              else max(0, args.simulated_per_class),
                              holdout=args.holdout, sim_check_per_class=max(
                                  0, args.sim_check_per_class), seed=args.seed,
                              device=args.device, pixel_size=args.pixel_size)
    base = args.base or shipped_model_for_crops(args.data, "base", args.pixel_size)
    # Refused before the training if the model or its card exists (unless --overwrite), is
    # the base model, or could not be written (a folder, a missing or read-only folder).
    record = finetune(args.data, args.out, base, options, overwrite=args.overwrite)
    print(f"{result_line(record, args.out)}; {record['seconds']['total']:.0f} s -> "
          f"{args.out}")
    return 0


def result_line(record: dict, out) -> str:
    """What a fine-tune's console line says of its figures (``record``: :func:`finetune`'s),
    and a warning where the tuned model reads the held-out crops worse than its base."""
    held, calls = record["held_out"], record["held_out_calls"]
    line = (f"held-out macro-F1 of the calls (the markers taking part, as predict makes "
            f"them on a crop folder, at the balanced prior: not a cartridge's) "
            f"{calls['base']['macro_f1']:.4f} -> {calls['finetuned']['macro_f1']:.4f}, "
            f"of the network's own {held['base']['macro_f1']:.4f} -> "
            f"{held['finetuned']['macro_f1']:.4f}")
    absent = [name for name, n in record["data"]["held_out"]["per_class"].items() if not n]
    if absent:  # a macro-F1 of the classes held out alone (one class, once)
        line += f" (the held-out crops hold no {', '.join(absent)})"
    if calls["finetuned"]["macro_f1"] < calls["base"]["macro_f1"]:
        import logging

        logging.getLogger(__name__).warning(
            "%s: the fine-tuned model reads the held-out crops worse than its base (%.4f -> "
            "%.4f): compare the two on crops of your own (ctcnet evaluate) before using it",
            out, calls["base"]["macro_f1"], calls["finetuned"]["macro_f1"])
    sim = record["simulated_test"]
    if sim:
        line += (f"; simulated test {sim['base']['macro_f1']:.4f} -> "
                 f"{sim['finetuned']['macro_f1']:.4f}")
    if record["calibration"].get("skipped"):
        # (its own reason: too few held-out crops, or crops all called right already)
        line += f"; calibration skipped, the base model's kept ({record['calibration']['skipped']})"
    elif record["calibration"]:
        from ctcnet.evaluation.recalibration import describe

        line += f"; recalibrated: {describe(record['calibration'])}"
    return line


def _say_a_shipped_name(out) -> None:
    """Warn, before the work, of a fine-tune named like a shipped model: in ``$CTCNET_MODELS``
    the shipped one keeps the name, so this one would be offered by none."""
    import logging
    from pathlib import Path

    from ctcnet.nn.registry import PACKAGE_MODELS

    name = Path(out).stem
    if (PACKAGE_MODELS / f"{name}.json").is_file():
        logging.getLogger(__name__).warning(
            "--out names the model %r, as a shipped model is named: in $CTCNET_MODELS the "
            "shipped one keeps the name, so this one would be offered by none (--model takes "
            "its file all the same); another name offers it", name)
