"""Training from YAML: LightningCLI over :class:`CTCLitModule` and :class:`CTCDataModule`.

``python train.py --config configs/default.yaml`` and ``ctcnet train --config ...`` both call
:func:`main`. Dotted overrides work (``--trainer.max_epochs=5``, ``--data.batch_size=64``); the
resolved config is saved beside each run (``<log_dir>/config.yaml``). The data module's panel,
taxonomy and crop size are linked into the model, so channels and classes are written once.

Beyond the Trainer's own options:

* ``--checkpoint.*``: the ModelCheckpoint (best on ``val/macro_f1`` plus ``last.ckpt``) in
  ``<default_root_dir>/checkpoints``, a fixed folder so ``--ckpt_path last`` resumes a stopped
  run where it stopped.
* ``--auto_precision`` (default true): bf16 (else fp16) mixed precision when training on CUDA
  and no ``--trainer.precision`` is given; plain fp32 on the CPU.
* ``--export``: after fitting, the best checkpoint is also written as a small ctcnet model file
  (``<default_root_dir>/model.pt`` by default; ``null`` to skip).

Multi-GPU and multi-node training is Lightning's: ``--trainer.devices=4
--trainer.strategy=ddp --trainer.num_nodes=2`` (no home-made launcher).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import torch
from lightning.pytorch import seed_everything
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.cli import LightningCLI

from ctcnet.errors import InputError
from ctcnet.inference.guard.planes import warn_unguarded
from ctcnet.io.atomic import refuse_overwriting_inputs
from ctcnet.io.panel import DEFAULT_NORMALISATION, LEGACY_SNR
from ctcnet.nn.classifier import drop_stale_export, load_model, save_model
from ctcnet.nn.registry import is_registry_name, resolve_model
from ctcnet.training.checkpoints import BestAndLastCheckpoint
from ctcnet.training.datamodule import CTCDataModule
from ctcnet.training.interrupts import SigtermWithoutBroadcast, fit_or_interrupt
from ctcnet.training.lightning_noise import quiet_like_ctcnet
from ctcnet.training.lit import CTCLitModule
from ctcnet.training.resume import RUN_SHAPE, check_resume, run_shape, setting_defaults
from ctcnet.training.run_identity import RUN_DATA, RUN_RECIPE, data_identity, run_recipe
from ctcnet.training.shipped_configs import with_shipped_configs
from ctcnet.training.splits import RANK_SEED_STEP

log = logging.getLogger(__name__)

# The command line's description: the module docstring's first line less its Sphinx roles.
DESCRIPTION = ("Training from YAML: LightningCLI over the ctcnet model (CTCLitModule) and "
               "data (CTCDataModule).")

# A resumed run's seed: the run's own plus this many per epoch done (a prime, far from the
# offsets the data's seeds use).
RESUME_SEED_STEP = 7919


class NewStreamsOnResume(Callback):
    """A resumed run draws its shuffling and augmentation from the seed and the epoch it
    resumes at. Restarted from the seed alone (the global streams by ``seed_everything``, the
    augmentation's by the split seed), its first epoch replayed epoch 0's batches, the same
    crops in the same order with the same augmentations, and a run preempted every few epochs
    kept seeing them. A run that is not resumed keeps the seed's streams as they were, so a
    recipe reproduces its model."""

    def on_train_start(self, trainer, pl_module) -> None:
        """Reseed the global streams and the training augmentation, on a resume only."""
        if not trainer.ckpt_path:
            return
        seed = int(os.environ.get("PL_GLOBAL_SEED", 0)) + RESUME_SEED_STEP * trainer.current_epoch
        seed_everything(seed, workers=True, verbose=False)
        augment = getattr(getattr(trainer.train_dataloader, "dataset", None), "augment", None)
        if augment is not None and hasattr(augment, "reseed"):
            # The stream of a loader without workers (workers: reseeded), each DDP process's own.
            augment.reseed(seed + RANK_SEED_STEP * trainer.global_rank)


class RunShapeInCheckpoint(Callback):
    """Each checkpoint records the run's shape (processes, batch size a process, batches a
    step, batches an epoch is limited to): a resume that changes it changes the steps of an
    epoch, under the learning-rate schedule restored with the run, planned over the old steps
    (it failed past its end, or never finished: :func:`check_resume` refuses it)."""

    def __init__(self, data: dict | None = None, recipe: dict | None = None):
        self.data = data  # the run's data_identity, read once as it began
        self.recipe = recipe  # and its run_recipe

    def on_save_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        """Add ``ctcnet_run_shape`` (and what the run trains on, and how) to the checkpoint."""
        checkpoint[RUN_SHAPE] = run_shape(trainer, getattr(trainer, "datamodule", None))
        if self.data is not None:
            checkpoint[RUN_DATA] = self.data
        if self.recipe is not None:
            checkpoint[RUN_RECIPE] = self.recipe


# The metrics a run logs while it trains (``lit.CTCClassifier``'s training and validation
# steps) that a checkpoint or early stopping may monitor, beside the validation's per-class
# precision, recall, F1 and confusion cells: the training loss per step and per epoch (and
# under its own name), the training accuracy per epoch, the validation loss and macro-F1.
LOGGED = ("train/loss", "train/loss_step", "train/loss_epoch", "train/acc", "val/loss",
          "val/macro_f1")
# A learning-rate monitor's names (``lr-AdamW``, ``lr-AdamW/pg1``): set by the callback.
LR_MONITOR_PREFIX = "lr-"


def logged_metrics(class_names) -> set[str]:
    """Every metric name a run of these classes logs (:data:`LOGGED` and per class)."""
    names = list(class_names)
    return {*LOGGED, *(f"val/{what}_{name}" for what in ("precision", "recall", "f1")
                       for name in names),
            *(f"val/confusion/{a}_as_{b}" for a in names for b in names)}


def check_monitored(trainer, class_names) -> None:
    """Refuse, before any epoch, a checkpoint or early-stopping callback that monitors a
    metric the run never logs (``val/macro-f1`` for ``val/macro_f1``; ``val/acc``, which only
    training logs): Lightning finds out after the first epoch, as a traceback, and the epoch
    is lost."""
    import difflib

    logged = logged_metrics(class_names)
    for callback in trainer.callbacks:
        monitor = getattr(callback, "monitor", None)
        if not isinstance(monitor, str) or monitor in logged or \
                monitor.startswith(LR_MONITOR_PREFIX):
            continue
        # The same metric of validation where there is one (train/macro_f1: val/macro_f1),
        # not a look-alike name (val/f1_ctc was offered for val/acc); a training figure (acc,
        # train/ alone) is said, and validation's own offered: a best model picked on training
        # accuracy is the most overfit one.
        leaf = monitor.rsplit("/", 1)[-1]
        same = sorted(m for m in logged if m.rsplit("/", 1)[-1] == leaf)
        val = [m for m in same if m.startswith("val/")]
        near = val[:1] or (["val/macro_f1"] if same else
                           difflib.get_close_matches(monitor, sorted(logged), n=1))
        trained = f"; {same[0]} is training's" if same and not val else ""
        raise InputError(f"{type(callback).__name__} monitors {monitor!r}, which the run "
                         "does not log" + (f" (did you mean {near[0]!r}?{trained})"
                                           if near else "")
                         + f"; it logs {', '.join(LOGGED)}, val/precision_<class>, "
                         "val/recall_<class>, val/f1_<class> and "
                         "val/confusion/<class>_as_<class>")


def _say_normalisation_left_out(panel) -> None:
    """Say which channels' own normalisation leaves keys out, read as the first release's
    values, not today's defaults (a lab setting one channel's softness trained on another
    background and sampling than it asked for, unsaid)."""
    short = {c.name: [k for k in DEFAULT_NORMALISATION if k not in c.normalisation]
             for c in panel.channels if c.normalisation.get("method") == "snr"}
    short = {name: keys for name, keys in short.items() if keys}
    if short:
        log.warning("the panel's normalisation of %s leaves out %s: read as the first "
                    "release's (%s), not today's default (%s); state them to train otherwise",
                    ", ".join(short), ", ".join(sorted({k for v in short.values() for k in v})),
                    ", ".join(f"{k} {v}" for k, v in LEGACY_SNR.items()),
                    ", ".join(f"{k} {v}" for k, v in DEFAULT_NORMALISATION.items()
                              if k in LEGACY_SNR))


def _checkpoint_dir(root: str | None) -> str:
    return str(Path(root or ".") / "checkpoints")


def _on_cuda(accelerator) -> bool:
    name = str(accelerator or "auto").lower()
    return torch.cuda.is_available() and name in ("auto", "gpu", "cuda")


class CTCLightningCLI(LightningCLI):
    """LightningCLI with ctcnet's links, checkpointing, precision choice and export."""

    def parse_arguments(self, parser, args) -> None:
        """Parse, and keep the seed and precision as asked (:func:`run_recipe`): Lightning then
        draws a seed for ``true`` and the precision is chosen for the machine."""
        super().parse_arguments(parser, args)
        self.asked = {"seed_everything": self.config.get("seed_everything"),
                      "trainer.precision": self.config.get("trainer", {}).get("precision")}

    def add_arguments_to_parser(self, parser) -> None:
        """Add the checkpoint callback's options and link channels, classes and crop size from
        the data section to the model."""
        parser.add_lightning_class_args(BestAndLastCheckpoint, "checkpoint")
        parser.set_defaults({"checkpoint.monitor": "val/macro_f1", "checkpoint.mode": "max",
                             "checkpoint.save_last": True, "checkpoint.save_top_k": 1,
                             "checkpoint.filename": "best-{epoch:03d}"})
        parser.link_arguments("trainer.default_root_dir", "checkpoint.dirpath",
                              compute_fn=_checkpoint_dir)
        # Channels, classes and crop size are stated once, in the data section.
        parser.link_arguments("data.crop_size", "model.crop_size")
        parser.link_arguments("data.panel_config", "model.panel", apply_on="instantiate")
        parser.link_arguments("data.taxonomy_config", "model.taxonomy", apply_on="instantiate")
        parser.add_argument("--ckpt_path", type=str | None, default=None,
                            help="resume from a checkpoint: 'last' or a path")
        parser.add_argument("--auto_precision", type=bool, default=True,
                            help="mixed precision (bf16, else fp16) on CUDA when "
                                 "trainer.precision is not given")
        parser.add_argument("--export", type=str | None, default="model.pt",
                            help="file name (in default_root_dir) for the best model; null: none")
        parser.add_argument("--overwrite", type=bool, default=False,
                            help="a new run into a default_root_dir holding another run's "
                                 "checkpoints: remove them first (otherwise refused)")

    def init_parser(self, **kwargs):
        """The parser, its errors without the usage: an unknown or mistyped option is one
        line (and the tip to run --help), not eighty lines of every option first."""
        parser = super().init_parser(**kwargs)
        parser.print_usage = lambda file=None: None
        error = parser.error
        parser.error = lambda message, *args, **kw: error(meant_option(message, parser),
                                                          *args, **kw)
        return parser

    def before_instantiate_classes(self) -> None:
        """Choose bf16 (else fp16) mixed precision on CUDA when ``auto_precision`` is set and no
        precision is given."""
        cfg = self.config
        trainer = cfg.trainer
        if cfg.auto_precision and trainer.precision is None and _on_cuda(trainer.accelerator):
            trainer.precision = "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
        # A loss is best at its lowest: monitored under the default mode (max, macro-F1's), the
        # epoch of the highest validation loss was kept and exported as the best model.
        checkpoint = cfg.get("checkpoint")
        if checkpoint is not None and "loss" in str(checkpoint.get("monitor") or "") and \
                checkpoint.get("mode") == "max":
            checkpoint.mode = "min"
            log.info("checkpoint.monitor %s: the best checkpoint is the one of its lowest "
                     "value (checkpoint.mode min)", checkpoint.monitor)


def export_best(trainer, export_name: str | None, run: dict | None = None) -> Path | None:
    """Write the best (else last) checkpoint as a ctcnet model file; rank 0 only. ``run``
    (:func:`run_record`) goes into its spec's training record: the model file alone then says
    how to make it again (the seed, epochs and batch size were in the run folder's
    config.yaml alone)."""
    if not export_name or not trainer.is_global_zero:
        return None

    callback = trainer.checkpoint_callback
    best = getattr(callback, "best_model_path", "") or getattr(callback, "last_model_path", "")
    if not best:
        return None
    # (not "use an earlier checkpoint": a run diverged from its first steps has none)
    model, spec = load_model(best, diverged="the training diverged (a learning rate too high "
                             "for it?); train again with a lower --model.lr, --overwrite=true")
    if run:
        spec = spec.replace(training={**(spec.training or {}), **run})
    out = Path(trainer.default_root_dir) / export_name
    save_model(out, model, spec)
    return out


def run_record(cli) -> dict:
    """What made a training run, for its model file: the whole configuration as the run
    read it (``config``: seed, trainer, model and data settings, as config.yaml holds them)
    and the software (ctcnet's version and commit, the libraries)."""
    from ctcnet.core.provenance import software_record

    config = json.loads(json.dumps(cli.config.as_dict(), default=str))
    return {"config": config, "software": software_record()}


def check_export_path(cli) -> None:
    """Refuse, before fitting, a run whose best model would be written (``--export`` in
    ``default_root_dir``) over the model it starts from (``--model.init_from``)."""
    if not cli.config.export:
        return
    init = cli.model.hparams.get("init_from")
    if not init:
        return

    source = resolve_model(init) if is_registry_name(init) else Path(init)
    refuse_overwriting_inputs(Path(cli.trainer.default_root_dir) / cli.config.export, [source],
                              "--export or --trainer.default_root_dir")


def check_fresh_run_dir(cli) -> None:
    """Refuse a new run into a ``default_root_dir`` that holds another run's checkpoints (the
    shipped configs each fix theirs): its ``model.pt`` would be written over and the two runs'
    checkpoints mixed in one folder (``best-epoch=000.ckpt`` of one beside ``-001`` of the
    other), unless ``--overwrite``, which removes them first."""
    folder = Path(_checkpoint_dir(cli.trainer.default_root_dir))
    found = sorted(p.name for p in folder.glob("*.ckpt")) if folder.is_dir() else []
    if not found:
        return
    if not cli.config.overwrite:
        raise InputError(f"holds another training run's checkpoints ({', '.join(found[:3])}"
                         f"{', ...' if len(found) > 3 else ''}): resume it (--ckpt_path last), "
                         "give another --trainer.default_root_dir, or --overwrite=true (they "
                         "are removed first with the model file's .onnx export and the run's "
                         "lightning_logs, and the model file written over)",
                         Path(cli.trainer.default_root_dir))
    if cli.trainer.is_global_zero:
        for name in found:
            (folder / name).unlink(missing_ok=True)
        # The earlier model file's ONNX export (ctcnet export's default place, beside it):
        # beside the new one it would read as this run's. Without a model file (--export
        # null) the earlier one stays, and so does its export.
        if cli.config.export:
            drop_stale_export(Path(cli.trainer.default_root_dir or ".") / cli.config.export,
                              "--overwrite")
        # The replaced run's logs (its config.yaml and metrics.csv as version_0 beside this
        # run's version_1 read as this run's): removed with its checkpoints.
        logs = Path(cli.trainer.default_root_dir or ".") / "lightning_logs"
        if logs.is_dir() and not logs.is_symlink():
            shutil.rmtree(logs)
            log.info("%s: removed, the logs of the run --overwrite replaces", logs)


def meant_option(message: str, parser) -> str:
    """jsonargparse's refusal of a misspelt option (``Group 'trainer' does not accept option
    'max_epoch'``, ``Option 'dat.data_dir' is not accepted``, from a config file or the
    command line), with the option meant where one
    is close (ctcnet's own refusals name it: a config typo read as a bare refusal)."""
    import difflib
    import re

    found = re.search(r"Group '([\w.]+)' does not accept option '([\w.]+)'", str(message))
    # (a group's own name mistyped, ``dat:`` for ``data:``, is refused as a whole option)
    whole = re.search(r"Option '([\w.]+)' is not accepted", str(message))
    if not found and not whole:
        return message
    wrong = f"{found.group(1)}.{found.group(2)}" if found else whole.group(1)
    known = [name[2:] for name in getattr(parser, "_option_string_actions", {})
             if name.startswith("--")]
    parts = wrong.split(".")
    for k in range(len(parts), 0, -1):  # (dat.simulate.train: data.simulate's key train)
        close = difflib.get_close_matches(".".join(parts[:k]), known, n=1, cutoff=0.8)
        if close and close[0] != ".".join(parts[:k]):  # (a part as typed: no suggestion)
            meant = ".".join([close[0], *parts[k:]])
            return f"{message} (did you mean {meant}? in a --config file or on the command " \
                "line)"
    return message


def fit(args: list[str] | None = None, prog: str | None = None) -> CTCLightningCLI:
    """Fit from command-line style arguments (None: ``sys.argv``); returns the CLI after fitting.

    ``cli.trainer``, ``cli.model`` and ``cli.datamodule`` stay available, so a caller (the
    script that builds the shipped model) can calibrate and evaluate what was trained.
    """
    import warnings

    # `ctcnet train ...` hands its own arguments over explicitly; that is intended here.
    warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
    # "Seed set to 0" would precede a one-line configuration error; the seed is in config.yaml.
    logging.getLogger("lightning.fabric.utilities.seed").setLevel(logging.WARNING)
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    if getattr(rank_zero_only, "rank", 0) != 0:  # DDP: each warning said once, by rank 0
        logging.getLogger("ctcnet").setLevel(logging.ERROR)
    quiet_like_ctcnet()
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    args = with_shipped_configs(sys.argv[1:] if args is None else list(args))
    try:
        cli = CTCLightningCLI(CTCLitModule, CTCDataModule, run=False, args=args,
                              seed_everything_default=0,
                              save_config_kwargs={"overwrite": True},
                              parser_kwargs={"description": DESCRIPTION,
                                             "prog": prog})
    except MisconfigurationException as err:  # (a GPU asked for where none is: one line)
        # The device's hint where the trainer asked for one, not beside every other mistake.
        asked = any(word in str(err).lower() for word in ("gpu", "cuda", "accelerator",
                                                          "device"))
        hint = "" if torch.cuda.is_available() or not asked else (
            ": this machine has no CUDA device; --trainer.accelerator cpu, or auto for a GPU "
            "where there is one")
        if "enable_checkpointing" in str(err):  # (its model is written from its checkpoints)
            hint = ": ctcnet train writes the model from its checkpoints; leave " \
                   "--trainer.enable_checkpointing on"
        raise InputError(f"trainer: {err}{hint}") from None
    if getattr(cli.trainer, "max_epochs", None) == 0:
        raise InputError("trainer.max_epochs=0 trains nothing and writes no model; give 1 or "
                         "more (or -1: until stopped)")
    check_monitored(cli.trainer, cli.model.spec.class_names)
    warn_unguarded(cli.model.spec.panel, "the model trained")
    _say_normalisation_left_out(cli.model.spec.panel)
    data = data_identity(cli.datamodule)
    recipe = run_recipe(getattr(cli, "asked", {}), cli.trainer, cli.datamodule)
    model_file = Path(cli.trainer.default_root_dir or ".") / cli.config.export \
        if cli.config.export else None
    resume = check_resume(cli.config.ckpt_path, cli.trainer,
                          run_shape(cli.trainer, cli.datamodule), data,
                          dict(cli.model.hparams),
                          model_file is not None and not model_file.exists(),
                          setting_defaults(type(cli.model)), recipe)
    check_export_path(cli)
    if resume is None:
        check_fresh_run_dir(cli)
    cli.trainer.callbacks += [NewStreamsOnResume(), RunShapeInCheckpoint(data, recipe),
                              SigtermWithoutBroadcast()]
    # (the checkpoint holds plain data only, as check_resume read it: no unpickling needed)
    fit_or_interrupt(cli.trainer, cli.model, datamodule=cli.datamodule, ckpt_path=resume,
                     weights_only=True)
    return cli


def main(args: list[str] | None = None, prog: str | None = None) -> int:
    """``python train.py`` / ``ctcnet train``: fit, then write the best model file."""
    cli = fit(args, prog)
    path = export_best(cli.trainer, cli.config.export, run_record(cli))
    if path is not None:
        # The figure it was chosen by, so a lab sees at once whether the run learnt anything.
        chosen = getattr(cli.trainer, "checkpoint_callback", None)
        score = getattr(chosen, "best_model_score", None)
        print(f"best model: {path}" + (f" ({chosen.monitor} {float(score):.4f} on the "
                                       "validation crops)"
                                       if score is not None and chosen.monitor else ""))
        if score is not None and chosen.monitor and "macro_f1" in chosen.monitor:
            metrics = torch.load(path, weights_only=True).get("ctcnet_spec", {}).get(
                "metrics") or {}
            say_if_no_better_than_guessing(float(score), len(cli.model.spec.class_names),
                                           metrics.get("confusion"), cli.model.spec.class_names)
    return 0


def say_if_no_better_than_guessing(macro_f1: float, classes: int, confusion=None,
                                   names=None) -> None:
    """A warning where the best validation macro-F1 is no better than guessing a class at
    random (1 / classes, give or take; the classes the validation crops hold, where its
    ``confusion`` matrix says), or where the model calls every validation crop one class:
    such a model learnt nothing a lab can use, and its file looks like any other."""
    if confusion is not None:
        matrix = np.asarray(confusion)
        classes = max(int((matrix.sum(axis=1) > 0).sum()), 1)
        called = np.flatnonzero(matrix.sum(axis=0))
        if len(called) == 1 and classes > 1:
            one = names[called[0]] if names is not None else f"class {called[0]}"
            log.warning("the model calls every validation crop %s: it has learnt nothing "
                        "usable; train longer (more epochs, a smaller batch) or check the "
                        "labels and channels", one)
            return
    guess = 1.0 / classes
    if macro_f1 <= 1.25 * guess:
        log.warning("the model's best validation macro-F1 %.3f is no better than guessing "
                    "among %d classes (about %.2f): it has learnt nothing usable; train longer "
                    "(more epochs, a smaller batch) or check the labels and channels",
                    macro_f1, classes, guess)
