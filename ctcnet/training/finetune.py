"""Fine-tuning: adapt a shipped model to a lab's own reviewed crops in minutes on a CPU.

``finetune(DATA, OUT, base=MODEL)`` reuses the training frame (:class:`CTCLitModule`,
:class:`CTCDataModule`): it starts from the base model's weights, trains only its last blocks
(``train_blocks``) for a fixed number of steps on the lab's crops with simulated crops mixed in
(so the simulator's range is not forgotten), holds out part of the lab's crops (whole samples
when there are several, else a class-stratified share) and on that part:

* compares the base and the adapted model (macro-F1, accuracy);
* refits the temperature and the review threshold
  (:func:`ctcnet.evaluation.recalibration.recalibrate_spec`): on that part alone when it holds
  100 crops or more, else pooled with simulated crops of the original simulator (the lab's crops
  weigh 1 each, the simulated ones together what the lab's fall short of 100); under a floor
  (held-out crops of one class, or none) the adapted model keeps the base model's, with a
  warning, and its spec and card say calibration was skipped and why. What the held-out crops
  guarantee (misses and wrong automatic calls, with Clopper-Pearson bounds) goes in the spec,
  the card and the log.

The lab's labels also make the marker guard its own: CK's leak into the exclusion markers'
channels, measured on the crops labelled ``ctc``, goes into the model's panel (the guard allows
it), and the lab's crops are pooled into the out-of-distribution reference (a prior worth 100
crops that never drops out), so the tuned model does not flag its own instrument's look
``unusual`` (:func:`ctcnet.evaluation.recalibration.lab_guard`).

It also scores both models on a fresh simulated test set, so a card shows whether adapting cost
anything on the original simulator. The model file's spec records base, data and figures, and a
model card (``OUT`` with ``.md``) says the same in words.

The defaults come from ``scripts/adaptation_curve.py`` (see docs/adapting.md).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from ctcnet.core.log_capture import kept_warnings
from ctcnet.core.paths import absolute, name_in_folder
from ctcnet.core.printable import named_counts
from ctcnet.core.provenance import made_now
from ctcnet.detect.crop_dataset import PLACEHOLDER_PIXEL_UM, pixel_size_source, read_crop_index
from ctcnet.detect.crop_fingerprints import merged
from ctcnet.detect.crop_writing import dataset_record
from ctcnet.detect.pixel_size import PIXEL_SIZE_OPTION
from ctcnet.errors import InputError
from ctcnet.evaluation.calibration import MIN_CALIBRATION_CROPS
from ctcnet.evaluation.metrics import macro_f1
from ctcnet.evaluation.recalibration import (
    REFERENCE_PER_CLASS,
    REFERENCE_SEED,
    calibration_method,
    describe,
    lab_guard,
    leaks_line,
    recalibrate_spec,
    reference_crops,
)
from ctcnet.io.atomic import check_output_file, refuse_existing, refuse_overwriting_inputs
from ctcnet.io.digests import file_sha256
from ctcnet.nn.crop_input import display_levels
from ctcnet.nn.registry import resolve_model
from ctcnet.training.finetune_card import write_model_and_cards
from ctcnet.training.held_out import held_out_learnt, held_out_unit, say_the_held_out_share
from ctcnet.training.lightning_noise import quiet_like_ctcnet

log = logging.getLogger(__name__)

SIM_TEST_SEED = REFERENCE_SEED  # the shipped model's held-out simulated test seed (its card)


@dataclass
class FinetuneOptions:
    """How fine-tuning runs; the defaults were chosen on the new-scanner protocol."""

    steps: int = 150              # optimiser steps (batches), whatever the data size
    # Last backbone blocks set free; None: all. On the new-scanner protocol (N=25, seed 0),
    # every block at lr 1e-4 reached macro-F1 0.975, the last two 0.970 (lr 3e-4) and 0.971
    # (lr 1e-3), every block at lr 1e-3 0.962 and lost 0.024 on the original simulator.
    train_blocks: int | None = None
    lr: float = 1e-4              # AdamW peak; cosine decay after a short warm-up
    # As the shipped models were trained (and configs/finetune.yaml, its LightningCLI form).
    label_smoothing: float = 0.02
    batch_size: int = 64
    # Simulated training crops mixed in per class (0: none). None: as many as the lab's mean
    # crops per class, at most 100. On the first protocol a fixed 100 drowned 25 lab crops
    # (0.55 against 0.63); on the present one a fixed 100 or 50 adapted as much (seed 1,
    # N=25: 0.949, 0.949 against 0.951) and forgot less, not yet measured over the curve.
    simulated_per_class: int | None = None
    holdout: float = 0.25         # share of the lab's crops held out for calibration + figures
    target_precision: float = 0.99  # of the automatic calls, for the review band
    # Simulated test crops per class for the forgetting check: 300 (1,200 crops) resolve a
    # change of 0.01 (at 100, 0.01 is four crops and measured drops scattered 0-0.015).
    sim_check_per_class: int = 300
    seed: int = 0
    device: str = "auto"
    # The crops' um per pixel where their panel.json does not state it: a number, "auto" or
    # "fit" (as ``ctcnet predict --pixel-size``); None: panel.json's.
    pixel_size: float | str | None = None


def _scores(logits: np.ndarray, labels: np.ndarray, num_classes: int) -> dict:
    pred = logits.argmax(axis=1)
    return {"macro_f1": round(macro_f1(labels, pred, num_classes), 4),
            "accuracy": round(float((pred == labels).mean()), 4) if len(labels) else None,
            "n": int(len(labels))}


def predict_call_scores(model, spec, crops: np.ndarray, labels: np.ndarray, sample_ids,
                        index) -> dict:
    """:func:`_scores` of the calls ``ctcnet predict`` and ``ctcnet evaluate`` make on these
    crops of a crop set (``index``) with ``model`` carrying ``spec``: the network's at the
    crop set's prior, the markers the guard measures taking part (``evaluate_crops`` with
    ``markers_decide``). A lab reads these calls, not the network's alone: the two can differ
    by more than a fine-tune moves either."""
    from ctcnet.evaluation.evaluate import evaluate_crops
    from ctcnet.inference.backends import TorchBackend
    from ctcnet.inference.options import spec_for_crop_set, spec_read_as

    kept = getattr(model, "spec", None)
    model.spec = spec  # the backend reads its spec off the model
    # The network runs again here rather than reuse the held-out logits made above: those are
    # of the raw crops, and predict gives a model trained on compensated crops its crops
    # compensated (``network_view``, inside ``evaluate_crops``).
    try:
        report = evaluate_crops(TorchBackend.from_model(model, device="cpu"), crops, labels,
                                sample_ids=sample_ids,
                                decision=spec_for_crop_set(spec, None)[0].decision,
                                markers_decide=True, exported=index.exported,
                                read_as=spec_read_as(spec, index.panel, wider_only=True))
    finally:
        model.spec = kept
    names = spec.class_names
    calls = np.array([names.index(c) for c in report["_calls"]], np.int64)
    return _scores(np.eye(len(names))[calls], labels, spec.num_classes)


def model_logits(model, crops: np.ndarray) -> np.ndarray:
    """Logits of a classifier in memory, through the one inference path (a torch backend)."""
    # Here, not at the top: every `ctcnet` command line imports this module (the finetune
    # subcommand's defaults), and the backends bring onnxruntime.
    from ctcnet.inference.backends import TorchBackend

    return TorchBackend.from_model(model, device="cpu").predict_logits(crops)


def simulated_check(logits: dict, labels: np.ndarray, num_classes: int) -> dict:
    """Macro-F1 of each model (its logits on one simulated test set, default randomisation,
    exported once for a model that reads exports: :func:`reference_crops`)."""
    return {name: _scores(z, labels, num_classes) for name, z in logits.items()}


CARD_SUFFIXES = (".md", ".json")


def check_outputs(out: Path, base: Path, overwrite: bool) -> None:
    """The model file and its cards (``.md`` and ``.json`` beside it) before any training:
    writable, not the base model, not existing unless ``overwrite``."""
    if out.suffix.lower() in CARD_SUFFIXES:
        raise InputError("the model cards go beside the model as .md and .json; name the model "
                         "file (e.g. .pt) with --out", out)
    refuse_overwriting_inputs(out, [base], "--out")
    paths = [out, *(out.with_suffix(s) for s in CARD_SUFFIXES)]
    for path in paths:
        check_output_file(path, "--out")
    refuse_existing(paths, overwrite)


# The spec's metrics that calls and flags read (the calibration, the guard's reference, the
# marker fusion); the rest are figures of the model they were measured on.
METRICS_IN_USE = ("calibration", "guard", "marker_fusion")


def _absent_note(n_sim: int) -> str:
    if n_sim > 0:
        return (": the model sees them only in the simulated crops mixed in, and the held-out "
                "figures say nothing of them")
    return ": no simulated crops are mixed in (--simulated-per-class 0), so it may unlearn them"


def _calibration(spec, held_logits: np.ndarray, labels: np.ndarray, skipped: str | None,
                 target: float, reference, expected: list[str]):
    """(spec, record): refitted on the held-out crops (alone, or pooled with the simulator's
    crops when they are few: :mod:`ctcnet.evaluation.recalibration`), or the base model's
    kept when they are under the floor (``skipped``: why)."""
    if not skipped:
        try:
            new_spec = recalibrate_spec(spec, held_logits, labels, target, reference, expected)
            return new_spec, new_spec.metrics["calibration"]
        except ValueError as err:  # crops no fit can be bounded on (all right, the pool too)
            skipped = str(err)
            log.warning("calibration: %s; the base model's is kept", skipped)
    return spec, {"skipped": skipped, "temperature": spec.temperature,
                  "review_threshold": spec.review_threshold, "kept_from": "base"}


def finetune(data_dir: str | Path, out: str | Path, base: str | Path | None = None,
             options: FinetuneOptions | None = None, overwrite: bool = False) -> dict:
    """Fine-tune ``base`` (default: the shipped model) on a crop dataset; write ``out`` and
    its card beside it (``.md``), refused before the training if either exists, unless
    ``overwrite``. The warnings said while it reads and trains are kept in its record.
    Returns the record stored in the model's spec (``training["finetune"]``)."""
    with kept_warnings() as said:
        return _finetune(data_dir, out, base, options, overwrite, said)


def _without_the_simulator(spec, opts: FinetuneOptions, data_dir
                           ) -> tuple[list[str], FinetuneOptions]:
    """The base model's classes the simulator draws no cell of (a lab's ``emt_ctc``), and the
    options without simulated crops in the training or a check on them where there are any
    (each needs every class; the calibration then pools none either): said, not refused
    after the training, whose work was lost at the calibration."""
    from ctcnet.simulate import undrawn_classes  # scipy: not imported with the command line

    undrawn = undrawn_classes(spec.panel, spec.taxonomy)
    if not undrawn:
        return undrawn, opts
    if opts.simulated_per_class:
        raise InputError(f"--simulated-per-class {opts.simulated_per_class}: the simulator "
                         f"draws no {', '.join(undrawn)} (the taxonomy lists no subtype to "
                         "draw it as); leave the option out to fine-tune on the lab's crops "
                         "alone", data_dir)
    log.warning("%s: the simulator draws no %s: the fine-tune mixes in no simulated crops and "
                "checks none (what keeps a model from forgetting the simulator's cells), and "
                "calibrates on the held-out crops alone (%d needed) or keeps the base model's "
                "calibration", data_dir, ", ".join(undrawn), MIN_CALIBRATION_CROPS)
    return undrawn, replace(opts, simulated_per_class=0, sim_check_per_class=0)


def _finetune(data_dir: str | Path, out: str | Path, base: str | Path | None,
              options: FinetuneOptions | None, overwrite: bool, said: list[str]) -> dict:
    """:func:`finetune`'s work (``said``: the warnings said so far, kept as they come)."""
    # torch and Lightning when training starts: this module is imported for its options too.
    import lightning as L
    import torch

    from ctcnet.nn.classifier import load_model, refuse_nonfinite_weights, select_device
    from ctcnet.training.datamodule import CTCDataModule
    from ctcnet.training.interrupts import fit_or_interrupt
    from ctcnet.training.lit import FEW_FROM_A_MODEL, CTCLitModule, check_training_classes

    opts = options or FinetuneOptions()
    out = Path(out)
    t0, cpu0 = time.perf_counter(), time.process_time()
    base = resolve_model(base)  # a file, a shipped model's name, or None: the default
    check_outputs(out, base, overwrite)
    base_model, spec = load_model(base)
    if spec.compensated_input:  # (tuned on raw crops, it was read on compensated ones)
        raise InputError(f"{Path(base).name} was trained on crops with CK's spillover taken off "
                         "(data.compensate), which a fine-tune does not do: train it on the "
                         "lab's crops instead (ctcnet train --data.data_dir CROPS --data."
                         f"compensate true --model.init_from {base})", data_dir)
    # Files, labels and channels, checked before the training; the crops' scale ("auto",
    # "fit") is measured once, by the data module that reads them.
    # (a placeholder size: a look ahead, which says nothing of the size the data module reads)
    index = read_crop_index(data_dir, taxonomy=spec.taxonomy, pixel_size=None if
                            opts.pixel_size is None else PLACEHOLDER_PIXEL_UM,
                            look_ahead=True).conform(spec.panel, what=f"crop dataset {data_dir}")
    # (crops at another pixel size: to the model's scale by the data module, as everywhere)
    # The manifest's test split is left out (said below): classes are counted on the crops
    # tuned on and held out (a class all in that split was said "few", and carded as the lab's).
    in_tune = index.subset(np.array([s.strip().lower() != "test" for s in index.splits], bool))
    counts = {n: int(in_tune.class_counts().get(n, 0)) for n in spec.class_names}
    if sum(counts.values()) < 8:
        raise InputError(f"only {sum(counts.values())} crops: too few to fine-tune and hold "
                         "some out: at least 8 are needed, a few of each class",
                         data_dir)
    undrawn, opts = _without_the_simulator(spec, opts, data_dir)
    n_sim = opts.simulated_per_class
    if n_sim is None:
        n_sim = min(100, int(np.ceil(sum(counts.values()) / max(1, sum(
            1 for v in counts.values() if v)))))
    check_training_classes(counts, f"the crops of {data_dir}", _absent_note(n_sim),
                           few=FEW_FROM_A_MODEL)
    made_by = crops_made_by(data_dir, index)
    L.seed_everything(opts.seed, workers=True, verbose=False)
    simulate = None
    if n_sim > 0:
        simulate = {"train": int(n_sim), "seed": 7000 + opts.seed, "num_samples": 8}
    # A model that reads exports is tuned on exports (the lab's, and simulated crops exported
    # as its recipe exports them); any other on its usual augmentation.
    view = {"view": "export", "augment": spec.training["data"]["augment"]} \
        if spec.reads_exports else {}
    data = CTCDataModule(panel=spec.panel.to_dict(), taxonomy=spec.taxonomy,  # as trained
                         crop_size=spec.crop_size, data_dir=str(data_dir), simulate=simulate,
                         val_fraction=opts.holdout, split_seed=opts.seed, split_unit="auto",
                         batch_size=opts.batch_size, pixel_size=opts.pixel_size, **view)
    data.pixel_size_option = PIXEL_SIZE_OPTION  # this command's option, not train's
    hp = spec.training.get("hyper_parameters", {})
    module = CTCLitModule(panel=spec.panel.to_dict(), taxonomy=spec.taxonomy.to_dict(),
                          crop_size=spec.crop_size, arch=spec.arch, arch_kwargs=spec.arch_kwargs,
                          loss=hp.get("loss", "ce"), focal_gamma=hp.get("focal_gamma", 2.0),
                          class_weights="balanced", lr=opts.lr, schedule="cosine",
                          init_from=str(base), train_blocks=opts.train_blocks,
                          symmetry=spec.symmetry, label_smoothing=opts.label_smoothing)
    device = select_device(opts.device)
    quiet_like_ctcnet()  # Lightning, imported just now, says its lines unless --quiet
    trainer = L.Trainer(max_steps=opts.steps, accelerator="gpu" if device.type == "cuda"
                        else "cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        limit_val_batches=0, num_sanity_val_steps=0,
                        precision="bf16-mixed" if device.type == "cuda" else "32-true")
    data.setup("fit")
    held = data.splits.get("val")
    if held is None or not len(held.targets):
        raise InputError("no crops left to hold out; lower --holdout or add crops", data_dir)
    say_the_held_out_share(data_dir, index, held, opts.holdout)
    learnt, copied = held_out_learnt(data_dir, spec, held, data.fingerprints)
    held_counts = held.class_counts(spec.class_names)
    only_held = [n for n, k in counts.items() if k and k <= held_counts.get(n, 0)]
    if only_held:  # e.g. one crop of a class, in the sample held out
        log.warning("%s: every crop of %s is held out: the fine-tune learns %s from the "
                    "simulator's crops alone, none of the lab's; add crops of it", data_dir,
                    ", ".join(only_held), "it" if len(only_held) == 1 else "them")
    left_out = data.splits.get("test")
    if left_out is not None and len(left_out.targets):
        log.warning("%s: %d crops of the manifest's test split are left out of the fine-tune "
                    "and of its figures (which are the val split's): score the model on them "
                    "with ctcnet evaluate", data_dir, len(left_out.targets))
    # Said before the training, so that a person can stop and hold out more.
    expected = [name for name, n in counts.items() if n]
    method, skipped = calibration_method(held.class_counts(spec.class_names), expected)
    if method == "pooled" and undrawn:
        method, skipped = None, (f"{len(held.targets)} crops, under the "
                                 f"{MIN_CALIBRATION_CROPS} that calibrate alone, and no "
                                 "simulated crops to pool them with")
    if skipped:
        skipped = f"held-out part too small: {skipped}"
        # Of one class, a whole sample held out (--holdout takes whole samples where there are
        # two or more, and cannot mend it): crops placed by hand.
        one_class = sum(1 for n in held.class_counts(spec.class_names).values() if n) < 2 \
            and len(set(index.sample_ids)) > 1
        log.warning("%s: %s; the fine-tuned model keeps the base model's calibration "
                    "(temperature %.3f, review threshold %.3f); %s to recalibrate", data_dir,
                    skipped, spec.temperature, spec.review_threshold,
                    "place crops of the other classes in the val split (manifest.csv's split "
                    "column: samples are held out whole)" if one_class else
                    "hold out more (--holdout) or add crops")
    elif method == "pooled":
        log.info("%s: %d held-out crops, under %d: temperature and review threshold are "
                 "fitted on them pooled with simulated crops", data_dir, len(held.targets),
                 MIN_CALIBRATION_CROPS)
    fit_or_interrupt(trainer, module, datamodule=data)
    train_seconds = time.perf_counter() - t0
    tuned = module.model.cpu().eval()  # (diverged, its figures ended in a traceback:)
    refuse_nonfinite_weights(tuned.state_dict(), data_dir, f"the fine-tune diverged at --lr "
                             f"{opts.lr:g}; lower it")

    # Figures on the held-out lab crops, then calibration on the same crops.
    labels = held.targets
    with display_levels(index.exported):  # (composites: their black is a display's)
        base_logits = model_logits(base_model, held.images)
        tuned_logits = model_logits(tuned, held.images)
    if not np.isfinite(tuned_logits).all():  # weights finite but past float32 (--lr 1e12)
        raise InputError(f"the fine-tune diverged at --lr {opts.lr:g} (its calls on the "
                         "held-out crops are not finite numbers); lower it", data_dir)
    # One simulated set serves the forgetting check and, when the held-out crops are few,
    # the calibration pool (temperature changes no call, so the check's macro-F1 is its own).
    per_class = opts.sim_check_per_class or (REFERENCE_PER_CLASS if method == "pooled" else 0)
    reference, sim = None, {}
    if per_class:
        ref_images, ref_labels = reference_crops(spec, per_class, SIM_TEST_SEED)
        ref_logits = {"finetuned": model_logits(tuned, ref_images)}
        if opts.sim_check_per_class:
            ref_logits["base"] = model_logits(base_model, ref_images)
            sim = simulated_check({k: ref_logits[k] for k in ("base", "finetuned")},
                                  ref_labels, spec.num_classes)
        reference = (ref_logits["finetuned"], ref_labels)
    else:  # drawn only if the held-out crops cannot calibrate alone (all called right)
        def draw_reference():
            images, ref_labels = reference_crops(spec, REFERENCE_PER_CLASS, SIM_TEST_SEED)
            return model_logits(tuned, images), ref_labels
        reference = draw_reference
    new_spec, calibration = _calibration(spec, tuned_logits, labels, skipped,
                                         opts.target_precision, reference, expected)
    train, own = data.splits["train"], data.folder_train_size
    new_spec, leaks = lab_guard(new_spec, in_tune,  # (the test split left out, as said)
                                np.concatenate([train.images[:own], held.images]),
                                np.concatenate([train.targets[:own], held.targets]))
    record = {**made_now(),  # (the software and when: the card's version is the base's)
        "base": {"path": absolute(base), "sha256": file_sha256(base), "version": spec.version,
                 "temperature": spec.temperature, "review_threshold": spec.review_threshold},
        "data": {"path": absolute(data_dir), "per_class": counts,
                 **({"manifest_sha256": file_sha256(Path(data_dir) / "manifest.csv")}
                    if (Path(data_dir) / "manifest.csv").is_file() else {}),
                 "samples": len(set(in_tune.sample_ids)), **made_by,
                 # the size the crops were read at: "auto" or "fit" as measured
                 "pixel_size_um": round(data.folder_pixel_size_um, 4),
                 "pixel_size_from": pixel_size_source(opts.pixel_size),
                 "held_out": {"crops": int(len(labels)),
                              "samples": sorted(set(map(str, held.sample_ids))),
                              "per_class": held.class_counts(spec.class_names),
                              "unit": held_out_unit(index, train, held),
                              # patients both trained on and held out (a split by hand)
                              "samples_also_trained_on": len(
                                  set(held.sample_ids) & set(train.sample_ids[:own])),
                              "learnt_by_base": learnt, "copies_trained_on": copied},
                 **({"left_out_test_crops": len(left_out.targets)}
                    if left_out is not None and len(left_out.targets) else {}),
                 # the training split, the simulated crops mixed in said apart from the lab's
                 "train": {**data.summary()["splits"]["train"], "lab_crops": int(own),
                           "lab_per_class": {name: int((train.targets[:own] == k).sum())
                                             for k, name in enumerate(spec.class_names)},
                           "lab_samples": len(set(train.sample_ids[:own])),
                           "simulated_crops": int(len(train.targets) - own)}},
        "options": {**asdict(opts), "simulated_per_class": int(n_sim)},
        # The lab's crops it learnt from (and its base's fine-tunes'), as evaluate tells them
        "learnt_from": merged(data.fingerprints.get("train"),
                              (spec.training.get("finetune") or {}).get("learnt_from")),
        # ...and the held-out crops its temperature and review threshold were fitted on: an
        # evaluation of them is in-sample for those, and says so
        **({} if "skipped" in calibration else
           {"calibrated_on": data.fingerprints.get("val")}),
        # What a person was told while it was made (copies, classes missing, files left out).
        "warnings": list(said),
        # The network's own calls (argmax), and the calls predict makes (the markers taking
        # part): a lab's figure is the second.
        "held_out": {"base": _scores(base_logits, labels, spec.num_classes),
                     "finetuned": _scores(tuned_logits, labels, spec.num_classes)},
        "held_out_calls": {
            "base": predict_call_scores(base_model, spec, held.images, labels,
                                        held.sample_ids, index),
            "finetuned": predict_call_scores(tuned, new_spec, held.images, labels,
                                             held.sample_ids, index)},
        "simulated_test": sim,
        "calibration": calibration,
        "leaks": leaks,
        # Wall time, and the process's CPU time (every thread): on a shared machine the wall
        # time says as much about the neighbours as about the fine-tune.
        "seconds": {"train": round(train_seconds, 1),
                    "total": round(time.perf_counter() - t0, 1),
                    "cpu": round(time.process_time() - cpu0, 1)},
        "device": str(device), "threads": torch.get_num_threads(),
    }
    # The cartridge rule and its review band stay the base's (a lab's crops hold no
    # cartridge to fit them on); the band's stated miss rate was measured on the base
    # network's calls, and says so wherever it is stated (summary.json, the card).
    new_spec = new_spec.replace(decision=new_spec.decision.with_band_kept(
        Path(base).stem, "a fine-tune", drop_fusion=True))
    # The base model's figures (its test, robustness and validation) are not this model's:
    # kept under "base", beside the fine-tune's own; what the calls use stays where it is.
    used = {k: v for k, v in new_spec.metrics.items() if k in METRICS_IN_USE}
    figures = {k: v for k, v in spec.metrics.items() if k not in METRICS_IN_USE}
    shown = {k: record[k] for k in ("held_out", "simulated_test")}
    new_spec = new_spec.replace(training={**spec.training, "finetune": json.loads(json.dumps(
        record, default=float))}, version=record["software"]["ctcnet"], metrics={
            **used, "base": figures, "finetune": shown})
    write_model_and_cards(out, tuned, new_spec, record)
    log.info("fine-tuned %s -> %s in %.0f s; calibration: %s; %s", base, out,
             record["seconds"]["total"], "kept the base model's (" + calibration["skipped"] + ")"
             if calibration.get("skipped") else describe(calibration),
             leaks_line(leaks, new_spec)[2:])
    return record


def crops_made_by(data_dir, index=None) -> dict:
    """What ``ctcnet crops`` recorded of a crop set's labels (its ``dataset.json``):
    ``labels`` (``reviewer``: a person's decisions; ``model``: the model's own calls, said in
    a warning, a fine-tune on them learning its mistakes), per sample whether its sign-off
    held as the crops were cut, and, of ``index`` (the crops read), those the cut did not
    write per sample (``added_crops``: a lab's own added to the folder, whose labels the cut's
    record does not vouch for). Empty for crops ctcnet did not cut."""
    info = dataset_record(data_dir)
    labels, sources = info.get("labels"), info.get("sources") or []
    if labels == "model":
        log.warning("%s: its labels are the model's own calls (ctcnet crops without "
                    "--reviewed), not a person's: a fine-tune on them learns the model's "
                    "mistakes; cut the crops with --reviewed after a review", data_dir)
    signed = {str(s.get("sample_id")): (s.get("signoff") or {}).get("status", "not signed off")
              for s in sources if isinstance(s, dict) and s.get("sample_id")}
    added = _added_to_the_cut(info, index) if labels else {}
    if added:
        log.warning("%s: %d crop(s) are not from the `ctcnet crops` cut its dataset.json "
                    "records (%s): their labels are whoever added them, and the model card "
                    "says so", data_dir, sum(added.values()), named_counts(added))
    return {**({"labels": labels} if labels else {}),
            **({"signoff_status": signed} if labels == "reviewer" else {}),
            **({"added_crops": added} if added else {})}


def _added_to_the_cut(record: dict, index) -> dict[str, int]:
    """Per sample, the crops of ``index`` that the cut ``record`` (dataset.json) does not
    list."""
    rows = record.get("crops")
    if index is None or not isinstance(rows, list):
        return {}
    cut = {str(row.get("path")) for row in rows if isinstance(row, dict)}
    added: dict[str, int] = {}
    for path, sample in zip(index.paths, index.sample_ids):
        # (a folder named relatively, or by a link, holds resolved paths)
        name = name_in_folder(path, index.root).as_posix()
        if name not in cut:
            added[str(sample)] = added.get(str(sample), 0) + 1
    return added
