"""scripts/cells_in_scans.py: exported-style cells placed into a simulated scan are where its
truth says, found by detection, and a placed CTC passes the classic gate while a placed
leukocyte does not; each placed cell's readings say what the scan shows of it."""

from pathlib import Path

import numpy as np
import pandas as pd
import tifffile
from conftest import load_script

from ctcnet.detect.detection import detect_events
from ctcnet.io.scan import open_cartridge
from ctcnet.simulate import simulate_cartridge

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def drawn_cell(label: str, ck: int = 220) -> np.ndarray:
    """A 120 px composite: a nucleus (B) in a CK body (R, at ``ck`` of 255) for a CTC, in a
    CD45 ring (G) for a leukocyte."""
    yy, xx = np.mgrid[:120, :120] - 60
    r = np.hypot(yy, xx)
    rgb = np.zeros((120, 120, 3), np.uint8)
    rgb[..., 2] = np.where(r < 25, 230, 0)
    if label == "ctc":
        rgb[..., 0] = np.where(r < 45, ck, 0)
    else:
        rgb[..., 1] = np.where((r > 35) & (r < 45), 220, 0)
    return rgb


def near(xy: np.ndarray, cell, radius: float) -> bool:
    return bool(len(xy)) and bool((np.hypot(xy[:, 0] - cell.x, xy[:, 1] - cell.y)
                                   <= radius).any())


def test_placed_cells_are_found_and_gated_by_their_markers(tmp_path):
    script = load_script(SCRIPTS / "cells_in_scans.py")
    simulate_cartridge(tmp_path / "cart", None, num_frames=2, frame_shape=(400, 480),
                       events_per_frame=15, seed=4)
    cells = [("ctc", drawn_cell("ctc")), ("wbc", drawn_cell("wbc"))]
    placed = script.place_cells(tmp_path / "cart", tmp_path / "placed", cells, per_frame=4,
                                seed=1)
    assert set(placed["class"]) == {"ctc", "wbc"}
    assert (tmp_path / "placed" / "placed_cells.csv").exists()
    cartridge = open_cartridge(tmp_path / "placed")
    px = cartridge.panel.pixel_size_um
    names = [n.upper() for n in cartridge.panel.names]
    channels = [names.index("DAPI"), names.index("CK"), names.index("CD45")]
    found = gated_ctc = gated_wbc = 0
    for f, frame_ref in enumerate(cartridge.frames):
        frame = tifffile.imread(tmp_path / "placed" / f"{frame_ref.frame_id}.tif")
        events = detect_events(frame.astype(np.float32), cartridge.panel)
        gate = script.gate_ctcs(frame, channels, px)
        for _, cell in placed[placed["frame"] == f].iterrows():
            found += near(events[["x", "y"]].to_numpy(), cell, 8.0 / px)
            gated_ctc += cell["class"] == "ctc" and near(gate, cell, 8.0 / px)
            gated_wbc += cell["class"] == "wbc" and near(gate, cell, 8.0 / px)
    n_ctc = int((placed["class"] == "ctc").sum())
    assert found == len(placed)
    assert gated_ctc == n_ctc and gated_wbc == 0
    # The frames outside the placed cells are the simulator's own.
    original = pd.read_csv(tmp_path / "cart" / "ground_truth.csv")
    assert len(pd.read_csv(tmp_path / "placed" / "ground_truth.csv")) == len(original)


def test_placed_cells_say_what_the_scan_shows_of_them(tmp_path):
    """A CTC composite whose CK the export hardly shows is placed as a bare nucleus: its
    readings (the gate's noise units over its own pixels) do not make it a CTC, while a
    CK-bright CTC's do and a leukocyte's CD45 ring keeps it none."""
    script = load_script(SCRIPTS / "cells_in_scans.py")
    simulate_cartridge(tmp_path / "cart", None, num_frames=1, frame_shape=(400, 480),
                       events_per_frame=10, seed=5)
    for name, cell in (("bright", drawn_cell("ctc")), ("faint", drawn_cell("ctc", ck=1))):
        placed = script.place_cells(tmp_path / "cart", tmp_path / name,
                                    [("ctc", cell), ("wbc", drawn_cell("wbc"))], per_frame=2,
                                    seed=1)
        first = placed.iloc[0]  # the first place of a frame takes a CTC
        assert first["dapi_snr"] > 3
        assert bool(first["reads_as_ctc"]) == (name == "bright")
        assert not placed.loc[placed["class"] == "wbc", "reads_as_ctc"].any()
        written = pd.read_csv(tmp_path / name / "placed_cells.csv")
        assert list(written["reads_as_ctc"]) == list(placed["reads_as_ctc"])
