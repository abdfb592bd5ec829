"""Gallery: labelled PNG montages of simulated crops, one per class, each channel side by side.

Each row is one crop: its subtype and sample on the left, then every channel in panel order
(grey, each stretched from its own background to its bright end, as a reviewer's viewer does),
then a colour overlay (DAPI blue, CK green, CD45 red). Meant for people to compare with real
scans, so it shows the raw counts' noise and quantisation honestly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ctcnet.io.atomic import atomic_path
from ctcnet.io.panel import Panel, load_panel
from ctcnet.io.taxonomy import load_taxonomy
from ctcnet.simulate.crops import CropBatch, simulate_crops

_LABEL_W = 150
_HEADER_H = 18


def stretch_channel(tile: np.ndarray, min_range: float = 40.0) -> np.ndarray:
    """One channel (H, W) of counts -> 0..255, from its 2nd percentile to its 99.8th (at least
    ``min_range`` counts, so a channel with nothing in it shows its noise, not a bright image)."""
    lo, hi = np.percentile(tile, [2.0, 99.8])
    hi = max(hi, lo + min_range)
    return (np.clip((tile - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)


def three_marker_overlay(crop: np.ndarray, panel: Panel, min_range: float = 40.0) -> np.ndarray:
    """(H, W, 3) colour view: CD45 red, CK green, DAPI blue (missing roles stay dark)."""
    h, w = crop.shape[1:]
    rgb = np.zeros((h, w, 3), np.uint8)
    for k, role in enumerate(("leukocyte", "epithelial", "nucleus")):
        i = panel.index_of_role(role)
        if i is not None:
            rgb[..., k] = stretch_channel(crop[i].astype(np.float32), min_range)
    return rgb


def montage(batch: CropBatch, rows: list[int], panel: Panel, title: str, zoom: int = 2,
            min_range: float = 40.0):
    """A PIL image of the given crops (rows) with every channel side by side."""
    from PIL import Image, ImageDraw

    c, s = batch.images.shape[1], batch.images.shape[-1] * zoom
    gap = 2
    width = _LABEL_W + (c + 1) * (s + gap)
    height = _HEADER_H * 2 + len(rows) * (s + gap)
    canvas = Image.new("RGB", (width, height), (24, 24, 24))
    draw = ImageDraw.Draw(canvas)
    draw.text((4, 2), title, fill=(255, 255, 255))
    for j, name in enumerate(panel.names + ["overlay"]):
        draw.text((_LABEL_W + j * (s + gap) + 4, _HEADER_H + 2), name, fill=(220, 220, 220))
    for r, i in enumerate(rows):
        top = _HEADER_H * 2 + r * (s + gap)
        crop = batch.images[i].astype(np.float32)
        draw.text((4, top + 4), batch.subtypes[i], fill=(255, 255, 160))
        draw.text((4, top + 18), batch.sample_ids[i], fill=(180, 180, 180))
        if len(batch.pixel_size_um):
            draw.text((4, top + 32), f"{batch.pixel_size_um[i]:.2f} um/px", fill=(180, 180, 180))
        for ch in range(c):
            grey = stretch_channel(crop[ch], min_range).repeat(zoom, 0).repeat(zoom, 1)
            canvas.paste(Image.fromarray(grey), (_LABEL_W + ch * (s + gap), top))
        rgb = three_marker_overlay(crop, panel, min_range).repeat(zoom, 0).repeat(zoom, 1)
        canvas.paste(Image.fromarray(rgb), (_LABEL_W + c * (s + gap), top))
    return canvas


def write_simulated_gallery(out_dir: str | Path, panel=None, taxonomy=None,
                            per_class: int = 8, crop_size: int = 80, seed: int = 0,
                            config=None) -> list[Path]:
    """Simulate ``per_class`` crops of every class and write gallery_<class>.png files."""
    panel = load_panel(panel)
    taxonomy = load_taxonomy(taxonomy)
    batch = simulate_crops(per_class, panel, taxonomy, crop_size, seed, config,
                           num_samples=max(per_class, 1))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    min_range = 4.0 if batch.images.max() <= 255 else 40.0  # 8-bit exports have small ranges
    written = []
    for name in taxonomy.names:
        rows = [i for i, label in enumerate(batch.labels) if label == name]
        if not rows:
            continue
        rows.sort(key=lambda i: batch.subtypes[i])
        image = montage(batch, rows, panel, f"class {name}: {len(rows)} simulated crops, "
                        f"seed {seed}", min_range=min_range)
        path = out_dir / f"gallery_{name}.png"
        with atomic_path(path) as tmp:
            image.save(tmp, format="PNG")
        written.append(path)
    return written
