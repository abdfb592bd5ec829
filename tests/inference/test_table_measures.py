"""The guard's measurements in the event tables explain the holds and counts made from them:
a user checks a hold from the table, and the review page shows what the flags read."""

import numpy as np
import pandas as pd
import pytest

from ctcnet.detect.crop_dataset import write_crop_dataset
from ctcnet.inference.backends import load_backend
from ctcnet.inference.guard import RULES, TABLE_MEASURES, counted
from ctcnet.inference.predict import PredictOptions, predict_cartridge, predict_crop_dataset
from ctcnet.inference.verification import REFERENCE_CARTRIDGE
from ctcnet.io.panel import load_panel
from ctcnet.report.display import guard_measures
from ctcnet.simulate import SimConfig, simulate_crops


def _held_by(events: pd.DataFrame, flag: str) -> np.ndarray:
    return events["guard"].fillna("").str.split("+").apply(lambda f: flag in f).to_numpy()


def _explained(events: pd.DataFrame) -> None:
    """Each column there, float32; the flags and counted CTCs agree with their readings."""
    for name in TABLE_MEASURES:
        assert events[name].dtype == np.float32, name
    assert np.isfinite(events["ck_peak"]).all() and np.isfinite(events["ck_area_um2"]).all()
    ctc = (events["class"] == "ctc").to_numpy() & counted(events)
    assert ctc.sum() >= 3
    # A counted CTC has a CK area, DNA in it and no CD45 over it, as the table reads them.
    assert (events["ck_area_um2"][ctc] > 0).all()
    assert (events["dna_in_ck"][ctc] >= RULES.dna_level).all()
    cd45 = events["cd45_over_ck"][ctc]
    assert np.isfinite(cd45).all() and (cd45 <= RULES.cd45_level).all()
    no_dna = _held_by(events, "no_dna")
    assert (events["dna_in_ck"][no_dna] < RULES.dna_level).all()
    no_ck = _held_by(events, "no_ck")
    assert (events["ck_area_um2"][no_ck] == 0).all()


def test_a_cartridges_events_carry_the_measurements_their_flags_read(tmp_path):
    predict_cartridge(REFERENCE_CARTRIDGE, load_backend(None, device="cpu"), tmp_path / "out",
                      PredictOptions(quiet=True, report=False))
    events = pd.read_parquet(tmp_path / "out" / "events.parquet")
    _explained(events)
    # Read on demand: CD45 on the calls the guard checks, not on every leukocyte.
    wbc = (events["class"] == "wbc").to_numpy()
    assert np.isnan(events["cd45_over_ck"][wbc]).mean() > 0.5
    csv = pd.read_csv(tmp_path / "out" / "events.csv")
    assert np.allclose(csv["ck_peak"], events["ck_peak"], rtol=1e-4, atol=1e-3)
    # The review page's readings of an event are these.
    shown = guard_measures(events[events["class"] == "ctc"].head(1))[0]
    assert shown["CK peak"] == round(float(events["ck_peak"][events["class"] == "ctc"].iloc[0]),
                                     2)
    assert "CD45 over CK" in shown


@pytest.fixture(scope="module")
def crop_set(tmp_path_factory):
    panel = load_panel(None)
    batch = simulate_crops({"ctc": 12, "wbc": 10, "debris": 6}, panel, None, 80, seed=44,
                           num_samples=2, config=SimConfig().with_filled_ctc_look())
    root = tmp_path_factory.mktemp("measures") / "crops"
    write_crop_dataset(root, batch.images, batch.labels, panel, batch.sample_ids)
    return root


def test_a_crop_sets_predictions_carry_them_read_on_every_crop_by_a_fusion(crop_set,
                                                                          tmp_path):
    predict_crop_dataset(crop_set, load_backend("ctcnet-core3", device="cpu"), tmp_path / "o",
                         PredictOptions(quiet=True))
    table = pd.read_parquet(tmp_path / "o" / "predictions.parquet")
    _explained(table)
    # The model's marker fusion reads CD45 on every crop with a CK area.
    has_ck = (table["ck_area_um2"] > 0).to_numpy()
    assert np.isfinite(table["cd45_over_ck"][has_ck]).all()


def test_the_table_gives_dna_structure_up_to_its_bound_and_the_ck_area_in_um2():
    """A residual with almost no pixel noise read DAPI's own structure in the millions, shown so
    on the review page; the flags read it against levels near 1."""
    from ctcnet.inference.guard.flags import OWN_STRUCTURE_SHOWN, table_measures

    measured = pd.DataFrame({"dna_own_structure": [3.2e7, np.nan, 0.3], "ck_area": [100, 0, 25]})
    out = table_measures(measured, pixel_size_um=0.5)
    assert out["dna_own_structure"][0] == OWN_STRUCTURE_SHOWN
    assert np.isnan(out["dna_own_structure"][1]) and out["dna_own_structure"][2] == np.float32(0.3)
    assert out["ck_area_um2"].tolist() == [25.0, 0.0, 6.25]
    assert np.isnan(out["cd45_over_ck"]).all()  # not measured: NaN, not absent
