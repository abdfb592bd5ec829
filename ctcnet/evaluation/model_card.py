"""The model card: held-out tests of a trained model, written as JSON and Markdown.

:func:`held_out_test` simulates a labelled test set from seeds training never saw and scores it
with :func:`ctcnet.evaluation.evaluate.evaluate_crops` (the same code as ``ctcnet evaluate``);
:func:`card_tests` runs the default randomisation, every named shift and the CNN-against-baselines
comparison; :func:`rgb_jpeg_test` scores 8-bit RGB-JPEG composite exports of held-out crops
read back through the crop-dataset path (another seed and pixel size). A model that reads
exports only (``ModelSpec.reads_exports``) is tested on exports throughout: each simulated set is
rendered at a microscope's pixel size, written as tight single-cell exports and read back
(``export=True``); the baselines, which read a scan's intensities, are left out of its card.
:func:`build_card` and
:func:`render_card` turn the results into the card that ``scripts/train_default_model.py``
writes beside the shipped model.
"""

from __future__ import annotations

import json
import logging

import numpy as np

from ctcnet.detect.crop_dataset import load_crops, read_crop_index
from ctcnet.evaluation.evaluate import evaluate_crops, robustness_report
from ctcnet.evaluation.matrix import flip_summary, review_lines
from ctcnet.inference.guard import POSSIBLE_CTC_PROBA, review_flags
from ctcnet.inference.spillover import network_view
from ctcnet.io.atomic import atomic_write_text
from ctcnet.nn.calls import calls_from_proba
from ctcnet.nn.spec import SYMMETRIES
from ctcnet.simulate import NAMED_SHIFTS, SimConfig, simulate_crops
from ctcnet.simulate.export import (
    DEFAULT_PLANES,
    TIGHT_EXPORT_PIXEL_UM,
    tight_rendering,
    write_rgb_jpeg_dataset,
    write_tight_export_dataset,
)

log = logging.getLogger(__name__)

TEST_SEED = 424242          # far from the training (0) and validation (1000) seeds
TARGETS = {"macro_f1": 0.97, "ctc_recall": 0.98, "wbc_called_ctc_rate": 1 / 500}
RGB_TEST_PIXEL_UM = 0.3     # a viewer export's pixel size, not the model's
RGB_TEST_SEED_OFFSET = 500
# An export model's test sets: tight single-cell JPEG exports as ctcnet simulates them (cells
# rendered finer than any scan, written at 0.1 um/px), the pixel size given.
TIGHT_TEST_PIXEL_UM = TIGHT_EXPORT_PIXEL_UM


def held_out_test(backend, config, per_class: int, seed: int, subtypes: bool = False,
                  export: bool = False) -> dict:
    """P/R/F1, CTC recall and the share of WBCs called CTC on a simulated labelled set;
    ``export``: the set as tight single-cell exports, read back (:func:`tight_export_set`)."""
    spec = backend.spec
    if export:
        crops, batch = tight_export_set(spec, per_class, seed, config)
    else:
        batch = simulate_crops(per_class, spec.panel, spec.taxonomy, crop_size=spec.crop_size,
                               seed=seed, config=config, num_samples=32)
        crops = batch.images.astype(np.float32)
    report = evaluate_crops(backend, crops, batch.labels,
                            subtypes=batch.subtypes if subtypes else None,
                            sample_ids=batch.sample_ids)["cnn"]
    _add_rates(report, spec.class_names)
    report["seed"] = seed
    if export:
        report.update(export="tight single-cell, JPEG", pixel_size_um=TIGHT_TEST_PIXEL_UM)
    report["guard"] = guard_catch(backend, crops, batch.labels, batch.sample_ids)
    if subtypes:
        report["subtype_recall"] = report.pop("recall_by_subtype")
    return report


def guard_catch(backend, crops: np.ndarray, labels, sample_ids=None) -> dict:
    """The marker guard on labelled crops: the share of all events it sends to review and how
    many of the wrong CTC calls (true class not ctc) it catches (``sample_ids``: the crops'
    samples, for the DNA check's leukocyte reference)."""
    spec = backend.spec
    proba = np.asarray(backend.predict_proba(network_view(spec, crops, sample_ids)[0]))
    all_flags = review_flags(crops, proba, spec, groups=sample_ids, decision=None)
    flags = all_flags["any"].to_numpy()
    top = proba.argmax(1)
    called_ctc = top == spec.class_names.index("ctc")
    labels = np.asarray(labels)
    wrong = called_ctc & (labels != "ctc")
    right = called_ctc & (labels == "ctc")
    # The other direction: true CTCs called something else, and how many of those a person
    # still sees (the guard's possible_ctc flag, or a call below the review threshold).
    review = calls_from_proba(proba, spec.class_names, spec.review_threshold)[2] | flags
    missed = (labels == "ctc") & ~called_ctc
    true_ctc = max(int((labels == "ctc").sum()), 1)
    # A CTC called ``cluster`` is reported too, as a CTC-bearing event (an apoptotic CTC's
    # fragmented nucleus reads as two nuclei in one CK body), though under the wrong class.
    called_either = np.isin(np.asarray(spec.class_names)[top], ("ctc", "cluster"))
    # What the guard costs: right CTC calls it holds leave the automatic count too.
    return {"flagged_share": float(flags.mean()), "wrong_ctc_calls": int(wrong.sum()),
            "wrong_ctc_caught": int((flags & wrong).sum()), "right_ctc_calls": int(right.sum()),
            "right_ctc_held": int((flags & right).sum()),
            "missed_ctc": int(missed.sum()), "missed_ctc_shown": int((missed & review).sum()),
            "possible_ctc_share": float(all_flags["possible_ctc"].mean()),
            "ctc_called_or_flagged": float(((labels == "ctc") & (called_ctc | review)).sum()
                                           / true_ctc),
            "ctc_called_ctc_or_cluster_or_flagged": float(
                ((labels == "ctc") & (called_either | review)).sum() / true_ctc)}


def tight_export_set(spec, per_class, seed: int, config=None):
    """Held-out cells rendered finer than a scan over the model's field of view
    (:func:`ctcnet.simulate.export.tight_rendering`), written as tight single-cell JPEG
    exports at :data:`TIGHT_TEST_PIXEL_UM` (``ctcnet.simulate.export``) and read back as
    ``ctcnet evaluate`` reads a folder with the pixel size given: (crops at model scale, the
    simulated batch, for its labels, samples and subtypes)."""
    import tempfile

    fine, side = tight_rendering(spec.panel, spec.crop_size)
    batch = simulate_crops(per_class, fine, spec.taxonomy, crop_size=side,
                           seed=seed, config=config, num_samples=32)
    with tempfile.TemporaryDirectory() as tmp:
        write_tight_export_dataset(batch, tmp, fine, DEFAULT_PLANES,
                                   pixel_size_um=TIGHT_TEST_PIXEL_UM, file_format="jpg",
                                   seed=seed)
        index = read_crop_index(tmp, taxonomy=spec.taxonomy).conform(spec.panel, "tight test")
        crops = load_crops(index, spec.crop_size, spec.pixel_size_um)
    return crops, batch


def ck_positive_leukocytes(backend, n: int, seed: int, export: bool = False) -> dict:
    """CK+CD45+ double-positive leukocytes only (non-specific CK on every one, 0.3-2x their
    CD45): a CD45-positive event is not a CTC (issue 12 target: at most 1 % called ctc)."""
    import dataclasses

    config = dataclasses.replace(SimConfig(), nonspecific_ck_rate=(1.0, 1.0),
                                 nonspecific_ck_ratio=(0.3, 2.0))
    r = held_out_test(backend, config, {"wbc": n}, seed, export=export)
    return {"called_ctc": r["wbc_called_ctc_rate"], "n": r["n"], "guard": r["guard"]}


def _add_rates(report: dict, names: list[str]) -> None:
    """CTC recall and the share of WBCs called CTC, from a report's confusion matrix."""
    cm = np.asarray(report["confusion"])
    ctc, wbc = names.index("ctc"), names.index("wbc")
    report["ctc_recall"] = report["per_class"].get("ctc", {}).get("recall")  # None: no CTCs
    report["wbc_called_ctc_rate"] = float(cm[wbc, ctc] / max(cm[wbc].sum(), 1))


def rgb_jpeg_test(backend, per_class: int, seed: int,
                  pixel_size_um: float = RGB_TEST_PIXEL_UM) -> dict:
    """Held-out crops written as RGB-JPEG composites (R = CK, G = CD45, B = DAPI, quality
    60-95, random chroma subsampling, at ``pixel_size_um``) and read back exactly as ``ctcnet
    evaluate`` reads a folder: planes by name, resampled to the model's pixel size."""
    import tempfile

    spec = backend.spec
    batch = simulate_crops(per_class, spec.panel, spec.taxonomy, crop_size=spec.crop_size,
                           seed=seed, config=SimConfig(), num_samples=32)
    with tempfile.TemporaryDirectory() as tmp:
        write_rgb_jpeg_dataset(batch, tmp, spec.panel, DEFAULT_PLANES,
                               pixel_size_um=pixel_size_um, seed=seed)
        index = read_crop_index(tmp, taxonomy=spec.taxonomy).conform(spec.panel, "RGB-JPEG test")
        crops = load_crops(index, spec.crop_size, spec.pixel_size_um)  # at model scale
    report = evaluate_crops(backend, crops, index.labels, sample_ids=index.sample_ids)["cnn"]
    _add_rates(report, spec.class_names)
    report.update(seed=seed, pixel_size_um=pixel_size_um, planes=list(DEFAULT_PLANES),
                  jpeg_quality="60-95, chroma subsampling 4:4:4 / 4:2:2 / 4:2:0")
    return report


def card_tests(backend, test_per_class: int, shift_per_class: int,
               baseline_train_per_class: int = 300, seed: int = TEST_SEED,
               rgb_per_class: int = 0) -> dict:
    """Every held-out test of the card: default randomisation, named shifts, baselines, and
    (``rgb_per_class`` > 0, models whose panel has CK, CD45 and DAPI) RGB-JPEG composites.
    A model that reads exports only is tested on tight single-cell exports of each set, and
    not against the baselines (they read a scan's intensities, which an export no longer has)."""
    export = backend.spec.reads_exports
    test = held_out_test(backend, SimConfig(), test_per_class, seed, export=export)
    test["subtype_recall"] = held_out_test(backend, SimConfig(), max(test_per_class // 5, 1),
                                           seed + 1, subtypes=True,
                                           export=export)["subtype_recall"]
    robustness = {}
    for k, shift in enumerate(NAMED_SHIFTS):
        r = held_out_test(backend, SimConfig().with_shift(shift), shift_per_class, seed + 10 + k,
                          export=export)
        robustness[shift] = {"description": NAMED_SHIFTS[shift][0], "macro_f1": r["macro_f1"],
                             "ctc_recall": r["ctc_recall"],
                             "wbc_called_ctc_rate": r["wbc_called_ctc_rate"], "n": r["n"]}
        log.info("shift %s: macro-F1 %.4f", shift, r["macro_f1"])
    versus = None if export else robustness_report(
        backend, n_per_class=shift_per_class, seed=seed + 100,
        n_train_per_class=baseline_train_per_class)
    out = {"test": test, "robustness": robustness, "versus_baselines": versus,
           "ck_positive_leukocytes": ck_positive_leukocytes(backend, 2 * shift_per_class,
                                                            seed + 50, export=export)}
    if rgb_per_class > 0:
        out["rgb_jpeg"] = rgb_jpeg_test(backend, rgb_per_class, seed + RGB_TEST_SEED_OFFSET)
        log.info("RGB-JPEG composites: macro-F1 %.4f", out["rgb_jpeg"]["macro_f1"])
    return out


def normalisation_text(spec) -> str:
    cfg = spec.panel.channels[0].normalisation
    if cfg.get("method") != "snr":
        return "fixed value range per channel, inside the model"
    where = (f"of the crop's outer {cfg.get('ring_px', 10)} px ring" if
             cfg.get("background_from", "crop") == "ring" else "of the crop")
    return (f"per-crop robust background/noise (10th/30th percentiles {where}, every "
            f"{cfg.get('sample_step', 2)}th pixel) then {cfg.get('compression', 'asinh')} "
            f"compression (softness {cfg.get('softness', 3.0)}), inside the model")


def targets_met(test: dict) -> dict:
    return {"macro_f1": test["macro_f1"] >= TARGETS["macro_f1"],
            "ctc_recall": test["ctc_recall"] >= TARGETS["ctc_recall"],
            "wbc_called_ctc_rate": test["wbc_called_ctc_rate"] <= TARGETS["wbc_called_ctc_rate"]}


def headline(test: dict) -> dict:
    """The test numbers stored in the model's own spec (``spec.metrics``)."""
    return {k: test[k] for k in ("macro_f1", "accuracy", "ctc_recall", "wbc_called_ctc_rate",
                                 "per_class", "confusion", "ece", "guard") if k in test}


def build_card(*, name: str, model_path, model, spec, tests: dict, data: dict,
               training: dict, evaluation_seconds: float, reproduce: str) -> dict:
    """The card as plain data (``<name>.json``)."""
    calibration = spec.metrics.get("calibration", {})
    test = tests["test"]
    return {
        "name": name,
        "file": model_path.name,
        "size_bytes": model_path.stat().st_size,
        "arch": spec.arch,
        "parameters": int(sum(p.numel() for p in model.net.parameters())),
        "panel": spec.panel.to_dict(),
        "classes": spec.class_names,
        "crop_size": spec.crop_size,
        "pixel_size_um": spec.pixel_size_um,
        "normalisation": normalisation_text(spec),
        "symmetry": spec.symmetry,
        # What the model reads: scans (16-bit counts), or 8-bit composite exports only
        # (ctcnet.nn.registry chooses it for composite data, never for scans).
        "reads": "exports" if spec.reads_exports else "scans",
        "calibration": {"temperature": spec.temperature,
                        "review_threshold": spec.review_threshold,
                        "fitted_on": "validation split", **calibration},
        "data": data,
        "training": training,
        "test_default_randomisation": {k: v for k, v in test.items() if k != "seed"},
        **({"test_rgb_jpeg": {k: v for k, v in tests["rgb_jpeg"].items()}}
           if "rgb_jpeg" in tests else {}),
        "robustness": tests["robustness"],
        "robustness_vs_baselines": tests["versus_baselines"],
        "ck_positive_leukocytes": tests.get("ck_positive_leukocytes"),
        "targets": TARGETS,
        "targets_met": targets_met(test),
        "evaluation_seconds": round(evaluation_seconds),
        "reproduce": reproduce,
    }


def symmetry_text(symmetry: str) -> str:
    """The card's words for a test-time symmetry (``ctcnet.nn.symmetry``)."""
    views = {"rot4": "each crop's four quarter turns",
             "d4": "each crop's quarter turns and mirror images"}
    if symmetry not in views:
        return ""
    return (f"; logits averaged over {views[symmetry]} (test-time symmetry `{symmetry}`: "
            f"{SYMMETRIES[symmetry]}x the network's compute per crop)")


def finetune_lines(tuned: dict | None) -> list[str]:
    """The card's line on a fine-tuning after the training (``ctcnet finetune``), if any."""
    if not tuned:
        return []
    data, opts, held = tuned["data"], tuned["options"], tuned["held_out"]
    return [f"- Then fine-tuned (`ctcnet finetune`) on {sum(data['per_class'].values()):,} "
            f"labelled crops ({data['samples']} samples; {held['finetuned']['n']:,} held out) "
            f"with {opts['simulated_per_class']} simulated crops a class mixed in: "
            f"{opts['steps']} steps at lr {opts['lr']}, {tuned['seconds']['train']:.0f} s on "
            f"{tuned['device']}; held-out macro-F1 {held['base']['macro_f1']:.4f} -> "
            f"{held['finetuned']['macro_f1']:.4f}"]


def render_card(card: dict) -> str:
    """The model card as Markdown."""
    test = card["test_default_randomisation"]
    lines = [
        f"# Model card: {card['name']}",
        "",
        f"`{card['file']}` ({card['size_bytes'] / 1e6:.2f} MB, {card['parameters']:,} "
        f"parameters): `{card['arch']}` CNN, {card['crop_size']} px crops at "
        f"{card['pixel_size_um']} um/px, "
        f"{'8-bit composite exports' if card.get('reads') == 'exports' else 'raw counts'} in "
        f"(normalisation: {card['normalisation']})"
        f"{symmetry_text(card.get('symmetry', 'none'))}.",
        "",
        f"- Panel `{card['panel']['name']}`: "
        f"{', '.join(c['name'] for c in card['panel']['channels'])}",
        f"- Classes: {', '.join(card['classes'])}",
        f"- Data: {card['data']['source']}; train/val "
        f"{json.dumps(card['data']['train_val']['splits'])}",
        f"- Training: {card['training']['epochs']} epochs, {card['training']['seconds']} s on "
        f"{card['training']['device']} ({card['training'].get('crops_per_s', '?')} crops/s)",
        *finetune_lines(card["training"].get("finetune")),
        f"- Reproduce: `{card['reproduce']}`",
        "",
        f"## Held-out test (default randomisation, seed {card['data']['test']['seed']}, "
        f"{test['n']} crops" + (f", as {test['export']} exports at {test['pixel_size_um']} "
                                "um/px, read back with the pixel size given; this model reads "
                                "8-bit composite exports only" if test.get("export") else "")
        + ")",
        "",
        f"macro-F1 **{test['macro_f1']:.4f}**, accuracy {test['accuracy']:.4f}, CTC recall "
        f"**{test['ctc_recall']:.4f}**, WBCs called CTC **{test['wbc_called_ctc_rate']:.5f}** "
        f"(targets: macro-F1 >= {TARGETS['macro_f1']}, CTC recall >= {TARGETS['ctc_recall']}, "
        f"WBC->CTC <= {TARGETS['wbc_called_ctc_rate']}; met: {card['targets_met']})",
        "",
        "| class | precision | recall | F1 | support |",
        "|---|---|---|---|---|",
    ]
    for name, m in test["per_class"].items():
        lines.append(f"| {name} | {m['precision']:.4f} | {m['recall']:.4f} | {m['f1']:.4f} | "
                     f"{m['support']} |")
    lines += ["", "Confusion (rows true, columns predicted, order "
              f"{', '.join(card['classes'])}): `{test['confusion']}`", ""]
    rgb = card.get("test_rgb_jpeg")
    if rgb:
        lines += [f"## Held-out RGB-JPEG composites (seed {rgb['seed']}, {rgb['n']} crops at "
                  f"{rgb['pixel_size_um']} um/px, planes R, G, B = {', '.join(rgb['planes'])}, "
                  f"quality {rgb['jpeg_quality']})", "",
                  f"macro-F1 **{rgb['macro_f1']:.4f}**, CTC recall {rgb['ctc_recall']:.4f}, "
                  f"WBCs called CTC {rgb['wbc_called_ctc_rate']:.5f}; per-class F1 " + ", ".join(
                      f"{n} {m['f1']:.4f}" for n, m in rgb["per_class"].items()) +
                  f". Confusion: `{rgb['confusion']}`", ""]
    lines += [
              "## Robustness (named shifts, other seeds)", "",
              "| shift | what | macro-F1 | CTC recall | WBC->CTC | n |",
              "|---|---|---|---|---|---|"]
    for name, r in card["robustness"].items():
        lines.append(f"| {name} | {r['description']} | {r['macro_f1']:.4f} | "
                     f"{r['ctc_recall']:.4f} | {r['wbc_called_ctc_rate']:.4f} | {r['n']} |")
    double = card.get("ck_positive_leukocytes")
    if double:
        lines += ["", f"CK+CD45+ leukocytes (non-specific CK 0.3-2x their CD45, {double['n']} "
                  f"crops): **{double['called_ctc']:.2%}** called ctc (target <= 1 %); the "
                  f"marker guard flags {double['guard']['wrong_ctc_caught']} of those "
                  f"{double['guard']['wrong_ctc_calls']} calls."]
    guard = test.get("guard")
    if guard:
        held = (f" and holds {guard['right_ctc_held']} of {guard['right_ctc_calls']} right "
                "ones" if "right_ctc_held" in guard else "")
        lines += ["", "## Marker guard (held-out test)", "",
                  f"Flags {guard['flagged_share']:.2%} of all events for review; catches "
                  f"{guard['wrong_ctc_caught']} of {guard['wrong_ctc_calls']} wrong CTC calls"
                  f"{held} (ctcnet.inference.guard: CD45 over the CK area, no DNA in it, "
                  "DAPI there that is only a copy of the CK pattern (a leak, autofluorescence), "
                  "less DNA than a nucleus holds against the sample's own leukocytes, no CK, "
                  "a nucleus blurred far wider than the sample's leukocytes' (out of focus), "
                  "or unlike the training data)."]
        if "ctc_called_or_flagged" in guard:
            lines += ["", f"The other direction: {guard['missed_ctc_shown']} of the "
                      f"{guard['missed_ctc']} true CTCs called something else are shown to a "
                      "person (flag possible_ctc: wbc/debris calls with a CTC's markers, "
                      "or wbc/debris/cluster calls the network still gives a CTC "
                      f"{POSSIBLE_CTC_PROBA:.0%} or more, with some CK and a nucleus of "
                      "their own and no exclusion marker; on "
                      f"{guard['possible_ctc_share']:.2%} of all events; or a call below the "
                      "review threshold): true CTCs called ctc or shown: "
                      f"**{guard['ctc_called_or_flagged']:.2%}**"]
            either = guard.get("ctc_called_ctc_or_cluster_or_flagged")
            lines[-1] += (f"; called ctc or cluster (a CTC-bearing event) or shown: "
                          f"{either:.2%}." if either is not None else ".")
    vs = card.get("robustness_vs_baselines")
    if vs:
        lines += ["", "## CNN against the baselines (macro-F1, same crops per shift)", "",
                  f"{vs['n_per_class']} crops per class per shift, seed {vs['seed']}; baselines "
                  "fitted on a separate simulated training set. `ctc_dim` = recall of CK-dim CTCs.",
                  "", "| shift | CNN | marker gate | feature classifier | CNN - gate | "
                  "ctc_dim recall (CNN / gate / features) |", "|---|---|---|---|---|---|"]
        for name, r in vs["shifts"].items():
            dim = r.get("ctc_dim_recall", {})
            dims = " / ".join(f"{dim[k]:.2f}" for k in ("cnn", "marker_gate",
                                                         "feature_classifier") if k in dim)
            lines.append(f"| {name} | {r['cnn']:.4f} | {r['marker_gate']:.4f} | "
                         f"{r['feature_classifier']:.4f} | {r['cnn_minus_marker_gate']:+.4f} | "
                         f"{dims} |")
    cal = card.get("calibration")
    if cal:
        review = cal.get("review", {})
        lines += ["", "## Calibration (fitted on the validation split)", "",
                  f"Temperature {cal['temperature']:.3f}; review threshold "
                  f"{cal['review_threshold']:.3f}: calls whose top probability is below it go "
                  "to a person. On validation: " + ", ".join(
                      f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                      for k, v in review.items() if not isinstance(v, (dict, list))) + "."]
    lines += matrix_lines(card.get("robustness_matrix"))
    lines += decision_lines(card.get("decision"))
    lines += ["", "## Recall per simulator subtype", "", "| subtype | recall | n |",
              "|---|---|---|"]
    for name, r in test.get("subtype_recall", {}).items():
        lines.append(f"| {name} | {r['recall']:.4f} | {r['n']} |")
    return "\n".join(lines) + "\n"


def decision_lines(decision: dict | None) -> list[str]:
    """The card's section on the decision rule at cartridge prevalence (``spec.decision``)."""
    if not decision or not decision.get("log_weights"):
        return []
    fitted = decision.get("fitted", {})
    weights = ", ".join(f"{k} {v:+.2f}" for k, v in decision["log_weights"].items())
    lines = ["", "## Decision at cartridge prevalence", "",
             f"Calls in `ctcnet predict` and the ONNX runtime add these log weights to the log "
             f"probabilities before the call ({decision.get('rule')}): {weights}. Fitted on "
             f"{fitted.get('cartridges')} simulated cartridges of {fitted.get('frames')} frames "
             f"(seeds {fitted.get('seeds')}), projected to "
             f"{fitted.get('deployment_events_per_cartridge', 0):,.0f} events per cartridge; "
             f"reproduce: `{fitted.get('command')}`.", ""]
    at_fit = fitted.get("at_fit", {})
    if at_fit:
        lines += ["| class | log weight | recall on the fitting cartridges | false calls per "
                  "1,000 events | expected share within max(1, 15 %) |", "|---|---|---|---|---|"]
        for name, row in at_fit.items():
            lines.append(f"| {name} | {row['log_weight']:+.2f} | {row['recall']:.3f} | "
                         f"{row['false_per_1000_events']:.3f} | {row['within']:.0%} |")
    per_crop = decision.get("per_crop")
    if per_crop:
        lines += ["", f"Cost on balanced held-out crops ({per_crop['per_class']} per class, seed "
                  f"{per_crop['seed']}): recall with the rule against the plain most probable "
                  "class. The rule is for cartridges, where debris outnumbers CTCs; on a "
                  "balanced crop set it under-calls the rare classes, and `ctcnet evaluate` "
                  "scores crops by the plain call.", "",
                  "| class | plain | with the rule |", "|---|---|---|"]
        for name, r in per_crop["recall"].items():
            lines.append(f"| {name} | {r['plain']:.3f} | {r['with_rule']:.3f} |")
    return lines


def update_card(card_path, **entries) -> None:
    """Set top-level entries of a model's card (``<name>.json``) and re-render its ``.md``."""
    from pathlib import Path

    card_path = Path(card_path)
    card = json.loads(card_path.read_text())
    card.update(entries)
    atomic_write_text(card_path, json.dumps(card, indent=2, default=float) + "\n")
    atomic_write_text(card_path.with_suffix(".md"), render_card(card))


def refresh_decision(card_path, decision: dict, per_crop: dict | None = None) -> None:
    """Record a (re)fitted decision rule in a model's card (``<name>.json`` and ``.md``)."""
    update_card(card_path, decision={**decision, **({"per_crop": per_crop} if per_crop else {})})


def matrix_summary(matrix: dict, command: str) -> dict:
    """What a card keeps of a robustness matrix (``ctcnet.evaluation.matrix``): the clean
    figures, every range-end cell per method, the target check and the review flags."""
    names = matrix["class_names"]
    return {"n": matrix["n"], "seed": matrix["seed"], "data": matrix.get("data"),
            "command": command, "methods": matrix["methods"],
            "clean": {m: round(v["macro_f1"], 4) for m, v in matrix["clean"].items()},
            "range_ends": [{"perturbation": c["name"], "strength": c["label"],
                            **{m: {"flip_rate": round(v["flip_rate"], 4),
                                   "macro_f1": round(v["macro_f1"], 4),
                                   "flips": flip_summary(v, names)}
                               for m, v in c["methods"].items()}}
                           for c in matrix["cells"] if c["range_end"]],
            "check": {k: matrix["check"][k] for k in ("passed", "failures", "range_end_cells",
                                                      "double_positive_wbc_called_ctc",
                                                      "double_positive_wbc_counted_ctc",
                                                      "targets")},
            "review_flags": review_lines(matrix),
            **({"exported": True, "export_redraw": {
                k: round(matrix["export_redraw"][k], 4) for k in ("flip_rate", "macro_f1")}}
               if matrix.get("exported") else {})}


def matrix_lines(summary: dict | None) -> list[str]:
    """The card's section on the robustness matrix (``matrix_summary``)."""
    if not summary:
        return []
    check, methods = summary["check"], summary["methods"]
    targets = check["targets"]
    double = check.get("double_positive_wbc_called_ctc")
    counted = check.get("double_positive_wbc_counted_ctc")
    data = summary.get("data") or f"seed {summary['seed']}"
    lines = ["", "## Robustness matrix (range ends)", "",
             f"{summary['n']} held-out crops ({data}), each perturbation at the end of its "
             f"stated range; flips against the same method's unperturbed call. Calls are the "
             f"top calibrated probability, balanced classes, without the decision rule at "
             f"cartridge prevalence. Reproduce: `{summary['command']}`. Clean macro-F1: "
             + ", ".join(f"{m} {v:.4f}" for m, v in summary["clean"].items()) + ".", "",
             f"Targets (<= {targets['max_flip_rate']:.0%} flips, macro-F1 >= "
             f"{targets['min_macro_f1']}, never below the marker gate, CK+CD45+ leukocytes "
             f"called ctc <= {targets['max_double_positive_ctc']:.0%}): "
             f"**{'met' if check['passed'] else 'not met'}**, {len(check['failures'])} "
             f"failures over {check['range_end_cells']} range-end cells"
             + (f"; CK+CD45+ leukocytes called ctc {double:.1%}" if double is not None else "")
             + (f" ({counted:.1%} left in the automatic CTC count once the marker guard "
                f"holds its flagged calls)" if double is not None and counted is not None
                else "")
             + ".", ""]
    if summary.get("exported"):
        redraw = summary["export_redraw"]
        lines += [f"The model reads exports only: every crop, changed or not, was given to it as "
                  f"a tight single-cell export (the change made in the scanner's counts "
                  f"first), and its guard measured that export. Its flips are read against "
                  f"the export's own: the unchanged crops exported again with other settings "
                  f"flip {redraw['flip_rate']:.1%} of its calls (macro-F1 "
                  f"{redraw['macro_f1']:.3f}).", ""]
    lines += ["| perturbation | strength | "
              + " | ".join(f"{m} flips | {m} F1" for m in methods)
              + f" | {methods[0]}'s commonest flips |",
              "|---|---|" + "---|---|" * len(methods) + "---|"]
    for cell in summary["range_ends"]:
        lines.append(f"| {cell['perturbation']} | {cell['strength']} | " + " | ".join(
            f"{cell[m]['flip_rate']:.1%} | {cell[m]['macro_f1']:.3f}" if m in cell else "- | -"
            for m in methods) + f" | {cell.get(methods[0], {}).get('flips', '')} |")
    if summary.get("review_flags"):
        lines += ["", "Review flags (share of wrong CTC calls caught, share of events flagged):",
                  ""] + [f"- {line}" for line in summary["review_flags"]]
    return lines
