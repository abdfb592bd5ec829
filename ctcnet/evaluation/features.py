"""Segmentation of a crop's central object and per-channel intensity and shape features.

What the classical baselines (the CellSearch-style marker gate and the feature classifier) see,
computed for a whole batch (N, C, H, W) of raw counts at once:

1. per crop and channel, a robust background and noise (10th / 30th percentile, like the
   model's own normalisation) turn counts into signal-to-noise units, so features do not depend
   on the scanner's gain or offset;
2. a light Gaussian blur, then "object" = any channel above ``threshold`` (in blurred SNR), and
   the central object = the connected component nearest the crop centre (a cluster of touching
   cells is one object, as CellSearch sees it);
3. per channel: mean, 90th percentile and integrated signal inside the object, the area above
   threshold inside the object and in the whole crop; shape: object area, equivalent diameter,
   elongation, distance from the centre, number of objects in the crop, number of nuclear
   fragments, and the share of the nucleus covered by epithelial (CK) signal.

Areas and lengths are in micrometres, from the panel's pixel size. Channel roles come from the
panel: features are named ``<CHANNEL>_<feature>`` and the gate asks the panel which channel is
the nucleus, the epithelial marker or the leukocyte marker.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import ndimage

from ctcnet.core.robust import background_and_noise
from ctcnet.io.panel import Panel

# Blur sigma (px) before thresholding: about the PSF, it averages shot noise without merging
# neighbouring cells.
SMOOTH_SIGMA_PX = 1.0
# Blurred SNR above which a pixel belongs to an object. After a sigma-1 blur the noise is ~0.28
# of the raw noise, so 1.5 is ~5 noise units of the blurred image: few false pixels.
OBJECT_THRESHOLD = 1.5
# Components smaller than this (um^2) are noise specks, not objects (a platelet is ~5 um^2).
MIN_OBJECT_AREA_UM2 = 1.5
NOISE_FLOOR = 0.5

# Structure that connects pixels within one crop but never across the batch axis.
_PLANE_CONNECTIVITY = np.zeros((3, 3, 3), bool)
_PLANE_CONNECTIVITY[1] = ndimage.generate_binary_structure(2, 1)


def robust_background(crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per crop and channel background level and noise (N, C), from the 10th and 30th
    percentiles of every second pixel (:func:`ctcnet.core.robust.background_and_noise`)."""
    n, c = crops.shape[:2]
    sample = crops[:, :, ::2, ::2].reshape(n, c, -1).astype(np.float32)
    return background_and_noise(sample, "linear", NOISE_FLOOR)


def signal_to_noise(crops: np.ndarray) -> np.ndarray:
    """Raw counts (N, C, H, W) -> background-free signal in noise units, float32."""
    background, noise = robust_background(crops)
    return ((crops - background[..., None, None]) / noise[..., None, None]).astype(np.float32)


def smooth(snr: np.ndarray, sigma: float = SMOOTH_SIGMA_PX) -> np.ndarray:
    """Gaussian blur over the two image axes only."""
    return ndimage.gaussian_filter(snr, sigma=(0,) * (snr.ndim - 2) + (sigma, sigma))


def label_planes(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """Connected components of an (N, H, W) mask, never joining two crops."""
    return ndimage.label(mask, structure=_PLANE_CONNECTIVITY)


def components_per_crop(labels: np.ndarray, count: int, min_pixels: int) -> np.ndarray:
    """How many components of at least ``min_pixels`` each crop of (N, H, W) labels holds."""
    n = labels.shape[0]
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    crop_of = np.zeros(count + 1, np.int64)
    flat = labels.reshape(n, -1)
    crop_of[flat] = np.arange(n)[:, None]
    big = (sizes >= min_pixels) & (np.arange(count + 1) > 0)
    return np.bincount(crop_of[big], minlength=n)


def central_object(foreground: np.ndarray, min_pixels: int = 1
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Mask (N, H, W) of the component nearest each crop's centre, and objects per crop."""
    n, h, w = foreground.shape
    labels, count = label_planes(foreground)
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    # Drop specks, so a noise pixel at the centre never wins over the cell beside it.
    keep = labels * (sizes[labels] >= min_pixels)
    yy, xx = np.mgrid[:h, :w]
    dist = np.hypot(yy - (h - 1) / 2, xx - (w - 1) / 2)
    masked = np.where(keep > 0, dist[None], np.inf).reshape(n, -1)
    nearest = masked.argmin(axis=1)
    chosen = keep.reshape(n, -1)[np.arange(n), nearest]  # 0 where a crop has no object
    mask = (keep == chosen[:, None, None]) & (chosen[:, None, None] > 0)
    return mask, components_per_crop(keep, count, min_pixels)


def _masked_percentile90(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """90th percentile of (N, C, P) values where the (N, 1, P) mask is set; 0 for empty masks."""
    filled = np.where(mask, values, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: crops without object
        out = np.nanpercentile(filled, 90, axis=-1)
    return np.nan_to_num(out, nan=0.0)


def _shape_moments(mask: np.ndarray, px_um: float) -> tuple[np.ndarray, np.ndarray]:
    """Elongation (major/minor axis) and centroid distance from the centre (um) of (N, H, W)."""
    n, h, w = mask.shape
    yy, xx = np.mgrid[:h, :w].astype(np.float64)
    m = mask.astype(np.float64)
    area = np.maximum(m.sum(axis=(1, 2)), 1.0)
    cy = (m * yy).sum(axis=(1, 2)) / area
    cx = (m * xx).sum(axis=(1, 2)) / area
    dy, dx = yy[None] - cy[:, None, None], xx[None] - cx[:, None, None]
    syy = (m * dy * dy).sum(axis=(1, 2)) / area
    sxx = (m * dx * dx).sum(axis=(1, 2)) / area
    sxy = (m * dx * dy).sum(axis=(1, 2)) / area
    spread = np.sqrt(((syy - sxx) / 2) ** 2 + sxy ** 2)
    major = (syy + sxx) / 2 + spread
    minor = np.maximum((syy + sxx) / 2 - spread, 1e-3)
    found = mask.any(axis=(1, 2))
    elongation = np.where(found, np.sqrt(major / minor), 1.0)
    # No object has no offset (its centroid, (0, 0) by default, read as one at the corner).
    offset = np.where(found, np.hypot(cy - (h - 1) / 2, cx - (w - 1) / 2) * px_um, 0.0)
    return elongation, offset


# Crops whose features are computed at once: a crop's features are its own, and the arrays
# made on the way are several copies of every crop (4 GB for 8,000 crops taken at once, 0.3 GB
# for 512).
FEATURE_CHUNK = 512


def crop_features(crops: np.ndarray, panel: Panel,
                  threshold: float = OBJECT_THRESHOLD) -> dict[str, np.ndarray]:
    """Features of every crop of a (N, C, H, W) raw-count batch: {name: (N,) float array},
    ``FEATURE_CHUNK`` crops at a time."""
    parts = [_chunk_features(crops[start:start + FEATURE_CHUNK], panel, threshold)
             for start in range(0, max(len(crops), 1), FEATURE_CHUNK)]
    return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}


def _chunk_features(crops: np.ndarray, panel: Panel, threshold: float
                    ) -> dict[str, np.ndarray]:
    crops = np.asarray(crops, dtype=np.float32)
    if crops.ndim != 4 or crops.shape[1] != panel.num_channels:
        raise ValueError(f"expected (N, {panel.num_channels}, H, W) crops, got {crops.shape}")
    n, c = crops.shape[:2]
    px_um = float(panel.pixel_size_um)
    px_area = px_um * px_um
    min_pixels = max(1, int(round(MIN_OBJECT_AREA_UM2 / px_area)))

    blurred = smooth(signal_to_noise(crops))
    positive = blurred > threshold                                  # (N, C, H, W)
    obj, objects_in_crop = central_object(positive.any(axis=1), min_pixels)

    flat = blurred.reshape(n, c, -1)
    flat_obj = obj.reshape(n, 1, -1)
    flat_pos = positive.reshape(n, c, -1)
    obj_pixels = flat_obj.sum(axis=-1)                              # (N, 1)
    inside = np.where(flat_obj, flat, 0.0)

    feats: dict[str, np.ndarray] = {}
    per_channel = {
        "mean": inside.sum(axis=-1) / np.maximum(obj_pixels, 1),
        "p90": _masked_percentile90(flat, flat_obj),
        "integrated": np.log1p(np.maximum(inside, 0).sum(axis=-1) * px_area),
        "pos_area": (flat_pos & flat_obj).sum(axis=-1) * px_area,
        "crop_pos_area": flat_pos.sum(axis=-1) * px_area,
    }
    for name, values in per_channel.items():
        for ci, channel in enumerate(panel.names):
            feats[f"{channel}_{name}"] = values[:, ci].astype(np.float32)

    area = obj_pixels[:, 0] * px_area
    elongation, offset = _shape_moments(obj, px_um)
    feats["area_um2"] = area
    feats["diameter_um"] = 2.0 * np.sqrt(area / np.pi)
    feats["elongation"] = elongation
    feats["centre_offset_um"] = offset
    feats["objects_in_crop"] = objects_in_crop.astype(np.float32)

    nucleus = panel.index_of_role("nucleus")
    epithelial = panel.index_of_role("epithelial")
    fragments = np.zeros(n)
    covered = np.zeros(n)
    if nucleus is not None:
        nuc_mask = positive[:, nucleus] & obj
        labels, count = label_planes(nuc_mask)
        fragments = components_per_crop(labels, count, min_pixels)
        if epithelial is not None:
            # CellSearch wants the nucleus mostly inside the cytoplasm: share of nuclear pixels
            # that also carry epithelial signal.
            both = (nuc_mask & positive[:, epithelial]).sum(axis=(1, 2))
            covered = both / np.maximum(nuc_mask.sum(axis=(1, 2)), 1)
    feats["nucleus_fragments"] = fragments.astype(np.float32)
    feats["nucleus_in_epithelial"] = covered.astype(np.float32)
    return {k: np.asarray(v, dtype=np.float32) for k, v in feats.items()}


def feature_matrix(features: dict[str, np.ndarray]) -> tuple[np.ndarray, list[str]]:
    """Stack a feature dict into (N, F) float32 with its column names (sorted, stable order)."""
    names = sorted(features)
    return np.stack([features[k] for k in names], axis=1).astype(np.float32), names


def role_feature(features: dict[str, np.ndarray], panel: Panel, role: str,
                 name: str) -> np.ndarray | None:
    """The feature ``name`` of the panel's channel with ``role``, or None if it lacks one."""
    index = panel.index_of_role(role)
    return None if index is None else features[f"{panel.names[index]}_{name}"]
