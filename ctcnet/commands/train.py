"""``ctcnet train``: the same as ``python train.py``; every argument goes to LightningCLI."""

from __future__ import annotations

import argparse

HELP = "Train a classifier with Lightning (LightningCLI; YAML configs in configs/)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Take every argument as it is: LightningCLI, not argparse, parses them."""
    parser.add_argument("cli_args", nargs=argparse.REMAINDER, metavar="ARGS",
                        help="LightningCLI arguments, e.g. --config configs/default.yaml "
                             "--trainer.max_epochs=5 (see ctcnet train --help)")
    # Every option (--config, --trainer.max_epochs=..., --help) belongs to LightningCLI, not to
    # argparse: with no prefix characters this subparser treats them all as plain arguments.
    parser.prefix_chars = "\x00"


def run(args: argparse.Namespace) -> int:
    """Run ``ctcnet train``: hand the arguments to the LightningCLI entry point; returns the exit
    status."""
    # the library: imported when the command runs (see ctcnet.commands)
    from ctcnet.training.cli import main

    return main(list(args.cli_args), prog="ctcnet train")
