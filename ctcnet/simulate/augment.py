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
that a ``view: export`` model's are exported once (:func:`export_only`, :func:`exported_once`).
The robustness matrix (``ctcnet.evaluation.matrix``) gives such a model its crops exported the
same way, so this module sits with the simulator, below both training and evaluation.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import asdict, dataclass

import numpy as np
import yaml

from ctcnet.detect.cropping import background_fill, to_model_scale
from ctcnet.errors import InputError
from ctcnet.simulate.export import (
    EXPORT_HEADROOM,
    as_rgb_jpeg,
    decode_jpeg,
    encode_jpeg,
    tight_export,
)

# Standard normal quantile of the 10th percentile: background noise from (median - p10).
_Z10 = 1.2815516


@dataclass
class AugmentConfig:
    """Probabilities and ranges; the defaults suit 64-96 px crops at ~0.64 um/px."""

    flips: bool = True
    rotate90: bool = True
    affine_p: float = 0.5
    shift_fraction: float = 0.06      # of the crop side; cells are detected near the centre
    scale_range: tuple[float, float] = (0.85, 1.15)
    rotate_degrees: float = 20.0
    blur_p: float = 0.25
    blur_sigma: tuple[float, float] = (0.3, 1.5)   # px, on top of the scanner's own PSF
    defocus_radius: tuple[int, int] = (1, 3)
    gain_p: float = 0.5
    gain_range: tuple[float, float] = (0.2, 5.0)   # per-channel signal gain, log-uniform
    gamma_p: float = 0.3
    gamma_range: tuple[float, float] = (0.7, 1.4)
    # Rarely: the simulator already varies noise widely.
    noise_p: float = 0.15
    noise_range: tuple[float, float] = (0.2, 1.0)  # added noise sd, in units of the crop's noise
    offset_p: float = 0.3
    offset_range: tuple[float, float] = (-0.3, 0.5)  # background shift, fraction of background
    scale_p: float = 0.5
    intensity_scale: tuple[float, float] = (0.3, 3.0)  # whole-crop scale, log-uniform (10x)
    # Bleed-through between 1-3 random ordered channel pairs, fraction log-uniform.
    bleed_p: float = 0.5
    bleed_range: tuple[float, float] = (0.003, 0.12)
    # Non-specific CK: CK += ratio x the CD45 signal (needs the panel's roles).
    nonspecific_ck_p: float = 0.3
    nonspecific_ck_ratio: tuple[float, float] = (0.05, 2.0)
    # Non-specific neutrophil marker (CD66b) on other leukocytes: += ratio x CD45 (off by default).
    nonspecific_neutrophil_p: float = 0.0
    jpeg_p: float = 0.0               # share of crops shown as 8-bit RGB-JPEG composites
    jpeg_quality: tuple[int, int] = (60, 95)
    # The export's magnification against the crop (log-uniform; 1: exported at model scale):
    # viewer exports are made at any zoom, and JPEG at a finer pixel size looks different.
    jpeg_zoom: tuple[float, float] = (1.0, 1.0)
    # The export's display maximum over the crop's own bright end (log-uniform): a sample's
    # export is ranged for its brightest events, so most crops sit far below 255.
    jpeg_headroom: tuple[float, float] = EXPORT_HEADROOM
    # Optics on the signal only (background and camera noise stay, as a scanner makes them):
    # objects ``zoom`` times as large (a scanner of another pixel size, not resampled; log-
    # uniform) and defocus (a further Gaussian of ``sigma`` px). Off by default.
    zoom_p: float = 0.0
    zoom_range: tuple[float, float] = (0.6, 2.1)
    defocus_p: float = 0.0
    defocus_sigma: tuple[float, float] = (0.5, 3.5)
    # 8-bit display export of every channel (off by default): per channel a floor of 0-3 noise
    # sd below background maps to 0 and a ceiling ``export_ceiling`` noise sd above it
    # (log-uniform) to 255, brighter highlights clip; a share of those crops is also saved as
    # lossy JPEG composites of channel triples (random quality and chroma subsampling).
    # Uneven illumination (off by default): a linear ramp in a random direction, zero at the
    # centre, ``gradient_range`` x the background from edge to edge.
    gradient_p: float = 0.0
    gradient_range: tuple[float, float] = (0.05, 0.6)
    export_p: float = 0.0
    export_ceiling: tuple[float, float] = (10.0, 800.0)
    export_jpeg_share: float = 0.5
    export_quality: tuple[int, int] = (40, 95)
    # Tight single-cell exports (off by default): a share of crops cut around the object,
    # auto-contrasted with a black background, JPEG-saved for ``tight_jpeg_share`` of them,
    # and read back at a scale off by a log-uniform factor in ``tight_scale_error``.
    tight_p: float = 0.0
    tight_jpeg_share: float = 0.5
    tight_scale_error: tuple[float, float] = (0.5, 2.0)
    # The export's pixel size as a fraction of the crop's (log-uniform: 1 to 4x finer), so
    # its display range clips noise at the export's finer pixels (ctcnet.simulate.export).
    tight_fine: tuple[float, float] = (1.0, 4.0)
    # The marker channels' display ranges tied (``TIGHT_MARKER_SPAN`` of
    # ctcnet.simulate.export), as the test exports tie them and published figures show a leak:
    # a bright CTC's CK bleeding into CD45 stays faint instead of being stretched into a CD45
    # that a network would learn to ignore. Needs the panel's roles; False stretches each
    # channel alone (the shipped export models' training).
    tight_tied_markers: bool = True

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def background_and_noise(crop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel robust background (median) and noise sd ((median - p10) / z) of a crop."""
    # Every second pixel in each direction and a partial sort: far cheaper than np.percentile.
    flat = crop[:, ::2, ::2].reshape(crop.shape[0], -1)
    k10, k50 = (flat.shape[1] - 1) // 10, (flat.shape[1] - 1) // 2
    part = np.partition(flat, (k10, k50), axis=1)
    p10, p50 = part[:, k10], part[:, k50]
    return p50, np.maximum((p50 - p10) / _Z10, 0.5)


def adjust_signal(crop: np.ndarray, gain: np.ndarray, gamma: np.ndarray,
                  background: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """Scale and gamma-bend the signal above background per channel; background noise stays.

    The signal is what exceeds background by 2 noise sd; gamma is taken relative to the
    channel's peak signal so the peak stays put and only the shape of the response changes.
    """
    b = background[:, None, None]
    signal = np.maximum(crop - b - 2.0 * noise[:, None, None], 0.0)
    peak = np.maximum(signal.reshape(len(signal), -1).max(axis=1), 1e-6)[:, None, None]
    bent = peak * (signal / peak) ** gamma[:, None, None]
    return crop + gain[:, None, None] * bent - signal


def signal_above_background(crop: np.ndarray, background: np.ndarray,
                            noise: np.ndarray) -> np.ndarray:
    """Per-channel signal: what exceeds background by 2 noise sd (background noise excluded)."""
    return np.maximum(crop - background[:, None, None] - 2.0 * noise[:, None, None], 0.0)


def leak(crop: np.ndarray, signal: np.ndarray, source: int, target: int,
         fraction: float) -> np.ndarray:
    """Add ``fraction`` of channel ``source``'s signal to channel ``target`` (a copy)."""
    out = crop.copy()
    out[target] += fraction * signal[source]
    return out


def add_noise(crop: np.ndarray, sd: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Add Gaussian noise with per-channel sd (counts), keeping counts non-negative."""
    noisy = crop + rng.standard_normal(crop.shape, dtype=np.float32) * sd[:, None, None]
    return np.maximum(noisy, 0.0)


def smooth_signal(crop: np.ndarray, background: np.ndarray) -> np.ndarray:
    """The stain signal for optics: the crop smoothed by 1 px above its background (the
    matrix's definition, ``evaluation.perturb.split_signal``); what is left is camera noise."""
    return np.maximum(_gaussian(crop, 1.0) - background[:, None, None], 0.0)


def _gaussian(planes: np.ndarray, sigma: float) -> np.ndarray:
    """Each (H, W) plane blurred by a Gaussian of ``sigma`` px (reflected borders, OpenCV:
    an order of magnitude faster than scipy on 80 px crops)."""
    import cv2

    return np.stack([cv2.GaussianBlur(np.ascontiguousarray(p, np.float32), (0, 0), sigma,
                                      borderType=cv2.BORDER_REFLECT_101) for p in planes])


def zoom_signal(crop: np.ndarray, signal: np.ndarray, zoom: float) -> np.ndarray:
    """Objects ``zoom`` times as large about the crop centre: the signal rescaled (bilinear,
    zero outside), background and noise kept (a scanner of another pixel size whose crops were
    not resampled)."""
    import cv2

    c, h, w = crop.shape
    cy, cx = (h - 1) / 2, (w - 1) / 2
    warp = np.array([[zoom, 0.0, cx - zoom * cx], [0.0, zoom, cy - zoom * cy]])
    scaled = np.stack([cv2.warpAffine(np.ascontiguousarray(ch, np.float32), warp, (w, h),
                                      flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
                       for ch in signal])
    return crop - signal + scaled


def blur_signal(crop: np.ndarray, signal: np.ndarray, sigma: float) -> np.ndarray:
    """Defocus: the signal blurred by a further Gaussian of ``sigma`` px, noise kept."""
    return crop - signal + _gaussian(signal, sigma)


def gradient(crop: np.ndarray, background: np.ndarray, factor: float,
             angle: float) -> np.ndarray:
    """A linear background ramp in direction ``angle``, zero at the centre, ``factor`` x the
    channel's background from one edge to the other (vignetting, a bright neighbour's glow)."""
    _, h, w = crop.shape
    yy = (np.arange(h, dtype=np.float32) - (h - 1) / 2) / max(h - 1, 1)
    xx = (np.arange(w, dtype=np.float32) - (w - 1) / 2) / max(w - 1, 1)
    ramp = np.cos(angle) * xx[None, :] + np.sin(angle) * yy[:, None]
    return np.maximum(crop + factor * background[:, None, None] * ramp[None], 0.0)


def display_export(crop: np.ndarray, background: np.ndarray, noise: np.ndarray,
                   floor_sd: np.ndarray, ceiling_sd: np.ndarray) -> np.ndarray:
    """An 8-bit display export: per channel, ``background - floor_sd * noise`` maps to 0 and
    ``background + ceiling_sd * noise`` to 255; rounded, darker and brighter pixels clipped."""
    low = (background - floor_sd * noise)[:, None, None]
    high = (background + ceiling_sd * noise)[:, None, None]
    scaled = (crop - low) * (255.0 / np.maximum(high - low, 1e-6))
    return np.clip(np.rint(scaled), 0.0, 255.0)


def jpeg_channels(crop8: np.ndarray, rng: np.random.Generator,
                  quality: tuple[int, int]) -> np.ndarray:
    """An 8-bit (C, H, W) crop saved as RGB JPEG composites of random channel triples (a last
    short triple padded with zeros), one quality and chroma subsampling per crop, read back."""
    c = crop8.shape[0]
    order = rng.permutation(c)
    q = int(rng.integers(quality[0], quality[1] + 1))
    sub = int(rng.choice([0, 1, 2, 2]))  # 4:2:0 is what most cameras and viewers write
    out = np.array(crop8, np.float32)
    for k in range(0, c, 3):
        group = order[k:k + 3]
        rgb = np.zeros(crop8.shape[1:] + (3,), np.uint8)
        rgb[..., :len(group)] = np.moveaxis(crop8[group], 0, -1).astype(np.uint8)
        out[group] = np.moveaxis(decode_jpeg(encode_jpeg(rgb, q, sub))[..., :len(group)], -1, 0)
    return out


def augment_optics_and_export(crop: np.ndarray, cfg: AugmentConfig,
                              rng: np.random.Generator) -> np.ndarray:
    """The optics (zoom, defocus; on the signal), illumination gradient and 8-bit/JPEG export
    stage on raw counts."""
    zoom, blur = rng.random() < cfg.zoom_p, rng.random() < cfg.defocus_p
    if zoom or blur:
        background, noise = background_and_noise(crop)
        signal = smooth_signal(crop, background)
        if zoom:
            crop = zoom_signal(crop, signal, float(_log_uniform(rng, cfg.zoom_range)))
            signal = smooth_signal(crop, background)
        if blur:
            crop = blur_signal(crop, signal, float(rng.uniform(*cfg.defocus_sigma)))
    if cfg.gradient_p > 0 and rng.random() < cfg.gradient_p:
        crop = gradient(crop, background_and_noise(crop)[0], float(rng.uniform(
            *cfg.gradient_range)), float(rng.uniform(0, 2 * np.pi)))
    if cfg.export_p > 0 and rng.random() < cfg.export_p:
        c = crop.shape[0]
        background, noise = background_and_noise(crop)
        crop = display_export(crop, background, noise, rng.uniform(0.0, 3.0, c),
                              _log_uniform(rng, cfg.export_ceiling, c))
        if rng.random() < cfg.export_jpeg_share:
            crop = jpeg_channels(crop, rng, cfg.export_quality)
    return crop.astype(np.float32, copy=False)


def tight_export_view(crop: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator,
                      pixel_ratio: float = 1.0, side: int | None = None,
                      roles: tuple[str, ...] | None = None) -> np.ndarray:
    """A raw (C, H, W) crop as a tight single-cell export shows it, back at model scale
    (float32 (C, side, side) in 0..255, the margin black): see ``tight_p`` in
    :class:`AugmentConfig`. ``pixel_ratio``: the crop's pixel size over the model's (below 1
    for a cell rendered at finer pixels, ``simulate.fine`` of the data module); ``side``: the
    model's crop side (default: the crop's own, for a crop at model scale); ``roles``: the
    panel's channel roles, whose marker channels (all but the nucleus) have their display
    ranges tied (``tight_tied_markers``)."""
    fine = float(_log_uniform(rng, cfg.tight_fine))
    markers = [role != "nucleus" for role in roles] \
        if cfg.tight_tied_markers and roles else None
    shown = tight_export(crop, rng, fine=fine, markers=markers).astype(np.float32)
    if rng.random() < cfg.tight_jpeg_share:
        shown = jpeg_channels(shown, rng, cfg.export_quality)
    scale = float(_log_uniform(rng, cfg.tight_scale_error))
    back = to_model_scale(shown[None], scale * pixel_ratio / fine, 1.0,
                          side or crop.shape[-1])[0][0]
    return np.clip(back, 0.0, 255.0)


def _log_uniform(rng: np.random.Generator, bounds, size=None) -> np.ndarray:
    lo, hi = np.log(bounds[0]), np.log(bounds[1])
    return np.exp(rng.uniform(lo, hi, size))


def augment_intensities(crop: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator,
                        roles: tuple[str, ...] | None = None) -> np.ndarray:
    """The intensity stage on one raw (C, H, W) float32 crop; ``roles`` (the panel's channel
    roles) enables non-specific CK, which needs to know the CK and CD45 channels."""
    c = crop.shape[0]
    background, noise = background_and_noise(crop)
    if c > 1 and (rng.random() < cfg.bleed_p or
                  (roles and rng.random() < cfg.nonspecific_ck_p)):
        signal = signal_above_background(crop, background, noise)
        if roles and "epithelial" in roles and "leukocyte" in roles and \
                rng.random() < cfg.nonspecific_ck_p:
            crop = leak(crop, signal, roles.index("leukocyte"), roles.index("epithelial"),
                        float(_log_uniform(rng, cfg.nonspecific_ck_ratio)))
        if cfg.nonspecific_neutrophil_p > 0 and roles and "neutrophil" in roles and \
                "leukocyte" in roles and rng.random() < cfg.nonspecific_neutrophil_p:
            crop = leak(crop, signal, roles.index("leukocyte"), roles.index("neutrophil"),
                        float(_log_uniform(rng, cfg.nonspecific_ck_ratio)))
        if rng.random() < cfg.bleed_p:
            for _ in range(int(rng.integers(1, 4))):
                source, target = rng.choice(c, 2, replace=False)
                crop = leak(crop, signal, int(source), int(target),
                            float(_log_uniform(rng, cfg.bleed_range)))
    gain = _log_uniform(rng, cfg.gain_range, c) if rng.random() < cfg.gain_p else np.ones(c)
    gamma = (rng.uniform(*cfg.gamma_range, c) if rng.random() < cfg.gamma_p else np.ones(c))
    out = crop
    if (gain != 1).any() or (gamma != 1).any():
        out = adjust_signal(out, gain, gamma, background, noise)
    if rng.random() < cfg.noise_p:
        out = add_noise(out, noise * rng.uniform(*cfg.noise_range, c), rng)
    if rng.random() < cfg.offset_p:
        out = np.maximum(out + (rng.uniform(*cfg.offset_range, c) * background)[:, None, None],
                         0.0)
    if rng.random() < cfg.scale_p:
        out = out * _log_uniform(rng, cfg.intensity_scale)
    return out.astype(np.float32, copy=False)


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


def augment_config(cfg: AugmentConfig | dict | None = None) -> AugmentConfig:
    """An :class:`AugmentConfig` from a mapping of overrides, each value brought to its
    option's type. A dotted command-line override arrives as text
    (``--data.augment.nonspecific_ck_p=0.45`` is the string ``'0.45'``), which would fail only
    later, in a data-loader worker, after the training data were made; an unknown option or a
    value of the wrong kind is refused here, by name."""
    if cfg is None or isinstance(cfg, AugmentConfig):
        return cfg or AugmentConfig()
    if not isinstance(cfg, dict):
        raise InputError(f"data.augment must be a mapping of options or false, got {cfg!r}")
    defaults = AugmentConfig()
    known = [f.name for f in dataclasses.fields(AugmentConfig)]
    unknown = sorted(set(cfg) - set(known))
    if unknown:
        raise InputError(f"data.augment: unknown option(s) {', '.join(unknown)} (known: "
                         f"{', '.join(known)})")
    return AugmentConfig(**{name: _as_type_of(getattr(defaults, name), value, name)
                            for name, value in cfg.items()})


# The steps that make a crop an export; every other step is an optics or stain shift.
EXPORT_STEPS = ("jpeg_p", "tight_p")


def export_only(cfg: AugmentConfig) -> AugmentConfig:
    """``cfg`` with only its export steps left (``EXPORT_STEPS``, with their ranges): the
    view a ``view: export`` model's validation and test crops get, as deployment shows them,
    not as training perturbs them. Flips, turns and every other step are off."""
    off = {f.name: 0.0 for f in dataclasses.fields(AugmentConfig)
           if f.name.endswith("_p") and f.name not in EXPORT_STEPS}
    return dataclasses.replace(cfg, flips=False, rotate90=False, **off)


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


def _as_type_of(default, value, name: str):
    """``value`` (a number, a list, or their text) as the type of ``default``."""
    try:
        return _converted(default, yaml.safe_load(value) if isinstance(value, str) else value)
    except (TypeError, ValueError):
        kind = f"{len(default)} numbers" if isinstance(default, tuple) else \
            type(default).__name__
        raise InputError(f"data.augment.{name}: expected {kind} (like {default!r}), got "
                         f"{value!r}") from None


def _converted(default, value):
    # '0.45' -> 0.45, '[0.1, 3]' -> (0.1, 3.0), 'false' -> False (text parsed as YAML first)
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ValueError(value)
        return value
    if isinstance(default, tuple):
        if not isinstance(value, (list, tuple)) or len(value) != len(default):
            raise ValueError(value)
        return tuple(_converted(d, v) for d, v in zip(default, value))
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(default, int):
        if float(value) != int(value):
            raise ValueError(value)
        return int(value)
    return float(value)


def build_train_augment(cfg: AugmentConfig | dict | None = None, seed: int | None = None,
                        roles: tuple[str, ...] | None = None) -> TrainAugment:
    """The training augmentation from a config (dataclass, mapping of overrides, or None);
    ``roles``: the panel's channel roles (``Panel.roles()``), for non-specific CK."""
    return TrainAugment(augment_config(cfg), seed, roles)
