"""``ctcnet verify``: this installation checked against what was shipped, before it counts.

The shipped model files and reference against ``models/SHA256SUMS``, and the reference
cartridge predicted here against its recorded events (``ctcnet.inference.verification``). A
line per check, the record as JSON (``--out`` keeps it: an installation qualification's
evidence), exit status 0 when both pass and 1 when one does not.
"""

from __future__ import annotations

import argparse

from ctcnet.errors import check_device_name

HELP = ("Check this installation: the shipped models' checksums, and a reference cartridge "
        "predicted here against its recorded calls.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``ctcnet verify`` to its subparser."""
    parser.add_argument("--device", default="auto",
                        help="auto, cpu, cuda or cuda:N: where the reference is predicted, as "
                             "predict would run there (default auto)")
    parser.add_argument("--backend", choices=["torch", "onnx"], default=None,
                        help="the backend the reference runs with (default: the one predict "
                             "picks here); verify each one the lab's nights use")
    parser.add_argument("--out", metavar="JSON", help="also write the record to this file")
    parser.add_argument("--json", action="store_true", help="print the record as JSON")


def run(args: argparse.Namespace) -> int:
    """Run ``ctcnet verify``; returns 0 when every check passed, 1 otherwise."""
    import json
    from pathlib import Path

    from ctcnet.core.provenance import software_text
    from ctcnet.inference.verification import verify_installation
    from ctcnet.io.atomic import atomic_write_text, check_output_file

    check_device_name(args.device)
    if args.out:  # refused before the checks, not after them
        check_output_file(args.out, example="verify.json")
    record = verify_installation(args.device, args.backend)
    text = json.dumps(record, indent=2) + "\n"
    if args.out:
        atomic_write_text(Path(args.out), text)
    if args.json:
        print(text, end="")
        return 0 if record["passed"] else 1
    files, reference = record["shipped_files"], record["reference"]
    # The code checked, first: a checkout edited since its commit says "modified" and its
    # code's digest here, not in the --out record alone.
    print(f"software: {software_text(record['software'])}")
    print(f"shipped files: {files['files'] - len(files['differ']) - len(files['missing'])} of "
          f"{files['files']} as shipped" + "".join(
              f"\n  differs: {name}" for name in files["differ"]) + "".join(
              f"\n  missing: {name}" for name in files["missing"]))
    print(f"reference cartridge ({reference['backend']}, {reference['device']}): "
          f"{reference['events']} events, " + (
              "every call, flag and position as recorded at the balanced prior and at the "
              "cartridge rule" if reference["passed"] else
              "not as recorded:" + "".join(f"\n  {d}" for d in reference["differences"])))
    for warning in record["warnings"]:
        print(f"warned: {warning}")
    failed = [what for what, ok in (("shipped files differ", files["passed"]),
                                    ("the reference's calls differ", reference["passed"]),
                                    ("ctcnet warned while checking", not record["warnings"]))
              if not ok]
    print("PASSED" if record["passed"] else f"FAILED: {'; '.join(failed)}")
    return 0 if record["passed"] else 1
