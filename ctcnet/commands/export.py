"""``ctcnet export``: a checkpoint to a verified ONNX file with its model spec embedded.

Also what the commands that write a model check of its name
(:func:`refuse_non_checkpoint_name`), and the ``--overwrite`` flag of the commands that write
a named output (export, finetune, simulate): an output that exists is refused by name unless
it is given (:func:`ctcnet.io.atomic.refuse_existing`, which ``export_onnx`` and ``finetune``
apply from Python too), as ``ctcnet predict`` refuses another run's journal in its ``--out``.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from ctcnet.commands import arg_types
from ctcnet.errors import InputError

MAX_F1_DROP = 0.5  # points of macro-F1 an int8 export may lose (--max-f1-drop)


def add_overwrite_argument(parser: argparse.ArgumentParser, what: str) -> None:
    """Add ``--overwrite``: replace ``what`` if it exists, where the default refuses."""
    parser.add_argument("--overwrite", action="store_true",
                        help=f"replace {what} if it exists (default: refuse, naming it)")


def refuse_non_checkpoint_name(path, option: str) -> None:
    """Refuse an ONNX name for a torch checkpoint: the file written would fail later as "not
    a loadable ONNX model". A checkpoint is ``.pt``; ``ctcnet export`` writes its ONNX file."""
    
    from ctcnet.errors import InputError

    if Path(path).suffix.lower() == ".onnx":
        raise InputError(f"{option} names the model's checkpoint: give it a .pt name and "
                         f"export it with `ctcnet export MODEL.pt --out MODEL.onnx` (got "
                         f"{Path(path).name!r})")


HELP = "Export a checkpoint to ONNX (fp32, fp16 or int8) with its spec embedded, verified."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``ctcnet export`` to its subparser."""
    parser.add_argument("checkpoint", help="ctcnet .pt model, Lightning .ckpt or a shipped "
                                           "model's name (see `ctcnet models`)")
    parser.add_argument("--out", help="output .onnx file (default: the checkpoint's name with "
                                      ".onnx beside it; for a shipped model's name, in the "
                                      "current folder)")
    parser.add_argument("--opset", type=int, default=18, help="ONNX opset (default 18)")
    precision = parser.add_mutually_exclusive_group()
    precision.add_argument("--fp16", action="store_true",
                           help="float16 backbone (normalisation stays float32)")
    precision.add_argument("--int8", metavar="CALIB_DATA",
                           help="static int8: calibration crops from a crop dataset folder or "
                                "'simulate[:N]'; refused if macro-F1 drops by more than the limit")
    parser.add_argument("--max-f1-drop", type=arg_types.decimal, default=None,
                        help=f"largest macro-F1 drop (points) an int8 model may have (default "
                             f"{MAX_F1_DROP})")
    parser.add_argument("--seed", type=arg_types.seed, default=0,
                        help="seed of the verification crops (default 0)")
    parser.add_argument("--markers", action="store_true",
                        help="the graph also gives the guard's marker measurements of each "
                             "crop (output 'measurements') and, where the model carries a "
                             "marker fusion, the fused probabilities: a crop set's "
                             "('fused_probabilities'), a cartridge's "
                             "('scan_fused_probabilities', what predict's review band reads), "
                             "checked against ctcnet's own; fp32 and fp16 only; for instrument "
                             "software (ctcnet predict measures in numpy and runs the plain "
                             "export several times faster)")
    add_overwrite_argument(parser, "the .onnx file")


def run(args: argparse.Namespace) -> int:
    """Run ``ctcnet export``: export a checkpoint to ONNX (fp32, fp16 or calibrated int8) and
    print the check report; returns the exit status."""
    # the library: imported when the command runs (see ctcnet.commands)
    from ctcnet.deploy.export import export_onnx

    # Said before any work: the drop is checked at the end of an int8 export's minutes.
    if args.max_f1_drop is not None and not args.int8:
        raise InputError("--max-f1-drop limits an int8 export's drop (--int8 CALIB_DATA); "
                         "the fp32 and fp16 files are checked against torch instead")
    if args.max_f1_drop is None:
        args.max_f1_drop = MAX_F1_DROP
    if not (math.isfinite(args.max_f1_drop) and args.max_f1_drop >= 0):
        raise InputError(f"--max-f1-drop {args.max_f1_drop:g}: a drop in macro-F1 points, 0 "
                         "or more (0: no drop at all)")
    # (A shipped model's name, or its checkpoint: exported into the current folder.)
    precision = "fp16" if args.fp16 else "int8" if args.int8 else "fp32"
    report = export_onnx(args.checkpoint, args.out, opset=args.opset, precision=precision,
                         calibration=args.int8, max_f1_drop=args.max_f1_drop, seed=args.seed,
                         overwrite=args.overwrite, markers=args.markers)
    print("\n".join(report.lines()))
    return 0
