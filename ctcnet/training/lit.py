"""The LightningModule: a thin training frame around the shipped classifier.

``CTCLitModule`` holds a :class:`ctcnet.nn.classifier.CTCClassifier` as ``self.model``
(normalisation + plain backbone), so checkpoint keys are ``model.normalise.*`` / ``model.net.*`` and
:func:`ctcnet.nn.classifier.load_model` reads a Lightning checkpoint directly. Every checkpoint also
carries the model spec (``checkpoint["ctcnet_spec"]``) with the training-data summary and the
last validation metrics; everything in it is plain data, so it loads with ``weights_only=True``.

CTCs are rare: class-weighted cross-entropy (weights from the training counts) or focal loss;
AdamW, a one-cycle or warm-up + cosine schedule stepped per batch."""

from __future__ import annotations

import logging

import lightning as L
import torch
import torch.nn.functional as F
from torchmetrics import MeanMetric, MetricCollection
from torchmetrics.classification import (
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassPrecision,
    MulticlassRecall,
)

from ctcnet.errors import InputError, PanelMismatchError, check_regular_file
from ctcnet.io.panel import Panel, load_panel
from ctcnet.io.taxonomy import load_taxonomy
from ctcnet.nn.classifier import CTCClassifier, load_model
from ctcnet.nn.nets import list_architectures, load_backbone_state
from ctcnet.nn.registry import is_registry_name, resolve_model
from ctcnet.nn.spec import SPEC_KEY, ModelSpec
from ctcnet.training import lightning_noise  # noqa: F401  (Lightning's tips silenced)
from ctcnet.training.resume import resumed_record
from ctcnet.training.schedules import lr_schedule

log = logging.getLogger(__name__)

LOSSES = ("ce", "focal")
SCHEDULES = ("onecycle", "cosine")


def balanced_class_weights(counts: torch.Tensor) -> torch.Tensor:
    """Inverse-frequency weights, n / (classes present * count) as scikit-learn's 'balanced':
    every present class carries the same total weight, the mean weight per training crop is 1;
    absent classes get 0."""
    counts = counts.float()
    present = counts > 0
    weights = torch.zeros_like(counts)
    weights[present] = counts[present].sum() / (present.sum() * counts[present])
    return weights


# Fewer training crops of a class than this say little: a network trained from scratch on
# them learns noise, and its validation figures are a handful of crops. Starting from a
# trained model ten a class already adapt it (docs/adapting.md: 0.982 macro-F1 at 10).
FEW_FROM_SCRATCH, FEW_FROM_A_MODEL = 50, 10


def check_training_classes(counts: dict[str, int], what: str = "the training crops",
                           absent_note: str = "", few: int = 0) -> list[str]:
    """Refuse training on fewer than two classes; warn about classes of the taxonomy the
    training crops lack, and about classes with fewer than ``few`` crops. Returns the absent
    classes.

    With one class there is nothing to tell apart: every crop is called that class with the
    loss at zero, and the model looks perfect on its own validation split. A class absent from
    training is never learnt (or, fine-tuned, unlearnt) yet is still called."""
    present = [name for name, n in counts.items() if n > 0]
    absent = [name for name, n in counts.items() if n <= 0]
    if len(present) < 2:
        raise InputError(f"{what} hold only {present or 'no crops'}; training needs crops of "
                         f"at least two classes (the taxonomy: {list(counts)})")
    if absent:
        log.warning("%s hold no %s (of the taxonomy %s)%s", what, ", ".join(absent),
                    list(counts), absent_note)
    scarce = [f"{name} ({n})" for name, n in counts.items() if 0 < n < few]
    if scarce:
        log.warning("%s hold few crops of %s (under %d a class): the model learns little from "
                    "so few and its validation figures rest on a handful of crops%s", what,
                    ", ".join(scarce), few,
                    "; start from a model trained on its classes (ctcnet finetune, init_from)"
                    if few > FEW_FROM_A_MODEL else "")
    return absent


def focal_loss(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None,
               gamma: float = 2.0, label_smoothing: float = 0.0) -> torch.Tensor:
    """Focal loss (Lin et al. 2017): cross-entropy scaled by (1 - p_true)^gamma per example.

    Easy examples (the many clear leukocytes) fade out, hard ones (dim CTCs) dominate.
    """
    log_p = F.log_softmax(logits.float(), dim=1)
    ce = F.nll_loss(log_p, target, reduction="none")
    if label_smoothing > 0:
        ce = (1 - label_smoothing) * ce - label_smoothing * log_p.mean(dim=1)
    p_true = log_p.gather(1, target[:, None]).squeeze(1).exp()
    loss = (1 - p_true).pow(gamma) * ce
    if weight is not None:
        w = weight[target]
        return (loss * w).sum() / w.sum().clamp_min(1e-12)
    return loss.mean()


_DROP = object()


def _plain(value):
    """Tensors and numpy scalars -> Python numbers/lists, so checkpoints stay weights_only-safe.

    Anything else that is not plain data (e.g. the CLI's ``_instantiator`` function) is dropped.
    """
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().tolist()
    if isinstance(value, dict):
        out = {str(k): _plain(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v is not _DROP}
    if isinstance(value, (list, tuple)):
        return [v for v in map(_plain, value) if v is not _DROP]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "item"):
        return value.item()
    return _DROP


def select_input_channels(state: dict, target: dict, indices: list[int | None],
                          num_channels: int) -> dict:
    """``state`` of a model over ``num_channels`` input channels, cut to the channels at
    ``indices``: every tensor whose shape differs from ``target``'s along one axis only, where
    it has ``num_channels`` entries, keeps those entries (stem filters, per-channel buffers).
    Where an index is None (a channel ``state``'s model never saw) the entry is ``target``'s,
    as this model was initialised."""
    out = {}
    for key, value in state.items():
        want = target.get(key)
        if want is None or value.shape == want.shape:
            out[key] = value
            continue
        axes = [a for a, (m, n) in enumerate(zip(value.shape, want.shape)) if m != n]
        if (value.ndim != want.ndim or len(axes) != 1 or value.shape[axes[0]] != num_channels
                or want.shape[axes[0]] != len(indices)):
            raise InputError(f"cannot start from these weights: {key} is {tuple(value.shape)}, "
                             f"this model needs {tuple(want.shape)}")
        axis = axes[0]
        out[key] = torch.stack([want.select(axis, j) if i is None else value.select(axis, i)
                                for j, i in enumerate(indices)], dim=axis)
    return out


def backbone_blocks(net: torch.nn.Module) -> list[torch.nn.Module]:
    """The backbone's blocks with weights, input to output: its top-level children, with
    ``Sequential`` ones opened one level (compact: 5 conv blocks and the linear head)."""
    blocks = []
    for child in net.children():
        parts = list(child.children()) if isinstance(child, torch.nn.Sequential) else [child]
        blocks += [p for p in parts if any(True for _ in p.parameters())]
    return blocks


def freeze_leading_blocks(net: torch.nn.Module, train_blocks: int | None
                          ) -> list[torch.nn.Module]:
    """Freeze all but the last ``train_blocks`` blocks (None: freeze none); returns the frozen."""
    if train_blocks is None:
        return []
    blocks = backbone_blocks(net)
    if not 1 <= int(train_blocks) <= len(blocks):
        raise InputError(f"train_blocks={train_blocks}: the backbone has {len(blocks)} blocks")
    frozen = blocks[:len(blocks) - int(train_blocks)]
    for block in frozen:
        block.requires_grad_(False)
    return frozen


class CTCLitModule(L.LightningModule):
    """Training frame for a CTC classifier.

    Args:
        panel, taxonomy: file paths or mappings (the CLI links them from the data module).
        crop_size: model input side, recorded in the spec.
        arch, arch_kwargs: the backbone (:func:`ctcnet.nn.nets.create_model`).
        loss: ``ce`` (cross-entropy) or ``focal``; ``focal_gamma`` for focal loss.
        class_weights: ``balanced`` (inverse training frequency), ``none``, or one weight per
            class in taxonomy order.
        label_smoothing: for either loss.
        lr, weight_decay: AdamW.
        schedule: ``onecycle`` or ``cosine`` (linear warm-up over ``warmup_fraction``).
        init_from: weights to start from, copied at creation: a ctcnet model, checkpoint or
            shipped model name (its channels taken by name: a 5-channel model can start a
            3-channel one) or a plain backbone state dict (RGB stems adapted).
        channels_last: use channels_last memory format on CUDA (faster convolutions).
        train_blocks: train only the last N blocks of the backbone (see :func:`backbone_blocks`;
            the earlier ones keep their weights and BatchNorm statistics); None trains all.
            Fine-tuning a few hundred crops moves less when less is free.
        symmetry: test-time symmetry recorded in the spec (``none``, ``rot4``, ``d4``;
            :mod:`ctcnet.nn.symmetry`): validation, calibration and every later use of the
            model average its logits over these views. Training steps see one view each.
    """

    def __init__(self, panel: str | dict | None = None, taxonomy: str | dict | None = None,
                 crop_size: int = 80, arch: str = "compact", arch_kwargs: dict | None = None,
                 loss: str = "ce", focal_gamma: float = 2.0,
                 class_weights: str | list[float] = "balanced", label_smoothing: float = 0.0,
                 lr: float = 3e-3, weight_decay: float = 1e-4, schedule: str = "onecycle",
                 warmup_fraction: float = 0.1, init_from: str | None = None,
                 channels_last: bool = True, train_blocks: int | None = None,
                 symmetry: str = "none"):
        super().__init__()
        if loss not in LOSSES:
            raise InputError(f"loss {loss!r} is not one of {LOSSES}")
        if schedule not in SCHEDULES:
            raise InputError(f"schedule {schedule!r} is not one of {SCHEDULES}")
        # Refused now, in one line, not as a traceback once the data is rendered (lr, at the
        # optimiser) or never (lr 0 and a negative decay train a model without a word).
        if not lr > 0 or not weight_decay >= 0:
            raise InputError(f"lr must be > 0 and weight_decay >= 0 (got lr={lr}, "
                             f"weight_decay={weight_decay})")
        # (2 ended in a traceback at the first batch; -1 and a focal gamma of -1 trained)
        if not (0 <= label_smoothing < 1 and focal_gamma >= 0 and 0 <= warmup_fraction < 1):
            raise InputError(f"label_smoothing and warmup_fraction are shares, 0 up to 1, and "
                             f"focal_gamma 0 or more (got label_smoothing={label_smoothing}, "
                             f"warmup_fraction={warmup_fraction}, focal_gamma={focal_gamma})")
        if arch not in list_architectures():
            raise InputError(f"arch {arch!r} is not one of {list_architectures()} (a lab's "
                             "own: its package's ctcnet.architectures entry point)")
        self.save_hyperparameters()
        taxonomy = load_taxonomy(taxonomy, stored=True)  # as the data checked it (or the base)
        self.spec = ModelSpec(arch=arch, panel=load_panel(panel), taxonomy=taxonomy,
                              crop_size=int(crop_size), arch_kwargs=dict(arch_kwargs or {}),
                              symmetry=symmetry)
        self.spec.check()
        self.model = CTCClassifier(self.spec)
        k = self.spec.num_classes
        if isinstance(class_weights, (list, tuple)):
            if len(class_weights) != k:
                raise InputError(f"class_weights has {len(class_weights)} values for {k} "
                                 f"classes {self.spec.class_names}")
            initial = torch.tensor(class_weights, dtype=torch.float32)
        elif class_weights in ("balanced", "none"):
            initial = torch.ones(k)
        else:
            raise InputError(f"class_weights {class_weights!r}: use 'balanced', 'none' or a list")
        # A buffer, so resumed runs and DDP ranks use the same weights as the original run.
        self.register_buffer("loss_weights", initial)
        metrics = MetricCollection({
            "precision": MulticlassPrecision(k, average=None),
            "recall": MulticlassRecall(k, average=None),
            "f1": MulticlassF1Score(k, average=None),
        })
        self.val_metrics = metrics.clone(prefix="val/")
        self.val_loss, self.test_loss = MeanMetric(), MeanMetric()
        self.test_metrics = metrics.clone(prefix="test/")
        self.val_confusion = MulticlassConfusionMatrix(k)
        self.test_confusion = MulticlassConfusionMatrix(k)
        self.data_summary: dict = {}
        self.last_metrics: dict = {}
        if init_from:
            self.load_weights_from(init_from)
        self.frozen = freeze_leading_blocks(self.model.net, train_blocks)

    def on_train_batch_start(self, batch, batch_idx) -> None:
        """Frozen blocks stay in eval mode: their BatchNorm statistics must not drift either
        (Lightning puts the whole module in train mode, and back after each validation)."""
        for block in self.frozen:
            block.eval()

    # ----- set-up -------------------------------------------------------------------------
    def load_weights_from(self, path: str) -> None:
        """Start from other weights, copied now (the model never refers to ``path`` again).

        ``path`` is a ctcnet model or checkpoint (its channels must match by name, and its
        architecture and classes this run's) or a plain backbone state dict such as
        torchvision's RGB ResNet-18 weights (the stem is adapted to this panel's channels).
        """
        if is_registry_name(path):  # a shipped model's name
            path = str(resolve_model(path))
        check_regular_file(path, "a weights file", missing="init_from file not found")
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # unpickling error, truncated file, not a torch file
            raise InputError(f"init_from is not a loadable weights file: {err}", path) from None
        if not (isinstance(blob, dict) and SPEC_KEY in blob):
            state = blob.get("state_dict", blob) if isinstance(blob, dict) else None
            if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor)
                                                      for v in state.values()):
                raise InputError("init_from is neither a ctcnet model nor a state dict", path)
            skipped = load_backbone_state(self.model.net, state)
            log.info("initialised the backbone from %s (%d tensors left as initialised)",
                     path, len(skipped))
            return
        other, other_spec = load_model(path)
        # This panel's channels are taken from the other model's by name: a five-channel model
        # starts a three-marker one (its stem keeps the DAPI, CK and CD45 filters), and a
        # channel it never saw (a lab's added marker) starts from this model's own filters.
        indices, _ = self.spec.panel.match_channels(other_spec.panel)
        new = [name for name, i in zip(self.spec.panel.names, indices) if i is None]
        if len(new) == len(indices):
            raise PanelMismatchError(f"cannot start from {path}: it shares no channel with this "
                                     f"run's {self.spec.panel.names} (it has "
                                     f"{other_spec.panel.names})")
        if new:
            log.warning("starting from %s, which never saw %s: the filters for %s start as "
                        "initialised, the other channels' are copied", path, new,
                        "it" if len(new) == 1 else "them")
        if other_spec.arch != self.spec.arch or other_spec.class_names != self.spec.class_names:
            raise InputError(f"cannot start from {path}: it is {other_spec.arch} with classes "
                             f"{other_spec.class_names}, this run is {self.spec.arch} with "
                             f"{self.spec.class_names}: another network or class set trains "
                             "from scratch, without model.init_from")
        self.model.load_state_dict(select_input_channels(
            other.state_dict(), self.model.state_dict(), indices,
            other_spec.panel.num_channels))
        scale = self.spec.pixel_size_um / other_spec.pixel_size_um
        if not 0.8 <= scale <= 1.25:  # filters learnt at one scale, cells of another size
            log.warning("starting from %s, a model of %.3g um/px, for one of %.3g: cells are "
                        "%.2gx as wide in this model's pixels as in the filters it copies; it "
                        "needs more training to adapt than a start at its own scale", path,
                        other_spec.pixel_size_um, self.spec.pixel_size_um, 1 / scale)

    def setup(self, stage: str) -> None:
        """Check the data's channels against the model's and, before fitting, set the class
        weights from the training counts."""
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is None:
            return
        if hasattr(datamodule, "panel"):
            # The data must have the model's channels, by name and order.
            self.spec.panel.check_matches(datamodule.panel, "training data")
        if hasattr(datamodule, "summary"):
            self.data_summary = _plain(datamodule.summary())
        if stage == "fit" and hasattr(datamodule, "train_class_counts"):
            counts = torch.as_tensor(datamodule.train_class_counts())
            # From scratch, a class set of the crops' own classes is the remedy (a model
            # started from another keeps that model's classes).
            remedy = "" if self.hparams.init_from else (
                " (to train without them: --data.taxonomy naming the crops' classes, "
                "docs/data-formats.md)")
            check_training_classes(dict(zip(self.spec.class_names, counts.tolist())),
                                   getattr(datamodule, "train_described", "the training crops"),
                                   absent_note=": the model learns nothing of them, yet can "
                                               f"still call them{remedy}",
                                   few=FEW_FROM_A_MODEL if self.hparams.init_from
                                   else FEW_FROM_SCRATCH)
            if self.hparams.class_weights == "balanced":
                self.loss_weights.copy_(balanced_class_weights(counts))
            if hasattr(datamodule, "split_class_counts") and "val" in datamodule.splits:
                val = datamodule.split_class_counts("val")
                unseen = [name for name, n, t in zip(self.spec.class_names, val, counts)
                          if n == 0 and t > 0]
                if unseen:  # (a fine-tune's fixed steps pick no checkpoint by it)
                    watched = getattr(self.trainer.checkpoint_callback, "monitor", "")
                    them = "them" if len(unseen) > 1 else "it"
                    log.warning("the validation crops hold no %s: the validation macro-F1%s "
                                "does not measure %s (add crops of %s, or a 'val' split that "
                                "has some)", ", ".join(unseen), ", which picks the best "
                                "checkpoint," if watched == "val/macro_f1" else "", them, them)

    def on_fit_start(self) -> None:
        """Move the model to channels-last on CUDA, where its convolutions run faster."""
        if self.hparams.channels_last and self.device.type == "cuda":
            self.model.to(memory_format=torch.channels_last)

    # ----- steps --------------------------------------------------------------------------
    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        """Logits for a batch of raw crops (the model normalises them itself)."""
        if self.hparams.channels_last and raw.is_cuda:
            raw = raw.contiguous(memory_format=torch.channels_last)
        return self.model(raw)

    def compute_loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The configured loss (weighted cross-entropy or focal) of ``logits`` against
        ``target``."""
        weight = None if self.hparams.class_weights == "none" else self.loss_weights
        if self.hparams.loss == "focal":
            return focal_loss(logits, target, weight, self.hparams.focal_gamma,
                              self.hparams.label_smoothing)
        return F.cross_entropy(logits.float(), target, weight=weight,
                               label_smoothing=self.hparams.label_smoothing)

    def training_step(self, batch, batch_idx):
        """Loss of one training batch; logs the loss and accuracy."""
        raw, target = batch
        logits = self(raw)
        loss = self.compute_loss(logits, target)
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True,
                 batch_size=len(target))
        self.log("train/acc", (logits.argmax(1) == target).float().mean(), on_step=False,
                 on_epoch=True, batch_size=len(target), sync_dist=True)  # all processes
        return loss

    def _eval_step(self, batch, metrics, confusion, prefix: str):
        raw, target = batch
        logits = self(raw)
        loss = getattr(self, f"{prefix}_loss")  # by crops, over every process (not by rank)
        loss.update(self.compute_loss(logits, target), weight=len(target))
        self.log(f"{prefix}/loss", loss, prog_bar=True)
        preds = logits.argmax(1)
        metrics.update(preds, target)
        confusion.update(preds, target)

    def validation_step(self, batch, batch_idx):
        """Add one validation batch's loss and calls to the metrics and confusion matrix."""
        self._eval_step(batch, self.val_metrics, self.val_confusion, "val")

    def test_step(self, batch, batch_idx):
        """Add one test batch's loss and calls to the metrics and confusion matrix."""
        self._eval_step(batch, self.test_metrics, self.test_confusion, "test")

    def _log_epoch(self, metrics, confusion, prefix: str) -> None:
        values = metrics.compute()
        confusion_matrix = confusion.compute()
        metrics.reset()
        confusion.reset()
        names = self.spec.class_names
        # A class the split holds none of has no precision, recall or F1 (NaN, not a 0 that
        # would pull the macro-F1 down), and the macro-F1 is over those it holds, as evaluate's.
        held = confusion_matrix.sum(dim=1) > 0
        f1 = values[f"{prefix}/f1"]
        macro_f1, flat = (f1[held].mean() if held.any() else f1.new_zeros(())), {}
        for what in ("precision", "recall", "f1"):
            per_class = torch.where(held, values[f"{prefix}/{what}"], torch.nan)
            flat.update({f"{prefix}/{what}_{name}": v for name, v in zip(names, per_class)})
        # The confusion matrix, one scalar per (true, predicted) cell, so loggers keep it.
        flat.update({f"{prefix}/confusion/{true}_as_{called}": confusion_matrix[i, j].float()
                     for i, true in enumerate(names) for j, called in enumerate(names)})
        # Reduced over DDP ranks by torchmetrics: sync_dist's mean is themselves (no warning).
        self.log(f"{prefix}/macro_f1", macro_f1, prog_bar=True, sync_dist=True)
        self.log_dict(flat, sync_dist=True)
        trainer = getattr(self, "_trainer", None)
        if trainer is not None and trainer.sanity_checking:
            # Lightning's sanity check runs a few batches on the weights as they start: no
            # score of the model (a run stopped before its first validation kept it as one).
            return
        support = confusion_matrix.sum(dim=1).tolist()
        self.last_metrics = {
            "split": prefix, "epoch": int(self.current_epoch), "macro_f1": float(macro_f1),
            "per_class": {name: {**{what: float(values[f"{prefix}/{what}"][i]) if support[i]
                                    else None for what in ("precision", "recall", "f1")},
                                 "support": int(support[i])} for i, name in enumerate(names)},
            "confusion": _plain(confusion_matrix.long()),
            "class_names": list(names),
        }

    def on_validation_epoch_end(self) -> None:
        """Log the epoch's validation metrics (per class and the confusion matrix) and keep them
        for the spec."""
        self._log_epoch(self.val_metrics, self.val_confusion, "val")

    def on_test_epoch_end(self) -> None:
        """Log the epoch's test metrics and keep them for the spec."""
        self._log_epoch(self.test_metrics, self.test_confusion, "test")

    # ----- optimisation -------------------------------------------------------------------
    def configure_optimizers(self):
        """AdamW (no weight decay on norms and biases) with the one-cycle or warm-up + cosine
        schedule, stepped per batch."""
        hp = self.hparams
        # No weight decay on BatchNorm and bias parameters (standard for small CNNs).
        decay, no_decay = [], []
        for p in self.model.parameters():
            if p.requires_grad:
                (decay if p.ndim > 1 else no_decay).append(p)
        optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": hp.weight_decay},
                                       {"params": no_decay, "weight_decay": 0.0}], lr=hp.lr)
        scheduler = lr_schedule(optimizer, hp.schedule, hp.lr, hp.warmup_fraction,
                                self.trainer.estimated_stepping_batches)
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # ----- checkpoints --------------------------------------------------------------------
    def current_spec(self) -> ModelSpec:
        """The spec with the training summary and latest metrics filled in."""
        training = {"data": self.data_summary,
                    "hyper_parameters": _plain(dict(self.hparams)),
                    # (saved at an epoch's end: its index, from 0 as in the file name)
                    "epoch_index": int(self.current_epoch),
                    "epochs_completed": int(self.current_epoch) + 1,
                    "global_step": int(self.global_step),
                    "processes": int(getattr(getattr(self, "_trainer", None), "world_size", 1)),
                    "loss_weights": [round(w, 4) for w in self.loss_weights.tolist()],
                    **({"resumed": self.resumed} if getattr(self, "resumed", None) else {})}
        return self.spec.replace(training=training, metrics=_plain(self.last_metrics))

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Write the model spec into the checkpoint and keep its hyper-parameters plain data, so
        it loads with ``weights_only=True``."""
        checkpoint[SPEC_KEY] = self.current_spec().to_dict()
        checkpoint["hyper_parameters"] = _plain(dict(checkpoint.get("hyper_parameters", {})))

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Refuse a checkpoint trained on other channels; restore the data summary and last
        metrics from its spec."""
        spec = checkpoint.get(SPEC_KEY)
        if spec is not None:
            # Refuse to resume or fine-tune from a model trained on other channels.
            self.spec.panel.check_matches(Panel.from_dict(spec["panel"]), "checkpoint")
            self.data_summary = spec.get("training", {}).get("data", {})
            self.last_metrics = spec.get("metrics", {})
            self.resumed = resumed_record(checkpoint, spec)
