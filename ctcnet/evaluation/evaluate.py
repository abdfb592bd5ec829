"""Evaluation of a model on labelled crops, against the classical baselines, under named shifts.

* :func:`evaluate_crops`: one report for crops in memory: the CNN's metrics (per class, macro-F1,
  confusion, one-vs-rest AUCs, CTC sensitivity at 99 % and 99.8 % specificity, ECE, the review
  band at ``spec.review_threshold``, recall per simulator subtype when known), the same metrics
  for the marker gate and the feature classifier, and the CNN's margin over each baseline.
* :func:`evaluate_dataset`: the ``ctcnet evaluate`` workflow on a crop dataset folder, read a
  chunk of crops at a time as predict reads one (memory flat in the folder's size); writes
  ``report.json``, ``predictions.csv`` (each crop's call, made as ``ctcnet predict`` makes it on
  the same folder), ``confusion.png``, ``reliability.png`` (and baseline confusion PNGs).
* ``ctcnet evaluate`` on simulated cartridges: :mod:`ctcnet.evaluation.cartridge_evaluation`.
* :func:`robustness_report`: macro-F1 per named simulator shift, CNN and baselines side by side
  (baselines fitted on a clean training set of other seeds), for the model card.

Baselines need a training set: a dataset's rows with split ``train``, a separate labelled
folder, or (default) crops simulated for the model's panel with seeds the test never uses
(:mod:`ctcnet.evaluation.test_set`).

**Calls and the class prior.** A crop set is not a cartridge, so its calls are the plain most
probable class by default, not the model's cartridge prevalence rule (``spec.decision``), as in
``ctcnet predict`` on a crop folder; ``prior`` (``--prior``, :func:`ctcnet.nn.calls.prior_rule`)
states another. The metrics made from calls (confusion, precision, recall, F1, accuracy, the
review band) use the calls at that prior; those made from scores (AUCs, sensitivity at
specificity, ECE) use the network's probabilities. ``deployment_rule`` still reports what the
model's cartridge rule would cost on these crops.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from ctcnet.core.json_text import strict_json
from ctcnet.core.paths import absolute
from ctcnet.core.printable import spreadsheet_table
from ctcnet.detect.crop_dataset import pixel_size_source
from ctcnet.evaluation.baselines import baseline_probabilities, fit_baselines
from ctcnet.evaluation.calibration import review_band, softmax
from ctcnet.evaluation.metrics import (
    classification_report,
    recall_by_group,
    reliability_bins,
    sensitivity_at_specificity,
)
from ctcnet.evaluation.plots import confusion_png, reliability_png
from ctcnet.evaluation.recalibrated_model import last_recalibration, recalibrated_record
from ctcnet.evaluation.test_set import (
    BASELINE_TRAIN_SEED,
    crops_learnt_from,
    labelled_index,
    labels_to_indices,
    model_labels_warning,
    own_training_data_warning,
    simulated_training_set,
)
from ctcnet.inference.backends import load_backend
from ctcnet.inference.crop_sets import read_and_classify
from ctcnet.inference.guard import RULES
from ctcnet.inference.model_records import scored_by
from ctcnet.inference.progress import StepBars, progress_bar
from ctcnet.inference.spillover import network_view
from ctcnet.io.atomic import atomic_path, atomic_write_text
from ctcnet.io.spilled import SpilledArray
from ctcnet.nn.calls import (
    DecisionRule,
    calls_from_proba,
    decision_weights,
    deployment_proba,
)
from ctcnet.nn.crop_input import display_levels
from ctcnet.nn.spec import ModelSpec
from ctcnet.simulate import SimConfig, simulate_crops

log = logging.getLogger(__name__)

SPECIFICITIES = (0.99, 0.998)
# What classification_report computes from calls (the rest, from scores).
CALL_METRICS = ("accuracy", "macro_f1", "per_class", "absent_predicted", "confusion")
DEFAULT_SHIFTS = ("none", "defocus", "dim_ck", "noise_2x", "pixel_size", "small_cells",
                  "large_cells", "bleed_through", "display_8bit")


def method_report(labels: np.ndarray, proba: np.ndarray, class_names: list[str],
                  subtypes=None, positive_class: str = "ctc") -> dict:
    """Metrics of one method (CNN or baseline) on one set of crops."""
    report = classification_report(labels, proba, class_names)
    if positive_class in class_names:
        k = class_names.index(positive_class)
        report[f"{positive_class}_sensitivity_at_specificity"] = {
            f"{s:.3f}": sensitivity_at_specificity(proba[:, k], labels == k, s)
            for s in SPECIFICITIES}
    if subtypes is not None:
        report["recall_by_subtype"] = recall_by_group(labels, proba.argmax(axis=1), subtypes)
    return report


def compare_to_baselines(cnn: dict, baselines: dict) -> dict:
    """The CNN's margin over each baseline: macro-F1, F1 per class, recall per subtype."""
    out = {}
    for name, base in baselines.items():
        margin = {"macro_f1": cnn["macro_f1"] - base["macro_f1"],
                  "f1": {c: cnn["per_class"][c]["f1"] - base["per_class"][c]["f1"]
                         for c in cnn["per_class"]}}
        if "recall_by_subtype" in cnn and "recall_by_subtype" in base:
            margin["recall_by_subtype"] = {
                s: cnn["recall_by_subtype"][s]["recall"] - base["recall_by_subtype"][s]["recall"]
                for s in cnn["recall_by_subtype"]}
        margin["cnn_better"] = margin["macro_f1"] > 0
        out[name] = margin
    return out


def evaluate_crops(backend, crops: np.ndarray, labels, subtypes=None,
                   baselines: dict | None = None, model_input: np.ndarray | None = None,
                   sample_ids=None, decision: DecisionRule | None = None,
                   markers_decide: bool = False, exported: bool = False,
                   logits: np.ndarray | None = None, measured=None, read_as=None) -> dict:
    """Full report for model-scale crops in memory, run through ``backend`` (torch or ONNX,
    :mod:`ctcnet.inference.backends`); ``baselines`` from
    :func:`ctcnet.evaluation.baselines.fit_baselines`. ``model_input``: what the CNN sees
    instead of ``crops`` (the crops compensated for spillover; default: as the model was
    trained, per ``sample_ids``); the baselines see ``crops``. ``decision``: the rule the
    CNN's calls are made with (:func:`ctcnet.nn.calls.prior_rule`; default none, the plain
    most probable class). ``markers_decide``: the calls are made as ``ctcnet predict`` makes
    them on a crop set, the markers the guard measures taking part
    (:func:`ctcnet.inference.guard.crop_set_calls`); the report's ``_calls`` holds them.
    ``exported``: the crops are display exports (RGB composites), whose leaks the markers read
    as such (:meth:`ctcnet.inference.guard.GuardRules.for_crops`). ``logits``, ``measured``:
    the CNN's logits and the guard's measurements, if made (a crop folder's, a chunk at a
    time: :func:`ctcnet.inference.crop_sets.read_and_classify`); ``read_as``: the spec the
    guard read them at (their value ranges; default the model's)."""
    spec = backend.spec
    names = spec.class_names
    y = labels_to_indices(labels, names)
    if logits is None:
        with display_levels(exported):  # (composites: their black is a display's)
            logits = backend.predict_logits(network_view(spec, crops, sample_ids)[0]
                                            if model_input is None else model_input)
    proba = softmax(logits, spec.temperature)
    cnn = method_report(y, proba, names, subtypes)
    # The calls at the stated prior (predict's), and the share predict shows for the doubt.
    called = deployment_proba(proba, names, decision)
    cnn["review_band"] = review_band(proba, y, spec.review_threshold, names, decision,
                                     spec.taxonomy.reported_classes())
    calls = np.asarray(names, dtype=object)[called.argmax(axis=1)]
    if markers_decide:
        # pandas and scipy come with the guard (and with predict, below): only where used.
        from ctcnet.evaluation.counted import counted_report, marker_changes
        from ctcnet.inference.guard import RULES, crop_set_review

        network_calls = calls
        calls, flags = crop_set_review(crops, proba, read_as or spec, calls, sample_ids,
                                       decision, rules=RULES.for_crops(exported),
                                       measured=measured)
        changed = calls != network_calls
        cnn["marker_calls"] = {**marker_changes(network_calls, calls), "network_accuracy":
                               float((called.argmax(axis=1) == y).mean()) if y.size else None}
        cnn["counted"] = counted_report(y, calls, flags["any"].to_numpy(), names)
        if changed.any():  # the calls as one-hot rows: what the call metrics are made from
            called = called.copy()
            called[changed] = np.eye(len(names))[[names.index(c) for c in calls[changed]]]
    if called is not proba:
        cnn.update({k: v for k, v in classification_report(y, called, names, with_auc=False)
                    .items() if k in CALL_METRICS})
        if subtypes is not None:
            cnn["recall_by_subtype"] = recall_by_group(y, called.argmax(axis=1), subtypes)
    cnn["ece_uncalibrated"] = classification_report(y, softmax(logits), names,
                                                    with_auc=False)["ece"]
    recalibration = last_recalibration(spec)
    if recalibration.get("from_temperature"):  # the same network under its base's calibration
        cnn["ece_before_recalibration"] = classification_report(
            y, softmax(logits, recalibration["from_temperature"]), names, with_auc=False)["ece"]
    if spec.decision:
        cnn["deployment_rule"] = rule_cost(proba, y, spec)
    if sample_ids is not None and len(set(sample_ids)) > 1:
        from ctcnet.evaluation.counted import by_sample

        cnn["by_sample"] = by_sample(y, calls, sample_ids, names)
    report = {"n": int(len(y)), "class_counts": {names[k]: int((y == k).sum())
                                                 for k in np.unique(y)},
              "temperature": float(spec.temperature), "cnn": cnn,
              **({"recalibrated": recalibrated_record(spec)} if recalibration else {}),
              "_proba": proba, "_labels": y, "_calls": calls,
              "_flags": flags if markers_decide else None}
    if baselines:
        base_proba = baseline_probabilities(baselines, crops, spec.panel)
        report["baselines"] = {name: method_report(y, p, names, subtypes)
                               for name, p in base_proba.items()}
        report["cnn_minus_baseline"] = compare_to_baselines(cnn, report["baselines"])
    return report


def rule_cost(proba: np.ndarray, y: np.ndarray, spec: ModelSpec) -> dict:
    """What the model's decision rule (``spec.decision``, made for cartridge prevalence) costs
    on these crops: recall per class with it and with the plain most probable class."""
    names = spec.class_names
    plain = np.asarray(proba).argmax(axis=1)
    called = calls_from_proba(proba, names, spec.review_threshold, spec.decision)[0]
    ruled = np.array([names.index(c) if c in names else -1 for c in called])
    out = {"log_weights": decision_weights(spec.decision), "recall": {}}
    for k, name in enumerate(names):
        if (y == k).any():
            out["recall"][name] = {"plain": float((plain[y == k] == k).mean()),
                                   "with_rule": float((ruled[y == k] == k).mean()),
                                   "n": int((y == k).sum())}
    return out


def _public(report: dict) -> dict:
    """The report without its in-memory arrays (keys starting with '_')."""
    return {k: v for k, v in report.items() if not k.startswith("_")}


def evaluate_dataset(data: str | Path, model_path: str | Path, out_dir: str | Path,
                     with_baselines: bool = True, baseline_train: str | Path | None = None,
                     n_train_per_class: int = 300, seed: int = BASELINE_TRAIN_SEED,
                     device: str = "auto", batch_size: int = 256,
                     compensate: bool | None = None, prior: str | None = None,
                     pixel_size: float | str | None = None,
                     markers_decide: bool = True, splits=None, page=None,
                     progress: bool = False) -> dict:
    """``ctcnet evaluate``: evaluate a model on a labelled crop dataset, beside the baselines.

    Writes report.json, confusion.json, predictions.csv (each crop's call, made as
    ``ctcnet predict`` makes it), the confusion and reliability figures and ``page``'s.

    Parameters
    ----------
    data : str or Path
        The labelled crop dataset (class folders or manifest.csv, plus panel.json); its
        channels are mapped to the model's by name.
    model_path : str or Path
        A ``.pt`` model, a Lightning ``.ckpt``, an ``.onnx`` export or a shipped model's name.
    out_dir : str or Path
        The output folder (created).
    with_baselines : bool, default True
        Also score the marker gate and the feature classifier.
    baseline_train : str or Path, optional
        Crops to fit the baselines on; default: the data's ``split=train`` rows if it has
        some, else simulated crops.
    n_train_per_class, seed : int
        Simulated baseline training crops per class, and their seed.
    device : str, default "auto"
        ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
    batch_size : int, default 256
        Crops per model call.
    compensate : bool, optional
        Whether the CNN sees CK's spillover taken off per sample; None: as the model was
        trained.
    prior : str, optional
        As ``ctcnet predict --prior``; default ``balanced``.
    pixel_size : float or str, optional
        As ``ctcnet predict --pixel-size``.
    markers_decide : bool, default True
        As ``ctcnet predict`` does on a crop set, the markers the guard measures take part in
        the calls.
    splits : list of str, optional
        Score only the crops of these manifest splits (``--split``); default: every crop but
        the ``split=train`` ones the baselines are fitted on.
    page : callable, optional
        ``page(out_dir, table, crops, spec, report)`` draws a page of predictions.csv's rows
        (a layer above: ``ctcnet.report.crop_set_page.write_evaluation_page``).
    progress : bool, default False
        A bar on stderr for each step: the crops fitted (``pixel_size="fit"``), read and
        classified.

    Returns
    -------
    dict
        What report.json holds: per-method metrics (macro-F1, per class, confusion,
        calibration) and where the baselines' training crops came from.
    """
    from ctcnet.inference.guard import guard_events  # pandas, scipy: crop folders only
    from ctcnet.inference.options import say_what_other_reported_classes_lack as say_others
    from ctcnet.inference.options import spec_for_crop_set, spec_read_as
    from ctcnet.inference.tables import label_events

    backend = load_backend(model_path, device=device, batch_size=batch_size)
    spec = backend.spec
    say_others(spec)
    # The rule predict applies to a crop folder at the same --prior (default: none).
    called_spec, prior_name = spec_for_crop_set(spec, prior)
    with progress_bar(None, not progress) as bars:
        steps = StepBars(bars, Path(data).name)
        index, baselines, source = labelled_index(
            data, spec, with_baselines, baseline_train, n_train_per_class, seed, seed,
            pixel_size=pixel_size, progress=steps, splits=splits)
        steps.total = len(index)
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        shape = (len(index), spec.panel.num_channels, spec.crop_size, spec.crop_size)
        # As predict reads a crop folder (the guard at its stated ranges): crops wait at model
        # scale in a file, the CNN and the guard run a chunk at a time (memory stays flat).
        with SpilledArray(shape, np.float32, out_dir) as crops:
            reading = read_and_classify(index, spec_read_as(spec, index.panel, wider_only=True),
                                        backend.predict_logits, crops,
                                        compensate, RULES.for_crops(index.exported)
                                        if markers_decide else None, steps)
            report = evaluate_crops(backend, crops, index.labels, baselines=baselines,
                                    logits=reading.outputs, measured=reading.measured,
                                    decision=called_spec.decision, sample_ids=index.sample_ids,
                                    markers_decide=markers_decide, exported=index.exported,
                                    read_as=reading.read_as)
            report["prior"] = prior_name
            if splits:  # the rows scored; default: all but the baselines' split=train
                report["splits"] = list(splits)
            report["decision_log_weights"] = decision_weights(called_spec.decision)
            report["pixel_size_um"] = float(index.panel.pixel_size_um)
            report["pixel_size_from"] = pixel_size_source(pixel_size)
            own = own_training_data_warning(spec, data, crops, splits)
            if own:
                log.warning("%s", own)
                report["warnings"] = report.get("warnings", []) + [own]
                report["_learnt_from"] = crops_learnt_from(spec, crops)  # which, in the table
            if (circular := model_labels_warning(data)) is not None:
                log.warning("%s", circular)
                report["warnings"] = report.get("warnings", []) + [circular]
            if reading.spillover is not None:
                report["spillover"] = reading.spillover
            report["leak_check"] = reading.leak_check  # past the guard's allowance: warned
            # Each crop's row as predict writes it for the same folder (the guard's flags and
            # what they send to review included): one function labels both.
            table = label_events(index.table(), report["_proba"], called_spec)
            if markers_decide:
                # (the calls and flags evaluate_crops made, not made again)
                table = guard_events(
                    table, crops, report["_proba"], (reading.read_as or spec).replace(
                        decision=called_spec.decision), markers_decide=True,
                    reviewed=(report["_calls"], report["_flags"]))
            return _write_evaluation(report, table, f"{data}", backend, out_dir,
                                     called_spec, source, baselines, crops, page)


def _write_evaluation(report: dict, table, data: str, backend, out_dir: Path,
                      called_spec: ModelSpec, source, baselines, crops, page) -> dict:
    """predictions.csv (``table``: each crop's row), the figures, confusion.json,
    report.json and ``page``'s."""
    spec = called_spec  # the network's own but for the rule its calls are made at
    if report.get("_learnt_from") is not None and report["_learnt_from"].any():
        table["learnt_from"] = report["_learnt_from"]  # crops the model was trained on
    with atomic_path(out_dir / "predictions.csv") as tmp:
        spreadsheet_table(table).to_csv(tmp, index=False, float_format="%.5g")
    if "guard" in table:  # the list a lab faces: predict's of this folder, by reason (as its
        # summary.json has it; with the network's calls only the guard has not run here)
        from ctcnet.inference.review_list import review_list_summary

        report["cnn"]["review_list"] = {**review_list_summary(table, spec), "n": len(table)}
    names = spec.class_names
    confusion_png(report["cnn"]["confusion"], names, out_dir / "confusion.png",
                  "CNN confusion matrix")
    bins = reliability_bins(report["_proba"], report["_labels"])
    reliability_png(bins, out_dir / "reliability.png", report["cnn"]["ece"],
                    f"Reliability (T = {spec.temperature:.2f})")
    for name, base in report.get("baselines", {}).items():
        confusion_png(base["confusion"], names, out_dir / f"confusion_{name}.png",
                      f"{name.replace('_', ' ')} confusion matrix")
    # A validation record names the data, the model (by its SHA-256), the software and when.
    public = {"data": absolute(data), **scored_by(backend), **_public(report),
              "predictions": "predictions.csv"}
    public["cnn"]["confusion_json"] = "confusion.json"
    if source:
        public["baseline_training"] = source
    if baselines:
        public["marker_gate_thresholds"] = baselines["marker_gate"].used_thresholds()
    atomic_write_text(out_dir / "confusion.json", json.dumps(
        {"class_names": names, "rows": "true", "columns": "predicted",
         "confusion": report["cnn"]["confusion"]}, indent=2) + "\n")
    atomic_write_text(out_dir / "report.json", strict_json(public, indent=2) + "\n")
    if page is not None:
        page(out_dir, table, crops, called_spec, public)
    return public


def robustness_report(backend, shifts=DEFAULT_SHIFTS, n_per_class: int = 100,
                      seed: int = 0, n_train_per_class: int = 300,
                      baselines: dict | None = None) -> dict:
    """Macro-F1 per named shift for the CNN and both baselines, for the model card.

    ``"none"`` is the unshifted test. Baselines are fitted once on a clean simulated training
    set (seed ``BASELINE_TRAIN_SEED``) unless given. Each shift's entry also holds the CNN's
    margin over the marker gate and CTC-dim recall where the simulator draws that subtype.
    """
    spec = backend.spec
    if baselines is None:
        crops, labels = simulated_training_set(spec, n_train_per_class)
        baselines = fit_baselines(crops, labels, spec.panel, spec.class_names, seed)
    out = {"n_per_class": int(n_per_class), "seed": int(seed), "shifts": {}}
    for shift in shifts:
        config = SimConfig() if shift == "none" else SimConfig().with_shift(shift)
        batch = simulate_crops(int(n_per_class), spec.panel, spec.taxonomy, spec.crop_size,
                               seed=seed, config=config)
        report = evaluate_crops(backend, batch.images.astype(np.float32), batch.labels,
                                subtypes=batch.subtypes, baselines=baselines,
                                sample_ids=batch.sample_ids)
        entry = {"cnn": report["cnn"]["macro_f1"]}
        entry.update({name: b["macro_f1"] for name, b in report["baselines"].items()})
        entry["cnn_minus_marker_gate"] = entry["cnn"] - entry["marker_gate"]
        entry["ece"] = report["cnn"]["ece"]
        for name, method in (("cnn", report["cnn"]), *report["baselines"].items()):
            dim = method["recall_by_subtype"].get("ctc_dim")
            if dim is not None:
                entry.setdefault("ctc_dim_recall", {})[name] = dim["recall"]
        out["shifts"][shift] = entry
    below = [s for s, e in out["shifts"].items() if e["cnn_minus_marker_gate"] < 0]
    out["cnn_below_marker_gate"] = below
    return out
