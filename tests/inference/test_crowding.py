"""A sample crowded past what detection was checked on is a problem of the sample."""

from ctcnet.inference.run_summary import CROWDED_PER_MM2, crowding_problem, events_per_mm2


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
