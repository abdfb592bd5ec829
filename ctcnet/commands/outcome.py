"""The line ``ctcnet predict`` prints for each input it ran, from that input's ``summary.json``
data: the same words whether one process ran the input or ``--processes`` shared the inputs
out (the parent reads each child's summary.json)."""

from __future__ import annotations

from pathlib import Path


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
    if "crops" in summary:  # a crop set: no status, blood volume or frames
        prior = summary.get("prior")
        facts = [f"{summary['crops']} crops",
                 f"{summary.get('counts')}" + (f" (prior {prior})" if prior else "")]
    else:
        per75 = ", ".join(f"{k} {per_volume_text(v)}" for k, v in
                          (summary.get("per_7_5_ml") or {}).items() if v is not None) or "n/a"
        facts = [str(summary.get("status")), f"{summary.get('events')} events",
                 f"{summary.get('counts')} (per 7.5 mL: {per75})"]
    if held:
        facts.append(f"held for review by the guard {held}")
    listed = summary.get("review_list")
    if isinstance(listed, dict) and listed.get("events") is not None:
        facts.append(f"{listed['events']} event(s) on the review list")
    frames = summary.get("frames") or {}
    if frames.get("skipped"):
        # What to do about them: the same command reads those frames alone again.
        facts.append(f"{frames['skipped']} frame(s) skipped (once fixed, the same command "
                     "reads them and keeps the rest)")
    if frames.get("resumed_from_journal"):
        facts.append(f"{frames['resumed_from_journal']} of {frames.get('total')} frame(s) "
                     "from an earlier run's journal")
    # Why a sample is partial (frames missing from the folder, a scan's other trouble): the
    # first reason in words, the rest in summary.json.
    problems = summary.get("problems") or []
    if problems:
        more = f" (and {len(problems) - 1} more in summary.json)" if len(problems) > 1 else ""
        facts.append(f"{problems[0]}{more}")
    seconds = (summary.get("timings_s") or {}).get("total")
    if seconds is not None:
        facts.append(f"{seconds:.1f} s")
    return f"{name}: {', '.join(facts)} -> {dest}"
