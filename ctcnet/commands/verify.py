"""``ctcnet verify``: this installation checked against what was shipped, before it counts;
or, with ``--results``, a results folder checked against what ctcnet recorded of it.

The shipped model files and reference against ``models/SHA256SUMS``, and the reference
cartridge predicted here against its recorded events (``ctcnet.inference.verification``). A
line per check, the record as JSON (``--out`` keeps it: an installation qualification's
evidence), exit status 0 when both pass and 1 when one does not. ``--results`` audits each
sample's files as they lie, writing nothing (``ctcnet.exports.results_audit``): a line per
sample, exit status 0 when every one is intact.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ctcnet.errors import check_device_name
from ctcnet.inference.backend_registry import list_backends

HELP = ("Check this installation: the shipped models' checksums, and a reference cartridge "
        "predicted here against its recorded calls.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``ctcnet verify`` to its subparser."""
    parser.add_argument("--device", default="auto",
                        help="auto, cpu, cuda or cuda:N: where the reference is predicted, as "
                             "predict would run there (default auto)")
    parser.add_argument("--backend", choices=list_backends(), default=None,
                        help="the backend the reference runs with (default: the one predict "
                             "picks here); verify each one the lab's nights use")
    parser.add_argument("--results", metavar="RESULTS", default=None,
                        help="instead, audit a predict --out folder (or one sample's) as it "
                             "lies, an archive's too: each sample's figures, events tables, "
                             "review journals and sign-off against ctcnet's record of them; "
                             "nothing is written")
    parser.add_argument("--out", metavar="JSON", help="also write the record to this file")
    parser.add_argument("--overwrite", action="store_true",
                        help="write over an existing --out record (refused otherwise: an "
                             "earlier qualification's evidence)")
    parser.add_argument("--json", action="store_true", help="print the record as JSON")


def run(args: argparse.Namespace) -> int:
    """Run ``ctcnet verify``; returns 0 when every check passed, 1 otherwise."""
    from ctcnet.core.provenance import software_text
    from ctcnet.inference.verification import verify_installation
    from ctcnet.io.atomic import check_output_file

    check_device_name(args.device)
    if args.results is not None:  # (a record over a sample's summary.json, or run.json)
        from ctcnet.commands.report_folders import refuse_output_in_data

        refuse_output_in_data(args.out, args.results)
    if args.out:  # refused before the checks, not after them
        check_output_file(args.out, example="verify.json",
                          earlier=None if args.overwrite else "an earlier record (another "
                          "day's, another user's qualification)")
    if args.results is not None:
        return _audit(args)
    record = verify_installation(args.device, args.backend)
    if _kept(record, args):
        return 0 if record["passed"] else 1
    files, reference = record["shipped_files"], record["reference"]
    # The code checked, first: a checkout edited since its commit says "modified" and its
    # code's digest here, not in the --out record alone.
    print(f"software: {software_text(record['software'])}")
    print(f"shipped files: {files['files'] - len(files['differ']) - len(files['missing'])} of "
          f"{files['files']} as shipped" + "".join(
              f"\n  differs: {name}" for name in files["differ"]) + "".join(
              f"\n  missing: {name}" for name in files["missing"]) + "".join(
              f"\n  not shipped: {name}" for name in files.get("unlisted", []))
          + ("\n  (a model of your own belongs in a folder named in $CTCNET_MODELS; the "
             "shipped folder holds the shipped files alone)" if files.get("unlisted") else ""))
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


def _audit(args: argparse.Namespace) -> int:
    """``ctcnet verify --results``: a line per sample, the record as JSON where asked."""
    from ctcnet.core.paths import absolute
    from ctcnet.core.provenance import check_record
    from ctcnet.errors import InputError
    from ctcnet.exports.results_audit import audit_results, audit_run

    run = audit_run(args.results)
    try:
        samples = audit_results(args.results)
    except InputError:
        if not run and not _a_night_without_scans(args.results):
            raise
        # A run killed before its first sample (the night failed, not the input), or one
        # --allow-empty finished with nothing to do: an audit of the index alone.
        samples = []
    failed = [s["sample"] for s in samples if s["problems"]]
    record = {"results": absolute(args.results), "passed": not failed and not run,
              **check_record(), "run": run, "samples": samples}
    if _kept(record, args):
        return 0 if record["passed"] else 1
    for problem in run:  # the night as a whole, before its samples
        print(f"run: {problem}")
    for s in samples:
        said = "; ".join(s["problems"]) if s["problems"] else "intact, " + (
            "not signed off" if not s["signoff"] else "signed off" if s["signoff"] == "current"
            else f"sign-off stale ({s['signoff']})")
        print(f"{s['sample']}: {said}" + "".join(f"\n  note: {n}" for n in s["notes"]))
    print(f"PASSED: {len(samples)} sample(s) as ctcnet recorded them" if record["passed"] else
          f"FAILED: {len(failed)} of {len(samples)} sample(s) not as ctcnet recorded them "
          f"({', '.join(failed[:5])}{', ...' if len(failed) > 5 else ''})" if failed else
          f"FAILED: {len(samples)} sample(s) as ctcnet recorded them, but not the folder as a "
          "whole: its run unfinished or its index not its samples' (run: above)")
    return 0 if record["passed"] else 1


def _a_night_without_scans(results) -> bool:
    """Whether ``results``' run.json is a finished run without an output (predict
    ``--allow-empty`` over a night without scans, exit 0): a folder to audit, not a wrong
    path (a nightly "predict, then verify" failed on every such night)."""
    import json

    from ctcnet.io.cartridge_info import RUN_INDEX_FILE

    try:
        index = json.loads((Path(results) / RUN_INDEX_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(index, dict) and index.get("state") == "finished" and \
        not index.get("outputs") and not index.get("unfinished_outputs")


def _kept(record: dict, args: argparse.Namespace) -> bool:
    """The record written to ``--out`` where asked, and printed as JSON with ``--json``
    (True: said so, no lines to print)."""
    import json

    from ctcnet.io.atomic import atomic_write_text

    text = json.dumps(record, indent=2) + "\n"
    if args.out:
        atomic_write_text(Path(args.out), text)
    if args.json:
        print(text, end="")
    return bool(args.json)
