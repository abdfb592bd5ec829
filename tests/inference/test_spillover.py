"""CK's spillover measured on a scan's own events (ctcnet.inference.spillover)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.ndimage import uniform_filter

from ctcnet.inference import spillover
from ctcnet.inference.labelled_leaks import labelled_leaks
from ctcnet.io.panel import Panel, load_panel
from ctcnet.simulate import SimConfig, simulate_crops

PANEL = load_panel(None)  # DAPI, CK, CD45, CD61, CD66b
DAPI, CK, CD45, CD61, CD66B = range(5)
SIZE = 48


def disc(radius: float, ring: bool = False) -> np.ndarray:
    yy, xx = np.mgrid[:SIZE, :SIZE] - (SIZE - 1) / 2
    r = np.hypot(yy, xx)
    shape = np.exp(-0.5 * ((r - radius) / 1.5) ** 2) if ring else \
        1.0 / (1.0 + np.exp((r - radius) / 1.0))
    return shape.astype(np.float32)


def scan(rng, n_ck_only: int, n_double: int, leaks: dict[int, float],
         n_vesicles: int = 0) -> np.ndarray:
    """Crops of one scan: CK-only events (CTC-like discs with a nucleus), CK+CD45+ leukocytes
    (a CD45 ring with CK at 1.0-1.2x its CD45: a tighter and larger population than the
    CK-only one) and CK-only vesicles without a nucleus; every CK leaks ``leaks``."""
    crops = []
    for k in range(n_ck_only + n_double + n_vesicles):
        x = np.zeros((5, SIZE, SIZE), np.float32)
        if k < n_ck_only:
            x[DAPI] = 400 * disc(4)
            x[CK] = rng.uniform(300, 3000) * disc(rng.uniform(7, 10))
        elif k < n_ck_only + n_double:
            x[DAPI] = 400 * disc(4)
            x[CD45] = rng.uniform(300, 1500) * disc(6, ring=True)
            x[CK] += rng.uniform(1.0, 1.2) * x[CD45]
        else:
            x[CK] = rng.uniform(300, 3000) * disc(rng.uniform(3, 5))
        for target, share in leaks.items():
            x[target] += share * x[CK]
        crops.append(x)
    crops = np.stack(crops) + 100.0
    return crops + rng.normal(0, 3.0, crops.shape).astype(np.float32)


def test_mean3x3_is_scipys_uniform_filter():
    """Any stack of images, down to one pixel a side, in float32 and float64: the shape and
    type it was given, scipy's numbers up to float rounding."""
    rng = np.random.default_rng(0)
    for shape in ((2, 3, 9, 11), (4, 1, 1), (3, 1, 6), (5, 2), (2, 2, 40, 40)):
        for dtype in (np.float32, np.float64):
            x = rng.normal(size=shape).astype(dtype)
            got = spillover.mean3x3(x)
            assert got.shape == x.shape and got.dtype == x.dtype
            size = (1,) * (x.ndim - 2) + (3, 3)
            assert np.allclose(got, uniform_filter(x, size=size), atol=1e-5)


def test_the_leak_is_the_floor_of_ck_events_not_their_co_expression():
    """Most CK+ events also carry CD45 of their own, at a tighter ratio than the leak's: the
    estimate is the floor every CK event shows, not the strongest population; the nucleus is
    never a target, even where vesicles without one would show CK's leak into DAPI."""
    rng = np.random.default_rng(1)
    crops = scan(rng, 15, 30, {CD45: 0.30, CD61: 0.05, DAPI: 0.08}, n_vesicles=10)
    leaks = spillover.estimate_leaks(crops, PANEL)
    assert leaks[CD45] == pytest.approx(0.30, rel=0.1)
    assert leaks[CD61] == pytest.approx(0.05, rel=0.1)
    assert leaks[CD66B] < 0.005  # no leak there
    assert leaks[DAPI] == 0.0 and leaks[CK] == 0.0


def test_a_scans_leak_is_read_from_each_events_own_pixels_not_its_neighbours():
    """A dense scan: few CK-only events (the leak's carriers: 1 %), most crops with a
    neighbour at their edge lit alike in CK and CD45 (an autofluorescent body, an aggregate:
    40 %). Over whole crops the neighbours' level is the lowest mode that holds, and the leak
    check read 40 % on such blanks; over each crop's central half (a scan's crops are read so)
    the events' own floor."""
    rng = np.random.default_rng(5)
    carriers = scan(rng, 10, 0, {CD45: 0.01})
    crowded = scan(rng, 0, 0, {CD45: 0.01}, n_vesicles=40)  # events dim in CK...
    crowded[:, CK] = 100.0 + rng.normal(0, 3.0, crowded[:, CK].shape)
    lit = rng.uniform(600, 2000, (50, 1, 1)) * disc(5)[None]  # ...beside a lit neighbour
    neighbour = np.roll(np.roll(lit, SIZE // 2 - 5, axis=1), SIZE // 2 - 5, axis=2)
    crops = np.concatenate([carriers, crowded])
    crops[:, CK] += neighbour
    crops[:, CD45] += 0.40 * neighbour
    whole = spillover.leaks_from_ratios(*spillover.scan_ratios(crops, PANEL), PANEL)
    own = spillover.leaks_from_ratios(*spillover.scan_ratios(crops, PANEL, central=True),
                                      PANEL)
    assert whole[CD45] == pytest.approx(0.40, rel=0.1)
    assert own[CD45] == pytest.approx(0.01, abs=0.005)


def test_no_ck_events_or_no_ck_channel_means_no_leak():
    rng = np.random.default_rng(2)
    leukocytes = scan(rng, 0, 12, {CD45: 0.3})
    leukocytes[:, CK] = leukocytes[:, DAPI] * 0 + 100 + rng.normal(0, 3, leukocytes[:, CK].shape)
    assert not spillover.estimate_leaks(leukocytes, PANEL).any()
    three = Panel.from_dict({"channels": ["DAPI", "CD45", "CD61"], "pixel_size_um": 0.64})
    assert not spillover.estimate_leaks(leukocytes[:, [DAPI, CD45, CD61]], three).any()
    assert not spillover.estimate_leaks(leukocytes[:0], PANEL).any()


def test_too_few_ck_events_show_no_leak():
    """Three events are not a population: the estimate stays at zero (the crop as written)."""
    crops = scan(np.random.default_rng(3), 3, 0, {CD45: 0.3})
    assert spillover.estimate_leaks(crops, PANEL)[CD45] == 0.0


def test_a_large_mode_with_ck_events_below_it_is_co_expression_and_left_alone(monkeypatch):
    """Few CK-only events, each with a little CD45 of its own (no common floor of four crops'
    weight), and many CK+CD45+ leukocytes at one tight ratio: the lowest mode is theirs. Taken
    off, it would erase their CD45 and make them look like CTCs; so no leak is taken off."""
    rng = np.random.default_rng(4)
    ctcs = [scan(rng, 1, 0, {CD45: share}) for share in np.linspace(0.01, 0.25, 16)]
    doubles = scan(rng, 0, 30, {})
    doubles[:, CK] = 100 + 1.05 * (doubles[:, CD45] - 100) + rng.normal(0, 3, (30, SIZE, SIZE))
    crops = np.concatenate([*ctcs, doubles])
    assert spillover.estimate_leaks(crops, PANEL)[CD45] == 0.0
    monkeypatch.setattr(spillover, "BELOW_SHARE", np.inf)  # without the floor check
    monkeypatch.setattr(spillover, "PLAUSIBLE_LEAK", 1.0)  # nor the plausible leak's bound
    assert spillover.estimate_leaks(crops, PANEL)[CD45] == pytest.approx(1 / 1.05, rel=0.1)


def test_compensation_takes_the_leak_off_and_nothing_else():
    rng = np.random.default_rng(4)
    crops = scan(rng, 10, 0, {CD45: 0.30})
    leaks = np.zeros(5, np.float32)
    leaks[CD45] = 0.30
    out = spillover.compensate(crops, leaks, PANEL)
    centre = (slice(None), slice(SIZE // 2 - 3, SIZE // 2 + 3), slice(SIZE // 2 - 3, SIZE // 2 + 3))
    assert np.abs(out[:, CD45][centre] - 100.0).max() < 15.0  # background and noise left
    assert crops[:, CD45][centre].min() > 150.0               # the leak was there
    assert np.array_equal(out[:, [DAPI, CK, CD61, CD66B]], crops[:, [DAPI, CK, CD61, CD66B]])
    assert spillover.compensate(crops, np.zeros(5), PANEL) is not None
    assert np.array_equal(spillover.compensate(crops, np.zeros(5), PANEL), crops)


def test_estimate_follows_the_simulators_true_spillover():
    """On simulated crops of one sample (CTCs, leukocytes, debris), the estimate of CK's leak
    into CD45 and CD61 is the spillover the simulator drew (CropBatch.spillover)."""
    cfg = dataclasses.replace(SimConfig(), bleed_through=(0.02, 0.10))
    batch = simulate_crops({"ctc": 40, "wbc": 30, "debris": 30}, PANEL, crop_size=64, seed=11,
                           config=cfg, num_samples=1)
    truth = batch.spillover[batch.sample_ids[0]]
    leaks = spillover.estimate_leaks(batch.images.astype(np.float32), PANEL)
    for target in (CD45, CD61, CD66B):
        assert leaks[target] == pytest.approx(truth[target, CK], rel=0.2, abs=0.005), target


def test_a_target_with_a_pattern_of_its_own_is_not_read_as_a_leak():
    """A CD45 ring inside the CK area (a leukocyte on a CTC) is not a copy of the CK: no ratio
    for that crop; a plain copy of the CK is one, at its share."""
    rng = np.random.default_rng(5)
    crops = scan(rng, 2, 0, {CD45: 0.2})
    crops[1, CD45] += 600 * disc(4, ring=True)
    ratio, sd = spillover.leak_ratios(crops, CK, [CD45, CD61])
    assert ratio[0, CD45] == pytest.approx(0.2, rel=0.05) and sd[0, CD45] > 0
    assert np.isnan(ratio[1, CD45])
    assert np.isnan(ratio[:, DAPI]).all()  # not asked for


@pytest.fixture(scope="module")
def dim_ck_leaky_scan(tmp_path_factory):
    """A crop set of one scan whose CK leaks 6-10 % into every channel, its CK channel read at
    a quarter of the gain (so the leaks look 24-40 % of the CK), and the truth of those leaks."""
    from ctcnet.detect.crop_dataset import write_crop_dataset
    from ctcnet.evaluation.perturb import stain_strength

    # The cell look the shipped network was trained on: the tests below are about its calls.
    cfg = dataclasses.replace(SimConfig().with_filled_ctc_look(), bleed_through=(0.06, 0.10))
    batch = simulate_crops({"ctc": 40, "wbc": 30, "debris": 30}, PANEL, None, 80, seed=3,
                           num_samples=1, config=cfg)
    dim_ck = stain_strength(batch.images.astype(np.float32), CK, 0.25, PANEL)
    root = tmp_path_factory.mktemp("dim_ck") / "scan"
    write_crop_dataset(root, dim_ck, batch.labels, PANEL, batch.sample_ids)
    sample = batch.sample_ids[0]
    return root, sample, batch.spillover[sample][:, CK] / 0.25


def test_predict_compensate_keeps_single_ctcs_of_a_dim_ck_leaky_scan(dim_ck_leaky_scan,
                                                                     tmp_path):
    """On that scan the shipped network's most probable class for most single CTCs is
    something else; with ``--compensate`` (the crop set's one sample) it is ``ctc`` for most of
    them, and so is the call at cartridge prevalence for many; no leukocyte becomes one, and
    summary.json says what was taken off."""
    import json

    import pandas as pd

    from ctcnet.inference.backends import load_backend
    from ctcnet.inference.predict import PredictOptions, predict_crop_dataset

    root, sample, truth = dim_ck_leaky_scan
    backend = load_backend(device="cpu")
    shares = {}
    for compensate in (False, True):
        out = tmp_path / f"out{int(compensate)}"
        # The call at cartridge prevalence: asked for (a crop set's default is the plain call).
        # The network's calls alone: the markers taking part would call CTCs either way.
        predict_crop_dataset(root, backend, out, PredictOptions(compensate=compensate, quiet=True,
                                                                prior="cartridge",
                                                                marker_calls=False))
        table = json.loads((out / "summary.json").read_text())
        calls = pd.read_csv(out / "predictions.csv")
        ctc, wbc = calls["label"] == "ctc", calls["label"] == "wbc"
        top = calls[["p_ctc", "p_wbc", "p_cluster", "p_debris"]].to_numpy().argmax(axis=1)
        shares[compensate] = ((top[ctc] == 0).mean(), (calls["class"][ctc] == "ctc").mean())
        assert not (calls["class"][wbc] == "ctc").any() and not (top[wbc] == 0).any()
        assert ("spillover" in table) == compensate
    assert shares[False][0] <= 0.3 and shares[True][0] >= 0.6, shares
    assert shares[False][1] <= 0.1 and shares[True][1] >= 0.4, shares
    assert table["spillover"][sample]["leaks"]["CD45"] == pytest.approx(truth[CD45], rel=0.35)


def test_evaluate_compensate_reports_the_leaks_and_the_cnn_on_compensated_crops(
        dim_ck_leaky_scan, tmp_path, capsys):
    import json

    from ctcnet.cli import main

    root = dim_ck_leaky_scan[0]
    scores = {}
    for flag in ([], ["--compensate"]):
        assert main(["evaluate", str(root), "--out", str(tmp_path / f"e{len(flag)}"),
                     "--no-baselines", "--json", "--device", "cpu", "--network-calls-only",
                     *flag]) == 0
        printed = json.loads(capsys.readouterr().out)
        scores[bool(flag)] = printed["per_class"]["ctc"]["recall"]
        assert ("spillover" in printed) == bool(flag)
    assert scores[True] >= scores[False] + 0.3, scores


@pytest.fixture(scope="module")
def leaky_cartridge(tmp_path_factory):
    """A small simulated cartridge whose CK leaks 5-10 % into every channel, and a tiny model."""
    from conftest import save_tiny_model

    from ctcnet.inference.backends import load_backend
    from ctcnet.simulate import simulate_cartridge

    base = tmp_path_factory.mktemp("leaky")
    cfg = dataclasses.replace(SimConfig(), bleed_through=(0.05, 0.10))
    simulate_cartridge(base / "cart", PANEL, num_frames=3, frame_shape=(400, 480), seed=21,
                       events_per_frame=60, config=cfg,
                       rare_rates={"ctc": 0.15, "cluster": 0.05})
    model = save_tiny_model(base / "model.pt", crop_size=48, panel=PANEL)[0]
    return base, load_backend(model, device="cpu", batch_size=32)


def test_predict_compensate_measures_the_cartridge_and_resumes_alike(leaky_cartridge, tmp_path):
    """``--compensate`` on a cartridge: the leaks come from its frames' CK+ events (the truth
    cartridge.json records), the crops of every frame lose them before the model (not before
    the guard), a killed run resumes to the same events, and a journal of the other setting is
    refused rather than mixed."""
    import json

    import pandas as pd

    from ctcnet.errors import InputError
    from ctcnet.inference.frames import measure_scan_leaks, prepare_frame
    from ctcnet.inference.predict import PredictOptions, predict_cartridge
    from ctcnet.io.scan import open_cartridge

    base, backend = leaky_cartridge
    options = dict(quiet=True, workers=1, report=False, compensate=True)
    full = predict_cartridge(base / "cart", backend, tmp_path / "full", PredictOptions(**options))
    record = json.loads((tmp_path / "full" / "summary.json").read_text())["spillover"]
    assert record == full.spillover and record["source"] == "CK" and record["frames"] == 3
    truth = np.array(json.loads((base / "cart" / "cartridge.json").read_text())["spillover"])
    assert record["leaks"]["CD45"] == pytest.approx(truth[CD45, CK], rel=0.25)
    assert record["leaks"]["CD61"] == pytest.approx(truth[CD61, CK], rel=0.25)

    cartridge = open_cartridge(base / "cart")
    spec, frame = backend.spec, cartridge.frames[0]
    leaks = np.array([0, 0] + [record["leaks"][n] for n in ("CD45", "CD61", "CD66b")],
                     np.float32)
    raw = prepare_frame(frame, cartridge, spec, PredictOptions().detect)
    seen = prepare_frame(frame, cartridge, spec, PredictOptions().detect, leaks=leaks)
    assert raw.model_crops is None
    assert np.allclose(seen.model_crops, spillover.compensate(raw.crops, leaks, PANEL),
                       atol=1e-3)
    assert not np.allclose(seen.model_crops[:, CD45], raw.crops[:, CD45])
    # The guard (and the gallery) measure the crops as the scanner wrote them.
    assert np.array_equal(seen.crops, raw.crops)
    pd.testing.assert_frame_equal(seen.measured, raw.measured)
    # The measuring pass reads the crops only: no guard measurements it would throw away.
    crops_only = prepare_frame(frame, cartridge, spec, PredictOptions().detect, guard=False)
    assert crops_only.measured is None and np.array_equal(crops_only.crops, raw.crops)
    # The frame threads measure the same leaks as one thread does (the frames in their order).
    inline, threaded = (measure_scan_leaks(cartridge, spec, PredictOptions().detect,
                                           workers=n) for n in (0, 2))
    assert np.array_equal(inline[0], threaded[0])
    assert inline[1]["leaks"] == record["leaks"] and threaded[1]["events"] == record["events"]
    # The same scan as 16-bit counts (x16, stated 0-65535): read at its own range, not the
    # model's 0-4095, where every CK-bright pixel read as clipped and no leak was measured.
    import shutil

    from conftest import stated_range

    wide = stated_range(shutil.copytree(base / "cart", tmp_path / "x16"), 65535, 16)
    sixteen = measure_scan_leaks(open_cartridge(wide), spec, PredictOptions().detect)[1]
    assert sixteen["leaks"]["CD45"] == pytest.approx(record["leaks"]["CD45"], rel=0.1)

    class Stop(Exception):
        pass

    def stop(frame_id):
        raise Stop(frame_id)

    with pytest.raises(Stop):
        predict_cartridge(base / "cart", backend, tmp_path / "resumed",
                          PredictOptions(**options, on_frame_done=stop))
    with pytest.raises(InputError, match="other settings"):
        predict_cartridge(base / "cart", backend, tmp_path / "resumed",
                          PredictOptions(**{**options, "compensate": False}))
    resumed = predict_cartridge(base / "cart", backend, tmp_path / "resumed",
                                PredictOptions(**options))
    assert resumed.frames.resumed_from_journal == 1 and resumed.spillover["leaks"] == \
        record["leaks"]
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "resumed" / "events.parquet"),
                                  pd.read_parquet(tmp_path / "full" / "events.parquet"))


def test_training_can_learn_the_compensated_representation():
    """``data.compensate``: each split's crops lose CK's spillover, sample by sample, before
    augmentation (what predict --compensate gives the network); the nucleus and CK channels
    stay as simulated, the targets lose the leak's share of CK."""
    from ctcnet.training.datamodule import CTCDataModule

    simulate = {"train": {"ctc": 24, "wbc": 8, "cluster": 8, "debris": 8},
                "val": {"ctc": 8, "wbc": 8}, "num_samples": 2, "seed": 5}
    plain, compensated = (CTCDataModule(crop_size=SIZE, simulate=simulate, augment=False,
                                        compensate=flag) for flag in (False, True))
    plain.setup()
    compensated.setup()
    before, after = plain.splits["train"].images, compensated.splits["train"].images
    assert after.dtype == before.dtype and after.shape == before.shape
    assert np.array_equal(after[:, [DAPI, CK]], before[:, [DAPI, CK]])
    samples = np.asarray(plain.splits["train"].sample_ids)
    for sample in np.unique(samples):
        rows = samples == sample
        leaks = spillover.estimate_leaks(before[rows].astype(np.float32), PANEL)
        expected = spillover.compensate(before[rows].astype(np.float32), leaks, PANEL)
        assert np.abs(after[rows].astype(np.float32) - expected).max() <= 0.5 + 1e-3
    assert (after[:, CD45:].astype(np.int64).sum() < before[:, CD45:].astype(np.int64).sum())
    assert compensated.summary()["compensate"] is True and "compensate" not in plain.summary()
    # compensate_share 0.5: some training samples keep their leak, the others are as above.
    half = CTCDataModule(crop_size=SIZE, simulate={**simulate, "num_samples": 4},
                         augment=False, compensate=True, compensate_share=0.5, split_seed=3)
    whole = CTCDataModule(crop_size=SIZE, simulate={**simulate, "num_samples": 4},
                          augment=False, compensate=True)
    raw = CTCDataModule(crop_size=SIZE, simulate={**simulate, "num_samples": 4}, augment=False)
    for dm in (half, whole, raw):
        dm.setup()
    ids = np.asarray(half.splits["train"].sample_ids)
    kept = [s for s in np.unique(ids) if np.array_equal(
        half.splits["train"].images[ids == s], raw.splits["train"].images[ids == s])]
    taken = [s for s in np.unique(ids) if np.array_equal(
        half.splits["train"].images[ids == s], whole.splits["train"].images[ids == s])
        and s not in kept]
    assert kept and taken and len(kept) + len(taken) == len(np.unique(ids))


def test_a_model_trained_on_compensated_crops_gets_them_unless_told_otherwise(leaky_cartridge,
                                                                              tmp_path):
    """A spec with ``training.data.compensate`` (``data.compensate: true``) makes predict take
    the spillover off without being asked; ``--no-compensate`` still turns it off."""
    import json

    from ctcnet.cli import main
    from ctcnet.inference.backends import load_backend
    from ctcnet.inference.predict import PredictOptions, predict_cartridge
    from ctcnet.nn.classifier import load_model, save_model

    base, backend = leaky_cartridge
    model, spec = load_model(backend.model_path)
    data = {**spec.training.get("data", {}), "compensate": True}
    save_model(tmp_path / "comp.pt", model, spec.replace(training={**spec.training,
                                                                   "data": data}))
    trained = load_backend(tmp_path / "comp.pt", device="cpu", batch_size=32)
    assert trained.spec.compensated_input and not backend.spec.compensated_input
    options = dict(quiet=True, workers=1, report=False)
    assert predict_cartridge(base / "cart", trained, tmp_path / "a",
                             PredictOptions(**options)).spillover is not None
    assert predict_cartridge(base / "cart", backend, tmp_path / "b",
                             PredictOptions(**options)).spillover is None
    assert main(["--quiet", "predict", str(base / "cart"), "--model", str(tmp_path / "comp.pt"),
                 "--out", str(tmp_path / "c"), "--no-compensate", "--no-report",
                 "--device", "cpu"]) == 0
    summary = json.loads(next((tmp_path / "c").glob("*/summary.json")).read_text())
    assert summary.get("spillover") is None


def test_held_out_tests_give_a_compensated_network_compensated_crops():
    """The card's and evaluate's held-out tests (``network_view``): the crops compensated per
    sample for a network trained so, as they are for any other."""
    from types import SimpleNamespace

    rng = np.random.default_rng(6)
    crops = np.concatenate([scan(rng, 8, 0, {CD45: 0.1}), scan(rng, 8, 0, {CD45: 0.3})])
    samples = ["a"] * 8 + ["b"] * 8
    trained = SimpleNamespace(compensated_input=True, panel=PANEL)
    plain = SimpleNamespace(compensated_input=False, panel=PANEL)
    seen, records = spillover.network_view(trained, crops, samples)
    assert np.array_equal(seen, spillover.compensate_samples(crops, PANEL, samples)[0])
    assert set(records) == {"a", "b"}
    assert np.abs(seen[:, CD45] - 100).max() < 20 < np.abs(crops[:, CD45] - 100).max()
    assert np.array_equal(spillover.network_view(plain, crops, samples)[0], crops)
    assert spillover.network_view(plain, crops, samples)[1] is None
    assert spillover.network_view(plain, crops, samples, compensate=True)[1] is not None
    assert spillover.network_view(trained, crops, samples, compensate=False)[1] is None


def test_labelled_ctcs_give_the_instruments_leak():
    """CTCs carry no CD45 of their own: the floor of their CK-to-CD45 ratios is the
    instrument's leak, pooled over crops of several sizes; too few CTCs measure none."""
    rng = np.random.default_rng(3)
    crops = list(scan(rng, 6, 0, {CD45: 0.3}))
    crops += [np.pad(c, ((0, 0), (4, 4), (4, 4)), mode="edge") for c in scan(rng, 3, 0,
                                                                           {CD45: 0.3})]
    found = labelled_leaks(crops, PANEL)
    assert found["source"] == "CK" and found["crops"]["CD45"] == 9
    assert found["leaks"]["CD45"] == pytest.approx(0.3, abs=0.01)
    # No leak, the ratios scattered round zero: measured as none (a model that carried one
    # from another instrument kept it, said "not measured"; 0 leaves the guard's own 12 %).
    assert found["leaks"]["CD61"] == 0.0
    # One ratio, or two that disagree (a neighbour's CD45 in one), measure nothing.
    assert "CD45" not in labelled_leaks(crops[:1], PANEL)["leaks"]
    odd = scan(rng, 1, 0, {CD45: 0.9})
    assert "CD45" not in labelled_leaks([crops[0], odd[0]], PANEL)["leaks"]
    assert labelled_leaks([crops[0], crops[1], odd[0]], PANEL)["leaks"]["CD45"] == \
        pytest.approx(0.3, abs=0.01)
    assert labelled_leaks([], PANEL)["leaks"] == {}


def test_labelled_ctcs_agreeing_on_more_than_a_leak_are_said_so(caplog):
    """CTCs of an instrument passing half of CK into CD45 agreed on 0.55: dropped without a
    word, and the card said their ratios "did not agree"; the guard then held them as wbc."""
    from types import SimpleNamespace

    from ctcnet.evaluation.recalibration import leaks_line

    rng = np.random.default_rng(4)
    with caplog.at_level("WARNING"):
        found = labelled_leaks(list(scan(rng, 6, 0, {CD45: 0.55})), PANEL)
    assert "CD45" not in found["leaks"]
    assert found["beyond_plausible"]["CD45"] == pytest.approx(0.55, abs=0.02)
    assert "the labelled CTCs' CK reads 55% of its counts in CD45, more than a leak" in \
        caplog.text and "channel order" in caplog.text
    line = leaks_line(found, SimpleNamespace(panel=PANEL))
    assert "CD61 0.0% (the guard allows 12.0%)" in line  # measured: none there
    assert "CD45 not taken in (6 CTC ratio(s) agree on 5" in line


def test_labelled_ctcs_leak_is_their_floor_not_their_median():
    """CTCs whose CD45 channel shows more of their CK than the instrument leaks (a neighbour's
    CD45, CK showing in a dim CTC's CD45) lie above the leak, never below it: the leak is the
    floor the CTCs agree on. Their median read it 10x too high and loosened the guard."""
    rng = np.random.default_rng(5)
    crops = list(scan(rng, 3, 0, {CD45: 0.02}))
    for share in (0.12, 0.2, 0.3, 0.45):
        crops += list(scan(rng, 1, 0, {CD45: share}))
    found = labelled_leaks(crops, PANEL)
    assert found["crops"]["CD45"] == 7
    assert found["leaks"]["CD45"] == pytest.approx(0.02, abs=0.005)


def test_saturated_pixels_give_no_ratio():
    """A CTC whose CK clips at the ceiling under its unclipped leak: with the ceiling given,
    its ratio is read on the pixels below it, and is the leak."""
    rng = np.random.default_rng(5)
    crops = scan(rng, 4, 0, {CD45: 0.3})
    crops[:, CK] = np.minimum(crops[:, CK] * 4, 4095.0)  # CK 4x brighter, clipped at 12 bit
    crops[:, CD45] = (crops[:, CD45] - 100) * 4 + 100
    ratio, _ = spillover.leak_ratios(crops, CK, [CD45], PANEL.saturation_levels)
    assert np.nanmedian(ratio[:, CD45]) == pytest.approx(0.3, abs=0.01)
    # A scan's and a crop set's leaks are read so too: without the ceiling, a crop set of a
    # 30 % scanner whose bright CK clips read no leak, and --compensate took nothing off.
    crops = scan(rng, 12, 0, {CD45: 0.3})
    crops[:, CK] = np.minimum(crops[:, CK] * 4, 4095.0)
    crops[:, CD45] = (crops[:, CD45] - 100) * 4 + 100
    ratio, sd = spillover.scan_ratios(crops, PANEL)
    assert np.nanmedian(ratio[:, CD45]) == pytest.approx(0.3, abs=0.01)
    pooled = spillover.SampleLeaks(PANEL)
    pooled.add(crops, ["s"] * len(crops))
    assert pooled.leaks()["s"][CD45] == pytest.approx(0.3, abs=0.01)
    # 12-bit counts stated 0-65535 clip at the camera's top, not the stated one: a crop set's
    # first pass reads them there (at 65535 the clipped CK stayed in, and the leak read 0).
    import dataclasses

    from ctcnet.inference.crop_sets import first_pass
    from ctcnet.io.taxonomy import default_taxonomy
    from ctcnet.nn.spec import ModelSpec

    wide = dataclasses.replace(PANEL, channels=tuple(
        dataclasses.replace(c, value_range=(0.0, 65535.0)) for c in PANEL.channels))
    _, leaks, _ = first_pass([(0, crops)], np.array(["s"] * len(crops)),
                             ModelSpec("compact", wide, default_taxonomy()), True, len(crops))
    assert leaks.leaks()["s"][CD45] == pytest.approx(0.3, abs=0.01)


def test_the_guard_allows_a_known_leak_and_still_sees_cd45():
    """A CTC whose CK leaks 30 % into CD45 reads CD45-positive under the training ranges'
    allowance (12 %); with the leak known (the panel's ``leaks_in``) it reads CD45-negative,
    while a CK+CD45+ leukocyte (its own CD45 ring) still reads positive."""
    from ctcnet.inference.guard import RULES, measure

    rng = np.random.default_rng(4)
    ctcs, doubles = scan(rng, 6, 0, {CD45: 0.3}), scan(rng, 0, 6, {CD45: 0.3})
    known = PANEL.with_leaks("CK", {"CD45": 0.3})
    assert RULES.leak_cap(PANEL, CD45) == RULES.max_leak
    assert RULES.leak_cap(known, CD45) == pytest.approx(0.3 * RULES.known_leak_margin)
    assert RULES.leak_cap(known, CD61) == RULES.max_leak

    def cd45(crops, panel):
        return measure(crops, panel, 0.64)["cd45_over_ck"].to_numpy()

    assert (cd45(ctcs, PANEL) > RULES.cd45_level).all()
    assert (cd45(ctcs, known) < RULES.cd45_level).all()
    assert (cd45(doubles, known) > RULES.cd45_level).all()


def test_a_mode_past_a_plausible_leak_is_none():
    """Events lit alike in CK and a target (ratios near 0.95: autofluorescent bodies, CK+CD45+
    leukocytes at equal levels) are no filter set's leak."""
    rng = np.random.default_rng(6)
    ratio = rng.normal(0.95, 0.02, 40)
    assert spillover.lowest_mode(ratio, np.full(40, 0.05)) == 0.0
    assert spillover.lowest_mode(ratio * 0.3, np.full(40, 0.015)) == pytest.approx(0.285,
                                                                                  abs=0.02)


def test_a_frames_leak_is_read_on_ck_spread_over_it_not_dapis_leak_on_bare_nuclei():
    """Detection lists a frame's events from its top: the events read are spread over the
    frame's CK-bright ones, not its first and last. A dim "CK" over a nucleus (DAPI's own leak
    into the CK channel on a bare nucleus, with no CK to leak into CD45) is not read; a dim CK
    without a nucleus (a tdEV) and a clearly CK-bright cell are."""
    import pandas as pd

    from ctcnet.inference.leak_sample import frame_leak_ratios

    rng = np.random.default_rng(11)
    crops = scan(rng, 9, 0, {CD45: 0.05})
    odd = np.zeros(9, bool)
    odd[[0, 8]] = True  # the first and last: a ratio only they show
    crops[odd, CD45] += 0.5 * (crops[odd, CK] - 100.0)
    peak, dna = np.full(9, 100.0), np.full(9, 50.0)
    ratio, _ = frame_leak_ratios(crops, pd.DataFrame({"ck_peak": peak, "dna_in_ck": dna}),
                                 PANEL, 3)
    assert len(ratio) == 3 and all(r[CD45] == pytest.approx(0.05, abs=0.02) for r in ratio)
    # Dim CK: read where no nucleus lies under it, not over one.
    peak[:] = 5.0
    ratio, _ = frame_leak_ratios(crops, pd.DataFrame({"ck_peak": peak, "dna_in_ck": dna}),
                                 PANEL, 9)
    assert len(ratio) == 0
    dna[:4] = 0.0
    ratio, _ = frame_leak_ratios(crops, pd.DataFrame({"ck_peak": peak, "dna_in_ck": dna}),
                                 PANEL, 9)
    assert len(ratio) == 4
