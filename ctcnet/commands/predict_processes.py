"""``ctcnet predict --processes N``: one machine's batch of cartridges shared between N predict
processes, each running its share as ``torchrun``'s ranks do (balanced by frames), on the same
device.

A predict process reads, detects, crops and measures frames in threads of one Python
interpreter, and much of that work holds the interpreter's lock: beside a GPU most of a
server's cores wait. Processes do not share the lock. On one H200 with 16 cores, four
processes ran a batch of four 175-frame cartridges in 0.5-0.6 of the wall time of one, with the
same counts (``scripts/bench_batch.py``, docs/benchmarks-gpu.md); on two CPU cores, where the model
already takes both, they gained nothing.

The children run the parent's ctcnet with its own command line, ``--processes 1``,
``--quiet`` (N progress bars would garble one terminal) and ``--process-share K/N``. The
parent waits for them, writes the run's ``run.json`` once they have all ended (their refused
inputs are in the records they leave, as a job array's are) and says what each input came to.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from pathlib import Path

from ctcnet.errors import InputError

log = logging.getLogger(__name__)

# Processes chosen beside a GPU: one per four cores, at most this many (four ran 1.7-2x the
# cartridges an hour of one on 16 cores; more share the one GPU and hold more frames in memory).
MAX_AUTO_PROCESSES = 4
# Seconds the children get to stop on an interrupt of their own before it is passed on.
INTERRUPT_GRACE_S = 10.0


def parse_processes(text: str | None) -> int | None:
    """``--processes`` as a count (None: ``auto``)."""
    if text is None or str(text).strip().lower() == "auto":
        return None
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 1:
        raise InputError(f"--processes is a count of 1 or more, or auto; got {text!r}")
    return count


def auto_processes(inputs: int, on_gpu: bool, cores: int) -> int:
    """How many processes ``auto`` runs ``inputs`` cartridges and crop sets in: one on a CPU
    (its model already takes every core), else one per four cores, at most
    ``MAX_AUTO_PROCESSES`` and no more than there are inputs."""
    if not on_gpu:
        return 1
    return max(1, min(inputs, MAX_AUTO_PROCESSES, cores // 4))


# A child imports the parent's ctcnet, from where the parent found it: ``python -m ctcnet``
# would take a ctcnet folder in the working directory first.
_CHILD = ("import sys; sys.path.insert(0, sys.argv.pop(1)); from ctcnet.cli import main; "
          "sys.exit(main(sys.argv[1:]))")


def child_command(argv: list[str], share: int, processes: int) -> list[str]:
    """The command line of child ``share`` (1-based) of ``processes``: the parent's own, with
    the options that make it one share (later options win in argparse)."""
    package_root = str(Path(__file__).resolve().parents[2])
    return [sys.executable, "-c", _CHILD, package_root, *argv, "--processes", "1", "--quiet",
            "--process-share", f"{share}/{processes}"]


def exit_status(codes: list[int]) -> int:
    """The run's exit status from its children's: interrupted (130) first, then a refused
    input or failed report (2), then a sample without a readable frame (3), then any other."""
    for code in (130, 2, 3):
        if code in codes:
            return code
    return next((c for c in codes if c != 0), 0)


def run_in_processes(argv: list[str], processes: int) -> int:
    """Run ``argv`` (a ``ctcnet predict`` command line) as ``processes`` children sharing its
    inputs, and return the run's exit status once every child has ended. An interrupt reaches
    the children (they stop as a single run does: each frame's journal resumes the rerun)."""
    log.info("running the inputs in %d processes", processes)
    children = [subprocess.Popen(child_command(argv, k, processes))
                for k in range(1, processes + 1)]
    try:
        codes = [child.wait() for child in children]
    except BaseException:
        # Ctrl-C reaches the whole process group and the children stop by themselves (a
        # second interrupt would cut their own stopping short); one sent to the parent alone
        # is passed on to those still running after a grace period.
        deadline = time.monotonic() + INTERRUPT_GRACE_S
        for child in children:
            try:
                child.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.send_signal(signal.SIGINT)
        for child in children:
            child.wait()
        raise
    return exit_status([130 if c == -signal.SIGINT else c for c in codes])


def say_outcome(index: dict, out: Path) -> None:
    """One line per input of the run, from its ``run.json`` index (what each child's own
    lines would have said, which ``--quiet`` kept back)."""
    from ctcnet.inference.counts import per_volume_text

    for entry in index["outputs"]:
        name = entry["name"]
        if "set_aside" in entry:
            continue  # the child that refused it said why
        if entry.get("missing"):
            print(f"{name}: no output (see the errors above) -> {out / name}")
            continue
        status = f"{entry['status']}, " if "status" in entry else ""
        per75 = ", ".join(f"{k} {per_volume_text(v)}" for k, v in
                          (entry.get("per_7_5_ml") or {}).items() if v is not None) or "n/a"
        print(f"{name}: {status}{entry.get('events')} events, {entry.get('counts')} "
              f"(per 7.5 mL: {per75}) -> {out / name}")
