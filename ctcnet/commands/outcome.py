"""What a ``ctcnet predict`` run came to, as it says at its end: the line it prints for each
input it ran, from that input's ``summary.json`` data (the same words whether one process ran
the input or ``--processes`` shared the inputs out: the parent reads each child's
summary.json), its errors, and its exit status."""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from pathlib import Path

from ctcnet.commands.predict_processes import PARENT_ENV
from ctcnet.core.printable import named_counts, printable, printable_name, unmeasured_text
from ctcnet.inference.counts import held_apart
from ctcnet.inference.result_state import partial_in_brief, signoff_holds
from ctcnet.nn.calls import COUNTED_CLASSES


def outcome_line(name: str, summary: dict, dest: Path) -> str:
    """``name``'s outcome: a cartridge's status, events, counts (per 7.5 mL), the calls the
    guard held for a person, the events on the review list, skipped frames and time; a crop
    set's crops, counts (at its prior), held calls, its review list and time; then where it
    went (``dest``)."""
    # The counts module: per-volume wording shared with the report (imported when used, as
    # the command modules import the library).
    from ctcnet.inference.counts import per_volume_text

    held = (summary.get("tally") or {}).get("held", summary.get("held")) or {}
    held = {k: v for k, v in held.items() if v}
    calls = named_counts(summary.get("counts"), "no calls")
    if "crops" in summary:  # a crop set: no status, blood volume or frames
        prior = summary.get("prior")
        facts = [f"{summary['crops']} crops ({calls}" + (f"; prior {prior})" if prior else ")")]
        if summary.get("pixel_size_from") == "estimated from the nuclei":  # --pixel-size auto
            facts.insert(1, f"read at {summary.get('pixel_size_um'):.3f} um/px estimated from "
                            "the nuclei")
    else:
        # Each rate with its 95 % blood-draw interval, as the report gives it: a rate near a
        # cut-off reads differently with it.
        bounds = (summary.get("tally") or {}).get("per_7_5_ml_interval") or {}
        per75 = ", ".join(f"{k} {per_volume_text(v)}" + _interval_text(bounds.get(k))
                          for k, v in (summary.get("per_7_5_ml") or {}).items()
                          if v is not None) or "n/a"
        facts = [str(summary.get("status")),
                 f"{summary.get('events')} events ({calls}; per 7.5 mL: {per75})"]
    signoff = summary.get("signoff")
    if isinstance(signoff, dict):
        # The figures a lab reports once a sample is signed off: the model's alone above
        # would be read as the result.
        signed_bounds = signoff.get("after_review_per_7_5_ml_interval") or {}
        signed = ", ".join(f"{k} {per_volume_text(v)}" + _interval_text(signed_bounds.get(k))
                           for k, v in (signoff.get("after_review_per_7_5_ml") or {}).items()
                           if v is not None) or "n/a"
        status = signoff.get("status", "current")
        facts.append(f"signed off by {signoff.get('reviewer')} at {signed} per 7.5 mL"
                     + ("" if status == "current" else
                        f" ({status}: it no longer holds; review and sign it off again)"))
    elif isinstance(summary.get("reviewed"), dict) and summary["reviewed"].get("reviewed"):
        # Decisions made, none signed: the counts above stay the model's until a sign-off.
        facts.append(f"{summary['reviewed']['reviewed']} event(s) decided, not signed off")
    # The guard holds a counted class's call out of the count; another call it flags (a
    # possible missed CTC, one unlike the training data) is shown, nothing held back, and
    # said beside the calls above, which do not hold it (summary.json's held and counts).
    # (a cartridge's tally says them, a crop set's summary; an empty list is a list)
    reported = next((r for r in ((summary.get("tally") or {}).get("reported"),
                                 summary.get("reported")) if r is not None), COUNTED_CLASSES)
    counted_held, flagged = held_apart(held, reported)
    if counted_held:
        facts.append(f"held for review by the guard ({named_counts(counted_held)})")
    if flagged:
        facts.append("flagged for review by the guard, not in the calls above "
                     f"({named_counts(flagged)})")
    # A therapy plane's figure (HER2), which the report and samples.csv carry: said here too.
    planes = (summary.get("unread_markers") or {}).get("planes") or {}
    above = [f"{name} {r['counted_ctcs_above']} of {r['counted_ctcs']}{unmeasured_text(r)}"
             for name, r in planes.items() if r.get("counted_ctcs_above") is not None]
    if above:
        facts.append(f"counted CTCs above the leukocytes in {', '.join(above)}")
    listed = summary.get("review_list")
    if isinstance(listed, dict) and listed.get("events") is not None:
        # (a crop set's are shown in its index.html: ctcnet review serves cartridges)
        facts.append(f"{listed['events']} crop(s) sent to review (its index.html shows them)"
                     if "crops" in summary else f"{listed['events']} event(s) on the review list")
    frames = summary.get("frames") or {}
    if frames.get("skipped"):
        # What to do about them: the same command reads those frames alone again.
        facts.append(f"{frames['skipped']} frame(s) skipped (once fixed, the same command "
                     "reads them and keeps the rest)")
    if frames.get("resumed_from_journal"):
        made = summary.get("frames_made_by")  # where another backend or ctcnet made any
        facts.append(f"{frames['resumed_from_journal']} of {frames.get('total')} frame(s) "
                     "from an earlier run's journal" + (
                         " (made by " + "; ".join(f"{who}: {n}" for who, n in made.items())
                         + ")" if isinstance(made, dict) and made else ""))
    # Why a sample is partial (frames missing from the folder, a scan's other trouble): the
    # first reason in words, the rest in summary.json.
    problems = summary.get("problems") or []
    if problems:
        lead = problem_lead(problems[0])
        more = f"; {len(problems) - 1} more" if len(problems) > 1 else ""
        facts.append(lead + (f" (whole in summary.json{more})" if lead != problems[0] or more
                             else ""))
    seconds = (summary.get("timings_s") or {}).get("total")
    if seconds is not None:
        facts.append(f"{seconds:.1f} s")
    return f"{name}: {', '.join(facts)} -> {dest}"


def say_error(text: str, log) -> None:
    """An error line of the run's end, on stderr and in its log."""
    print(f"ctcnet predict: error: {printable(text)}", file=sys.stderr)
    log.note(text, logging.ERROR)


def problem_lead(text: str, room: int = 160) -> str:
    """A problem's lead, up to its first aside (`` (``, ``; ``) past its first words, where it
    runs past ``room`` characters: a crowded sample's 600-character reason, said in full by
    its warning and in summary.json, was a third time in its outcome line."""
    if len(text) <= room:
        return text
    cuts = [i for i in (text.find(" (", 20), text.find("; ", 20)) if 0 < i <= room]
    return text[:min(cuts)] if cuts else text[:room].rsplit(" ", 1)[0] + " ..."


def outcome_lines(summaries, out, failed_reports: dict, set_aside: int = 0,
                  tally: bool = False, others: int = 0) -> list[str]:
    """What each input came to, a line each; with ``tally``, the batch's :func:`batch_line`
    after them (``set_aside``: how many inputs were refused; ``others``: how many another run
    finished or is writing)."""
    from ctcnet.inference.summary import RunSummary

    lines, results = [], {}
    for s in summaries:
        name = s.sample_id if isinstance(s, RunSummary) else Path(s.dataset).name
        if name in failed_reports:  # no summary.json written
            lines.append(f"{name}: no result, its report could not be written (below); the "
                         "same command resumes it")
            results[name] = {"status": "missing"}  # (run.json's word; "failed": no frame read)
            continue
        results[name] = _with_signoff(s.to_dict(), out / name)
        lines.append(outcome_line(name, results[name], out / name))
    line = batch_line(results, set_aside, out, others) if tally else None
    return lines + ([line] if line else [])


def retallied(lines: list[str], summaries, out, failed_reports: dict, set_aside: int,
              standing: int, tally: bool) -> list[str]:
    """``lines`` with the batch's tally made again where fewer of the ``set_aside`` inputs'
    refusals stand than were counted (two runs of one batch: another run finished or holds
    the rest, and the tally said "set aside (below)" over no line below)."""
    if not tally or standing >= set_aside:
        return lines
    return outcome_lines(summaries, out, failed_reports, standing, True, set_aside - standing)


def batch_line(results: dict, set_aside: int, out: Path, others: int = 0) -> str | None:
    """A batch's tally under its lines (None for a single input): how many inputs read ok,
    partial or failed and which, how many were set aside, the events on the review lists,
    and where the table of them all is (``samples.csv``). ``results``: each input's
    summary.json data by name. The operator of a night's twenty cartridges reads it before
    the twenty lines above it."""
    if len(results) + set_aside + others < 2:
        return None
    by_status: dict[str, list[str]] = {}
    for name, summary in results.items():
        status = "crop sets" if "crops" in summary else str(summary.get("status") or "failed")
        by_status.setdefault(status, []).append(name)
    parts = []
    for status in ("ok", "partial", "failed", "missing", "crop sets"):
        names = by_status.pop(status, [])
        if names or status == "ok":
            # A partial sample with why (a frame short, a channel order in doubt): the
            # operator reads this line, not the twenty above it.
            why = {n: partial_in_brief(results[n]) if status == "partial" else ""
                   for n in names[:5]}
            joint = "; " if any(why.values()) else ", "
            # (the rest as a sample count of its own: "and 1 more" after a reason read as it)
            named = "" if status in ("ok", "crop sets") else (
                " (" + joint.join(f"{n}: {why[n]}" if why[n] else n for n in names[:5])
                + (f"{joint}and {len(names) - 5} more {status}" if len(names) > 5 else "")
                + ")")
            parts.append(f"{len(names)} {status}{named}")
    parts += [f"{len(names)} {status}" for status, names in by_status.items()]
    if set_aside:
        parts.append(f"{set_aside} set aside (below)")
    if others:  # two runs of one batch: not this run's refusals (run.json lists them)
        parts.append(f"{others} finished or being written by another run")
    # A cartridge's listed events and a crop set's listed crops, each said as what they are.
    listed = {"event(s)": 0, "crop(s)": 0}
    for r in results.values():
        if isinstance(r.get("review_list"), dict):
            listed["crop(s)" if "crops" in r else "event(s)"] += r["review_list"].get("events") or 0
    review = " and ".join(f"{n} {what}" for what, n in listed.items()
                          if n or (what == "event(s)" and not listed["crop(s)"]))
    # A sign-off the decisions or counts moved on from is no result signed: said apart.
    signoffs = [r["signoff"] for r in results.values() if isinstance(r.get("signoff"), dict)]
    signed = sum(signoff_holds({"signoff": s}) for s in signoffs)
    stale = len(signoffs) - signed
    return (f"{len(results) + set_aside + others} inputs: {', '.join(parts)}; {review} "
            f"on the review lists, {signed} signed off"
            + (f" ({stale} more sign-off(s) no longer hold: sign off again)" if stale else "")
            + "; the table of them all: "
            f"{out / 'samples.csv'}")


def _with_signoff(summary: dict, folder: Path) -> dict:
    """``summary`` with the sign-off record its summary.json holds, if any: the review's
    refresh writes it there once the run has ended, not into the run's own summary."""
    if "signoff" in summary or "crops" in summary:
        return summary
    try:
        written = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return summary
    signoff = written.get("signoff") if isinstance(written, dict) else None
    return {**summary, "signoff": signoff} if isinstance(signoff, dict) else summary


def _one_reason(summary) -> tuple[int, str] | None:
    """(frames, the first frame's reason) where every skipped frame of ``summary`` was skipped
    for the same reason but for its file's name and its numbers (a panel.json that is not the
    files', a wrong value range, a channel file missing from every frame), else None."""
    kinds, first = set(), None
    skipped = getattr(summary, "skipped_frames", None) or []
    for entry in skipped:
        reason = str(entry.get("reason", ""))
        head, sep, tail = reason.partition(": ")
        said = tail if sep and entry.get("frame", "\0") in head else reason
        first = first or said
        kinds.add(re.sub(r"\d+(\.\d+)?", "#", said))  # frame names and values aside
    return (len(skipped), first) if len(skipped) > 1 and len(kinds) == 1 else None


def run_outcome(summaries, lines: list[str], set_aside: dict, quiet: bool, failed_reports: dict,
             log) -> int:
    """Say what each input came to (``lines``, unless ``quiet``; the log has them) and every
    failure, and return the exit status: 2 when an input was set aside (refused) or a report
    failed, 3 when a sample had no readable frame."""
    from ctcnet.inference.summary import RunSummary

    failed = [s.sample_id for s in summaries
              if isinstance(s, RunSummary) and s.status == "failed"]
    if not quiet:
        for line in lines:
            print(line)
    if failed:
        # A sample with no readable frame is a failure, never a clean negative: the summary
        # says "failed" and the exit status is non-zero (3: finished, but some sample failed).
        say_error(f"no readable frame in sample(s) {', '.join(failed)}; see skipped_frames in "
                  "their summary.json", log)
        for summary in summaries:  # one cause for every frame: said, it is the sample's
            common = _one_reason(summary) if getattr(summary, "sample_id", None) in failed \
                else None
            if common:
                say_error(f"{summary.sample_id}: every frame ({common[0]}) alike, the first: "
                          f"{common[1]}", log)
    # A refused input: 2, once the others have run. A process of a --processes run keeps it
    # to its log: the run says each input's ending once, at its end (said twice, before).
    child = bool(os.environ.get(PARENT_ENV))
    for name, reason in set_aside.items():
        text = f"{printable_name(name)} was set aside: {reason}"
        if child:
            log.note(text, logging.ERROR)
        else:
            say_error(text, log)
    for reason in failed_reports.values():
        say_error(reason, log)
    return 2 if set_aside or failed_reports else 3 if failed else 0


def _interval_text(bounds) -> str:
    """" (95 % 0.30-9.03)" for a rate's interval, "" where there is none."""
    from ctcnet.inference.counts import interval_text

    if not isinstance(bounds, (list, tuple)) or len(bounds) != 2 or \
            not all(isinstance(b, (int, float)) for b in bounds):
        return ""
    return f" (95 % {interval_text(bounds[0], bounds[1], '-')})"
