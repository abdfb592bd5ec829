"""Predict finds and calls the same events as the recorded golden run (float rounding only).

The golden run is the reference ``ctcnet verify`` checks an installation with (shipped in
``models/reference``). ``models/reference/events.parquet`` was written by
``scripts/make_predict_golden.py`` with the code before that work, on the committed 3-frame
cartridge ``models/reference/cartridge`` (scan
pixel size 0.662 um against the model's 0.64, so crops are resampled), with the shipped model as
predict picks it on a CPU. Its ``markers_ctc`` column (no golden event has it) was added when
predict began writing it, and its ``guard`` (and ``review``) columns gained ``one_cell`` on
two of its three cluster calls (cut by the frame edge, so filed as debris) when that flag was
added, and ``markers_ctc`` on the same two when the markers began reading a lone cell the
network called a cluster (they stay filed as debris); its ``filed_by_prior`` column (False
throughout: the golden is read at the balanced prior) was added when predict began writing
it; its ``markers_vouch`` column (8 of its 11 ``ctc`` calls) was added when the markers began
settling the network's doubt between a CTC and a cluster on one cell, and ``review`` then
left off the three of them the network doubted (confidence 0.52-0.82, a cluster the rest);
its ``cluster_partner`` column was added when predict began naming a cluster's partners (its
eight cluster calls: seven ``neutrophil``, where the simulator drew CTC-neutrophil clusters,
and ``homotypic`` on its CTC doublet); its ``review`` column gained its one ``ctc`` call
cut by the frame edge (p 0.89, filed as debris) when predict began showing the CTC and
cluster calls the border cuts; the guard's measurements (``TABLE_MEASURES``: ``ck_peak`` to
``dna_edge_um``) were added when predict began writing them, every other column then
unchanged; its ``cd45_leak_needed`` column (on its counted ``ctc`` calls, 0-0.003 against the
scan's measured leak of 0.0097: none held) was added when predict began holding the CTC calls
whose CD45 needs more leak than the scan shows, every other column then unchanged; every
other column is as first written.
"""

import pandas as pd
import pytest

from ctcnet.inference.backends import load_backend
from ctcnet.inference.predict import PredictOptions, predict_cartridge
from ctcnet.inference.verification import REFERENCE_CARTRIDGE as CARTRIDGE
from ctcnet.inference.verification import REFERENCE_EVENTS as GOLDEN
from ctcnet.inference.verification import event_differences
from ctcnet.nn.calls import DecisionRule


def assert_same_events(got: pd.DataFrame, want: pd.DataFrame) -> None:
    """The events as recorded, floats within the rounding a float32 graph leaves
    (``verification.FLOAT_TOLERANCE``), every call and flag exactly: as ``ctcnet verify``
    holds an installation to them."""
    differences = event_differences(got, want)
    assert not differences, differences


@pytest.mark.parametrize("workers", [0, 1])
def test_predict_reproduces_the_golden_events(tmp_path, workers):
    backend = load_backend(None, device="cpu")
    # The golden predates the shipped model's decision rule (spec.decision, its own tests in
    # tests/evaluation/test_decision.py): it pins the pipeline around the network, so it is read
    # without it.
    backend.spec = backend.spec.replace(decision=DecisionRule.balanced())
    predict_cartridge(CARTRIDGE, backend, tmp_path / "out",
                      PredictOptions(quiet=True, workers=workers, report=False))
    got = pd.read_parquet(tmp_path / "out" / "events.parquet")
    want = pd.read_parquet(GOLDEN)
    assert len(want) > 50 and want["class"].nunique() == 4  # the fixture covers every class
    assert_same_events(got, want)


def test_golden_comparison_notices_a_changed_call():
    want = pd.read_parquet(GOLDEN)
    changed = want.copy()
    changed.loc[3, "class"] = "ctc" if want.loc[3, "class"] != "ctc" else "wbc"
    with pytest.raises(AssertionError):
        assert_same_events(changed, want)
    moved = want.copy()
    moved.loc[5, "x"] += 0.05
    with pytest.raises(AssertionError):
        assert_same_events(moved, want)


def test_a_cartridge_that_found_no_event_writes_the_events_files_with_every_column(tmp_path):
    """A sample whose every frame failed still writes events files of the same columns and
    types as one that found events: a night's tables concatenate, or load into one database
    table, whatever each sample found."""
    import shutil

    import pyarrow.parquet as pq

    cart = tmp_path / "cart"
    shutil.copytree(CARTRIDGE, cart)
    for frame in cart.glob("*.tif"):
        frame.write_bytes(frame.read_bytes()[:100])  # truncated: every frame skipped
    backend = load_backend(None, device="cpu")
    predict_cartridge(cart, backend, tmp_path / "out",
                      PredictOptions(quiet=True, workers=0, report=False))
    got = pq.read_schema(tmp_path / "out" / "events.parquet")
    want = pq.read_schema(GOLDEN)
    assert pq.read_metadata(tmp_path / "out" / "events.parquet").num_rows == 0
    assert [(f.name, f.type) for f in got] == [(f.name, f.type) for f in want]
    header = (tmp_path / "out" / "events.csv").read_text().splitlines()[0]
    assert header.split(",") == want.names
