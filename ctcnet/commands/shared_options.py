"""The options several commands take alike (``--compensate``, ``--pixel-size``, ``--prior``,
``--network-calls-only``, the baselines' options), each added and checked one way, and the
shipped model a crop folder's channels choose, as predict, evaluate, robustness and finetune
say it."""

from __future__ import annotations

import argparse

from ctcnet.errors import InputError


def add_compensate_argument(parser: argparse.ArgumentParser, who: str) -> None:
    """``--compensate`` / ``--no-compensate`` (default: as the model was trained), shared by
    predict, evaluate and robustness."""
    parser.add_argument("--compensate", action=argparse.BooleanOptionalAction, default=None,
                        help=f"{who} CK's spillover into the CD45, platelet and neutrophil "
                             "channels taken off, measured on the scan's own CK+ events (12 "
                             "frames of a cartridge; each sample_id of a crop set); default: "
                             "as the model was trained (off for the shipped models; "
                             "docs/robustness_matrix.md); reports record what was taken off")


def add_pixel_size_argument(parser: argparse.ArgumentParser) -> None:
    """``--pixel-size``: a crop set's um per pixel where its panel.json does not state it (or
    states it wrongly), ``auto`` to estimate it from the nuclei or ``fit`` for a scale per
    crop; shared by every command that reads crop folders (predict, evaluate, robustness,
    finetune), whose messages name it (``ctcnet.detect.pixel_size.PIXEL_SIZE_OPTION``)."""
    parser.add_argument("--pixel-size", default=None, metavar="UM|auto|fit",
                        type=_pixel_size_option,
                        help="crop folders: um per pixel of the crops (published crops rarely "
                             "state it), 'auto' to estimate it from the nuclei (one scale "
                             "for the folder), or 'fit' for crops each scaled to fit its cell "
                             "(a scale per crop: every cell read at one size); default: "
                             "panel.json's")


def add_network_calls_argument(parser: argparse.ArgumentParser) -> None:
    """``--network-calls-only``: a crop set's calls without the markers taking part; shared by
    predict and evaluate."""
    parser.add_argument("--network-calls-only", action="store_true",
                        help="crop folders: the network's call alone (default: a clear CK+ "
                             "CD45- nucleated cell is called ctc and a CD45+ one never ctc, by "
                             "the markers the guard measures, whatever the network says); the "
                             "guard's flags still send crops to review")


def _pixel_size_option(text: str):
    # the library: imported when the command runs (see ctcnet.commands)
    from ctcnet.detect.pixel_size import pixel_size_option

    try:  # the one parser, which ctcnet train's data.pixel_size goes through too
        return pixel_size_option(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def add_prior_argument(parser: argparse.ArgumentParser) -> None:
    """``--prior``: the class prior calls are made at (``ctcnet.nn.calls.prior_rule``), shared
    by predict and evaluate so both call the same crops alike."""
    parser.add_argument("--prior", default=None, metavar="PRIOR",
                        help="class prior of the calls: 'cartridge' (the model's decision rule "
                             "fitted at cartridge prevalence, where debris outnumbers CTCs "
                             "~1000x), 'balanced' (no reweighting: the top calibrated "
                             "probability), or the data's class frequencies, e.g. "
                             "ctc=0.01,cluster=0.005 (classes not named share the rest). "
                             "Default: cartridge for cartridges, balanced for crop sets; "
                             "predict's summary.json and evaluate's report.json record "
                             "the prior used")


def add_baseline_arguments(parser: argparse.ArgumentParser) -> None:
    """The baseline options ``ctcnet evaluate`` and ``ctcnet robustness`` share."""
    parser.add_argument("--no-baselines", action="store_true",
                        help="skip the marker gate and the feature classifier")
    parser.add_argument("--baseline-train", metavar="DIR",
                        help="labelled crops to fit the baselines on (default: rows with split "
                             "'train' in DATA, else crops simulated for the model's panel)")
    parser.add_argument("--train-per-class", type=int, default=300,
                        help="simulated baseline training crops per class (default 300)")


def check_baseline_arguments(args: argparse.Namespace) -> None:
    """Refuse, before any work, a baseline training set too small to fit the feature
    classifier on (the ``--out`` folder is the command's
    :func:`~ctcnet.commands.report_folders.report_replaced`'s to check)."""
    if args.train_per_class < 10:
        raise InputError(f"--train-per-class must be at least 10, got {args.train_per_class}")


def shipped_model_for_crops(data, role: str = "model", pixel_size=None) -> str:
    """The name of the shipped model whose channels a crop folder has, by name, as predict and
    evaluate choose it, said on stderr (``role``: what it is to the command, e.g. ``base``;
    ``pixel_size``: the command's ``--pixel-size``, for a panel.json that lacks one)."""
    import sys
    from pathlib import Path

    from ctcnet.inference.model_choice import choose_for_inputs

    chosen = choose_for_inputs([], [Path(data)], pixel_size, f"the crops of {data}")
    print(f"{role}: {chosen.name} ({chosen.origin}; fits the crops' channels)", file=sys.stderr)
    return chosen.name
