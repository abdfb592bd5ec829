"""Train, evaluate and write the shipped default model (``models/ctcnet-default.*``).

    python scripts/train_default_model.py --out runs/first  # the shipped model's first stage
    (without --out it writes over models/ctcnet-default.*; the shipped network is that stage
    fine-tuned by configs/default-lineage.yaml, whose header gives both steps)
    python scripts/train_default_model.py --epochs 3        # shorter, same recipe otherwise
    python scripts/train_default_model.py --config configs/smoke.yaml --test-per-class 8 \\
        --shift-per-class 4 --baseline-train-per-class 10 --out /tmp/m   # a smoke run (seconds)
    python scripts/train_default_model.py --retest runs/x/model.pt        # steps 3-4 only

1. Trains with ``--config`` (default ``configs/default.yaml``, the shipped model's first stage:
   data, net, loss, optimiser, epochs) through the same LightningCLI as ``ctcnet train``
   (:func:`ctcnet.training.cli.fit`); extra ``--trainer.* / --data.* / --model.*`` overrides
   are passed on to it. The best checkpoint on validation macro-F1 is kept.
2. Calibrates on the validation split (never on test seeds): softmax temperature and the
   review threshold above which automatic calls are >= 99 % precise.
3. Evaluates on held-out test sets simulated from OTHER seeds (the default randomisation and
   each named shift, CNN against the baselines) with :mod:`ctcnet.evaluation.model_card`.
4. Writes ``<name>.pt`` (weights + spec with metrics and training summary), ``<name>.json``
   (the model card) and ``<name>.md`` (the same, readable).

``--retest MODEL.pt`` skips steps 1-2: a model this script trained (say with a smaller card, or
under another name while it was being compared) is tested again and written as ``--out/--name``;
its card keeps the training record, decision rule and matrix measured on that network. A
model fine-tuned from one (``ctcnet finetune``, whose card holds no training) takes its base's
training record with the fine-tuning added, and ``--reproduce`` for how it was made; its base's
rule and matrix are left out.

Flags: ``--out``, ``--name``, ``--work-dir``, ``--num-workers`` as before; ``--epochs`` overrides
the config's ``trainer.max_epochs``; ``--train-scale`` multiplies the config's training crop
counts, ``data.simulate.train`` (1.0 = the shipped recipe, which already holds the counts the
old ``--train-scale 2`` gave; ``simulate.fine``'s renders keep theirs); ``--config`` picks
another recipe. ``--minutes`` (choose epochs from a measured speed) is gone: the recipe fixes
the number of epochs, so a rerun trains the same model.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import time
from pathlib import Path

import yaml

from ctcnet.evaluation.calibration import calibrate_spec
from ctcnet.evaluation.card_markdown import render_card
from ctcnet.evaluation.held_out import TEST_SEED, card_tests
from ctcnet.evaluation.model_card import build_card, headline, say_if_listed
from ctcnet.inference.backends import TorchBackend
from ctcnet.inference.guard import fit_reference
from ctcnet.io.atomic import atomic_write_text
from ctcnet.nn.classifier import load_model, save_model
from ctcnet.training.cli import fit

ROOT = Path(__file__).resolve().parents[1]
log = logging.getLogger("train_default_model")


def parse_args(argv=None) -> tuple[argparse.Namespace, list[str]]:
    """The script's own options, and the rest for LightningCLI."""
    p = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    p.add_argument("--config", default=str(ROOT / "configs" / "default.yaml"))
    p.add_argument("--out", default=str(ROOT / "models"), help="output folder")
    p.add_argument("--name", default="ctcnet-default")
    p.add_argument("--epochs", type=int, default=None, help="default: the config's max_epochs")
    p.add_argument("--train-scale", type=float, default=1.0,
                   help="x the config's training crop counts")
    p.add_argument("--test-per-class", type=int, default=1500)
    p.add_argument("--shift-per-class", type=int, default=250)
    p.add_argument("--baseline-train-per-class", type=int, default=300)
    p.add_argument("--rgb-test-per-class", type=int, default=0,
                   help="also test on RGB-JPEG composite exports (models with CK, CD45, DAPI)")
    p.add_argument("--num-workers", type=int, default=None, help="default: the config's")
    p.add_argument("--work-dir", default=None,
                   help="the training run's folder (checkpoints, logs); default: --out's "
                        "runs/, or the checkout's runs/default-model/ for the shipped models")
    p.add_argument("--retest", metavar="MODEL.pt",
                   help="no training: test this trained model (its card beside it) again at "
                        "these sizes and write it and its card as --out/--name")
    p.add_argument("--reproduce", metavar="TEXT", default=None,
                   help="with --retest: the commands that made the model, for the card (needed "
                        "for a fine-tuned model, which this script did not train)")
    args, extra = p.parse_known_args(argv)
    if args.work_dir is None:  # a lab's model: its run beside it, not in the checkout
        shipped = Path(args.out).resolve() == (ROOT / "models").resolve()
        args.work_dir = str(ROOT / "runs" / "default-model" if shipped
                            else Path(args.out) / "runs")
    return args, extra


def cli_arguments(args: argparse.Namespace, extra: list[str]) -> list[str]:
    """The LightningCLI arguments: the recipe file plus this script's overrides."""
    out = ["--config", args.config, f"--trainer.default_root_dir={args.work_dir}",
           "--export=null"]
    if args.epochs is not None:
        out.append(f"--trainer.max_epochs={args.epochs}")
    if args.num_workers is not None:
        out.append(f"--data.num_workers={args.num_workers}")
    if args.train_scale != 1.0:
        simulate = yaml.safe_load(Path(args.config).read_text())["data"]["simulate"]
        train = simulate["train"]
        simulate["train"] = ({k: int(round(v * args.train_scale)) for k, v in train.items()}
                             if isinstance(train, dict) else int(round(train * args.train_scale)))
        out.append(f"--data.simulate={json.dumps(simulate)}")
    return out + extra


def reproduce_command(args: argparse.Namespace, extra: list[str]) -> str:
    """The command line that trains this model from scratch and writes its card."""
    flags = ["--test-per-class", str(args.test_per_class),
             "--shift-per-class", str(args.shift_per_class)]
    if Path(args.config).resolve() != (ROOT / "configs" / "default.yaml").resolve():
        flags = ["--config", args.config] + flags
    if args.name != "ctcnet-default":
        flags = ["--name", args.name] + flags
    if args.epochs is not None:
        flags += ["--epochs", str(args.epochs)]
    if args.train_scale != 1.0:
        flags += ["--train-scale", str(args.train_scale)]
    if args.baseline_train_per_class != 300:
        flags += ["--baseline-train-per-class", str(args.baseline_train_per_class)]
    if args.rgb_test_per_class:
        flags += ["--rgb-test-per-class", str(args.rgb_test_per_class)]
    # Where it goes, always: --out's default is the shipped models' folder, and a card's line
    # followed from there wrote over the shipped model; a reproduction goes beside it.
    out = Path(args.out).resolve()
    if out == (ROOT / "models").resolve():
        out = ROOT / "runs" / args.name
    flags += ["--out", str(out.relative_to(ROOT)) if out.is_relative_to(ROOT) else str(out)]
    return " ".join(["python scripts/train_default_model.py", shlex.join(flags),
                     *map(shlex.quote, extra)])


def test_and_write(args: argparse.Namespace, model, spec, data: dict, training: dict,
                   reproduce: str, keep: dict | None = None) -> int:
    """The card's held-out tests (seeds never used in training), then ``<name>.pt`` (weights +
    spec with the figures) and the card (``<name>.json`` / ``.md``); ``keep``: card entries
    measured on this network before (its decision rule, its matrix) carried over."""
    backend = TorchBackend.from_model(model)
    t0 = time.perf_counter()
    tests = card_tests(backend, args.test_per_class, args.shift_per_class,
                       args.baseline_train_per_class, rgb_per_class=args.rgb_test_per_class)
    eval_seconds = time.perf_counter() - t0

    validation = spec.metrics.get("validation") or {
        k: v for k, v in spec.metrics.items() if k not in ("calibration", "guard")}
    spec = spec.replace(metrics={"test_default_randomisation": headline(tests["test"]),
                                 "robustness": tests["robustness"],
                                 "calibration": spec.metrics["calibration"],
                                 "validation": validation, "guard": spec.metrics["guard"]})
    out = Path(args.out)
    model_path = out / f"{args.name}.pt"
    save_model(model_path, model, spec)
    data = {**data, "test": {"seed": TEST_SEED, "per_class": args.test_per_class,
                             "shift_per_class": args.shift_per_class,
                             "note": "other seeds than training/validation; never used to choose"}}
    card = build_card(name=args.name, model_path=model_path, model=model, spec=spec, tests=tests,
                      data=data, training=training, evaluation_seconds=eval_seconds,
                      reproduce=reproduce)
    card.update(keep or {})
    atomic_write_text(out / f"{args.name}.json", json.dumps(card, indent=2) + "\n")
    atomic_write_text(out / f"{args.name}.md", render_card(card))
    say_if_listed(out / f"{args.name}.json")  # (a shipped model's: SHA256SUMS lists it)
    print(json.dumps({k: card["test_default_randomisation"][k]
                      for k in ("macro_f1", "ctc_recall", "wbc_called_ctc_rate")}, indent=2))
    return 0


def retest(args: argparse.Namespace, extra: list[str]) -> int:
    """``--retest MODEL``: a trained, calibrated model (its card beside it) tested again at this
    run's sizes and written as ``--out/--name``, without training again: the card keeps the
    training record, the decision rule and matrix measured on that network. The reproduce line
    is built from this run's flags and overrides, so give the ones it was trained with (none
    when the config now holds them), or ``--reproduce``. A fine-tuned model: see the module
    docstring."""
    source = Path(args.retest)
    model, spec = load_model(source)
    tuned = spec.training.get("finetune")
    card = source.with_suffix(".json")
    if not card.exists() and not tuned:
        # A model of `ctcnet train` has no card: this script re-tests the ones it wrote.
        raise SystemExit(f"--retest needs the model's card beside it ({card}): it re-tests a "
                         "model this script trained, whose card keeps its training record; "
                         "a model of `ctcnet train` has none: run this script to train and "
                         "test one, or `ctcnet evaluate` to score that model")
    old = json.loads(card.read_text()) if card.exists() else {}
    if tuned and "training" not in old:
        # Fine-tuned (ctcnet finetune) from a model this script wrote: the base's card has the
        # training the fine-tuning started from (finetune's own card, for the registry, has
        # none).
        card = Path(tuned["base"]["path"]).with_suffix(".json")
        old = json.loads(card.read_text())
    log.info("re-testing %s (trained %s) as %s", source, old.get("reproduce"), args.name)
    training, reproduce = old["training"], args.reproduce or reproduce_command(args, extra)
    keep = {k: old[k] for k in ("decision", "robustness_matrix") if k in old}
    if tuned:
        if not args.reproduce:
            raise SystemExit("--retest of a fine-tuned model needs --reproduce: the commands "
                             "that made it (this script's line would not)")
        training = {**training, "finetune": {k: tuned[k] for k in
                                             ("base", "data", "options", "held_out",
                                              "simulated_test", "seconds", "device")}}
        # The base network's cartridge rule and matrix are not this network's.
        if keep:
            log.warning("not carried over from the base's card, measured on another network: "
                        "%s (scripts/fit_decision.py, scripts/robustness_matrix.py --card)",
                        ", ".join(keep))
        keep = {}
    return test_and_write(args, model, spec, {"source": old["data"]["source"],
                                              "train_val": old["data"]["train_val"]},
                          training, reproduce, keep)


def main(argv=None) -> int:
    """Train the default model (or only re-test it with ``--retest``), evaluate it and write the
    model files and card; returns the exit status."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args, extra = parse_args(argv)
    if args.retest:
        return retest(args, extra)
    t0 = time.perf_counter()
    cli = fit(cli_arguments(args, extra), prog="train_default_model.py")
    train_seconds = time.perf_counter() - t0
    trainer, datamodule = cli.trainer, cli.datamodule
    if not trainer.is_global_zero:  # under DDP the card is one rank's work, not every rank's
        return 0
    checkpoints = trainer.checkpoint_callback
    best = checkpoints.best_model_path or checkpoints.last_model_path
    model, spec = load_model(best)
    epochs = int(trainer.current_epoch)
    log.info("trained %d epochs in %.0f s; best %s", epochs, train_seconds, best)

    # Calibration on the validation split (never on test seeds).
    backend = TorchBackend.from_model(model)
    val = datamodule.splits["val"]
    spec = calibrate_spec(spec, backend.predict_logits(val.images), val.targets, 0.99)
    # The marker guard's out-of-distribution reference, from the validation crops.
    spec = spec.replace(metrics={**spec.metrics, "guard": fit_reference(val.images, val.targets,
                                                                        spec)})
    model.spec = spec
    log.info("calibrated: temperature %.3f, review threshold %.3f", spec.temperature,
             spec.review_threshold)
    train_crops = len(datamodule.splits["train"].targets)
    training = {"config": Path(args.config).name, "epochs": epochs,
                "seconds": round(train_seconds),
                # Training crops per second of wall time, simulation and validation included.
                "crops_per_s": round(epochs * train_crops / train_seconds, 1),
                "device": str(trainer.strategy.root_device),
                "best_checkpoint_epoch": spec.training.get("epoch_index"),
                "hyper_parameters": spec.training.get("hyper_parameters", {})}
    return test_and_write(args, model, spec,
                          {"source": "simulated (ctcnet.simulate, SimConfig() default "
                                     "randomisation)", "train_val": datamodule.summary()},
                          training, reproduce_command(args, extra))


if __name__ == "__main__":
    from ctcnet.errors import run_script

    run_script(main, "train_default_model.py")
