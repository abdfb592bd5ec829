"""Exported-style cells placed into simulated scans, counted by ``ctcnet predict`` and by a
classic CK/CD45 gate on the same cartridges.

    python scripts/cells_in_scans.py [--cartridges 4] [--frames 6] [--per-frame 6]
        [--families tight,drawn,swap] [--model NAME] [--out runs/cells_in_scans]

The cells a lab sees as single-cell exports (the export families: ``tight``, the simulator's
tight RGB exports at 0.1 um/px; ``drawn``, hand-drawn published-style composites; ``swap``,
tight exports of cells drawn in another class's shape), as a scanner would have imaged them:
each composite (R = CK, G = CD45, B = DAPI) area-averaged to the scan's pixel size for a cell
of 12 um (its lit area's diameter), blurred a little (0.7 px), and added into empty places of
a 16-bit five-channel cartridge drawn by ``ctcnet simulate cartridge`` with one gain per
channel for all cells (a plane's 255 brings DAPI and CD45 to the cartridge's own leukocytes'
bright level, CK to its CTCs'). Half the placed cells are CTCs, half leukocytes. Every
family goes into the same cartridges (their pixel size drawn by the simulator, 0.45-0.83
um/px), each predicted with the model's defaults and gated by :func:`gate_ctcs`
(``ctcnet.evaluation.classic_gate``: background and noise per channel, a 3-sigma threshold on
DAPI + CK, a watershed, per-object means; CK+, DAPI+ and CD45- at 3 noise sigmas, not tuned).

A cartridge's stains are drawn 0.2-5x, so on a dim one a placed CTC's CK can end under the
noise, and a composite's faint copy of CK in its CD45 plane, brought up by CD45's gain, can
end as bright as the CK: by its markers in the scan such a cell is no CTC. So each placed
cell is also read as the gate reads an object, over its own pixels (mean noise units of DAPI,
CK and CD45), and a CTC that reads CK+, DAPI+ and CD45- there is ``readable``. Per family:
placed CTCs counted, counted or shown, counted by the gate, each of all and of the readable
ones; placed leukocytes counted as CTCs (of all, and of those the scan does not show as a
CTC) and sent to review. Writes ``cells_in_scans.json`` and each cartridge's
``placed_cells.csv`` (the readings included).
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd

# The gate lives in the library, where `ctcnet benchmark` times the same code.
from ctcnet.evaluation.classic_gate import gate_ctcs, marker_channels, noise_units

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
SEED = 47000
CELL_UM = 12.0
MATCH_UM = 8.0
LIT = 20  # of 255: a composite's pixel belongs to the cell
GATE_SIGMAS = 3.0  # the classic gate's marker level, in noise units


def family_folder(name: str, out: Path, per_class: int, seed: int) -> Path:
    """A crop folder of exported-style CTCs and leukocytes of one family (written once)."""
    if name == "drawn":
        from drawn_composites import write_drawn_set

        return write_drawn_set(out / "drawn", max(1, per_class // 4), seed=seed)
    from shape_swap import family_config, make_tight_set

    from ctcnet.simulate.config import SimConfig

    config = family_config() if name == "swap" else SimConfig()
    return make_tight_set(out / name, {"ctc": per_class, "wbc": per_class}, seed, config, 0.1)


def read_cells(folder: Path) -> list[tuple[str, np.ndarray]]:
    """(label, (H, W, 3) uint8 RGB) of every CTC and leukocyte image of a crop folder."""
    from PIL import Image

    from ctcnet.detect.crop_dataset import read_crop_index

    index = read_crop_index(folder, pixel_size="auto")
    cells = []
    for path, label in zip(index.paths, index.labels):
        if label in ("ctc", "wbc"):
            cells.append((label, np.asarray(Image.open(path).convert("RGB"))))
    return cells


def at_scan_scale(rgb: np.ndarray, scan_um: float) -> np.ndarray | None:
    """(3, h, w) float planes of the composite at the scan's pixel size, its lit cell 12 um
    across (area-averaged, then blurred 0.7 px); None when nothing is lit."""
    from scipy import ndimage
    from skimage.transform import resize

    lit = (rgb >= LIT).any(axis=2)
    if not lit.any():
        return None
    diameter_px = 2.0 * np.sqrt(lit.sum() / np.pi)
    scale = (CELL_UM / scan_um) / diameter_px
    h, w = (max(3, int(round(s * scale))) for s in rgb.shape[:2])
    planes = resize(rgb.astype(np.float32), (h, w), order=1, anti_aliasing=True,
                    preserve_range=True).transpose(2, 0, 1)
    return ndimage.gaussian_filter(planes, (0, 0.7, 0.7))


def bright_levels(frames: list[np.ndarray], truth: pd.DataFrame, channels: list[int]
                  ) -> np.ndarray:
    """Per channel (DAPI, CK, CD45 positions in ``channels``), the counts over background of
    the cartridge's own bright leukocytes (DAPI, CD45) and CTCs (CK): 95th percentiles over
    their boxes, less the frame's median."""
    dapi, ck, cd45 = channels
    values = {dapi: [], ck: [], cd45: []}
    for f, frame in enumerate(frames):
        background = np.median(frame.reshape(frame.shape[0], -1), axis=1)
        for _, row in truth[truth["frame"] == f].iterrows():
            box = (slice(int(row.bbox_y0), int(row.bbox_y1) + 1),
                   slice(int(row.bbox_x0), int(row.bbox_x1) + 1))
            for c in ((dapi, cd45) if row["class"] == "wbc" else
                      (ck,) if row["class"] == "ctc" else ()):
                values[c].append(np.percentile(frame[c][box], 95) - background[c])
    return np.array([np.median(values[c]) if values[c] else 500.0 for c in channels])


def free_places(rng, truth: pd.DataFrame, shape: tuple[int, int], n: int, keep_px: float,
                margin: int) -> list[tuple[int, int]]:
    """Up to ``n`` centres at least ``keep_px`` from every drawn event and from each other."""
    taken = truth[["x", "y"]].to_numpy(float)
    places: list[tuple[int, int]] = []
    for _ in range(400):
        if len(places) == n:
            break
        x, y = rng.integers(margin, shape[1] - margin), rng.integers(margin, shape[0] - margin)
        points = np.vstack([taken, np.array(places, float).reshape(-1, 2)])
        if not len(points) or np.hypot(*(points - (x, y)).T).min() >= keep_px:
            places.append((int(x), int(y)))
    return places


def place_cells(cart: Path, out: Path, cells: list, per_frame: int, seed: int) -> pd.DataFrame:
    """Copy ``cart`` to ``out`` with CTCs and leukocytes of ``cells`` added into free places of
    each frame; the placed cells' truth (also written as ``placed_cells.csv``)."""
    import tifffile

    from ctcnet.io.scan import open_cartridge

    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(cart, out)
    cartridge = open_cartridge(out)
    px = cartridge.panel.pixel_size_um
    channels = marker_channels(cartridge.panel)
    truth = pd.read_csv(out / "ground_truth.csv")
    paths = [out / f"{f.frame_id}.tif" for f in cartridge.frames]
    frames = [tifffile.imread(p).astype(np.float32) for p in paths]
    levels = bright_levels(frames, truth, channels)
    rng = np.random.default_rng(seed)
    by_label = {lab: [rgb for lab2, rgb in cells if lab2 == lab] for lab in ("ctc", "wbc")}
    rows = []
    for f, (path, frame) in enumerate(zip(paths, frames)):
        places = free_places(rng, truth[truth["frame"] == f], frame.shape[1:], per_frame,
                             30.0 / px, int(40.0 / px))
        footprints = []
        for k, (x, y) in enumerate(places):
            label = ("ctc", "wbc")[k % 2]
            rgb = by_label[label][rng.integers(len(by_label[label]))]
            planes = at_scan_scale(rgb, px)
            if planes is None:
                continue
            h, w = planes.shape[1:]
            y0, x0 = y - h // 2, x - w // 2
            # R = CK, G = CD45, B = DAPI; 255 in a plane is the cartridge's bright level.
            for plane, c in zip(planes, (channels[1], channels[2], channels[0])):
                frame[c, y0:y0 + h, x0:x0 + w] += plane * (levels[channels.index(c)] / 255.0)
            footprints.append((slice(y0, y0 + h), slice(x0, x0 + w),
                               (planes >= LIT).any(axis=0)))
            rows.append({"frame": f, "row": cartridge.frames[f].row,
                         "col": cartridge.frames[f].col, "x": float(x), "y": float(y),
                         "class": label})
        # A bright cell saturates where the scanner would: at the top of each channel's range.
        top = np.array([c.value_range[1] for c in cartridge.panel.channels])[:, None, None]
        frame = np.clip(np.round(frame), 0, top).astype(np.uint16)
        tifffile.imwrite(path, frame, photometric="minisblack")
        # What the scan shows of each placed cell, read as the gate reads an object (its mean
        # noise units over the pixels the cell lights), so that a cell whose CK the scan
        # does not show, or shows under CD45, is told from one the network misreads.
        snr = noise_units(frame, channels)
        for row, (box_y, box_x, lit) in zip(rows[len(rows) - len(footprints):], footprints):
            means = snr[:, box_y, box_x][:, lit].mean(axis=1)
            row.update(dict(zip(("dapi_snr", "ck_snr", "cd45_snr"), means.round(2))))
    placed = pd.DataFrame(rows)
    placed["reads_as_ctc"] = reads_as_ctc(placed)
    placed.to_csv(out / "placed_cells.csv", index=False)
    return placed


def reads_as_ctc(placed: pd.DataFrame, sigmas: float = GATE_SIGMAS) -> np.ndarray:
    """Which placed cells the scan shows as the CellSearch definition's CTC, read over each
    cell's own pixels as the gate reads its objects: CK and DAPI over ``sigmas`` noise units,
    CD45 under them."""
    return ((placed["ck_snr"] > sigmas) & (placed["dapi_snr"] > sigmas)
            & (placed["cd45_snr"] < sigmas)).to_numpy()


def score(placed: pd.DataFrame, events: pd.DataFrame, gated: dict, px: float,
          drawn: pd.DataFrame) -> dict:
    """What ctcnet and the gate made of the placed cells of one cartridge, and their CTC calls
    on no CTC or cluster (placed, or ``drawn`` by the simulator)."""
    from ctcnet.detect.truth_matching import match_to_truth
    from ctcnet.inference.guard import counted

    events = events.reset_index(drop=True)
    is_counted = counted(events) & (events["class"] == "ctc").to_numpy()
    shown = is_counted | events["review"].to_numpy(bool) | (events["class"] == "ctc").to_numpy()
    out = {k: 0 for k in ("ctc", "ctc_counted", "ctc_counted_or_shown", "ctc_gated",
                          "ctc_readable", "readable_counted", "readable_counted_or_shown",
                          "readable_gated", "wbc", "wbc_counted_ctc", "wbc_to_review",
                          "wbc_reads_as_ctc", "wbc_read_counted_ctc",
                          "false_ctc_counted", "false_ctc_gated")}
    radius = MATCH_UM / px
    for f, t in placed.groupby("frame"):
        e = events[events["frame"] == f]
        ti, di = match_to_truth(e[["x", "y"]].to_numpy(), t[["x", "y"]].to_numpy(), radius)
        hit = dict(zip(ti, e.index.to_numpy()[di]))
        g = gated.get(f, np.zeros((0, 2)))
        gi, _ = match_to_truth(g, t[["x", "y"]].to_numpy(), radius)
        gated_cells = set(gi)
        for k, (label, readable) in enumerate(zip(t["class"], t["reads_as_ctc"])):
            out[label] += 1
            row = hit.get(k)
            if label == "ctc":
                got = {"counted": row is not None and is_counted[row],
                       "counted_or_shown": row is not None and shown[row],
                       "gated": k in gated_cells}
                for key, value in got.items():
                    out[f"ctc_{key}"] += int(value)
                    out[f"readable_{key}"] += int(value and readable)
                out["ctc_readable"] += int(readable)
            else:
                out["wbc_counted_ctc"] += int(row is not None and is_counted[row])
                # A leukocyte the scan shows as CK+, DAPI+, CD45- is a CTC by its markers.
                out["wbc_reads_as_ctc"] += int(readable)
                out["wbc_read_counted_ctc"] += int(row is not None and is_counted[row]
                                                   and not readable)
                out["wbc_to_review"] += int(row is not None and bool(events.at[row, "review"]))
    # CTC calls on nothing a CTC or cluster: the precision a gate is known to lack.
    rare = pd.concat([placed[placed["class"] == "ctc"],
                      drawn[drawn["class"].isin(["ctc", "cluster"])]])
    for f in sorted(set(events["frame"]) | set(gated)):
        t = rare[rare["frame"] == f][["x", "y"]].to_numpy()
        calls = events[(events["frame"] == f) & is_counted]
        _, di = match_to_truth(calls[["x", "y"]].to_numpy(), t, radius)
        out["false_ctc_counted"] += len(calls) - len(di)
        g = gated.get(f, np.zeros((0, 2)))
        _, gi = match_to_truth(g, t, radius)
        out["false_ctc_gated"] += len(g) - len(gi)
    return out


def main() -> int:
    """Place, predict, gate and score each family; print and write the figures."""
    import tifffile
    from merged_ctcs import simulate

    from ctcnet.inference.backends import load_backend
    from ctcnet.inference.options import PredictOptions
    from ctcnet.inference.predict import predict_cartridge
    from ctcnet.io.atomic import atomic_write_text
    from ctcnet.io.scan import open_cartridge

    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--cartridges", type=int, default=4)
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument("--events", type=int, default=300)
    parser.add_argument("--per-frame", type=int, default=6)
    parser.add_argument("--per-class", type=int, default=40, help="cells drawn per family")
    parser.add_argument("--families", default="tight,drawn,swap")
    parser.add_argument("--model", default=None)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "cells_in_scans")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    backend = load_backend(args.model)
    record = {"model": str(backend.model_path), "families": {}}
    for fi, family in enumerate(args.families.split(",")):
        cells = read_cells(family_folder(family, args.out / "cells", args.per_class,
                                         SEED + fi))
        totals: dict[str, int] = {}
        for i in range(args.cartridges):
            # Every family goes into the same cartridges, so the families differ by their
            # look alone, not by how bright a cartridge's stains are drawn.
            seed = SEED + i
            cart = simulate(args.out / f"cart_{seed}", seed, args.frames, args.events,
                            "ctc=0.004,cluster=0.001")
            placed_root = args.out / f"{family}_{seed}"
            placed = place_cells(cart, placed_root, cells, args.per_frame, seed)
            res = args.out / f"res_{family}_{seed}"
            predict_cartridge(placed_root, backend, res,
                              PredictOptions(quiet=True, overwrite=True))
            cartridge = open_cartridge(placed_root)
            px = cartridge.panel.pixel_size_um
            channels = marker_channels(cartridge.panel)
            gated = {f: gate_ctcs(tifffile.imread(placed_root / f"{fr.frame_id}.tif"),
                                  channels, px) for f, fr in enumerate(cartridge.frames)}
            got = score(placed, pd.read_parquet(res / "events.parquet"), gated, px,
                        pd.read_csv(placed_root / "ground_truth.csv"))
            print(f"{family} seed {seed} ({px:.2f} um/px): {got}", flush=True)
            for k, v in got.items():
                totals[k] = totals.get(k, 0) + v
        n_ctc, n_wbc = max(1, totals["ctc"]), max(1, totals["wbc"])
        n_readable = max(1, totals["ctc_readable"])
        n_wbc_read = max(1, totals["wbc"] - totals["wbc_reads_as_ctc"])
        summary = {**totals,
                   **{f"{key}_share": round(totals[key] / n, 3)
                      for n, keys in ((n_ctc, ("ctc_counted", "ctc_counted_or_shown",
                                               "ctc_gated", "ctc_readable")),
                                      (n_readable, ("readable_counted",
                                                    "readable_counted_or_shown",
                                                    "readable_gated")))
                      for key in keys},
                   "wbc_counted_ctc_share": round(totals["wbc_counted_ctc"] / n_wbc, 3),
                   "wbc_to_review_share": round(totals["wbc_to_review"] / n_wbc, 3),
                   "wbc_read_counted_ctc_share": round(totals["wbc_read_counted_ctc"]
                                                       / n_wbc_read, 3)}
        record["families"][family] = summary
        print(f"{family}: {json.dumps(summary)}", flush=True)
    atomic_write_text(args.out / "cells_in_scans.json", json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
