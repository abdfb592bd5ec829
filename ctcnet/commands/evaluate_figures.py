"""What ``ctcnet evaluate`` says of a crop set's evaluation: the figures' lines, on the
console and on its page alike (:func:`summary_lines`), and the warnings its figures call for
(:func:`warnings_of`: classes the labels lack, classes of a few crops)."""

from __future__ import annotations

import numpy as np

from ctcnet.core.printable import named_counts
from ctcnet.detect.pixel_size import pixel_size_text

SAMPLES_SHOWN = 12  # samples (patients) listed on the console; report.json has them all


def summary_lines(report: dict, calibrated_on: str | None = None) -> list[str]:
    """The console's figures of a crop set's evaluation (``calibrated_on``: the crops the
    evaluated model was calibrated on here, with --calibrate-on)."""
    cnn = report["cnn"]
    markers = cnn.get("marker_calls")
    from ctcnet.evaluation.recalibration import counted_cells_text

    # The size the crops were read at decides what the model sees (and which model a folder
    # of composites gets): said beside the crops, as the report page says it.
    size = report.get("pixel_size_um")
    read_at = (f", read at {pixel_size_text(size, report.get('pixel_size_from'))}"
               if size else "")
    lines = [f"{report['n']} crops {report['class_counts']}{read_at}",
             ("calls (network and markers)" if markers else "CNN") +
             f": macro-F1 {cnn['macro_f1']:.3f}  accuracy {cnn['accuracy']:.3f}  "
             f"ECE {cnn['ece']:.3f} (uncalibrated {cnn['ece_uncalibrated']:.3f}"
             + (f", under the calibration it replaced {cnn['ece_before_recalibration']:.3f}"
                if cnn.get("ece_before_recalibration") is not None else "")
             + "; of the network's probabilities)"]
    if markers:
        changes = named_counts(markers["by_change"])
        lines.append(f"  the markers changed {markers['changed']} of the network's calls "
                     f"({changes}); the network alone: accuracy "
                     f"{markers['network_accuracy']:.3f}")
    before = cnn.get("ece_before_recalibration")
    if calibrated_on and (cnn["ece"] > cnn["ece_uncalibrated"] or
                          (before is not None and cnn["ece"] > before)):
        # (the advice below is the step just taken: a temperature from a few crops a class
        # is noisy, and crops unlike these fit it for another look)
        worse = ("none" if cnn["ece"] > cnn["ece_uncalibrated"] else
                 "the one it replaced")
        lines.append(f"  the temperature fitted here on {calibrated_on} fits these crops worse "
                     f"than {worse}: its crops are few or unlike these (more labelled crops of "
                     "this look refit it better)")
    elif cnn["ece"] > cnn["ece_uncalibrated"]:
        lines.append("  the model's temperature (its calibration) fits these crops worse than "
                     "none: --calibrate-on VAL_CROPS --save-model refits it on crops like them")
    called = _calls_into(cnn)
    for name, pc in cnn["per_class"].items():
        # A class never called has no precision (0/0): report.json keeps sklearn's 0.0.
        precision = f"{pc['precision']:.3f}" if called.get(name, 1) else "n/a (never called)"
        lines.append(f"  {name:10s} P {precision}  R {pc['recall']:.3f}  "
                     f"F1 {pc['f1']:.3f}  n {pc['support']}")
    for name, entry in cnn.get("counted", {}).items():
        lines.append(f"  {name:10s} as predict counts it: {entry['held']} held by the guard; "
                     f"counted P {_share(entry['precision'])}  R {_share(entry['recall'])}")
    samples = cnn.get("by_sample", {})
    for name, entry in list(samples.items())[:SAMPLES_SHOWN]:
        recall = ", ".join(f"{c} {r['k']}/{r['n']}" for c, r in entry["recall"].items())
        lines.append(f"  sample {name}: {entry['n']} crops, accuracy {entry['accuracy']:.3f} "
                     f"(recall {recall})")
    if len(samples) > SAMPLES_SHOWN:
        lines.append(f"  ... {len(samples) - SAMPLES_SHOWN} more samples (report.json "
                     "cnn.by_sample)")
    band = cnn["review_band"]
    if band.get("auto_precision") is not None:
        shown = (f"; {band['shown_fraction']:.1%} of crops the network's doubt that could "
                 "change a reported count (before the markers' word and the guard's flags: "
                 "what predict shows is the review list below)" if "shown_fraction" in band
                 else "")
        missed = (f"; {counted_cells_text(band)} neither counted nor shown "
                  f"{band['counted_missed']} of {band['counted_cells']}"
                  if band.get("counted_cells") else "")
        lines.append(f"review band (the network's top p < {band['threshold']:.2f}): "
                     f"{band['reviewed_fraction']:.1%} of crops ({band['reviewed']} of "
                     f"{band['n']}), the calls above it {band['auto_precision']:.1%} precise "
                     f"({band['auto_right']} of {band['auto_calls']}){shown}{missed}")
    listed = cnn.get("review_list")
    if listed:  # (the band's share above is the network's doubt alone)
        lines.append(f"review list as predict makes it of these crops (the guard's flags "
                     f"included): {listed['share']:.1%} ({listed['events']} of {listed['n']})")
    prior = report.get("prior", "balanced")
    lines.append(f"calls above at prior {prior}" + (" (the most probable class)"
                                                     if prior == "balanced" else ""))
    rule = cnn.get("deployment_rule")
    if rule:
        lines.append("the model's cartridge prevalence rule " + ", ".join(
            f"{k} {v:+.2f}" for k, v in rule["log_weights"].items()) +
            " would change the network's own recall on these crops, before the markers "
            "take part (--prior cartridge): "
            + ", ".join(f"{k} {v['plain']:.3f} -> {v['with_rule']:.3f}"
                        for k, v in rule["recall"].items()))
    for name, base in report.get("baselines", {}).items():
        margin = report["cnn_minus_baseline"][name]["macro_f1"]
        lines.append(f"{name}: macro-F1 {base['macro_f1']:.3f} (CNN {margin:+.3f})")
    if not report.get("baselines") and report.get("baseline_training"):
        lines.append(f"baselines: {report['baseline_training']}")
    return lines + [f"note: {w}" for w in report.get("warnings", [])]


def _share(entry: dict) -> str:
    """``0.967 (58/60, 95 % CI 0.89-0.99)``, or ``n/a (0/0)``."""
    if entry["value"] is None:
        return f"n/a ({entry['k']}/{entry['n']})"
    low, high = entry["ci95"]
    return f"{entry['value']:.3f} ({entry['k']}/{entry['n']}, 95 % CI {low:.2f}-{high:.2f})"


def warnings_of(report: dict) -> list[str]:
    """What the figures of ``report`` call for a word about (classes absent, few crops)."""
    return [w for w in (one_call_warning(report), absent_classes_warning(report),
                        few_crops_warning(report)) if w]


def one_call_warning(report: dict) -> str | None:
    """A network that calls every crop one class of a set labelled in several: it tells
    nothing apart, and its accuracy is that class's share (0.725 of a set 72 % leukocytes, with
    no word; train warns of such a model, evaluate scored one from elsewhere as any other)."""
    cnn = report["cnn"]
    names, matrix = list(cnn["class_names"]), np.asarray(cnn["confusion"])
    if matrix.ndim != 2 or not matrix.sum() or int((matrix.sum(axis=1) > 0).sum()) < 2:
        return None
    # The network's own calls: the calls, each change the markers made taken back.
    called = dict(zip(names, matrix.sum(axis=0).tolist()))
    for change, n in ((cnn.get("marker_calls") or {}).get("by_change") or {}).items():
        before, _, after = change.partition("->")
        if before in called and after in called:
            called[before], called[after] = called[before] + n, called[after] - n
    used = [name for name, n in called.items() if n > 0]
    if len(used) != 1:
        return None
    share = matrix.sum(axis=1)[names.index(used[0])] / matrix.sum()
    return (f"the network calls every crop {used[0]}: it tells none of the classes apart "
            f"(its accuracy is the share of {used[0]} crops, {share:.3f}, what calling every "
            f"crop {used[0]} scores); a model that learnt nothing usable, or crops it cannot "
            "read (channels, pixel size)")


def absent_classes_warning(report: dict) -> str | None:
    """What a macro-F1 over a crop set that lacks some of the model's classes does not say."""
    absent = report["cnn"].get("absent_classes") or []
    if not absent:
        return None
    present = list(report["cnn"]["per_class"])
    over = (f"is {present[0]}'s F1 alone" if len(present) == 1
            else f"averages {', '.join(present)} only")
    called = report["cnn"].get("absent_predicted") or {}
    wrong = "; ".join(f"{n} crop(s) called {name}, every one wrong" for name, n in
                      called.items() if n)
    return (f"the labels hold no {', '.join(absent)}: macro-F1 {over} and says nothing of how "
            f"{'that class is' if len(absent) == 1 else 'those classes are'} told apart"
            + (f" ({wrong}: in a negative control, its false calls; in a folder of "
               "those classes, its labels, panel.json's channel order or its pixel size "
               "misread)" if wrong else ""))


# A class scored on fewer crops than this weighs in the macro-F1 as much as any other.
FEW_FOR_F1 = 10


def few_crops_warning(report: dict) -> str | None:
    """A macro-F1 that rests, a class's share, on a class of a few crops (a cluster on one
    crop made a quarter of a 1.000)."""
    few = {name: pc["support"] for name, pc in report["cnn"]["per_class"].items()
           if pc["support"] < FEW_FOR_F1}
    if not few or len(report["cnn"]["per_class"]) < 2:
        return None
    return (f"{', '.join(f'{name} on {n} crop(s)' for name, n in few.items())}: macro-F1 "
            f"weighs each class alike, so 1/{len(report['cnn']['per_class'])} of it rests on "
            f"{'that class' if len(few) == 1 else 'each of them'}; read the per-class figures "
            "with their n")


def _calls_into(cnn: dict) -> dict[str, int]:
    """The crops called each class (the confusion matrix's columns), where the report has it."""
    names, confusion = cnn.get("class_names"), cnn.get("confusion")
    if not names or not confusion:
        return {}
    return {name: int(sum(row[k] for row in confusion)) for k, name in enumerate(names)}
