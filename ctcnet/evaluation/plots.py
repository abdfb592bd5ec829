"""PNG figures of an evaluation, drawn with Pillow (no matplotlib dependency).

* :func:`confusion_png`: the confusion matrix, rows = true class, columns = predicted class,
  cells shaded by the share of their row (recall) and labelled with counts;
* :func:`reliability_png`: the reliability diagram: accuracy against mean confidence per
  confidence bin, the diagonal for perfect calibration, bar widths by bin population, ECE in the
  title.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ctcnet.io.atomic import atomic_path

WHITE, BLACK, GREY = (255, 255, 255), (0, 0, 0), (170, 170, 170)
BLUE, ORANGE = (49, 104, 176), (230, 120, 40)
LIGHT = (215, 215, 215)  # guide lines under the points (cut-offs)


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one fixed-size bitmap font
        return ImageFont.load_default()


def _save(image: Image.Image, path: str | Path) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
    return path


def _text_centre(draw: ImageDraw.ImageDraw, xy, text: str, font, fill=BLACK) -> None:
    draw.text(xy, text, fill=fill, font=font, anchor="mm")


def confusion_png(confusion: Sequence[Sequence[int]], class_names: Sequence[str],
                  path: str | Path, title: str = "Confusion matrix") -> Path:
    """Draw a confusion matrix (rows true, columns predicted) to a PNG file."""
    cm = np.asarray(confusion, dtype=np.int64)
    k = len(class_names)
    cell, margin_left, margin_top = 72, 110, 90
    width, height = margin_left + k * cell + 20, margin_top + k * cell + 50
    image = Image.new("RGB", (width, height), WHITE)
    draw = ImageDraw.Draw(image)
    font, small = _font(14), _font(12)
    _text_centre(draw, (width // 2, 18), title, _font(16))
    _text_centre(draw, (margin_left + k * cell // 2, 44), "predicted", small)
    draw.text((6, margin_top + k * cell + 18), "rows: true class", fill=BLACK, font=small)
    row_share = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    for j, name in enumerate(class_names):
        _text_centre(draw, (margin_left + j * cell + cell // 2, margin_top - 14), name, small)
    for i, name in enumerate(class_names):
        y0 = margin_top + i * cell
        draw.text((8, y0 + cell // 2), name, fill=BLACK, font=small, anchor="lm")
        for j in range(k):
            x0 = margin_left + j * cell
            share = float(row_share[i, j])
            shade = tuple(int(255 - share * (255 - c)) for c in BLUE)
            draw.rectangle([x0, y0, x0 + cell - 1, y0 + cell - 1], fill=shade, outline=GREY)
            ink = WHITE if share > 0.55 else BLACK
            _text_centre(draw, (x0 + cell // 2, y0 + cell // 2), str(int(cm[i, j])), font, ink)
    return _save(image, path)


def reliability_png(bins: dict, path: str | Path, ece: float | None = None,
                    title: str = "Reliability") -> Path:
    """Draw a reliability diagram (:func:`ctcnet.evaluation.metrics.reliability_bins`) to a PNG."""
    edges = np.asarray(bins["edges"], np.float64)
    count = np.asarray(bins["count"], np.float64)
    accuracy = np.asarray(bins["accuracy"], np.float64)
    confidence = np.asarray(bins["confidence"], np.float64)
    size, left, top, bottom = 360, 60, 50, 60
    width, height = left + size + 30, top + size + bottom
    image = Image.new("RGB", (width, height), WHITE)
    draw = ImageDraw.Draw(image)
    font = _font(12)

    def to_px(x: float, y: float) -> tuple[float, float]:
        return left + x * size, top + (1 - y) * size

    heading = title if ece is None else f"{title}  (ECE {ece:.3f})"
    _text_centre(draw, (width // 2, 20), heading, _font(16))
    draw.rectangle([*to_px(0, 1), *to_px(1, 0)], outline=BLACK)
    for tick in np.linspace(0, 1, 6):
        x, y = to_px(tick, 0)
        draw.line([x, y, x, y + 4], fill=BLACK)
        _text_centre(draw, (x, y + 14), f"{tick:.1f}", font)
        x, y = to_px(0, tick)
        draw.line([x - 4, y, x, y], fill=BLACK)
        draw.text((x - 8, y), f"{tick:.1f}", fill=BLACK, font=font, anchor="rm")
    _text_centre(draw, (left + size // 2, top + size + 40), "confidence (top probability)",
                 font)
    draw.text((6, top - 18), "accuracy", fill=BLACK, font=font)
    # Bars: accuracy per bin; their opacity follows the bin's share of events.
    share = count / max(count.max(), 1)
    for i in np.flatnonzero(count > 0):
        x0, y0 = to_px(edges[i], accuracy[i])
        x1, y1 = to_px(edges[i + 1], 0)
        fill = tuple(int(255 - (0.35 + 0.65 * share[i]) * (255 - c)) for c in BLUE)
        draw.rectangle([x0 + 1, y0, x1 - 1, y1], fill=fill, outline=BLUE)
        cx, cy = to_px(confidence[i], accuracy[i])
        draw.ellipse([cx - 3, cy - 3, cx + 3, cy + 3], fill=ORANGE)
    draw.line([*to_px(0, 0), *to_px(1, 1)], fill=GREY, width=2)
    return _save(image, path)


def curve_png(x: Sequence[float], series: dict[str, Sequence[float]], path: str | Path,
              title: str, xlabel: str, ylabel: str, y_range: tuple[float, float] = (0.0, 1.0),
              target: float | None = None) -> Path:
    """Lines over categorical x positions (evenly spaced, labelled with the x values), one per
    series, with an optional dashed target level; for small curves such as F1 against N."""
    size_x, size_y, left, top, bottom = 420, 300, 60, 50, 60
    width, height = left + size_x + 150, top + size_y + bottom
    image = Image.new("RGB", (width, height), WHITE)
    draw = ImageDraw.Draw(image)
    font = _font(12)
    lo, hi = y_range
    n = len(x)

    def to_px(i: float, y: float) -> tuple[float, float]:
        return (left + (i + 0.5) * size_x / n,
                top + (1 - (min(max(y, lo), hi) - lo) / (hi - lo)) * size_y)

    _text_centre(draw, (left + size_x // 2, 20), title, _font(16))
    draw.rectangle([left, top, left + size_x, top + size_y], outline=BLACK)
    for tick in np.linspace(lo, hi, 6):
        _, y = to_px(0, tick)
        draw.line([left - 4, y, left, y], fill=BLACK)
        draw.text((left - 8, y), f"{tick:.2f}", fill=BLACK, font=font, anchor="rm")
    for i, value in enumerate(x):
        px, _ = to_px(i, lo)
        draw.line([px, top + size_y, px, top + size_y + 4], fill=BLACK)
        _text_centre(draw, (px, top + size_y + 14), f"{value:g}", font)
    _text_centre(draw, (left + size_x // 2, top + size_y + 40), xlabel, font)
    draw.text((6, top - 18), ylabel, fill=BLACK, font=font)
    if target is not None:
        _, y = to_px(0, target)
        for x0 in range(left, left + size_x, 10):
            draw.line([x0, y, x0 + 5, y], fill=GREY, width=1)
    colours = [BLUE, ORANGE, (60, 150, 60), (170, 60, 160)]
    for k, (name, ys) in enumerate(series.items()):
        colour = colours[k % len(colours)]
        points = [to_px(i, v) for i, v in enumerate(ys) if v is not None]
        if len(points) > 1:
            draw.line(points, fill=colour, width=2)
        for px, py in points:
            draw.ellipse([px - 3, py - 3, px + 3, py + 3], fill=colour)
        draw.text((left + size_x + 12, top + 10 + 18 * k), name, fill=colour, font=font)
    return _save(image, path)
