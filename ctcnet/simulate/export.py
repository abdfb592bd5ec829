"""Simulated crops written as what much labelled CTC imagery in the wild looks like: 8-bit RGB
composite JPEGs, one marker per colour plane, lossy, with clipped highlights, at a viewer's
magnification.

Raw counts become 8-bit with one display setting per simulated sample and channel (as a viewer
session or a publication figure would use: background at 0, a display maximum that clips the
brightest objects), the named markers go to R, G and B, the image is resized to the export's
pixel size and saved as JPEG at a quality drawn per crop, with 4:4:4, 4:2:2 or 4:2:0 chroma
subsampling. The result is an ordinary crop dataset (class folders, manifest.csv, panel.json
naming the planes with ``"composite": "rgb"``) that every ctcnet command reads as is.

**Tight single-cell exports** (:func:`tight_export`, :func:`write_tight_export_dataset`) are the
other family, as published figures and imaging-flow exports show a cell: cut tight around the
object (it fills half or more of the image), each channel auto-contrasted on its own (the
background clipped to black, the white point at the crop's own bright end, with a least span
so a negative channel stays dark), at a fine pixel size (0.05-0.2 um/px, a few hundred pixels
across), often without the pixel size stated. The training augmentation uses the same
function at model scale.
"""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ctcnet.core.robust import background_and_noise
from ctcnet.detect.crop_dataset import write_manifest
from ctcnet.detect.cropping import to_model_scale
from ctcnet.detect.plane_order import PUBLISHED_PLANES
from ctcnet.detect.resampling import bilinear
from ctcnet.errors import InputError
from ctcnet.io.atomic import atomic_path, atomic_write_text
from ctcnet.io.panel import Panel, load_panel
from ctcnet.simulate.config import SimConfig, draw

DEFAULT_PLANES = PUBLISHED_PLANES  # R, G, B as in published composites
DISPLAYS = ("sample", "image")  # one display range per sample and channel, or per crop
JPEG_QUALITY = (60, 95)
# Pillow's subsampling codes: 0 = 4:4:4 (none), 1 = 4:2:2, 2 = 4:2:0 (most cameras and viewers).
SUBSAMPLING = {0: "4:4:4", 1: "4:2:2", 2: "4:2:0"}
# Display maximum as a fraction of a sample's bright end (99.9th percentile above background):
# below 1 the brightest objects clip at 255, as exports made for the eye do.
DISPLAY_MAX_FRACTION = (0.35, 1.0)
# A whole-sample export sets each channel's display range by the sample's brightest events,
# so most crops in it are far dimmer than 255: in simulated samples the sample's bright end
# is a median 9x (90th percentile 54x) a crop's own, and 26x for dim-CK CTCs. One crop
# exported alone (augmentation) stands in for such a crop with this headroom, log-uniform;
# stretched to its own maximum instead, a dim CTC would never look as it does in real exports.
EXPORT_HEADROOM = (1.0, 60.0)


def display_8bit_per_sample(images: np.ndarray, sample_ids: Sequence[str],
                            rng: np.random.Generator,
                            fraction: tuple[float, float] = DISPLAY_MAX_FRACTION,
                            headroom: tuple[float, float] = (1.0, 1.0)) -> np.ndarray:
    """(N, C, H, W) raw counts -> uint8 with one (background, maximum) per sample and channel.

    The background is the sample's median 20th percentile; the display maximum is a random
    fraction of the sample's 99.9th percentile above it, so highlights clip. ``headroom``
    (log-uniform, per channel) raises the maximum further: one crop stands in for a sample
    whose brightest event is that many times brighter than the crop's own (see
    :data:`EXPORT_HEADROOM`).
    """
    images = np.asarray(images, np.float32)
    out = np.empty(images.shape, np.uint8)
    samples = np.asarray(sample_ids)
    for sample in np.unique(samples):
        idx = np.flatnonzero(samples == sample)
        block = images[idx]
        low = np.median(np.percentile(block, 20, axis=(2, 3)), axis=0)  # (C,)
        high = np.percentile(block, 99.9, axis=(0, 2, 3)) - low
        top = high * rng.uniform(*fraction, size=low.shape)
        if tuple(headroom) != (1.0, 1.0):  # no draw otherwise: other recipes' streams stay
            top = top * draw(rng, headroom, size=low.shape, log=True)
        top = np.maximum(top, 1.0)
        scaled = (block - low[None, :, None, None]) * (255.0 / top[None, :, None, None])
        out[idx] = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    return out


def encode_jpeg(rgb: np.ndarray, quality: int, subsampling: int) -> bytes:
    """An (H, W, 3) uint8 image as JPEG bytes (Pillow; ``subsampling`` as in SUBSAMPLING)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buf, format="JPEG", quality=int(quality),
                                     subsampling=int(subsampling))
    return buf.getvalue()


def decode_jpeg(data: bytes) -> np.ndarray:
    """JPEG bytes -> (H, W, 3) uint8."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


def as_rgb_jpeg(crop: np.ndarray, rng: np.random.Generator,
                quality: tuple[int, int] = JPEG_QUALITY,
                zoom: tuple[float, float] = (1.0, 1.0),
                headroom: tuple[float, float] = EXPORT_HEADROOM) -> np.ndarray:
    """One raw (C, H, W) crop as an RGB-JPEG export would show it, back as float32 (C, H, W)
    in 0..255: 8-bit display scaling with clipped highlights, three channels drawn at random
    as the R, G, B planes of a JPEG (random quality and chroma subsampling), any further
    channels 8-bit only. For training augmentation. ``headroom``: the display maximum over
    the crop's own bright end, as in a whole sample's export (:data:`EXPORT_HEADROOM`).

    ``zoom`` (log-uniform) is the export's magnification against the crop: the planes are
    resized by it as a viewer zooms (Lanczos), saved as JPEG there, and brought back to the
    crop's scale the way every ctcnet path brings data to model scale
    (:func:`ctcnet.detect.cropping.to_model_scale`). A zoomed export's 8x8 JPEG blocks cover
    less of a cell, and the way back averages part of the quantisation away, as it does for
    real exports at a finer pixel size.
    """
    shown = display_8bit_per_sample(crop[None], ["crop"], rng, headroom=headroom)[0]
    planes = rng.permutation(len(shown))[:3]
    if len(planes) == 3:
        # No draw at zoom 1, so the random stream of recipes without a zoom stays as it was.
        factor = 1.0 if tuple(zoom) == (1.0, 1.0) else float(draw(rng, zoom, log=True))
        rgb = resize_rgb(np.ascontiguousarray(shown[planes].transpose(1, 2, 0)), factor)
        q, sub = int(rng.integers(quality[0], quality[1] + 1)), int(rng.choice(list(SUBSAMPLING)))
        back = decode_jpeg(encode_jpeg(rgb, q, sub)).transpose(2, 0, 1).astype(np.float32)
        if back.shape[1:] != shown.shape[1:]:
            back = to_model_scale(back[None], 1.0 / factor, 1.0, shown.shape[1])[0][0]
            back = np.clip(back, 0.0, 255.0)
        out = shown.astype(np.float32)
        out[planes] = back
        return out
    return shown.astype(np.float32)


def resize_rgb(rgb: np.ndarray, factor: float) -> np.ndarray:
    """Resize an (H, W, 3) uint8 image by ``factor`` (Lanczos, as viewers zoom)."""
    if abs(factor - 1.0) < 1e-6:
        return rgb
    from PIL import Image

    h, w = rgb.shape[:2]
    size = (max(1, int(round(w * factor))), max(1, int(round(h * factor))))
    return np.asarray(Image.fromarray(rgb, "RGB").resize(size, Image.Resampling.LANCZOS))


def composite_panel(panel: Panel, planes: Sequence[str], pixel_size_um: float,
                    kind: str) -> tuple[Panel, list[int]]:
    """The panel of an RGB composite export showing ``planes`` (8-bit channels, named
    ``<kind>-<planes>``) and the indices of the simulated ``panel``'s channels they show,
    matched by name; a plane the panel lacks is an :class:`InputError`."""
    composite = Panel.from_dict({"channels": [{"name": p, "value_range": [0, 255]}
                                              for p in planes],
                                 "pixel_size_um": pixel_size_um,
                                 "name": f"{kind}-{'-'.join(planes).lower()}", "composite": "rgb"})
    take, _ = composite.match_channels(panel)
    if None in take:
        raise InputError(f"planes {list(planes)}: the simulated panel {panel.names} lacks "
                         f"{[p for p, i in zip(planes, take) if i is None]}")
    return composite, take


def write_rgb_jpeg_dataset(batch, out_dir: str | Path, panel: Panel | None = None,
                           planes: Sequence[str] = DEFAULT_PLANES,
                           quality: tuple[int, int] = JPEG_QUALITY,
                           pixel_size_um: float | None = None, seed: int = 0,
                           display: str = "sample") -> Path:
    """Write a simulated :class:`~ctcnet.simulate.crops.CropBatch` as RGB composite JPEGs.

    ``planes`` names the markers shown as R, G, B (matched to the batch's channels by name);
    ``quality`` is the JPEG quality range drawn from per crop; ``pixel_size_um`` the export's
    pixel size (default: the simulation's); ``display``: one display range per ``sample`` and
    channel (a scanner's gallery, a viewer session) or per ``image`` (each crop stretched on
    its own, as a crop exported alone is).
    """
    if display not in DISPLAYS:
        raise InputError(f"display is one of {DISPLAYS}, got {display!r}")
    panel = load_panel(panel)
    lo_q, hi_q = (int(q) for q in quality)
    if not 1 <= lo_q <= hi_q <= 100:
        raise InputError(f"JPEG quality range {quality} must lie within 1..100, low <= high")
    composite, take = composite_panel(panel, planes, pixel_size_um or panel.pixel_size_um,
                                      "rgb")
    rng = np.random.default_rng(seed)
    groups = batch.sample_ids if display == "sample" else \
        [str(i) for i in range(len(batch.labels))]
    shown = display_8bit_per_sample(batch.images[:, take], groups, rng)
    factor = panel.pixel_size_um / composite.pixel_size_um
    root = Path(out_dir)
    rows = []
    qualities, subsamplings = [], []
    for i, (label, sample) in enumerate(zip(batch.labels, batch.sample_ids)):
        q, sub = int(rng.integers(lo_q, hi_q + 1)), int(rng.choice(list(SUBSAMPLING)))
        rgb = resize_rgb(np.ascontiguousarray(shown[i].transpose(1, 2, 0)), factor)
        rel = Path(label) / f"{sample}__{i:07d}.jpg"
        (root / label).mkdir(parents=True, exist_ok=True)
        with atomic_path(root / rel) as tmp:
            Path(tmp).write_bytes(encode_jpeg(rgb, q, sub))
        rows.append((rel.as_posix(), label, sample, ""))
        qualities.append(q)
        subsamplings.append(SUBSAMPLING[sub])
    write_manifest(root, rows)
    atomic_write_text(root / "panel.json", json.dumps(composite.to_dict(), indent=2) + "\n")
    counts: dict[str, int] = {}
    for label in batch.labels:
        counts[label] = counts.get(label, 0) + 1
    extra = {"generator": "ctcnet.simulate (rgb-jpeg export)", "seed": batch.seed,
             "export_seed": seed, "num_crops": len(batch), "planes": list(planes),
             "pixel_size_um": composite.pixel_size_um,
             "simulated_pixel_size_um": panel.pixel_size_um,
             # Each crop's truth: drawn at its sample's scale (the panel's x pixel_scale) and
             # resized as if at the panel's, so it lies at this size, not the stated one.
             "drawn_pixel_size_um": [round(float(v) / factor, 4) for v in batch.pixel_size_um],
             "jpeg_quality": [lo_q, hi_q],
             "class_counts": dict(sorted(counts.items())), "subtypes": batch.subtypes,
             "qualities": qualities, "subsampling": subsamplings, "display": display,
             "config": batch.config}
    atomic_write_text(root / "dataset.json", json.dumps(extra, indent=2) + "\n")
    return root


# Tight exports: the black point is this many noise sd above the background (the background
# clipped to black), the white point the crop's own bright end (this percentile of the
# object's box) but at least ``TIGHT_MIN_SPAN`` noise sd above the black point, so a channel
# with nothing in it stays dark instead of showing its noise stretched to full white.
TIGHT_BLACK_SD = (1.0, 4.0)
TIGHT_WHITE_PERCENTILE = (99.0, 99.99)
TIGHT_MIN_SPAN = (15.0, 60.0)
# A channel that shows the cell (its 3x3-mean peak over ``TIGHT_SIGNAL_SD`` noise sd above
# background) is stretched towards its own brightness, as a viewer's per-channel auto-contrast
# does: its display span is at most its peak times a headroom drawn per crop from
# ``TIGHT_SIGNAL_HEADROOM`` (viewers leave some; a figure may keep one range for several cells)
# and never under ``TIGHT_SIGNAL_SPAN`` sd (which keeps the background's noise black). So a
# dim-CK CTC's CK or a leukocyte's non-specific CK shows as published figures show them (CK on
# most leukocytes, near 140 of 255), where the fixed 15-60 sd span left them near black. A
# channel of noise alone keeps :data:`TIGHT_MIN_SPAN`.
TIGHT_SIGNAL_SD = 6.0
TIGHT_SIGNAL_HEADROOM = (1.0, 2.0)
TIGHT_SIGNAL_SPAN = 10.0
# A figure's marker channels (all but DNA) keep display ranges of one order: each marker's
# span (in noise sd) is at least this share of the brightest marker's, drawn per crop. Without
# it a bright CTC's CK, seen a few per cent in the CD45 channel, is stretched to a visible
# CD45 on a sixth of CTC exports, where published CTCs show CD45 black or a faint copy of CK
# (15-30 % of it in dim-CK cells; docs/markers.md).
TIGHT_MARKER_SPAN = (0.3, 1.0)
# The margin around the object's box, as a fraction of the box side on each side.
TIGHT_MARGIN = (0.03, 0.25)
# Simulated tight exports (the model card's test sets, ``ctcnet simulate crops --export
# tight``): cells rendered at 0.2 um/px, finer than any scan, as a microscope images one cell,
# written at 0.1 um/px (published crops: 0.05-0.2).
TIGHT_RENDER_PIXEL_UM = 0.2
TIGHT_EXPORT_PIXEL_UM = 0.1
# A tight render's noise and spectral bleed-through against a scan's: a microscope's
# single-cell image collects far more light per cell than a scanner's frame (higher NA, longer
# exposure) through filters cut for the dyes. At a scan's noise a dim cytoplasm stayed within a
# few sd of the noise per fine pixel, and its export showed the nucleus in a red haze (CK
# visible on 65 % of dim-CK CTCs; at 0.3: 95 %); at a scan's bleed-through, the nucleus seen in
# the CD45 channel, stretched by the viewer's auto-contrast once the noise is low, made CD45
# visible on 17 % of CTC exports (at 0.3: 3 %; published CTCs show CD45 black). The marker
# floors stay set against the scan's nominal noise (``SimConfig``): what a cell carries is the
# same.
TIGHT_RENDER_NOISE = 0.3
TIGHT_RENDER_BLEED = 0.3


def tight_rendering(panel: Panel, crop_size: int,
                    render_pixel_um: float = TIGHT_RENDER_PIXEL_UM,
                    config: SimConfig | None = None) -> tuple[Panel, int, SimConfig]:
    """How to render cells for tight exports: ``panel`` at ``render_pixel_um``, the side that
    keeps the field of view of ``crop_size`` pixels at the panel's own pixel size (80 px at
    0.64 um/px: 256 px at 0.2), and ``config`` (default ``SimConfig()``) with a microscope's
    noise and bleed-through (:func:`tight_config`)."""
    if not render_pixel_um > 0:
        raise InputError(f"the render pixel size must be positive, got {render_pixel_um}")
    side = int(round(crop_size * panel.pixel_size_um / render_pixel_um))
    return panel.with_pixel_size(render_pixel_um), side, tight_config(config)


def tight_config(config: SimConfig | None = None) -> SimConfig:
    """The simulator's config for cells rendered for tight exports: ``config`` (default
    ``SimConfig()``) with its noise and spectral bleed-through scaled by
    :data:`TIGHT_RENDER_NOISE` and :data:`TIGHT_RENDER_BLEED`."""
    config = SimConfig() if config is None else config
    low, high = config.bleed_through
    return dataclasses.replace(config, noise_scale=config.noise_scale * TIGHT_RENDER_NOISE,
                               bleed_through=(low * TIGHT_RENDER_BLEED,
                                              high * TIGHT_RENDER_BLEED))


def object_box(crop: np.ndarray, background: np.ndarray, noise: np.ndarray,
               snr: float = 5.0) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of the object at a crop's centre: the connected region of
    pixels more than ``snr`` noise sd above background in any channel (smoothed by 1 px) that
    holds the central pixel, else the one nearest it; the central quarter when there is none."""
    from scipy import ndimage

    c, h, w = crop.shape
    above = (ndimage.gaussian_filter(crop.astype(np.float32), (0, 1, 1)) -
             background[:, None, None]) > snr * noise[:, None, None]
    labels, n = ndimage.label(above.any(axis=0))
    if n == 0:
        return h // 4, h - h // 4, w // 4, w - w // 4
    yy, xx = np.nonzero(labels)
    d2 = (yy - (h - 1) / 2) ** 2 + (xx - (w - 1) / 2) ** 2
    rows, cols = np.nonzero(labels == labels[yy[np.argmin(d2)], xx[np.argmin(d2)]])
    return int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1


def tight_export(crop: np.ndarray, rng: np.random.Generator, fine: float = 1.0,
                 markers: Sequence[bool] | None = None) -> np.ndarray:
    """One raw (C, H, W) crop as a tight single-cell export: uint8 (C, h, w), cut around the
    object with a small margin (at most the crop), each channel auto-contrasted with its
    background clipped to black (:data:`TIGHT_BLACK_SD`, :data:`TIGHT_WHITE_PERCENTILE`,
    :data:`TIGHT_MIN_SPAN`, :data:`TIGHT_SIGNAL_SD`), from the background and noise measured on
    the crop.

    ``fine`` > 1: the export is made at a ``fine`` times finer pixel size than the crop's (as
    microscope images of single cells are): the box is enlarged and given the noise of its
    smaller pixels (``fine`` times the crop's per pixel) before the display range clips it,
    so the clipped noise that survives is what such an export shows once brought back to a
    scan's scale (a faint haze where the background was, not the crop's own speckle).

    ``markers`` (bool per channel: the marker channels, DNA not among them): their display
    spans are tied (:data:`TIGHT_MARKER_SPAN`), so a leak of one marker into another's channel
    shows as faintly as it is; None: every channel stretched on its own."""
    from scipy import ndimage

    crop = np.asarray(crop, np.float32)
    c, h, w = crop.shape
    background, noise = background_and_noise(crop.reshape(c, -1), "linear")
    noise = np.maximum(noise, 0.5)
    top, bottom, left, right = object_box(crop, background, noise)
    side = max(bottom - top, right - left)
    margin = int(round(side * rng.uniform(*TIGHT_MARGIN)))
    # A square box centred on the object, as figures show a cell, within the crop.
    half = max(side // 2 + margin, 4)  # at least 8 px: a one-pixel object is no export
    cy, cx = (top + bottom) // 2, (left + right) // 2
    t, b = max(cy - half, 0), min(cy + half, h)
    lo, r = max(cx - half, 0), min(cx + half, w)
    box = crop[:, t:b, lo:r]
    if fine > 1.0:
        size = (max(1, int(round(box.shape[1] * fine))), max(1, int(round(box.shape[2] * fine))))
        box = bilinear(box[None], size)[0]
        extra = noise * np.sqrt(fine ** 2 - 1.0)
        box = box + rng.standard_normal(box.shape, dtype=np.float32) * extra[:, None, None]
    black = background + rng.uniform(*TIGHT_BLACK_SD, c) * noise
    bright = np.percentile(box.reshape(c, -1), rng.uniform(*TIGHT_WHITE_PERCENTILE), axis=1)
    min_span = rng.uniform(*TIGHT_MIN_SPAN, c)
    peak_sd = (ndimage.uniform_filter(box, (1, 3, 3)).reshape(c, -1).max(axis=1)
               - background) / noise
    signal_span = np.maximum(peak_sd * rng.uniform(*TIGHT_SIGNAL_HEADROOM, c), TIGHT_SIGNAL_SPAN)
    min_span = np.where(peak_sd > TIGHT_SIGNAL_SD, np.minimum(min_span, signal_span), min_span)
    white = np.maximum(bright, black + min_span * noise)
    if markers is not None and np.count_nonzero(markers) > 1:
        tied = np.asarray(markers, bool)
        span = (white - black) / noise
        least = rng.uniform(*TIGHT_MARKER_SPAN) * span[tied].max()
        white = np.where(tied, black + np.maximum(span, least) * noise, white)
    scaled = (box - black[:, None, None]) * (255.0 / (white - black)[:, None, None])
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def with_ck_copy(shown: np.ndarray, roles: Sequence[str], share: float) -> np.ndarray:
    """An export's display planes ((C, H, W) on 0..255, uint8 or float) with ``share`` of the
    CK plane added to the CD45 plane, clipped at 255 (rounded for uint8): the CK dye seen
    through the CD45 filter, as a published dim-CK CTC shows it. Unchanged without both
    roles."""
    roles = list(roles)
    if "epithelial" not in roles or "leukocyte" not in roles:
        return shown
    ck, cd45 = roles.index("epithelial"), roles.index("leukocyte")
    plane = np.minimum(shown[cd45].astype(np.float32) + share * shown[ck], 255.0)
    out = shown.copy()
    out[cd45] = np.rint(plane) if np.issubdtype(shown.dtype, np.integer) else plane
    return out


def check_ck_copy(share: float) -> None:
    """Refuse a share of exports with a CK copy (:func:`write_tight_export_dataset`'s
    ``ck_copy``) outside 0-1."""
    if not 0.0 <= share <= 1.0:
        raise InputError(f"the share of exports with a CK copy is 0-1, not {share}")


def write_tight_export_dataset(batch, out_dir: str | Path, panel: Panel | None = None,
                               planes: Sequence[str] = DEFAULT_PLANES,
                               pixel_size_um: float = 0.1, file_format: str = "png",
                               quality: tuple[int, int] = (80, 95), seed: int = 0,
                               state_pixel_size: bool = True, ck_copy: float = 0.0,
                               ck_copy_share: tuple[float, float] = (0.15, 0.3)) -> Path:
    """Write a simulated :class:`~ctcnet.simulate.crops.CropBatch` as tight single-cell RGB
    exports (:func:`tight_export`) at ``pixel_size_um``: PNG (lossless) or JPEG (quality drawn
    per crop from ``quality``). ``state_pixel_size=False`` leaves the pixel size out of
    panel.json, as most published crops do (ctcnet then reads them only when told
    ``--pixel-size auto`` or a value). ``ck_copy``: the share of exports, of every class, whose
    CD45 plane shows a copy of CK at ``ck_copy_share`` of its level (:func:`with_ck_copy`)."""
    panel = load_panel(panel)
    if file_format not in ("png", "jpg"):
        raise InputError(f"tight exports are png or jpg, not {file_format!r}")
    check_ck_copy(ck_copy)
    composite, take = composite_panel(panel, planes, pixel_size_um, "tight")
    roles = [panel.roles()[i] for i in take]
    markers = [role != "nucleus" for role in roles]
    rng = np.random.default_rng(seed)
    # The copies drawn from a stream of their own, so the exports' other draws are the same
    # with and without them.
    copy_rng = np.random.default_rng([seed, 1])
    root = Path(out_dir)
    rows = []
    sizes = []
    for i, (label, sample) in enumerate(zip(batch.labels, batch.sample_ids)):
        factor = float(batch.pixel_size_um[i]) / pixel_size_um if len(batch.pixel_size_um) \
            else panel.pixel_size_um / pixel_size_um
        shown = tight_export(batch.images[i][take], rng, markers=markers)
        if ck_copy > 0 and copy_rng.random() < ck_copy:
            shown = with_ck_copy(shown, roles, float(copy_rng.uniform(*ck_copy_share)))
        rgb = resize_rgb(np.ascontiguousarray(shown.transpose(1, 2, 0)), factor)
        rel = Path(label) / f"{sample}__{i:07d}.{file_format}"
        (root / label).mkdir(parents=True, exist_ok=True)
        with atomic_path(root / rel) as tmp:
            if file_format == "jpg":
                q = int(rng.integers(quality[0], quality[1] + 1))
                Path(tmp).write_bytes(encode_jpeg(rgb, q, 2))
            else:
                from PIL import Image

                Image.fromarray(rgb, "RGB").save(tmp, format="PNG")
        rows.append((rel.as_posix(), label, sample, ""))
        sizes.append(list(rgb.shape[:2]))
    write_manifest(root, rows)
    stated = composite.to_dict()
    if not state_pixel_size:
        stated.pop("pixel_size_um")
    atomic_write_text(root / "panel.json", json.dumps(stated, indent=2) + "\n")
    extra = {"generator": "ctcnet.simulate (tight single-cell export)", "seed": batch.seed,
             "export_seed": seed, "num_crops": len(batch), "planes": list(planes),
             "pixel_size_um": pixel_size_um, "pixel_size_stated": state_pixel_size,
             "simulated_pixel_size_um": panel.pixel_size_um,
             "file_format": file_format, "image_sizes": sizes, "subtypes": batch.subtypes,
             "ck_copy": ck_copy, "ck_copy_share": list(ck_copy_share),
             "config": batch.config}
    atomic_write_text(root / "dataset.json", json.dumps(extra, indent=2) + "\n")
    return root
