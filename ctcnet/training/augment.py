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

``build_train_augment(AugmentConfig(), roles=panel.roles())`` returns a callable
``crop -> crop`` used by the datamodule; validation and test data are never augmented.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

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
    # Rarely: the simulator already varies noise widely, and fresh noise erases the mirrored
    # noise pattern that marks a cell cut at the frame edge (padded by mirroring).
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
    jpeg_p: float = 0.0               # share of crops shown as 8-bit RGB-JPEG composites
    jpeg_quality: tuple[int, int] = (60, 95)

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
    """Albumentations pipeline for HWC images in [0, 1]: geometry, blur, defocus (per channel)."""
    import albumentations as A
    import cv2

    steps = []
    if cfg.flips:
        steps += [A.HorizontalFlip(p=0.5), A.VerticalFlip(p=0.5)]
    if cfg.rotate90:
        steps.append(A.RandomRotate90(p=1.0))
    if cfg.affine_p > 0:
        # Reflected borders: a constant border would be a sharp edge the net could learn from.
        steps.append(A.Affine(translate_percent=(-cfg.shift_fraction, cfg.shift_fraction),
                              scale=cfg.scale_range,
                              rotate=(-cfg.rotate_degrees, cfg.rotate_degrees),
                              border_mode=cv2.BORDER_REFLECT_101, p=cfg.affine_p))
    if cfg.blur_p > 0:
        steps.append(A.OneOf([
            A.GaussianBlur(blur_limit=0, sigma_limit=cfg.blur_sigma, p=1.0),
            A.Defocus(radius=cfg.defocus_radius, alias_blur=(0.1, 0.3), p=1.0),
        ], p=cfg.blur_p))
    return A.Compose(steps, seed=seed)


class TrainAugment:
    """Callable ``(C, H, W) raw counts -> augmented (C, H, W) float32``; picklable for workers."""

    def __init__(self, cfg: AugmentConfig | None = None, seed: int | None = None,
                 roles: tuple[str, ...] | None = None):
        self.cfg = cfg or AugmentConfig()
        self.seed = seed
        self.roles = tuple(roles) if roles else None
        self._geometry = None
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

    def __call__(self, crop: np.ndarray) -> np.ndarray:
        if self._geometry is None:
            self._geometry = build_geometry_transforms(self.cfg, self.seed)
        crop = np.asarray(crop, dtype=np.float32)
        scale = max(float(crop.max()), 1.0)
        hwc = np.ascontiguousarray(crop.transpose(1, 2, 0)) / scale
        hwc = self._geometry(image=hwc)["image"]
        out = np.ascontiguousarray(hwc.transpose(2, 0, 1)) * scale
        out = augment_intensities(out, self.cfg, self._rng, self.roles)
        # Draw only when asked, so the random stream of other recipes stays as it was.
        if self.cfg.jpeg_p > 0 and self._rng.random() < self.cfg.jpeg_p:
            from ctcnet.simulate.export import as_rgb_jpeg

            out = as_rgb_jpeg(out, self._rng, self.cfg.jpeg_quality)
        return out


def build_train_augment(cfg: AugmentConfig | dict | None = None, seed: int | None = None,
                        roles: tuple[str, ...] | None = None) -> TrainAugment:
    """The training augmentation from a config (dataclass, mapping of overrides, or None);
    ``roles``: the panel's channel roles (``Panel.roles()``), for non-specific CK."""
    if isinstance(cfg, dict):
        cfg = AugmentConfig(**{k: tuple(v) if isinstance(v, list) else v
                               for k, v in cfg.items()})
    return TrainAugment(cfg, seed, roles)
