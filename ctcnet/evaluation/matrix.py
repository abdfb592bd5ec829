"""The robustness matrix: every declared perturbation at every strength, CNN and baselines.

* :func:`run_matrix`: for labelled crops and a ``classify(crops) -> {method: (N, K) proba}``
  callable, the flip rate (calls that differ from the method's own call on the unperturbed
  crops) and macro-F1 of each method in each cell of :func:`ctcnet.evaluation.perturb.
  perturbation_catalogue`, plus, for the CNN, what each review flag (the review band, the
  marker guard, either) does: the share of all events flagged and the share of wrong CTC
  calls it catches.
* A model that reads exports only (``spec.reads_exports``) is given every crop, changed or not,
  as a tight single-cell export (:func:`export_view`), and so is its guard; ``export_redraw``
  says how many of its calls the export's own settings change.
* :func:`check_targets`: the robustness targets checked at the ends of each stated range.
* :func:`matrix_png`: one heat map (Pillow): a row per perturbation, a block per figure.
* :func:`robustness_dataset`: ``ctcnet robustness DATA`` on a labelled crop folder; writes
  ``robustness.json`` and ``robustness.png``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ctcnet.core.paths import absolute
from ctcnet.errors import InputError
from ctcnet.evaluation.baselines import baseline_probabilities
from ctcnet.evaluation.metrics import confusion_matrix, macro_f1
from ctcnet.evaluation.perturb import Cell, perturbation_catalogue
from ctcnet.evaluation.plots import BLACK, GREY, WHITE, _font, _save
from ctcnet.evaluation.test_set import (
    BASELINE_TRAIN_SEED,
    labelled_test_set,
    model_labels_warning,
)
from ctcnet.inference.backends import load_backend
from ctcnet.inference.options import spec_read_as
from ctcnet.inference.spillover import network_view, wants_compensation
from ctcnet.io.atomic import atomic_write_text
from ctcnet.nn.calls import DecisionRule, calls_from_proba
from ctcnet.simulate.augment import exported_once
from ctcnet.simulate.augment_options import augment_config

log = logging.getLogger(__name__)

# The robustness targets, at the ends of each stated range.
MAX_FLIP_RATE = 0.02
MIN_MACRO_F1 = 0.97
MAX_DOUBLE_POSITIVE_CTC = 0.01  # CK+CD45+ leukocytes (CK += CD45 pattern) called ctc
POSITIVE_CLASS = "ctc"
LEUKOCYTE_CLASS = "wbc"
# The flag whose held calls are not counted as CTCs by predict (the CellSearch definitions).
GUARD_FLAG = "marker_guard"


def review_band_flags(spec) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """The network's doubt predict sends to review (``ctcnet.nn.calls``) at the balanced
    prior: a call under the model's review threshold whose doubt could change a count, or no
    finite call."""
    return lambda crops, proba: calls_from_proba(
        proba, spec.class_names, spec.review_threshold,
        counted=spec.taxonomy.reported_classes())[2]


def marker_guard_flags(spec, groups=None) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """The marker guard predict applies (``ctcnet.inference.guard``): CTC/cluster calls that
    the measured markers contradict, and events unlike the training data. ``groups``: the
    crops' sample ids (the DNA check compares each crop with its own sample's leukocytes)."""
    from ctcnet.inference.guard import review_flags  # pandas, scipy

    # The matrix scores balanced crops by the most probable class, so the guard checks that
    # call too (not the deployment-prevalence rule of ``spec.decision``).
    balanced = spec.replace(decision=DecisionRule.balanced())
    return lambda crops, proba: review_flags(crops, proba, balanced,
                                             groups=groups)["any"].to_numpy()


def flag_report(flags: np.ndarray, labels: np.ndarray, pred: np.ndarray,
                class_names: list[str], positive: str = POSITIVE_CLASS) -> dict:
    """Share of events flagged, and of the wrong calls into ``positive``, how many are flagged."""
    flags = np.asarray(flags, bool)
    out = {"flagged_share": float(flags.mean()) if flags.size else 0.0}
    if positive in class_names:
        k = class_names.index(positive)
        wrong = (pred == k) & (labels != k)
        out["wrong_ctc_calls"] = int(wrong.sum())
        out["wrong_ctc_caught"] = float(flags[wrong].mean()) if wrong.any() else None
        missed = (labels == k) & (pred != k)
        out["missed_ctc"] = int(missed.sum())
        out["missed_ctc_caught"] = float(flags[missed].mean()) if missed.any() else None
        if LEUKOCYTE_CLASS in class_names:
            # Leukocytes called ctc that this flag leaves in the automatic count.
            leukocytes = labels == class_names.index(LEUKOCYTE_CLASS)
            out["leukocytes"] = int(leukocytes.sum())
            out["leukocytes_called_ctc_unflagged"] = int(
                (leukocytes & (pred == k) & ~flags).sum())
    return out


def method_cell(labels: np.ndarray, pred: np.ndarray, reference: np.ndarray, k: int) -> dict:
    """Flip rate against the unperturbed call, macro-F1, the confusion matrix, and where the
    calls went: ``transitions`` (rows: the unperturbed call, columns: the perturbed one) and
    how many flips broke a right call or mended a wrong one. A flip rate alone cannot tell a
    perturbation that erases a marker from one whose leak the model misreads."""
    flipped = pred != reference
    return {"flip_rate": float(flipped.mean()) if pred.size else 0.0,
            "macro_f1": macro_f1(labels, pred, k),
            "confusion": confusion_matrix(labels, pred, k).tolist(),
            "transitions": confusion_matrix(reference, pred, k).tolist(),
            "right_to_wrong": int((flipped & (reference == labels)).sum()),
            "wrong_to_right": int((flipped & (pred == labels)).sum())}


def flip_summary(method: dict, class_names: list[str], top: int = 3) -> str:
    """The commonest flips of one method in one cell, e.g. ``ctc->wbc 33, ctc->cluster 16;
    49 of 52 broke a right call`` ("" for a cell without flips or without transitions)."""
    if "transitions" not in method:
        return ""
    moves = np.asarray(method["transitions"], np.int64)
    np.fill_diagonal(moves, 0)
    if not moves.any():
        return ""
    order = np.argsort(-moves, axis=None, kind="stable")[:top]  # ties in class order
    parts = [f"{class_names[i]}->{class_names[j]} {moves[i, j]}"
             for i, j in zip(*np.unravel_index(order, moves.shape)) if moves[i, j]]
    return (", ".join(parts) + f"; {method['right_to_wrong']} of {int(moves.sum())} broke a "
            f"right call")


def run_matrix(crops: np.ndarray, labels: np.ndarray, class_names: list[str],
               classify: Callable[[np.ndarray], dict], cells: list[Cell], seed: int = 0,
               flags: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] | None = None,
               cnn: str = "cnn",
               written: Callable[[np.ndarray], np.ndarray] | None = None,
               rewritten: Callable[[np.ndarray], np.ndarray] | None = None) -> dict:
    """The matrix as a JSON-ready dict (see the module docstring); ``flags`` maps a name to
    ``flag(crops, cnn_proba) -> bool (N,)``, the events that flag sends to review.
    ``written``: how the (changed) crops reach the disk the model reads, e.g. exported
    (:func:`export_view`); every method and flag then sees that, as predict would.
    ``rewritten``: the same written another way (an export with other settings): the unchanged
    crops so written are scored against the clean calls as ``export_redraw``, what the writing
    alone changes."""
    labels = np.asarray(labels, np.int64)
    k = len(class_names)
    shown = written or (lambda x: x)
    crops, raw = shown(crops), crops
    clean_proba = classify(crops)
    clean = {m: p.argmax(axis=1) for m, p in clean_proba.items()}
    out = {"n": int(len(labels)), "seed": int(seed), "class_names": list(class_names),
           "class_counts": {class_names[i]: int((labels == i).sum()) for i in np.unique(labels)},
           "methods": list(clean),
           "clean": {m: {"macro_f1": macro_f1(labels, p, k),
                         "confusion": confusion_matrix(labels, p, k).tolist()}
                     for m, p in clean.items()},
           "cells": []}
    if flags and cnn in clean:
        out["clean"][cnn]["review"] = {
            name: flag_report(f(crops, clean_proba[cnn]), labels, clean[cnn], class_names)
            for name, f in flags.items()}
    if rewritten is not None and cnn in clean:
        again = classify(rewritten(raw))[cnn].argmax(axis=1)
        out["export_redraw"] = {**method_cell(labels, again, clean[cnn], k),
                                "what": "the unchanged crops exported again with other settings"}
    for i, cell in enumerate(cells):
        rng = np.random.default_rng(np.random.SeedSequence([seed, 17, i]))
        perturbed = shown(cell.apply(raw, rng))
        proba = classify(perturbed)
        entry = {"family": cell.family, "name": cell.name, "strength": cell.strength,
                 "label": cell.label, "range_end": cell.range_end,
                 "methods": {m: method_cell(labels, p.argmax(axis=1), clean[m], k)
                             for m, p in proba.items()}}
        if flags and cnn in proba:
            pred = proba[cnn].argmax(axis=1)
            entry["review"] = {name: flag_report(f(perturbed, proba[cnn]), labels, pred,
                                                 class_names) for name, f in flags.items()}
        out["cells"].append(entry)
        log.info("%s %s: %s", cell.name, cell.label,
                 {m: round(v["macro_f1"], 3) for m, v in entry["methods"].items()})
    return out


def called_as(confusion, class_names: list[str], true: str, called: str) -> float | None:
    """Share of the events of class ``true`` called ``called`` (None when there are none)."""
    if true not in class_names or called not in class_names:
        return None
    row = np.asarray(confusion)[class_names.index(true)]
    return float(row[class_names.index(called)] / row.sum()) if row.sum() else None


def check_targets(matrix: dict, cnn: str = "cnn", gate: str = "marker_gate") -> dict:
    """The robustness targets at each range end: CNN flip rate, macro-F1, never below the gate,
    and double-positive leukocytes (nonspecific CK) called ctc. Lists every failing cell."""
    names = matrix["class_names"]
    failures = []
    # Under the target before any perturbation: said apart (``clean_below_target``), and
    # range ends no worse than it are not listed (each read as a perturbation's failure).
    clean = ((matrix.get("clean") or {}).get(cnn) or {}).get("macro_f1")
    ends = [c for c in matrix["cells"] if c["range_end"] and cnn in c["methods"]]
    for c in ends:
        m = c["methods"][cnn]
        where = f"{c['name']} {c['label']}"
        if m["flip_rate"] > MAX_FLIP_RATE:
            moves = flip_summary(m, names)
            failures.append(f"{where}: {m['flip_rate']:.1%} flips > {MAX_FLIP_RATE:.0%}"
                            + (f" ({moves})" if moves else ""))
        if m["macro_f1"] < MIN_MACRO_F1 and (clean is None or clean >= MIN_MACRO_F1
                                             or m["macro_f1"] < clean):
            # (to 4 places: 0.96989 read "0.970 < 0.97" at 3)
            failures.append(f"{where}: macro-F1 {m['macro_f1']:.4f} < {MIN_MACRO_F1}")
        if gate in c["methods"] and m["macro_f1"] < c["methods"][gate]["macro_f1"]:
            failures.append(f"{where}: CNN {m['macro_f1']:.4f} below the marker gate "
                            f"{c['methods'][gate]['macro_f1']:.4f}")
    double_positive = double_positive_counted = None
    epithelial = matrix.get("epithelial_channel")
    for c in ends:
        if c["family"] == "nonspecific" and epithelial and c["name"].startswith(
                f"{epithelial} +="):
            double_positive = called_as(c["methods"][cnn]["confusion"], names,
                                        LEUKOCYTE_CLASS, POSITIVE_CLASS)
            guard = c.get("review", {}).get(GUARD_FLAG, {})
            if guard.get("leukocytes"):
                # Reported beside the target, which stays on the network's own call.
                double_positive_counted = (guard["leukocytes_called_ctc_unflagged"]
                                           / guard["leukocytes"])
            if double_positive is not None and double_positive > MAX_DOUBLE_POSITIVE_CTC:
                failures.append(f"{c['name']} {c['label']}: {double_positive:.1%} of leukocytes "
                                f"called ctc > {MAX_DOUBLE_POSITIVE_CTC:.0%}")
    below = clean is not None and clean < MIN_MACRO_F1
    return {"range_end_cells": len(ends), "failures": failures,
            "passed": not failures and not below,
            "clean_below_target": round(clean, 4) if below else None,
            "compared_with_gate": gate in matrix.get("methods", []),
            "double_positive_wbc_called_ctc": double_positive,
            "double_positive_wbc_counted_ctc": double_positive_counted,
            "targets": {"max_flip_rate": MAX_FLIP_RATE, "min_macro_f1": MIN_MACRO_F1,
                        "max_double_positive_ctc": MAX_DOUBLE_POSITIVE_CTC,
                        "cnn_at_least_marker_gate": True}}


def matrix_table(matrix: dict, only_ends: bool = False) -> list[str]:
    """Plain-text table: one line per cell, flip rate and macro-F1 per method."""
    methods = matrix["methods"]
    head = f"{'perturbation':32s} {'strength':>14s} " + " ".join(
        f"{m[:12] + ' flip':>17s} {m[:12] + ' F1':>15s}" for m in methods)
    clean = " ".join(f"{'':>17s} {matrix['clean'][m]['macro_f1']:15.3f}" for m in methods
                     if m in matrix.get("clean", {}))
    # The clean F1 first: a cell below the F1 target with no flips is the clean figure's.
    lines = [head, f"{'clean (unperturbed)':32s} {'':>14s} {clean}"]
    for c in matrix["cells"]:
        if only_ends and not c["range_end"]:
            continue
        vals = " ".join(f"{c['methods'][m]['flip_rate']:17.1%} {c['methods'][m]['macro_f1']:15.3f}"
                        for m in methods)
        lines.append(f"{c['name'][:32]:32s} {c['label'][:14]:>14s} {vals}")
    return lines


def review_lines(matrix: dict) -> list[str]:
    """Per flag: share of wrong CTC calls caught and share of events flagged, on the clean
    crops, over all cells and over the range-end cells."""
    clean = matrix["clean"]["cnn"].get("review", {})
    lines = []
    for name in clean:
        for where, cells in (("clean", [{"review": clean}]),
                             ("all cells", matrix["cells"]),
                             ("range ends", [c for c in matrix["cells"] if c["range_end"]])):
            reports = [c["review"][name] for c in cells if name in c.get("review", {})]
            wrong = sum(r.get("wrong_ctc_calls", 0) for r in reports)
            caught = sum((r.get("wrong_ctc_caught") or 0) * r.get("wrong_ctc_calls", 0)
                         for r in reports)
            flagged = float(np.mean([r["flagged_share"] for r in reports])) if reports else 0.0
            share = f"{caught / wrong:.1%}" if wrong else "-"
            lines.append(f"{name:12s} {where:10s}: catches {share} of {wrong} wrong CTC calls, "
                         f"flags {flagged:.1%} of events")
    return lines


# ---------------------------------------------------------------------------------------------
# The heat map.

def _shade(badness: float) -> tuple[int, int, int]:
    """0 = good (white-green) .. 1 = bad (red)."""
    b = float(np.clip(badness, 0.0, 1.0))
    good, bad = np.array([232, 245, 233]), np.array([214, 39, 40])
    return tuple(int(v) for v in good + b * (bad - good))


def matrix_png(matrix: dict, path: str | Path, title: str = "Robustness matrix") -> Path:
    """One heat map: rows = perturbations, blocks = CNN flip rate, then macro-F1 per method;
    columns within a block = strengths (weakest first). Shading: flips 0..10 %, F1 1..0.8."""
    from PIL import Image, ImageDraw

    rows: dict[str, list[dict]] = {}
    for c in matrix["cells"]:
        rows.setdefault(c["name"], []).append(c)
    methods = matrix["methods"]
    blocks = [(methods[0], "flip_rate")] + [(m, "macro_f1") for m in methods]
    slots = max(len(v) for v in rows.values()) if rows else 1
    cell_w, cell_h, label_w, top = 50, 16, 190, 64
    block_w = slots * cell_w + 12
    width = label_w + len(blocks) * block_w + 10
    height = top + len(rows) * cell_h + 40
    image = Image.new("RGB", (width, height), WHITE)
    draw = ImageDraw.Draw(image)
    font, small = _font(11), _font(9)
    draw.text((10, 8), f"{title}  (n = {matrix['n']}; cells: strengths, weakest first; "
                       "bold outline = end of the stated range)", fill=BLACK, font=_font(13))
    for b, (method, key) in enumerate(blocks):
        x0 = label_w + b * block_w
        heading = f"{method} {'flip rate' if key == 'flip_rate' else 'macro-F1'}"
        draw.text((x0, top - 22), heading, fill=BLACK, font=font)
    for r, (name, cells) in enumerate(rows.items()):
        y0 = top + r * cell_h
        draw.text((6, y0 + 2), name[:34], fill=BLACK, font=font)
        for b, (method, key) in enumerate(blocks):
            for s, c in enumerate(cells):
                value = c["methods"][method][key]
                bad = value / 0.10 if key == "flip_rate" else (1.0 - value) / 0.20
                x = label_w + b * block_w + s * cell_w
                outline = BLACK if c["range_end"] else GREY
                draw.rectangle([x, y0, x + cell_w - 2, y0 + cell_h - 2], fill=_shade(bad),
                               outline=outline, width=2 if c["range_end"] else 1)
                # Figures as precise as the targets they are read against: a cell at 2.5 %
                # flips or an F1 of 0.967 misses its target, and must not read "2%" or "0.97".
                text = f"{value:.1%}" if key == "flip_rate" else f"{value:.3f}"
                draw.text((x + 3, y0 + 2), f"{c['label'][:5]} {text}", fill=BLACK, font=small)
    draw.text((6, height - 28), "flip rate: share of calls that differ from the method's call "
                                "on the unperturbed crops", fill=BLACK, font=small)
    return _save(image, path)


# ---------------------------------------------------------------------------------------------
# The workflow behind ``ctcnet robustness``.

def make_classifier(backend, baselines: dict | None, panel,
                    model_input: Callable[[np.ndarray], np.ndarray] | None = None
                    ) -> Callable[[np.ndarray], dict]:
    """``classify(crops) -> {"cnn": proba, <baseline>: proba, ...}`` for the matrix;
    ``model_input``: what the CNN sees of the crops (default: the crops themselves)."""
    def classify(crops: np.ndarray) -> dict:
        seen = model_input(crops) if model_input else np.asarray(crops, np.float32)
        out = {"cnn": np.asarray(backend.predict_proba(seen))}
        if baselines:
            out.update(baseline_probabilities(baselines, crops, panel))
        return out

    return classify


def default_flags(spec, groups=None) -> dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]]:
    """The review flags predict sets: the review band, the guard, and either of them."""
    band, guard = review_band_flags(spec), marker_guard_flags(spec, groups)
    return {"review_band": band, GUARD_FLAG: guard,
            "band_or_guard": lambda crops, proba: band(crops, proba) | guard(crops, proba)}


def export_view(spec, seed: int = 0) -> Callable[[np.ndarray], np.ndarray] | None:
    """For a model that reads exports only (``spec.reads_exports``): ``view(crops)``, the raw
    crops as such data is written: each a tight single-cell export with the model's own export
    ranges, read back at its stated pixel size (:func:`ctcnet.simulate.augment.exported_once`,
    random streams from ``seed``). None for a model that reads scans.

    Not the validation's mix: a pixel size misread is the matrix's own pixel-size cell, and a
    whole-sample composite is another kind of data, ``ctcnet evaluate``'s to measure."""
    if not spec.reads_exports:
        return None
    trained = augment_config(((spec.training or {}).get("data") or {}).get("augment"))
    augment = dataclasses.replace(trained, jpeg_p=0.0, tight_p=1.0,
                                  tight_scale_error=(1.0, 1.0))
    roles = tuple(spec.panel.roles())
    return lambda crops: exported_once(crops, augment, seed, roles)


def network_input(spec, sample_ids=None, compensate: bool | None = None,
                  seed: int = 0) -> Callable[[np.ndarray], np.ndarray] | None:
    """``view(crops)``: what the CNN is given of each (perturbed) crop set: exported, for a
    model that reads exports only (:func:`export_view`); else
    :func:`ctcnet.inference.spillover.network_view` (CK's spillover taken off per sample
    under ``--compensate`` or for a model trained so); None when that is the crops as they
    are."""
    exported = export_view(spec, seed)
    if exported is not None:
        return exported
    if not wants_compensation(spec, compensate):
        return None
    return lambda crops: network_view(spec, crops, sample_ids, True)[0]


def matrix_for_crops(backend, crops: np.ndarray, labels: np.ndarray, baselines: dict | None,
                     seed: int = 0, families: list[str] | None = None,
                     sample_ids=None, compensate: bool | None = None, read_as=None) -> dict:
    """Run the full declared matrix for a backend's panel on crops in memory, with targets
    (``sample_ids``: the crops' samples, for the guard's DNA reference and ``compensate``'s
    spillover; default: one). ``read_as``: the model's spec at the crops' value ranges
    (:func:`ctcnet.inference.options.spec_read_as`), where a perturbed crop clips and the
    guard reads saturation (default: the model's)."""
    spec = backend.spec
    cells, notes = perturbation_catalogue((read_as or spec).panel)
    if families:
        cells = [c for c in cells if c.family in families]
    # A model that reads exports only is given each changed crop exported, and so are its
    # review flags (predict's guard measures the export it reads). Its changes are made where
    # they happen, in the scanner's counts, before the export.
    written = export_view(spec, seed)
    if written is not None:
        skipped = sorted({c.name for c in cells if c.family == "export"})
        # ...and off-centre cells: the tight re-cut undoes the shift (0 flips, read as robust)
        moved = sorted({c.name for c in cells if c.family == "crop"})
        cells = [c for c in cells if c.family not in ("export", "crop")]
        notes += [f"{', '.join(skipped)} skipped: the model reads exports only, and every "
                  "crop, changed or not, is exported for it"] if skipped else []
        notes += [f"{', '.join(moved)} skipped: the export re-cut tight round the cell "
                  "centres it again, so the shift measures nothing"] if moved else []
        if baselines:
            baselines = None
            notes.append("baselines left out: they read a scan's intensities, which an export "
                         "no longer has")
        seen = None
    else:
        # --compensate: the CNN sees each perturbed crop with CK's spillover taken off per
        # sample, as ``ctcnet predict --compensate`` does; the baselines and the review flags
        # (the marker guard measures what the scanner wrote) see it as it is.
        seen = network_input(spec, sample_ids, compensate)
    # ``export_redraw``: the unchanged crops exported with the next seed's settings, the floor
    # an export model's flip rates are read against (what the export's black point, display
    # span, margin, zoom and JPEG change on their own).
    matrix = run_matrix(crops, labels, spec.class_names,
                        make_classifier(backend, baselines, spec.panel, seen), cells, seed,
                        flags=default_flags(read_as or spec, sample_ids), written=written,
                        rewritten=export_view(spec, seed + 1))
    matrix["compensated"] = seen is not None
    matrix["exported"] = written is not None
    epithelial = spec.panel.index_of_role("epithelial")
    matrix["epithelial_channel"] = (spec.panel.names[epithelial]
                                    if epithelial is not None else None)
    matrix["notes"] = notes
    matrix["review_flags"] = {
        "review_band": f"top probability < review threshold {spec.review_threshold:.3f} "
                       "with a CTC or cluster the call, the runner-up or within 1 - threshold",
        GUARD_FLAG: "ctcnet.inference.guard.review_flags: marker contradictions of ctc/cluster "
                    "calls, out-of-distribution events (when the model carries a reference)",
        "band_or_guard": "either"}
    matrix["check"] = check_targets(matrix)
    matrix["review_summary"] = review_lines(matrix)
    return matrix


def robustness_dataset(data: str | Path, model_path: str | Path | None, out_dir: str | Path,
                       with_baselines: bool = True, baseline_train: str | Path | None = None,
                       n_train_per_class: int = 300, seed: int = 0, device: str = "auto",
                       families: list[str] | None = None,
                       compensate: bool | None = None,
                       pixel_size: float | str | None = None) -> dict:
    """``ctcnet robustness``: the matrix on a labelled crop folder; robustness.json + .png
    (``pixel_size``: as ``ctcnet predict --pixel-size``)."""
    backend = load_backend(model_path, device=device)
    spec = backend.spec
    crops, index, baselines, source = labelled_test_set(
        data, spec, with_baselines, baseline_train, n_train_per_class, BASELINE_TRAIN_SEED, seed,
        pixel_size)
    labels = index.label_indices(spec.taxonomy)
    matrix = matrix_for_crops(backend, crops, labels, baselines, seed, families,
                              index.sample_ids, compensate,
                              spec_read_as(spec, index.panel, wider_only=True))
    if not matrix["cells"]:  # (a verdict on nothing read "all robustness targets met")
        raise InputError(f"no perturbation of the families asked ({', '.join(families or [])})"
                         " applies to this model: nothing to measure; ask for others")
    # What made it, as evaluate's report.json says it: a release record traces its numbers.
    from ctcnet.detect.crop_dataset import pixel_size_source
    from ctcnet.inference.model_records import scored_by

    # Labels that are a model's own calls (ctcnet crops without --reviewed): the matrix
    # measures agreement with them, not accuracy, as evaluate says of the same folder (a
    # note, which the command says with the others).
    if (circular := model_labels_warning(data)) is not None:
        matrix["notes"].append(circular)
    absent = [n for k, n in enumerate(spec.class_names) if not (labels == k).any()]
    if absent:  # macro-F1 over fewer classes than the targets were set for
        matrix["notes"].append(f"the labels hold no {', '.join(absent)}: every macro-F1 here "
                               "averages the other classes only, and says nothing of how "
                               f"{'it is' if len(absent) == 1 else 'they are'} told apart")
    if 3 / max(len(labels), 1) > MAX_FLIP_RATE:  # (0 flips of n: the rate under 3/n, 95 %)
        matrix["check"]["too_few_crops"] = True
        matrix["notes"].append(
            f"{len(labels)} crops cannot resolve the {MAX_FLIP_RATE:.0%} flip target: one flip "
            f"is {1 / max(len(labels), 1):.1%} of them, and none bounds the rate only under "
            f"{3 / max(len(labels), 1):.1%} (95 %); a verdict on the targets needs "
            f"{int(np.ceil(3 / MAX_FLIP_RATE))} crops at least")
    matrix.update({"data": absolute(data), **scored_by(backend),
                   "pixel_size_um": float(index.panel.pixel_size_um),
                   "pixel_size_from": pixel_size_source(pixel_size), "seed": seed,
                   "families": list(families) if families else "all",
                   "baseline_training": source, "baseline_train_per_class": n_train_per_class})
    out_dir = Path(out_dir)
    matrix_png(matrix, out_dir / "robustness.png")
    atomic_write_text(out_dir / "robustness.json", json.dumps(matrix, indent=2) + "\n")
    return matrix
