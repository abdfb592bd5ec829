"""The run's index: ``run.json`` (every input's output, or why it has none: set aside, missing)
and ``samples.csv`` (a row a sample), written as a run starts and ends, by one process of many
(a rank, the last job of an array) from what each wrote under ``--out``; and the records each
process keeps of the inputs it set aside (``.set_aside/``), which that writer reads.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import socket
import time
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path

from ctcnet.core.file_modes import make_folder
from ctcnet.core.json_text import strict_json
from ctcnet.core.paths import as_listed, composed
from ctcnet.core.processes import process_start
from ctcnet.core.run_log import ending_text
from ctcnet.errors import InputError
from ctcnet.inference.distributed import env_info, stable_rank
from ctcnet.inference.output_names import output_folder_of
from ctcnet.inference.result_state import RESEARCH_USE
from ctcnet.inference.run_entry import counted_at, outcome_tally, output_entry, utc
from ctcnet.inference.run_table import write_samples_csv
from ctcnet.inference.setting_differences import how_settings_differ
from ctcnet.inference.shared_scans import mark_same_scans, mark_shared_frames
from ctcnet.inference.summary import SUMMARY_FILE, kept_summaries
from ctcnet.io.atomic import atomic_write_text, folder_is_held, open_lock
from ctcnet.io.cartridge_info import RUN_INDEX_FILE, SAMPLES_FILE, output_format

log = logging.getLogger(__name__)


# Where each rank or job records the inputs it set aside (one file each), for the run.json
# that another rank or the last job of an array writes.
SET_ASIDE_DIR = ".set_aside"


def note_set_aside(out: Path, set_aside: dict, since: float | None = None) -> None:
    """Record this rank's or job's set-aside inputs (name: reason) under ``out``, with when:
    ``since``, when the run that refused them began (default: now). Not when the record is
    written, at the run's end: another run may have finished the sample meanwhile (it held it,
    so this one set it aside), and its summary.json is then newer than the refusal."""
    at = time.time() if since is None else float(since)
    for name, reason in set_aside.items():
        where = getattr(reason, "input", None)  # output_names.SetAsideReason's
        atomic_write_text(_set_aside_file(out, name),
                          json.dumps({"name": name, "reason": str(reason), "at": at,
                                      "kind": getattr(reason, "kind", "input"),
                                      **({"input": where} if where else {}),
                                      **({"held_since": reason.held_since}
                                         if getattr(reason, "held_since", None) else {})})
                          + "\n")


def _set_aside_file(out: Path, name: str) -> Path:
    """Where the refusal of input ``name`` is recorded: under its name, or a digest of it
    where the name is too long to carry the atomic write's temporary suffixes (an input
    refused for a name over the sample id's 200 bytes) or holds a path (a cartridge set aside
    for sharing its sample id is named with its folder)."""
    if len(name.encode("utf-8", "surrogateescape")) > 120 or "/" in name or "\\" in name:
        name = hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()
    return Path(out) / SET_ASIDE_DIR / f"{name}.json"


def _set_aside_since(out: Path, name: str, summary: Path, read: dict | None) -> dict | None:
    """The record of why ``name`` was set aside (``reason``; ``input``, the path refused,
    where known), when that is newer than the last run that finished
    the sample (``finished_at`` of ``read``, the file as read, else its ``counted_at``; the
    file's time for a summary without either, which a review decision saved since moves): an
    output a run finished after the refusal is that run's."""
    try:
        record = json.loads(_set_aside_file(out, name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    # Finished since it was refused, or (held by another run) since that run took it: that
    # run's output, made tonight.
    since = min(float(record.get("at", 0)), float(record.get("held_since") or math.inf))
    if summary.exists() and counted_at(summary, read, "finished_at") > since:
        return None
    return record


def _read_summary(summary: Path) -> dict | None:
    """A summary.json as read, or None (no file, not readable, or no JSON object)."""
    try:
        read = json.loads(summary.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return read if isinstance(read, dict) else None


def _replaced_since(folder: Path, since: float) -> tuple[dict, Path] | None:
    """(summary, its file) of the run ``--overwrite`` replaced in ``folder`` since ``since``
    (kept in ``previous/`` as the journal was cleared), or None."""
    kept = [p for p in kept_summaries(folder) if p.stat().st_mtime >= since]
    read = _read_summary(kept[-1]) if kept else None
    return (read, kept[-1]) if isinstance(read, dict) else None


# run.json's ``state``: written as a run starts (``running``: its outputs not yet listed, so a
# stopped or killed run never leaves the last night's index behind, all "ok"), as it ends, as
# it is stopped (a signal: the outputs done so far; the same command resumes the rest), or as
# an error ends it (``failed``: the error is on stderr; the outputs done so far).
RUN_STATES = ("running", "finished", "stopped", "failed")


def mark_run_started(out: Path, sample_ids: Sequence[str], started: float,
                     world_size: int | None = None) -> None:
    """``run.json`` as a run begins: ``running``, the inputs it was given by output name, no
    outputs yet (what an earlier run left there is not this run's; its ``samples.csv``, the
    index's table, goes until this run's end writes it), and the process that runs them
    (``host``, ``pid``): a run killed outright (SIGKILL, the OOM killer, a power cut)
    cannot say so, and a ``running`` whose process is gone tells a monitor it was.
    ``world_size``: the processes that run it (``--processes``; None: torchrun's, or 1)."""
    make_folder(out)
    # Under the index's lock: the review server writes a reviewed sample's entry again under
    # it, and must not write the finished index it read back over this one.
    with _index_lock(out):
        # The table is run.json's view: an earlier run's beside a running one would be read
        # as tonight's (a run killed outright never writes its own). Its end writes it again.
        (Path(out) / SAMPLES_FILE).unlink(missing_ok=True)
        try:
            atomic_write_text(Path(out) / RUN_INDEX_FILE, json.dumps(
                {**output_format(), "intended_use": RESEARCH_USE, "state": "running",
                 "started_at": utc(started), "host": socket.gethostname(), "pid": os.getpid(),
                 **({"pid_started": begun} if (begun := process_start(os.getpid())) is not None
                    else {}),
                 "inputs": list(sample_ids), "outputs": [],
                 "world_size": world_size or env_info().world_size}, indent=2) + "\n")
        except OSError as err:
            # A disk full as the run starts: the earlier run's index ("finished", its counts)
            # stood as tonight's, and a script reading it saw a quiet night. Written over in
            # place with the error, as a run's end does where no new file can be written.
            if (Path(out) / RUN_INDEX_FILE).exists():
                with contextlib.suppress(OSError):
                    mark_run_ended_in_place(out, "failed", err)
            raise


def mark_run_ended_in_place(out: Path, state: str, error: BaseException) -> None:
    """``run.json``'s ``state`` (``failed``, ``stopped``) where its index could not be written
    (a full disk: a new file's blocks are not to be had): the file is written over in place,
    its old blocks freed first, with the state alone and the error, so that it does not read
    ``running`` after the run has ended. Not atomic, so only the last resort."""
    text = json.dumps({**output_format(), "state": state, "written_at": utc(time.time()),
                       "error": ending_text(error),
                       "note": "the run's index could not be written"}, indent=2) + "\n"
    with open(Path(out) / RUN_INDEX_FILE, "w", encoding="utf-8") as index:  # truncates: frees
        index.write(text)


def mark_run_ended_as_it_began(out: Path, error: BaseException, state: str = "stopped"
                               ) -> None:
    """``run.json`` of a run a signal (``stopped``), a refusal or an error (``failed``: a scan
    share not mounted, a folder it may not write) ended before its own index: the earlier
    run's, left as it was, read "finished" (a wrapper took last night's results for
    tonight's). It reads ``state`` with the error, its outputs said to be the earlier run's;
    ``samples.csv`` goes, as when a run starts. Written over in place where need be."""
    with _index_lock(out, or_unlocked=True):
        path = Path(out) / RUN_INDEX_FILE
        try:
            earlier = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        if not isinstance(earlier, dict):
            return
        with contextlib.suppress(OSError):
            (Path(out) / SAMPLES_FILE).unlink(missing_ok=True)
        text = json.dumps(  # (no tally: read alone, it told last night's outcome as tonight's)
            {**{k: v for k, v in earlier.items() if k != "tally"}, "state": state,
             "written_at": utc(time.time()),
             "error": ending_text(error),
             "note": f"a run {state} as it began, before it had checked its inputs: the "
                     "outputs listed are those of the run before it"}, indent=2) + "\n"
        try:
            atomic_write_text(path, text)
        except OSError:  # (the file itself may still be written)
            with open(path, "w", encoding="utf-8") as index:
                index.write(text)


@contextlib.contextmanager
def _index_lock(out: Path, or_unlocked: bool = False) -> Iterator[None]:
    """Index writers one at a time (the jobs of an array end together): the last to write has
    read every summary the others wrote before it. Unlocked where the file system has no
    locks, and with ``or_unlocked`` where no lock file can be made (a read-only folder)."""
    try:
        import fcntl
    except ImportError:  # no flock on this platform
        yield
        return
    make_folder(out)
    try:
        lock = open_lock(Path(out) / ".run.json.lock")
    except OSError:
        if not or_unlocked:
            raise
        lock = contextlib.nullcontext()
    with lock as fh:
        try:  # (a file system without locks, NFS without lockd: unlocked)
            locked = fh is not None and fcntl.flock(fh.fileno(), fcntl.LOCK_EX) is None
        except OSError:
            locked = False
        try:
            yield
        finally:
            if locked:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def write_run_index(out: Path, sample_ids: Sequence[str], world_size: int | None = None,
                    set_aside: dict | None = None, since: float | None = None,
                    state: str = "finished", missing_reason: str | None = None,
                    failed_reports: dict | None = None,
                    error: BaseException | str | None = None,
                    sharded: bool = False) -> dict:
    """Rank 0, after the barrier (or a job of an array, as it ends): one ``run.json`` listing
    every output and its main counts, and why a sample is partial (its ``problems``, frames
    skipped or missing) and what it was read from (``input``); ``world_size``: the ranks or
    jobs the inputs were split between (default: torchrun's); ``set_aside``: the inputs this
    process refused, name: reason (those other ranks and jobs refused are read from their
    records, :func:`note_set_aside`; ``since``: when this run began); ``state``: ``finished``,
    ``stopped`` by a signal or ``failed`` (:data:`RUN_STATES`); ``missing_reason``: why a
    sample without an output has none, where the run knows (a process of it failed);
    ``failed_reports``: the samples whose report failed (name: why), which have none for
    that reason; ``error``: what ended a run ``failed`` or ``stopped``, written beside the
    state; ``sharded``: the inputs were split by name among ``world_size`` jobs (``--shard``),
    so a sample without an output is named with the share it falls to."""
    with _index_lock(out):
        return _write_run_index(out, sample_ids, world_size, set_aside, since, state,
                                missing_reason, failed_reports, error, sharded)


def _write_run_index(out, sample_ids, world_size, set_aside, since, state, missing_reason,
                     failed_reports, error, sharded) -> dict:
    note_set_aside(out, set_aside or {}, since)
    entries, made_with, digests = [], {}, {}
    # A run that ended early on one machine: what it left of a sample from before it began (an
    # earlier run's output, or its refusal) is not tonight's (a job array's jobs begin apart,
    # each writing the index of all: there every earlier output stands).
    ended_early = state in ("stopped", "failed") and since is not None and not sharded
    for name in sample_ids:
        # (as its folder lists it: a copy through macOS decomposed its accents)
        path = as_listed(Path(out) / name) / "summary.json"
        read = _read_summary(path)  # once, for the set-aside date and the entry
        if isinstance(read, dict) and isinstance(read.get("run_fingerprint"), dict):
            made_with[name] = read["run_fingerprint"]
        if isinstance(read, dict) and isinstance(read.get("frame_digests"), dict):
            digests[name] = read["frame_digests"]
        refused = _set_aside_since(out, name, path, read)
        if ended_early and refused is not None and float(refused.get("at", 0)) < since:
            refused = None  # an earlier run's refusal: this one did not reach the input
        why = (failed_reports or {}).get(name) or missing_reason or (
            _share_text(name, world_size, Path(out) / name) if sharded and world_size
            else None)
        if refused is not None and refused.get("kind") == "held" and \
                not folder_is_held(path.parent):
            # The run that held it ended without finishing it (killed): nobody will.
            refused = {**refused, "kind": "output",
                       "reason": f"{refused.get('reason')}; the run that held it ended "
                                 "without finishing it: run it again"}
        if refused is not None:
            # Set aside, not "ok" with an earlier run's counts; the output that run left is
            # kept beside it (refusing to mix this run into it changed nothing there).
            entries.append({"name": name, "set_aside": str(refused.get("reason")),
                            "set_aside_kind": str(refused.get("kind", "input")),
                            **({"input": refused["input"]} if refused.get("input") else {}),
                            **({"kept_output": output_entry(name, read, path)}
                               if read is not None else {})})
        elif path.exists():
            # (one that cannot be read is read again, so that its error is raised)
            entry = output_entry(name, read if read is not None
                                  else json.loads(path.read_text(encoding="utf-8")), path)
            if ended_early and counted_at(path, read, "finished_at") < since:
                # Not reached tonight: missing, the earlier output kept beside (marked so).
                entries.append({"name": name, "missing": True,
                                **({"reason": why} if why else {}), "kept_output": entry})
            else:
                entries.append(entry)
        else:
            # A run --overwrite replaced, stopped before its own summary: the replaced one,
            # kept in previous/ by this run, is the earlier output (the folder's tables are
            # that run's, or this one's unfinished).
            replaced = _replaced_since(path.parent, since) if ended_early else None
            entries.append({"name": name, "missing": True, **({"reason": why} if why else {}),
                            **({"kept_output": output_entry(name, *replaced)}
                               if replaced else {})})
    mark_same_scans(entries)
    mark_shared_frames(entries, digests)
    # Samples an earlier run left in --out that this one did not run: named, so that the
    # index of a partial rerun or another batch into the same folder does not hide them, and
    # a row each in samples.csv (the folder's table, not this run's alone).
    ours = {composed(name) for name in sample_ids}  # (a folder named so in another form too)
    others = sorted(p.parent.name for p in Path(out).glob("*/summary.json")
                    if composed(p.parent.name) not in ours)
    unfinished = unfinished_outputs(out, ours)
    for name, why in unfinished.items():  # none of this run's, but none has a result either
        log.warning("%s (in %s, not an input of this run): %s", name, out, why)
    differ = _warn_of_mixed_settings(out, {**_fingerprints(out, others), **made_with})
    index = {**output_format(), "intended_use": RESEARCH_USE, "state": state,
             "written_at": utc(time.time()),
             **({"error": ending_text(error)} if error is not None else {}),
             **({"started_at": utc(since)} if since is not None else {}),
             "tally": outcome_tally(entries), "outputs": entries,
             **({"other_outputs": others} if others else {}),
             **({"unfinished_outputs": unfinished} if unfinished else {}),
             **({"not_comparable": differ} if differ else {}),
             "world_size": env_info().world_size if world_size is None else world_size}
    # The table first, the index last: a run killed between the two (out of memory, a power
    # cut) left run.json "finished" without samples.csv, which verify --results passed;
    # now its index still says "running".
    try:
        _write_samples_table(out, entries, others, unfinished, since)
    except PermissionError as err:  # a spreadsheet holding it open (a lock on a share)
        atomic_write_text(Path(out) / RUN_INDEX_FILE, strict_json(index, indent=2) + "\n")
        raise InputError(f"cannot replace {SAMPLES_FILE} ({err.strerror}): is it open in "
                         "another program (a spreadsheet locks it on a share)? Close it and "
                         f"rerun the same command; {RUN_INDEX_FILE} is written, the table "
                         "is not", Path(out) / SAMPLES_FILE) from None
    atomic_write_text(Path(out) / RUN_INDEX_FILE, strict_json(index, indent=2) + "\n")
    return index


def _fingerprints(out: Path, names: list[str]) -> dict[str, dict]:
    """The run fingerprints of the samples ``names`` an earlier run left in ``out`` (those
    whose summary records one)."""
    found = {}
    for name in names:
        with contextlib.suppress(OSError, ValueError, TypeError, AttributeError):
            fingerprint = json.loads((Path(out) / name / SUMMARY_FILE).read_text(
                encoding="utf-8")).get("run_fingerprint")
            if isinstance(fingerprint, dict):
                found[name] = fingerprint
    return found


def _warn_of_mixed_settings(out: Path, made_with: dict[str, dict]) -> list[str]:
    """Say where the folder's outputs (name: its summary's run fingerprint; this run's and
    those an earlier run left) were made by other models or at other settings (jobs of one
    array run with other options into one --out, a sample added to a night's folder and
    given another model): their counts are not comparable. Returns how they differ, for the
    index (a wrapper that reads run.json, not the console, is told too)."""
    differ = how_settings_differ(made_with)
    if differ:
        log.warning("%s: the folder's outputs were made by other models or settings (they "
                    "differ in %s; each summary.json's run_fingerprint holds them, samples.csv's "
                    "model_path too): their counts are not comparable", out, "; ".join(differ))
    return differ


def _share_text(name: str, world_size: int, folder: Path) -> str:
    """Why a sample of a job array has no output yet: the share it falls to, and where that
    share began it (its journal, no summary), that it is writing it or was stopped in it."""
    from ctcnet.inference.journal import PARTS_DIR  # pandas: not where the base install reads

    share = f"it falls to --shard {stable_rank(name, world_size) + 1}/{world_size}"
    if (folder / PARTS_DIR).exists():
        return (f"{share}, which is writing it now" if folder_is_held(folder) else
                f"{share}; a run began it and ended before finishing it (that share's, "
                "killed or preempted, or an earlier one's): run that share again; it "
                "resumes from its journal")
    return (f"{share}: that job has not run or is still running, or the scan arrived after "
            "it ran (run that share again)")


def refusals_that_stand(index: dict, set_aside: dict, several: bool = True) -> dict:
    """Of the inputs this run set aside (name: reason), the refusals that are this run's to
    report (exit status 2): those the run's ``index`` still lists as set aside, but, in a run
    of ``several`` inputs, those another ctcnet process was writing (``held``: two runs of one
    batch, the other finishes it and lists it when it ends; a person who ran one input alone
    is told). One the index lists as an output was finished by another run since; each is
    said in a note."""
    still = {e["name"] for e in index.get("outputs", []) if "set_aside" in e}
    for name in sorted(set(set_aside) - still):
        log.info("%s: another ctcnet predict run, which held it when this one came to it, "
                 "finished it", name)
    # Held as the index found it: still held by a run at work, not one that ended without it.
    held = {e["name"] for e in index.get("outputs", [])
            if several and e.get("set_aside_kind") == "held"} & set(set_aside)
    for name in sorted(held):
        log.info("%s: another ctcnet predict run is writing it; it lists the sample when it "
                 "ends", name)
    # In the index's words: one whose holder ended since says to run it again, not to wait.
    said = {e["name"]: e["set_aside"] for e in index.get("outputs", []) if "set_aside" in e}
    return {name: said.get(name, reason) for name, reason in set_aside.items()
            if name in still and name not in held}


def refresh_run_index(out: Path) -> None:
    """``run.json``'s entries and ``samples.csv`` again from every sample's ``summary.json``
    as it is now: the review saves decisions and sign-offs into the summaries after predict
    wrote both, and a laboratory system reading either must see a signed-off sample as signed
    off. Entries without an output (set aside, missing) stay as the index has them; the rest
    of the index is predict's, with ``reviewed_at`` where an entry moved. A folder without a
    readable index, or with a run writing it, is left alone."""
    with _index_lock(out):
        index = _read_summary(Path(out) / RUN_INDEX_FILE)
        if not isinstance(index, dict) or not isinstance(index.get("outputs"), list) or \
                index.get("state") == "running":  # a run is writing it: its end writes both
            return
        entries = []
        for entry in index["outputs"]:
            if not isinstance(entry, dict) or not entry.get("name"):
                entries.append(entry)
                continue
            name = entry["name"]
            path = as_listed(Path(out) / str(name)) / "summary.json"
            read = _read_summary(path) if "summary" in entry or "kept_output" in entry \
                else None
            if read is None:
                entries.append(entry)
            elif "kept_output" in entry:  # set aside: the output it kept, as it is now
                entries.append({**entry, "kept_output": output_entry(name, read, path)})
            else:
                entries.append(output_entry(name, read, path))
        if entries != index["outputs"]:
            index = {**index, "outputs": entries, "reviewed_at": utc(time.time())}
            atomic_write_text(Path(out) / RUN_INDEX_FILE, strict_json(index, indent=2) + "\n")
        unfinished = index.get("unfinished_outputs")
        started = None
        with contextlib.suppress(TypeError, ValueError):  # an index without its start
            started = datetime.fromisoformat(index.get("started_at")).timestamp()
        _write_samples_table(out, [e for e in entries if isinstance(e, dict) and e.get("name")],
                             index.get("other_outputs") or [],
                             unfinished if isinstance(unfinished, dict) else None, started)


def unfinished_outputs(out: Path, ours=(), ended: str | None = None, earlier=()
                       ) -> dict[str, str]:
    """Sample folders in ``out`` (but ``ours``) that a run began and did not finish (its
    journal, no summary), name -> why: a run killed or preempted outright, which no index
    of its own names (``ended``: how the folder's run ended where its index says: failed,
    stopped; not of ``earlier``, the folders that index lists as another run's), or another
    run still writing it. A later run into the same folder names them, so that its index
    does not read as the whole night's."""
    from ctcnet.inference.journal import PARTS_DIR  # pandas: not where the base install reads

    found, ours = {}, {composed(name) for name in ours}
    earlier = {composed(name) for name in earlier}
    for parts in sorted(Path(out).glob(f"*/{PARTS_DIR}")):
        folder = parts.parent
        if composed(folder.name) in ours or (folder / SUMMARY_FILE).exists():
            continue
        found[folder.name] = (
            "another ctcnet predict is writing it now; it lists it when it ends"
            if folder_is_held(folder) else
            ended if ended and composed(folder.name) not in earlier else
            "a run began it and ended before finishing it (killed or preempted): running "
            "the command that named it again resumes it from its journal")
    return found


def _write_samples_table(out: Path, entries: list[dict], others: Sequence[str],
                         unfinished: dict[str, str] | None = None,
                         since: float | None = None) -> None:
    """``samples.csv``: the index's entries, the samples another run left (``others``: an
    earlier run's, ``earlier_run``, or, finished after this run began at ``since``, one run
    beside it into the same --out, tonight's) and those a run began and did not finish
    (``unfinished``: no figures, state ``missing``), a row each."""
    # Inputs set aside for sharing a sample id (named with their folders): the output that
    # sample id left says why tonight did not replace it, once.
    clashed: dict[str, list[str]] = {}
    for e in entries:
        if "set_aside" in e and output_folder_of(e["name"]) != e["name"]:
            clashed.setdefault(output_folder_of(e["name"]), []).append(e["name"])
    earlier = []
    for name in others:
        path = Path(out) / name / "summary.json"
        read = _read_summary(path)
        if read is not None:
            why = ({"set_aside": f"its sample id is shared by {' and '.join(clashed[name])}, "
                                 "set aside"} if name in clashed else {})
            # A result another run finished while this one ran (two runs into one --out) is
            # tonight's, not an earlier run's.
            beside = since is not None and counted_at(path, read, "finished_at") >= since
            earlier.append({**output_entry(name, read, path),
                            "earlier_run": None if beside else True, **why})
    # A row a sample, for statistics: a sample set aside (or not reached) with an earlier
    # output kept has that output's figures, marked as an earlier run's, with why this run
    # has none; its state and status are tonight's (none), so that a filter on "ok" or
    # "preliminary" takes no earlier result for tonight's; its status is said apart
    # (``earlier_status``): a partial scan's figures are of the blood read.
    rows = [{**e["kept_output"], **{k: e[k] for k in ("set_aside", "missing", "reason")
                                    if k in e},
             "earlier_run": True, "earlier_status": e["kept_output"].get("status"),
             "result_state": None, "status": None}
            if "kept_output" in e else e for e in entries]
    gone = [{"name": name, "missing": True, "reason": why}
            for name, why in (unfinished or {}).items()]
    write_samples_csv(out, rows + earlier + gone)


