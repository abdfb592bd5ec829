"""Simulated crops written as what much labelled CTC imagery in the wild looks like: 8-bit RGB
composite JPEGs, one marker per colour plane, lossy, with clipped highlights, at a viewer's
magnification.

Raw counts become 8-bit with one display setting per simulated sample and channel (as a viewer
session or a publication figure would use: background at 0, a display maximum that clips the
brightest objects), the named markers go to R, G and B, the image is resized to the export's
pixel size and saved as JPEG at a quality drawn per crop, with 4:4:4, 4:2:2 or 4:2:0 chroma
subsampling. The result is an ordinary crop dataset (class folders, manifest.csv, panel.json
naming the planes with ``"composite": "rgb"``) that every ctcnet command reads as is.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ctcnet.errors import InputError
from ctcnet.io.panel import Panel, load_panel
from ctcnet.simulate.config import draw

DEFAULT_PLANES = ("CK", "CD45", "DAPI")  # R, G, B as in published composites
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


def display_8bit(images: np.ndarray, sample_ids: Sequence[str], rng: np.random.Generator,
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
    shown = display_8bit(crop[None], ["crop"], rng, headroom=headroom)[0]
    planes = rng.permutation(len(shown))[:3]
    if len(planes) == 3:
        # No draw at zoom 1, so the random stream of recipes without a zoom stays as it was.
        factor = 1.0 if tuple(zoom) == (1.0, 1.0) else float(draw(rng, zoom, log=True))
        rgb = resize_rgb(np.ascontiguousarray(shown[planes].transpose(1, 2, 0)), factor)
        q, sub = int(rng.integers(quality[0], quality[1] + 1)), int(rng.choice(list(SUBSAMPLING)))
        back = decode_jpeg(encode_jpeg(rgb, q, sub)).transpose(2, 0, 1).astype(np.float32)
        if back.shape[1:] != shown.shape[1:]:
            from ctcnet.detect.cropping import to_model_scale

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


def write_rgb_jpeg_dataset(batch, out_dir: str | Path, panel: Panel | None = None,
                           planes: Sequence[str] = DEFAULT_PLANES,
                           quality: tuple[int, int] = JPEG_QUALITY,
                           pixel_size_um: float | None = None, seed: int = 0) -> Path:
    """Write a simulated :class:`~ctcnet.simulate.crops.CropBatch` as RGB composite JPEGs.

    ``planes`` names the markers shown as R, G, B (matched to the batch's channels by name);
    ``quality`` is the JPEG quality range drawn from per crop; ``pixel_size_um`` the export's
    pixel size (default: the simulation's).
    """
    from ctcnet.io.atomic import atomic_path, atomic_write_text

    panel = load_panel(panel)
    lo_q, hi_q = (int(q) for q in quality)
    if not 1 <= lo_q <= hi_q <= 100:
        raise InputError(f"JPEG quality range {quality} must lie within 1..100, low <= high")
    composite = Panel.from_dict({"channels": [{"name": p, "value_range": [0, 255]}
                                              for p in planes],
                                 "pixel_size_um": pixel_size_um or panel.pixel_size_um,
                                 "name": f"rgb-{'-'.join(planes).lower()}", "composite": "rgb"})
    take, _ = composite.match_channels(panel)  # the simulated channels shown, by name
    if None in take:
        raise InputError(f"planes {list(planes)}: the simulated panel {panel.names} lacks "
                         f"{[p for p, i in zip(planes, take) if i is None]}")
    rng = np.random.default_rng(seed)
    shown = display_8bit(batch.images[:, take], batch.sample_ids, rng)
    factor = panel.pixel_size_um / composite.pixel_size_um
    root = Path(out_dir)
    lines = ["path,label,sample_id,split"]
    qualities, subsamplings = [], []
    for i, (label, sample) in enumerate(zip(batch.labels, batch.sample_ids)):
        q, sub = int(rng.integers(lo_q, hi_q + 1)), int(rng.choice(list(SUBSAMPLING)))
        rgb = resize_rgb(np.ascontiguousarray(shown[i].transpose(1, 2, 0)), factor)
        rel = Path(label) / f"{sample}__{i:07d}.jpg"
        (root / label).mkdir(parents=True, exist_ok=True)
        with atomic_path(root / rel) as tmp:
            Path(tmp).write_bytes(encode_jpeg(rgb, q, sub))
        lines.append(f"{rel.as_posix()},{label},{sample},")
        qualities.append(q)
        subsamplings.append(SUBSAMPLING[sub])
    atomic_write_text(root / "manifest.csv", "\n".join(lines) + "\n")
    atomic_write_text(root / "panel.json", json.dumps(composite.to_dict(), indent=2) + "\n")
    counts: dict[str, int] = {}
    for label in batch.labels:
        counts[label] = counts.get(label, 0) + 1
    extra = {"generator": "ctcnet.simulate (rgb-jpeg export)", "seed": batch.seed,
             "export_seed": seed, "num_crops": len(batch), "planes": list(planes),
             "pixel_size_um": composite.pixel_size_um,
             "simulated_pixel_size_um": panel.pixel_size_um, "jpeg_quality": [lo_q, hi_q],
             "class_counts": dict(sorted(counts.items())), "subtypes": batch.subtypes,
             "qualities": qualities, "subsampling": subsamplings, "config": batch.config}
    atomic_write_text(root / "dataset.json", json.dumps(extra, indent=2) + "\n")
    return root
