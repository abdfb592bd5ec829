"""What ``ctcnet evaluate NEW_RESULTS --expected OLD_RESULTS`` adds to a method comparison
where the reference is another model's predict output of the same scans
(:mod:`ctcnet.evaluation.model_comparison`): what made each side, the events whose call, count
or review changed, and what it says of them on the console."""

from __future__ import annotations

from pathlib import Path

from ctcnet.core.printable import named_counts


def model_comparison(reference_runs, summaries: dict, read_from: dict,
                     positive: str = "ctc") -> dict | None:
    """Where the reference is another model's run: what made each side, and the events of
    each scan both read (the same ``cartridge_id``, a rate on each side) whose call, count or
    review changed, and the reference's samples this run did not read."""
    if reference_runs is None:
        return None
    from ctcnet.evaluation.model_comparison import event_changes, has_rate, makers_of

    both = [key for key in summaries if key in reference_runs]
    # A run that failed read no frame: every event of the other would read as a change.
    rated = [key for key in both if has_rate(summaries[key], positive)
             and has_rate(reference_runs[key][1], positive)]
    same = [key for key in rated if summaries[key].get("cartridge_id") and
            summaries[key].get("cartridge_id") == reference_runs[key][1].get("cartridge_id")]
    changes, table = event_changes([(key, reference_runs[key][0], read_from[key])
                                    for key in same], positive)
    # A sample scanned again between the runs: its counts differ by the scan as much as by
    # the model, said beside the figures that pool it.
    changes["other_scans"] = [key for key in rated if key not in same]
    changes["samples_without_rate"] = [key for key in both if key not in rated]
    return {"models": makers_of(summaries[k] for k in both),
            "reference_models": makers_of(s for _, s in reference_runs.values()),
            "reference_not_read": [key for key in reference_runs if key not in summaries],
            "event_changes": changes, "_table": table}


def _made_by_text(made_by) -> str:
    """A resumed run's makers of its frames, where another build or model file made some: the
    calls are theirs, not the finishing run's build named before it."""
    if not made_by:
        return ""
    return " [its resumed samples' frames made by " + "; ".join(
        f"{maker}: {count}" for maker, count in dict(made_by).items()) + "]"


def say_models(report: dict) -> None:
    """What made each side, and the events whose call, count or review changed."""
    def named(models: list[dict]) -> str:
        return "; ".join(f"{Path(m['path'] or 'a model in memory').name} (SHA-256 "
                         f"{(m['sha256'] or '?')[:12]}..., {m['software']}"
                         + (f", frames on {m['frame_device']}" if m.get("frame_device") else "")
                         + ")" + _made_by_text(m.get("frames_made_by")) for m in models)

    print(f"reference: {named(report['reference_models'])}")
    print(f"ctcnet:    {named(report['models'])}")
    changes = report["event_changes"]
    named_class = report.get("class", "ctc")
    ctc = changes[f"counted_{named_class}"]
    moves = named_counts(changes["by_change"])
    print(f"events of the same scans ({changes['samples']} sample(s), "
          f"{changes['events_paired']} paired; {changes['events_reference_only']} found by the "
          f"reference alone, {changes['events_compared_only']} by ctcnet alone): calls changed "
          f"{changes['calls_changed']} ({moves}), counting changed "
          f"{changes.get('counting_changed', 0)}"
          + (f" ({named_counts(changes['by_counting_change'])})"
             if changes.get("by_counting_change") else "")
          + f", review changed {changes['review_changed']}; "
          f"{'CTCs' if named_class == 'ctc' else named_class} counted by ctcnet alone "
          f"{ctc['compared_only']}, by the reference alone "
          f"{ctc['reference_only']} (McNemar exact p = {ctc['mcnemar_exact_p']:.3g})"
          + (f"; {changes['frames_one_run_read']} frame(s) one run alone read (the other "
             "skipped it) not compared" if changes.get("frames_one_run_read") else ""))
    if report.get("reference_not_read"):
        print(f"{len(report['reference_not_read'])} sample(s) of the reference this run did "
              f"not read, not compared: {', '.join(report['reference_not_read'])}")
    if changes.get("samples_without_rate"):
        print("events not compared, no rate on one side (its run failed): "
              + ", ".join(changes["samples_without_rate"]))
    if changes["other_scans"]:
        print(f"another scan than the reference's (cartridge_id differs; its counts are in "
              f"the figures above, its events not compared): {', '.join(changes['other_scans'])}")
