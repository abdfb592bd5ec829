"""The events tables (ctcnet.inference.tables): events.csv is rendered from the Arrow columns
that events.parquet is written from, exactly as pandas' ``to_csv(float_format="%.5g")`` wrote
it, so readers of the CSV see the same text; rows of NaN are failed, never a class."""

import io

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from ctcnet.inference import tables as T
from ctcnet.inference.tables import label_events
from ctcnet.io.panel import load_panel
from ctcnet.io.taxonomy import default_taxonomy
from ctcnet.nn.spec import ModelSpec


def test_floats_are_written_as_percent_g5_writes_them():
    rng = np.random.default_rng(3)
    values = np.concatenate([
        rng.uniform(-1, 1, 20000) * 10.0 ** rng.integers(-9, 9, 20000),   # every scale
        rng.uniform(0, 1, 5000).astype(np.float32).astype(np.float64),     # probabilities
        np.arange(1, 4000) / 8.0,                                            # exact ties
        [0.0, -0.0, 1e-4, 9.99996e-5, 99999.49, 99999.5, 9.99996, 1e5, np.inf, -np.inf]])
    want = [f"{v:.5g}" for v in values]
    assert T.format_g5(values).to_pylist() == want
    assert T.format_g5(np.array([np.nan, 1.0])).to_pylist() == [None, "1"]


@pytest.mark.parametrize("guard", [["", "unusual", "cd45_positive+unusual"],
                                   ["", "a, with a comma", 'a "quoted" one']])
def test_csv_rows_are_what_pandas_writes(guard):
    table = pd.DataFrame({"event_id": np.arange(3, dtype=np.int64), "frame_id": ["r00c00"] * 3,
                          "x": [1.23456789, np.nan, 1e-7], "p_ctc": np.float32([0.5, 1e-6, 1]),
                          "edge_cut": [True, False, True], "guard": guard})
    out = io.BytesIO()
    T.write_csv_rows(out, pa.Table.from_pandas(table, preserve_index=False))
    want = table.to_csv(index=False, header=False, float_format="%.5g")
    # Positions in full: a crop is cut again from them.
    want = want.replace("1.2346", "1.23456789").replace("1e-07", "1e-7")
    assert out.getvalue().decode() == want
    assert pd.read_csv(io.BytesIO(out.getvalue()), header=None)[2].iloc[0] == 1.23456789


CROP = 32


# 2. NaN probabilities never become a call.

def test_nan_rows_are_failed_and_reviewed_never_a_class():
    spec = ModelSpec("compact", load_panel(None), default_taxonomy(), crop_size=CROP)
    proba = np.array([[np.nan] * 4, [0.97, 0.01, 0.01, 0.01], [0.5, np.inf, 0, 0]], np.float32)
    events = pd.DataFrame({"x": [1.0, 2.0, 3.0], "edge_cut": [True, False, False]})
    out = label_events(events, proba, spec, edge_cut_class="debris")
    assert out["class"].tolist() == ["failed", "ctc", "failed"]
    assert out["review"].tolist() == [True, False, True]
    assert np.isnan(out["confidence"][0])


def test_calls_that_look_like_a_swapped_ck_and_cd45_are_said():
    from ctcnet.inference.counts import count_events, implausible_marker_balance

    def tally(ctc, wbc):
        calls = ["ctc"] * ctc + ["wbc"] * wbc + ["debris"] * 50
        events = pd.DataFrame({"class": calls, "review": False, "guard": ""})
        return count_events(events, ["ctc", "wbc", "cluster", "debris"], ["ctc"], 7.5)

    assert implausible_marker_balance(tally(3, 1000)) is None  # a patient sample
    assert implausible_marker_balance(tally(19, 20)) is None  # too few to say
    said = implausible_marker_balance(tally(41, 91))
    assert said and "41 events called ctc against 91 called wbc:" in said and "swapped" in said
    assert "alone or in clusters" in said
    # A model without a cluster class: no clusters spoken of.
    three = count_events(pd.DataFrame({"class": ["ctc"] * 41 + ["wbc"] * 91, "review": False,
                                       "guard": ""}), ["ctc", "wbc", "debris"], ["ctc"], 7.5)
    assert "more CTCs than blood holds" in implausible_marker_balance(three)
    # Held calls are calls: said as such, the summary's counts leaving them out (418 counted
    # there beside 422 called here read as two figures of one thing).
    events = pd.DataFrame({"class": ["ctc"] * 41 + ["wbc"] * 91, "review": False,
                           "guard": ["possible_ctc"] * 4 + [""] * 128})
    held = count_events(events, ["ctc", "wbc", "cluster", "debris"], ["ctc"], 7.5)
    assert "41 events called ctc against 91 called wbc (4 of them held for review):" in \
        implausible_marker_balance(held)
    # Clusters counted with the CTCs (CK read in a platelet marker's plane makes every
    # platelet on a cell a CTC's partner: 63 clusters against 225 leukocytes on 4 frames).
    calls = ["cluster"] * 63 + ["wbc"] * 225
    clusters = count_events(pd.DataFrame({"class": calls, "review": False, "guard": ""}),
                            ["ctc", "wbc", "cluster", "debris"], ["ctc", "cluster"], 7.5)
    assert implausible_marker_balance(clusters) is None  # CTCs alone: none
    # A lab's leukocyte class named otherwise (checked as wbc): it was never checked.
    lab = count_events(pd.DataFrame({"class": ["tumour"] * 41 + ["leukocyte"] * 91,
                                     "review": False, "guard": ""}),
                       ["tumour", "leukocyte", "junk"], ["tumour"], 7.5)
    assert "41 events called tumour against 91 called leukocyte" in implausible_marker_balance(
        lab, ["tumour"], wbc_classes=["leukocyte"])
    from ctcnet.inference.counts import implausible_frames

    frames = pd.DataFrame({"class": ["tumour"] * 30 + ["leukocyte"] * 960,
                           "frame_id": ["r00c07"] * 90 + ["r00c01"] * 900})
    said = implausible_frames(frames, ["tumour"], ["leukocyte"])
    assert "frame r00c07: 30 called tumour against 60 called leukocyte (the other frames 0 " \
        "against 900)" in said
    # A CD45 lamp dark on the frame reads alike: said beside the swap, not only a swap.
    assert "(CK and CD45 swapped, or renamed?) and CD45's plane on it (dark, its lamp" in said
    said = implausible_marker_balance(clusters, ["cluster"])
    assert "63 events called cluster against 225 called wbc" in said and "platelet" in said
    # Each kind on its own: 15 CTCs and 10 clusters against 25 leukocytes (a rich reference
    # cartridge's) is no swap.
    calls = ["ctc"] * 15 + ["cluster"] * 10 + ["wbc"] * 25
    rich = count_events(pd.DataFrame({"class": calls, "review": False, "guard": ""}),
                        ["ctc", "wbc", "cluster", "debris"], ["ctc", "cluster"], 7.5)
    assert implausible_marker_balance(rich) is None
    assert implausible_marker_balance(rich, ["cluster"]) is None
    # A model without a decision rule for cartridges (ctcnet train's): its prior said first.
    prior = implausible_marker_balance(tally(41, 91), at_training_prior=True)
    assert "balanced training prior" in prior and "--prior" in prior
    assert prior.index("--prior") < prior.index("swapped")
    # ... and the prior the likelier cause, no report says its channel order is in doubt.
    from ctcnet.inference.result_state import channel_order_doubt

    assert not channel_order_doubt({"problems": [prior]})
    assert channel_order_doubt({"problems": [implausible_marker_balance(tally(41, 91))]})
    # A lab's class checked as a CTC (ctc_emt) is counted with ctc's calls.
    events = pd.DataFrame({"class": ["ctc"] * 10 + ["ctc_emt"] * 15 + ["wbc"] * 91,
                           "review": False, "guard": ""})
    emt = count_events(events, ["ctc", "ctc_emt", "wbc", "cluster", "debris"], ["ctc"], 7.5)
    assert implausible_marker_balance(emt) is None
    assert "25 events called ctc or ctc_emt against 91" in implausible_marker_balance(
        emt, ["ctc", "ctc_emt"])


def test_one_frame_whose_calls_look_like_a_swapped_ck_and_cd45_is_named():
    """One frame's channel files swapped leaves the cartridge's share under a quarter: the
    frame whose CTC calls stand out against the rest's is named; CTCs spread over every frame
    (a spike-in), or a frame with a few more than its share, are not."""
    from ctcnet.inference.counts import implausible_frames

    def cartridge(per_frame):
        rows = [(f"r00c{i:02d}", c) for i, (ctc, wbc) in enumerate(per_frame)
                for c in ["ctc"] * ctc + ["wbc"] * wbc + ["debris"] * 60]
        return pd.DataFrame(rows, columns=["frame_id", "class"])

    normal = [(2, 60)] * 10
    assert implausible_frames(cartridge(normal)) is None
    swapped = cartridge([*normal[:4], (28, 49), *normal[5:]])
    said = implausible_frames(swapped)
    assert said.startswith("frame r00c04: 28 called ctc against 49 called wbc (the other "
                           "frames 18 against 540)") and "that frame's channel files" in said
    assert implausible_frames(swapped, ["ctc_emt"]) is None  # no call of that class
    spiked = cartridge([(18, 60)] * 10)  # rich on every frame
    assert implausible_frames(spiked) is None
    assert implausible_frames(cartridge([*normal[:4], (9, 20), *normal[5:]])) is None
    assert implausible_frames(cartridge([*normal[:4], (12, 60), *normal[5:]])) is None
    two = implausible_frames(cartridge([(28, 49), *normal[1:4], (30, 45), *normal[5:]]))
    assert "frame r00c00: 28" in two and "; frame r00c04: 30" in two and "those frames'" in two
    assert implausible_frames(cartridge(normal).drop(columns="frame_id")) is None
    assert implausible_frames(cartridge([])) is None


def test_frames_of_other_columns_are_written_as_the_first_and_said_once(tmp_path, caplog):
    """A journal's frames read by two versions (one measured a plane the other did not): one
    file of the first frame's columns, the others' left out said once, not once a frame."""
    first = pd.DataFrame({"x": [1.0], "class": ["ctc"]})
    more = pd.DataFrame({"x": [2.0], "class": ["wbc"], "mean_HER2": [3.0]})
    with caplog.at_level("WARNING"):
        kept = T.write_tables(tmp_path, [first, more, more], keep=("x",))
    written = pd.read_parquet(tmp_path / "events.parquet")
    assert list(written.columns) == ["event_id", "x", "class"] and len(written) == 3
    assert kept["x"].tolist() == [1.0, 2.0, 2.0]
    assert caplog.text.count("column(s) ['mean_HER2'] of some frames left out") == 1


def test_a_column_named_with_a_comma_keeps_its_place_in_events_csv(tmp_path):
    """A plane named `HER2 (clone 4D5, lot 7)` made the header's line of more fields than
    its rows: every column after it read under another's name."""
    name = 'mean_HER2 (clone 4D5, lot 7, "bright")'
    table = pd.DataFrame({"frame_id": ["r00c00", "r00c01"], "x": [1.5, 2.5],
                          name: [10.0, 20.0], "class": ["wbc", "ctc"]})
    T.write_tables(tmp_path, [table])
    read = pd.read_csv(tmp_path / "events.csv")
    assert list(read.columns) == list(pd.read_parquet(tmp_path / "events.parquet").columns)
    assert read[name].tolist() == [10.0, 20.0] and read["class"].tolist() == ["wbc", "ctc"]
