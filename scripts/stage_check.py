"""The quick stage check (CI): a small simulated cartridge through ``ctcnet predict``, each
stage's time per event as a multiple of the model's floor measured in the same run, failing
when a stage's multiple grows past 1.5x its record in ``docs/benchmarks-stages.json``
(:mod:`ctcnet.benchmark.stages`).

    python scripts/stage_check.py [--record] [--model PATH] [--runs 5] [--baseline PATH]

``--record`` rewrites the record from this machine (on a quiet machine, after a change that
makes a stage faster or slower on purpose); ``--record --add-machine`` keeps the machines of
other CPUs recorded before beside it (machines differ in how numpy compares with
onnxruntime): a machine is held to its own CPU's record (name and model), one of a CPU not
recorded to the largest multiple any measured; ``--record --add-ratios`` adds to this
machine's record only the ratios it lacks (a ratio added to the check), the stages' record
left as it was. Beside the stages it holds the work around the network over the network's
own time, and predict's time over the classic gate's on the same cartridge
(``ctcnet.evaluation.classic_gate``, timed on a few of the runs: about a second).
Exits 1 when a stage or ratio grew past the tolerance.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ctcnet.benchmark.stages import TOLERANCE, StageCheckSettings, run_check
from ctcnet.commands.arg_types import whole_at_least
from ctcnet.inference.backends import default_model_path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    """Time the stages and check them against the recorded multiples (or record them with
    ``--record``); returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", type=Path, default=ROOT / "docs" / "benchmarks-stages.json")
    parser.add_argument("--model", type=Path, default=None,
                        help="ONNX model (default: the shipped model's export)")
    parser.add_argument("--runs", type=whole_at_least(1, "timed runs"),
                        default=StageCheckSettings.runs,
                        help="timed runs after the warm-up (medians over them)")
    parser.add_argument("--tolerance", type=float, default=TOLERANCE)
    parser.add_argument("--record", action="store_true",
                        help="write this run's multiples as the record instead of checking")
    parser.add_argument("--add-machine", action="store_true",
                        help="with --record: keep the machines of other CPUs recorded before "
                             "(a machine is held to its own CPU's record)")
    parser.add_argument("--add-ratios", action="store_true",
                        help="with --record: add only the ratios this machine's record lacks")
    parser.add_argument("--peer-runs", type=whole_at_least(0, "peer runs"),
                        default=StageCheckSettings.peer_runs,
                        help="timed runs the classic gate is timed after (0: none)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    model = args.model or default_model_path("onnx")
    settings = StageCheckSettings(runs=args.runs, peer_runs=min(args.peer_runs, args.runs))
    return run_check(model, args.baseline, settings, record=args.record,
                     tolerance=args.tolerance, add_machine=args.add_machine,
                     add_ratios=args.add_ratios)


if __name__ == "__main__":
    sys.exit(main())
