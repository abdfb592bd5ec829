"""A labelled training set of tight single-cell exports of cells rendered at fine pixels.

The export model fine-tunes of docs/core3-rgb.md were made on such a set: two
halves, each made by ``ctcnet simulate crops --export tight`` (cells rendered at 0.2 um/px,
exported at 0.1 um/px, pixel size stated), one saved as JPEG (quality 80-95) and one as PNG,
from their own seeds, joined in one crop dataset folder
(``OUT/set0``: JPEG, ``OUT/set1``: PNG, one manifest.csv naming both; sample ids prefixed by
the half, so no two halves' samples are taken for one). ``ctcnet finetune OUT`` reads it as
any lab's crops.

    python scripts/tight_training_set.py OUT [--counts 4000] [--seed 52000] [--samples 48]
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CORE3 = '{"name": "core3", "pixel_size_um": 0.64, "channels": ["DAPI", "CK", "CD45"]}\n'
# (half, image format, seed offset)
HALVES = (("set0", "jpg", 0), ("set1", "png", 1000))


def main(argv=None) -> int:
    """Parse the command line and run the script; returns the exit status."""
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("out", type=Path)
    parser.add_argument("--counts", default="4000", help="crops per class in each half")
    parser.add_argument("--seed", type=int, default=52000)
    parser.add_argument("--samples", type=int, default=48)
    args = parser.parse_args(argv)

    from ctcnet.cli import main as ctcnet
    from ctcnet.detect.crop_dataset import write_manifest
    from ctcnet.errors import InputError
    from ctcnet.io.atomic import atomic_write_text

    if args.out.exists():
        raise SystemExit(f"{args.out} exists; choose another folder")
    args.out.mkdir(parents=True)
    panel = args.out / "core3.json"
    panel.write_text(CORE3)
    rows = []
    for half, image_format, offset in HALVES:
        code = ctcnet(["simulate", "crops", str(args.out / half), "--panel", str(panel),
                       "--counts", args.counts, "--samples", str(args.samples),
                       "--seed", str(args.seed + offset), "--export", "tight",
                       "--image-format", image_format,
                       # (a quality is a JPEG's alone: asked of the PNG half, it is refused)
                       *(["--jpeg-quality", "80-95"] if image_format == "jpg" else [])])
        if code:
            return code
        with open(args.out / half / "manifest.csv", newline="") as f:
            rows += [{**row, "path": f"{half}/{row['path']}",
                      "sample_id": f"{half}-{row['sample_id']}"} for row in csv.DictReader(f)]
    panels = {(args.out / half / "panel.json").read_text() for half, _, _ in HALVES}
    if len(panels) != 1:
        raise InputError("the halves' panel.json differ", args.out)
    atomic_write_text(args.out / "panel.json", panels.pop())
    write_manifest(args.out, [(r["path"], r["label"], r["sample_id"], r.get("split") or "")
                              for r in rows])
    print(f"wrote {len(rows)} crops to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
