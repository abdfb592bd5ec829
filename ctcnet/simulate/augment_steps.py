"""The augmentation's steps on one raw (C, H, W) crop, as pure numpy functions on counts.

Intensities (:func:`augment_intensities`) are changed relative to a robust per-channel
background and noise (:func:`background_and_noise`): leaks between channels, gain and gamma
of the signal, extra noise, a background shift, an overall scale. Optics and export
(:func:`augment_optics_and_export`) act on the signal only (zoom, defocus), add an illumination
gradient, or show the crop as an 8-bit display export; :func:`tight_export_view` shows it as a
tight single-cell export brought back to model scale. :mod:`ctcnet.simulate.augment` chains
them after the geometry.
"""

from __future__ import annotations

import numpy as np

from ctcnet.core import robust
from ctcnet.detect.cropping import to_model_scale
from ctcnet.simulate.augment_options import AugmentConfig
from ctcnet.simulate.export import decode_jpeg, encode_jpeg, tight_export, with_ck_copy


def background_and_noise(crop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel robust background (median) and noise sd ((median - p10) / z) of a crop, on
    every second pixel in each direction (:func:`ctcnet.core.robust.background_and_noise`)."""
    # The 10th and 50th percentiles at numpy's ``lower`` ranks, not the model's 10th/30th at
    # the nearest: the crops every shipped model was trained on were augmented with these.
    flat = crop[:, ::2, ::2].reshape(crop.shape[0], -1)
    return robust.background_and_noise(flat, "lower", 0.5, qs=(10, 50))


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
    """The stain signal for optics: the crop smoothed by 1 px above its background; what is
    left is camera noise. The robustness matrix splits a crop the same way
    (``evaluation.perturb.split_signal``) but above the crop's median and with scipy's
    borders, batched: the two differ at a crop's edge and by the background read."""
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
    if cfg.tight_ck_copy_p > 0 and roles and rng.random() < cfg.tight_ck_copy_p:
        shown = with_ck_copy(shown, roles, float(rng.uniform(*cfg.tight_ck_copy_share)))
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
    # Drawn only when asked for, so that the random streams of every other recipe stay as
    # they were.
    if cfg.ck_copy_p > 0 and roles and "epithelial" in roles and "leukocyte" in roles and \
            rng.random() < cfg.ck_copy_p:
        signal = signal_above_background(crop, background, noise)
        crop = leak(crop, signal, roles.index("epithelial"), roles.index("leukocyte"),
                    float(rng.uniform(*cfg.ck_copy_share)))
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
