"""Write the golden predict outputs that tests/inference/test_golden_predict.py and ``ctcnet
verify`` compare against.

The golden pins what ``ctcnet predict`` finds and calls on a small simulated cartridge
(``models/reference/cartridge``: 3 frames of 256 x 320 px, 5 channels, zlib-compressed 16-bit
TIFFs at a scan pixel size other than the model's, so resampling is covered), with the shipped
default model as predict picks it on a CPU. It was made with the code before the cartridge
path was made faster, so that work (and any later one) must reproduce the same events, boxes, areas,
intensities, classes and probabilities up to float rounding.

Run it again only when a change is meant to change the events or calls, and say so in the
commit, and list the files' new SHA-256 in models/SHA256SUMS (``ctcnet verify`` checks them)::

    python scripts/make_predict_golden.py            # table from the committed frames
    python scripts/make_predict_golden.py --frames   # also re-simulate the frames (seed 15)
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CARTRIDGE = REPO / "models" / "reference" / "cartridge"
GOLDEN = REPO / "models" / "reference" / "events.parquet"


def simulate_frames(target: Path) -> None:
    """The golden cartridge, simulated with a fixed seed, frames re-written with zlib."""
    import tifffile

    from ctcnet.io.panel import load_panel
    from ctcnet.simulate import simulate_cartridge

    with tempfile.TemporaryDirectory() as tmp:
        simulate_cartridge(Path(tmp) / "cart", load_panel(None), num_frames=3,
                           frame_shape=(256, 320), seed=15, events_per_frame=30,
                           sample_id="golden", rare_rates={"ctc": 0.15, "cluster": 0.08})
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(Path(tmp) / "cart", target)
    for path in sorted(target.glob("*.tif")):
        pixels = tifffile.imread(path)
        tifffile.imwrite(path, pixels, compression="zlib", predictor=True)


def golden_events(cartridge: Path, cartridge_rule: bool = False, workers: int = 1):
    """Events table of a default CPU predict run on ``cartridge`` (report off), without the
    shipped model's decision rule (the golden pins the pipeline around the network:
    tests/inference/test_golden_predict.py reads it so), or with it (``cartridge_rule``: the
    calls a night counts, which ``ctcnet verify`` checks too)."""
    from ctcnet.inference.backends import load_backend
    from ctcnet.inference.verification import predict_reference
    from ctcnet.nn.calls import DecisionRule

    return predict_reference(load_backend(None, device="cpu"),
                             None if cartridge_rule else DecisionRule.balanced(), workers,
                             cartridge)


def main(argv: list[str] | None = None) -> int:
    """Predict the golden cartridge (simulating its frames first when asked or missing) and write
    the golden events."""
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--frames", action="store_true", help="re-simulate the frames too")
    parser.add_argument("--cartridge-rule", action="store_true",
                        help="write the events at the model's cartridge rule instead "
                             "(models/reference/events_cartridge.parquet)")
    args = parser.parse_args(argv)
    if args.frames or not CARTRIDGE.exists():
        simulate_frames(CARTRIDGE)
    events = golden_events(CARTRIDGE, args.cartridge_rule)
    target = GOLDEN.with_name("events_cartridge.parquet") if args.cartridge_rule else GOLDEN
    events.to_parquet(target, index=False)
    print(f"{target.relative_to(REPO)}: {len(events)} events, "
          f"{events['class'].value_counts().to_dict()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
