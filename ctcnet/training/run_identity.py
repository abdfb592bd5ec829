"""What a training run trains on, recorded in each of its checkpoints, so that a resume on
other crops is refused: resumed on a crop folder that changed since (a patient's crops added,
another folder named), or under a ctcnet whose simulator draws otherwise, a run went on over
other epochs' steps and validation crops, and the model it wrote still named the data of its
start (its record of training crops, which ``ctcnet evaluate`` reads to warn of crops a model
was trained on, then missed the new ones).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ctcnet.detect.crop_dataset import read_crop_index
from ctcnet.detect.pixel_size import PIXEL_SIZE_OPTION
from ctcnet.training.render_cache import simulator_fingerprint

# The checkpoint key of :func:`data_identity`.
RUN_DATA = "ctcnet_run_data"

# The data module's settings that choose the crops and which of them train (not how they are
# augmented or batched: a resume may not change the batch either, but that is the run's
# shape, checked on its own).
CHOOSING = ("crop_size", "data_dir", "simulate", "val_fraction", "split_seed", "split_unit",
            "view", "pixel_size")


def data_identity(datamodule) -> dict:
    """The crops ``datamodule`` trains and validates on: its choosing settings (a crop folder
    named as resolved), and for a crop folder the number of crops and a digest of each one's
    file name, size, label, sample and split. Simulated crops are their settings and the
    simulator's code (``simulator``: its fingerprint, as the render cache keys renders by:
    another ctcnet may draw the same settings otherwise)."""
    settings = dict(getattr(datamodule, "hparams", {}) or {})
    chosen = {key: settings.get(key) for key in CHOOSING}
    simulated = {"simulator": simulator_fingerprint()} if chosen.get("simulate") else {}
    data_dir = chosen.get("data_dir")
    if not data_dir:
        return {"settings": _digest(chosen), **simulated}
    chosen["data_dir"] = str(Path(data_dir).resolve())
    # The folder's index as the data module read it (its pixel size measured), else read as
    # it reads it: a folder stating no pixel size is read at data.pixel_size's.
    index = getattr(datamodule, "_index", None)
    if index is None:
        index = read_crop_index(data_dir, pixel_size=getattr(datamodule, "pixel_size", None),
                                option=getattr(datamodule, "pixel_size_option",
                                               PIXEL_SIZE_OPTION))
    root = Path(index.root)
    listing = hashlib.sha256()
    for path, label, sample, split in zip(index.paths, index.labels, index.sample_ids,
                                          index.splits):
        path = Path(path)
        size = path.stat().st_size if path.is_file() else -1
        name = path.relative_to(root) if path.is_relative_to(root) else path
        listing.update(f"{name}\t{size}\t{label}\t{sample}\t{split}\n".encode())
    # A manifest's patients split the crops too: a column added since moved the validation
    # crops, and the resume ran on. A digest of their own (None: none named), so an older
    # run's checkpoint, which recorded none, is compared as before.
    patients = None if not index.patient_ids else _digest(list(index.patient_ids))
    return {"settings": _digest(chosen), "data_dir": chosen["data_dir"], "crops": len(index),
            "crops_sha256": listing.hexdigest(), "patients_sha256": patients, **simulated}


def _digest(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def changed_data(before: dict | None, now: dict | None) -> str | None:
    """What differs between a checkpoint's :func:`data_identity` and this run's, in words; None
    where they agree or either is unknown (a checkpoint written before runs recorded it)."""
    if not isinstance(before, dict) or not isinstance(now, dict) or before == now:
        return None
    if before.get("data_dir") != now.get("data_dir"):
        return f"data.data_dir {before.get('data_dir')} -> {now.get('data_dir')}"
    if before.get("crops_sha256") != now.get("crops_sha256"):
        return (f"the crop folder's crops changed since ({before.get('crops')} -> "
                f"{now.get('crops')} crops, or their files, labels, samples or splits)")
    if "patients_sha256" in before and before["patients_sha256"] != now.get("patients_sha256"):
        return ("the manifest's patient ids changed since (added, removed or edited: a split "
                "by patient holds out other crops)")
    # (only where both simulate: a checkpoint of an earlier ctcnet recorded no fingerprint)
    if "simulator" in before and "simulator" in now and before["simulator"] != now["simulator"]:
        return ("the simulator's code changed since: this ctcnet draws the simulated crops "
                "otherwise than the one the run began under")
    if before.get("settings") == now.get("settings"):
        return None  # (an older run's record, without the patients' digest)
    return "the data settings (data.simulate, val_fraction, split_seed, split_unit, view, " \
           "crop_size or pixel_size)"


RUN_RECIPE = "ctcnet_run_recipe"
# The form of a recorded recipe: one of another form (written while the recipe was being
# settled) is not compared, as a checkpoint that recorded none.
RECIPE_FORM = 2


def run_recipe(asked: dict, trainer, datamodule) -> dict:
    """How a run trains beside its model settings, shape and crops: the crops' reading and
    augmentation (data.augment, compensate, compensate_share), the seed, the gradient clip,
    the precision and what picks its best model. A resume that changed one went on otherwise
    than its model file says: the file recorded the change as the whole run's (a model trained
    its last epochs on compensated crops, its spec saying none). Plain data, by option name,
    each as it acts: the seed and precision as the command asked them (``asked``; ``true``, a
    seed drawn anew at each launch; none, a precision chosen for the machine, bf16 on a GPU
    and fp32 on the CPU: a run may resume on another machine), the augmentation with its
    defaults filled in, the clip's algorithm and the compensated share only where they act."""
    from ctcnet.simulate.augment_options import augment_config

    settings = dict(getattr(datamodule, "hparams", {}) or {})
    chosen = getattr(trainer, "checkpoint_callback", None)
    augment = settings.get("augment", True)
    clip = getattr(trainer, "gradient_clip_val", None) or None  # (0: no clip, as none)
    compensate = bool(settings.get("compensate", False))
    precision = asked.get("trainer.precision")
    recipe = {"recipe": RECIPE_FORM,
              "data.augment": augment_config(None if augment is True else augment).to_dict()
              if augment is not False else False,
              "data.compensate": compensate,
              "data.compensate_share": settings.get("compensate_share") if compensate else None,
              "seed_everything": asked.get("seed_everything"),
              "trainer.gradient_clip_val": clip,
              "trainer.gradient_clip_algorithm": getattr(trainer, "gradient_clip_algorithm",
                                                         None) if clip else None,
              # (asked: as the trainer reads it, "32" and "32-true" alike)
              "trainer.precision": None if precision is None else str(trainer.precision),
              "checkpoint.monitor": getattr(chosen, "monitor", None),
              "checkpoint.mode": getattr(chosen, "mode", None)}
    return json.loads(json.dumps(recipe, sort_keys=True, default=str))


def changed_recipe(before: dict | None, now: dict | None) -> str | None:
    """What differs between a checkpoint's :func:`run_recipe` and this run's, in words
    (``data.compensate false -> true``, ``data.augment.blur_p 0.25 -> 0.5``); None where they
    agree or either is unknown (a checkpoint written before runs recorded it, or in another
    form). A precision left to the machine (none) is any, and a seed drawn anew (``true``)
    any seed: a resume from the run's saved config.yaml names the seed Lightning drew. An
    augmentation option one side has not (an option a later ctcnet added) is passed over."""
    if not isinstance(before, dict) or not isinstance(now, dict) or \
            before.get("recipe") != now.get("recipe"):
        return None
    was, is_ = _flat(before), _flat(now)
    changed = []
    for key in sorted(set(was) | set(is_)):
        old, new = was.get(key), is_.get(key)
        if json.dumps(old) == json.dumps(new) or (  # (true is no seed 1, false no seed 0)
                key == "trainer.precision" and None in (old, new)) or \
                (key == "seed_everything" and old is True and isinstance(new, int)) or \
                (key.startswith("data.augment.") and (key not in was or key not in is_)) or \
                (key == "checkpoint.mode" and (old, new) == ("max", "min") and
                 "loss" in str(is_.get("checkpoint.monitor"))):
            # (a loss monitored under mode max, an earlier ctcnet's: its lowest is now kept)
            continue
        changed.append(f"{key} {json.dumps(old)} -> {json.dumps(new)}")
    return ", ".join(changed) or None


def _flat(recipe: dict) -> dict:
    """A recipe with its augmentation's options each a key of its own (``data.augment.<option>``),
    so a change names the option, not every option twice."""
    out = dict(recipe)
    if isinstance(out.get("data.augment"), dict):  # (on: its options; off is false)
        out.update({f"data.augment.{k}": v for k, v in out["data.augment"].items()})
        out["data.augment"] = True
    return out
