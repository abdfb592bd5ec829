"""What ``ctcnet evaluate RESULTS --expected FILE`` says of a spike-in validation on the
console (:func:`~ctcnet.evaluation.spike_in.spike_report`'s figures): per level the rates,
CVs and pooled recovery with its 95 % interval, the line, the limits with the blanks that
carried calls, and the tubes whose recovery suggests a swapped or mislabelled tube."""

from __future__ import annotations


def say_spike_in(report: dict) -> None:
    """The figures of the automatic counts and, where every sample was reviewed, of the
    counts after review, each with the tubes out of line; then what the columns mean."""
    say_table(report, report["class"])
    if report["after_review"]:
        print("after review (every sample signed off, its undecided calls as called):")
        say_table(report["after_review"], report["class"], "after review: ")
    print(f"recovery: {report['recovery_method']}")
    print("Poisson CV: " + (
        "what pipetting the spike alone would have added to the CV (1/sqrt(cells spiked)); "
        "these tubes' cells were counted (a level column), so their CV holds none of it"
        if report.get("level_column") else
        "the part of the CV that pipetting the spike alone gives (1/sqrt(cells spiked)), "
        "whatever the assay does"))


def say_table(reading: dict, positive: str = "ctc", said: str = "") -> None:
    """The levels, the line and the limits of one reading of the counts, then its tubes out
    of line (``said``: what the warnings name the reading)."""
    print(f"{'level':>8s} {'cells spiked':>12s} {'samples':>7s} {'expected per 7.5 mL':>19s} "
          f"{'called per 7.5 mL':>18s} {'CV':>6s} {'Poisson CV':>10s}  recovery (95 % CI)")
    for level in reading["levels"]:
        mean, cv = level["mean_called_per_7_5_ml"], level["cv"]
        print(f"{level['level'][:8]:>8s} {cells_text(level['spiked']):>12s} {level['samples']:7d} "
              f"{rate_shown(level['mean_expected_per_7_5_ml']):>19s} {rate_shown(mean):>18s} "
              f"{shown(cv, '.0%'):>6s} {shown(level['poisson_cv'], '.0%'):>10s}  "
              f"{recovery_text(level)}")
    empty = [(level, tube) for level in reading["levels"]
             for tube in level.get("spiked_without_calls", ())]
    if empty:
        name = "CTC" if positive == "ctc" else f"{positive} call"
        named = ", ".join(f"{tube['sample_id']} (level {level['level']}, "
                          f"{cells_text(tube['cells_spiked'])} cells spiked)"
                          for level, tube in empty)
        print(f"{said}spiked tubes with no {name} found: {named}; a spike that did not "
              "happen, or a blank labelled as spiked? (its review page shows its events)")
    line = reading["linearity"]
    if line:  # (an R^2 of calls all alike is none; an interval's ends apart by "to")
        print(f"linearity over {line['samples']} spiked samples: called = "
              f"{line['slope']:.3f} (95 % CI {shown(line['slope_ci95'][0], '.3f')} to "
              f"{shown(line['slope_ci95'][1], '.3f')}) x expected {line['intercept']:+.2f}, "
              f"R^2 {shown(line['r2'], '.3f')}"
              + (" (every spiked tube called alike: no line to fit)"
                 if shown(line["r2"], ".3f") == "-" else ""))
    else:
        print("linearity: none (it needs 3 or more spiked tubes of 2 or more expected "
              "rates)")
    lob, lod = reading["limit_of_blank_per_7_5_ml"], reading["limit_of_detection_per_7_5_ml"]
    results = f"{lod['results']} result{'' if lod['results'] == 1 else 's'}"
    print("limit of blank: " + limit_shown(lob["value"])
          + f" per 7.5 mL, {lob['method']}")
    if lob.get("blanks_with_calls"):
        print(f"  {_blanks_text(lob['blanks_with_calls'], positive)}")
    print("limit of detection: " + limit_shown(lod["value"])
          + f" per 7.5 mL from {results}, {lod['method']}"
          + (f"; NOT VERIFIED: {lod['warning']}" if lod.get("warning") else ""))
    for finding in reading.get("suspect_tubes", ()):
        tubes = " and ".join(f"{s} ({r:.0%})" for s, r in zip(finding["samples"],
                                                              finding["recoveries"]))
        print(f"{said}CHECK THE LABEL{'S' if len(finding['samples']) > 1 else ''} of {tubes}, "
              f"level {finding['level']}: {finding['reason']}; a swapped or mislabelled tube?")


def recovery_text(level: dict) -> str:
    """A level's pooled recovery with its interval in whole per cent (the ends as the report
    rounds them, outward), ``-`` for a blank."""
    if level.get("recovery") is None:
        return "-"
    ci = level.get("recovery_ci95")
    return f"{level['recovery']:.0%}" + (
        f" ({100 * ci[0]:.0f}-{100 * ci[1]:.0f}%)" if ci else "")


def _blanks_text(blanks: list[dict], positive: str) -> str:
    """The blanks that carried calls, each with its cells called: the limit of blank is
    theirs, and a spiked tube labelled as a blank reads so too."""
    name = "CTC" if positive == "ctc" else f"{positive} call"
    named = ", ".join(f"{b['sample_id']} {b['cells_called']} {name}"
                      f"{'' if b['cells_called'] == 1 else 's'} "
                      f"({rate_shown(b['called_per_7_5_ml'])} per 7.5 mL)" for b in blanks)
    return (f"blanks with calls: {named}; false calls, or a spiked tube labelled as a blank? "
            "(its review page shows the calls)")


def cells_text(cells: float) -> str:
    """Cells spiked as counted: whole where they are (1000, not 1e+03), else one decimal (a
    level's mean or a partial scan's share of its tube's)."""
    return f"{cells:.0f}" if float(cells).is_integer() else f"{cells:.1f}"


def shown(value, spec: str) -> str:
    """A figure as the console shows it, ``-`` where there is none."""
    return "-" if value is None or value != value else format(value, spec)


def limit_shown(value) -> str:
    """A limit per 7.5 mL as the console says it: rounded up, never under the limit
    (:func:`ctcnet.evaluation.spike_in.limit_text`), ``-`` where there is none."""
    from ctcnet.evaluation.spike_in import limit_text

    return "-" if value is None or value != value else limit_text(value)


def rate_shown(value) -> str:
    """A rate per 7.5 mL as every output says it (4.998 reads 4.99, never 5.00 on a cut-off
    of 5: :func:`ctcnet.inference.counts.per_volume_text`), ``-`` where there is none."""
    from ctcnet.inference.counts import per_volume_text

    return "-" if value is None or value != value else per_volume_text(value)
