"""The fine-tuned model's cards: ``<name>.md`` for a person (base, data, settings, the figures
that decide whether to use it, what was said while it was made) and ``<name>.json`` for the
model registry (:func:`write_registry_card`), written with the model as one
(:func:`write_model_and_cards`)."""

from __future__ import annotations

import json
from pathlib import Path

from ctcnet.core.printable import named_counts
from ctcnet.detect.pixel_size import pixel_size_text
from ctcnet.evaluation.calibration import MIN_CALIBRATION_CROPS
from ctcnet.evaluation.recalibration import (
    MIN_CALIBRATION_PER_CLASS,
    counted_cells_text,
    leaks_line,
)
from ctcnet.evaluation.recalibration import REFERENCE_SEED as SIM_TEST_SEED
from ctcnet.io.atomic import atomic_write_text
from ctcnet.io.written_together import written_together
from ctcnet.nn.decision_rule import FUSION_NOT_KEPT


def write_model_and_cards(out: Path, tuned, spec, record: dict) -> None:
    """The fine-tuned model (``tuned``, ``spec``) and its cards at ``out``, as one: a stop or
    an error among them puts back the model they replace, whole (a Ctrl-C as they were
    written left the new weights beside the earlier model's card, and "nothing was written"
    said). The replaced model's ONNX export (export's default place) would read as this
    model's: removed, as train --overwrite does."""
    from ctcnet.nn.classifier import drop_stale_export, save_model

    cards = [out.with_suffix(".md"), out.with_suffix(".json")]
    with written_together(replacing=[out, *cards, out.with_suffix(".onnx")]) as written:
        save_model(out, tuned, spec)
        written.append(out)
        write_card(cards[0], out, record, spec)
        written.append(cards[0])
        write_registry_card(out, record, spec)
        written.append(cards[1])
        drop_stale_export(out, "--overwrite")


def write_registry_card(model_path: Path, record: dict, spec) -> None:
    """``<name>.json`` beside the model: what lets a folder named in ``CTCNET_MODELS`` offer
    it by name and in predict's choice by channels (``ctcnet.nn.registry``), its figure the
    macro-F1 on the held-out lab crops."""
    # Here, not at the top: this module is imported for its options (the CLI's parser), and
    # the card module brings scipy with the rest of evaluation.
    from ctcnet.evaluation.model_card import model_entries

    # The calls predict makes (the markers taking part), the figure a lab reads and the
    # card's first: the network's own read 0.944 beside calls at 0.698. Not of one class held
    # out: a macro-F1 of wbc alone read 1.000 in `ctcnet models`.
    # The classes the held-out crops lack named beside it: 1.000 on ctc and debris alone
    # read in the listing as a perfect score on all four.
    lacking = [name for name, n in (record["data"]["held_out"].get("per_class") or {}).items()
               if not n]
    figure = {} if _one_class_held_out(record) else {"test_held_out_lab_crops": {
        **record["held_out_calls"]["finetuned"],
        **({"absent_classes": lacking} if lacking else {})}}
    card = {**model_entries(model_path.stem, model_path, spec),
            "decision": spec.decision.to_dict(), **figure,
            "finetune": {k: record[k] for k in ("base", "data", "options", "calibration")}}
    atomic_write_text(model_path.with_suffix(".json"),
                      json.dumps(card, indent=2, default=float) + "\n")


def _one_class_held_out(record: dict) -> bool:
    """Whether the held-out crops hold one class at most: their macro-F1 is that class's."""
    per_class = record["data"]["held_out"].get("per_class") or {}
    return sum(1 for n in per_class.values() if n) < 2


def _trained_on(data: dict) -> str:
    """The lab's crops trained on, per class (the rest are held out): a class of none was
    learnt from the simulator's crops alone."""
    per_class = (data.get("train") or {}).get("lab_per_class")
    if not per_class:
        return ""
    alone = [name for name, n in per_class.items() if not n]
    return (f"; the lab's trained on: {per_class}" + (
        f" ({', '.join(alone)} learnt from the simulator's crops alone)" if alone else ""))


def _against_lab(record: dict) -> str:
    """The simulated crops beside the lab's crops trained on, where they outnumber them (the
    default mixes in the data's mean per class, held-out crops included)."""
    train = record["data"].get("train") or {}
    lab, simulated = train.get("lab_crops"), train.get("simulated_crops")
    if not lab or not simulated or simulated <= lab:
        return ""
    return (f" ({simulated} against the lab's {lab} trained on: the simulator's look weighs "
            "more than the lab's; --simulated-per-class sets it)")


def _held_out_line(data: dict) -> str:
    """The card's line on the held-out crops: how they were chosen, and what makes their
    figures optimistic or silent (patients also trained on, a class absent)."""
    held = data["held_out"]
    notes = []
    if held.get("samples_also_trained_on"):
        notes.append(f"{held['samples_also_trained_on']} of its samples also trained on, so "
                     "the held-out figures are optimistic")
    elif held["unit"] == "crop":
        notes.append("crops of the samples trained on, so the held-out figures are optimistic")
    elif held["unit"].endswith("no sample ids"):
        notes.append("the crops name no sample (patient): held-out crops may be of patients "
                     "trained on, so the figures may be optimistic; give each crop its sample "
                     "id (manifest.csv, or a class folder's subfolder a patient)")
    if held.get("learnt_by_base"):
        notes.append(f"{held['learnt_by_base']} of them crops the base model learnt from, so "
                     "its figures, and the gain over it, are of crops it was trained on")
    absent = [name for name, n in held["per_class"].items() if not n]
    if absent:
        notes.append(f"no {', '.join(absent)}: its figures say nothing of them")
    line = (f"- Held out for the figures and calibration: {held['crops']} crops (split by "
            f"{held['unit']}{''.join(f'; {n}' for n in notes)})")
    if data.get("left_out_test_crops"):
        line += f"; {data['left_out_test_crops']} crops of the manifest's test split left out"
    return line


def _read_at(data: dict) -> str:
    """The size the lab's crops were read at, where the record has it (``--pixel-size auto``
    recorded as the size estimated, not the word)."""
    size = data.get("pixel_size_um")
    return f", read at {pixel_size_text(size, data.get('pixel_size_from'))}" if size else ""


def write_card(path: Path, model_path: Path, record: dict, spec) -> None:
    """A short model card: base, data, settings and the figures that decide whether to use it."""
    held, sim, cal = record["held_out"], record["simulated_test"], record["calibration"]
    data = record["data"]
    one_class = _one_class_held_out(record)
    lines = [
        f"# Model card: {model_path.name} (fine-tuned)", "",
        f"- Base model: `{record['base']['path']}` (sha256 {record['base']['sha256'][:12]}..., "
        f"ctcnet {record['base']['version']})",
        f"- Data: `{data['path']}`: {sum(data['per_class'].values())} crops from "
        f"{data['samples']} sample(s), per class {data['per_class']}" + _read_at(data) +
        _trained_on(data) + _labels_said(data),
        _held_out_line(data),
        f"- Trained: {record['options']['steps']} steps, "
        + (f"the last {record['options']['train_blocks']} block(s) free"
           if record['options']['train_blocks'] else "every block free") + ", lr "
        f"{record['options']['lr']}, {record['options']['simulated_per_class']} simulated "
        f"crops per class mixed in{_against_lab(record)}; {record['seconds']['train']} s on "
        f"{record['device']} "
        f"({record['threads']} threads)",
        _calibration_line(cal, spec),
        # (read on every labelled CTC: the held-out ones too, as a leak is the instrument's)
        leaks_line(record["leaks"], spec) + (" (every labelled CTC read, the held-out ones too)"
                                             if record["leaks"]["leaks"] else ""),
        *_cartridge_rule_lines(spec), "",
        "| figure | base | fine-tuned |", "|---|---|---|",
        *_calls_rows(record.get("held_out_calls"), one_class),
        f"| macro-F1, held-out lab crops{' (one class)' if one_class else ''}, the network's "
        "own calls | "
        f"{held['base']['macro_f1']:.4f} | {held['finetuned']['macro_f1']:.4f} |",
        f"| accuracy, held-out lab crops, the network's own calls | "
        f"{held['base']['accuracy']:.4f} | "
        f"{held['finetuned']['accuracy']:.4f} |",
    ]
    if sim:
        lines.append(f"| macro-F1, simulated test ({sim['base']['n']} crops, seed "
                     f"{SIM_TEST_SEED}) | {sim['base']['macro_f1']:.4f} | "
                     f"{sim['finetuned']['macro_f1']:.4f} |")
    if record.get("warnings"):  # what the console said, for whoever audits the model later
        lines += ["", "## Said while it was made", "",
                  *(f"- {line}" for line in record["warnings"])]
    atomic_write_text(path, "\n".join(lines) + "\n")


def _labels_said(data: dict) -> str:
    """Whose labels the crops carry, where ``ctcnet crops`` recorded it: a person's, and
    which samples' sign-offs did not hold as they were cut; or the model's own calls."""
    added = data.get("added_crops") or {}
    beside = (f"; {sum(added.values())} crop(s) added to the cut, not from it "
              f"({named_counts(added)}): labelled by whoever added them" if added else "")
    if data.get("labels") == "model":
        return "; labelled by the model's own calls, not a person's" + beside
    unsigned = sorted(k for k, v in (data.get("signoff_status") or {}).items()
                      if v != "current")
    if data.get("labels") == "reviewer":
        return "; a reviewer's decisions" + (
            f", not signed off (or no longer) on {', '.join(unsigned)}" if unsigned else
            ", every sample signed off") + beside
    return ""


def _calls_rows(calls: dict | None, one_class: bool = False) -> list[str]:
    """The table's rows of the calls predict makes on the held-out crops (the markers taking
    part): the figures a lab reads (none in a record made before they were kept); ``one_class``:
    the crops held out are of one class, which the macro-F1's row says."""
    if not calls:
        return []
    return [f"| macro-F1, held-out lab crops{' (one class)' if one_class else ''}, the calls "
            "predict makes | "
            f"{calls['base']['macro_f1']:.4f} | {calls['finetuned']['macro_f1']:.4f} |",
            f"| accuracy, held-out lab crops, the calls predict makes | "
            f"{calls['base']['accuracy']:.4f} | {calls['finetuned']['accuracy']:.4f} |"]


def _cartridge_rule_lines(spec) -> list[str]:
    """What the card says of the cartridge rule and its review band: the base model's, kept
    (a lab's crops hold no cartridge to fit or check them on)."""
    rule = spec.decision
    if not rule.weights:
        return []
    weights = ", ".join(f"{k} {v:+.2f}" for k, v in rule.weights.items())
    band = rule.review_band_record
    said = (f"; its review band {band['band']} and stated miss rate were measured on the base "
            "network's calls, not on this one's" if band else "")
    # The base's cartridge fusion, fitted on the base network's probabilities, is not kept: the
    # band reads this network's posterior alone, and queues more (59 events of a simulated
    # 6-frame cartridge against the base's 10, on a lab's fine-tune of ctcnet-default).
    fusion = (" The base's cartridge marker fusion (fitted on the base network's "
              "probabilities) is not kept: on a cartridge the band reads this network's "
              "posterior alone, so its review list can be several times the base's; measure "
              "it on a cartridge of your own." if band and FUSION_NOT_KEPT in
              str(band.get("fitted_for", "")) else "")
    return [f"- Cartridge rule (log weights {weights}): the base model's, kept{said}.{fusion} "
            "Check the counts on a cartridge of your own (`ctcnet evaluate` on a labelled or "
            "simulated cartridge) before relying on them."]


def _worse_than_none(cal: dict) -> str:
    """Where the temperature reads the lab's held-out crops worse than none (a pooled fit
    weighs the simulator's crops; few lab crops say little), said beside it."""
    before, after = (cal.get(k) or {} for k in ("uncalibrated", "calibrated"))
    if not isinstance(before.get("ece"), float) or not isinstance(after.get("ece"), float) \
            or after["ece"] <= before["ece"]:
        return ""
    return (f"; on the held-out lab crops it reads worse than none (ECE {after['ece']:.3f} "
            f"against {before['ece']:.3f} uncalibrated): they are few, or unlike what the fit "
            "weighed; more labelled crops refit it")


def _stood_in_for(cal: dict) -> list[str]:
    """The classes whose simulated crops stood in for the lab's in a pooled fit (the lab's
    held-out crops hold under :data:`MIN_CALIBRATION_PER_CLASS` of each), in words; none:
    an empty list."""
    filled = cal.get("filled_from_reference") or []
    if not filled:
        return []
    return [f"the simulator's {', '.join(filled)} standing in for the lab's (under "
            f"{MIN_CALIBRATION_PER_CLASS} of {'it' if len(filled) == 1 else 'each'} held "
            "out): the review threshold rests on simulated crops of "
            f"{'it' if len(filled) == 1 else 'them'}"]


def _calibration_line(cal: dict, spec) -> str:
    """The card's calibration line: refitted (how, and what the lab's crops guarantee), or the
    base model's kept and why."""
    if cal.get("skipped"):
        return (f"- Calibration: **skipped** ({cal['skipped']}); the base model's kept: "
                f"temperature {cal['temperature']:.3f}, review below top probability "
                f"{cal['review_threshold']:.4f}")
    if cal.get("method") == "pooled" and cal.get("note"):
        how = (f"fitted on the {cal['lab_crops']} held-out lab crops pooled with "
               f"{cal['reference_crops']} simulated crops of the original simulator, the "
               f"lab's weighing {cal['lab_weight']:.0%} of the fit: every held-out crop was "
               "called right, so they weigh at most half (alone they cannot bound the "
               "temperature)" + "".join(f"; {said}" for said in _stood_in_for(cal)))
    elif cal.get("method") == "pooled":
        why = ([f"the simulated crops together weigh what the lab's fall short of "
                f"{MIN_CALIBRATION_CROPS}"] if cal["lab_crops"] < MIN_CALIBRATION_CROPS else [])
        why += _stood_in_for(cal)
        how = (f"fitted on the {cal['lab_crops']} held-out lab crops pooled with "
               f"{cal['reference_crops']} simulated crops of the original simulator, the lab's "
               f"weighing {cal['lab_weight']:.0%} of the fit"
               + (f" ({'; '.join(why)})" if why else ""))
    else:
        how = f"fitted on the {cal.get('lab_crops', cal['review']['n'])} held-out lab crops alone"
    line = (f"- Calibration: temperature {cal['temperature']:.3f}, review below top probability "
            f"{spec.review_threshold:.4f}, {how}; {cal['review']['reviewed_fraction']:.1%} of "
            f"the held-out crops under it ({cal['review']['reviewed']} of "
            f"{cal['review']['n']}: few crops say a review load loosely)"
            + (f" ({cal['review']['shown_fraction']:.1%} shown for the network's doubt, as "
               "predict reads a crop folder: at the balanced prior, without a crop band)"
               if "shown_fraction" in cal["review"] else "")
            + f", target precision {cal['review']['target_precision']}"
            + _worse_than_none(cal))
    g = cal.get("guarantee")
    if g:
        before = g.get("missed_before_fit")
        line += (f"\n- On the lab's held-out crops, which the calibration was fitted to: "
                 f"{g['missed']} of {g['counted_cells']} {counted_cells_text(g)} neither "
                 f"counted nor shown" + ("" if before is None else f" ({before} before the fit)")
                 + f"; as a count on crops the fit did not see it would bound the share by "
                 f"{g['miss_bound']:.1%} with {g['confidence']:.0%} confidence (one-sided "
                 f"Clopper-Pearson), which these, in-sample, do not; {g['auto_wrong']} of "
                 f"{g['auto_calls']} calls "
                 "not shown to a person wrong (predict's rule: a call under the threshold is "
                 "shown only where its doubt could change a count) (in-sample alike: as a "
                 f"count on crops the fit did not see, at most {g['auto_error_bound']:.1%}). "
                 "A 1 % bound needs "
                 f"{g['cells_for_one_percent']} {counted_cells_text(g)} with none missed")
    return line
