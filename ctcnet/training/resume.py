"""Whether a training run may resume from a checkpoint: the checkpoint a resume starts from,
refused where the run it began cannot go on as it was (``max_epochs`` or ``max_steps``
reached, another shape, other crops, other model settings, a learning-rate schedule planned
over other steps), each said in one line with what to do instead. Each checkpoint records
the run's shape (:data:`RUN_SHAPE`) and its data (``run_identity``) for these checks.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from ctcnet.errors import InputError
from ctcnet.training.run_identity import RUN_DATA, RUN_RECIPE, changed_data, changed_recipe

log = logging.getLogger(__name__)

RUN_SHAPE = "ctcnet_run_shape"


def resumed_record(checkpoint: dict, spec: dict) -> list[dict]:
    """A resumed run's record of the checkpoints it went on from (a resume of a resume keeps
    the first's): each one's epoch index and step, as the model file's ``training.resumed``
    says them."""
    return [*(spec.get("training") or {}).get("resumed", []),
            {"epoch_index": int(checkpoint.get("epoch", -1)),
             "global_step": int(checkpoint.get("global_step", -1))}]


def run_shape(trainer, datamodule) -> dict:
    """What sets a run's steps per epoch beside its data: processes, batch size, accumulation
    and the batches an epoch is limited to (``trainer.limit_train_batches``, as text: a count,
    ``1``, is not the share ``1.0``, all of them)."""
    return {"processes": int(trainer.world_size),
            "batch_size": int(getattr(datamodule, "batch_size", 0) or 0),
            "accumulate_grad_batches": int(getattr(trainer, "accumulate_grad_batches", 1)),
            "limit_train_batches": str(getattr(trainer, "limit_train_batches", 1.0))}


# A shape's parts a checkpoint of an earlier ctcnet lacks, as its runs had them (all batches:
# a limit they set is told by the steps alone, as before).
SHAPE_DEFAULTS = {"limit_train_batches": "1.0"}



def _trained_steps(path: Path) -> tuple[int, int]:
    """(global step, file time) of a checkpoint, to pick the furthest-trained of several
    (-1 steps for one that does not read: the check of the one picked says why)."""
    try:
        step = torch.load(path, map_location="cpu", weights_only=True, mmap=True).get(
            "global_step", -1)
    except Exception:  # noqa: BLE001 - any unreadable file ranks last
        step = -1
    return int(step) if isinstance(step, int) else -1, path.stat().st_mtime_ns


def check_resume(ckpt_path: str | None, trainer, shape: dict | None = None,
                 data: dict | None = None, model_settings: dict | None = None,
                 model_file_missing: bool = False,
                 setting_defaults: dict | None = None, recipe: dict | None = None
                 ) -> Path | None:
    """The checkpoint a resume starts from (None: no resume), refused where it cannot train:
    missing, ``max_epochs`` or ``max_steps`` already reached by it (Lightning would stop at
    once and export the old model as if new; but where the run's model file is missing,
    ``model_file_missing``, a run stopped as it wrote it, the resume writes it), or a run of
    another shape (``shape``: :func:`run_shape` of this run; processes, batch size,
    accumulation or the batches an epoch is limited to changed: the steps of an epoch with
    them, under a learning-rate schedule planned over the old ones), or on other crops
    (``data``: :func:`~ctcnet.training.run_identity.data_identity` of this run), or with
    other model settings (``model_settings``: the model's hyperparameters, against those the
    checkpoint holds; ``setting_defaults``: the model's defaults, for a setting a checkpoint
    of an earlier ctcnet lacks), or trained otherwise (``recipe``:
    :func:`~ctcnet.training.run_identity.run_recipe` of this run: the seed, the crops'
    compensation and augmentation, the gradient clip, precision, the best model's monitor).

    ``last`` is the furthest-trained ``last*.ckpt`` of the checkpoint folder (its global
    step, then its file time: a second run into the same folder writes ``last-v1.ckpt``
    beside the first run's, and a copied folder's file times say nothing): the file checked
    is the file resumed."""
    if not ckpt_path:
        return None

    path = Path(ckpt_path)
    if ckpt_path == "last":
        folder = Path(getattr(trainer.checkpoint_callback, "dirpath", None) or ".")
        candidates = [p for p in folder.glob("last*.ckpt") if p.is_file()]
        path = max(candidates, key=_trained_steps) if candidates else folder / "last.ckpt"
    if not path.is_file():
        raise InputError("checkpoint to resume from not found" + (
            ": none was saved (a run stopped before its first epoch ended saves none); run "
            "the same command without --ckpt_path, which starts the run afresh"
            if ckpt_path == "last" else ""), path)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file is the same user error
        raise InputError(f"checkpoint to resume from is not readable: "
                         f"{str(err).splitlines()[0][:200]}", path) from None
    longer = (f"a resume finishes the run its checkpoint began; to train on, start a new run "
              f"from its weights (--model.init_from={path})")
    _check_unfinished(checkpoint, trainer, path, model_file_missing, longer)
    before = checkpoint.get(RUN_SHAPE)
    before = {**SHAPE_DEFAULTS, **before} if isinstance(before, dict) else None
    if before is not None and shape is not None and before != shape:
        changed = ", ".join(f"{k} {before.get(k)} -> {v}" for k, v in shape.items()
                            if before.get(k) != v)
        raise InputError(f"the checkpoint's run had another shape ({changed}; "
                         "trainer.devices, data.batch_size, trainer.accumulate_grad_batches, "
                         "trainer.limit_train_batches): "
                         "its epochs had other steps, and the learning-rate schedule resumed "
                         f"with it would end early or fail; resume with the same, or {longer}",
                         path)
    other_settings = changed_model_settings(checkpoint.get("hyper_parameters"), model_settings,
                                            setting_defaults)
    if other_settings:  # the run went on otherwise than its model file would record
        raise InputError(f"the checkpoint's run was made with other model settings "
                         f"({other_settings}): {longer}", path)
    other_data = changed_data(checkpoint.get(RUN_DATA), data)
    if other_data:  # the model written would name the crops of the run's start
        raise InputError(f"the checkpoint's run trained on other crops ({other_data}): "
                         f"{longer}", path)
    otherwise = changed_recipe(checkpoint.get(RUN_RECIPE), recipe)
    if otherwise:  # the model file would record the change as the whole run's
        raise InputError(f"the checkpoint's run was trained otherwise ({otherwise}): resume "
                         f"with its settings, or {longer}", path)
    planned, asked = planned_steps(checkpoint), asked_steps(checkpoint, trainer)
    if planned is not None and asked is not None and planned != asked:
        # The learning-rate schedule is restored with the run: planned over its own length,
        # it would fail past its end (one-cycle) or restart its warm-up (cosine).
        raise InputError(f"the checkpoint's learning-rate schedule was planned over {planned} "
                         f"steps and this run asks for {asked} (trainer.max_epochs or "
                         f"max_steps changed): {longer}", path)
    return path


def _check_unfinished(checkpoint: dict, trainer, path: Path, model_file_missing: bool,
                      longer: str) -> None:
    """Refuse a checkpoint that has reached ``trainer.max_epochs`` or ``max_steps``: Lightning
    would stop at once and export the old model as if new. A run that reached exactly its
    limit and was stopped as it wrote its model file (``model_file_missing``) resumes to
    write it."""
    epoch, max_epochs = checkpoint.get("epoch"), trainer.max_epochs
    step, max_steps = checkpoint.get("global_step"), getattr(trainer, "max_steps", -1)
    if isinstance(epoch, int) and max_epochs is not None and 0 <= max_epochs <= epoch + 1:
        done, limit = f"finished {epoch + 1} epoch(s)", f"max_epochs={max_epochs}"
        exactly = max_epochs == epoch + 1
    elif isinstance(step, int) and max_steps not in (None, -1) and 0 <= max_steps <= step:
        done, limit = f"trained {step} step(s)", f"max_steps={max_steps}"
        exactly = max_steps == step
    else:
        return
    if model_file_missing and exactly:
        log.info("%s: the run had reached trainer.%s and not written its model file "
                 "(stopped as it did): writing it", path, limit)
        return
    raise InputError(f"the checkpoint has {done}; trainer.{limit} would train nothing: "
                     f"{longer}", path)


# Model settings a resume may change: how the weights are laid out in memory, and the
# checkpoint a run began from (the resume starts from its own).
RESUME_MAY_CHANGE = ("_instantiator", "channels_last", "init_from")


def setting_defaults(module_class) -> dict:
    """The defaults of a LightningModule's settings (its ``__init__``'s keyword defaults)."""
    import inspect

    return {name: p.default for name, p in inspect.signature(module_class.__init__)
            .parameters.items() if p.default is not inspect.Parameter.empty}


def changed_model_settings(before, now, defaults: dict | None = None) -> str | None:
    """What differs between a checkpoint's model hyperparameters and this run's, in words
    (``lr 0.003 -> 0.1``; a long value by its name: ``taxonomy``); None where they agree or
    either is unknown. The optimiser and schedule are restored as they were, so a new
    learning rate had no effect while the model file recorded it; another loss changed the
    run midway; another taxonomy (its classes in another order) trained the head's outputs
    on other labels; another width failed to load. A setting the checkpoint lacks (one a
    later ctcnet added) at its default (``defaults``) is no change: the run went on as it."""
    if not isinstance(before, dict) or not isinstance(now, dict):
        return None

    def text(value) -> str:
        return json.dumps(value, sort_keys=True, default=str)

    changed = []
    for key in sorted(set(before) | set(now)):
        if key in RESUME_MAY_CHANGE or text(before.get(key)) == text(now.get(key)):
            continue
        if key not in before and key in (defaults or {}) and \
                text(defaults[key]) == text(now.get(key)):
            continue
        old, new = text(before.get(key)), text(now.get(key))
        changed.append(f"{key} {old} -> {new}" if len(old) + len(new) <= 60 else key)
    return ", ".join(changed) or None


def planned_steps(checkpoint: dict) -> int | None:
    """The steps the checkpoint's learning-rate schedule was planned over (one-cycle's total,
    or the warm-up plus cosine's length), None where it cannot be read."""
    schedulers = checkpoint.get("lr_schedulers") or []
    if len(schedulers) != 1 or not isinstance(schedulers[0], dict):
        return None
    state = schedulers[0]
    if isinstance(state.get("total_steps"), int):
        return state["total_steps"]
    parts, milestones = state.get("_schedulers"), state.get("_milestones")
    if isinstance(parts, list) and len(parts) == 2 and isinstance(milestones, list) and \
            isinstance(parts[1], dict) and isinstance(parts[1].get("T_max"), int):
        return int(milestones[0]) + parts[1]["T_max"]
    return None


def asked_steps(checkpoint: dict, trainer) -> int | None:
    """The steps this run's limits come to, at the checkpoint's steps per epoch (a checkpoint
    of whole epochs; None where they cannot be told)."""
    epoch, step = checkpoint.get("epoch"), checkpoint.get("global_step")
    if not isinstance(epoch, int) or not isinstance(step, int) or step <= 0:
        return None
    per_epoch, extra = divmod(step, epoch + 1)
    if extra or not per_epoch:  # saved mid-epoch: the steps of an epoch are not known here
        return None
    limits = [trainer.max_epochs * per_epoch] if trainer.max_epochs not in (None, -1) else []
    if trainer.max_steps not in (None, -1):
        limits.append(trainer.max_steps)
    return min(limits) if limits else None
