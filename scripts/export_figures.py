"""What the simulator's tight single-cell exports show, measured as a person reads published ones.

Cells of each class are rendered for the core3 panel at a fine pixel size
(``tight_rendering``), each exported alone as published figures show a cell
(``tight_export``: cut round the cell, each channel auto-contrasted, background black), and
read on the export's 8-bit scale:

* per channel, the 95th percentile of the cell (the pixels where any channel is lit) of 255:
  how bright CK, CD45 and DAPI look on it;
* the share of cells on which a channel is visible (95th percentile >= ``VISIBLE`` of 255);
* the nucleus's share of the cell's area (DAPI above half its own bright end, over the cell);
* the cell's diameter (um, from its area).

Printed per class and written as JSON, with a montage of exports per class (R = CK,
G = CD45, B = DAPI, as published composites) that a person can hold against published
figures. ``--shape-swap 1`` draws every cell with another class's shape (the shape-swap
family).

    python scripts/export_figures.py --per-class 300 --out docs/figures
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CLASSES = ("ctc", "wbc", "cluster", "debris")
PLANES = ("CK", "CD45", "DAPI")
VISIBLE = 50.0  # of 255: a channel a person sees on the cell at a glance
CELL_LEVEL = 20.0  # of 255: a pixel of the cell (any channel over it)


def measure_export(rgb: np.ndarray, pixel_size_um: float) -> dict:
    """Figures of one (3, h, w) uint8 export (planes CK, CD45, DAPI)."""
    x = rgb.astype(np.float32)
    cell = x.max(axis=0) >= CELL_LEVEL
    if not cell.any():
        return {"ck_p95": 0.0, "cd45_p95": 0.0, "dapi_p95": 0.0, "nucleus_share": 0.0,
                "diameter_um": 0.0}
    p95 = np.percentile(x[:, cell], 95, axis=1)
    dapi = x[2]
    nucleus = cell & (dapi >= 0.5 * max(np.percentile(dapi[cell], 99), 1.0))
    area_um2 = cell.sum() * pixel_size_um ** 2
    return {"ck_p95": float(p95[0]), "cd45_p95": float(p95[1]), "dapi_p95": float(p95[2]),
            "nucleus_share": float(nucleus.sum() / cell.sum()),
            "diameter_um": float(2 * np.sqrt(area_um2 / np.pi))}


def render_exports(per_class: int, seed: int, shape_swap: float):
    """Tight exports (uint8 (3, h, w) each), their labels and subtypes, and their pixel size."""
    from ctcnet.io.panel import Panel
    from ctcnet.simulate.config import SimConfig
    from ctcnet.simulate.crops import simulate_crops
    from ctcnet.simulate.export import composite_panel, tight_export, tight_rendering

    scan = Panel.from_dict({"name": "core3", "pixel_size_um": 0.64,
                            "channels": ["DAPI", "CK", "CD45"]})
    # No neighbours: a published single-cell figure shows the cell alone.
    knobs = {"neighbours": (0.0, 0.0)}
    if shape_swap:
        knobs["shape_swap"] = shape_swap
    panel, side, config = tight_rendering(scan, 80,
                                          config=dataclasses.replace(SimConfig(), **knobs))
    batch = simulate_crops({c: per_class for c in CLASSES}, panel, crop_size=side, seed=seed,
                           config=config)
    _, take = composite_panel(panel, PLANES, panel.pixel_size_um, "tight")
    rng = np.random.default_rng(seed)
    markers = [panel.roles()[i] != "nucleus" for i in take]
    exports = [tight_export(batch.images[i][take], rng, markers=markers)
               for i in range(len(batch))]
    return exports, batch.labels, batch.subtypes, float(panel.pixel_size_um)


def summarise(rows: list[dict], labels: list[str]) -> dict:
    """Per class: the count, the median, 10th and 90th percentiles of each measurement of the
    exports, and how often CK and CD45 show."""
    labels_arr = np.asarray(labels)
    out = {}
    for name in CLASSES:
        sel = [r for r, lab in zip(rows, labels_arr) if lab == name]
        if not sel:
            continue
        col = {k: np.array([r[k] for r in sel]) for k in sel[0]}
        out[name] = {
            "n": len(sel),
            **{f"{k}_median": round(float(np.median(v)), 2) for k, v in col.items()},
            **{f"{k}_p10": round(float(np.percentile(v, 10)), 2) for k, v in col.items()},
            **{f"{k}_p90": round(float(np.percentile(v, 90)), 2) for k, v in col.items()},
            "cd45_visible_share": round(float((col["cd45_p95"] >= VISIBLE).mean()), 3),
            "ck_visible_share": round(float((col["ck_p95"] >= VISIBLE).mean()), 3),
            "cd45_black_share": round(float((col["cd45_p95"] < 10).mean()), 3),
        }
    return out


def montage(exports, labels, path: Path, per_row: int = 10, tile: int = 96) -> None:
    """One row of ``per_row`` exports per class, each resized to ``tile`` px, as a PNG."""
    from PIL import Image

    rows = []
    for name in CLASSES:
        picks = [e for e, lab in zip(exports, labels) if lab == name][:per_row]
        row = Image.new("RGB", (tile * per_row, tile))
        for k, e in enumerate(picks):
            img = Image.fromarray(np.ascontiguousarray(e.transpose(1, 2, 0)), "RGB")
            row.paste(img.resize((tile, tile), Image.Resampling.LANCZOS), (k * tile, 0))
        rows.append(row)
    sheet = Image.new("RGB", (tile * per_row, tile * len(rows)))
    for k, row in enumerate(rows):
        sheet.paste(row, (0, k * tile))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)


def main(argv=None) -> int:
    """Render the exports, measure them, and write the summary JSON and montages; returns the
    exit status."""
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--per-class", type=int, default=300)
    parser.add_argument("--seed", type=int, default=48000)
    parser.add_argument("--shape-swap", type=float, default=0.0)
    parser.add_argument("--out", type=Path, default=ROOT / "export_figures_output")
    args = parser.parse_args(argv)
    exports, labels, subtypes, um = render_exports(args.per_class, args.seed, args.shape_swap)
    rows = [measure_export(e, um) for e in exports]
    summary = summarise(rows, labels)
    tag = f"swap{args.shape_swap:g}"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"export_figures_{tag}.json").write_text(json.dumps(
        {"per_class": args.per_class, "seed": args.seed, "shape_swap": args.shape_swap,
         "classes": summary}, indent=2) + "\n")
    montage(exports, labels, args.out / f"montage_{tag}.png")
    for name, s in summary.items():
        print(f"{name:8s} CD45 p95 {s['cd45_p95_median']:6.1f} "
              f"(visible {s['cd45_visible_share']:.2f}, black {s['cd45_black_share']:.2f})  "
              f"CK p95 {s['ck_p95_median']:6.1f} (visible {s['ck_visible_share']:.2f})  "
              f"nucleus share {s['nucleus_share_median']:.2f} "
              f"[{s['nucleus_share_p10']:.2f}-{s['nucleus_share_p90']:.2f}]  "
              f"diameter {s['diameter_um_median']:.1f} um "
              f"[{s['diameter_um_p10']:.1f}-{s['diameter_um_p90']:.1f}]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
