"""A scan's planes the model does not read are measured beside it: each event's mean over its
object (``mean_<plane>`` in the events table, from the same objects and binning as the model's
channels' means), the leukocytes' reference and the counted CTCs above it in summary.json
(``unread_markers``); they take no part in finding or calling events."""

import json

import numpy as np
import pandas as pd
import pytest
import tifffile

from ctcnet.cli import main
from ctcnet.detect.detection import DetectConfig, detect_events
from ctcnet.inference.tables import same_columns
from ctcnet.inference.unread_markers import unread_marker_summary
from ctcnet.io.images import write_tiff
from ctcnet.io.panel import load_panel

SIX = ["DAPI", "CK", "CD45", "CD61", "CD66b", "HER2"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A six-plane scan whose HER2 plane is a copy of its DAPI plane, and the same scan
    without that plane, each predicted with the default model."""
    from ctcnet.simulate import simulate_cartridge

    root = tmp_path_factory.mktemp("unread")
    six = root / "six"
    simulate_cartridge(six, load_panel({"channels": SIX, "pixel_size_um": 0.64}),
                       num_frames=2, seed=11, events_per_frame=200,
                       rare_rates={"ctc": 0.05})
    five = root / "five"
    five.mkdir()
    panel = json.loads((six / "panel.json").read_text())
    pixel_um = panel["pixel_size_um"]  # the simulator's draw
    for frame in sorted(six.glob("r*.tif")):
        planes = tifffile.imread(frame)
        planes[5] = planes[0]  # HER2 shows exactly what DAPI shows
        write_tiff(frame, planes, SIX, pixel_um)
        write_tiff(five / frame.name, planes[:5], SIX[:5], pixel_um)
    (five / "panel.json").write_text(json.dumps({**panel, "channels": panel["channels"][:5]}))
    (five / "cartridge.json").write_text((six / "cartridge.json").read_text())
    for name in ("six", "five"):
        assert main(["predict", str(root / name), "--out", str(root / f"out_{name}"),
                     "--no-report", "--quiet"]) == 0
    return root


def _outputs(root, name):
    sample = next((root / f"out_{name}").glob("*/summary.json")).parent
    return (pd.read_parquet(sample / "events.parquet"),
            json.loads((sample / "summary.json").read_text()))


def test_an_unread_plane_is_measured_over_each_events_object(runs):
    events, summary = _outputs(runs, "six")
    assert len(events) > 100
    # The same objects and binning as the model's channels: a copy of DAPI reads as DAPI.
    np.testing.assert_allclose(events["mean_HER2"], events["mean_DAPI"], rtol=1e-6)
    assert summary["panel"]["channels"][-1]["name"] == "CD66b"  # the model's channels only


def test_an_unread_plane_changes_no_event_or_call(runs):
    six, _ = _outputs(runs, "six")
    five, summary = _outputs(runs, "five")
    assert "mean_HER2" not in five and summary.get("unread_markers") is None
    same = [c for c in five.columns if c in six.columns]
    pd.testing.assert_frame_equal(six[same], five[same])


def test_the_summary_states_the_leukocytes_level_and_the_ctcs_above_it(runs):
    events, summary = _outputs(runs, "six")
    record = summary["unread_markers"]["planes"]["HER2"]
    # The leukocyte calls the guard did not hold (a held one may be a possible missed CTC).
    kept = events["guard"].fillna("") == ""
    leukocytes = events.loc[(events["class"] == "wbc") & kept, "mean_HER2"].to_numpy(np.float64)
    assert ((events["class"] == "wbc") & ~kept).any()  # the test has one held, left out
    median = np.median(leukocytes)
    sd = 1.4826 * np.median(np.abs(leukocytes - median))
    assert record["leukocytes"] == len(leukocytes)
    assert record["leukocyte_median"] == pytest.approx(median, abs=0.01)
    assert record["above_level"] == pytest.approx(median + 3 * sd, abs=0.02)
    ctcs = events[(events["class"] == "ctc") & (events["guard"].fillna("") == "")]
    assert record["counted_ctcs"] == len(ctcs) > 0
    # Beside the leukocytes' 3 sd, what CK's leak can carry: 12 % of the CTC's CK excess.
    ck_excess = np.clip(ctcs["mean_CK"] - events.loc[(events["class"] == "wbc") & kept,
                                                     "mean_CK"].median(), 0, None)
    above = ctcs["mean_HER2"] > median + 3 * sd + 0.12 * ck_excess
    assert record["counted_ctcs_above"] == int(above.sum())
    assert record["above_event_ids"] == ctcs.loc[above, "event_id"].tolist()
    assert "leukocytes' median + 3 robust sd" in summary["unread_markers"]["rule"]
    assert summary["unread_markers"]["leak_allowance"] == 0.12


def test_a_leak_of_ck_into_the_plane_is_not_read_as_the_marker():
    """Leukocytes (no CK) whose plane means vary by 1 count, CTCs whose CK leaks 0.6 % into
    it: a line set by the leukocytes alone read every CTC of a marker-negative sample above
    it; the leak is allowed for, stated, and the marker's own CTCs are above, by event id."""
    rng = np.random.default_rng(0)
    n_wbc, ck = 200, np.linspace(800.0, 3000.0, 10)
    base = pd.DataFrame({
        "event_id": np.arange(n_wbc + 10), "class": ["wbc"] * n_wbc + ["ctc"] * 10,
        "guard": [""] * (n_wbc + 10),
        "mean_CK": np.r_[rng.normal(200, 2, n_wbc), 200 + ck],
        "mean_HER2": np.r_[rng.normal(176, 1.2, n_wbc), 176 + 0.006 * ck]})
    negative = unread_marker_summary(base, ["HER2"], ["ctc"], ["wbc"], ck_name="CK")
    record = negative["planes"]["HER2"]
    assert record["counted_ctcs_above"] == 0 and record["above_event_ids"] == []
    assert record["ck_leak"] == pytest.approx(0.006, abs=1e-3)
    # Any event's own line: the level and 12 % of its CK over the leukocytes'.
    from ctcnet.inference.unread_markers import line_of

    assert negative["ck_leukocyte_median"] == pytest.approx(200, abs=0.5)
    level = record["above_level"]
    assert line_of(negative, "HER2", 1200.0) == pytest.approx(
        level + 0.12 * (1200 - negative["ck_leukocyte_median"]), abs=0.01)
    assert line_of(negative, "HER2", None) == level and line_of(negative, "PD-L1", 9.0) is None
    # Without the CK plane named, the leukocytes' line alone: every CTC above (as before).
    alone = unread_marker_summary(base, ["HER2"], ["ctc"], ["wbc"])
    assert alone["planes"]["HER2"]["counted_ctcs_above"] == 10
    assert alone["leak_allowance"] is None
    # Four CTCs carrying the marker at half their CK: those four, by id.
    marked = base.copy()
    marked.loc[n_wbc + np.arange(4), "mean_HER2"] += 0.5 * ck[:4]
    record = unread_marker_summary(marked, ["HER2"], ["ctc"], ["wbc"],
                                   ck_name="CK")["planes"]["HER2"]
    assert record["above_event_ids"] == list(range(n_wbc, n_wbc + 4))
    # A leak past the allowance is stated and the report says what it means.
    from ctcnet.report.report_page import unread_markers_html

    leaky = base.assign(mean_HER2=np.r_[base["mean_HER2"][:n_wbc], 176 + 0.3 * ck])
    summary = unread_marker_summary(leaky, ["HER2"], ["ctc"], ["wbc"], ck_name="CK")
    assert summary["planes"]["HER2"]["ck_leak"] == pytest.approx(0.3, abs=1e-3)
    assert "PAST THE ALLOWANCE" in unread_markers_html(summary)
    assert "PAST THE ALLOWANCE" not in unread_markers_html(negative)
    assert summary["planes"]["HER2"]["ck_leak_past_allowance"] is True
    assert negative["planes"]["HER2"]["ck_leak_past_allowance"] is False
    # run.json and samples.csv say it beside the figure (a LIMS reads the table, not the page).
    from ctcnet.inference.run_entry import _unread_above
    from ctcnet.inference.run_table import sample_row

    entry = _unread_above({"unread_markers": summary})
    assert entry["unread_leak_past_allowance"] == ["HER2"]
    assert "unread_leak_past_allowance" not in _unread_above({"unread_markers": negative})
    row = sample_row({"name": "S1", **entry})
    assert row["unread_ctcs_above"] == "HER2 10 of 10 (CK's leak past the allowance)"


def test_too_few_leukocytes_give_no_level():
    events = pd.DataFrame({"class": ["wbc"] * 5 + ["ctc"], "guard": [""] * 6,
                           "mean_HER2": [1.0, 2, 3, 4, 5, 90]})
    record = unread_marker_summary(events, ["HER2"], ["ctc"], ["wbc"])["planes"]["HER2"]
    assert record["leukocytes"] == 5 and record["above_level"] is None
    assert record["counted_ctcs_above"] is None and record["counted_ctcs"] == 1
    assert unread_marker_summary(events, [], ["ctc"], ["wbc"]) is None


def test_a_frame_without_events_keeps_the_measured_column():
    panel = load_panel({"channels": ["DAPI", "CK", "CD45"], "pixel_size_um": 0.64})
    flat = np.full((3, 64, 64), 100.0, np.float32)
    events = detect_events(flat, panel, DetectConfig(),
                           measured={"HER2": np.zeros((64, 64), np.uint16)})
    assert len(events) == 0 and "mean_HER2" in events


def test_tables_of_other_columns_are_written_as_the_first():
    import pyarrow as pa

    first = ["event_id", "x", "mean_HER2"]
    lacking = pa.table({"event_id": [1], "x": [2.0]})
    assert same_columns(lacking, first).column_names == first
    assert same_columns(lacking, first).column("mean_HER2").null_count == 1
    more = pa.table({"event_id": [1], "mean_HER2": [3.0], "x": [2.0], "mean_VIM": [1.0]})
    assert same_columns(more, first).column_names == first


def test_the_figures_are_read_again_over_the_ctcs_counted_after_review():
    """A reviewer rejects a CTC above the line and confirms a held one above it: the figure
    after review is of the CTCs then counted (it stayed the automatic count's: 19 of 27
    HER2+ beside a signed-off 26)."""
    from ctcnet.inference.unread_markers import after_review

    n_wbc = 40
    rng = np.random.default_rng(1)
    events = pd.DataFrame({
        "event_id": np.arange(n_wbc + 4), "class": ["wbc"] * n_wbc + ["ctc"] * 4,
        "guard": [""] * n_wbc + ["", "", "", "possible_ctc"],
        "mean_CK": np.r_[rng.normal(200, 2, n_wbc), [900.0] * 4],
        "mean_HER2": np.r_[rng.normal(176, 1.2, n_wbc), [600.0, 600.0, 176.0, 600.0]]})
    unread = unread_marker_summary(events, ["HER2"], ["ctc"], ["wbc"], ck_name="CK")
    assert unread["planes"]["HER2"]["above_event_ids"] == [n_wbc, n_wbc + 1]
    final = events["class"].to_numpy().copy()
    kept = (events["guard"] == "").to_numpy().copy()
    kept[n_wbc] = False  # rejected
    kept[n_wbc + 3] = True  # the held one confirmed
    reviewed = after_review(unread, events, final, kept)["after_review"]["HER2"]
    assert reviewed == {"counted_ctcs": 3, "counted_ctcs_above": 2,
                        "counted_ctcs_unmeasured": 0, "above_event_ids": [n_wbc + 1, n_wbc + 3]}
    assert unread["planes"]["HER2"]["counted_ctcs_above"] == 2  # the automatic figure kept
    # run.json and samples.csv give both, the reviewed one in its own column.
    from ctcnet.inference.run_entry import _unread_above
    from ctcnet.inference.run_table import sample_row

    entry = _unread_above({"unread_markers": after_review(unread, events, final, kept)})
    assert entry["unread_ctcs_above_after_review"] == {"HER2": [2, 3]}
    row = sample_row({"name": "S1", **entry})
    assert (row["unread_ctcs_above"], row["unread_ctcs_above_after_review"]) == (
        "HER2 2 of 3", "HER2 2 of 3")


def test_a_review_writes_the_figures_after_review_into_summary_json(runs, tmp_path):
    import shutil

    from ctcnet.review_server.sample import Sample

    source = next((runs / "out_six").glob("*/summary.json")).parent
    folder = tmp_path / source.name
    shutil.copytree(source, folder)
    sample = Sample(source.name, folder)
    state = sample.state("ann")
    ctcs = [c["event_id"] for c in state["candidates"] if c["call"] == "ctc"][:1]
    assert ctcs
    sample.decide_many({"event_ids": ctcs, "call": "reject", "run_id": state["run_id"]},
                       "ann")
    sample.state("ann")
    written = json.loads((folder / "summary.json").read_text())["unread_markers"]
    before = written["planes"]["HER2"]["counted_ctcs"]
    assert written["after_review"]["HER2"]["counted_ctcs"] == before - 1


def test_the_reports_line_gives_the_figure_after_review_beside_the_automatic_one():
    from ctcnet.report.report_page import unread_markers_html

    unread = {"planes": {"HER2": {"counted_ctcs_above": 19, "counted_ctcs": 27,
                                  "above_level": 179.61, "leukocytes": 423,
                                  "leukocyte_median": 175.96, "leukocyte_sd": 1.22,
                                  "ck_leak": 0.0064, "ck_leak_past_allowance": False}},
              "rule": "a counted CTC's mean ...; more", "after_review": {
                  "HER2": {"counted_ctcs": 26, "counted_ctcs_above": 18,
                           "above_event_ids": []}}}
    import html

    said = html.unescape(unread_markers_html(unread))
    assert "HER2: 19 of 27 counted CTCs above 179.61" in said
    assert "CK's leak into it 0.6% on the CTCs; after review 18 of 26" in said


def test_a_frame_lacking_only_an_unread_planes_file_is_read_and_its_ctcs_said_unmeasured(
        runs, tmp_path, caplog):
    """A HER2 file missing for one frame skipped the frame, its CTCs lost from the count for a
    measurement beside it: now read (its events' mean_HER2 empty), the figure's CTCs of that
    frame said not measured; a frame lacking a file the model reads is still skipped."""
    from ctcnet.inference.guard import counted

    six = tmp_path / "six"
    six.mkdir()
    for name in ("panel.json", "cartridge.json"):
        (six / name).write_text((runs / "six" / name).read_text())
    for frame in sorted((runs / "six").glob("r*.tif")):
        for c, plane in enumerate(tifffile.imread(frame)):
            tifffile.imwrite(six / f"{frame.stem}_c{c}.tif", plane)
    (six / "r00c01_c5.tif").unlink()  # HER2's file of the second frame never arrived
    out = tmp_path / "out"
    with caplog.at_level("WARNING", logger="ctcnet.io.missing_planes"):
        assert main(["predict", str(six), "--out", str(out), "--no-report", "--quiet"]) == 0
    assert "1 frame(s) lack the file of HER2" in caplog.text
    sample = next(out.glob("*/summary.json")).parent
    events = pd.read_parquet(sample / "events.parquet")
    summary = json.loads((sample / "summary.json").read_text())
    assert summary["frames"]["skipped"] == 0 and summary["status"] == "ok"
    second = events["frame"] == events["frame"].max()
    assert events.loc[second, "mean_HER2"].isna().all()
    assert events.loc[~second, "mean_HER2"].notna().all()
    record = summary["unread_markers"]["planes"]["HER2"]
    ctcs = (events["class"] == "ctc").to_numpy() & counted(events)
    assert record["counted_ctcs"] == ctcs.sum()
    assert record["counted_ctcs_unmeasured"] == (ctcs & second.to_numpy()).sum() > 0
    row = pd.read_csv(out / "samples.csv").iloc[0]
    assert f"({record['counted_ctcs_unmeasured']} not measured: a frame lacks the plane)" in \
        row["unread_ctcs_above"]
    # CK's file missing: the model reads it, so that frame is skipped as before.
    (six / "r00c00_c1.tif").unlink()
    assert main(["predict", str(six), "--out", str(out), "--no-report", "--quiet",
                 "--overwrite"]) == 0
    summary = json.loads((sample / "summary.json").read_text())
    assert summary["frames"]["skipped"] == 1 and summary["status"] == "partial"


@pytest.mark.parametrize("damage", ["other_size", "cut"])
def test_a_plane_file_that_will_not_read_leaves_the_frame_read(tmp_path, damage, caplog):
    """A therapy marker's channel file of another size, or cut short: the frame was skipped
    (its cells and blood with it), where a plane the model does not read is a measurement,
    never the frame's reason to be skipped."""
    import json

    import numpy as np
    import tifffile

    from ctcnet.io.panel import load_panel
    from ctcnet.io.scan import open_cartridge
    from ctcnet.io.unread_planes import read_with_unread

    rng = np.random.default_rng(0)
    names = ["DAPI", "CK", "CD45", "CD61", "CD66b", "HER2"]
    json.dump({"channels": names, "pixel_size_um": 0.64}, open(tmp_path / "panel.json", "w"))
    for c in range(6):
        shape = (40, 64) if c == 5 and damage == "other_size" else (48, 64)
        tifffile.imwrite(tmp_path / f"r00c00_c{c}.tif",
                         rng.integers(100, 4000, shape, dtype=np.uint16), photometric="minisblack")
    if damage == "cut":
        plane = tmp_path / "r00c00_c5.tif"
        plane.write_bytes(plane.read_bytes()[:200])
    cart = open_cartridge(tmp_path).conform(load_panel({"channels": names[:5],
                                                         "pixel_size_um": 0.64}))
    with caplog.at_level("WARNING"):
        pixels, measured = read_with_unread(cart, cart.frames[0])
    assert pixels.shape == (5, 48, 64) and measured == {}
    assert "HER2 not read" in caplog.text
