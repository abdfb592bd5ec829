"""The figure of a count report (:func:`ctcnet.evaluation.counts.count_report`): called against
true counts per 7.5 mL, one point a cartridge, automatic and after review."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ctcnet.evaluation.counts import has_rates
from ctcnet.evaluation.plots import BLACK, BLUE, GREY, LIGHT, ORANGE, WHITE, _font, _save


def _even_top(value: float) -> float:
    """The even whole number at or above ``value``: an axis from 0 (or -it) to it has whole
    numbers at its ends and middle."""
    return float(2 * math.ceil(value / 2))


def counts_png(report: dict, path: str | Path, title: str = "CTC counts per 7.5 mL") -> Path:
    """Two panels for the positive class: called against true counts (automatic and after
    review, identity line), and Bland-Altman (difference against mean, bias and limits)."""
    from PIL import Image, ImageDraw

    name = report["positive_class"]
    carts = [c for c in report["cartridges"] if has_rates(c)]  # those with blood read
    true = np.array([c["true_per_7_5_ml"][name] for c in carts], np.float64)
    modes = {"automatic": BLUE, "after_review": ORANGE}
    called = {m: np.array([c[f"{m}_per_7_5_ml"][name] for c in carts], np.float64)
              for m in modes}
    size, left, top, gap = 300, 55, 50, 80
    width, height = left + 2 * size + gap + 20, top + size + 70
    image = Image.new("RGB", (width, height), WHITE)
    draw = ImageDraw.Draw(image)
    font = _font(11)
    draw.text((10, 8), f"{title}  ({len(carts)} cartridges; blue automatic, orange after "
                       "review)", fill=BLACK, font=_font(13))
    # Axis ends whose halves are whole counts, so every label reads exactly (an axis ending at
    # 11.55 labelled "12" put a +1 difference at about +0.85).
    hi = _even_top(max(1.0, true.max(initial=0), *(v.max(initial=0) for v in called.values()))
                   * 1.05)

    def panel(x0, xs_range, ys_range, xlabel, ylabel):
        draw.rectangle([x0, top, x0 + size, top + size], outline=BLACK)
        draw.text((x0, top + size + 22), xlabel, fill=BLACK, font=font)
        draw.text((x0, top - 16), ylabel, fill=BLACK, font=font)
        for f in (0.0, 0.5, 1.0):
            xv = xs_range[0] + f * (xs_range[1] - xs_range[0])
            yv = ys_range[0] + f * (ys_range[1] - ys_range[0])
            draw.text((x0 + f * size - 8, top + size + 4), f"{xv:g}", fill=BLACK, font=font)
            draw.text((x0 - 40, top + (1 - f) * size - 6), f"{yv:+g}" if yv < 0 else f"{yv:g}",
                      fill=BLACK, font=font)

        def to_px(x, y):
            return (x0 + (x - xs_range[0]) / (xs_range[1] - xs_range[0]) * size,
                    top + (1 - (y - ys_range[0]) / (ys_range[1] - ys_range[0])) * size)
        return to_px

    to_a = panel(left, (0, hi), (0, hi), "true per 7.5 mL", "called per 7.5 mL")
    draw.line([*to_a(0, 0), *to_a(hi, hi)], fill=GREY, width=1)
    # The clinical cut-offs across both axes: a point off the quadrants' diagonal pair is a
    # sample the cut-off calls otherwise than the truth.
    for cut in report["per_class"][name]["automatic"].get("cutoffs", ()):
        c = cut["cutoff"]
        if 0 < c < hi:
            draw.line([*to_a(c, 0), *to_a(c, hi)], fill=LIGHT, width=1)
            draw.line([*to_a(0, c), *to_a(hi, c)], fill=LIGHT, width=1)
            draw.text(to_a(c, hi), f" >= {c:g}", fill=GREY, font=font)
    for m, colour in modes.items():
        for x, y in zip(true, called[m]):
            cx, cy = to_a(x, y)
            draw.ellipse([cx - 3, cy - 3, cx + 3, cy + 3], outline=colour, width=2)
    diffs = {m: called[m] - true for m in modes}
    # The bias and limits are drawn at their values: the axis spans them too (a limit beyond
    # every difference, set at the border, read as one there).
    lines = {m: {key: value for key, value in report["per_class"][name][m]["bland_altman"]
                 .items() if key in ("bias", "lower", "upper") and value is not None}
             for m in modes}
    span = _even_top(max(2.0, *(np.abs(d).max(initial=0) for d in diffs.values()),
                         *(abs(v) for drawn in lines.values() for v in drawn.values())) * 1.2)
    to_b = panel(left + size + gap, (0, hi), (-span, span), "mean of called and true",
                 "called - true")
    draw.line([*to_b(0, 0), *to_b(hi, 0)], fill=GREY)
    for m, colour in modes.items():
        for key, y in lines[m].items():  # (one cartridge: its bias, no limits)
            draw.line([*to_b(0, y), *to_b(hi, y)], fill=colour, width=2 if key == "bias" else 1)
        for mean, d in zip((called[m] + true) / 2, diffs[m]):
            cx, cy = to_b(mean, d)
            draw.ellipse([cx - 3, cy - 3, cx + 3, cy + 3], outline=colour, width=2)
    return _save(image, path)
