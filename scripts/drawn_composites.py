"""Single-cell composites drawn by hand, not by the simulator, and how ctcnet calls them.

Published single-cell images (8-bit RGB: R = CK, G = CD45, B = DAPI; each crop scaled to fit
its cell; black background) are read by the CellSearch definition at a glance: CK with a
nucleus and no CD45 is a CTC, CD45 is a leukocyte whatever else it shows. These cells are drawn
with a few geometric strokes that the simulator never makes (its outlines, textures, blur and
noise are its own), so a network that learnt the simulator's conventions instead of the markers
shows it here:

* ``ctc_filled``: a CK-filled cytoplasm round a nucleus of 40-60 % of the cell's area;
* ``ctc_rim``: a thin bright CK rim round a nucleus that fills most of the cell (a
  leukocyte's proportions, a CTC's markers);
* ``ctc_patchy``: CK in a few crescents and patches round the nucleus;
* ``wbc_ring``: a CD45 membrane ring round a nucleus filling most of the cell;
* ``wbc_ck``: the same with CK-channel signal over the cell (non-specific CK, bleed, a
  viewer's stretch) at 0.3-1x of the CD45;
* ``wbc_lobed``: a neutrophil-like lobed nucleus in a CD45 rim;
* ``ctc_spindle``: a spindle CTC (the elongated, EMT-like look), 1.8-3x as long as wide, CK
  filled round a nucleus stretched along it.

Each cell is drawn at 60-140 px across (the image fits the cell: no size to read), its marker
at 35-100 % of full scale (CK-channel signal on ``wbc_ck`` at 0.3-1.5x its CD45; a faint copy
of CK in the CD45 channel, 15-30 %, on 30 % of CTCs), blurred, the nucleus saturated, given a
little noise and saved as PNG or JPEG.

    python scripts/drawn_composites.py [--model ctcnet-core3-export] [--per-kind 20] [--out DIR]
        [--scale-bar] [--look LOOK]

``--scale-bar`` draws the same cells with a white scale bar and its label burnt in, as
published figures carry them; ``--look`` shows them after a display change a figure's maker
may make (:data:`LOOKS`: a gamma, a grey background, the cell off the centre, a thumbnail,
marker names, a thumbnail blown up pixel by pixel, a leukocyte beside the cell, the image cut
tight round the cell, a white frame).

Reports per kind the share called ``ctc`` and the share called ``ctc`` or shown to a person
(target: CTC kinds called ``ctc``, leukocyte kinds never), running ``ctcnet predict`` on the
folder (``--pixel-size fit`` and ``auto``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CTC_KINDS = ("ctc_filled", "ctc_rim", "ctc_patchy", "ctc_spindle")
WBC_KINDS = ("wbc_ring", "wbc_ck", "wbc_lobed")
# CTC kinds in a shape no simulated cell of their class has (the simulator's long cells are its
# clusters): what the shipped networks call them is measured, not promised.
SHAPE_UNSEEN_KINDS = ("ctc_spindle",)
# The order the kinds are drawn in: a kind added later comes last, so the cells of the kinds
# before it (and the figures recorded on them) stay as they were drawn.
KINDS = ("ctc_filled", "ctc_rim", "ctc_patchy", "wbc_ring", "wbc_ck", "wbc_lobed",
         "ctc_spindle")


def _blob(yy, xx, cy, cx, ry, rx, angle):
    """Inside of an ellipse."""
    c, s = np.cos(angle), np.sin(angle)
    u, v = (yy - cy) * c + (xx - cx) * s, -(yy - cy) * s + (xx - cx) * c
    return (u / ry) ** 2 + (v / rx) ** 2 <= 1.0


def draw_cell(kind: str, rng: np.random.Generator) -> np.ndarray:
    """One drawn composite, uint8 (H, W, 3) RGB: R = CK, G = CD45, B = DAPI."""
    from scipy.ndimage import gaussian_filter

    cell = float(rng.uniform(60, 140))  # cell diameter in pixels; the image fits it
    side = int(round(cell * rng.uniform(1.15, 1.4)))
    yy, xx = np.mgrid[:side, :side].astype(np.float32)
    cy = cx = (side - 1) / 2
    angle = float(rng.uniform(0, np.pi))
    r = cell / 2
    # A spindle is long along ``angle`` and fits the image by its length.
    aspect = rng.uniform(1.8, 3.0) if kind == "ctc_spindle" else 1.0
    width = r * rng.uniform(0.85, 1.0) / aspect
    outline = _blob(yy, xx, cy, cx, r, width, angle)
    ck, cd45, dna = (np.zeros((side, side), np.float32) for _ in range(3))
    filled = kind in ("ctc_filled", "ctc_spindle")
    share = rng.uniform(0.4, 0.6) if filled else rng.uniform(0.65, 0.85)
    nr = r * np.sqrt(share)
    # The nucleus sits off the centre a little, as it does in real cells.
    ny, nx = cy + rng.uniform(-0.15, 0.15) * (r - nr), cx + rng.uniform(-0.15, 0.15) * (r - nr)
    if kind == "wbc_lobed":
        for k in range(3):
            a = angle + 2 * np.pi * k / 3
            dna += _blob(yy, xx, ny + 0.45 * nr * np.sin(a), nx + 0.45 * nr * np.cos(a),
                         0.5 * nr, 0.4 * nr, a)
        dna = np.minimum(dna, 1.0)
    elif kind == "ctc_spindle":
        # Stretched along the cell, with CK on either side of it: ``share`` of the cell's area.
        dna = _blob(yy, xx, ny, nx, share * r / 0.75, 0.75 * width, angle).astype(np.float32)
    else:
        dna = _blob(yy, xx, ny, nx, nr, nr * rng.uniform(0.8, 1.0), angle + 0.5).astype(
            np.float32)
    edge = outline & ~_blob(yy, xx, cy, cx, r - 0.08 * cell, r * 0.92 - 0.08 * cell, angle)
    # Marker brightness as displayed: from dim to full scale.
    level = rng.uniform(0.35, 1.0)
    if filled:
        ck = outline * level
    elif kind == "ctc_rim":
        ck = (edge * 1.0 + outline * 0.25) * level
    elif kind == "ctc_patchy":
        patches = np.zeros_like(ck)
        for _ in range(int(rng.integers(3, 6))):
            a = rng.uniform(0, 2 * np.pi)
            d = rng.uniform(0.6, 0.9) * r
            patches += _blob(yy, xx, cy + d * np.sin(a), cx + d * np.cos(a), 0.35 * r,
                             0.2 * r, a)
        ck = (np.minimum(patches, 1.0) * outline + 0.2 * outline) * level
    else:
        # The membrane: a bright ring with a dimmer inside (seen from above, it covers the
        # cell's top and bottom too).
        cd45 = (edge * 1.0 + outline * rng.uniform(0.3, 0.6)) * level
        if kind == "wbc_ck":
            ck = cd45 * rng.uniform(0.3, 1.5)
    if kind in CTC_KINDS and rng.random() < 0.3:
        # CK bleeding into the CD45 channel: a faint copy of the CK, as dim-CK CTCs show.
        cd45 = ck * rng.uniform(0.15, 0.3)
    planes = []
    for plane, sigma, gain in ((ck, 2.0, 1.0), (cd45, 2.0, 1.0), (dna, 1.5, 1.6)):
        texture = 1.0 + 0.15 * gaussian_filter(rng.standard_normal((side, side)), 2.0) * 4
        blurred = gaussian_filter(plane * texture, sigma * cell / 80)
        planes.append(np.clip(blurred * gain, 0, 1))
    rgb = np.stack(planes, axis=-1) * 255 + rng.normal(0, 2.0, (side, side, 3))
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def with_scale_bar(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The image with what a published figure burns into it: a white scale bar of a third of
    its width in a bottom corner and its label (\"5 um\") above it, in pure white (255 in
    every plane: bright CK, CD45 and DAPI at once)."""
    from PIL import Image, ImageDraw

    image = Image.fromarray(rgb)
    draw = ImageDraw.Draw(image)
    h, w = rgb.shape[:2]
    length, thick, margin = w // 3, max(2, h // 40), max(3, w // 25)
    x0 = margin if rng.random() < 0.5 else w - margin - length
    y0 = h - margin - thick
    draw.rectangle([x0, y0, x0 + length - 1, y0 + thick - 1], fill=(255, 255, 255))
    draw.text((x0, y0 - thick - 11), "5 um", fill=(255, 255, 255))
    return np.asarray(image)


# What a figure's maker may have done to the image after the scanner's viewer, none of which the
# simulator does: a gamma brightening dim signal (0.5) or darkening it (2), a grey background
# (black lifted to 40 of 255), the cell off the image's centre (the image padded by 40 % of its
# side at one corner), a thumbnail (the longest side 48 px) and the markers' names written in
# their colours in the top-left corner, as a merged panel names them; a scanner's small
# thumbnail (the longest side 20 px) blown up to the figure's size by repeating its pixels; a
# leukocyte beside the cell, cut by the image's edge, as a crop of a crowded field shows one;
# the image cut tight round the cell (3 % of its size beyond what is lit); a white frame round
# the image (a figure panel's border, cut with the panel).
LOOKS = ("as_drawn", "gamma_0.5", "gamma_2", "grey_background", "off_centre", "thumbnail_48",
         "marker_names", "pixelated", "neighbour", "tight", "white_frame")
# What the ``tight`` look counts as lit (8-bit, any plane) and the margin it leaves round it.
TIGHT_LIT, TIGHT_MARGIN = 40, 0.03
# The marker names' colours as the composite shows them (R = CK, G = CD45, B = DAPI).
MARKER_NAMES = (("CK", (255, 0, 0)), ("CD45", (0, 255, 0)), ("DAPI", (0, 0, 255)))


def with_look(rgb: np.ndarray, look: str, rng: np.random.Generator) -> np.ndarray:
    """The drawn image as a figure shows it after a display change (:data:`LOOKS`)."""
    from PIL import Image

    if look == "as_drawn":
        return rgb
    x = rgb.astype(np.float64)
    if look.startswith("gamma_"):
        x = 255 * (x / 255) ** float(look.split("_")[1])
    elif look == "grey_background":
        x = 40 + x * (215 / 255)
    elif look == "off_centre":
        h, w = rgb.shape[:2]
        dy, dx = int(0.4 * h), int(0.4 * w)
        top, left = bool(rng.random() < 0.5), bool(rng.random() < 0.5)
        x = np.pad(x, [(dy, 0) if top else (0, dy), (dx, 0) if left else (0, dx), (0, 0)])
    elif look == "marker_names":
        return with_marker_names(rgb)
    elif look == "neighbour":
        return with_neighbour(rgb, rng)
    elif look == "tight":
        ys, xs = np.nonzero(rgb.max(axis=2) > TIGHT_LIT)
        margin = int(TIGHT_MARGIN * max(np.ptp(ys), np.ptp(xs)))
        top, left = max(0, ys.min() - margin), max(0, xs.min() - margin)
        return np.ascontiguousarray(rgb[top:ys.max() + 1 + margin, left:xs.max() + 1 + margin])
    elif look == "white_frame":
        side = max(2, min(rgb.shape[:2]) // 40)
        framed = rgb.copy()
        framed[:side], framed[-side:], framed[:, :side], framed[:, -side:] = 255, 255, 255, 255
        return framed
    elif look == "pixelated":
        h, w = rgb.shape[:2]
        s = 20 / max(h, w)
        small = Image.fromarray(rgb).resize((max(1, round(w * s)), max(1, round(h * s))),
                                            Image.BOX)
        return np.asarray(small.resize((w, h), Image.NEAREST))
    elif look == "thumbnail_48":
        h, w = rgb.shape[:2]
        s = 48 / max(h, w)
        return np.asarray(Image.fromarray(rgb).resize((max(1, round(w * s)), max(1, round(h * s))),
                                                      Image.BILINEAR))
    else:
        raise ValueError(f"look must be one of {LOOKS}, not {look!r}")
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def with_neighbour(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The image widened by 40 % of its side at one corner, where a leukocyte (a CD45 ring round
    its nucleus, drawn as large as the cell) sits a few um from the cell, cut by the image's
    edges (about a quarter of its width outside)."""
    from PIL import Image

    h, w = rgb.shape[:2]
    dy, dx = int(0.4 * h), int(0.4 * w)
    top, left = bool(rng.random() < 0.5), bool(rng.random() < 0.5)
    out = np.pad(rgb, [(dy, 0) if top else (0, dy), (dx, 0) if left else (0, dx), (0, 0)])
    other = draw_cell("wbc_ring", rng)
    other = np.asarray(Image.fromarray(other).resize((w, h), Image.BILINEAR))
    # The neighbour's image moved out past the padded corner by a third of its side.
    y0 = -h // 3 if top else out.shape[0] - h + h // 3
    x0 = -w // 3 if left else out.shape[1] - w + w // 3
    ys, xs = slice(max(y0, 0), min(y0 + h, out.shape[0])), slice(max(x0, 0), min(x0 + w,
                                                                            out.shape[1]))
    part = other[ys.start - y0:ys.stop - y0, xs.start - x0:xs.stop - x0]
    out[ys, xs] = np.maximum(out[ys, xs], part)
    return out


def with_marker_names(rgb: np.ndarray) -> np.ndarray:
    """The image with "CK", "CD45" and "DAPI" written in their planes' colours, one above
    the other in the top-left corner, each line a fourteenth of the image high."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.fromarray(rgb)
    side = min(rgb.shape[:2])
    size = max(8, side // 14)
    font = ImageFont.load_default(size=size)
    draw = ImageDraw.Draw(image)
    margin = max(1, side // 40)
    for k, (text, colour) in enumerate(MARKER_NAMES):
        draw.text((margin, margin + int(k * 1.1 * size)), text, fill=colour, font=font)
    return np.asarray(image)


def write_drawn_set(out: Path, per_kind: int, seed: int = 0, scale_bar: bool = False,
                    look: str = "as_drawn") -> Path:
    """A crop folder of drawn composites (class folders ctc and wbc, panel.json for RGB
    composites without a pixel size), written once; ``scale_bar``: each with a scale bar and
    its label burnt in (:func:`with_scale_bar`), ``look``: each after a display change
    (:func:`with_look`), the cells the same as without either."""
    from PIL import Image

    from ctcnet.detect.crop_dataset import write_manifest
    from ctcnet.io.atomic import atomic_write_text

    if (out / "manifest.csv").exists():
        return out
    rng = np.random.default_rng(seed)
    rows = []
    for kind in KINDS:
        label = "ctc" if kind in CTC_KINDS else "wbc"
        (out / label).mkdir(parents=True, exist_ok=True)
        for i in range(per_kind):
            name = f"{label}/{kind}_{i:03d}." + ("png" if i % 2 else "jpg")
            rgb = draw_cell(kind, rng)
            if scale_bar:  # its own generator: the cells stay those drawn without bars
                rgb = with_scale_bar(rgb, np.random.default_rng([seed, len(rows)]))
            rgb = with_look(rgb, look, np.random.default_rng([seed, len(rows), 1]))
            image = Image.fromarray(rgb)
            image.save(out / name, **({"quality": 90} if name.endswith("jpg") else {}))
            rows.append((name, label, kind, ""))
    atomic_write_text(out / "panel.json", json.dumps(
        {"name": "drawn", "composite": "rgb", "channels": ["CK", "CD45", "DAPI"]}) + "\n")
    write_manifest(out, rows)
    return out


def calls_by_kind(model: str, root: Path, pixel_size: str) -> dict[str, tuple[float, float]]:
    """Per kind, the share called ``ctc`` and the share called ``ctc`` or shown to a person
    (sent to review), as ``ctcnet predict`` reads the folder."""
    import contextlib
    import io
    import tempfile

    import pandas as pd

    from ctcnet.cli import main as ctcnet

    with tempfile.TemporaryDirectory() as out, contextlib.redirect_stdout(io.StringIO()):
        if ctcnet(["predict", str(root), "--out", out, "--quiet", "--no-report", "--model",
                   model, "--pixel-size", pixel_size]) != 0:
            raise RuntimeError(f"ctcnet predict failed on {root}")
        table = pd.read_parquet(Path(out) / root.name / "predictions.parquet")
    table["kind"] = table["path"].map(lambda p: Path(p).name.rsplit("_", 1)[0])
    called = table["class"] == "ctc"
    return {k: (float(called[rows].mean()), float((called | table["review"])[rows].mean()))
            for k, rows in table.groupby("kind").groups.items()}


def main(argv=None) -> int:
    """Write the hand-drawn composite set and call it with each model; returns the exit status."""
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--model", action="append",
                        help="model name or file (repeatable; default: ctcnet-core3-export)")
    parser.add_argument("--per-kind", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "drawn_composites_output")
    parser.add_argument("--scale-bar", action="store_true",
                        help="burn a white scale bar and its label into each image, as "
                             "published figures do")
    parser.add_argument("--look", choices=LOOKS, default="as_drawn",
                        help="a display change after drawing (default: none)")
    args = parser.parse_args(argv)
    name = "data" + ("-scale-bar" if args.scale_bar else "") + \
        ("" if args.look == "as_drawn" else f"-{args.look}")
    root = write_drawn_set(args.out / name, args.per_kind, args.seed, args.scale_bar, args.look)
    for model in args.model or ["ctcnet-core3-export"]:
        for how in ("fit", "auto"):
            shares = calls_by_kind(model, root, how)
            print(f"{model} ({how}): called ctc / called or shown: " +
                  ", ".join(f"{k} {shares[k][0]:.2f} / {shares[k][1]:.2f}" for k in KINDS))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
