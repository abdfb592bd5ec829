"""What makes a sample's counts doubtful as a whole: crowded past what detection was checked
on, next to nothing detected, a review list of a tenth of its events."""

from ctcnet.inference.sample_checks import (
    CROWDED_PER_MM2,
    crowding_problem,
    review_load_problem,
    sparse_problem,
)
from ctcnet.io.plausibility import events_per_mm2


def test_detected_events_per_mm2_of_the_frames_read():
    # 175 CellSearch frames (1384 x 1036 at 0.64 um/px: 0.587 mm^2 each), 290 events a frame.
    density = events_per_mm2(290 * 175, 175, (1036, 1384), 0.64)
    assert abs(density - 290 / 0.58725) < 1.0
    assert crowding_problem(density) is None
    assert events_per_mm2(10, 0, (1036, 1384), 0.64) is None  # no frame read
    assert events_per_mm2(10, 2, None, 0.64) is None


def test_a_crowded_sample_says_its_counts_may_be_low():
    crowded = events_per_mm2(2400, 1, (1036, 1384), 0.64)
    assert crowded > CROWDED_PER_MM2
    text = crowding_problem(crowded)
    assert text.startswith("crowded: 4,087 detected events per mm^2") and "may be low" in text
    assert "a leukocyte touching a CTC can be called one" in text  # high too, CTC-rich


def test_a_sample_with_next_to_nothing_detected_is_no_negative():
    assert sparse_problem(2, 3).startswith("almost nothing detected: 2 event(s) in 3 frame(s)")
    assert "zero counts are no negative" in sparse_problem(0, 175)
    assert sparse_problem(3, 3) is None and sparse_problem(290 * 175, 175) is None
    assert sparse_problem(0, 0) is None  # no frame read: a failed sample says so itself
    # By density where the frames' size is known: 3 events in 3 CellSearch frames (1.7 per
    # mm^2) is an empty cartridge; a healthy donor's low tail (500 a sample, 4.9) is not.
    assert sparse_problem(3, 3, density=3 / (3 * 0.587)) is not None
    assert sparse_problem(500, 175, density=500 / (175 * 0.587)) is None


def test_a_review_list_of_a_tenth_of_the_events_is_said():
    text = review_load_problem({"events": 346}, 1538)
    assert text.startswith("review list of 346 events, 22% of the sample's")
    assert review_load_problem({"events": 251}, 57440) is None  # the counting cartridges'
    assert review_load_problem({"events": 30}, 100) is None  # a tiny scan's handful
    assert review_load_problem(None, 100) is None and review_load_problem({"events": 5}, 0) \
        is None


def test_an_empty_cartridge_is_partial_not_a_clean_negative(tmp_path):
    from conftest import save_tiny_model

    from ctcnet.inference.backends import load_backend
    from ctcnet.inference.predict import PredictOptions, predict_cartridge
    from ctcnet.io.panel import load_panel
    from ctcnet.simulate import simulate_cartridge

    simulate_cartridge(tmp_path / "cart", load_panel(None), num_frames=3,
                       frame_shape=(128, 160), seed=3, events_per_frame=0, sample_id="E")
    save_tiny_model(tmp_path / "model.pt", crop_size=32)
    summary = predict_cartridge(tmp_path / "cart", load_backend(tmp_path / "model.pt",
                                                                device="cpu"),
                                tmp_path / "out", PredictOptions(quiet=True, workers=0,
                                                                 report=False))
    assert summary.status == "partial"
    assert any(p.startswith("almost nothing detected") for p in summary.problems)
    assert summary.leak_check["measured_on"] == 0  # its leaks of 0 measure nothing


def test_a_sample_fainter_than_any_the_model_was_checked_on_is_said():
    import numpy as np

    from ctcnet.inference.sample_checks import faint_problem

    text = faint_problem(np.full(900, 11.9))
    assert text.startswith("faint: the events' median peak stands 11.9 times the frames' "
                           "noise above their background") and "may be low" in text and \
        "scan again" in text
    assert faint_problem(np.full(900, 25.0)) is None  # the faintest simulated look's
    assert faint_problem(np.full(30, 5.0)) is None  # too few events to say
    assert faint_problem(np.r_[np.full(60, np.nan), np.full(60, 30.0)]) is None


def test_frames_far_under_their_cartridges_median_are_said():
    from ctcnet.inference.sample_checks import sparse_frames

    frames = {f"r00c{i:02d}": 290 for i in range(12)}
    assert sparse_frames(frames) is None
    frames["r00c03"], frames["r00c07"] = 141, 120  # half of each blanked by a bubble
    text = sparse_frames(frames)
    assert text.startswith("2 frame(s) hold under half the events of the cartridge's median "
                           "frame (290): r00c03, r00c07")
    assert sparse_frames(dict(list(frames.items())[:4])) is None  # too few frames to say
    assert sparse_frames({f"f{i}": 3 for i in range(12)} | {"f0": 0}) is None  # too sparse


def test_one_tile_under_two_names_in_another_encoding_is_said(tmp_path):
    """The same pixels written again under another frame's name, zlib-compressed: the
    listing's byte check passes it, and its cells were counted twice, the sample ok."""
    import tifffile
    from conftest import save_tiny_model

    from ctcnet.inference.backends import load_backend
    from ctcnet.inference.predict import PredictOptions, predict_cartridge
    from ctcnet.io.panel import load_panel
    from ctcnet.simulate import simulate_cartridge

    simulate_cartridge(tmp_path / "cart", load_panel(None), num_frames=3,
                       frame_shape=(200, 260), seed=3, events_per_frame=20, sample_id="D")
    save_tiny_model(tmp_path / "model.pt", crop_size=32)
    backend = load_backend(tmp_path / "model.pt", device="cpu")
    options = PredictOptions(quiet=True, workers=0, report=False)
    clean = predict_cartridge(tmp_path / "cart", backend, tmp_path / "clean", options)
    assert not any("same events at the same places" in p for p in clean.problems)
    frames = sorted((tmp_path / "cart").glob("r*.tif"))
    tifffile.imwrite(frames[2], tifffile.imread(frames[0]), compression="zlib")
    copied = predict_cartridge(tmp_path / "cart", backend, tmp_path / "copied", options)
    assert copied.status == "partial"
    (said,) = [p for p in copied.problems if "same events at the same places" in p]
    assert f"{frames[0].stem}, {frames[2].stem}" in said
    # A benchmark's cartridge repeats its frames on purpose, and its cartridge.json says so.
    from ctcnet.benchmark.cartridges import linked_cartridge

    linked_cartridge(tmp_path / "cart", tmp_path / "linked", 4)
    linked = predict_cartridge(tmp_path / "linked", backend, tmp_path / "bench", options)
    assert not any("same events at the same places" in p for p in linked.problems)


def test_a_frame_of_next_to_no_events_is_a_problem_of_the_sample():
    """A frame of noise read 0 events beside its cartridge's 304 a frame: its blood was
    counted as read, the sample ok, said in a log line only (and not at all on a cartridge of
    under 10 frames)."""
    from ctcnet.inference.sample_checks import empty_frames_problem, sparse_frames

    frames = {f"r00c{i:02d}": 300 + i for i in range(4)}
    assert empty_frames_problem(frames) is None
    frames["r00c01"], frames["r00c02"] = 0, 10
    text = empty_frames_problem(frames)
    assert text.startswith("2 of 4 frames read hold next to no events (under a tenth of the "
                           "frames' upper quartile, 301): r00c01 (0), r00c02 (10)"), text
    assert empty_frames_problem({"a": 300, "b": 0}) is not None  # two frames say it
    # Most frames empty (the chamber lost mid-scan): the median was theirs, and 2 of 3 frames
    # empty read ok where 1 of 3 read partial; 100 of 175 so, the rates 2.3x too low, unsaid.
    assert "r00c01 (2), r00c02 (3)" in empty_frames_problem(
        {"r00c00": 308, "r00c01": 2, "r00c02": 3})
    most = {f"f{i:03d}": 300 if i < 75 else 0 for i in range(175)}
    assert empty_frames_problem(most).startswith("100 of 175 frames read hold next to no")
    assert empty_frames_problem({"a": 300}) is None
    assert empty_frames_problem({"a": 15, "b": 0, "c": 15}) is None  # too sparse to say
    # The warning of frames under half leaves those said as a problem.
    many = {f"r00c{i:02d}": 290 for i in range(12)} | {"r00c03": 141, "r00c07": 0}
    assert sparse_frames(many).startswith("1 frame(s) hold under half the events of the "
                                          "cartridge's median frame (290): r00c03 (")


def test_a_frame_out_of_focus_is_a_problem_of_the_sample():
    """Blur spreads every object over its threshold: a frame blurred at 4 px read 2.5x its
    cartridge's median area, its CTCs lost to debris, the sample ok and nothing said. With
    half the frames blurred the median lies between: the frames' lower quartile is read."""
    import numpy as np
    import pandas as pd

    from ctcnet.inference.sample_checks import blurred_frames_problem

    rng = np.random.default_rng(0)

    def frames(areas, n=90):
        return pd.DataFrame({"frame_id": np.repeat([f"r00c{i:02d}" for i in range(len(areas))],
                                                   n),
                             "area_um2": np.concatenate([rng.normal(a, 20, n)
                                                         for a in areas])})

    assert blurred_frames_problem(frames([150, 160, 145, 170, 155])) is None
    text = blurred_frames_problem(frames([150, 390, 145, 380]))
    assert text.startswith("2 frame(s) hold objects spread over far more area than the other "
                           "frames'") and "r00c01 (2." in text and "r00c03 (2." in text
    assert "r00c00" not in text and "out of focus?" in text
    # Most frames blurred (focus drifting), and one of two.
    assert blurred_frames_problem(frames([150, 375, 375])).startswith("2 frame(s) hold")
    assert "r00c01 (1.9x)" in blurred_frames_problem(frames([150, 345]))
    # Frames of a few dozen events drawn alike read 2x by chance: too few to say.
    assert blurred_frames_problem(frames([150, 390], n=40)) is None
    assert blurred_frames_problem(pd.DataFrame({"frame_id": [], "area_um2": []})) is None


def test_a_plane_dark_on_one_frame_is_a_problem_of_the_sample():
    """CK's lamp off on one frame of six lost that frame's CTCs (7 to 0), the sample ok and
    nothing said; the DNA stain off on one, its 3 CTCs. Each frame's share of events the plane
    lights is read against the frames' upper quartile, where enough of them would be lit to
    tell and the other frames' shares agree."""
    import numpy as np
    import pandas as pd

    from ctcnet.inference.sample_checks import dark_planes_problem

    rng = np.random.default_rng(1)

    def frames(ck_shares, dna_shares=None, n=250):
        dna_shares = dna_shares or [0.7] * len(ck_shares)
        ck = np.concatenate([np.where(rng.random(n) < s, 60.0, 2.0) for s in ck_shares])
        area = np.where(ck > 10, 80.0, 0.0)
        dna = np.concatenate([np.where(rng.random(n) < s, 90.0, 1.0) for s in dna_shares])
        return pd.DataFrame({
            "frame_id": np.repeat([f"r00c{i:02d}" for i in range(len(ck_shares))], n),
            "ck_peak": ck, "ck_area_um2": area, "dna_in_ck": np.where(area > 0, dna, 0.0)})

    assert dark_planes_problem(frames([0.6, 0.55, 0.65, 0.6])) is None
    text = dark_planes_problem(frames([0.6, 0.0, 0.65, 0.6]))
    assert text.startswith("CK lights next to none of the events on 1 frame(s)")
    assert "r00c01 (0 of 250)" in text and "r00c00" not in text and "lamp" in text
    text = dark_planes_problem(frames([0.6] * 4, [0.7, 0.7, 0.7, 0.02]))
    assert text.startswith("the DNA stain (inside CK) lights next to none") and "r00c03" in text
    # A lamp failed mid-scan: most frames dark, the median share theirs.
    assert "on 2 frame(s)" in dark_planes_problem(frames([0.6, 0.0, 0.0]))
    assert "on 3 frame(s)" in dark_planes_problem(frames([0.6, 0.6, 0.0, 0.0, 0.0]))
    # Shares that swing between frames (CK+ debris in clumps): a frame of next to none is
    # chance, not a lamp (a fifth of the upper quartile flagged 20 of 100 such cartridges).
    assert dark_planes_problem(frames([0.6, 0.1, 0.2, 0.55, 0.0, 0.3, 0.65, 0.15])) is None
    # Where CK lights few events on any frame, a frame of none is chance: not judged.
    assert dark_planes_problem(frames([0.05, 0.0, 0.06, 0.05])) is None
    # One frame, or a table without the guard's columns: nothing to compare.
    assert dark_planes_problem(frames([0.0])) is None
    assert dark_planes_problem(pd.DataFrame({"frame_id": ["a"], "area_um2": [1.0]})) is None
