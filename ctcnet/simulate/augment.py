"""Training augmentation on raw multichannel counts (C, H, W).

Normalisation lives inside the model, so augmentation sees what a scanner writes: raw counts.
Two stages:

* geometry and optics with albumentations: flips, 90-degree rotations, small shifts / scale /
  rotation, Gaussian blur or defocus, per channel. Albumentations clips float images to [0, 1],
  so each crop is divided by its maximum first and multiplied back afterwards; these operations
  are linear, so the scaling changes nothing else.
* intensities as pure numpy functions on counts, relative to a robust per-channel background
  and noise: spectral bleed-through between random channel pairs (any dye into any filter,
  not only panel neighbours), non-specific CK on CD45+ cells (the CK channel gets a copy of the
  CD45 signal: CK+CD45+ stays a leukocyte), signal gain over 25x and gamma per channel (another
  stain lot or detector), extra noise, a background shift, and an overall scale over 10x.
  The two cross-channel steps keep every label: a leak copies a pattern at a fixed ratio, and
  CK on a CD45+ event never makes it a CTC. They exist so that the network cannot learn the
  simulator's own conventions (which channel leaks into which, how clean leukocytes are).
* optionally (``jpeg_p``, off by default) the crop as an 8-bit RGB-JPEG composite export shows
  it (:func:`ctcnet.simulate.export.as_rgb_jpeg`): clipped highlights, quantisation, JPEG
  blocks and chroma subsampling, the only step that mixes channels, as such files do.
* optionally (``tight_p``, off by default) the crop as a tight single-cell export
  (:func:`ctcnet.simulate.export.tight_export`: cut around the object, auto-contrasted, the
  background clipped to black, sometimes JPEG), brought back to model scale the way every crop
  is (:func:`ctcnet.detect.cropping.to_model_scale`, which pads it with its black background)
  at a pixel size wrong by ``tight_scale_error`` (an export whose pixel size was guessed).

``build_train_augment(AugmentConfig(), roles=panel.roles())`` returns a callable
``crop -> crop`` used by the datamodule; validation and test data are never augmented, except
that a ``view: export`` model's are exported once
(:func:`~ctcnet.simulate.augment_options.export_only`, :func:`exported_once`). The options
live in :mod:`ctcnet.simulate.augment_options`, the numpy steps in
:mod:`ctcnet.simulate.augment_steps`; this module chains them into the training pipeline.
The robustness matrix (``ctcnet.evaluation.matrix``) gives such a model its crops exported the
same way, so this module sits with the simulator, below both training and evaluation.
"""

from __future__ import annotations

import os

import numpy as np

from ctcnet.detect.cropping import background_fill
from ctcnet.simulate.augment_options import AugmentConfig, augment_config, export_only
from ctcnet.simulate.augment_steps import (
    augment_intensities,
    augment_optics_and_export,
    tight_export_view,
)
from ctcnet.simulate.export import as_rgb_jpeg


def build_geometry_transforms(cfg: AugmentConfig, seed: int | None = None):
    """Albumentations pipeline for HWC images in [0, 1]: flips, quarter turns and an affine
    whose border (what a shift, a smaller scale or a turn uncovers) is 0 (see
    :class:`TrainAugment`: it is filled with the crop's background, as inference pads)."""
    # Importing albumentations asks PyPI for a newer version, in every data-loader worker; a
    # lab's training host may be offline or must not call out. A user's own setting wins.
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    import albumentations as A
    import cv2

    steps = []
    if cfg.flips:
        steps += [A.HorizontalFlip(p=0.5), A.VerticalFlip(p=0.5)]
    if cfg.rotate90:
        steps.append(A.RandomRotate90(p=1.0))
    if cfg.affine_p > 0:
        # Not reflected: a mirror doubles a cell at the border (as mirror padding did at
        # inference); not left constant either: a sharp edge the net could learn from.
        steps.append(A.Affine(translate_percent=(-cfg.shift_fraction, cfg.shift_fraction),
                              scale=cfg.scale_range,
                              rotate=(-cfg.rotate_degrees, cfg.rotate_degrees),
                              border_mode=cv2.BORDER_CONSTANT, fill=0.0, p=cfg.affine_p))
    return A.Compose(steps, seed=seed)


def build_blur_transforms(cfg: AugmentConfig, seed: int | None = None):
    """Albumentations pipeline for HWC images in [0, 1]: blur and defocus (per channel), after
    the geometry's uncovered border is filled."""
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    import albumentations as A

    steps = []
    if cfg.blur_p > 0:
        steps.append(A.OneOf([
            A.GaussianBlur(blur_limit=0, sigma_limit=cfg.blur_sigma, p=1.0),
            A.Defocus(radius=cfg.defocus_radius, alias_blur=(0.1, 0.3), p=1.0),
        ], p=cfg.blur_p))
    return A.Compose(steps, seed=None if seed is None else seed + 1)


def fill_uncovered(crop: np.ndarray, covered: np.ndarray) -> np.ndarray:
    """(C, H, W) ``crop`` with the pixels the geometry uncovered (``covered`` (H, W) below 1:
    the affine's border, and the pixels interpolated with it) filled with the crop's own
    background (:func:`ctcnet.detect.cropping.background_fill`, as inference pads)."""
    inside = covered > 0.999
    if inside.all():
        return crop

    return background_fill(crop[None], inside[None])[0]


class TrainAugment:
    """Callable ``(C, H, W) raw counts -> augmented (C, H, W) float32``; picklable for workers."""

    def __init__(self, cfg: AugmentConfig | None = None, seed: int | None = None,
                 roles: tuple[str, ...] | None = None):
        self.cfg = cfg or AugmentConfig()
        self.seed = seed
        self.roles = tuple(roles) if roles else None
        self._geometry = None
        self._blur = None
        self._rng = np.random.default_rng(seed)

    def __getstate__(self):
        # Worker processes rebuild the albumentations pipeline and draw fresh random streams.
        return {"cfg": self.cfg, "seed": self.seed, "roles": self.roles}

    def __setstate__(self, state):
        self.__init__(state["cfg"], state["seed"], state.get("roles"))

    def reseed(self, seed: int) -> None:
        """Give a dataloader worker its own random stream (called from worker_init_fn)."""
        self._rng = np.random.default_rng(seed)
        self._geometry = build_geometry_transforms(self.cfg, seed)
        self._blur = build_blur_transforms(self.cfg, seed)

    def use_stream(self, rng: np.random.Generator) -> None:
        """Draw the intensity and export steps from ``rng`` from now on (the geometry and blur
        pipelines keep their own; :meth:`reseed` rebuilds those too, and costs far more)."""
        self._rng = rng

    def __call__(self, crop: np.ndarray, pixel_ratio: float = 1.0,
                 side: int | None = None) -> np.ndarray:
        """``crop`` augmented; one at finer pixels than the model's (``pixel_ratio`` < 1, the
        model's crop ``side`` given) is always shown as a tight export, the one view that
        brings it to model scale as a microscope export would (the blur's sigma, in pixels,
        is then a smaller blur)."""
        if self._geometry is None:
            self._geometry = build_geometry_transforms(self.cfg, self.seed)
            self._blur = build_blur_transforms(self.cfg, self.seed)
        crop = np.asarray(crop, dtype=np.float32)
        scale = max(float(crop.max()), 1.0)
        hwc = np.ascontiguousarray(crop.transpose(1, 2, 0)) / scale
        # One more plane of ones rides along: where it falls below 1, the geometry uncovered
        # the crop's border, which is then filled with background, never mirrored.
        ones = np.ones(hwc.shape[:2] + (1,), np.float32)
        moved = self._geometry(image=np.concatenate([hwc, ones], axis=2))["image"]
        out = np.ascontiguousarray(moved[..., :-1].transpose(2, 0, 1)) * scale
        out = fill_uncovered(out, moved[..., -1])
        if self.cfg.blur_p > 0:
            hwc = np.ascontiguousarray(out.transpose(1, 2, 0)) / scale
            out = np.ascontiguousarray(self._blur(image=hwc)["image"].transpose(2, 0, 1)) * scale
        out = augment_intensities(out, self.cfg, self._rng, self.roles)
        if max(self.cfg.zoom_p, self.cfg.defocus_p, self.cfg.gradient_p, self.cfg.export_p) > 0:
            out = augment_optics_and_export(out, self.cfg, self._rng)
        if pixel_ratio != 1.0:
            return tight_export_view(out, self.cfg, self._rng, pixel_ratio, side, self.roles)
        # Draw only when asked, so the random stream of other recipes stays as it was.
        if self.cfg.jpeg_p > 0 and self._rng.random() < self.cfg.jpeg_p:
            out = as_rgb_jpeg(out, self._rng, self.cfg.jpeg_quality, self.cfg.jpeg_zoom,
                              self.cfg.jpeg_headroom)
        elif self.cfg.tight_p > 0 and self._rng.random() < self.cfg.tight_p:
            out = tight_export_view(out, self.cfg, self._rng, roles=self.roles)
        return out


def exported_once(crops: np.ndarray, cfg: AugmentConfig | dict | None, seed: int,
                  roles: tuple[str, ...] | None = None) -> np.ndarray:
    """(N, C, H, W) raw crops, each exported once as a ``view: export`` model's validation
    crops are (:func:`export_only` of ``cfg``): float32 in 0..255, the same for the same
    crops and seed.

    Each crop draws from its own stream (``seed``, its position), so a changed copy of the set
    is exported with the same settings crop by crop, whatever the change does to the others:
    the robustness matrix then reads the change, not another export. (Where the change moves
    the object's box, the draws after the noise a finer export adds, one per box pixel, differ.)"""
    augment = build_train_augment(export_only(augment_config(cfg)), seed=seed, roles=roles)
    crops = np.asarray(crops)
    if not len(crops):
        return crops.astype(np.float32)
    out = []
    for i, crop in enumerate(crops):
        augment.use_stream(np.random.default_rng([seed, i]))
        out.append(augment(crop))
    return np.stack(out).astype(np.float32)


def build_train_augment(cfg: AugmentConfig | dict | None = None, seed: int | None = None,
                        roles: tuple[str, ...] | None = None) -> TrainAugment:
    """The training augmentation from a config (dataclass, mapping of overrides, or None);
    ``roles``: the panel's channel roles (``Panel.roles()``), for non-specific CK."""
    return TrainAugment(augment_config(cfg), seed, roles)
