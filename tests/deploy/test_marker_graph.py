"""The guard's measurements as torch graph ops: the values of ``guard.measure`` (up to float
rounding) on simulated crops, the fusion head's probabilities those of
``marker_fusion.fused_proba``, and the cartridge fusion's those predict gives a frame's events."""

import numpy as np
import pytest
import torch

from ctcnet.deploy.marker_graph import COLUMNS, FusionHead, MarkerGraph
from ctcnet.deploy.scan_fusion_graph import ScanFusionHead
from ctcnet.inference.guard import measure, measure_for_guard_start
from ctcnet.inference.marker_fusion import MEASURES, SCAN_FUSION, feature_names, fused_proba
from ctcnet.inference.scan_fusion import apply_scan_fusion
from ctcnet.io.panel import load_panel
from ctcnet.io.taxonomy import load_taxonomy
from ctcnet.nn.spec import ModelSpec
from ctcnet.simulate import simulate_crops

CLASSES = ["ctc", "wbc", "cluster", "debris"]


@pytest.fixture(scope="module")
def measured():
    panel = load_panel({"channels": ["DAPI", "CK", "CD45"], "pixel_size_um": 0.64})
    crops = np.asarray(simulate_crops(8, panel, crop_size=64, seed=11).images, np.float32)
    crops[0, 1, 28:36, 28:36] = 4095.0  # a saturated CK core
    # A cell without a CK area (CD45 read over its core) and one whose CD45 is clipped at the
    # camera's ceiling: the rest of the guard's CD45 line.
    rng = np.random.default_rng(3)
    crops[1, 1] = rng.normal(np.median(crops[1, 1]), 3.0, crops[1, 1].shape)
    crops[2, 2, 26:38, 26:38] = 4095.0
    with torch.inference_mode():
        got = MarkerGraph(panel, 64, 0.64)(torch.from_numpy(crops)).numpy()
    return got, measure(crops, panel, 0.64)


def guards(ref, column: str, panel) -> np.ndarray:
    """The guard's value of a graph column: its own column, or for ``cd45_peak`` its
    ``peak_<k>`` of the CD45 channel before the arcsinh."""
    if column == "cd45_peak":
        return np.sinh(ref[f"peak_{panel.index_of_role('leukocyte')}"].to_numpy(np.float64))
    return ref[column].to_numpy(np.float64)


@pytest.mark.parametrize("column", COLUMNS[:-1])
def test_each_column_is_the_guards(measured, column):
    got, ref = measured
    panel = load_panel({"channels": ["DAPI", "CK", "CD45"], "pixel_size_um": 0.64})
    np.testing.assert_allclose(got[:, COLUMNS.index(column)], guards(ref, column, panel),
                               rtol=1e-4, atol=1e-4)


def test_the_rest_of_the_cd45_line_is_read(measured):
    """The crops the fixture made for it read CD45 over a cell's core (no CK area) and at the
    ceiling, so the columns' parity above is not of NaN and zeros alone."""
    got, ref = measured
    assert ref["ck_area"][1] == 0 and np.isfinite(got[1, COLUMNS.index("cd45_over_cell")])
    assert np.isnan(got[0, COLUMNS.index("cd45_over_cell")])
    assert got[2, COLUMNS.index("cd45_at_ceiling")] > 0.2


def test_a_known_leak_is_the_guards_in_the_graph_too():
    """A panel stating its instrument's leak (CK into CD45 at 30 %) raises the allowance the
    graph's leak fits use, as it does the guard's."""
    from ctcnet.simulate import SimConfig

    panel = load_panel({"channels": ["DAPI", "CK", "CD45", "CD61"], "pixel_size_um": 0.64})
    config = SimConfig(instrument_bleed=(("CK", "CD45", 0.30),))
    crops = np.asarray(simulate_crops(6, panel, crop_size=64, seed=12, config=config).images,
                       np.float32)
    known = panel.with_leaks("CK", {"CD45": 0.3})
    with torch.inference_mode():
        got = MarkerGraph(known, 64, 0.64)(torch.from_numpy(crops)).numpy()
    ref = measure(crops, known, 0.64)
    # A leak fit whose share lies inside its bounds is a stopped descent, not a closed form:
    # float32 against numpy's rounding leaves a few 1e-4 noise units there (thresholds sit at
    # 1-2 noise units).
    for column in ("cd45_over_ck", "exclusion_around_ck", "partner_um2"):
        np.testing.assert_allclose(got[:, COLUMNS.index(column)],
                                   ref[column].to_numpy(np.float64), rtol=1e-4, atol=1e-3)
    assert not np.allclose(ref["cd45_over_ck"], measure(crops, panel, 0.64)["cd45_over_ck"],
                           equal_nan=True)


def test_the_flood_fill_finished(measured):
    got, _ = measured
    assert not got[:, COLUMNS.index("area_unfinished")].any()


def test_fusion_head_is_fused_proba(measured):
    # The head alone: it reads the numpy measurements (laid out as the graph's columns), so
    # the comparison is of the fusion's arithmetic, not of the measurements' float rounding
    # (which random weights would magnify).
    _, ref = measured
    got = np.full((len(ref), len(COLUMNS)), np.nan, np.float32)
    for column in MEASURES:
        got[:, COLUMNS.index(column)] = ref[column].to_numpy(np.float32)
    rng = np.random.default_rng(0)
    features = feature_names(CLASSES)
    fusion = {"format": 1, "classes": CLASSES, "features": features,
              "mean": rng.normal(0, 1, len(features)).tolist(),
              "scale": rng.uniform(0.5, 2, len(features)).tolist(),
              "weights": rng.normal(0, 1, (4, len(features))).tolist(),
              "bias": rng.normal(0, 1, 4).tolist()}
    proba = rng.dirichlet(np.ones(4), len(got)).astype(np.float32)
    with torch.inference_mode():
        fused = FusionHead(fusion, CLASSES)(torch.from_numpy(proba), torch.from_numpy(got))
    np.testing.assert_allclose(fused.numpy(), fused_proba(fusion, proba, ref, CLASSES),
                               atol=1e-5)



def test_cartridge_fusion_head_is_predicts():
    """The cartridge fusion in the graph gives the posterior predict's
    ``apply_scan_fusion`` gives a frame's events, on the graph's own measurements; among
    them a CK+ cell whose DAPI is gone, whose DAPI shape of its own predict does not read
    (the fusion was fitted so)."""
    panel = load_panel({"channels": ["DAPI", "CK", "CD45"], "pixel_size_um": 0.64})
    batch = simulate_crops(4, panel, crop_size=64, seed=12)
    crops = np.asarray(batch.images, np.float32)
    rng = np.random.default_rng(1)
    bare = list(batch.labels).index("ctc")
    crops[bare, 0] = rng.normal(np.median(crops[bare, 0]), 4.0, crops[bare, 0].shape)
    spec = ModelSpec("compact", panel, load_taxonomy(CLASSES), crop_size=64)
    features = feature_names(CLASSES)
    # Every event passes the gate (a counted class at 1 % or more of the Dirichlet draws).
    fusion = {"format": 1, "classes": CLASSES, "features": features,
              "mean": rng.normal(0, 1, len(features)).tolist(),
              "scale": rng.uniform(0.5, 2, len(features)).tolist(),
              "weights": rng.normal(0, 1, (4, len(features))).tolist(),
              "bias": rng.normal(0, 1, 4).tolist(), "gate": {"counted_p": 0.0}}
    spec = spec.replace(metrics={SCAN_FUSION: fusion})
    proba = rng.dirichlet(np.ones(4), len(crops)).astype(np.float32)
    measured, start = measure_for_guard_start(crops, spec)
    want, _, rows = apply_scan_fusion(proba, crops, measured, spec, start)
    with torch.inference_mode():
        graph = MarkerGraph(panel, 64, 0.64)(torch.from_numpy(crops))
        got = ScanFusionHead(fusion, CLASSES, panel)(torch.from_numpy(proba), graph).numpy()
    assert rows.all() and np.isnan(measured["dna_own_structure"][bare]) and \
        np.isfinite(graph[bare, COLUMNS.index("dna_own_structure")].item())
    np.testing.assert_allclose(got, want, atol=1e-4)
    # CD45 over every CK area, and a fusion so sure of CTC that the rest underflows float32:
    # no CTC probability, and a distribution still (a row of zeros is called ctc).
    sure = {**fusion, "weights": np.zeros((4, len(features))).tolist(),
            "bias": [110.0, 0.0, 0.0, 0.0]}
    positive = graph.clone()
    positive[:, COLUMNS.index("cd45_over_ck")] = 50.0
    with torch.inference_mode():
        got = ScanFusionHead(sure, CLASSES, panel)(torch.from_numpy(proba), positive).numpy()
    assert (got[:, 0] == 0).all()
    np.testing.assert_allclose(got.sum(axis=1), 1.0, rtol=1e-5)
    # The rest of the guard's line: CD45 over the core of a cell without a CK area, or clipped
    # at the ceiling over a share of its area.
    for column, value in (("cd45_over_cell", 50.0), ("cd45_at_ceiling", 0.5)):
        positive = graph.clone()
        positive[:, COLUMNS.index("ck_area")] = 0.0 if column == "cd45_over_cell" else 30.0
        positive[:, COLUMNS.index(column)] = value
        with torch.inference_mode():
            got = ScanFusionHead(sure, CLASSES, panel)(torch.from_numpy(proba), positive).numpy()
        assert (got[:, 0] == 0).all(), column
