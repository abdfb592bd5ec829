"""Re-fit a trained model's marker-guard reference after a change to the guard's measurements.

The guard (:mod:`ctcnet.inference.guard`) flags ``unusual`` events by their distance to the
training events of the called class, in the space of its own measurements; the reference
(class means, covariance, threshold) is fitted on the validation split when the model is
trained (``scripts/train_default_model.py``). When the measurements change, the stored
reference describes other numbers. This re-makes the validation split from the recipe the
model was trained with (``--config``, simulated or a crop folder; checked against what the
model's card records), fits the reference again, writes it into the checkpoint's spec and,
metadata only, into the ONNX export beside it (``deploy.export.restamp_onnx``), and
re-measures the guard's lines of the card, if the model has one (held-out test and CK+CD45+
leukocytes, same seeds and sizes as the card's; as exports for a model that reads exports).

    python scripts/refit_guard.py --model MODEL --config RECIPE
        (--config may be left out for models/ctcnet-default.pt: configs/default.yaml)

After a change to the flags alone (what the guard does with its measurements, not the
measurements), ``--keep-reference`` leaves the reference as it is and only re-measures the
card's guard lines: the validation split a recipe makes today may differ from the one the
model was fitted on (an export model's validation exports are drawn from the export code of
its day), and a re-fit would then change the ``unusual`` flag for no reason of the change.

The weights, calibration and decision rule stay as they are; re-fit the rule afterwards
(``scripts/fit_decision.py``) if the guard's holds changed the counts it was fitted on.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
log = logging.getLogger("refit_guard")


# Fewer validation crops than this give a reference whose threshold (a 99.5 % quantile of
# in-sample distances, under a covariance fitted on the same few crops) holds back a lab's
# own CTCs as "unusual" (80 crops: 6 of 16 counted CTCs held).
MIN_REFERENCE_CROPS = 400


def validation_split(config_path: Path, card: dict | None, spec=None,
                     min_crops: int = MIN_REFERENCE_CROPS):
    """The validation crops of the recipe in ``config_path`` (the same seed, counts, panel),
    refused where the recipe's panel is not the model's ``spec``'s (when given) or its split
    holds fewer than ``min_crops``."""
    from ctcnet.errors import InputError
    from ctcnet.training.datamodule import CTCDataModule

    try:
        recipe = yaml.safe_load(Path(config_path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        mark = getattr(err, "problem_mark", None)  # YAML's: where, in one line
        why = (f"{err.problem} at line {mark.line + 1}" if mark is not None and
               getattr(err, "problem", None) else getattr(err, "strerror", None) or err)
        raise InputError(f"cannot read the recipe ({why})", config_path) from None
    if not isinstance(recipe, dict) or not isinstance(recipe.get("data"), dict):
        raise InputError("not a training recipe (no data: section): give the --config the "
                         "model was trained with", config_path)
    data = dict(recipe["data"])
    data.pop("num_workers", None)
    train_val = ((card or {}).get("data") or {}).get("train_val", {})
    recorded = train_val.get("simulated")
    given = data.get("simulate") or {}
    # What makes the validation split (the training counts may have been scaled).
    keys = ("val", "seed", "num_samples", "randomisation")
    if recorded is not None and any(recorded.get(k) != given.get(k) for k in keys):
        raise InputError("this recipe's validation split (data.simulate: val, seed, "
                         "num_samples, randomisation) differs from what the model's card "
                         "records: give the --config the model was trained with", config_path)
    datamodule = CTCDataModule(**data, num_workers=0)
    if spec is not None and datamodule.panel.names != spec.panel.names:
        raise InputError(f"this recipe's crops are of the panel {datamodule.panel.names}, the "
                         f"model's is {spec.panel.names}: give the --config the model was "
                         "trained with", config_path)
    if datamodule.data_dir is None:
        return _enough(datamodule.simulate_split("val"), config_path, min_crops)
    # A recipe on a crop folder: its validation split as training made it (split column, or
    # whole samples by split_seed).
    recorded_dir = train_val.get("data_dir")
    if recorded_dir is not None and Path(recorded_dir).resolve() != \
            Path(datamodule.data_dir).resolve():
        raise InputError(f"the model was trained on {recorded_dir}, not on this recipe's "
                         f"data.data_dir", config_path)
    datamodule.setup("fit")
    val = datamodule.splits.get("val")
    if val is None or not len(val.targets):
        raise InputError("the recipe's crop folder gives no validation crops", config_path)
    return _enough(val, config_path, min_crops)


def _enough(val, config_path: Path, min_crops: int):
    """``val``, refused where it holds fewer than ``min_crops`` crops."""
    from ctcnet.errors import InputError

    if len(val.targets) < min_crops:
        raise InputError(f"the recipe gives {len(val.targets)} validation crops, fewer than the "
                         f"{min_crops} a guard reference needs (on fewer, its threshold holds "
                         "back the lab's own CTCs as unusual): label more, or run the model "
                         "without one (no unusual flag)", config_path)
    return val


def main(argv=None) -> int:
    """Parse the command line and run the script; returns the exit status."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="the model's .pt checkpoint")
    parser.add_argument("--config", type=Path, default=None,
                        help="the recipe the model was trained with (required but for the "
                             "shipped ctcnet-default, whose recipe is configs/default.yaml)")
    parser.add_argument("--min-crops", type=int, default=MIN_REFERENCE_CROPS,
                        help=f"the fewest validation crops to fit on (default "
                             f"{MIN_REFERENCE_CROPS}; fewer make a reference that holds back "
                             "real CTCs as unusual)")
    parser.add_argument("--keep-reference", action="store_true",
                        help="keep the stored reference; re-measure the card's guard lines only")
    args = parser.parse_args(argv)

    from ctcnet.deploy.export import write_spec
    from ctcnet.evaluation.held_out import TEST_SEED, ck_positive_leukocytes, held_out_test
    from ctcnet.evaluation.model_card import update_card
    from ctcnet.inference.backends import TorchBackend
    from ctcnet.inference.guard import fit_reference
    from ctcnet.nn.classifier import load_model
    from ctcnet.simulate import SimConfig

    t0 = time.perf_counter()
    model, spec = load_model(args.model)
    card_path = args.model.with_suffix(".json")
    card = json.loads(card_path.read_text()) if card_path.exists() else None
    old = (spec.metrics or {}).get("guard")
    if args.keep_reference:
        log.info("guard reference kept: %s", f"threshold {old['threshold']:.2f}" if old
                 else "none (no unusual flag)")
    else:
        config = args.config
        if config is None:
            if args.model.stem != "ctcnet-default":
                parser.error("--config: the recipe the model was trained with (its panel, "
                             "seed and validation split)")
            config = ROOT / "configs" / "default.yaml"
        val = validation_split(config, card, spec, args.min_crops)
        reference = fit_reference(val.images, val.targets, spec)
        log.info("guard reference on %d validation crops: threshold %.2f (was %s)",
                 reference["n"], reference["threshold"],
                 f"{old['threshold']:.2f}" if old else "none")
        spec = spec.replace(metrics={**spec.metrics, "guard": reference})

    # The guard lines of the card (and of the spec's headline), re-measured with the new
    # reference on the card's own test sets.
    model.spec = spec
    backend = TorchBackend.from_model(model.eval())
    tests = (card or {}).get("data", {}).get("test", {})
    headline = dict(spec.metrics.get("test_default_randomisation") or {})
    test_guard = None
    if card is not None or headline:
        per_class = int(tests.get("per_class", 1500))
        test_guard = held_out_test(backend, SimConfig(), per_class, TEST_SEED,
                                   export=spec.reads_exports)["guard"]
    if headline:
        headline["guard"] = test_guard
        spec = spec.replace(metrics={**spec.metrics, "test_default_randomisation": headline})
        model.spec = spec

    onnx = write_spec(args.model, model, spec)
    log.info("spec written into %s%s", args.model,
             f" and {onnx} (metadata; the graph is unchanged)" if onnx else "")
    if card is not None:
        double = card.get("ck_positive_leukocytes")
        entries = {"test_default_randomisation": {
            **card.get("test_default_randomisation", {}), "guard": test_guard}}
        if double:
            n = int(double["n"])
            shift = int(tests.get("shift_per_class", n // 2))
            # The share called ctc and the guard's line come from one run: both re-measured,
            # or the card would set a count of calls from one draw beside flags of another.
            entries["ck_positive_leukocytes"] = {
                **double, **ck_positive_leukocytes(backend, 2 * shift, TEST_SEED + 50,
                                                   export=spec.reads_exports)}
        # The card says which of its lines are of today's draw.
        entries["guard_remeasured"] = {
            "date": time.strftime("%Y-%m-%d"),
            "command": "python scripts/refit_guard.py --model MODEL"
                       + (" --keep-reference" if args.keep_reference else "")}
        update_card(card_path, **entries)
        log.info("card %s (and .md): guard lines re-measured", card_path)
    if test_guard is not None:
        log.info("held-out test: the guard flags %.2f%% of events, catches %d of %d wrong CTC "
                 "calls, holds %d of %d right ones", 100 * test_guard["flagged_share"],
                 test_guard["wrong_ctc_caught"], test_guard["wrong_ctc_calls"],
                 test_guard["right_ctc_held"], test_guard["right_ctc_calls"])
    log.info("%.0f s", time.perf_counter() - t0)
    return 0


if __name__ == "__main__":
    from ctcnet.errors import run_script

    run_script(main, "refit_guard.py")
