"""The classic gate ``ctcnet benchmark`` times beside predict: it counts a bright CK+ DAPI+
CD45- cell and not a CD45+ one, in one process or two; its vectorised measurements are
scikit-image's; and the ratios the record and the stage check keep."""

import numpy as np
import pytest
import tifffile

from ctcnet.evaluation.classic_gate import (
    gate_cartridge,
    gate_frame,
    marker_channels,
    measure_objects,
    object_distance,
)
from ctcnet.io.scan import open_cartridge
from ctcnet.simulate import simulate_cartridge


def paint_cells(root, pixel_um):
    """A bright CTC (DAPI nucleus in a CK body) and a bright leukocyte (DAPI nucleus in a
    CD45 body) painted into frame 0 of the cartridge at ``root``; their (x, y) centres."""
    cart = open_cartridge(root)
    dapi, ck, cd45 = marker_channels(cart.panel)
    path = cart.frames[0].files[0]
    frame = tifffile.imread(path).astype(np.float32)
    yy, xx = np.mgrid[:frame.shape[1], :frame.shape[2]]
    cells = {"ctc": (60.0, 60.0), "wbc": (200.0, 150.0)}
    for name, (x, y) in cells.items():
        r_um = np.hypot(xx - x, yy - y) * pixel_um
        frame[dapi] += np.where(r_um < 4.0, 1500.0, 0.0)
        frame[ck if name == "ctc" else cd45] += np.where(r_um < 7.0, 1500.0, 0.0)
    top = np.array([c.value_range[1] for c in cart.panel.channels])[:, None, None]
    tifffile.imwrite(path, np.clip(frame, 0, top).astype(np.uint16), photometric="minisblack")
    return cells


def near(table, xy, radius):
    return bool((np.hypot(table["x"] - xy[0], table["y"] - xy[1]) <= radius).any())


@pytest.fixture
def painted(tmp_path):
    root = tmp_path / "cart"
    simulate_cartridge(root, num_frames=2, frame_shape=(256, 320), seed=3, events_per_frame=4)
    pixel_um = float(open_cartridge(root).panel.pixel_size_um)
    return root, pixel_um, paint_cells(root, pixel_um)


def test_the_gate_counts_a_bright_ctc_and_not_a_cd45_positive_cell(painted):
    root, pixel_um, cells = painted
    one, two = gate_cartridge(root, workers=1), gate_cartridge(root, workers=2)
    assert one.frames == two.frames == 2 and one.workers == 1 and two.workers == 2
    # Two worker processes gate every frame as one does.
    assert (one.objects, one.ctcs) == (two.objects, two.ctcs)
    assert np.allclose(one.events[["x", "y"]], two.events[["x", "y"]])
    frame0 = two.events[two.events["frame"] == 0]
    radius = 4.0 / pixel_um
    ctcs = frame0[frame0["ctc"]]
    assert near(ctcs, cells["ctc"], radius)
    # The leukocyte is segmented (DAPI+) but gated out by its CD45.
    assert near(frame0, cells["wbc"], radius) and not near(ctcs, cells["wbc"], radius)
    row = frame0[np.hypot(frame0["x"] - cells["wbc"][0], frame0["y"] - cells["wbc"][1])
                 <= radius].iloc[0]
    assert row["cd45_snr"] > 3 and row["dapi_snr"] > 3
    assert two.worker_peak_rss_mb and two.worker_peak_rss_mb > 0


def test_the_vectorised_measurements_are_scikit_images():
    from scipy import ndimage
    from skimage.measure import regionprops_table

    rng = np.random.default_rng(0)
    mask = ndimage.binary_opening(ndimage.gaussian_filter(rng.random((90, 120)), 2) > 0.52)
    objects, count = ndimage.label(mask)
    # The distance map, object by object, is the whole mask's.
    assert np.array_equal(object_distance(objects), ndimage.distance_transform_edt(mask))
    snr = rng.normal(size=(3, 90, 120)).astype(np.float32)
    ours = measure_objects(objects, snr, count)
    theirs = regionprops_table(objects, intensity_image=np.moveaxis(snr, 0, -1),
                               properties=("centroid", "intensity_mean", "area"))
    assert len(ours) == count > 5
    assert np.allclose(ours["x"], theirs["centroid-1"]) and np.allclose(ours["y"],
                                                                         theirs["centroid-0"])
    assert np.array_equal(ours["area_px"], theirs["area"])
    for k, name in enumerate(("dapi_snr", "ck_snr", "cd45_snr")):
        assert np.allclose(ours[name], theirs[f"intensity_mean-{k}"], atol=1e-5)


def test_a_frame_without_objects_gives_an_empty_table():
    frame = np.full((3, 64, 64), 100.0, np.float32)
    table = gate_frame(frame, (0, 1, 2), 0.8)
    assert len(table) == 0 and "ctc" in table


def test_the_peer_ratios_and_the_gpu_lines():
    from ctcnet.benchmark.peer import _scaling, gpu_lines, peer_ratios
    from ctcnet.benchmark.render_stages import render_peer

    def timing(v):
        return {"median": v, "min": v, "max": v, "n": 1}

    peer = {"by_workers": {"1": {"wall_s": timing(40.0), "peak_rss_mb": 200.0,
                                 "worker_peak_rss_mb": None, "objects": 9, "ctcs": 2},
                           "2": {"wall_s": timing(20.0), "peak_rss_mb": 150.0,
                                 "worker_peak_rss_mb": 180.0, "objects": 9, "ctcs": 2}}}
    peer["scaling"] = _scaling(peer["by_workers"])
    procs = {"cartridges": 2, "by_processes": {"1": {"wall_s": timing(36.0)},
                                               "2": {"wall_s": timing(30.0)}}}
    procs["scaling"] = _scaling(procs["by_processes"])
    row = {"frames": 175, "events": 50000, "total_s": timing(30.0), "peak_rss_mb": 600.0,
           "floors_s": {"read_s": 1.5, "classify_s": 20.0},
           "stages_inline_s": {"read": 2.0, "detect": 10.0, "crop": 6.0, "guard": 12.0,
                               "classify": 20.0, "write": 2.0, "report": 3.0, "total": 55.0}}
    q = peer_ratios(row, peer, procs)
    assert q["predict_to_peer_2"] == pytest.approx(1.5)
    assert q["predict_to_peer_1"] == pytest.approx(0.75)
    # The total less classify and the report (32 s) over classify (20 s).
    assert q["around_network_to_network"] == pytest.approx(1.6)
    assert q["around_network_ms_per_event"] == pytest.approx(0.64)
    assert q["total_to_model"] == pytest.approx(1.5)
    assert q["peer_scaling"] == pytest.approx(2.0)
    assert q["predict_processes_scaling"] == pytest.approx(1.2)
    # A size without the inline run or the peers has none of theirs.
    bare = peer_ratios({**row, "stages_inline_s": None}, None, None)
    assert bare["around_network_to_network"] is None and bare["predict_to_peer_2"] is None
    # The GPU's lines are made on any machine, and shown where the record has them.
    gpu = gpu_lines(row, procs, 175)
    assert gpu["total_to_read_floor"] == pytest.approx(20.0)
    assert gpu["cartridges_per_hour"] == pytest.approx(120.0)
    assert gpu["best_processes"] == {"processes": 2, "cartridges_per_hour": 120.0}
    row.update(peer=peer, predict_processes=procs, peer_ratios=q)
    text = "\n".join(render_peer({"rows": [row]}))
    assert "| classic gate | 2 | 20.0 (20.0-20.0) | 150 + 2 x 180 | 9 | 2 |" in text
    assert "with 2 workers 1.50x (aim: 1.00x or less" in text
    assert "1.60x the network's own" in text
    assert "On the GPU" not in text
    text = "\n".join(render_peer({"rows": [{**row, "gpu": gpu}]}))
    assert "On the GPU: the wall 20.00x the read floor; 120 cartridges of 175 frames" in text


def test_the_stage_check_holds_the_peer_ratios_and_records_only_new_ones():
    from ctcnet.benchmark.stages import compare_ratios, peer_check_ratios, with_new_ratios

    per_event = {"read": 0.1, "detect": 0.2, "crop": 0.1, "guard": 0.4, "classify": 0.5,
                 "write": 0.0, "report": 0.3, "total": 1.6}
    ratios = peer_check_ratios(per_event, 0.8, 0.8)
    assert ratios == {"around_network_x_network": 1.6, "total_x_peer": 2.0}
    assert peer_check_ratios(per_event, 0.8, None) == {"around_network_x_network": 1.6}
    failures = compare_ratios({"total_x_peer": 3.5}, {"total_x_peer": 2.0})
    assert failures and failures[0].startswith("total_x_peer: 3.500x (predict's total")
    # Recording the new ratios leaves every recorded one as it was.
    ours = {"cpu": "A", "cpu_model": "m"}
    baseline = {"ratios": {"crop": 0.8, "guard": 1.0},
                "machines": [{"machine": ours, "ratios": {"crop": 0.5, "guard": 1.0}},
                             {"machine": {"cpu": "B"}, "ratios": {"crop": 0.8, "guard": 0.7}}]}
    result = {"machine": ours, "ratios": {"crop": 9.0, "guard": 9.0, **ratios}}
    merged = with_new_ratios(baseline, result)
    assert merged["machines"][0]["ratios"] == {"crop": 0.5, "guard": 1.0, **ratios}
    assert merged["machines"][1] == baseline["machines"][1]
    assert merged["ratios"] == {"crop": 0.8, "guard": 1.0, **ratios}
    assert baseline["machines"][0]["ratios"] == {"crop": 0.5, "guard": 1.0}  # not changed
