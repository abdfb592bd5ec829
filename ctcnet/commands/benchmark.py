"""``ctcnet benchmark``: measure speed and memory and write docs/benchmarks.md + .json."""

from __future__ import annotations

import argparse
from pathlib import Path

from ctcnet.commands.arg_types import whole_at_least
from ctcnet.errors import InputError
from ctcnet.io.atomic import check_output_folder

HELP = "Measure speed and memory of the whole product on this machine."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``ctcnet benchmark`` to its subparser."""
    parser.add_argument("--model", default=None,
                        help="model to measure: a shipped model's name or a file (default: "
                             "the shipped default model)")
    parser.add_argument("--out", default=None,  # (as typed: '' is refused, not Path('.'))
                        help="folder for benchmarks.md and benchmarks.json (default: "
                             "benchmark; with --quick, benchmark-quick; the project's record "
                             "is --out docs)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny inputs: checks the benchmark runs (for CI); numbers mean "
                             "nothing")
    parser.add_argument("--frames", default=None,
                        help="comma-separated cartridge sizes in frames (default "
                             "10,175,1000; with --quick 2,3)")
    parser.add_argument("--repeats", type=whole_at_least(1, "--repeats is a whole number"),
                        default=None, help="repeats per timed run of the classification "
                        "and peer measurements and of the middle cartridge size's defaults "
                        "(the other cartridge runs and the training section's: one each)")
    parser.add_argument("--sections", default="classify,cartridge,train",
                        help="comma-separated subset of classify,cartridge,train (the "
                             "benchmark's own processes peak at about 5 GB of memory, "
                             "classify's with every ONNX precision loaded: ten times predict's "
                             "peaks it reports; a machine sized for predict alone needs less)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="keep simulated cartridges here between runs (default: a temp dir)")


# The largest cartridge the benchmark makes (hard links to one simulated cartridge's frames).
MAX_FRAMES = 10_000


def run(args: argparse.Namespace) -> int:
    """Run ``ctcnet benchmark``: measure speed and memory on this machine and write benchmarks.md
    and .json; returns the exit status."""
    # the library: imported when the command runs (see ctcnet.commands)
    from ctcnet.benchmark import BenchSettings, run_benchmark
    from ctcnet.inference.backends import default_model_path
    from ctcnet.nn.registry import resolve_model

    settings = BenchSettings.quick_settings() if args.quick else BenchSettings()
    if args.frames is not None:  # ('' is no size: it ran the whole default benchmark)
        try:
            settings.frame_counts = tuple(int(v) for v in args.frames.split(","))
        except ValueError:
            raise InputError(f"--frames wants comma-separated integers, got {args.frames!r}"
                             ) from None
        if min(settings.frame_counts) < 1:  # before any work, not after the first section
            raise InputError(f"--frames: a cartridge needs at least 1 frame, got {args.frames}")
        if max(settings.frame_counts) > MAX_FRAMES:  # (linked from one cartridge's frames)
            raise InputError(f"--frames: at most {MAX_FRAMES:,} frames a cartridge (a scan's "
                             f"are hundreds), got {max(settings.frame_counts):,}")
        # Smallest first, each once: the flatness and pace lines read the first, middle and
        # last sizes as the smallest, middle and largest.
        settings.frame_counts = tuple(sorted(set(settings.frame_counts)))
    if args.repeats:
        settings.repeats = settings.cartridge_repeats = settings.peer_repeats = args.repeats
    sections = tuple(s.strip() for s in args.sections.split(",") if s.strip())
    unknown = set(sections) - {"classify", "cartridge", "train"}
    if unknown or not sections:
        raise InputError(f"unknown benchmark sections {sorted(unknown)}: give classify, "
                         "cartridge or train (comma-separated)" if unknown else
                         "--sections names none of classify, cartridge, train")
    if args.frames and "cartridge" not in sections:  # said, not passed over
        raise InputError("--frames sizes the cartridge section, which --sections leaves out")
    if args.model and str(args.model).lower().endswith(".onnx"):
        raise InputError("benchmark measures a model's checkpoint (.pt): it exports and times "
                         "the fp32, fp16 and int8 ONNX files itself, beside torch; an ONNX "
                         "file you deploy is timed by `ctcnet predict --model FILE.onnx` "
                         "(each stage's seconds in summary.json, timings_s)", args.model)
    model = resolve_model(args.model, "torch") if args.model else default_model_path("torch")
    # Never docs/ unless asked: run in a checkout, that would replace the project's record.
    out = Path(args.out) if args.out else Path("benchmark-quick" if args.quick else "benchmark")
    check_output_folder(out)  # before the measuring, not after it
    if args.workdir is not None:
        check_output_folder(args.workdir, "--workdir")
    if args.quick and _holds_a_full_record(out):
        # A quick run's record replaces the folder's whole: a full record's sections (and
        # the scripts' ones, which only their scripts make again) would be lost unsaid.
        raise InputError("holds a full benchmark record, which a --quick run would replace "
                         "(its figures are never kept beside a quick run's): give another "
                         "--out", out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(f"cannot create the output folder: {err.strerror or err}", out) from None
    for name in ("benchmarks.json", "benchmarks.md"):  # before the measuring, not after it
        if (out / name).exists() and not (out / name).is_file():
            raise InputError(f"{name} there is no file (a folder?): it would not be written "
                             "after the measuring; give another --out", out)
    run_benchmark(Path(model), out, settings, args.workdir, sections)
    print(f"wrote {out / 'benchmarks.md'} and {out / 'benchmarks.json'}")
    return 0


def _holds_a_full_record(out: Path) -> bool:
    """Whether ``out`` holds a benchmark record made without ``--quick``."""
    import json

    try:
        record = json.loads((out / "benchmarks.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    from ctcnet.benchmark.record import SCRIPT_SECTIONS, SECTIONS

    return isinstance(record, dict) and record.get("quick") is not True and any(
        record.get(key) for key in (*SECTIONS.values(), *SCRIPT_SECTIONS))
