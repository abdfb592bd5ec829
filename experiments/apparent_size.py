"""How large a recipe's training views show cells, against the tight export family.

A network learns how large a cell looks at its own scale from its training views. If those
views show cells larger than a real export read at its stated pixel size does, the network
scores best on such exports when told a larger pixel size than the true one
(``ctcnet-core3-export`` on the tight family, best at 1.2-1.3x the stated size).

This script measures that gap without a network. The same simulated cells (one seed, one
draw of every cell, in micrometres) are
- rendered at the recipe's pixel size and put through its training augmentation with the
  tight-export step on every crop (``tight_p`` 1, ``jpeg_p`` 0: the whole-sample JPEG views
  are ranged differently) and its intensity steps off (gain, gamma, noise, offset, bleed,
  non-specific CK: they move how much of a cell clears the display's black point, not how
  large it is; measured apart, in the last line);
- rendered at the family's pixel size (``TIGHT_RENDER_PIXEL_UM``), exported tight
  (:func:`ctcnet.simulate.export.tight_export`) and brought to model scale at their true
  pixel size, as ``ctcnet`` reads an export whose pixel size is given.

Each view's apparent size is the square root of its area (model pixels) at or over 10 % of
white (25 of 255), in the nucleus channel and in the marker that defines the class (CK for a
CTC, CD45 for a leukocyte). Printed: the median per class and channel, and the ratio of the
training views to the family (1.00: the network learns cells at the size it is shown them).
Also, for each named augmentation step, the ratio with that step switched off (each row
draws its augmentation anew: at 200 cells a class one row's medians move by a few percent, so
read a single step's row with that in mind; all of them off together is the clearer test).

    python experiments/apparent_size.py [--config configs/core3-export.yaml] [--per-class 300]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHOWN = 25.0  # of 255: 10 % of white
# (class, role of the marker that defines it)
DEFINING = (("ctc", "epithelial"), ("wbc", "leukocyte"))
# The intensity steps, off in the views measured (see the module docstring).
INTENSITY_OFF = {"gain_p": 0.0, "gamma_p": 0.0, "noise_p": 0.0, "offset_p": 0.0,
                 "scale_p": 0.0, "bleed_p": 0.0, "nonspecific_ck_p": 0.0}
# Steps switched off one at a time, to tell which enlarges the views.
STEPS_OFF = {"no extra blur": {"blur_p": 0.0}, "no affine": {"affine_p": 0.0},
             "export at crop pixels (tight_fine 1)": {"tight_fine": (1.0, 1.0)},
             "no scale error": {"tight_scale_error": (1.0, 1.0)},
             "all of these off": {"blur_p": 0.0, "affine_p": 0.0, "tight_fine": (1.0, 1.0),
                                  "tight_scale_error": (1.0, 1.0)}}


def apparent_sizes(views: np.ndarray, labels, roles: list[str]) -> dict:
    """Median sqrt(area >= SHOWN) per (class, channel role) of (N, C, H, W) views in 0..255."""
    labels = np.asarray(labels)
    side = np.sqrt((np.asarray(views) >= SHOWN).sum(axis=(2, 3)))  # (N, C)
    out = {}
    for cls, marker in DEFINING:
        rows = labels == cls
        for role in ("nucleus", marker):
            out[f"{cls}/{role}"] = float(np.median(side[rows, roles.index(role)]))
    return out


def training_views(batch, augment_cfg, roles, seed: int) -> np.ndarray:
    from ctcnet.simulate.augment import build_train_augment

    augment = build_train_augment(augment_cfg, seed=seed, roles=tuple(roles))
    return np.stack([augment(crop) for crop in batch.images])


def family_views(batch, model_pixel_um: float, crop_size: int, seed: int) -> np.ndarray:
    from ctcnet.detect.cropping import to_model_scale
    from ctcnet.simulate.export import tight_export

    rng = np.random.default_rng(seed)
    views = []
    for crop, pixel_um in zip(batch.images, batch.pixel_size_um):
        shown = tight_export(crop, rng).astype(np.float32)
        views.append(to_model_scale(shown[None], float(pixel_um), model_pixel_um,
                                    crop_size)[0][0])
    return np.stack(views)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "core3-export.yaml")
    parser.add_argument("--per-class", type=int, default=300)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args(argv)

    from ctcnet.io.panel import Panel
    from ctcnet.simulate.augment_options import augment_config
    from ctcnet.simulate.crops import simulate_crops
    from ctcnet.simulate.export import tight_rendering

    data = yaml.safe_load(args.config.read_text())["data"]
    panel = Panel.from_dict(data["panel"])
    crop_size = int(data["crop_size"])
    roles = panel.roles()
    counts = {cls: args.per_class for cls, _ in DEFINING}
    # One seed for both renderings: the same cells, drawn in micrometres.
    model_batch = simulate_crops(counts, panel, crop_size=crop_size, seed=args.seed,
                                 num_samples=32)
    fine_panel, fine_side, _ = tight_rendering(panel, crop_size)  # its cells: a scan's optics
    fine_batch = simulate_crops(counts, fine_panel, crop_size=fine_side, seed=args.seed,
                                num_samples=32)
    family = apparent_sizes(family_views(fine_batch, panel.pixel_size_um, crop_size, args.seed),
                            fine_batch.labels, roles)
    recipe = augment_config(data.get("augment") or {})
    views = dataclasses.replace(recipe, jpeg_p=0.0, tight_p=1.0, **INTENSITY_OFF)
    print(f"{args.config.name}: apparent size (sqrt of the area >= {SHOWN:g}/255, model px), "
          f"median of {args.per_class} cells a class")
    keys = list(family)
    print(f"{'views':40s} " + " ".join(f"{k:>16s}" for k in keys))
    print(f"{'tight family, pixel size given':40s} " +
          " ".join(f"{family[k]:16.2f}" for k in keys))
    steps = {"training views (geometry, export)": {}, **STEPS_OFF,
             "intensity steps on (as trained)": {k: getattr(recipe, k) for k in INTENSITY_OFF}}
    for name, change in steps.items():
        sizes = apparent_sizes(training_views(model_batch, dataclasses.replace(views, **change),
                                              roles, args.seed), model_batch.labels, roles)
        print(f"{name:40s} " + " ".join(f"{sizes[k]:8.2f} ({sizes[k] / family[k]:.2f}x)"
                                         for k in keys))
    pixel_ratio = np.exp(np.mean(np.log(model_batch.pixel_size_um / panel.pixel_size_um)))
    print(f"simulated pixel size over the panel's (geometric mean): {pixel_ratio:.3f} "
          f"(the recipe's crops are not resampled to the panel's pixel size)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
