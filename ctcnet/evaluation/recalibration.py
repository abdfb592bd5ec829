"""Recalibration from a lab's few labelled crops, and what those crops can guarantee.

A lab rarely holds the 100 crops that :func:`ctcnet.evaluation.calibration.calibrate_spec`
needs to fit a temperature and a review threshold on its crops alone. With fewer, the fit is
**pooled**: the lab's crops each weigh 1, and crops of the original simulator (drawn as the
shipped models' validation crops are, read through the same model) together weigh what the
lab's crops fall short of :data:`MIN_CALIBRATION_CROPS`. The simulator's crops are a prior
worth 100 crops, which the lab's outweigh as they grow: 10 lab crops fit 10 % of the pool, 50
half of it, 100 or more all of it (then the fit is the lab's alone),
except that a class the data holds and the lab's crops hold under
:data:`MIN_CALIBRATION_PER_CLASS` of is always pooled: the simulator's crops of it weigh what
the lab's fall short of that (a threshold fitted on no cluster lets clusters through). Under
a floor (crops of at least two classes, :data:`FEW_CALIBRATION_CROPS` or more) nothing is
refitted, and the caller keeps the model's calibration and says so.

Whatever the fit, the guarantee is stated on the lab's own crops only
(:func:`lab_guarantee`): of the automatic calls, how many were wrong, and of the CTCs and
clusters, how many were neither counted nor shown to a person, each with its one-sided
Clopper-Pearson bound at 95 % confidence. On a few crops that bound is wide (no miss among 10
CTCs bounds the miss share by 26 %), and the record says how many cells would state the
review band's 1 % (:data:`CELLS_FOR_ONE_PERCENT`).

The lab's labelled crops also make the marker guard its own (:func:`lab_guard`): those
labelled ``ctc`` show its instrument's spillover of CK into the exclusion markers' channels,
which goes into the model's panel (:func:`with_instrument_leaks`), so the guard allows that
leak instead of reading it as CD45 staining; and all of them are pooled into its
out-of-distribution reference, so the lab's look is not flagged ``unusual``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import replace

import numpy as np

from ctcnet.evaluation.calibration import (
    MIN_CALIBRATION_CROPS,
    MIN_CALIBRATION_PER_CLASS,
    calibrate_spec,
    calibration_record,
    calibration_shortfall,
    fitted_calibration,
    missed_counted,
    softmax,
)
from ctcnet.inference.labelled_leaks import MIN_LABELLED, labelled_leaks

log = logging.getLogger(__name__)

# Under this many lab crops, or crops of one class, nothing is refitted (a temperature fitted
# on one class runs to its bound: every probability 0 or 1). Above it the weights, not the
# floor, keep a few crops from swinging the fit: each weighs 1 % of it. A fine-tune's
# network is not its base's, so a pool that is nearly all simulated crops still fits the
# network it is for, where the base's numbers were fitted to other logits.
FEW_CALIBRATION_CROPS = 2
# The simulator's crops for the pool: the shipped model's held-out simulated test seed, so a
# fine-tune's forgetting check and its pool are one draw (scored once).
REFERENCE_SEED = 424242
REFERENCE_PER_CLASS = 100
CONFIDENCE = 0.95
LEVEL = 0.01
# Cells with no miss that bound a share by LEVEL at CONFIDENCE: (1 - LEVEL)^n <= 1 - CONFIDENCE.
CELLS_FOR_ONE_PERCENT = math.ceil(math.log(1 - CONFIDENCE) / math.log(1 - LEVEL))


def few_shortfall(counts: dict[str, int]) -> str | None:
    """Why lab crops of these per-class ``counts`` are too few even for the pooled fit (None
    when they are enough)."""
    held = {name: int(n) for name, n in counts.items() if n}
    total = sum(held.values())
    if len(held) >= 2 and total >= FEW_CALIBRATION_CROPS:
        return None
    have = ", ".join(f"{name} {n}" for name, n in held.items()) or "none"
    return (f"recalibration needs labelled crops of at least two classes; these are {total} "
            f"({have})")


def calibration_method(counts: dict[str, int], expected: list[str] | None = None
                       ) -> tuple[str | None, str | None]:
    """(method, why): ``lab`` (enough crops to fit on them alone), ``pooled`` (with the
    simulator's crops) or None (too few: ``why``)."""
    if calibration_shortfall(counts, expected) is None:
        return "lab", None
    problem = few_shortfall(counts)
    return (None, problem) if problem else ("pooled", None)


def reference_crops(spec, per_class: int = REFERENCE_PER_CLASS, seed: int = REFERENCE_SEED
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(crops, label indices) of the original simulator for the model's panel and classes,
    exported once as its validation crops were when it reads composite exports. Raises
    ``ValueError`` (the caller keeps the model's calibration, or refuses) where the simulator
    draws no cell of one of the model's classes: a pool missing a class would bias the fit."""
    from ctcnet.simulate import simulate_crops, undrawn_classes  # scipy

    undrawn = undrawn_classes(spec.panel, spec.taxonomy)
    if undrawn:
        raise ValueError(
            f"too few held-out crops to calibrate on alone ({MIN_CALIBRATION_CROPS} needed), "
            f"and no simulated crops to pool them with: the simulator draws no "
            f"{', '.join(undrawn)} (the taxonomy lists no subtype to draw it as)")

    batch = simulate_crops(per_class, spec.panel, spec.taxonomy, crop_size=spec.crop_size,
                           seed=seed)
    images = batch.images
    if spec.reads_exports:
        # An export model never sees a raw crop: its validation crops were exported once.
        from ctcnet.simulate.augment import exported_once

        images = exported_once(images, (spec.training.get("data") or {}).get("augment"), seed,
                               tuple(spec.panel.roles()))
    return images, np.array([spec.taxonomy.index(k) for k in batch.labels], np.int64)


def pooled_weights(lab_labels: np.ndarray, ref_labels: np.ndarray, short=()) -> np.ndarray:
    """Per crop of the pool (the lab's first): 1 each, the reference's sharing what the lab's
    fall short of :data:`MIN_CALIBRATION_CROPS`; and the reference crops of each class index in
    ``short`` (a class the data holds that the lab's crops hold under
    :data:`MIN_CALIBRATION_PER_CLASS` of) at least what that class falls short of it, however
    many lab crops there are: a threshold fitted on crops with no cluster says nothing of the
    clusters it then lets through."""
    lab_labels, ref_labels = np.asarray(lab_labels), np.asarray(ref_labels)
    n_lab, n_reference = len(lab_labels), len(ref_labels)
    rest = max(0, MIN_CALIBRATION_CROPS - n_lab)
    ref = np.full(n_reference, rest / n_reference if n_reference else 0.0)
    for k in short:
        of_class = ref_labels == k
        missing = MIN_CALIBRATION_PER_CLASS - int((lab_labels == k).sum())
        if of_class.any() and missing > 0:
            ref[of_class] = np.maximum(ref[of_class], missing / int(of_class.sum()))
    return np.r_[np.ones(n_lab), ref]


def recalibrate_spec(spec, logits: np.ndarray, labels: np.ndarray, target: float = 0.99,
                     reference: tuple[np.ndarray, np.ndarray] | None = None,
                     expected: list[str] | None = None):
    """``spec`` with temperature and review threshold refitted on the lab's ``logits`` and
    ``labels``: on them alone when they are enough, else pooled with ``reference`` (the same
    model's logits and labels on :func:`reference_crops`, or a function returning them, called
    only when the pool is needed); crops every one called right weigh at most half of the
    fit, pooled (:data:`SEPARABLE`). Raises ``ValueError`` under the floor, or
    where no pool can bound the temperature (the caller keeps the model's calibration).
    ``spec.metrics["calibration"]`` records the method, the lab's share of the fit and
    :func:`lab_guarantee`."""
    labels = np.asarray(labels, np.int64)
    counts = {name: int((labels == k).sum()) for k, name in enumerate(spec.class_names)}
    expected = None if expected is None else [n for n in expected if n in counts]
    method, why = calibration_method(counts, expected)
    if method is None:
        raise ValueError(why)
    if method == "pooled" and calibration_method(counts)[0] == "lab":
        # Pooled for a class short alone: where the simulator draws none of it (a lab's own
        # taxonomy), the lab's crops fit alone, as they would have without it.
        try:
            reference = reference() if callable(reference) else reference
        except ValueError as err:
            log.warning("calibration: %s; fitted on the lab's crops alone", err)
            method = "lab"
    # Every crop called right: the likelihood grows as the temperature falls, so a fit they
    # weigh most in runs towards 0 (every probability 0 or 1) until the optimiser stops, and
    # the review band empties. Such crops say how often the model errs no better than the
    # simulator's do: they weigh at most half of a pooled fit.
    note = SEPARABLE if all_right(logits, labels) else None
    if method == "lab" and not note:
        new = calibrate_spec(spec, logits, labels, target)
        summary = dict(new.metrics["calibration"])
        summary.update(method="lab", lab_crops=int(len(labels)), lab_weight=1.0)
        summary["guarantee"] = in_sample_guarantee(spec, new, logits, labels)
        return new.replace(metrics={**spec.metrics, "calibration": summary})
    reference = reference() if callable(reference) else reference
    if reference is None or not len(reference[1]):
        raise ValueError(f"{note}, and no simulated crops to pool them with" if note else
                         "a pooled fit needs the reference crops' logits")
    ref_logits, ref_labels = reference
    pool_logits = np.concatenate([np.asarray(logits, np.float64),
                                  np.asarray(ref_logits, np.float64)])
    pool_labels = np.r_[labels, np.asarray(ref_labels, np.int64)]
    short = [k for k, name in enumerate(spec.class_names)
             if expected is not None and name in expected
             and counts[name] < MIN_CALIBRATION_PER_CLASS]
    weights = pooled_weights(labels, ref_labels, short)
    if note:  # the simulator's crops weigh at least as much as the lab's
        weights[len(labels):] = np.maximum(weights[len(labels):], len(labels) / len(ref_labels))
    if all_right(pool_logits, pool_labels):
        raise ValueError(f"{SEPARABLE}, and so are the simulated crops pooled with them")
    temperature, threshold = fitted_calibration(pool_logits, pool_labels, target, weights)
    # The figures of the fit are the lab's crops' own: the pool's would be the simulator's.
    summary = calibration_record(logits, labels, temperature, threshold, target,
                                 spec.class_names, spec.taxonomy.reported_classes())
    summary.update(method="pooled", lab_crops=int(len(labels)),
                   reference_crops=int(len(ref_labels)),
                   lab_weight=round(float(weights[:len(labels)].sum() / weights.sum()), 4),
                   **({"filled_from_reference": [spec.class_names[k] for k in short]}
                      if short else {}),
                   **({"note": note} if note else {}))
    new = spec.replace(temperature=temperature, review_threshold=threshold)
    summary["guarantee"] = in_sample_guarantee(spec, new, logits, labels)
    return new.replace(metrics={**spec.metrics, "calibration": summary})


def in_sample_guarantee(base, fitted, logits: np.ndarray, labels: np.ndarray) -> dict:
    """:func:`lab_guarantee` of the ``fitted`` spec on the crops it was fitted to, marked so
    (``in_sample``), with the misses at the ``base`` spec's calibration (its temperature and
    threshold, on the same network's ``logits``: ``missed_before_fit``): the
    review threshold is set just above their most confident miss, so "0 missed" is true of
    them by construction and its bound holds for crops the fit did not see, not these (4 of
    30 CTCs missed before a fit read "0 of 30, at most 10 %")."""
    return {**lab_guarantee(fitted, logits, labels), "in_sample": True,
            "missed_before_fit": lab_guarantee(base, logits, labels)["missed"]}


# Why a set of crops alone cannot calibrate (:func:`recalibrate_spec`).
SEPARABLE = ("the calibration crops are all called right: a temperature fitted on them has "
             "no minimum and runs towards 0 (every probability 0 or 1, no review band)")


def all_right(logits: np.ndarray, labels: np.ndarray) -> bool:
    """Whether every crop's likeliest class is its label: no temperature is then the best one
    (each crop's likelihood grows as the temperature falls)."""
    return bool((np.argmax(np.asarray(logits), axis=1) == np.asarray(labels)).all())


def lab_guarantee(spec, logits: np.ndarray, labels: np.ndarray,
                  confidence: float = CONFIDENCE) -> dict:
    """What the lab's labelled crops say of the calls ``spec`` makes on crops like them (a crop
    set's balanced prior): automatic calls wrong, and CTCs and clusters neither counted nor
    shown, each with a one-sided Clopper-Pearson bound at ``confidence``."""
    from ctcnet.evaluation.miss_rate import miss_upper_bound
    from ctcnet.nn.calls import calls_from_proba

    names = list(spec.class_names)
    counted = spec.taxonomy.reported_classes()  # a lab's own (ctc, apoptotic) where it says
    labels = np.asarray(labels, np.int64)
    proba = softmax(logits, spec.temperature)
    called, _, review, _ = calls_from_proba(proba, names, spec.review_threshold,
                                            counted=counted)
    truth = np.asarray(names, dtype=object)[labels]
    auto = ~review
    wrong = int((auto & (called != truth)).sum())
    n_counted, missed = missed_counted(truth, called, review, counted)
    n_auto = int(auto.sum())
    return {"confidence": float(confidence), "crops": int(len(labels)),
            "counted_classes": list(counted),
            "reviewed_fraction": round(float(review.mean()), 4) if len(labels) else 0.0,
            "auto_calls": n_auto, "auto_wrong": wrong,
            "auto_error_bound": round(miss_upper_bound(wrong, n_auto, confidence), 4),
            "counted_cells": n_counted, "missed": missed,
            "miss_bound": round(miss_upper_bound(missed, n_counted, confidence), 4),
            "cells_for_one_percent": CELLS_FOR_ONE_PERCENT}


def describe(summary: dict) -> str:
    """One line: how the calibration was fitted and what the lab's crops guarantee."""
    if summary.get("method") == "pooled":
        how = (f"pooled: {summary['lab_crops']} lab crops ({summary['lab_weight']:.0%} of the "
               f"fit) with {summary['reference_crops']} simulated crops"
               + (", the lab's all called right" if summary.get("note") else "")
               + (f", its {', '.join(summary['filled_from_reference'])} standing in for the "
                  f"lab's (under {MIN_CALIBRATION_PER_CLASS} crops)"
                  if summary.get("filled_from_reference") else ""))
    else:
        how = f"on {summary.get('lab_crops', summary.get('review', {}).get('n'))} lab crops alone"
    line = f"temperature {summary['temperature']:.3f}, review threshold " \
           f"{summary['review']['threshold']:.3f} ({how})"
    g = summary.get("guarantee")
    if g:
        before = g.get("missed_before_fit")
        line += (f"; on the lab's crops it was fitted to: {g['missed']} of {g['counted_cells']} "
                 f"{counted_cells_text(g)} neither counted nor shown"
                 + ("" if before is None else f" ({before} before the fit)")
                 + " (in-sample: no bound for other crops; score crops set apart with ctcnet "
                 f"evaluate for one, {g['cells_for_one_percent']} cells without a miss stating "
                 f"1 %); {g['reviewed_fraction']:.0%} of the {g['crops']} calibration crops "
                 "shown for the network's doubt"
                 + (f"; {g['auto_wrong']} of {g['auto_calls']} calls not shown to a person "
                    f"wrong (one-sided Clopper-Pearson bound {g['auto_error_bound']:.1%} at "
                    f"{g['confidence']:.0%}, in-sample alike)" if "auto_error_bound" in g
                    else ""))
    return line


def counted_cells_text(guarantee: dict) -> str:
    """What a guarantee's cells are: "CTCs and clusters" for the shipped classes (and a
    record that does not name its classes), else the model's counted classes by name."""
    counted = guarantee.get("counted_classes") or ["ctc", "cluster"]
    if counted == ["ctc", "cluster"]:
        return "CTCs and clusters"
    return "CTCs" if counted == ["ctc"] else f"cells of {', '.join(counted)}"


def lab_guard(spec, index, crops: np.ndarray, labels: np.ndarray):
    """(spec, leaks record): the marker guard made the lab's, from its labelled crops: the
    instrument's leaks in the panel (:func:`with_instrument_leaks`), and the crops (at model
    scale, ``labels`` class indices) pooled into the out-of-distribution reference
    (:func:`ctcnet.inference.guard.reference.pooled_reference`: a prior worth
    ``MIN_CALIBRATION_CROPS``, as the calibration pools), so the lab's look is not
    ``unusual`` to the model made its own."""
    spec, found = with_instrument_leaks(spec, index)
    guard = spec.metrics.get("guard")
    if guard:
        from ctcnet.inference.guard.reference import pooled_reference  # pandas: when used

        spec = spec.replace(metrics={**spec.metrics, "guard": pooled_reference(
            guard, crops, labels, spec, MIN_CALIBRATION_CROPS)})
    return spec, found


def with_instrument_leaks(spec, index):
    """(spec, record): ``spec`` with CK's leaks into the exclusion markers' channels measured
    on the crops of ``index`` (a conformed crop index) labelled ``ctc``
    (:func:`ctcnet.inference.labelled_leaks.labelled_leaks`) in its panel's ``leaks_in``, where
    enough of them show one; the guard then allows that leak
    (:meth:`ctcnet.inference.guard.GuardRules.leak_cap`)."""
    # The conformed crops hold the model's channels in its order, under the lab's names for
    # them ("CD45-APC", "PanCK"): the leaks are recorded under the model's names, which its
    # panel and guard read (under the lab's they were lost, or refused as no channel of it).
    panel = replace(index.panel, channels=tuple(
        replace(data, name=model.name)
        for data, model in zip(index.panel.channels, spec.panel.channels)))
    found = labelled_leaks([index.read(i) for i, label in enumerate(index.labels)
                            if label == "ctc"], panel)
    if found["leaks"]:
        # What the model allowed before in those channels, kept in the record: said beside
        # the new leaks (a fine-tune's measured leaks, replaced by a recalibration's).
        found["replaced"] = {
            c.name: {k: float(v) for k, v in c.leaks_in.items() if k == found["source"]}
            for c in spec.panel.channels
            if c.name in found["leaks"] and found["source"] in c.leaks_in}
        spec = spec.replace(panel=spec.panel.with_leaks(found["source"], found["leaks"]))
        log.info("CK's leaks measured on the labelled CTCs: %s (%s ratios)", found["leaks"],
                 found["crops"])
    return spec, found


def leaks_line(found: dict, spec, crops: str | None = None) -> str:
    """The card's line on the instrument's leaks measured on the lab's CTCs (those of
    ``crops``, where named), and what the guard allows for them."""
    from ctcnet.inference.guard import RULES

    read = found.get("crops") if isinstance(found.get("crops"), dict) else {}
    beyond = found.get("beyond_plausible") or {}
    # A channel read but not measured (too few CTCs, or their ratios did not agree) is said
    # with what the guard keeps there: left out, "no leak" and "not measured" read alike; one
    # whose CTCs agree on more than a leak can be is said so (it read "not agreeing").
    unmeasured = "; ".join(
        (f"{name} not taken in ({n} CTC ratio(s) agree on {beyond[name]:.1%}, more than a "
         "leak can be: check panel.json's channel order" if name in beyond else
         f"{name} not measured ({n} CTC ratio(s), fewer than {MIN_LABELLED} or not agreeing")
        + f": the guard keeps {RULES.leak_cap(spec.panel, spec.panel.index_of(name)):.1%})"
        for name, n in read.items() if name not in found["leaks"]
        and name in spec.panel.names)
    if not found["leaks"]:
        return ("- Instrument's leaks: " + ("none taken in" if beyond else
                                            f"none measured (fewer than {MIN_LABELLED} "
                                            "labelled CTCs whose CK's copy in a channel "
                                            "agreed)") + "; the guard allows "
                f"{RULES.max_leak:.0%} of a dye's counts in another channel"
                + (f" ({unmeasured})" if unmeasured else ""))
    said = ", ".join(f"{name} {share:.1%} (the guard allows "
                     f"{RULES.leak_cap(spec.panel, spec.panel.index_of(name)):.1%})"
                     for name, share in found["leaks"].items())
    return (f"- Instrument's leaks of {found['source']}, measured on the labelled CTCs"
            f"{f' of {crops}' if crops else ''}: {said}"
            + (f"; {unmeasured}" if unmeasured else ""))
