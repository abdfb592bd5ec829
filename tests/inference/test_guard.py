"""The marker-consistency guard: CTC/cluster calls that the measured markers contradict, and
events unlike the training data, are flagged; leaks and other classes are not."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from ctcnet.inference.guard import (
    CLUSTER_PARTNER,
    FLAGS,
    MARKERS_CTC,
    MARKERS_VOUCH,
    ON_DEMAND_COLUMNS,
    RULES,
    TABLE_MEASURES,
    box_least_squares,
    counted,
    fit_reference,
    guard_events,
    guard_summary,
    marker_calls,
    markers_overrule,
    measure,
    review_flags,
)
from ctcnet.inference.guard.rules import MARKERS_DEBRIS_CTC
from ctcnet.io.panel import default_panel, load_panel
from ctcnet.io.taxonomy import default_taxonomy, load_taxonomy
from ctcnet.nn.spec import ModelSpec

SIZE = 64
DAPI, CK, CD45, CD61, CD66B = range(5)


@pytest.fixture()
def spec():
    return ModelSpec(arch="compact", panel=default_panel(), taxonomy=default_taxonomy(),
                     crop_size=SIZE)


def cell(rng, ck=300.0, dapi=400.0, cd45=0.0, leak_into_cd45=0.0, noise=3.0):
    """One (5, H, W) crop: a CK disk (radius 8 px) round a nucleus, optional CD45 ring."""
    x = 100.0 + rng.normal(0, noise, (5, SIZE, SIZE))
    yy, xx = np.mgrid[:SIZE, :SIZE] - (SIZE - 1) / 2
    r = np.hypot(yy, xx)
    x[CK] += ck * (r <= 8)
    x[DAPI] += dapi * (r <= 4)
    x[CD45] += cd45 * ((r > 6) & (r <= 9)) + leak_into_cd45 * ck * (r <= 8)
    return x.astype(np.float32)


def onehot(names, spec):
    return np.eye(spec.num_classes)[[spec.class_names.index(n) for n in names]]


def test_marker_flags_fire_only_on_contradicted_ctc_calls(rng, spec):
    crops = np.stack([
        cell(rng),                                # a clean CTC
        cell(rng, ck=2000, leak_into_cd45=0.08),  # a bright CTC leaking 8 % into CD45
        cell(rng, cd45=80),                       # CK+CD45+: a leukocyte
        cell(rng, dapi=0),                        # CK without DNA: debris
        cell(rng, ck=0, cd45=80),                 # a plain leukocyte
        cell(rng, cd45=80),                       # CK+CD45+ called wbc: nothing to flag
    ])
    proba = onehot(["ctc", "ctc", "ctc", "cluster", "ctc", "wbc"], spec)
    flags = review_flags(crops, proba, spec)
    assert list(flags.columns) == [*FLAGS, "any", MARKERS_CTC, MARKERS_VOUCH, CLUSTER_PARTNER,
                                   *TABLE_MEASURES]
    assert flags["any"].tolist() == [False, False, True, True, True, False]
    # A leukocyte without CK called a CTC: its CD45 is read over the cell instead.
    assert flags["cd45_positive"].tolist() == [False, False, True, False, True, False]
    assert flags["no_dna"].tolist() == [False, False, False, True, False, False]
    assert flags["no_ck"].tolist() == [False, False, False, False, True, False]
    assert not flags["unusual"].any()  # no reference in this spec


def test_on_an_epcam_panel_a_ctc_call_needs_ck_or_epcam_and_no_cd45_over_the_cell(rng):
    """EpCAM may stand for CK on a CTC, so a call without CK is not held where EpCAM is lit;
    one lit in neither is a guess from shape alone, and a leukocyte's CD45 is read over the
    cell where there is no CK area to read it over."""
    panel = load_panel({"channels": ["DAPI", "CK", "CD45", "EpCAM"]})
    spec = ModelSpec(arch="compact", panel=panel, taxonomy=default_taxonomy(), crop_size=SIZE)
    epcam = panel.index_of_role("epcam")

    def crop(ck=300.0, cd45=0.0, lit=0.0, dapi_leak=0.0):
        x = cell(rng, ck=ck, cd45=cd45)[[DAPI, CK, CD45, CD61]]   # CD61's plane: noise
        yy, xx = np.mgrid[:SIZE, :SIZE] - (SIZE - 1) / 2
        x[epcam] += lit * ((np.hypot(yy, xx) > 6) & (np.hypot(yy, xx) <= 9))
        x[epcam] += dapi_leak * (x[DAPI] - 100)  # DAPI seen through the EpCAM filter
        return x

    # A bare nucleus whose DAPI leaks 6 % into EpCAM (a scanner's spillover) lights EpCAM
    # over every nucleus: that is no EpCAM of its own.
    crops = np.stack([crop(), crop(ck=0), crop(ck=0, lit=200), crop(ck=0, cd45=80),
                      crop(ck=0, lit=200, cd45=80), crop(ck=0, lit=200, cd45=80),
                      crop(ck=0, dapi_leak=0.06), crop(ck=0, lit=200, dapi_leak=0.06)])
    flags = review_flags(crops, onehot(["ctc"] * 5 + ["wbc"] + ["ctc"] * 2, spec), spec)
    assert flags["no_ck"].tolist() == [False, True, False, True, False, False, True, False]
    assert flags["cd45_positive"].tolist() == [False, False, False, True, True, False, False,
                                               False]
    assert flags["any"].tolist() == [False, True, False, True, True, False, True, False]
    m = measure(crops, panel, 0.64)
    assert m["vouch_peak"][2] > 20 > 2 > max(m["vouch_peak"][1], m["vouch_peak"][6])
    assert (crops[6, epcam].max() - 100) / 3.0 > 5  # lit 5 noise units over by the leak
    assert m["cd45_over_cell"][3] > 5 > 1 > m["cd45_over_cell"][1]
    # The shipped panel has neither marker: nothing vouches, and no_ck reads the CK area.
    assert measure(crops[:1, [0, 1, 2, 3, 3]], default_panel(), 0.64)["vouch_peak"].isna().all()


def test_cd45_at_the_cameras_ceiling_over_a_ctc_call_is_cd45_positive(rng, spec):
    """An aggregate saturated in every channel: its clipped pixels hold no ratio, so CD45 over
    its CK area read nothing, and it was counted as a CTC; CD45 at the ceiling is no leak."""
    top = spec.panel.channels[CD45].value_range[1]
    blob = cell(rng, ck=5000, dapi=5000)
    blob[CD45] += 5000 * (np.hypot(*(np.mgrid[:SIZE, :SIZE] - (SIZE - 1) / 2)) <= 8)
    bright_ctc = cell(rng, ck=5000, dapi=5000)  # CK and DAPI clipped, CD45 not
    crops = np.minimum(np.stack([blob, bright_ctc]), top)
    flags = review_flags(crops, onehot(["ctc", "ctc"], spec), spec)
    assert flags["cd45_positive"].tolist() == [True, False]
    m = measure(crops, spec.panel, 0.64)
    assert m["cd45_at_ceiling"][0] > 0.5 and m["cd45_at_ceiling"][1] == 0


def test_leak_is_not_cd45_but_real_cd45_beside_it_is(rng, spec):
    m = measure(np.stack([cell(rng, ck=3000, leak_into_cd45=0.1),
                          cell(rng, ck=3000, cd45=60)]), spec.panel, 0.64)
    assert m["cd45_over_ck"][0] < 1.0 < 5.0 < m["cd45_over_ck"][1]


def test_a_ctc_saturated_at_the_ceiling_keeps_its_ck_area(rng, spec):
    """A 12-bit scan clips the brightest CTCs' whole cytoplasm: that is CK, not its absence.
    The CD45 check still reads the unclipped rim."""
    yy, xx = np.mgrid[:SIZE, :SIZE] - (SIZE - 1) / 2
    glow = np.exp(-(yy ** 2 + xx ** 2) / (2 * 6.0 ** 2))
    bright = cell(rng, ck=0)
    bright[CK] += 20000 * glow      # clipped out to r ~ 9 px, CK above noise to r ~ 20
    with_cd45 = bright.copy()
    ring = np.hypot(yy, xx)
    with_cd45[CD45] += 150 * ((ring > 11) & (ring <= 15))
    crops = np.minimum(np.stack([bright, with_cd45]), spec.panel.channels[CK].value_range[1])
    assert (crops[:, CK, SIZE // 2, SIZE // 2] == 4095).all()
    m = measure(crops, spec.panel, 0.64)
    assert (m["ck_area"] > 0).all()
    flags = review_flags(crops, onehot(["ctc", "ctc"], spec), spec)
    assert flags["no_ck"].tolist() == [False, False]
    assert flags["no_dna"].tolist() == [False, False]
    assert flags["cd45_positive"].tolist() == [False, True]
    # A clipped CK is no template for the copy check: the rim left would read as a copy.
    assert m["dna_own_structure"].isna().all()
    assert not flags["dna_copies_ck"].any()


def test_a_bright_neighbour_does_not_take_a_dim_ctcs_ck_area(rng, spec):
    """The CK area's level follows the centred object, not the brightest CK in the disk."""
    dim = cell(rng, ck=25)
    yy, xx = np.mgrid[:SIZE, :SIZE] - (SIZE - 1) / 2
    dim[CK] += 3000 * (np.hypot(yy, xx - 15) <= 3)   # 15 px = 9.6 um away: inside the disk
    m = measure(dim[None], spec.panel, 0.64)
    assert m["ck_peak"][0] > 200 and m["ck_area"][0] > 100
    assert not review_flags(dim[None], onehot(["ctc"], spec), spec)["any"][0]


def test_box_least_squares_is_the_bounded_solution(rng):
    """Against scipy's bounded least squares, on collinear problems (nucleus inside
    cytoplasm) where solving freely and clipping afterwards goes wrong."""
    from scipy.optimize import lsq_linear

    n, k, p = 40, 4, 200
    base = rng.normal(size=(n, 1, p))
    design = base + 0.3 * rng.normal(size=(n, k, p))         # strongly correlated columns
    truth = rng.uniform(-0.05, 0.2, (n, k))
    target = np.einsum("nk,nkp->np", truth, design) + 0.05 * rng.normal(size=(n, p))
    gram = np.einsum("nip,njp->nij", design, design)
    got = box_least_squares(gram, np.einsum("nip,np->ni", design, target), 0.0, 0.12)
    want = np.stack([lsq_linear(design[i].T, target[i], bounds=(0.0, 0.12)).x
                     for i in range(n)])
    np.testing.assert_allclose(got, want, atol=2e-3)
    free = np.linalg.solve(gram, np.einsum("nip,np->ni", design, target)[..., None])[..., 0]
    clipped = np.clip(free, 0.0, 0.12)
    assert np.abs(clipped - want).max() > 0.02   # the problems are ones where clipping fails


def test_box_least_squares_takes_a_bound_per_row(rng):
    """Bounds given per row solve each row as under its own bound."""
    n, k, p = 12, 2, 100
    design = rng.normal(size=(n, 1, p)) + 0.3 * rng.normal(size=(n, k, p))
    target = np.einsum("nk,nkp->np", rng.uniform(0.0, 0.4, (n, k)), design)
    gram = np.einsum("nip,njp->nij", design, design)
    rhs = np.einsum("nip,np->ni", design, target)
    high = np.where(np.arange(n) % 2, 0.4, 0.12)
    got = box_least_squares(gram, rhs, 0.0, high)
    for bound in (0.12, 0.4):
        rows = high == bound
        np.testing.assert_array_equal(got[rows],
                                      box_least_squares(gram[rows], rhs[rows], 0.0, bound))


def test_an_exports_cd45_that_is_only_a_copy_of_ck_is_no_cd45(rng, spec):
    """A display export's CD45 plane showing a dim-CK CTC's CK at 28 % (published dim-CK CTCs
    show 15-30 %) reads CD45-negative: a copy of CK with no shape of its own. A CD45 membrane
    of the same brightness beside CK keeps reading CD45-positive, and a scan (whose leaks are
    the dyes' spillover, at most 12 %) reads the copy as CD45."""
    from ctcnet.inference.guard import RULES

    crops = np.stack([cell(rng, leak_into_cd45=0.28), cell(rng, cd45=84.0)])
    export = measure(crops, spec.panel, 0.64, RULES.for_crops(True))["cd45_over_ck"]
    scan = measure(crops, spec.panel, 0.64, RULES.for_crops(False))["cd45_over_ck"]
    assert export[0] < 1.0 < RULES.cd45_level < export[1]
    assert scan[0] > RULES.cd45_level and scan[1] > RULES.cd45_level
    # At the export's plain allowance (no copy read) the copy would be CD45.
    plain = measure(crops[:1], spec.panel, 0.64, RULES.with_leak(RULES.export_max_leak))
    assert plain["cd45_over_ck"][0] > RULES.cd45_level


def test_on_exports_the_cd45_line_sits_above_jpeg_crosstalk(rng, spec):
    """CD45 reading 2-3 noise units over the CK area (what JPEG's crosstalk of a bright CK
    plane leaves on an 8-bit export) makes a CTC call CD45-positive on a scan, not on an
    export; a leukocyte's CD45 is positive on both."""
    from ctcnet.inference.guard import RULES

    crops = np.stack([cell(rng, cd45=15.0), cell(rng, cd45=80.0)])
    proba = onehot(["ctc", "ctc"], spec)
    exports = RULES.for_crops(True)
    assert RULES.cd45_level < exports.cd45_level == RULES.export_cd45_level
    reading = measure(crops, spec.panel, spec.pixel_size_um, exports)["cd45_over_ck"]
    assert RULES.cd45_level < reading[0] < exports.cd45_level < reading[1]
    scan = review_flags(crops, proba, spec, RULES.for_crops(False))["cd45_positive"]
    export = review_flags(crops, proba, spec, exports)["cd45_positive"]
    assert scan.tolist() == [True, True]
    assert export.tolist() == [False, True]


def test_ctcs_leaking_10_percent_into_every_channel_are_not_cd45_positive(spec):
    """The simulator's strongest bleed-through (every ordered pair 8-10 %) on clean CTCs: the
    CD45 they show is leaks, and the guard must remove it (the fitted leak shares are
    bounded; solving freely and clipping read some of it as CD45)."""
    import dataclasses

    from ctcnet.simulate import SimConfig, simulate_crops

    cfg = dataclasses.replace(SimConfig(), neighbours=(0.0, 0.0), bleed_through=(0.08, 0.10))
    crops = simulate_crops({"ctc": 120}, spec.panel, spec.taxonomy, SIZE, seed=5,
                           config=cfg).images.astype(np.float32)
    flags = review_flags(crops, onehot(["ctc"] * len(crops), spec), spec)
    assert not flags["cd45_positive"].any()
    assert flags["no_ck"].mean() <= 0.01


def test_unusual_events_are_flagged_against_the_stored_reference(rng, spec):
    names = ["ctc", "wbc"] * 40
    train = np.stack([cell(rng, ck=rng.uniform(150, 600), dapi=rng.uniform(200, 600))
                      if n == "ctc" else cell(rng, ck=0, cd45=rng.uniform(40, 120))
                      for n in names])
    targets = np.array([spec.class_names.index(n) for n in names])
    spec = spec.replace(metrics={"guard": fit_reference(train, targets, spec)})
    typical = np.stack([cell(rng, ck=300), cell(rng, ck=0, cd45=80)])
    odd = np.stack([cell(rng, ck=300) + 3000.0 * (cell(rng, ck=1, dapi=1) > 100.5)])
    proba = onehot(["ctc", "wbc"], spec)
    assert not review_flags(typical, proba, spec)["unusual"].any()
    assert review_flags(odd, onehot(["ctc"], spec), spec)["unusual"].all()
    # Off the reference too, called debris: shown where a CTC's CK and nucleus could hide a
    # CTC, not for a CK body without DNA (a tdEV-like event), whose doubt changes no count.
    odd_debris = np.stack([cell(rng, ck=3000, dapi=3000), cell(rng, ck=3000, dapi=0)])
    flags = review_flags(odd_debris, onehot(["debris", "debris"], spec), spec)
    assert flags["unusual"].tolist() == [True, False]
    # Called ctc, the first of them: its markers meet the CellSearch definition on their own
    # (CK, a nucleus of its own, no CD45), so the call rests on them, not on the network's
    # reading of an odd profile, and is counted, not held.
    assert not review_flags(odd_debris[:1], onehot(["ctc"], spec), spec)["unusual"].any()
    # The same CK and nucleus with a CD45 membrane round them, called a leukocyte: a CK+CD45+
    # leukocyte, which the CellSearch line keeps one; called ctc, shown whatever its CD45.
    odd_wbc = np.stack([cell(rng, ck=3000, dapi=3000, cd45=300)] * 2)
    flags = review_flags(odd_wbc, onehot(["wbc", "ctc"], spec), spec)
    assert flags["unusual"].tolist() == [False, True]
    # A model whose taxonomy reports a class of the lab's own (here the leukocytes, as a lab
    # counting them would): its odd calls are held like a CTC's, whatever their markers.
    lab = spec.replace(taxonomy=load_taxonomy({"classes": spec.class_names,
                                               "reported": ["ctc", "cluster", "wbc"]}))
    assert review_flags(odd_wbc[:1], onehot(["wbc"], lab), lab)["unusual"].all()


def test_guard_events_sends_flags_to_review_and_counts_them(rng, spec):
    crops = np.stack([cell(rng), cell(rng, cd45=80), cell(rng, dapi=0)])
    proba = onehot(["ctc", "ctc", "wbc"], spec) * 0.98 + 0.005
    events = pd.DataFrame({"model_class": ["ctc", "ctc", "wbc"],
                           "review": [False, False, False]})
    out = guard_events(events, crops, proba, spec)
    assert out["guard"].tolist() == ["", "cd45_positive", ""]
    assert out["review"].tolist() == [False, True, False]
    summary = guard_summary(out, spec)
    assert summary["flagged"] == 1 and summary["by_flag"]["cd45_positive"] == 1
    assert summary["by_call"]["ctc"] == 1
    assert guard_summary(guard_events(events.iloc[:0], None, proba[:0], spec), spec)[
        "flagged"] == 0


def test_the_guard_checks_the_call_it_is_given(rng, spec):
    """The flags follow the call predict made (``model_class``), not one the guard makes
    again from the probabilities: here the table says ``ctc`` where the probabilities, read
    without the table's rule, lean to ``wbc``."""
    crops = np.stack([cell(rng, cd45=80), cell(rng, cd45=80)])
    proba = onehot(["wbc", "wbc"], spec) * 0.6 + onehot(["ctc", "ctc"], spec) * 0.4
    events = pd.DataFrame({"model_class": ["ctc", "wbc"], "review": [False, False]})
    out = guard_events(events, crops, proba, spec)
    assert out["guard"].tolist() == ["cd45_positive", ""]
    flags = review_flags(crops, proba, spec, called=np.array(["ctc", "failed"], object))
    assert flags["cd45_positive"].tolist() == [True, False]  # a failed row's argmax is wbc


def test_cd45_measured_on_some_rows_matches_measuring_all(rng, spec):
    crops = np.stack([cell(rng, ck=3000, leak_into_cd45=0.1), cell(rng, ck=3000, cd45=60),
                      cell(rng, ck=0, cd45=80), cell(rng)])
    full = measure(crops, spec.panel, 0.64)
    rows = np.array([False, True, False, True])
    part = measure(crops, spec.panel, 0.64, cd45_rows=rows)
    per_row = ON_DEMAND_COLUMNS
    for col in per_row:
        np.testing.assert_array_equal(part[col][rows], full[col][rows])
        assert part[col][~rows].isna().all()
    other = [c for c in full.columns if c not in per_row]
    pd.testing.assert_frame_equal(part[other], full[other])


def test_flags_from_measurements_made_before_the_calls_are_the_same(rng, spec):
    from ctcnet.inference.guard import measure_for_guard

    crops = np.stack([cell(rng), cell(rng, ck=2000, leak_into_cd45=0.08), cell(rng, cd45=80),
                      cell(rng, dapi=0), cell(rng, ck=0, cd45=80), cell(rng, cd45=80)])
    proba = onehot(["ctc", "ctc", "ctc", "cluster", "ctc", "wbc"], spec)
    early = review_flags(crops, proba, spec, measured=measure_for_guard(crops, spec))
    pd.testing.assert_frame_equal(early, review_flags(crops, proba, spec))
    assert early["cd45_positive"].any()


def test_flags_read_from_the_kept_start_are_the_same_and_other_levels_ignore_it(rng, spec):
    from ctcnet.inference.guard import RULES, measure_for_guard_start

    crops = np.stack([cell(rng), cell(rng, ck=2000, leak_into_cd45=0.08), cell(rng, cd45=80),
                      cell(rng, ck=800, cd45=40), cell(rng, ck=0, cd45=80), cell(rng, cd45=80)])
    proba = onehot(["ctc", "ctc", "ctc", "wbc", "ctc", "wbc"], spec)
    measured, start = measure_for_guard_start(crops, spec)
    kept = review_flags(crops, proba, spec, measured=measured, start=start)
    pd.testing.assert_frame_equal(kept, review_flags(crops, proba, spec, measured=measured))
    assert kept["cd45_positive"].any()
    # A start made under other levels is not read: the flags are those of these levels.
    strict = RULES.with_leak(0.01)
    other_start = measure_for_guard_start(crops, spec, strict)[1]
    pd.testing.assert_frame_equal(
        review_flags(crops, proba, spec, measured=measured, start=other_start),
        review_flags(crops, proba, spec, measured=measured))


def speck_cell(rng, dapi_scale=1.0):
    """A CTC fragment: CK like a cell, but only a 2 x 2 px DAPI speck (no intact nucleus)."""
    x = cell(rng, dapi=0)
    c = (SIZE - 1) // 2
    x[DAPI, c:c + 2, c:c + 2] += 300 * dapi_scale
    return x


def test_low_dna_holds_a_speck_against_the_frames_own_leukocytes(rng, spec):
    """A CK+ object whose DAPI is a speck holds a few per cent of a leukocyte's DNA: the CTC
    call is held, at any DAPI stain strength; a CTC with a nucleus is not; and with too few
    leukocytes in the frame there is no reference, so no flag."""
    for stain in (1.0, 8.0):
        leukocytes = [cell(rng, ck=0, cd45=80, dapi=400 * stain) for _ in range(12)]
        crops = np.stack([cell(rng, dapi=400 * stain), speck_cell(rng, stain), *leukocytes])
        proba = onehot(["ctc", "ctc"] + ["wbc"] * 12, spec)
        m = measure(crops, spec.panel, 0.64)
        assert m["dna_in_ck"][1] > 3.0    # the speck is bright enough for no_dna to pass it
        share = m["dna_content"][:2] / np.median(m["dna_content"][2:])
        assert share[0] > 0.5 and share[1] < 0.08
        flags = review_flags(crops, proba, spec)
        assert flags["low_dna"].tolist() == [False, True] + [False] * 12
        assert flags["no_dna"].tolist() == [False] * 14
        few = review_flags(crops[:6], proba[:6], spec)    # 4 leukocytes: no reference
        assert not few["low_dna"].any()


def test_low_dna_compares_each_crop_with_its_own_samples_leukocytes(rng, spec):
    """Crop sets mix samples stained differently: a CTC of a dim-DAPI sample has a whole
    nucleus by its own sample's leukocytes, a speck by another sample's."""
    dim = [cell(rng, ck=0, cd45=80, dapi=40) for _ in range(10)] + [cell(rng, dapi=40)]
    bright = [cell(rng, ck=0, cd45=80, dapi=2000) for _ in range(10)]
    crops = np.stack(dim + bright)
    proba = onehot(["wbc"] * 10 + ["ctc"] + ["wbc"] * 10, spec)
    groups = np.array(["dim"] * 11 + ["bright"] * 10)
    assert not review_flags(crops, proba, spec, groups=groups)["low_dna"].any()
    assert review_flags(crops, proba, spec)["low_dna"][10]   # against the pooled median
    events = pd.DataFrame({"class": ["wbc"] * 10 + ["ctc"] + ["wbc"] * 10,
                           "review": False, "sample_id": groups})
    assert guard_events(events, crops, proba, spec)["guard"][10] == ""


def blurred(rng, sigma_px, **cell_kwargs):
    """``cell`` seen through extra blur of ``sigma_px`` (out of the focal plane), then noise."""
    from scipy.ndimage import gaussian_filter

    clean = cell(rng, noise=0.0, **cell_kwargs) - 100.0
    sharp = gaussian_filter(clean, sigma=(0, sigma_px, sigma_px))
    return (100.0 + sharp + rng.normal(0, 3.0, sharp.shape)).astype(np.float32)


def test_out_of_focus_holds_a_ctc_call_blurred_wider_than_its_frames_leukocytes(rng, spec):
    """A CK+DAPI+ blob out of the focal plane breaks no marker rule, but its nucleus's edge is
    far wider than the leukocytes' beside it: the ``ctc`` call is held, a cluster call is not
    checked. A whole frame out of focus holds none of its CTCs: the check is relative to the
    frame's own leukocytes."""
    def frame(blur, blob_blur):
        leukocytes = [blurred(rng, blur, ck=0, cd45=80) for _ in range(12)]
        blob = blurred(rng, blob_blur, ck=600, dapi=800)
        crops = np.stack([blurred(rng, blur), blob, blob, *leukocytes])
        return crops, onehot(["ctc", "ctc", "cluster"] + ["wbc"] * 12, spec)

    crops, proba = frame(0.7, 4.0)
    sharp_edge = np.median(measure(crops, spec.panel, 0.64)["dna_edge_um"][3:])
    flags = review_flags(crops, proba, spec)
    assert flags["out_of_focus"].tolist() == [False, True] + [False] * 13
    assert not flags[["cd45_positive", "no_dna", "low_dna", "no_ck"]].to_numpy()[:2].any()
    few = review_flags(crops[:9], proba[:9], spec)    # 6 leukocytes: no reference
    assert not few["out_of_focus"].any()

    crops, proba = frame(2.5, 2.5)                   # a frame out of focus, nothing else
    assert measure(crops[:1], spec.panel, 0.64)["dna_edge_um"][0] > 1.8 * sharp_edge
    assert not review_flags(crops, proba, spec)["out_of_focus"].any()


def lit_body(rng, shares, radius=6.0, peak=400.0):
    """A textured, blurred body whose one pattern shows in every channel at ``shares`` of
    ``peak`` (a CK+ vesicle leaking into DAPI, an autofluorescent granule); photon noise (its
    own variance, up to 20x the background's) and camera noise on top."""
    from scipy.ndimage import gaussian_filter

    yy, xx = np.mgrid[:SIZE, :SIZE] - (SIZE - 1) / 2
    texture = 1.0 + 0.5 * gaussian_filter(rng.normal(0, 1, (SIZE, SIZE)), 1.5) / 0.19
    body = gaussian_filter(np.clip(texture, 0, None) * (np.hypot(yy, xx) <= radius), 1.2)
    light = np.asarray(shares, np.float64)[:, None, None] * peak * body / body.max()
    photons = rng.normal(0, 1, light.shape) * np.sqrt(light)
    return (100.0 + light + photons + rng.normal(0, 3.0, light.shape)).astype(np.float32)


def test_dapi_that_is_a_copy_of_ck_is_no_nucleus(rng, spec):
    """DAPI inside the CK area that has no shape of its own, only a scaled copy of the CK
    pattern (CK leaking into DAPI, one body glowing in every channel), is held, whatever the
    share and brightness; a CTC whose bright CK leaks 10 % into DAPI over its nucleus is not,
    nor is the same body called anything but ``ctc`` or ``cluster``."""
    vesicle = lit_body(rng, [0.05, 1.0, 0.0, 0.0, 0.0], peak=800.0)       # CK leaking 5 %
    granule = lit_body(rng, [0.6, 1.0, 0.08, 0.3, 0.5], peak=3000.0)      # autofluorescence
    leaking = cell(rng, ck=2000, dapi=300)
    leaking[DAPI] += 0.10 * (leaking[CK] - 100.0)
    crops = np.stack([vesicle, granule, leaking, cell(rng), granule])
    m = measure(crops, spec.panel, 0.64)
    assert (m["dna_in_ck"][:2] > 3.0).all()      # past no_dna: the copy is bright enough
    flags = review_flags(crops, onehot(["ctc", "ctc", "ctc", "cluster", "wbc"], spec), spec)
    assert flags["dna_copies_ck"].tolist() == [True, True, False, False, False]
    assert not flags["no_dna"][:2].any()


def blurred_copy(rng, share=0.25, wider_px=1.2, peak=800.0):
    """A CK+ vesicle 5 px across whose CK leaks ``share`` into DAPI, the DAPI optics blurring
    it ``wider_px`` wider than CK's: its DAPI is a copy of CK in all but the blur."""
    from scipy.ndimage import gaussian_filter

    yy, xx = np.mgrid[:SIZE, :SIZE] - (SIZE - 1) / 2
    body = (np.hypot(yy, xx) <= 2.5).astype(np.float64)
    ck = gaussian_filter(body, 1.5)
    light = np.zeros((5, SIZE, SIZE))
    light[CK] = peak * ck / ck.max()
    light[DAPI] = share * peak * gaussian_filter(body, np.hypot(1.5, wider_px)) / ck.max()
    photons = rng.normal(0, 1, light.shape) * np.sqrt(light)
    return (100.0 + light + photons + rng.normal(0, 3.0, light.shape)).astype(np.float32)


def test_one_body_lit_in_dapi_and_ck_is_no_nucleus_in_a_cytoplasm(rng, spec):
    """A vesicle whose DAPI is a copy of its CK blurred a little wider reads past the copy
    level one way (its DAPI has a little shape of its own: the wider blur), but neither
    channel has a shape of its own over the other: one body lit in both, held as a copy. A
    nucleus inside a cytoplasm has a shape of its own both ways. CK's own shape is read on
    the ``ctc`` calls that need it, as predict's guard reads it (``measure_for_guard``)."""
    from ctcnet.inference.guard import measure_for_guard

    crops = np.stack([blurred_copy(rng), blurred_copy(rng), cell(rng), blurred_copy(rng)])
    full = measure(crops, spec.panel, 0.64)
    assert (full["dna_own_structure"][[0, 1, 3]] > RULES.copy_level).all()
    assert (full["dna_own_structure"][[0, 1, 3]] < RULES.body_level).all()
    assert (full["ck_own_structure"][[0, 1, 3]] < RULES.body_level).all()
    calls = onehot(["ctc", "cluster", "ctc", "wbc"], spec)
    for measured in (None, measure_for_guard(crops, spec), full):
        flags = review_flags(crops, calls, spec, measured=measured)
        assert flags["dna_copies_ck"].tolist() == [True, True, False, False]
    # Each direction alone is not enough: a DAPI read near a copy over CK with a shape of its
    # own (dim, textured CK over a nucleus) stays a nucleus.
    own_ck = full.copy()
    own_ck.loc[0, "ck_own_structure"] = 2.0
    assert not review_flags(crops, calls, spec, measured=own_ck)["dna_copies_ck"][0]


def test_a_groups_shift_is_the_median_its_events_agree_on():
    """A frame whose events mostly lie off one way reads that shift; one whose events spread
    every way (nuclei off their cells' centres) or too few read none; NaN is not read."""
    from ctcnet.inference.guard.reference import group_shift

    agreeing = [-2.0] * 8 + [-1.0] * 4 + [0.0, 1.0, np.nan]       # 12 of 14 off one way
    spread = [-2.0, -2.0, -1.0, 0.0, 0.0, 1.0, 2.0, 2.0, 2.0, -2.0, 1.0, 2.0]
    few = [2.0] * 9
    values = np.array(agreeing + spread + few)
    groups = np.array([0] * len(agreeing) + [1] * len(spread) + [2] * len(few))
    shift = group_shift(values, groups, min_events=10, min_share=0.7)
    assert (shift[groups == 0] == -2).all()
    assert (shift[groups != 0] == 0).all()


def bare_nucleus(rng, ck_moved_px=0, leak=0.3, peak=800.0):
    """A bare nucleus 9 px across whose DAPI leaks ``leak`` into CK, the CK plane imaged
    ``ck_moved_px`` pixels out of register (the leak's copy moves with it)."""
    from scipy.ndimage import gaussian_filter

    yy, xx = np.mgrid[:SIZE, :SIZE] - (SIZE - 1) / 2
    nucleus = gaussian_filter((np.hypot(yy, xx) <= 4.5).astype(np.float64), 1.2)
    light = np.zeros((5, SIZE, SIZE))
    light[DAPI] = peak * nucleus / nucleus.max()
    light[CK] = np.roll(leak * light[DAPI], ck_moved_px, axis=1)
    photons = rng.normal(0, 1, light.shape) * np.sqrt(light)
    return (100.0 + light + photons + rng.normal(0, 3.0, light.shape)).astype(np.float32)


def test_a_copy_out_of_register_is_still_a_copy(rng, spec):
    """Planes imaged out of register move a leak's copy with the plane it leaks into. In a
    frame whose CK plane lies 2 px off, bare nuclei whose DAPI leaks into CK read a shape of
    their own over the copy in place, but the frame's registration (the median move lining
    each event's CK up with its DAPI) moves the copy back, and their ``ctc`` calls are held as
    copies, as in register; a nucleus inside a cytoplasm keeps its shape. With too few events
    to read a registration, or none allowed, the copy stays in place (and a bare nucleus
    called a leukocyte reads as a CTC's body by its markers)."""
    from ctcnet.inference.guard.evidence import Evidence

    def frame(moved_px):
        cells = [cell(rng) for _ in range(3)]
        for c in cells:
            c[CK] = np.roll(c[CK], moved_px, axis=1)
        return np.stack([bare_nucleus(rng, moved_px) for _ in range(9)] + cells)

    calls = onehot(["ctc"] * 12, spec)
    expected = [True] * 9 + [False] * 3
    moved, in_register = frame(2), frame(0)
    full = measure(moved, spec.panel, 0.64)
    assert (full["dna_own_structure"][:9] > RULES.body_level).all()  # edges of the copy
    assert (full["copy_move_x"][:9] == -2).all() and (full["copy_move_y"][:9] == 0).all()
    evidence = Evidence(full, np.zeros(12, int), calls, spec, RULES, None)
    assert (evidence.copy_move == [0, -2]).all()
    for crops in (moved, in_register):
        for measured in (None, full if crops is moved else None):
            flags = review_flags(crops, calls, spec, measured=measured)
            assert flags["dna_copies_ck"].tolist() == expected
    unregistered = replace(RULES, copy_shift_um=0.0)
    assert not review_flags(moved, calls, spec, rules=unregistered)["dna_copies_ck"][:9].any()
    assert not review_flags(moved[[0, 9]], calls[[0, 9]], spec)["dna_copies_ck"].any()
    # Called a leukocyte, a bare nucleus out of register is no possible CTC either: a CTC's
    # body (a nucleus with a shape of its own over the CK copy) is read lined up too.
    missed = onehot(["wbc"] * 12, spec)
    assert review_flags(moved, missed, spec, rules=unregistered)[MARKERS_CTC][:9].all()
    for crops in (moved, in_register):
        flags = review_flags(crops, missed, spec)
        assert not flags["possible_ctc"][:9].any() and not flags[MARKERS_CTC][:9].any()


def test_guard_catch_counts_wrong_calls_caught_and_right_calls_held(rng, spec):
    """The card's guard line: what the guard catches and what it costs (right CTC calls it
    holds leave the automatic count too)."""
    from ctcnet.evaluation.held_out import guard_catch

    crops = np.stack([cell(rng), cell(rng, dapi=0), cell(rng, cd45=80), cell(rng)])
    calls = onehot(["ctc"] * 4, spec)

    class Backend:
        def __init__(self):
            self.spec = spec

        def predict_proba(self, x):
            return calls[: len(x)]

    out = guard_catch(Backend(), crops, ["ctc", "ctc", "wbc", "debris"])
    assert out == {"flagged_share": 0.5, "wrong_ctc_calls": 2, "wrong_ctc_caught": 1,
                   "right_ctc_calls": 2, "right_ctc_held": 1, "missed_ctc": 0,
                   "missed_ctc_shown": 0, "possible_ctc_share": 0.0,
                   "ctc_called_or_flagged": 1.0, "ctc_called_ctc_or_cluster_or_flagged": 1.0}
    # The other direction: a true CTC called wbc is shown (possible_ctc); one without DNA,
    # called debris, is not, and counts as missed.
    calls = onehot(["wbc", "debris", "wbc", "debris"], spec)
    out = guard_catch(Backend(), crops, ["ctc", "ctc", "wbc", "debris"])
    assert out["missed_ctc"] == 2 and out["missed_ctc_shown"] == 1
    # (the CTC-like event labelled debris is flagged too: its markers say CTC)
    assert out["possible_ctc_share"] == 0.5 and out["ctc_called_or_flagged"] == 0.5
    # A CTC called cluster is reported as a CTC-bearing event, and, one nucleus with nothing
    # attached, flagged one_cell: shown to a person.
    calls = onehot(["cluster", "debris", "wbc", "debris"], spec)
    out = guard_catch(Backend(), crops, ["ctc", "ctc", "wbc", "debris"])
    assert out["ctc_called_or_flagged"] == 0.5
    assert out["ctc_called_ctc_or_cluster_or_flagged"] == 0.5


def test_a_ck_positive_cd45_negative_nucleated_event_called_otherwise_is_a_possible_ctc(
        rng, spec):
    """The guard's other direction: what the CellSearch definition calls a CTC, called wbc or
    debris by the network, goes to a person; a CK+CD45+ leukocyte, a CK body without DNA or
    with only a copy of CK in the DAPI channel, and a speck under 4 um do not."""
    copy = cell(rng, dapi=0)
    copy[DAPI] += 0.3 * (copy[CK] - 100.0)          # CK leaking into DAPI: no nucleus
    speck = cell(rng, ck=0, dapi=0)
    yy, xx = np.mgrid[:SIZE, :SIZE] - (SIZE - 1) / 2
    speck[CK] += 300 * (np.hypot(yy, xx) <= 1.5)   # a tdEV, ~2 um across
    speck[DAPI] += 300 * (np.hypot(yy, xx) <= 1)
    crops = np.stack([cell(rng), cell(rng), cell(rng, cd45=80), cell(rng, dapi=0), copy,
                      speck, cell(rng, ck=0, cd45=80), cell(rng)])
    calls = ["wbc", "debris", "wbc", "debris", "debris", "debris", "wbc", "ctc"]
    flags = review_flags(crops, onehot(calls, spec), spec)
    assert flags["possible_ctc"].tolist() == [True, True, False, False, False, False, False,
                                              False]
    assert flags["any"].tolist()[:2] == [True, True]
    table = guard_events(pd.DataFrame({"review": np.zeros(len(crops), bool)}), crops,
                         onehot(calls, spec), spec)
    assert table["guard"].tolist()[:2] == ["possible_ctc", "possible_ctc"]
    assert table["review"].tolist()[:2] == [True, True]
    # The markers alone make the first two CTCs; none of the others.
    assert flags[MARKERS_CTC].tolist() == [True, True] + [False] * 6


def test_on_a_cartridge_the_markers_call_a_wbc_or_debris_call_ctc_where_the_network_agrees(
        rng, spec):
    """A CK+ CD45- nucleated cell filed as a leukocyte under the cartridge's prior, which the
    network itself finds at least as likely a CTC, is called ``ctc`` and counted (the flags of
    a ``ctc`` call, none here); one filed as debris only where the network gives a CTC
    ``MARKERS_DEBRIS_CTC`` or more, or a cluster on one cell (on full-size cartridges the
    markers' call on less sure debris calls counted bare nuclei and CK+ blobs five times as
    often as CTCs); one the
    network finds likelier a leukocyte or debris, and an edge-cut event, stay as they are,
    shown as possible CTCs. A CK+CD45+ leukocyte is never called ``ctc``, and one whose CD45
    is faint (under the possible-CTC level, over the markers' background band) is shown but
    not called by its markers."""
    crops = np.stack([cell(rng), cell(rng), cell(rng), cell(rng), cell(rng, cd45=80),
                      cell(rng, cd45=8), cell(rng)])
    proba = np.array([[0.6, 0.4, 0.0, 0.0], [0.3, 0.7, 0.0, 0.0], [0.8, 0.0, 0.0, 0.2],
                      [0.8, 0.0, 0.0, 0.2], [0.6, 0.4, 0.0, 0.0], [0.6, 0.4, 0.0, 0.0],
                      [0.3, 0.0, 0.0, 0.7]])
    proba = proba[:, [["ctc", "wbc", "cluster", "debris"].index(n) for n in spec.class_names]]
    model_class = ["wbc", "wbc", "debris", "debris", "wbc", "wbc", "debris"]
    events = pd.DataFrame({"model_class": model_class,
                           "class": ["wbc", "wbc", "debris", "debris", "wbc", "wbc", "debris"],
                           "edge_cut": [False, False, False, True, False, False, False],
                           "review": np.zeros(7, bool)})
    faint = measure(crops[5:6], spec.panel, spec.pixel_size_um)["cd45_over_ck"].iloc[0]
    assert RULES.markers_cd45_band < faint < RULES.cd45_level
    out = guard_events(events, crops, proba, spec)
    assert out["class"].tolist() == ["ctc", "wbc", "ctc", "debris", "wbc", "wbc", "debris"]
    assert out["model_class"].tolist() == model_class
    assert out["guard"].tolist() == ["", "possible_ctc", "", "possible_ctc", "",
                                     "possible_ctc", "possible_ctc"]
    assert out[MARKERS_CTC].tolist() == [True, True, True, True, False, False, True]
    assert counted(out).tolist() == [True, False, True, False, True, False, False]
    # A debris call the network gives a CTC more than debris but under MARKERS_DEBRIS_CTC: shown.
    unsure = proba.copy()
    unsure[2, spec.class_names.index("ctc")] = MARKERS_DEBRIS_CTC - 0.05
    unsure[2, spec.class_names.index("debris")] = 1 - (MARKERS_DEBRIS_CTC - 0.05)
    held = guard_events(events, crops, unsure, spec)
    assert held["class"].iloc[2] == "debris" and held["guard"].iloc[2] == "possible_ctc"
    assert not counted(held)[2]
    # A debris call the network finds a cluster at MARKERS_DEBRIS_CTC or more (the prior files
    # the rare cluster as debris), on one cell with a CTC's markers: a cluster is a CTC with a
    # partner or a second cell, so the markers call it a CTC, counted (hand-drawn CTCs placed
    # in scans read so: p(cluster) 0.94-0.999); under the level, shown as a possible CTC.
    cluster, debris = (spec.class_names.index(c) for c in ("cluster", "debris"))
    for p_cluster, called in ((0.95, "ctc"), (MARKERS_DEBRIS_CTC - 0.05, "debris")):
        seen = proba.copy()
        seen[2] = 0.0
        seen[2, cluster], seen[2, debris] = p_cluster, 1 - p_cluster
        lone = guard_events(events, crops, seen, spec)
        assert lone["class"].iloc[2] == called and lone[MARKERS_CTC].iloc[2]
        assert counted(lone)[2] == (called == "ctc")
    # A crop set read with --network-calls-only: every call stays the network's, still shown.
    plain = guard_events(events, crops, proba, spec, overrule=False)
    assert plain["class"].tolist() == events["class"].tolist()
    assert plain["guard"].tolist()[0] == "possible_ctc"
    assert markers_overrule(np.array(["wbc", "failed"], object), np.array([True, True]),
                            np.full((2, 4), np.nan), spec.class_names).tolist() == [False,
                                                                                   False]


def test_a_ctc_call_doubted_toward_a_cluster_on_one_cell_is_counted_and_not_queued(rng, spec):
    """The network's ``ctc`` call in doubt (under the review threshold, so in the table's
    review) whose likeliest other class is a cluster, on a cell the markers read as one CTC
    (the CellSearch definition on the markers alone; no partner marker round it, one
    nucleus): a cluster is a CTC with a partner or a second cell, so the markers settle the
    doubt, and the call is counted and not queued. The same doubt stays queued where a
    platelet's CD61 lies round the CK area, where CD45 over it is fainter than the flag's
    level but above the background band a cartridge asks, on a ``ctc`` call the markers made
    of the network's ``cluster`` call (counted, against the network's call), and where the
    doubt is toward debris (an intact cell is its shape's to say) or a leukocyte (a
    leukocyte's dim CD45 under bright non-specific CK can read as none)."""
    yy, xx = np.mgrid[:SIZE, :SIZE] - (SIZE - 1) / 2
    platelets = cell(rng)
    platelets[CD61] += 80.0 * ((np.hypot(yy, xx) > 8) & (np.hypot(yy, xx) <= 11))
    crops = np.stack([cell(rng), platelets, cell(rng, cd45=8), cell(rng), cell(rng),
                      cell(rng)])
    calls = ["ctc", "ctc", "ctc", "cluster", "ctc", "ctc"]
    second = ["cluster", "cluster", "cluster", "ctc", "debris", "wbc"]
    proba = onehot(calls, spec) * 0.6 + onehot(second, spec) * 0.3 + 0.025
    events = pd.DataFrame({"model_class": calls, "class": calls, "review": np.ones(6, bool)})
    out = guard_events(events, crops, proba, spec)
    assert out["class"].tolist() == ["ctc"] * 6 and out["guard"].tolist() == [""] * 6
    assert out[MARKERS_VOUCH].tolist() == [True] + [False] * 5
    assert out["review"].tolist() == [False] + [True] * 5
    assert counted(out).all()
    # Filed as debris (an edge-cut cell is): nothing counted, nothing settled.
    cut = guard_events(events.assign(**{"class": ["debris"] * 6}), crops, proba, spec)
    assert not cut[MARKERS_VOUCH].any() and cut["review"].all()


def test_marker_calls_follow_the_cellsearch_definition_over_the_network(rng, spec):
    """On a crop set the markers take part in the call: a clear CK+ CD45- nucleated cell the
    network calls wbc or debris is a CTC; a CTC call with CD45 over its CK is a leukocyte; a
    CK+CD45+ cell called wbc, a CK body without DNA called debris, and a clean CTC call stay."""
    crops = np.stack([cell(rng), cell(rng), cell(rng, cd45=80), cell(rng, cd45=80),
                      cell(rng, dapi=0), cell(rng)])
    calls = ["wbc", "debris", "ctc", "wbc", "debris", "ctc"]
    proba = onehot(calls, spec)
    flags = review_flags(crops, proba, spec)
    assert marker_calls(np.array(calls, object), flags, spec.class_names).tolist() == \
        ["ctc", "ctc", "wbc", "wbc", "debris", "ctc"]
    events = pd.DataFrame({"class": calls, "review": np.zeros(len(crops), bool)})
    decided = guard_events(events, crops, proba, spec, markers_decide=True)
    assert decided["class"].tolist() == ["ctc", "ctc", "wbc", "wbc", "debris", "ctc"]
    # Still shown to a person: the markers contradicted the network.
    assert decided["review"].tolist()[:3] == [True, True, True]
    assert guard_events(events, crops, proba, spec)["class"].tolist() == calls


def test_on_exports_the_markers_call_no_cell_with_cd45_of_its_own_ctc(rng, spec):
    """A crop set of display exports: the markers make a ctc of a wbc call only where CD45
    over the CK area is no more than the leaks explain (its median excess at most
    ``export_markers_cd45_core``). A CK+ cell under a dim CD45 membrane of its own, within the
    ``cd45_level`` every CTC reading passes, stays wbc and is still shown as a possible CTC;
    one whose CD45 plane is black (an export's clipped background) is called ctc. Read as
    scan crops, both are."""
    black = cell(rng)
    black[CD45] = 0.0
    yy, xx = np.mgrid[:SIZE, :SIZE] - (SIZE - 1) / 2
    membrane = cell(rng)
    membrane[CD45] += 10.0 * ((np.hypot(yy, xx) > 4) & (np.hypot(yy, xx) <= 8))
    crops = np.stack([black, membrane])
    proba = onehot(["wbc", "wbc"], spec)
    events = pd.DataFrame({"class": ["wbc", "wbc"], "review": np.zeros(2, bool)})
    exports = RULES.for_crops(True)
    measured = measure(crops, spec.panel, spec.pixel_size_um, exports)
    assert measured["cd45_core"][0] <= exports.export_markers_cd45_core < \
        measured["cd45_core"][1]
    assert (measured["cd45_over_ck"] < exports.cd45_level).all()
    decided = guard_events(events, crops, proba, spec, markers_decide=True, rules=exports)
    assert decided["class"].tolist() == ["ctc", "wbc"]
    assert decided["guard"].tolist() == ["possible_ctc", "possible_ctc"]
    assert RULES.crop_markers_cd45_core is None
    scans = guard_events(events, crops, proba, spec, markers_decide=True, rules=RULES)
    assert scans["class"].tolist() == ["ctc", "ctc"]


def test_on_exports_a_ctc_whose_shapes_read_little_of_their_own_is_shown_not_called(rng,
                                                                                     spec):
    """On display exports a wbc call with a CTC's markers whose nucleus and cytoplasm read
    only ``body_level`` (``shown_ctc_structure`` there) or more of a shape of their own (a
    small cell at a folder's one scale) is shown as a possible CTC, but the markers call it
    ``ctc`` only at ``possible_ctc_structure``; under the flag's level, or read as scan
    crops, it is not shown."""
    crops = np.stack([cell(rng), cell(rng), cell(rng)])
    exports = RULES.for_crops(True)
    assert exports.flag_structure == exports.shown_ctc_structure == RULES.body_level < \
        RULES.possible_ctc_structure == RULES.flag_structure
    measured = measure(crops, spec.panel, spec.pixel_size_um, exports)
    assert (measured[["dna_own_structure", "ck_own_structure"]] >=
            RULES.possible_ctc_structure).all(axis=None)
    measured.loc[0, ["dna_own_structure", "ck_own_structure"]] = 0.6
    measured.loc[1, ["dna_own_structure", "ck_own_structure"]] = [0.6, 0.3]
    proba = onehot(["wbc"] * 3, spec)
    flags = review_flags(crops, proba, spec, exports, measured=measured.copy(),
                         markers_cd45="no_excess")
    assert flags["possible_ctc"].tolist() == [True, False, True]
    assert flags[MARKERS_CTC].tolist() == [False, False, True]
    scans = review_flags(crops, proba, spec, RULES.for_crops(False), measured=measured.copy(),
                         markers_cd45="no_excess")
    assert scans["possible_ctc"].tolist() == [False, False, True]
    assert scans[MARKERS_CTC].tolist() == [False, False, True]


def test_a_bare_nucleus_beside_a_speck_of_ck_is_no_ctc_on_a_scan(rng, spec):
    """On a scan a CTC's CK covers its nucleus (the cytoplasm above and below it); a ring of
    CK round a nucleus holds it too (the nucleus enclosed by the CK area). A bare nucleus with a
    speck of CK-channel signal at its side, otherwise as clear (CK positive, DNA of its own, no
    CD45), holds its nucleus outside the CK area: on a scan neither flagged a possible CTC nor
    called one by its markers. Display exports show CK beside or round a nucleus, not over it:
    there the share is not asked."""
    yy, xx = np.mgrid[:SIZE, :SIZE] - (SIZE - 1) / 2
    ring = cell(rng, ck=0)
    ring[CK] += 300 * ((np.hypot(yy, xx) > 4) & (np.hypot(yy, xx) <= 9))
    bare = cell(rng, ck=0, dapi=0)
    bare[DAPI] += 400 * (np.hypot(yy, xx) <= 6)
    bare[CK] += 300 * (np.hypot(yy, xx - 6) <= 3.5)   # a speck on the nucleus's edge
    crops = np.stack([cell(rng), ring, bare])
    measured = measure(crops, spec.panel, spec.pixel_size_um)
    assert (measured["nucleus_in_ck"][:2] >= RULES.nucleus_in_ck_share).all()
    assert measured["nucleus_in_ck"][2] < RULES.nucleus_in_ck_share
    calls = onehot(["wbc"] * 3, spec)
    scan = review_flags(crops[[0, 2]], calls[[0, 2]], spec)
    assert scan["possible_ctc"].tolist() == [True, False]
    assert scan[MARKERS_CTC].tolist() == [True, False]
    export = review_flags(crops[[0, 2]], calls[[0, 2]], spec, RULES.for_crops(exported=True))
    assert export["possible_ctc"].tolist() == [True, True]


def test_a_call_the_network_doubts_is_a_possible_ctc_unless_a_marker_excludes_it(rng, spec):
    """The flag's second route: a wbc/debris/cluster call to which the network still gives a
    CTC ``RULES.possible_ctc_proba`` or more (equal priors) is shown, even where CK is too dim for
    the marker route (5 noise units, under ``RULES.possible_ctc_ck_peak``). The CellSearch line
    holds: with CD45 over it, a neutrophil's CD66b round it or no DNA in it, it is not; nor
    under the level, nor as a ``ctc`` call; nor a body whose DAPI is only a copy of its CK (a
    tdEV, an autofluorescent blob), which a ``ctc`` call would be held for, nor a bare nucleus
    (no CK)."""
    from ctcnet.inference.guard import RULES

    def doubted(call, p_ctc):
        row = np.zeros(spec.num_classes)
        row[spec.class_names.index("ctc")] = p_ctc
        row[spec.class_names.index(call)] = 1.0 - p_ctc
        return row

    dim = 15.0                                   # CK at 5 noise units
    yy, xx = np.mgrid[:SIZE, :SIZE] - (SIZE - 1) / 2
    membrane = (np.hypot(yy, xx) > 6) & (np.hypot(yy, xx) <= 9)
    with_neutrophil = cell(rng, ck=dim)
    with_neutrophil[CD66B] += 150.0 * membrane
    copy = cell(rng, dapi=0)
    copy[DAPI] += 0.3 * (copy[CK] - 100.0)          # DAPI only a copy of CK
    bare = cell(rng, ck=0, dapi=2000)
    bare[CK] += 0.004 * (bare[DAPI] - 100.0)        # a bright nucleus's leak: CK ~2.7 units
    crops = np.stack([cell(rng, ck=dim), cell(rng, ck=dim), cell(rng, ck=dim),
                      cell(rng, ck=dim, cd45=80), with_neutrophil, cell(rng, ck=dim, dapi=0),
                      cell(rng, ck=dim), cell(rng, ck=dim), copy, bare])
    level = RULES.possible_ctc_proba
    proba = np.stack([doubted("debris", level), doubted("wbc", 0.4), doubted("cluster", 0.3),
                      doubted("wbc", 0.45), doubted("cluster", 0.3), doubted("debris", 0.4),
                      doubted("debris", level / 2), doubted("ctc", 0.9),
                      doubted("debris", 0.4), doubted("debris", 0.4)])
    m = measure(crops, spec.panel, spec.pixel_size_um)
    # The marker route cannot see them.
    assert (m["ck_peak"][:-2] < RULES.possible_ctc_ck_peak).all()
    assert m["dna_in_ck"].iloc[-2] > 3.0                        # the copy has DAPI enough
    flags = review_flags(crops, proba, spec)
    assert flags["possible_ctc"].tolist() == [True, True, True, False, False, False, False,
                                              False, False, False]
    # The same calls held with certainty (no doubt) are not shown.
    certain = review_flags(crops, np.round(proba), spec)
    assert not certain["possible_ctc"].any()


def test_a_granulocyte_with_ck_and_dim_cd45_is_no_possible_ctc(rng, spec):
    """A neutrophil whose CK is unspecific staining, with a dim CD45 membrane and a bright
    CD66b one, called wbc: not a possible missed CTC. Its CD45 is a tenth of its CD66b, which
    a fit of every channel's leak (up to 12 % each) explained away as a copy of CD66b (half
    the neutrophils of a simulated cartridge whose leukocytes carry CK were flagged so). A
    lone CTC carries CK and DAPI only, so only their leaks may explain the exclusion markers;
    and CD66b itself is one of them. The same cell without CD45 and CD66b is flagged."""
    yy, xx = np.mgrid[:SIZE, :SIZE] - (SIZE - 1) / 2
    membrane = (np.hypot(yy, xx) > 6) & (np.hypot(yy, xx) <= 9)
    neutrophil = cell(rng)
    neutrophil[CD45] += 15.0 * membrane
    neutrophil[CD66B] += 150.0 * membrane
    crops = np.stack([neutrophil, cell(rng)])
    flags = review_flags(crops, onehot(["wbc", "wbc"], spec), spec)
    assert flags["possible_ctc"].tolist() == [False, True]
    m = measure(crops, spec.panel, spec.pixel_size_um)
    assert m["exclusion_around_ck"][0] > 2.0 > m["exclusion_around_ck"][1]


def test_mask_rim_and_growth_are_scipys_erosion_and_dilation_within_each_crop():
    """The guard's mask operations give scipy's in-plane binary erosion and dilation exactly,
    on random masks of any shape (crops of one pixel, masks touching the crop border, empty and
    full ones)."""
    from scipy.ndimage import binary_dilation, binary_erosion

    from ctcnet.inference.guard.masks import IN_PLANE, grown, rim

    rng = np.random.default_rng(11)
    for shape in ((40, 38, 38), (3, 5, 7), (2, 1, 1), (2, 2, 3), (0, 4, 4)):
        for share in (0.0, 0.02, 0.3, 0.8, 1.0):
            mask = rng.random(shape) < share
            assert np.array_equal(rim(mask), mask & ~binary_erosion(mask, structure=IN_PLANE))
            for steps in (1, 2, 4):
                assert np.array_equal(grown(mask, steps),
                                      binary_dilation(mask, structure=IN_PLANE, iterations=steps))


def test_enclosed_is_what_lies_between_a_masks_pixels_along_both_axes():
    """Each crop on its own: a pixel is enclosed where the mask lies on either side of it in
    its row and in its column (read pixel by pixel here), so a ring's hole is filled, that of a
    ring open on one side but for the rows through its gap, and nothing beside a compact
    mask."""
    from ctcnet.inference.guard.masks import enclosed

    rng = np.random.default_rng(12)
    for shape in ((30, 13, 17), (2, 1, 1), (3, 4, 4), (0, 4, 4)):
        mask = rng.random(shape) < 0.2
        expected = mask.copy()
        for i, y, x in np.ndindex(*shape):
            expected[i, y, x] |= (mask[i, y, :x + 1].any() and mask[i, y, x:].any()
                                  and mask[i, :y + 1, x].any() and mask[i, y:, x].any())
        assert np.array_equal(enclosed(mask), expected)
    yy, xx = np.mgrid[:21, :21] - 10
    r = np.hypot(yy, xx)
    ring, disk = (r > 4) & (r <= 8), r <= 8
    assert np.array_equal(enclosed(np.stack([ring, disk]))[0], disk)
    open_ring = ring & ~((xx > 0) & (np.abs(yy) <= 1))   # a gap on one side
    hole = enclosed(open_ring[None])[0] & (r <= 4)
    assert np.array_equal(hole, (r <= 4) & (np.abs(yy) > 1))
    speck = (np.hypot(yy, xx - 6) <= 2)[None]
    assert np.array_equal(enclosed(speck), speck)


def test_a_labs_crops_pooled_into_the_reference_make_its_look_usual(rng, spec):
    """A lab's instrument draws every cell several times brighter than the training events:
    its CTCs are unusual to the base reference. Pooled with 40 of its labelled crops (a prior
    worth 100 crops), most of the lab's look is usual, and the training look stays usual."""
    from ctcnet.inference.guard.reference import ood_distance, pooled_reference

    def look(n, gain):
        names = ["ctc", "wbc"] * n
        crops = np.stack([cell(rng, ck=gain * rng.uniform(150, 600),
                               dapi=gain * rng.uniform(200, 600))
                          if name == "ctc" else cell(rng, ck=0, cd45=gain * rng.uniform(40, 120))
                          for name in names])
        return crops, np.array([spec.class_names.index(name) for name in names])

    train, targets = look(40, 1.0)
    base = spec.replace(metrics={"guard": fit_reference(train, targets, spec)})
    lab, lab_targets = look(20, 12.0)
    test, test_targets = look(20, 12.0)
    same_look, same_targets = look(20, 1.0)

    def unusual(model, crops, targets):
        # The CTCs' profiles off the reference, read from the reference itself: the flag
        # spares a ctc call whose markers make it a CTC on their own, whatever its profile.
        reference = model.metrics["guard"]
        far = ood_distance(measure(crops, spec.panel, spec.pixel_size_um), targets, reference,
                           spec.in_chans) > reference["threshold"]
        return far[targets == 0].mean()

    assert unusual(base, test, test_targets) > 0.9
    pooled = pooled_reference(base.metrics["guard"], lab, lab_targets, spec)
    assert pooled["pooled"] == {"lab_crops": 40, "prior": 100.0}
    assert pooled["threshold"] == base.metrics["guard"]["threshold"]
    tuned = spec.replace(metrics={"guard": pooled})
    assert unusual(tuned, test, test_targets) <= 0.15
    # The means moved toward the lab's: the training look a little farther, not unusual.
    assert unusual(tuned, same_look, same_targets) <= \
        unusual(base, same_look, same_targets) + 0.1


def test_a_leaks_imperfect_copy_is_not_cd45_but_a_membrane_is(rng, spec, monkeypatch):
    """A bright CTC whose CK leaks 30 % into CD45 through optics a little blurrier than CK's:
    the fitted copy misses by a few percent of itself, which is no CD45 of the cell's own
    (``leaks.COPY_MISMATCH``); a CK+CD45+ leukocyte's membrane still reads positive."""
    from scipy.ndimage import gaussian_filter

    from ctcnet.inference.guard import leaks

    known = spec.panel.with_leaks("CK", {"CD45": 0.3})
    ctc = cell(rng, ck=3000)
    ctc[CD45] += 0.3 * gaussian_filter(ctc[CK] - 100.0, 0.6)  # the leak, a little blurred
    leukocyte = cell(rng, ck=3000, cd45=150)
    leukocyte[CD45] += 0.3 * gaussian_filter(leukocyte[CK] - 100.0, 0.6)
    m = measure(np.stack([ctc, leukocyte]), known, spec.pixel_size_um)
    assert m["cd45_over_ck"][0] < RULES.cd45_level < m["cd45_over_ck"][1]
    monkeypatch.setattr(leaks, "COPY_MISMATCH", 0.0)  # without the slack: read as CD45
    assert measure(ctc[None], known, spec.pixel_size_um)["cd45_over_ck"][0] > RULES.cd45_level


def test_the_doubt_route_asks_a_dim_ck_more_than_a_copy_of_dapi(spec):
    """The network's doubt shows a call whose CK has a shape of its own over a copy of DAPI:
    a dim CK (under ``possible_ctc_ck_peak``) must reach the top of the copies' spread
    (``possible_ctc_doubt_ck_structure``), where a bare nucleus's DAPI leaking into the CK
    channel reads (0.2-0.4 on simulated scans); a clearly positive CK the copies' floor
    (``copy_level``), as a bright CTC beside a blob reads 0.40."""
    from ctcnet.inference.guard import RULES, Evidence

    r = RULES
    dim, bright = r.possible_ctc_doubt_ck_peak + 4, r.possible_ctc_ck_peak + 40
    between = (r.copy_level + r.possible_ctc_doubt_ck_structure) / 2
    rows = [(dim, between), (dim, r.possible_ctc_doubt_ck_structure + 0.1),
            (bright, between), (bright, r.copy_level / 2), (dim, float("nan"))]
    n = len(rows)
    measured = pd.DataFrame({
        "ck_peak": [p for p, _ in rows], "ck_own_structure": [c for _, c in rows],
        "dna_in_ck": np.full(n, 50.0), "dna_own_structure": np.full(n, 0.5),
        "dna_edge_um": np.full(n, np.nan), "dna_content": np.full(n, np.nan),
        "copy_move_y": np.full(n, np.nan), "copy_move_x": np.full(n, np.nan)})
    proba = np.zeros((n, spec.num_classes))
    proba[:, spec.class_names.index("ctc")] = 0.4
    proba[:, spec.class_names.index("debris")] = 0.6
    called = np.full(n, spec.class_names.index("debris"))
    e = Evidence(measured, called, proba, spec, r, None)
    # NaN: CK's shape not read, not taken for a copy.
    assert e.doubt_route(with_cd45=True).tolist() == [False, True, True, False, True]
    assert e.doubt_route(with_cd45=False).all()  # before CK's shape is read: candidates


def test_a_labs_class_checked_as_a_ctc_is_checked_like_one(rng, spec):
    """A lab's ``ctc_emt`` (its taxonomy includes the simulator's ``ctc_dim``, or says
    ``checked_as: ctc``) is held where its markers contradict a CTC, as a ``ctc`` call is:
    CD45 over its CK area, no DNA in it; on a crop set CD45 makes it ``wbc``. A class the
    taxonomy does not say how to check is left as it was (predict warns of it)."""
    emt = spec.replace(taxonomy=load_taxonomy({
        "classes": ["ctc", {"name": "ctc_emt", "includes": ["ctc_dim"]}, "wbc", "cluster",
                    "debris"], "reported": ["ctc", "ctc_emt", "cluster"]}))
    unsaid = spec.replace(taxonomy=load_taxonomy({
        "classes": ["ctc", "ctc_emt", "wbc", "cluster", "debris"],
        "reported": ["ctc", "ctc_emt", "cluster"]}))
    crops = np.stack([cell(rng, ck=60), cell(rng, ck=60, cd45=80), cell(rng, ck=60, dapi=0)])
    for model, fired in ((emt, [False, True, True]), (unsaid, [False, False, False])):
        flags = review_flags(crops, onehot(["ctc_emt"] * 3, model), model)
        assert flags["any"].tolist() == fired
        assert flags["cd45_positive"].tolist() == [False, fired[1], False]
        assert flags["no_dna"].tolist() == [False, False, fired[2]]
    flags = review_flags(crops, onehot(["ctc_emt"] * 3, emt), emt)
    assert marker_calls(np.array(["ctc_emt"] * 3, object), flags, emt.class_names,
                        emt.taxonomy.guard_kinds()).tolist() == ["ctc_emt", "wbc", "ctc_emt"]


def test_the_markers_call_names_the_labs_ctc_class_the_network_rates_higher():
    """A leukocyte or debris call whose markers make it a CTC: for a lab reporting ctc_emt
    (checked as a CTC) the call made is whichever of ctc and ctc_emt the network rates
    higher, and the network's ctc_emt share bears on whether the markers overrule it."""
    from ctcnet.inference.guard import markers_call

    names = ["ctc", "ctc_emt", "wbc", "cluster", "debris"]
    kinds = ["ctc", "ctc", "wbc", "cluster", "debris"]
    proba = np.array([[0.28, 0.38, 0.30, 0.02, 0.02],    # EMT likelier than ctc
                      [0.40, 0.10, 0.45, 0.03, 0.02],    # ctc likelier
                      [0.05, 0.05, 0.80, 0.05, 0.05]])   # a leukocyte
    assert markers_call(proba, names, kinds).tolist() == ["ctc_emt", "ctc", "ctc"]
    assert markers_call(proba, names).tolist() == ["ctc"] * 3  # the default classes: ctc
    flags = pd.DataFrame({MARKERS_CTC: [True, True, False], "cd45_positive": False})
    assert marker_calls(np.array(["wbc"] * 3, object), flags, names, kinds, proba).tolist() == \
        ["ctc_emt", "ctc", "wbc"]
    # ctc_emt's 0.38 over wbc's 0.30 bears on the first: overruled with the lab's kinds only.
    overrule = markers_overrule(np.array(["wbc"] * 3, object), np.array([True] * 3), proba,
                                names, kinds=kinds)
    assert overrule.tolist() == [True, False, False]
    assert not markers_overrule(np.array(["wbc"], object), np.array([True]), proba[:1],
                                names).any()
    # A class checked as a CTC the sample does not count (named like a subtype) is never the
    # markers' call, nor does its probability bear on overruling.
    names = ["ctc", "wbc", "cluster", "debris", "ctc_apoptotic"]
    kinds = ["ctc", "wbc", "cluster", "debris", "ctc"]
    proba = np.array([[0.10, 0.40, 0.00, 0.05, 0.45]])
    reported = ["ctc", "cluster"]
    assert markers_call(proba, names, kinds, reported=reported).tolist() == ["ctc"]
    assert not markers_overrule(np.array(["wbc"], object), np.array([True]), proba, names,
                                kinds=kinds, reported=reported).any()


def test_the_markers_settle_a_doubt_but_not_the_priors_filing_and_a_moved_count_is_shown():
    from ctcnet.inference.guard import guarded_review

    # 0: the network's ctc, doubted toward a cluster, one cell by the markers: not queued.
    # 1: the same, but the prior made the ctc of a cluster the network found likelier: shown.
    # 2: a network's cluster the markers made one ctc (a bright CTC, a dim partner): shown.
    # 3: a leukocyte call the markers made ctc, no doubt: as the network's doubt had it.
    # 4: a flag holds a vouched call: shown.
    review = np.array([True, True, False, False, True])
    held = np.array([False, False, False, False, True])
    vouched = np.array([True, True, False, False, True])
    by_prior = np.array([False, True, False, False, False])
    model_class = np.array(["ctc", "ctc", "cluster", "wbc", "ctc"], object)
    calls = np.array(["ctc", "ctc", "ctc", "ctc", "ctc"], object)
    markers = np.array([False, False, True, True, False])
    shown, kept = guarded_review(review, held, vouched, by_prior, model_class, calls, markers,
                                 ["ctc", "cluster"])
    assert shown.tolist() == [False, True, True, False, True]
    assert kept.tolist() == [True, False, False, False, True]


def test_a_labs_many_crops_of_some_classes_leave_the_others_the_bases(rng, spec):
    """A lab's 150 crops of CTCs and leukocytes, none of clusters or debris: the base's part
    of the reference stays (it replaced the base once the lab's outnumbered the prior, and a
    class the lab had few of went unusual on every cell of its next cartridge)."""
    from ctcnet.inference.guard.reference import pooled_reference

    names = ["ctc", "wbc"] * 75
    crops = np.stack([cell(rng, ck=rng.uniform(150, 600), dapi=rng.uniform(200, 600))
                      if name == "ctc" else cell(rng, ck=0, cd45=rng.uniform(40, 120))
                      for name in names])
    targets = np.array([spec.class_names.index(name) for name in names])
    base = fit_reference(crops[:40], targets[:40], spec)
    pooled = pooled_reference(base, crops, targets, spec)
    for name in ("cluster", "debris"):  # none of the lab's: the base's mean, unmoved
        k = spec.class_names.index(name)
        assert np.allclose(pooled["means"][k], base["means"][k])
    # The base's covariance still weighs in: the pooled one is no narrower than half of it.
    base_cov = np.linalg.inv(np.asarray(base["cov_inv"]))
    cov = np.linalg.inv(np.asarray(pooled["cov_inv"]))
    assert np.all(np.diag(cov) >= 0.5 * np.diag(base_cov) * 100 / (100 + len(targets)))
