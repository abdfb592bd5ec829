"""The model card as Markdown: the card's plain data (:mod:`ctcnet.evaluation.model_card`)
rendered section by section, each section's lines written by its own function.
"""

from __future__ import annotations

import json

from ctcnet.core.printable import stated_percent
from ctcnet.evaluation.held_out import TARGETS
from ctcnet.evaluation.miss_rate import miss_upper_bound
from ctcnet.inference.guard import RULES
from ctcnet.inference.review_list import CELLS_AS_INDEPENDENT
from ctcnet.nn.spec import SYMMETRIES


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


def intended_use_lines(card: dict) -> list[str]:
    """What the model is for and where its figures stop, said before any figure: a quality
    officer reads a card for this first."""
    reads = ("exported single-cell composites (8-bit RGB, one cell a crop)"
             if card.get("reads") == "exports" else
             "the events of a scanned cartridge (raw 16-bit counts) or crops cut from one")
    channels = ", ".join(c["name"] for c in card["panel"]["channels"])
    return ["", "## Intended use and limits", "",
            "- Research use only, not for diagnostic use. It sorts " + reads + " of the "
            f"channels {channels} into {', '.join(card['classes'])}; a person reviews the "
            "events it lists before a count is reported (the review page, a sign-off).",
            "- Trained and measured on simulated cells (`ctcnet.simulate`): every figure on "
            "this card is of simulated data. A lab validates it on its own samples first "
            "(`ctcnet evaluate --expected`: a spike-in, or a comparison with the method it "
            "runs; docs/training.md) and adapts it with `ctcnet finetune` where they differ.",
            "- A CTC is CK+, CD45-, nucleated: CK-negative CTCs (after an epithelial-"
            "mesenchymal transition) are not counted, and clusters are reported apart from "
            "single CTCs. Other panels, channel orders or pixel sizes than the spec's are "
            "refused or rescaled (docs/predict.md), never read as they come."]


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
        *intended_use_lines(card),
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
                      f"{RULES.possible_ctc_proba:.0%} or more, with some CK and a nucleus of "
                      "their own and no exclusion marker; on "
                      f"{guard['possible_ctc_share']:.2%} of all events; or a call below the "
                      "review threshold whose runner-up, or a share of the rest, is a CTC or "
                      "cluster): true CTCs called ctc or shown: "
                      f"**{guard['ctc_called_or_flagged']:.2%}**"]
            either = guard.get("ctc_called_ctc_or_cluster_or_flagged")
            lines[-1] += (f"; called ctc or cluster (a CTC-bearing event) or shown: "
                          f"{either:.2%}." if either is not None else ".")
        again = card.get("guard_remeasured")
        if again:
            lines += ["", f"The guard's lines (here and for the CK+CD45+ leukocytes) were "
                          f"measured again on {again['date']} with the guard of that day, on "
                          "the card's seeds and sizes as the simulator of that day draws them "
                          "(`" + again["command"] + "`); the test's other figures are of the "
                          "draw the model was tested on."]
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
                  f"{cal['review_threshold']:.3f}: a call below it goes to a person where a "
                  "CTC or cluster is in the doubt (a CTC or cluster call, or another call whose "
                  "runner-up is one), not for doubt between two uncounted classes alone. On "
                  "validation, every call below it: " + ", ".join(
                      f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                      for k, v in review.items() if not isinstance(v, (dict, list))) + "."]
    lines += matrix_lines(card.get("robustness_matrix"))
    lines += decision_lines(card.get("decision"))
    lines += crop_band_lines(card.get("crop_review_band"))
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
    return lines + review_band_lines(decision.get("review_band"))


# What a review band reads (its record's ``reads``; older records say nothing: the network's).
BAND_READS = {"network": "its posterior",
              "fused": "the posterior of the network and the markers read together (the "
                       "model's cartridge marker fusion; the calls stay the network's, but for "
                       "the markers' own ctc calls of wbc and debris calls)"}


def review_band_lines(band: dict | None) -> list[str]:
    """The card's statement of the review band for a stated miss rate (``review_band`` of the
    decision rule: :mod:`ctcnet.evaluation.miss_rate`)."""
    if not band or band.get("band") is None:
        return []
    fitted, fresh = band.get("fitted_on", {}), band.get("fresh_family", {})
    without = band.get("without_band", {})
    reads = BAND_READS.get(band.get("reads"), BAND_READS["network"])
    lines = ["", "## Review band: a stated miss rate", "",
             f"On cartridges, a call of another class is shown to a person when a CTC or cluster "
             f"holds at least {band['band']:.4g} of {reads} at cartridge prevalence, or is the "
             f"likeliest class of it before that prevalence (the prior alone filed the event "
             f"as another class). "
             f"Guarantee: the share of detected CTCs and clusters neither counted nor shown is "
             f"at most {stated_percent(band['level'])} with "
             f"{stated_percent(band['confidence'])} confidence (fixed-sequence test, one-sided "
             f"Clopper-Pearson bound), for cells drawn as the "
             f"calibration cells were. {CELLS_AS_INDEPENDENT} Calibration: "
             f"{fitted.get('cartridges')} simulated cartridges of "
             f"{fitted.get('frames')} frames, {fitted.get('events_per_frame')} events a frame, "
             f"CTCs and clusters at {fitted.get('rates')} (seeds {fitted.get('seeds')}). "
             f"{OUTSIDE_GUARANTEE} Reproduce: `{band.get('command')}`.", "",
             "| | cells | missed | miss share | events shown |", "|---|---|---|---|---|",
             f"| calibration, this band | {band['cells']} | {band['misses']} | "
             f"{band['miss_share']:.2%} (bound {band['miss_bound']:.2%}) | {band['shown']:.1%} |"]
    if fresh:
        bound = miss_upper_bound(fresh["misses"], fresh["cells"], band["confidence"])
        lines.append(f"| fresh family ({fresh.get('cartridges')} cartridges, seeds "
                     f"{fresh.get('seeds')}), this band | {fresh['cells']} | {fresh['misses']} | "
                     f"{fresh['miss_share']:.2%} (bound {bound:.2%}) | {fresh['shown']:.1%} |")
    for name, row in without.items():
        lines.append(f"| {name.replace('_', ' ')}, band 1 - review threshold "
                     f"({row['band']:.3f}) | {row['cells']} | {row['misses']} | "
                     f"{row['miss_share']:.2%} | {row['shown']:.1%} |")
    lines += ["", "The shares of events shown are of CTC-rich cartridges (3 % CTCs), where every "
              "CTC and cluster call is shown; the band's own cost is the uncounted calls it "
              f"brings: {band.get('shown_by_band', 0):.2%} of the calibration events."]
    return lines


# What a review band's guarantee does not cover, said beside it.
OUTSIDE_GUARANTEE = ("It holds for cells drawn so, which are simulated: it is not established "
                     "on patient samples, and cells that detection missed are outside it.")


def crop_band_lines(band: dict | None) -> list[str]:
    """The card's statement of the crop sets' review band (``spec.metrics``'
    ``crop_review_band``: ``scripts/fit_crop_review_band.py``)."""
    if not band or band.get("band") is None:
        return []
    fitted, fresh = band.get("fitted_on", {}), band.get("fresh_family", {})
    load, without = band.get("review_load", {}), band.get("without_band", {})
    lines = ["", "## Review band on crop sets: a stated miss rate", "",
             f"On a crop folder (called at the balanced prior, the markers taking part), a call "
             f"of another class is shown to a person when a CTC or cluster holds at least "
             f"{band['band']:.4g} of the network's posterior. Guarantee: the share of CTCs and "
             f"clusters neither called a counted class nor shown is at most "
             f"{stated_percent(band['level'])} with {stated_percent(band['confidence'])} "
             f"confidence (fixed-sequence test, one-sided Clopper-Pearson bound), for crops "
             f"drawn as the calibration crops were: "
             f"{fitted.get('what')} ({fitted.get('crops')} crops, seed {fitted.get('seed')}). "
             f"{OUTSIDE_GUARANTEE} "
             f"With a stated prior (`--prior`) the band does not apply. Reproduce: "
             f"`{band.get('command')}`.", "",
             "| | CTCs and clusters | missed | miss share | crops on the review list | "
             "without the band |", "|---|---|---|---|---|---|",
             f"| calibration | {band['cells']} | {band['misses']} | {band['miss_share']:.2%} "
             f"(bound {band['miss_bound']:.2%}) | {load.get('fit', float('nan')):.1%} | "
             f"{without.get('fit', {}).get('review_load', float('nan')):.1%} |"]
    if fresh:
        bound = miss_upper_bound(fresh["misses"], fresh["cells"], band["confidence"])
        lines.append(f"| fresh family (seed {fresh.get('seed')}) | {fresh['cells']} | "
                     f"{fresh['misses']} | {fresh['miss_share']:.2%} (bound {bound:.2%}) | "
                     f"{load.get('fresh_family', float('nan')):.1%} | "
                     f"{without.get('fresh_family', {}).get('review_load', float('nan')):.1%} |")
    return lines


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
