"""``ctcnet predict --processes N``: one machine's batch of cartridges shared between N predict
processes on the same device, each running a share balanced by frames (as ``torchrun``'s
ranks are).

A predict process finishes each classified frame (labels, the guard's flags, its part in the
journal) in its own interpreter, and that work holds the interpreter's lock; frames of small
cartridges are prepared in threads of it too. Processes do not share the lock. On one H200
with 16 cores, four processes (frames in threads then) ran a batch of four 175-frame
cartridges in 0.5-0.6 of the wall time of one, with the same counts (``scripts/bench_batch.py``,
docs/benchmarks-gpu.md); on two CPU cores, where the model already takes both, they gained
nothing. Each process takes its share of the machine's cores (``CTCNET_CORES``: the cores / N)
and sizes its frame workers and model threads to it.

The parent lists the inputs once (their output names checked for collisions as one process
checks them), deals them out and runs each share as a child: its own ctcnet, its own command
line with ``--processes 1 --quiet`` (N progress bars would garble one terminal) and the hidden
``--process-inputs FILE`` naming the share's inputs. Each child checks and runs its inputs as
one process would, and sets aside those it refuses (a record for ``run.json``, as a job
array's jobs leave). The parent waits, passes an interrupt or a termination on to the children
(they run in sessions of their own, so each stops once, as one process would), says as
each input is done, writes ``run.json`` once all have ended and says what each came to.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from ctcnet.core.file_modes import make_folder
from ctcnet.core.paths import as_listed
from ctcnet.core.processes import process_running
from ctcnet.errors import InputError, check_regular_file

log = logging.getLogger(__name__)

# Processes chosen beside a GPU: one per two cores, at most this many, each with this much of
# the machine's available memory. On one H200 with 16 cores, 8 cartridges of 175 frames ran
# at 318 an hour in 4 processes and 397 in 8 (the same lease), 413 in 8 on another day; each
# process peaked at 2.5-4.2 GB. Each cartridge is CPU work (detection, cropping, the guard's
# numpy), so the processes share the one GPU without waiting on it.
MAX_AUTO_PROCESSES = 8
AUTO_PROCESS_MEMORY_GIB = 4.0
# The hidden option that hands a child its share of the inputs.
INPUTS_OPTION = "--process-inputs"
# Seconds between looks at the children (and at which inputs are done) while they run.
POLL_S = 1.0
# The exit statuses of a run stopped by an interrupt or a termination (128 + the signal).
STOPPED = tuple(128 + getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP")
                if hasattr(signal, name))


def stopped_by_words(status: int) -> str | None:
    """What stopped a run that ended with ``status``, in words (None: no signal of
    :data:`STOPPED`)."""
    if status not in STOPPED:
        return None
    return "an interrupt (Ctrl-C)" if status == STOPPED[0] else signal.Signals(status - 128).name


# A child's statuses of a share done: finished, an input refused (2), a sample without a
# readable frame (3). Any other is a process that failed or was killed, its share unfinished.
SHARE_DONE = (0, 2, 3)


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


def auto_processes(inputs: int, on_gpu: bool, cores: int,
                   memory_gib: float | None = None) -> int:
    """How many processes ``auto`` runs ``inputs`` cartridges and crop sets in: one on a CPU
    (its model already takes every core), else one per two cores, at most
    ``MAX_AUTO_PROCESSES``, ``AUTO_PROCESS_MEMORY_GIB`` of ``memory_gib`` (the memory
    available now; None: not known, not bounded) each, and no more than there are inputs."""
    if not on_gpu:
        return 1
    by_memory = MAX_AUTO_PROCESSES if memory_gib is None else \
        int(memory_gib // AUTO_PROCESS_MEMORY_GIB)
    return max(1, min(inputs, MAX_AUTO_PROCESSES, cores // 2, by_memory))


def available_memory_gib() -> float | None:
    """The memory available to new processes now (Linux's MemAvailable), None where unknown."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 2**20  # kB
    except (OSError, ValueError, IndexError):
        pass
    return None


def said_past_cores(processes: int) -> int:
    """``processes`` as asked, said where they are more than this machine's cores: each holds
    its own model and frames (64 on 2 cores took 2.2 GB, no faster than 2, without a word)."""
    from ctcnet.inference.resources import cpu_cores

    if processes > cpu_cores():
        log.warning("--processes %d on %d cores: the processes share them, each holding its "
                    "own model and frames (memory about %d times one process's), no faster "
                    "than one a core", processes, cpu_cores(), processes)
    return processes


def processes_to_run(args, shard, inputs: int) -> int:
    """How many processes run this job's ``inputs`` (``--processes``; 1 under torchrun, with
    ``--shard`` or when the command line is not known, as when ``run`` is called directly)."""
    from ctcnet.inference.distributed import env_info

    asked = parse_processes(args.processes)
    split_elsewhere = shard is not None or env_info().world_size > 1
    if asked is not None and asked > 1 and split_elsewhere:
        raise InputError("--processes shares one job's inputs between processes on this "
                         "machine; with --shard or under torchrun the inputs are split already: "
                         "give one or the other")
    if split_elsewhere or getattr(args, "_argv", None) is None or inputs < 2:
        return 1
    if asked is None:
        from ctcnet.inference.backends import runs_on_cpu
        from ctcnet.inference.resources import cpu_cores

        return auto_processes(inputs, not runs_on_cpu(args.device), cpu_cores(),
                              available_memory_gib())
    return said_past_cores(min(asked, inputs))


def plan_shares(cartridges: Sequence[Path], datasets: Sequence[Path], processes: int
                ) -> tuple[list[str], list[list[str]], dict[str, str]]:
    """The inputs' output names (in input order), each process's share of the input paths,
    balanced by frames, and the inputs set aside before any process starts: those sharing an
    output name (``output_names.set_aside_colliding``; the batch's others run), name: reason. A
    cartridge whose metadata cannot be read weighs one frame and goes by its folder's name
    (its process sets it aside, as one process would)."""
    from ctcnet.core.paths import absolute
    from ctcnet.inference.distributed import shard
    from ctcnet.inference.output_names import (
        output_name_and_frames,
        refuse_colliding_outputs,
        run_names,
        set_aside_colliding,
    )

    jobs = [(str(path), *output_name_and_frames(path)) for path in cartridges]
    named = [(name, path) for path, name, _ in jobs]
    names = run_names(named, datasets)
    set_aside: dict[str, str] = {}
    aside = set_aside_colliding(named, set_aside, datasets)
    jobs = [j for j in jobs if absolute(j[0]) not in aside]
    jobs += [(str(d), Path(d).name, 1) for d in datasets if absolute(d) not in aside]
    refuse_colliding_outputs([(name, path) for path, name, _ in jobs])
    shares = [[path for path, _, _ in shard(jobs, k, processes, weight=lambda j: j[2])]
              for k in range(processes)]
    return names, [s for s in shares if s], set_aside


def child_command(argv: list[str], inputs_file: str, model: str | None = None) -> list[str]:
    """A child's command line: its own ctcnet with the parent's command line, the options
    that make it one quiet process of one share put right after the subcommand (before any
    ``--``, after which they would read as inputs; later options win in argparse), and the
    ``model`` the parent chose when the command line names none: a child choosing from its
    own share's panels could take another model than the rest of the batch."""
    at = next((i for i, a in enumerate(argv) if not a.startswith("-")), len(argv)) + 1
    package_root = str(Path(__file__).resolve().parents[2])
    chosen = ["--model", model] if model is not None else []
    return [sys.executable, "-c", _CHILD, package_root, *argv[:at], "--processes", "1",
            "--quiet", INPUTS_OPTION, inputs_file, *chosen, *argv[at:]]


def check_before_children(model: str, backend: str | None, out: Path,
                          prior: str | None = None) -> None:
    """What every child would refuse before any work, refused once in the parent: a model
    that is neither a shipped name nor a file, an ONNX model file that does not load, an
    output folder that cannot be written, and a ``--prior`` the model's classes cannot take
    (N children would each say so). Torch and the GPU stay out of the parent: an ONNX file
    is opened on the CPU (its classes are in its metadata); a checkpoint's prior is checked
    by each child."""
    from ctcnet.inference.inputs import check_writable
    from ctcnet.nn.calls import BALANCED_PRIOR, prior_rule
    from ctcnet.nn.registry import get_model, is_registry_name, resolve_model

    path = check_regular_file(resolve_model(model, backend), "a model file",
                              missing="model file not found")
    if is_registry_name(model):
        if prior is not None:
            prior_rule(prior, get_model(model).classes, None, BALANCED_PRIOR)
    elif path.suffix.lower() == ".onnx":
        from ctcnet.inference.onnx_runtime import OnnxClassifier

        onnx = OnnxClassifier(path, providers=["CPUExecutionProvider"], threads=1)
        if prior is not None:
            prior_rule(prior, onnx.classes, onnx.decision, BALANCED_PRIOR)
    check_writable(out)


# A child imports the parent's ctcnet, from where the parent found it: ``python -m ctcnet``
# (or the script's own folder first on the path) could take another.
_CHILD = ("import sys; sys.path[0] = sys.argv.pop(1); from ctcnet.cli import main; "
          "sys.exit(main(sys.argv[1:]))")


def shell_status(code: int) -> int:
    """A child's exit status as a shell says it: ended by signal S, 128 + S."""
    return 128 - code if code < 0 else code


def _killed_by(code: int) -> str:
    """What a status past 128 says of a process (a signal ended it), for its error line: a
    SIGKILL nobody sent from ctcnet is most often the kernel's, out of memory."""
    if code <= 128 or code - 128 not in {s.value for s in signal.Signals}:
        return ""
    name = signal.Signals(code - 128).name
    return f" (killed by {name}" + (": out of memory? The system log says, dmesg"
                                     if name == "SIGKILL" else "") + ")"


def exit_status(codes: list[int], stopped_by: int | None = None) -> int:
    """The run's exit status from its children's (:func:`shell_status`): interrupted (130)
    first, then a child that failed or was killed (its share perhaps unfinished), then a
    refused input or failed report (2), then a sample without a readable frame (3).
    ``stopped_by``: the signal the parent passed on, if one stopped the run: its status (128
    + it) where a child ended otherwise than done, as a child may meet the signal mid-import
    and end on it as an error (exit 1, "initialization failed"); a rerun resumes every input
    either way."""
    codes = [shell_status(c) for c in codes]
    if 130 in codes:
        return 130
    failed = [c for c in codes if c not in SHARE_DONE]
    if failed and stopped_by is not None:
        return 128 + int(stopped_by)
    if failed:
        return failed[0]
    return 2 if 2 in codes else 3 if 3 in codes else 0


# Where a --processes run hands each child its share of the inputs: in the run's --out, not
# the machine's /tmp (the inputs' paths name patients' scans; a parent killed outright leaves
# them, and the next --processes run into the folder takes them away).
SHARES_DIR = ".ctcnet-shares"


def _handed_over(shares: list[list[str]], folder: Path) -> list[str]:
    """Each share written to a file of its own in ``folder``, named by this process (a run
    whose process is gone, killed outright, has its files taken away first; another run's
    into the same --out, on other samples, keeps its own): the files' names, one a child."""
    if folder.is_dir():
        for stale in folder.glob("share-*.json"):
            pid = stale.name.split("-")[1]
            if not (pid.isdigit() and process_running(int(pid))):
                stale.unlink(missing_ok=True)
    make_folder(folder)
    files = []
    for share in shares:
        handle, name = tempfile.mkstemp(prefix=f"share-{os.getpid()}-", suffix=".json",
                                        dir=folder)
        with os.fdopen(handle, "w") as f:
            json.dump(share, f)
        files.append(name)
    return files


def run_in_processes(argv: list[str], shares: list[list[str]],
                     while_waiting: Callable[[], None] | None = None,
                     model: str | None = None, out: str | Path = ".",
                     endings: dict[int, str] | None = None) -> int:
    """Run ``argv`` (a ``ctcnet predict`` command line) as one child per share of its inputs
    and return the run's exit status once every child has ended; ``while_waiting`` is called
    every ``POLL_S`` seconds meanwhile (to say which inputs are done); ``model``: the model the
    parent chose, for a command line that names none (:func:`child_command`); ``out``: the
    run's --out, where the shares are handed over (:data:`SHARES_DIR`); ``endings``, given:
    filled with what ended each process that failed (its number from 1: its log's last
    error, :func:`child_ending`)."""
    folder = Path(out) / SHARES_DIR
    files = _handed_over(shares, folder)
    children: list[subprocess.Popen] = []
    signalled: list[int] = []  # the signals the run was stopped by (a scheduler's, Ctrl-C)

    def pass_on(signum, frame):  # once per signal, as one process would get it
        if frame is not None:
            signalled.append(signum)
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    from ctcnet.inference.resources import CORES_ENV, cpu_cores

    # Each child sizes its frame workers and model threads to its share of the cores: sized
    # to the whole machine, N children's frame processes would ask for N times its cores.
    env = {**os.environ, CORES_ENV: str(max(1, cpu_cores() // len(shares))),
           PARENT_ENV: str(os.getpid())}
    # (a hangup, the terminal closed, is passed on too, unless ignored: nohup)
    previous = {signal.Signals(s - 128): signal.signal(s - 128, pass_on) for s in STOPPED
                if signal.getsignal(s - 128) is not signal.SIG_IGN}
    started = time.time()  # (a second's slack below: file times may round down)
    try:
        log.info("running the inputs in %d processes", len(shares))
        for name in files:
            # A session of its own: a Ctrl-C reaches the parent alone, which passes it on.
            children.append(subprocess.Popen(child_command(argv, name, model), env=env,
                                             start_new_session=True))
        while any(child.poll() is None for child in children):
            if while_waiting is not None:
                while_waiting()
            time.sleep(POLL_S)
        if while_waiting is not None:
            while_waiting()  # what the last process finished since the last look
        codes = [shell_status(child.wait()) for child in children]
    finally:
        pass_on(signal.SIGTERM, None)  # none left running if the parent itself failed
        for child in children:
            child.wait()
        for s, handler in previous.items():
            signal.signal(s, handler)
        for name in files:
            Path(name).unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            folder.rmdir()  # (left where another run's share is in it)
    status = exit_status(codes, signalled[0] if signalled else None)
    if status not in STOPPED:  # (stopped by a signal the parent passed on: nothing to add)
        _say_failed(codes, children, out, endings, started - 1.0)
    return status


def _say_failed(codes: list[int], children: list, out, endings: dict | None,
                since: float) -> None:
    """Say each process that failed, with what ended it (its log's word, of a log written
    since the processes started), kept in ``endings`` where given."""
    for k, (code, child) in enumerate(zip(codes, children), 1):
        if code not in SHARE_DONE:
            ending = child_ending(out, child.pid, since)
            log.error("process %d of %d ended with status %d%s%s", k, len(codes), code,
                      _killed_by(code), f": {ending}" if ending else "")
            if endings is not None and ending:
                endings[k] = ending


def child_ending(out: str | Path, pid: int, since: float = 0.0) -> str | None:
    """What ended a child of a ``--processes`` run, as its own log (``logs/``, named by this
    host and its process id, written since ``since``) last said it: the console's error line
    (``exit status 4: ...``), else the error that ended its run; None where it left no log
    (killed before its run began): never an earlier night's log of a process that had the
    same id, nor another host's."""
    from ctcnet.core.run_log import latest_log_of

    path = latest_log_of(out, "predict", pid, since)
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines() if path else []
    except OSError:
        return None
    for line in reversed(lines):
        _, sep, said = line.partition(" ERROR ")
        said = said.split(": ", 1)[-1] if sep else ""  # after the logger's name
        if said.startswith("exit status "):
            return said.split(": ", 1)[-1].removeprefix("ctcnet predict: error: ")
        if said.startswith("ended after "):
            return said.split(": ", 1)[-1]
    return None


def processes_error(status: int, endings: dict[int, str]) -> str:
    """run.json's ``error`` of a ``--processes`` run a process failed: its status, and what
    ended the first failed process where its log says (the cause lay in its log alone)."""
    first = min(endings) if endings else None
    return f"a process ended with status {status}" + (
        f" (process {first}: {endings[first]})" if first is not None else "")


# Linux's prctl option that gives a process a signal when its parent ends.
PR_SET_PDEATHSIG = 1
LINUX = sys.platform.startswith("linux")
# The parent's process id, as each child is told it (what the child checks it still has).
PARENT_ENV = "CTCNET_PARENT_PID"


def die_with_parent() -> None:
    """Called by a child of a ``--processes`` run as it starts: Linux sends it SIGTERM when
    the parent ends, as the parent passes on a signal it gets. A parent killed outright (kill
    -9, the OOM killer) otherwise left its children running on, unseen by run.json and by an
    operator's rerun; with it, each stops as SIGTERM stops predict (its journal closed, the
    rerun resumes). A parent already gone when the request is made is seen by its id (a
    child is re-parented to init or to a subreaper): the child stops at once."""
    import ctypes

    parent = os.environ.get(PARENT_ENV, "")
    if not LINUX or not parent.isdigit():
        return
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM))
    except (OSError, AttributeError):  # no prctl here: the child runs on as before
        return
    if os.getppid() != int(parent):
        os.kill(os.getpid(), signal.SIGTERM)


def read_share(path: str) -> list[str]:
    """A child's share of the inputs, as its parent wrote it."""
    try:
        share = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise InputError(f"cannot read this process's share of the inputs: {err}", path) from None
    return [str(p) for p in share]


def done_watcher(out: Path, names: list[str], since: float) -> Callable[[], None]:
    """A ``while_waiting`` that says on stderr, once each, which inputs have their
    ``summary.json`` written since ``since`` (their counts are on disk)."""
    said: set[str] = set()

    def look() -> None:
        for name in names:
            if name in said:
                continue
            try:
                written = (as_listed(out / name) / "summary.json").stat().st_mtime
            except OSError:
                continue
            if written >= since:
                said.add(name)
                print(f"[{len(said)} of {len(names)} done] {name}", file=sys.stderr,
                      flush=True)
    return look


def say_outcome(index: dict, out: Path, say=print) -> dict[str, str]:
    """One line per input of the run, from its ``run.json`` index and each output's
    summary.json, in the words one process uses (:func:`ctcnet.commands.outcome.outcome_line`),
    each handed to ``say``. Returns the inputs set aside, each with why: said last, as one
    process says them (the tally said "set aside (below)" over no line below)."""
    from ctcnet.commands.outcome import batch_line, outcome_line

    set_aside = {e["name"]: str(e["set_aside"]) for e in index["outputs"] if "set_aside" in e}
    if all(e.get("missing") for e in index["outputs"]):
        return set_aside  # every process failed before any work: its errors above say why
    results = {}
    for entry in index["outputs"]:
        name = entry["name"]
        if "set_aside" in entry:
            continue
        if entry.get("missing"):  # not "failed" (no frame read): a rerun finishes it
            say(f"{name}: no output (its process failed: see above; the same command "
                f"resumes it) -> {out / name}")
            results[name] = {"status": "missing"}
            continue
        try:  # the whole summary (skipped frames, time, prior); the index's figures if not
            summary = json.loads((out / entry["summary"]).read_text(encoding="utf-8"))
        except (OSError, ValueError, KeyError):  # (a crop set's entry has no status)
            summary = entry if "status" in entry else {**entry, "crops": entry.get("events")}
        results[name] = summary
        say(outcome_line(name, summary, out / name))
    tally = batch_line(results, len(set_aside), out)
    if tally:
        say(tally)
    return set_aside
