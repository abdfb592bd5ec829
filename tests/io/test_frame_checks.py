"""ctcnet.io.frame_checks: frames of another size than the cartridge's are skipped with the
reason and their blood not counted; a frame largely saturated is read, with a note the run
records as a problem (a count that stands only once a person has looked)."""

import json
import time

import numpy as np
import pytest
import tifffile
from conftest import frames, predict

from ctcnet.io.frame_checks import SATURATED_SHARE, mark_odd_sizes, saturation_note
from ctcnet.io.panel import load_panel
from ctcnet.io.scan import open_cartridge
from ctcnet.io.sources import FrameRef


def _noise(shape):
    return np.random.default_rng(0).integers(90, 400, shape).astype(np.uint16)


def test_frames_of_another_size_are_skipped_and_their_blood_not_counted(clean_run, cart,
                                                                        caplog):
    """A 700 x 600 frame (another scan's) and a 40 x 40 one (a cut export) among 128 x 160
    frames: each skipped with its size named, the blood read that of the three real frames
    over five positions (never five full frames' blood). The grid cartridge.json states holds
    them (a frame outside it is no frame of the scan, and not read)."""
    info = json.loads((cart / "cartridge.json").read_text())
    (cart / "cartridge.json").write_text(json.dumps({**info, "rows": 2, "columns": 3,
                                                     "num_frames": 5}))
    tifffile.imwrite(cart / "r01c00.tif", _noise((5, 700, 600)), photometric="minisblack")
    tifffile.imwrite(cart / "r01c01.tif", _noise((5, 40, 40)), photometric="minisblack")
    opened = open_cartridge(cart)
    assert opened.frame_shape == (128, 160)
    odd = {f.frame_id: f.problem for f in opened.frames if f.problem}
    assert set(odd) == {"r01c00", "r01c01"}
    assert "700 x 600 px, the cartridge's frames 128 x 160 px" in odd["r01c00"]
    with caplog.at_level("WARNING", logger="ctcnet"):
        summary = predict(clean_run, cart)
    assert summary.status == "partial" and summary.frames.skipped == 2
    assert summary.frames.processed == 3
    assert {s["frame"] for s in summary.skipped_frames} == {"r01c00", "r01c01"}
    assert "40 x 40 px" in caplog.text
    assert summary.events == clean_run["clean"].events
    assert summary.blood_volume_processed_ml == pytest.approx(summary.blood_volume_ml * 3 / 5)


def test_the_most_common_size_is_the_cartridges_and_a_stated_one_breaks_a_tie(tmp_path):
    def ref(name, shape):
        path = tmp_path / f"{name}.tif"
        tifffile.imwrite(path, _noise((3, *shape)), photometric="minisblack")
        return FrameRef(0, 0, int(name[-1]), (path,), name, source="multipage")

    a, b = ref("r00c00", (50, 60)), ref("r00c01", (80, 90))
    marked, shape = mark_odd_sizes([a, b])  # a tie: the first frame's size
    assert shape == (50, 60) and marked[0].problem is None and marked[1].problem
    marked, shape = mark_odd_sizes([a, b], stated=(80, 90))  # cartridge.json's breaks it
    assert shape == (80, 90) and marked[0].problem and marked[1].problem is None
    # Tiles of a stitched scene differ by a pixel where its size does not divide evenly.
    marked, _ = mark_odd_sizes([a, ref("r00c02", (51, 60)), ref("r00c03", (50, 60))])
    assert not any(f.problem for f in marked)


def test_a_saturated_frame_is_counted_with_a_problem_and_a_warning(clean_run, cart, caplog):
    """Half a frame at the top of the 12-bit range (glare, an overexposed tile): its events
    are still called, but the run says so and is partial; the count is not trusted silently."""
    path = frames(cart)[1]
    pixels = tifffile.imread(path)
    pixels[:, : pixels.shape[1] // 2] = 4095
    tifffile.imwrite(path, pixels, photometric="minisblack")
    with caplog.at_level("WARNING", logger="ctcnet"):
        summary = predict(clean_run, cart)
    assert summary.status == "partial" and summary.frames.skipped == 0
    (problem,) = summary.problems
    assert problem.startswith("frame r00c01: saturated: DAPI 50%") and "CK 50%" in problem
    assert "saturated" in caplog.text
    # A resumed run reports it too, from the journal, without reading the frame again.
    again = predict(clean_run, cart)
    assert again.frames.resumed_from_journal == 3 and again.problems == summary.problems


def test_a_few_saturated_pixels_are_no_note():
    panel = load_panel(None)
    frame = np.full((5, 100, 100), 200.0, np.float32)
    frame[1, :4, :] = 4095  # a bright CTC's CK: 4 % of the frame
    assert saturation_note(frame, panel.channels) is None
    frame[1, : int(100 * SATURATED_SHARE) + 2, :] = 4095
    assert "CK 7%" in saturation_note(frame, panel.channels)


def test_a_12_bit_scan_stated_as_16_bit_is_still_told_saturated_at_its_cameras_top():
    """Site data: a 12-bit camera in 16-bit files, panel.json stating 0-65535. CK clipped at
    4095 over 13 % of a frame is said, naming the camera's top and the range stated; a frame
    whose brightest pixel is 4095 only here and there is not."""
    from dataclasses import replace

    panel = load_panel(None)
    wide = [replace(c, value_range=(0.0, 65535.0)) for c in panel.channels]
    frame = np.full((5, 100, 100), 200.0, np.float32)
    frame[1, :13, :] = 4095
    note = saturation_note(frame, wide)
    assert "CK 13% (at 4095, a 12-bit camera's top; panel.json's value_range states 65535) " \
        "of its pixels" in note
    frame[1, 1:13, :] = 3000
    assert saturation_note(frame, wide) is None
    # The same camera's counts stored x16 (as many write 12-bit data) clip at 65520.
    frame[1, :13, :] = 65520
    assert "CK 13% (at 65520, a 12-bit camera's top stored x16; panel.json's value_range " \
        "states 65535)" in saturation_note(frame, wide)


def test_an_8_bit_frame_is_saturated_at_255_whatever_value_range_the_panel_states():
    """A minimal panel.json leaves value_range at a 12-bit scan's 4095; an 8-bit frame's DAPI
    at 255 over most of the frame is still said (it never was)."""
    panel = load_panel(None)
    assert panel.channels[0].value_range[1] == 4095
    frame = np.full((5, 100, 100), 20, np.uint8)
    frame[0, :60, :] = 255
    assert "DAPI 60%" in saturation_note(frame, panel.channels)
    # as a cartridge's frames are read: float32 of whole numbers within 0-255
    assert "DAPI 60%" in saturation_note(frame.astype(np.float32), panel.channels)
    scan = frame.astype(np.float32) * 16  # a 12-bit scan's counts: 4080 is under its top
    assert saturation_note(scan, panel.channels) is None


def test_a_simulated_8_bit_cartridge_states_its_0_255_range(tmp_path):
    from ctcnet.simulate import simulate_cartridge

    simulate_cartridge(tmp_path / "c", load_panel(None), num_frames=1, frame_shape=(96, 96),
                       seed=1, events_per_frame=2, layout="png")
    written = load_panel(tmp_path / "c" / "panel.json")
    assert all(c.value_range == (0.0, 255.0) for c in written.channels)


def test_a_frame_read_before_it_was_filled_is_skipped_and_an_older_one_read_and_said(
        clean_run, cart, monkeypatch):
    """A file written to its full size and filled after (a Windows copy, a scanner that
    preallocates), read minutes after it was written with its last rows still 0 where a
    camera's offset keeps every pixel above: the frame is skipped with the reason, and the
    sample partial, not 'ok' on a half-empty frame. The same rows in a file written long ago
    (a copy that broke off, or a stitched scene's padding) are read, and said: the sample is
    partial, the frame named."""
    import os

    path = frames(cart)[1]
    pixels = tifffile.imread(path)
    assert pixels.min() > 0  # a scan's offset
    pixels[1, pixels.shape[1] * 2 // 5:] = 0  # CK filled to 40 %
    tifffile.imwrite(path, pixels, photometric="minisblack")
    summary = predict(clean_run, cart)
    assert summary.status == "partial" and summary.frames.skipped == 1
    assert "rows are all 0" in summary.skipped_frames[0]["reason"]
    assert "still being written" in summary.skipped_frames[0]["reason"]
    long_ago = 1_000_000_000
    os.utime(path, (long_ago, long_ago))
    # Its modification time kept from the scanner's (cp -p, rsync -a), but arrived a moment
    # ago: still skipped (it was read as an old file and journaled, and no rerun read it
    # again once it was whole).
    copied = predict(clean_run, cart)
    assert copied.frames.skipped == 1 and "still being written" in str(copied.skipped_frames)
    import ctcnet.core.paths as paths

    later = time.time() + 20 * 60  # once it came here long ago as well
    monkeypatch.setattr(paths, "time", type("Clock", (), {"time": staticmethod(lambda: later)}))
    again = predict(clean_run, cart)
    assert again.frames.skipped == 0 and "r00c01" not in str(again.skipped_frames)
    rows = pixels.shape[1] - pixels.shape[1] * 2 // 5
    said = [p for p in again.problems if "r00c01" in p]
    assert again.status == "partial" and len(said) == 1, again.problems
    assert f"unfilled: its last {rows} of {pixels.shape[1]} rows are all 0 in CK " in said[0]
    assert "a copy cut short" in said[0]


def test_a_whole_file_the_panel_does_not_describe_is_not_said_to_be_still_written(
        clean_run, cart):
    """A frame written a minute ago with values past its channel's range (or more planes
    than the panel names, or planes labelled as other markers) is a file read whole: its
    reason says what is wrong, not "if it is still being written, the next run reads it"."""
    path = frames(cart)[1]
    pixels = tifffile.imread(path)
    pixels[1, 5, 5] = 60001
    tifffile.imwrite(path, pixels, photometric="minisblack")
    summary = predict(clean_run, cart)
    reason = summary.skipped_frames[0]["reason"]
    assert "out of the panel's value_range" in reason and "still being written" not in reason


def test_unfilled_rows_are_a_block_at_the_end_where_the_rest_is_never_0():
    """The block is the run of all-0 rows that ends a plane, two rows at least, in a plane
    whose other pixels are (almost) never 0; an export's black background, a single dark row
    or a plane of zeros is no such block."""
    from ctcnet.io.frame_checks import unfilled_note, unfilled_rows

    plane = np.full((50, 40), 100, np.uint16)
    assert unfilled_rows(plane) == 0
    plane[-1] = 0
    assert unfilled_rows(plane) == 0  # one row: a dark edge
    plane[30:] = 0
    assert unfilled_rows(plane) == 20
    background = np.where(np.arange(40) < 20, 0, 100).astype(np.uint16)[None].repeat(50, 0)
    background[45:] = 0
    assert unfilled_rows(background) == 0  # black is this plane's picture
    assert unfilled_rows(np.zeros((50, 40), np.uint16)) == 0
    frame = np.full((5, 50, 40), 100, np.uint16)
    assert unfilled_note(frame, load_panel(None).channels) is None
    frame[:, 40:] = 0
    said = unfilled_note(frame, load_panel(None).channels)
    assert said.startswith("unfilled: its last 10 of 50 rows are all 0 in DAPI, CK, CD45, "
                           "CD61, CD66b where the rest never is")
    # A hole inside the file (a bad block, a copy broken off and resumed): whole rows of 0
    # within it, in one channel or several runs, said as a hole (they read 'ok', counted as
    # a background subtracted); a single dark row is none.
    frame = np.full((5, 50, 40), 100, np.uint16)
    frame[1, 20:28] = 0
    frame[1, 33:36] = 0
    frame[2, 5] = 0
    said = unfilled_note(frame, load_panel(None).channels)
    assert said.startswith("zeroed: 11 of its 50 rows, from row 20, are all 0 in CK where the "
                           "rest never is: a hole in the file"), said
    assert unfilled_rows(frame[1]) == 0  # (not read as unfilled: it is no file filling still)


def test_an_8_bit_scan_is_said_to_lose_dim_cells_a_12_bit_one_is_not():
    """A cartridge of 8-bit frames is read, with a warning that 256 levels lose dim cells;
    a 12-bit frame, or a dark one read as floats with fractions, is not said so."""
    from ctcnet.io.frame_checks import channel_maxima, eight_bit_note

    frame = np.full((5, 40, 40), 12.0, np.float32)
    frame[1, 5:9, 5:9] = 200
    said = eight_bit_note(frame, channel_maxima(frame))
    assert "an 8-bit export (256 levels: dim cells fall between the levels" in said
    assert "or a frame with nothing bright in it (an empty cartridge)" in said
    frame[1, 5:9, 5:9] = 2000
    assert eight_bit_note(frame, channel_maxima(frame)) is None
    dark = np.full((5, 40, 40), 12.5, np.float32)
    assert eight_bit_note(dark, channel_maxima(dark)) is None


def test_a_14_bit_scan_read_as_12_bit_is_told_its_bit_depth(clean_run, cart):
    """Values past 4095 that a 14-bit camera's top holds: the reason names "bit_depth": 14
    (pointed at 16 bits, the scan's saturation would read at 65535, too late); with it
    stated in panel.json, the frame is read."""
    path = frames(cart)[1]
    pixels = tifffile.imread(path)
    pixels[1, 5, 5] = 9000
    tifffile.imwrite(path, pixels, photometric="minisblack")
    reason = predict(clean_run, cart).skipped_frames[0]["reason"]
    assert '"bit_depth": 14 for a 14-bit camera, [0, 16383]' in reason, reason
    panel = json.loads((cart / "panel.json").read_text())
    for channel in panel["channels"]:
        channel.pop("value_range", None) if isinstance(channel, dict) else None
    panel["bit_depth"] = 14
    (cart / "panel.json").write_text(json.dumps(panel))
    assert not predict(clean_run, cart, overwrite=True).skipped_frames


def test_a_frame_saturated_throughout_is_said_so_not_blank():
    """A frame (or channel) at the top of its range everywhere is refused as saturated (a
    lamp or shutter fault), not as "not exposed, or written blank", which sent the user to
    the wrong fault; one value below the top stays a blank frame."""
    from ctcnet.errors import InputError
    from ctcnet.io.frame_checks import check_frame_values

    channels = load_panel(None).channels
    top = int(channels[0].value_range[1])
    frame = np.full((5, 16, 16), top, np.uint16)
    with pytest.raises(InputError, match=f"\\({top}, the top of the channels' range: "
                                         "saturated throughout"):
        check_frame_values(frame, channels, "f.tif")
    # 65535 in a 12-bit panel lies past its top, not at it.
    with pytest.raises(InputError, match="65535, past the top of the channels' range"):
        check_frame_values(np.full((5, 16, 16), 65535, np.uint16), channels, "f.tif")
    frame = np.random.default_rng(0).integers(100, 900, (5, 16, 16)).astype(np.uint16)
    frame[2] = top
    with pytest.raises(InputError, match="channel CD45 is empty .*saturated throughout"):
        check_frame_values(frame, channels, "f.tif")
    with pytest.raises(InputError, match=r"not exposed, or written blank"):
        check_frame_values(np.full((5, 16, 16), 7, np.uint16), channels, "f.tif")


def test_an_8_bit_frame_is_at_another_depth_only_where_its_background_is_far_lower():
    """A camera frame of a few dim cells holds no value above 255 with its background where
    the others' is; an 8-bit copy of counts / 16 reads its background 16 times lower."""
    from ctcnet.io.frame_checks import at_another_depth, frame_background

    counts = [[150.0, 160.0, 170.0], [148.0, 158.0, 175.0]]
    assert not at_another_depth([152.0, 161.0, 168.0], counts)
    assert at_another_depth([9.0, 10.0, 11.0], counts)
    assert at_another_depth([150.0, 160.0, 2.0], counts)  # one channel squeezed is enough
    # Nothing to compare with (a journal an earlier ctcnet wrote; frames of other channels):
    # as it was read before.
    assert at_another_depth(None, counts) and at_another_depth([150.0, 160.0], counts)
    frame = np.full((2, 64, 64), 200, np.uint16)
    assert frame_background(frame) == [200.0, 200.0]
