"""A results folder audited as it lies (an archive kept for years, a copy restored): each
sample's files checked against what ctcnet recorded of them, without writing anything.

Per sample: its summary's figures against their seal (``figures_sha256``: a count or rate
changed by hand), its events tables against the digests the summary records (``events_sha256``,
``events_csv_sha256``: a call changed by hand, a spreadsheet's save), its review journals
against their seals (a decision changed or removed), and its sign-off as its record and
decisions hold now (:func:`~ctcnet.exports.sample_review.signoff_now`). The review server and
the exports check each of these where they read a sample; a data manager asks it of a whole
folder at once (``ctcnet verify --results``), read-only media included.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from ctcnet.core.file_modes import account_name, owner_and_mode
from ctcnet.core.paths import absolute, name_key, same_name
from ctcnet.errors import InputError
from ctcnet.exports.sample_review import signoff_now
from ctcnet.exports.summary_checks import (
    EDITED_RECORD,
    events_and_summary,
    result_state_not_its_own,
    review_counts_behind,
)
from ctcnet.exports.table_audit import table_not_as_index
from ctcnet.inference.figures_seal import (
    TABLE_DIGESTS,
    broken_seals,
    check_figures_sealed,
    edited_text,
    provenance_edited,
    table_as_recorded,
)
from ctcnet.inference.rerun_outputs import unreadable_review
from ctcnet.review.decision_journal import read_decisions
from ctcnet.review.decisions import REVIEW_FILE, SECOND_FILE, find_samples
from ctcnet.review.journal_seal import JournalEdited, check_as_sealed
from ctcnet.review.records_read import review_records_read
from ctcnet.review.runs import closed_folders, run_id
from ctcnet.review.signoff import (
    CALLS_CHANGED,
    CURRENT,
    EDITED,
    MODEL_CHANGED,
    SIGNOFF_FILE,
    read_signoff,
)
from ctcnet.review.signoff_words import why_not_holding

log = logging.getLogger(__name__)


def audit_run(results: str | Path) -> list[str]:
    """What a predict ``--out`` folder's own index says was left undone (none for one sample's
    folder, or a folder without ``run.json``): a run not finished (``running`` with its
    process gone: killed outright; ``stopped``; ``failed``) and sample folders a run began and
    did not finish (a journal, no summary.json). The samples' files can each be as ctcnet
    recorded them while the night is incomplete: a killed run's folder passed as intact."""
    import socket

    from ctcnet.core.processes import recorded_process_alive
    from ctcnet.inference.run_index import unfinished_outputs
    from ctcnet.io.cartridge_info import RUN_INDEX_FILE, SAMPLES_FILE

    index_file = Path(results) / RUN_INDEX_FILE
    if not index_file.is_file():  # (a sample's folder, a Python API's run: no index)
        return [f"{SAMPLES_FILE} is there but {RUN_INDEX_FILE}, the run's index written with "
                "it, is not (removed?): running its command again writes it"] \
            if (Path(results) / SAMPLES_FILE).is_file() else []
    problems = []
    try:
        index = json.loads(index_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        return [f"{RUN_INDEX_FILE} cannot be read: {err}"]
    state = index.get("state") if isinstance(index, dict) else None
    alive = False
    if state == "running":
        here = index.get("host") == socket.gethostname()
        alive = recorded_process_alive(index) is True
        problems.append(f"{RUN_INDEX_FILE} reads running: " + (
            "a run is writing the folder now; audit it once it ends" if alive else
            "its run was killed outright (its process is gone); running its command again "
            "resumes it" if here else f"a run on {index.get('host')} began it and has not "
            "ended it (killed?); running its command again resumes it"))
    elif state in ("stopped", "failed"):
        problems.append(f"{RUN_INDEX_FILE} reads {state}" + (
            f" ({index['error']})" if index.get("error") else "") + ": its run did not finish; "
            "running its command again resumes it")
    ended = (f"its run {state} before finishing it" + (f" ({index['error']})"
                                                        if index.get("error") else "")
             + ": running its command again resumes it from its journal"
             if state in ("stopped", "failed") else None)
    # (the run's own end, where its index records one: a full disk is no kill)
    problems += [f"{name}: unfinished ({why})" for name, why in unfinished_outputs(
        Path(results), ended=ended, earlier=(index.get("unfinished_outputs") or ()
                                             if isinstance(index, dict) else ())).items()]
    if state in ("running", "stopped", "failed") and not (state == "running" and alive):
        # The inputs the run was given that it never began: no folder, no journal, nothing
        # else names them (a killed night's last samples).
        problems += [f"{name}: not started (its run ended before it began it); running its "
                     "command again runs it" for name in _inputs_not_begun(Path(results),
                                                                          index)]
    if isinstance(index, dict) and state == "finished":
        problems += _index_not_as_summaries(Path(results), index)
        problems += _outputs_the_index_lacks(Path(results), index)
        if not (Path(results) / SAMPLES_FILE).is_file():  # (each run writes it with run.json)
            problems.append(f"{RUN_INDEX_FILE} reads finished, but {SAMPLES_FILE} is not "
                            "there: running its command again writes it")
    return problems


def _outputs_the_index_lacks(results: Path, index: dict) -> list[str]:
    """What a finished index does not account for: an input it lists as missing whose output
    is not in the folder (a job array's share archived alone, its other jobs' samples
    missing), and a finished sample folder it lists nowhere (moved in from another run: the
    laboratory system reading run.json and samples.csv never sees it)."""
    from ctcnet.inference.output_names import output_folder_of
    from ctcnet.inference.summary import SUMMARY_FILE

    entries = [e for e in index.get("outputs") or [] if isinstance(e, dict)]
    closed = closed_folders(results)  # (a folder this account may not enter: said apart)

    def finished(folder: Path) -> bool:
        return folder not in closed and (folder / SUMMARY_FILE).is_file()

    missing = {str(e.get("name")): (e.get("reason") or "no output",
                                    _sample_folder(results, output_folder_of(str(e.get("name")))))
               for e in entries if e.get("missing")}
    problems = [f"run.json lists {name} as missing ({why}): its output is not in this folder"
                for name, (why, folder) in missing.items()
                if folder not in closed and not finished(folder)]
    listed = {output_folder_of(str(e.get("name"))) for e in entries} | {
        n for n in index.get("other_outputs") or [] if isinstance(n, str)}
    listed = {name_key(n) for n in listed}
    strays = [p.name for p in sorted(results.iterdir()) if p.is_dir()
              and name_key(p.name) not in listed and finished(p)]
    problems += [f"{name} holds a finished output run.json lists nowhere (moved in from "
                 "another run?): a laboratory system reading run.json and samples.csv does "
                 "not see it" for name in strays]
    return problems


def _inputs_not_begun(results: Path, index: dict) -> list[str]:
    """The inputs ``run.json`` names (by output name) whose folder holds neither a summary
    nor a journal, nor a reason it records (an input set aside, a failed one)."""
    from ctcnet.inference.journal import PARTS_DIR
    from ctcnet.inference.summary import SUMMARY_FILE

    said = {e.get("name") for e in index.get("outputs") or [] if isinstance(e, dict)}
    names = [n for n in index.get("inputs") or [] if isinstance(n, str)]
    return [n for n in names if n not in said and not (results / n / SUMMARY_FILE).exists()
            and not (results / n / PARTS_DIR).exists()]


# What a laboratory system reads of each sample in run.json and samples.csv: held to the
# sample's summary.json, which the seals check (an edit of the indices alone passed as intact).
# Each is compared where the entry lacks it too (its absence is a change); every other key both
# hold is compared as well (the sign-off's reviewer and time, the result's state, the blood
# read: a key one lacks was written by another ctcnet version).
INDEX_KEYS = ("status", "events", "counts", "per_7_5_ml", "after_review",
              "after_review_per_7_5_ml", "signed_off", "model", "software", "cartridge_id")


def _sample_folder(results: Path, name: str) -> Path:
    """``results / name``, or the folder there named with the same letters in another Unicode
    form (a copy through macOS decomposes the accents of ``Pâtient``: the same sample, which
    run.json names as predict wrote it)."""
    path = results / name
    if path.exists() or not results.is_dir():
        return path
    return next((p for p in results.iterdir() if same_name(p.name, name)), path)


def _why_no_output(entry: dict) -> str:
    """How run.json's entry without an output names why it has none."""
    return "set aside" if "set_aside" in entry else "missing" if entry.get("missing") \
        else "without an output"


def _index_not_as_summaries(results: Path, index: dict) -> list[str]:
    """Where ``run.json``'s entries, or ``samples.csv``'s rows, give a sample's figures
    otherwise than its ``summary.json`` gives them (an index edited by hand)."""

    from ctcnet.inference.run_entry import output_entry, review_entry
    from ctcnet.io.cartridge_info import SAMPLES_FILE

    problems, expected = [], {}
    closed = closed_folders(results)
    for entry in index.get("outputs") or []:
        name = entry.get("name") if isinstance(entry, dict) else None
        path = _sample_folder(results, str(name)) / "summary.json"
        if name and path.parent in closed:
            continue  # (a folder this account may not enter: its own entry says so)
        if name and "summary" in entry and not path.is_file():
            problems.append(f"run.json lists {name}, whose summary.json is not there (its "
                            "folder renamed, moved or removed?)")
        if name and "summary" not in entry and "kept_output" not in entry and path.is_file():
            # Shards' folders combined by hand: the last index copied calls the others'
            # finished samples missing, and a laboratory system reads no result for them.
            problems.append(f"run.json lists {name} as {_why_no_output(entry)}, but its "
                            "folder holds a finished output (folders combined by hand?): "
                            "predict over all the inputs into this folder writes its index "
                            "from the journals, without reading a frame again")
        if not name or "summary" not in entry or not path.is_file():
            continue
        try:
            summary = json.loads(path.read_text(encoding="utf-8"))
            expected[name] = {**output_entry(name, summary, path), **review_entry(summary)}
        except EDITED_RECORD:  # (not a record, or not one as predict writes it: the sample's
            continue           # own audit says so)
        moved = [k for k in dict.fromkeys([*INDEX_KEYS, *(set(entry) & set(expected[name]))])
                 if entry.get(k) != expected[name].get(k)]
        if moved:
            problems.append(f"run.json's entry of {name} is not its summary.json's in "
                            f"{', '.join(moved)} (the index or the summary edited?)")
    # The folder's earlier outputs it lists: one removed since (a clean-up) is still a row
    # a billing or laboratory system reads, until the next run drops it.
    gone = [name for name in index.get("other_outputs") or []
            if isinstance(name, str) and not (_sample_folder(results, name)
                                              / "summary.json").is_file()]
    if gone:
        problems.append(f"run.json lists {', '.join(gone[:5])} among the folder's earlier "
                        f"outputs, whose summary.json is not there (removed since? "
                        f"{SAMPLES_FILE} still has {'its row' if len(gone) == 1 else 'their rows'}"
                        "; the next predict run into the folder drops them)")
    return problems + table_not_as_index(results / SAMPLES_FILE, index, expected)


def audit_results(results: str | Path) -> list[dict]:
    """Each sample of ``results`` (a predict ``--out`` folder, or one sample's): ``{"sample",
    "folder", "signoff": its status or None, "problems": [...], "notes": [...]}``, problems
    being what differs from ctcnet's record (none: intact)."""
    samples = find_samples(Path(results))
    many = not (Path(results) / "summary.json").is_file()
    # Folders this account may not enter may be samples: named, not passed over.
    closed = closed_folders(results) if many else []
    # A finished sample whose events table is gone is no sample the review or exports read,
    # but it is one the audit must name: left out, the folder read as intact without it.
    if many:
        samples.update({p.name: p for p in Path(results).iterdir()
                        if p.name not in samples and p not in closed and p.is_dir()
                        and not p.is_symlink() and (p / "summary.json").is_file()})
    unchecked = [{"sample": p.name, "folder": str(absolute(p)), "signoff": "not checked",
                  "problems": [f"this account ({account_name()}) may not enter it "
                               f"({owner_and_mode(p)}): not checked"], "notes": []}
                 for p in closed]
    # A sample folder that is a link to one elsewhere (moved to other storage, the link left
    # behind): the review and exports do not read it so, and a folder passed without it read
    # as intact whatever the sample held.
    unchecked += [{"sample": p.name, "folder": str(absolute(p)), "signoff": "not checked",
                   "problems": [f"a link to {os.path.realpath(p)}: not checked here; check it "
                                "where it lies (ctcnet verify --results on that folder)"],
                   "notes": []}
                  for p in (sorted(Path(results).iterdir()) if many else [])
                  if p.name not in samples and p.is_symlink() and p.is_dir()
                  and (p / "summary.json").is_file()]
    return sorted([_audit_settled(name, Path(absolute(folder)))
                   for name, folder in samples.items()] + unchecked,
                  key=lambda s: s["sample"])


def _audit_settled(name: str, folder: Path) -> dict:
    """:func:`_audit_sample` on the review records of one moment, a review going on or not:
    read apart, a decision beside the summary before it failed a healthy folder ("edited by
    hand?")."""
    with review_records_read(folder):
        return _audit_sample(name, folder)


def _seal_lines(data: dict) -> tuple[list[str], list[str]]:
    """(problems, notes) of a summary's seals of what made its figures and of the blood read
    (:data:`~ctcnet.inference.figures_seal.SEALS`)."""
    problems, notes = [], []
    edited = provenance_edited(data)
    if edited is None and "figures_sha256" in data:
        notes.append("summary.json written before ctcnet sealed what made its figures (an "
                     "earlier version's): its model, software and inputs' digests unchecked")
    # (a seal absent, an earlier ctcnet's summary: unchecked)
    problems += [edited_text([name]) for name in broken_seals(data)]
    return problems, notes


def _events_not_the_tables(data: dict, folder: Path) -> list[str]:
    """summary.json's event count against its events table's rows (the Parquet footer's
    count, no row read): no seal holds the count, and an edit of it passed the audit that the
    exports then refused, blaming the table."""
    events, path = data.get("events"), folder / "events.parquet"
    if not isinstance(events, int) or isinstance(events, bool) or not path.is_file() or \
            table_as_recorded(folder, data, "events.parquet") is False:
        return []  # (a table changed since is said by its digest)
    try:
        import pyarrow.parquet as pq

        rows = pq.ParquetFile(path).metadata.num_rows
    except Exception:  # noqa: BLE001 (an unreadable table is the digest's to say)
        return []
    return [] if rows == events else [
        f"summary.json counts {events} events where events.parquet, as predict wrote it, holds "
        f"{rows} (summary.json edited?)"]


def _audit_sample(name: str, folder: Path) -> dict:
    problems, notes = [], []
    try:
        data = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError(f"it holds a JSON {type(data).__name__}, not a run's record")
    except (OSError, ValueError) as err:
        return {"sample": name, "folder": str(folder), "signoff": None,
                "problems": [f"summary.json cannot be read: {err}"], "notes": []}
    unreadable = unreadable_review(folder)  # said, and the review left unchecked (not passed,
    for path in unreadable:                 # nor read as edited by hand)
        problems.append(f"{path.name} is {owner_and_mode(path)}, which this account "
                        f"({account_name()}) cannot read: its review and sign-off are not "
                        "checked")
    try:
        unsealed = check_figures_sealed(data, folder)
        if unsealed and "crops" in data:  # no ctcnet seals a crop folder's: not an old one
            unsealed = ("a crop folder's summary.json, which ctcnet does not seal: its "
                        "figures unchecked")
        notes += [unsealed] if unsealed else []
    except InputError as err:
        problems.append(str(err).removeprefix(f"{folder}: "))
    more, said = _seal_lines(data)
    problems += more
    notes += said
    for table, key in TABLE_DIGESTS.items():
        if table_as_recorded(folder, data, table) is not False:
            continue  # as recorded, or written before it was recorded
        path = folder / table
        if table == "events.csv" and not path.is_file() and \
                table_as_recorded(folder, data, "events.parquet") is True:
            # The docs' retention lets it go where the Parquet table, the same, is kept: an
            # audit that failed every folder so kept was no audit.
            notes.append("events.csv deleted (the retention the docs allow: events.parquet, "
                         "as predict wrote it, holds the same table)")
            continue
        problems.append(
            f"{table} is missing (summary.json records its SHA-256)" if not path.is_file() else
            f"{table} is {owner_and_mode(path)}, which this account ({account_name()}) cannot "
            "read: not checked" if not _readable(path) else
            f"{table} is not the table predict wrote (changed since: its SHA-256 is not "
            f"summary.json's {key})")
    problems += result_state_not_its_own(data) + _events_not_the_tables(data, folder)
    problems += [] if unreadable else _journals_not_as_sealed(folder)
    kept = sorted(p.name for p in (folder / "previous").glob("*-not-as-written*"))
    if kept:  # as ctcnet wrote it now, but a copy found edited was written over (kept)
        notes.append(f"previous/ keeps {len(kept)} file(s) found not as ctcnet wrote them "
                     f"and written again since ({', '.join(kept[:3])}): edited by hand once")
    made = data.get("frames_made_by")
    if isinstance(made, dict) and made:  # (a validation files what made the calls)
        notes.append("a resumed run: frames made by another build, backend or model file than "
                     "the one its summary names (" + "; ".join(f"{k}: {n}" for k, n in
                                                              made.items()) + ")")
    written = data.get("output_folder")
    # (A copy's other parent is fine, and so is the name's other Unicode form: a copy through
    # macOS decomposes its accents, and the review, crops and exports take it as the same; a
    # link to the folder is read by the folder's name, as the review reads it.)
    named = folder.resolve().name
    if isinstance(written, str) and not same_name(written, named):
        problems.append(f"its folder is named {named}, predict wrote it as {written} "
                        "(summary.json output_folder): renamed? The review server, crops and "
                        "export-events refuse it so; rename it back")
    read = events_and_summary(folder, data, problems)
    if unreadable:
        return {"sample": name, "folder": str(folder), "signoff": "not checked",
                "problems": problems, "notes": notes}
    status = _signoff_findings(folder, data, read, problems, notes)
    behind, unchecked = review_counts_behind(folder, read)
    problems += behind
    notes += unchecked
    return {"sample": name, "folder": str(folder), "signoff": status, "problems": problems,
            "notes": notes}


def _readable(path: Path) -> bool:
    try:
        with open(path, "rb"):
            return True
    except OSError:
        return False


def _journals_not_as_sealed(folder: Path) -> list[str]:
    """The decision journals changed or removed since ctcnet last wrote them (their seals)."""
    found = []
    for journal in (REVIEW_FILE, SECOND_FILE):
        try:
            check_as_sealed(folder / journal)
        except JournalEdited:
            what = "was changed" if (folder / journal).exists() else "was removed"
            found.append(f"{journal} {what} since ctcnet last wrote it (its seal)")
    return found


def _signoff_findings(folder: Path, data: dict, read, problems: list,
                      notes: list) -> str | None:
    """The sign-off's status as its record and decisions hold now (None: never signed off),
    what of it is a problem (its record altered or gone) or a note (stale, unchecked seals,
    candidates vouched for unseen) added to ``problems`` and ``notes``; ``read``: the
    sample's (events, summary), or why they could not be read."""
    try:
        if isinstance(read, Exception):
            raise read
        record = signoff_now(folder, *read, say=False)
    except EDITED_RECORD as err:
        record = {"status": f"not checked: {err}"}
    try:  # (signed off or not: a journal that cannot be read is this sample's problem)
        named = {str(r) for journal in (REVIEW_FILE, SECOND_FILE)
                 for r in read_decisions(folder, journal)["reviewer"]}
    except (OSError, InputError) as err:  # (a link planted there: this sample's, not all's)
        problems.append(f"its review decisions cannot be read: {err}")
        named = set()
    if not data.get("signoff"):  # its copy taken out of a summary whose run is signed off
        if record and record.get("status") == CURRENT:
            problems.append("summary.json names no sign-off, but signoff.json holds this "
                            "run's (its copy removed by hand?)")
        return None
    # The names the sign-off credits with its decisions are review.csv's (sealed, checked
    # above): one name written over in every copy of the record passed as intact.
    strangers = sorted(set((record or {}).get("decided_by") or {}) - named)
    if strangers:
        problems.append(f"its sign-off credits {', '.join(strangers)} with decisions "
                        f"{REVIEW_FILE} does not name: edited by hand?")
    status = record["status"] if record else _not_this_runs(folder)
    # summary.json's copy of the record (what run.json, samples.csv and the report read)
    # against the record itself: a reviewer's name changed in the copy alone passed.
    copied = data["signoff"] if isinstance(data["signoff"], dict) else {}
    differs = sorted(k for k in copied.keys() & (record or {}).keys()
                     if k not in ("status", "problem", "unchecked") and copied[k] != record[k])
    # A record of another run's calls put there (of another model's: a new numbering too).
    other_run = status == CALLS_CHANGED or (
        status == MODEL_CHANGED and not isinstance(read, Exception)
        and (record or {}).get("run_id") != run_id(read[0]))
    if differs and other_run:
        problems.append(_not_this_runs(folder))
    elif differs:
        problems.append(f"summary.json's sign-off is not its record's (signoff.json) in "
                        f"{', '.join(differs)}: edited by hand?")
    if status == EDITED or record is None:  # its record not as ctcnet left it
        problems.append(f"its sign-off does not hold: {status}" +
                        (f" ({record['problem']})" if record and record.get("problem") else ""))
    elif status != CURRENT:  # decided on since, a volume corrected: stale, not tampered
        # Why, in the words of the sign-off's line (a volume corrected, no decision since,
        # read "the review went on after it").
        notes.append(f"its sign-off is stale ({status})"
                     + (f": {why[2:]}" if (why := why_not_holding(record)) else ""))
    if record and record.get("unchecked"):
        notes.append(record["unchecked"])
    if record and status == CURRENT and record.get("unreviewed"):  # vouched for unseen
        notes.append(f"signed off with {record['unreviewed']} candidate(s) left undecided"
                     + (f": \u201c{record['note']}\u201d" if record.get("note") else ""))
    return status


def _not_this_runs(folder: Path) -> str:
    """Why summary.json's sign-off has no record of this run's calls: gone, or the record
    there signs another run's (a sign-off copied from another sample's folder read
    "withdrawn, its record is gone")."""
    signed = read_signoff(folder)
    if signed is None:
        return "withdrawn (its record is gone)"
    return (f"not of this run's calls: its record ({SIGNOFF_FILE}) signs those of run "
            f"{signed.run_id} of cartridge {signed.cartridge_id} (copied from another "
            "folder?)")
