"""The Lightning data module: labelled crops in memory, split by sample, raw counts to the model.

Two sources, chosen in the config:

* ``data_dir``: a crop dataset folder (:mod:`ctcnet.detect.crop_dataset`), read and split by
  :mod:`ctcnet.training.crop_folder`. A manifest ``split`` column (train / val / test) is
  honoured; otherwise whole samples (patients) go to validation, never single crops, because
  crops of one sample are correlated.
* ``simulate``: crops rendered in ``setup()`` by :func:`ctcnet.simulate.simulate_crops` (train
  and validation from different seeds, so from different simulated samples); no files needed.
* both: the folder's crops, with simulated ``train`` crops mixed into its training split
  (fine-tuning on a lab's crops without forgetting the simulator's range).

A model that only ever reads 8-bit composite exports (``view: export``, the composite model of
``configs/core3-export.yaml``) sees every training crop as an export (the augmentation's
``jpeg_p`` / ``tight_p`` draws cover every crop) and its validation crops exported once, with a
fixed seed, so that the checkpoint choice, the calibration and the guard's reference are made
on what it will read, not on 16-bit scans it is never given.

Crops are small, so each split is held as one array (uint16 or float32, N x C x S x S). Nothing
is normalised here: the model normalises raw counts itself (see :mod:`ctcnet.nn.normalise`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
import numpy as np
from torch.utils.data import DataLoader

import ctcnet.simulate
from ctcnet.detect.crop_fingerprints import crop_fingerprints, packed
from ctcnet.detect.pixel_size import pixel_size_option
from ctcnet.errors import InputError, folder_not_found
from ctcnet.inference.spillover import compensate_samples
from ctcnet.io.panel import Panel, load_panel
from ctcnet.io.taxonomy import Taxonomy, load_taxonomy
from ctcnet.simulate import SimConfig
from ctcnet.simulate.augment import build_train_augment, exported_once
from ctcnet.simulate.augment_options import augment_config
from ctcnet.simulate.config import with_overrides
from ctcnet.simulate.export import tight_rendering
from ctcnet.training.crop_folder import SPLITS, folder_index, folder_panel, folder_splits
from ctcnet.training.render_cache import cached_render, render_key
from ctcnet.training.simulate_options import simulate_settings
from ctcnet.training.splits import RANK_SEED_STEP, CropDataset, SplitData, crop_loader

log = logging.getLogger(__name__)

VIEWS = ("scan", "export")
# Exported validation/test seeds: split_seed + this (+1 for test), far from the training
# augmentation's seeds (split_seed + worker id).
EVAL_EXPORT_SEED_OFFSET = 10_000
# simulate.fine's training cells: seed + this, beyond the splits' seed + 1000 x split.
FINE_SEED_OFFSET = 5_000


class CTCDataModule(L.LightningDataModule):
    """Crops for training, validation and (optionally) test.

    Args:
        panel: panel file or mapping; None = the crop dataset's panel.json (required then),
            or the default panel for simulated data.
        taxonomy: taxonomy file or mapping; None = the default (ctc, wbc, cluster, debris).
        crop_size: model input side in pixels (crops are centre-cropped or padded to it).
        data_dir: a crop dataset folder; when None, data is simulated (``simulate``).
        simulate: simulation settings: ``train`` / ``val`` / ``test`` (per-class counts),
            ``seed``, ``num_samples`` (simulated patients per split), ``randomisation``
            (``default`` = full SimConfig ranges, ``clean``, or a named shift), ``overrides``
            (SimConfig knobs for the training split only, e.g. a debris mix richer in hard
            subtypes: ``subtype_weights`` entries are merged into the defaults; validation and
            test keep the default ranges, so they measure the task as it is), ``fine`` (``view:
            export`` only: ``{train: per-class counts, pixel_size_um}``, more training cells
            rendered at that finer pixel size over the same field of view, from their own seed,
            and always shown as tight exports: a microscope's single-cell export is made from
            finer pixels than a scan's, and a cell rendered coarse and enlarged shows thicker
            and softer than one rendered fine, which a network learns; docs/core3-rgb.md).
        val_fraction: share of samples that go to validation when the data has no split column.
        split_seed: seed of the sample-level split.
        split_unit: ``sample`` (whole samples to validation), ``crop`` (a class-stratified
            share of crops, for a single cartridge's reviewed crops) or ``auto`` (the default:
            ``sample`` when the folder holds two or more samples, else ``crop``; a folder of
            one cartridge's crops, as ``ctcnet crops`` writes it, then trains as it is).
        batch_size, num_workers: dataloader settings; pinned memory is used on CUDA.
        augment: overrides of :class:`ctcnet.simulate.augment_options.AugmentConfig`;
            ``false``: none.
        compensate: take CK's spillover off every crop, measured per sample (as ``ctcnet
            predict --compensate`` does per scan), before augmentation: the network learns
            the compensated representation it will be given.
        compensate_share: the share of training samples (drawn with ``split_seed``) that are
            compensated; the others keep their leak, so that the network also knows crops whose
            leak could not be measured (a scan with too few CK+ events). Other splits: all.
        view: ``scan`` (the default: a model for 16-bit scans) or ``export`` (a model for 8-bit
            composite exports only: the augmentation must export every simulated training
            crop, i.e. ``tight_p`` 1.0, and the validation and test crops are exported once
            by it with a fixed seed; the checkpoint records it, and ``ctcnet`` chooses such a
            model for composite data only). On a crop folder (``data_dir``) the crops must be
            exports already (RGB composites) and are used as they are (training's export steps
            off); simulated crops mixed in are exported once.
        render_cache: a folder that keeps simulated renders between runs (None: rendered
            every run; :mod:`ctcnet.training.render_cache`). It changes no crop.
        pixel_size: ``data_dir``'s um per pixel where its panel.json does not state it (or
            states it wrongly): a number, ``auto`` (estimated from the nuclei) or ``fit`` (a
            scale per crop), as ``ctcnet predict --pixel-size``; without ``panel``, the model
            is trained at that pixel size (``fit``: the crops' median).
    """

    # The option named where a message asks for the pixel size: ``ctcnet train``'s; ``ctcnet
    # finetune``, which builds this module, sets its own.
    pixel_size_option = "--data.pixel_size"

    def __init__(self, panel: str | dict | None = None, taxonomy: str | dict | None = None,
                 crop_size: int = 80, data_dir: str | None = None,
                 simulate: dict | None = None, val_fraction: float = 0.2, split_seed: int = 0,
                 split_unit: str = "auto", batch_size: int = 128, num_workers: int = 0,
                 augment: dict | bool = True, compensate: bool = False,
                 compensate_share: float = 1.0, view: str = "scan",
                 render_cache: str | None = None, pixel_size: float | str | None = None):
        super().__init__()
        low = [f"{name}={value} (at least {least})" for name, value, least in (
            ("crop_size", crop_size, 16), ("batch_size", batch_size, 1),
            ("num_workers", num_workers, 0)) if value < least]
        if low:  # in one line now, not as a traceback once the data is rendered
            raise InputError(f"{', '.join(low)}: too small")
        if not 0.0 <= val_fraction < 1.0:
            raise InputError(f"val_fraction={val_fraction} must be in [0, 1)")
        if data_dir is None and simulate is None:
            raise InputError("no training data: give data.data_dir (a crop dataset folder) or "
                             "data.simulate (per-class counts to simulate)")
        self.crop_size = int(crop_size)
        self.data_dir = data_dir
        self.simulate = simulate_settings(simulate)  # a misspelt key refused, not read over
        self.val_fraction = float(val_fraction)
        self.split_seed = int(split_seed)
        if split_unit not in ("sample", "crop", "auto"):
            raise InputError(f"split_unit={split_unit!r} is not sample, crop or auto")
        self.split_unit = split_unit
        self.batch_size = int(batch_size)
        self.num_workers = int(num_workers)
        if isinstance(augment, dict):  # typed and checked now, not in a worker after setup
            typed = augment_config(augment).to_dict()
            augment = {name: typed[name] for name in augment}
        self.augment = augment
        self.compensate = bool(compensate)
        if not 0.0 <= compensate_share <= 1.0:
            raise InputError(f"compensate_share={compensate_share} must be in [0, 1]")
        self.compensate_share = float(compensate_share)
        if view not in VIEWS:
            raise InputError(f"data.view={view!r} is not one of {VIEWS}")
        if view == "export" and simulate and (not isinstance(augment, dict) or
                                              float(augment.get("tight_p", 0.0)) < 1.0):
            # jpeg_p is drawn first, tight_p for the rest: only tight_p 1.0 exports every crop
            # (a folder's own crops are exports already: only simulated ones are exported).
            raise InputError("data.view=export trains a model for exports only: every simulated "
                             "training crop must be shown as one (data.augment.tight_p: 1.0)")
        self.view = view
        self.render_cache = render_cache
        try:  # the one parser of --pixel-size
            self.pixel_size = None if pixel_size is None else pixel_size_option(pixel_size)
        except ValueError as err:
            raise InputError(f"data.pixel_size: {err}") from None
        # The panel and taxonomy are resolved now (not in setup) because the CLI links them to
        # the model before anything is fitted.
        self.taxonomy: Taxonomy = load_taxonomy(taxonomy)
        for note in self.taxonomy.checking_notes():  # said before a model keeps it
            log.warning("%s; a trained model keeps its taxonomy", note)
        self._index = None  # the folder's index, where measuring its pixel size read it
        if panel is None and data_dir is not None:
            if not Path(data_dir).is_dir():
                raise folder_not_found(data_dir)
            if not (Path(data_dir) / "panel.json").exists():
                # The default panel would silently give real crops another channel order.
                raise InputError("no panel.json beside the crops and no data.panel given: the "
                                 "channel order must be stated, never assumed", data_dir)
            panel, self._index = folder_panel(data_dir, self.taxonomy, self.pixel_size,
                                              self.pixel_size_option)
        self.panel: Panel = load_panel(panel)
        self.fine_config = self._fine_config(self.simulate.get("fine"))
        # Record the resolved panel and taxonomy (the model gets the same), not file names.
        self.save_hyperparameters({
            "panel": self.panel.to_dict(), "taxonomy": self.taxonomy.to_dict(),
            "crop_size": self.crop_size, "data_dir": data_dir, "simulate": self.simulate,
            "val_fraction": self.val_fraction, "split_seed": self.split_seed,
            "split_unit": split_unit,
            "batch_size": self.batch_size, "num_workers": self.num_workers, "augment": augment,
            "compensate": self.compensate, "compensate_share": self.compensate_share,
            "view": self.view, "pixel_size": self.pixel_size})
        self.splits: dict[str, SplitData] = {}
        self.fingerprints: dict[str, str] = {}  # the folder's crops a split (crop_fingerprints)
        self.fine_train: SplitData | None = None  # simulate.fine's crops, at their pixel size

    def _fine_config(self, fine) -> dict | None:
        """``simulate.fine`` checked: {train: counts, pixel_size_um}, or None."""
        if not fine:
            return None
        if not isinstance(fine, dict) or set(fine) - {"train", "pixel_size_um"} or \
                not fine.get("train") or not fine.get("pixel_size_um"):
            raise InputError("data.simulate.fine must be {train: per-class counts, "
                             f"pixel_size_um: a pixel size}}, got {fine!r}")
        if self.view != "export" or self.data_dir is not None:
            raise InputError("data.simulate.fine renders training cells that are only ever "
                             "shown as tight exports: it needs view: export and simulated "
                             "data (no data_dir)")
        um = float(fine["pixel_size_um"])
        if not 0 < um < self.panel.pixel_size_um:
            raise InputError(f"data.simulate.fine.pixel_size_um={um} is not finer than the "
                             f"model's {self.panel.pixel_size_um} um/px")
        return {"train": fine["train"], "pixel_size_um": um}

    @property
    def fine_ratio(self) -> float:
        """simulate.fine's pixel size over the model's (1.0 without it)."""
        if self.fine_config is None:
            return 1.0
        return self.fine_config["pixel_size_um"] / self.panel.pixel_size_um

    # Plain-data views of panel and taxonomy, linked into the model by the CLI.
    @property
    def panel_config(self) -> dict:
        """The panel as plain data (the CLI links it to the model's)."""
        return self.panel.to_dict()

    @property
    def taxonomy_config(self) -> dict:
        """The taxonomy as plain data (the CLI links it to the model's)."""
        return self.taxonomy.to_dict()

    @property
    def class_names(self) -> list[str]:
        """The class names, in output order."""
        return self.taxonomy.names

    def setup(self, stage: str | None = None) -> None:
        """Build the splits once: from the crop folder (with simulated crops mixed in when
        asked), else simulated."""
        if self.splits:
            return
        if self.data_dir is not None:
            self.splits = self._load_folder()
            # (the folder's crops lead the training split; fingerprinted as read, as evaluate
            self.folder_train_size = len(self.splits["train"].targets)  # reads a copy of them)
            self.fingerprints = {name: packed(crop_fingerprints(split.images))
                                 for name, split in self.splits.items()}
            if self.simulate.get("train"):
                self._mix_simulated()
        else:
            self.splits = self._simulate_splits()
        self._as_trained_on(self.splits)
        if self.fine_config is not None:
            self.fine_train = self._simulate_fine()
        if "train" not in self.splits or len(self.splits["train"].targets) == 0:
            raise InputError("no training crops (check the split column or val_fraction)",
                             self.data_dir)
        for name, split in self.splits.items():
            log.info("%s: %d crops of %d samples %s", name, len(split.targets),
                     len(set(split.sample_ids)), split.class_counts(self.class_names))
        if self.fine_train is not None:
            log.info("train, rendered at %g um/px: %d crops of %d px %s",
                     self.fine_config["pixel_size_um"], len(self.fine_train.targets),
                     self.fine_train.images.shape[-1],
                     self.fine_train.class_counts(self.class_names))

    def _as_trained_on(self, splits: dict[str, SplitData]) -> None:
        """``splits`` (in place) as training and validation see them: spillover compensated
        (``compensate``), simulated validation and test exported (``view: export``; a
        folder's are exports already)."""
        if self.compensate:
            self._compensate_splits(splits)
        if self.view == "export" and self.data_dir is None:
            self._export_eval_splits(splits)

    def _compensate_splits(self, splits: dict[str, SplitData]) -> None:
        """CK's spillover taken off each split's crops, sample by sample, in place (in the
        training split, off ``compensate_share`` of its samples)."""
        rng = np.random.default_rng(self.split_seed)
        for name, split in splits.items():
            ids = np.asarray(split.sample_ids)
            samples = np.unique(ids)
            if name == "train" and self.compensate_share < 1.0:
                samples = samples[rng.random(len(samples)) < self.compensate_share]
            _, records = compensate_samples(split.images, self.panel, ids, out=split.images,
                                            only=samples)
            found = sum(any(r["leaks"].values()) for r in records.values())
            log.info("%s: CK spillover taken off in %d of %d samples (%d left as simulated)",
                     name, found, len(records), len(np.unique(ids)) - len(records))

    def _export_eval_splits(self, splits: dict[str, SplitData]) -> None:
        """Validation and test crops exported as training exports them (``export_only``: the
        same export ranges, none of the optics and stain shifts, which would make checkpoint
        choice, calibration and the guard reference fit perturbed crops), drawn once with a
        fixed seed per split, so every epoch and every rerun scores the same images and a
        change in one split's size leaves the other's images as they were."""
        for offset, name in enumerate(("val", "test"), start=EVAL_EXPORT_SEED_OFFSET):
            if name in splits:
                splits[name] = self._exported(splits[name], self.split_seed + offset)
        log.info("view=export: validation and test crops exported once (seeds %d, %d)",
                 self.split_seed + EVAL_EXPORT_SEED_OFFSET,
                 self.split_seed + EVAL_EXPORT_SEED_OFFSET + 1)

    def _exported(self, split: SplitData, seed: int) -> SplitData:
        """``split``'s crops each exported once (:func:`export_only` of the augmentation)."""
        shown = exported_once(split.images, self.augment, seed, tuple(self.panel.roles()))
        return SplitData(shown, split.targets, split.sample_ids)

    def _load_folder(self) -> dict[str, SplitData]:
        index = folder_index(self.data_dir, self.panel, self.taxonomy, self.pixel_size,
                             self.pixel_size_option, self._index)
        # The size read (auto: estimated; fit: each crop's median), for the records.
        self.folder_pixel_size_um = float((index.file_panel or index.panel).pixel_size_um)
        composite = (index.file_panel or index.panel).composite is not None
        if self.view == "export" and not composite:
            raise InputError("data.view=export trains on exports: this folder holds scan crops "
                             "(no RGB composite files); use view: scan", self.data_dir)
        if self.view == "scan" and composite:  # it would be offered for 16-bit scans
            log.warning("%s holds RGB composite exports, but data.view is scan: the model will "
                        "be recorded as one for 16-bit scans, which it never saw; for exports "
                        "set data.view: export", self.data_dir)
        return folder_splits(index, self.taxonomy, self.crop_size, self.panel.pixel_size_um,
                             self.val_fraction, self.split_seed, self.split_unit)

    @property
    def train_described(self) -> str:
        """The training split in words for its warnings: a crop folder's with simulated crops
        mixed in (``simulate.train``) says how many are whose, so that its counts are not read
        as the folder's own crops alone."""
        own = getattr(self, "folder_train_size", None)
        total = len(self.splits["train"].targets) if "train" in self.splits else 0
        mixed = total - own if own is not None else 0
        return "the training crops" + (f" ({own} of the folder's and {mixed} simulated, "
                                       "data.simulate.train)" if mixed > 0 else "")

    def _mix_simulated(self) -> None:
        """Add simulated training crops (``simulate.train``) to the folder's training split;
        for ``view: export`` (a folder of exports) each exported once, as the folder's are."""
        sim = self._simulate_splits(only=("train",))["train"]
        if self.view == "export":
            sim = self._exported(sim, self.split_seed + EVAL_EXPORT_SEED_OFFSET + 2)
        own = self.splits["train"]
        self.splits["train"] = SplitData(
            np.concatenate([own.images.astype(np.float32), sim.images.astype(np.float32)]),
            np.concatenate([own.targets, sim.targets]), own.sample_ids + sim.sample_ids)

    def simulate_split(self, name: str) -> SplitData:
        """One simulated split as training makes and shows it (same seed and counts; compensated
        and exported as the recipe says), without the others: what ``scripts/refit_guard.py``
        re-fits a trained model's guard reference on."""
        splits = self._simulate_splits(only=(name,))
        if name not in splits:
            raise InputError(f"data.simulate gives no {name!r} split")
        self._as_trained_on(splits)
        return splits[name]

    def _simulator_configs(self):
        """The simulator's config for validation and test, and for training (``overrides``)."""
        randomisation = self.simulate.get("randomisation", "default")
        if randomisation == "default":
            config = SimConfig()
        elif randomisation == "clean":
            config = SimConfig.clean()
        else:
            config = SimConfig().with_shift(randomisation)
        return config, with_overrides(config, self.simulate.get("overrides"))

    def _simulate_splits(self, only: tuple[str, ...] = SPLITS) -> dict[str, SplitData]:
        sim = self.simulate
        config, train_config = self._simulator_configs()
        seed = int(sim.get("seed", 0))
        num_samples = int(sim.get("num_samples", 8))
        defaults = {"train": 64, "val": 32}
        out = {}
        # Each split gets its own seed range, so its simulated samples (patients, scanners)
        # never occur in another split.
        for offset, name in enumerate(SPLITS):
            counts = sim.get(name, defaults.get(name))
            if not counts or name not in only:
                continue
            out[name] = self._rendered(
                name, counts, self.panel, self.crop_size, seed + 1000 * offset,
                train_config if name == "train" else config, num_samples)
        return out

    def _rendered(self, name: str, counts, panel: Panel, crop_size: int, seed: int, config,
                  num_samples: int) -> SplitData:
        """Simulated crops as split data, from the render cache when it holds them."""
        def render():
            batch = ctcnet.simulate.simulate_crops(counts, panel, self.taxonomy,
                                                   crop_size=crop_size, seed=seed, config=config,
                                                   num_samples=num_samples)
            split = self._as_split(batch, name)
            return split.images, split.targets, split.sample_ids

        key = render_key(split=name, counts=counts, panel=panel.to_dict(),
                         taxonomy=self.taxonomy.to_dict(), crop_size=crop_size, seed=seed,
                         config=config.summary(), num_samples=num_samples)
        return SplitData(*cached_render(self.render_cache, key, render))

    def _as_split(self, batch, name: str) -> SplitData:
        """A simulated batch as split data, its sample ids prefixed with the split's name."""
        targets = np.array([self.taxonomy.index(label) for label in batch.labels],
                           dtype=np.int64)
        return SplitData(np.asarray(batch.images), targets,
                         [f"{name}:{s}" for s in batch.sample_ids])

    def _simulate_fine(self) -> SplitData:
        """simulate.fine's training cells: rendered at its pixel size over the model's field
        of view, from a seed of their own (simulated samples no other split holds)."""
        sim = self.simulate
        panel, side, config = tight_rendering(self.panel, self.crop_size,
                                              self.fine_config["pixel_size_um"],
                                              self._simulator_configs()[1])
        return self._rendered("train_fine", self.fine_config["train"], panel, side,
                              int(sim.get("seed", 0)) + FINE_SEED_OFFSET, config,
                              int(sim.get("num_samples", 8)))

    def summary(self) -> dict:
        """What the data is (plain data, for checkpoints and model cards)."""
        source = {}
        if self.data_dir is not None:
            source["data_dir"] = str(Path(self.data_dir).resolve())  # evaluate compares it
            if self.pixel_size is not None:  # how its crops were scaled
                source["pixel_size"] = self.pixel_size
                if getattr(self, "folder_pixel_size_um", None):  # read (auto, fit) at
                    source["pixel_size_um"] = round(self.folder_pixel_size_um, 4)
            if "train" in self.fingerprints:
                # evaluate tells these crops wherever they are copied (crop_fingerprints)
                source["learnt_from"] = self.fingerprints["train"]
        if self.simulate:  # alone, or mixed into the folder's training split
            source["simulated"] = {k: v for k, v in self.simulate.items()}
        return {
            **source,
            "crop_size": self.crop_size,
            # The training augmentation: AugmentConfig overrides (True: its defaults; False: none).
            "augment": self.augment,
            # Crops with CK's spillover taken off per sample: the network expects them so.
            **({"compensate": True} if self.compensate else {}),
            # A model for 8-bit composite exports only (ModelSpec.reads_exports).
            **({"view": self.view} if self.view != "scan" else {}),
            "splits": {name: {"crops": int(len(s.targets)),
                              "samples": len(set(s.sample_ids)),
                              "per_class": s.class_counts(self.class_names)}
                       for name, s in self.splits.items()},
            **({"train_fine": {"crops": int(len(self.fine_train.targets)),
                               "samples": len(set(self.fine_train.sample_ids)),
                               "pixel_size_um": self.fine_config["pixel_size_um"],
                               "per_class": self.fine_train.class_counts(self.class_names)}}
               if self.fine_train is not None else {}),
        }

    def train_class_counts(self) -> np.ndarray:
        """Training crops per class (fine-tuning crops included), for the class weights."""
        targets = self.splits["train"].targets
        if self.fine_train is not None:
            targets = np.concatenate([targets, self.fine_train.targets])
        return np.bincount(targets, minlength=self.taxonomy.num_classes)

    def split_class_counts(self, name: str) -> np.ndarray:
        """Crops per class of one split (zeros where the split is absent)."""
        split = self.splits.get(name)
        targets = split.targets if split is not None else np.zeros(0, int)
        return np.bincount(targets, minlength=self.taxonomy.num_classes)

    def _dataset(self, name: str, train: bool) -> CropDataset:
        split, augment = self.splits[name], None
        rank = int(getattr(self.trainer, "global_rank", 0) or 0)  # a DDP process's own stream
        if train and self.augment is not False:
            overrides = self.augment if isinstance(self.augment, dict) else None
            if self.view == "export" and self.data_dir is not None:
                # A folder of exports (and simulated crops exported once at setup): training's
                # shifts apply, its export steps would export an export again.
                overrides = {**(overrides or {}), "tight_p": 0.0, "jpeg_p": 0.0}
            augment = build_train_augment(overrides, seed=self.split_seed + RANK_SEED_STEP *
                                          rank, roles=tuple(self.panel.roles()))
        if train and self.fine_train is not None and augment is not None:
            return CropDataset(split.images, split.targets, augment, self.fine_train,
                               self.fine_ratio, rank=rank)
        return CropDataset(split.images, split.targets, augment, rank=rank)

    def _loader(self, name: str, train: bool) -> DataLoader:
        return crop_loader(self._dataset(name, train), self.batch_size, self.num_workers, train)

    def train_dataloader(self) -> DataLoader:
        """Shuffled, augmented batches of the training split."""
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        """Batches of the validation split; an ``InputError`` when there is none."""
        if "val" not in self.splits:
            raise InputError("no validation crops: add a 'val' split, set val_fraction > 0, "
                             "or for crops of a single sample split by crop "
                             "(data.split_unit=crop or auto)",
                             self.data_dir)
        return self._loader("val", train=False)

    def test_dataloader(self) -> DataLoader:
        """Batches of the test split; an ``InputError`` when there is none."""
        if "test" not in self.splits:
            raise InputError("no test crops in this data", self.data_dir)
        return self._loader("test", train=False)
