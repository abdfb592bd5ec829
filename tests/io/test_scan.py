"""ctcnet.io.scan: the cartridge folder, its metadata (pixel size, blood volume: refused in one
line, exit 2, or accepted as ``partial`` with a ``problems`` entry), the frame list built once by
position, a tile written twice counted once, the cartridge's identity.
"""

import json
import math
import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
from conftest import (
    FUZZ,
    JSON_VALUES,
    assert_one_line_error,
    edit_json,
    frames,
    predict,
)
from hypothesis import HealthCheck, example, given, reject, settings
from hypothesis import strategies as st

from ctcnet.cli import main
from ctcnet.errors import InputError
from ctcnet.io.images import remove_cellsearch_offset
from ctcnet.io.panel import Panel, load_panel
from ctcnet.io.plausibility import SCAN_PIXEL_SIZE_UM, TUBE_VOLUME_ML, plausibility_problems
from ctcnet.io.scan import (
    open_cartridge,
    read_frame,
    serpentine_position,
    write_cartridge_info,
    write_frame,
)


def predict_cli(capsys, clean_run, cart):
    """(exit status, stderr lines) of ``ctcnet predict`` on ``cart``, in this process."""
    status = main(["predict", str(cart), "--out", str(cart.parent / "cli"), "--model",
                   str(clean_run["root"] / "model.pt"), "--device", "cpu", "--quiet", "--no-report",
                   "--workers", "0"])
    return status, [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]


def rewrite_frame(path, edit):
    pixels = tifffile.imread(path)
    edit(pixels)
    tifffile.imwrite(path, pixels, photometric="minisblack")


# --- metadata: pixel size, blood volume ---------------------------------------------------------

@pytest.mark.parametrize("pixel_size", [4.0, 2.5, 0.02])
def test_a_pixel_size_no_scan_has_is_refused_in_one_line(clean_run, cart, capsys, pixel_size):
    edit_json(cart / "panel.json", pixel_size_um=pixel_size)
    status, err = predict_cli(capsys, clean_run, cart)
    assert_one_line_error(status, err, "is outside what ctcnet reads as a scan (0.05 to 2 um "
                                       "per pixel; CellSearch: 0.64): " + (
                                           "coarser, a 12 um cell spans under 6 pixels"
                                           if pixel_size > 2 else "a unit slip (nm for um)?"))
    assert not (cart.parent / "cli" / "S1").exists()  # refused before any work


def test_every_predict_entry_point_checks_the_metadata(clean_run, cart):
    """A Cartridge handed to predict_cartridge is checked as one read from its folder."""
    from dataclasses import replace

    opened = open_cartridge(cart)
    out = cart.parent / "out"
    with pytest.raises(InputError, match="is outside what ctcnet reads as a scan"):
        predict(clean_run, replace(opened, panel=opened.panel.with_pixel_size(4.0)), out)
    assert not out.exists()  # refused before any work
    summary = predict(clean_run, replace(opened, blood_volume_ml=750.0), out)
    assert summary.status == "partial" and any("blood tube" in p for p in summary.problems)


def test_blood_volume_beyond_one_tube_is_partial_and_said(clean_run, cart):
    edit_json(cart / "cartridge.json", blood_volume_ml=750)
    summary = predict(clean_run, cart)
    clean = clean_run["clean"]
    assert summary.status == "partial"
    assert [p for p in summary.problems if "blood_volume_ml 750 is more than one blood tube"]
    # The counts stand; the per-7.5 mL figures divide by the stated volume, flagged.
    assert summary.counts == clean.counts and summary.events == clean.events
    assert summary.per_7_5_ml["ctc"] == pytest.approx(summary.counts["ctc"] * 7.5 / 750)


def test_a_pixel_size_in_cartridge_json_other_than_the_one_read_is_partial_and_said(clean_run,
                                                                                    cart):
    px = json.loads((cart / "panel.json").read_text())["pixel_size_um"]
    edit_json(cart / "cartridge.json", pixel_size_um=round(px * 0.7, 4))
    summary = predict(clean_run, cart)
    assert summary.status == "partial"
    assert [p for p in summary.problems if f"states pixel_size_um {round(px * 0.7, 4):g}, "
            f"but the frames are read at {px:g}" in p], summary.problems
    assert summary.counts == clean_run["clean"].counts  # read at panel.json's, as before
    edit_json(cart / "cartridge.json", pixel_size_um="abc")
    with pytest.raises(InputError, match="pixel_size_um must be a positive number"):
        predict(clean_run, cart)
    # A decimal comma as text (a European spreadsheet's export): said as one.
    edit_json(cart / "cartridge.json", blood_volume_ml="7,5")
    with pytest.raises(InputError, match=r"got '7,5' \(a decimal comma, as text: write 7\.5"):
        predict(clean_run, cart)


def test_a_channel_list_in_cartridge_json_other_than_panel_jsons_is_partial_and_said(
        clean_run, cart):
    """cartridge.json's own list of the channels (a scanner's record) that puts another
    marker where panel.json has one: the sample is partial, said, its counts read by
    panel.json's as before (the list was dropped without a word); the same markers by other
    names (CD45-APC, Hoechst) or the scanner's own names (Ch1) are no such."""
    from ctcnet.io.plausibility import channel_list_problems

    names = json.loads((cart / "panel.json").read_text())
    names = [c["name"] if isinstance(c, dict) else c for c in names["channels"]]
    swapped = [names[0], names[2], names[1], *names[3:]]
    edit_json(cart / "cartridge.json", channels=swapped)
    summary = predict(clean_run, cart)
    assert summary.status == "partial" and summary.counts == clean_run["clean"].counts
    assert [p for p in summary.problems if f"cartridge.json lists the channels {swapped}" in p]
    assert channel_list_problems({"channels": [f"Ch{i}" for i in range(len(names))]},
                                 names) == []
    assert channel_list_problems({"markers": [{"name": "Hoechst 33342"}, *names[1:]]},
                                 names) == []
    # Planes in files named by their markers are read by name: another order is no problem
    # (a correct sample was made partial), another marker still is.
    from types import SimpleNamespace

    from ctcnet.io.plausibility import _read_by_file_names

    assert channel_list_problems({"channels": swapped}, names, by_file_name=True) == []
    other = [*names[:-1], "EpCAM"]
    assert channel_list_problems({"channels": other}, names, by_file_name=True)
    named = SimpleNamespace(frames=[SimpleNamespace(files=["r00c00_Hoechst.tif",
                                                           "r00c00_PanCK-PE.tif"])])
    numbered = SimpleNamespace(frames=[SimpleNamespace(files=["r00c00_c0.tif",
                                                              "r00c00_c1.tif"])])
    assert _read_by_file_names(named) and not _read_by_file_names(numbered)


def test_a_full_tube_is_still_ok(clean_run, cart):
    edit_json(cart / "cartridge.json", blood_volume_ml=TUBE_VOLUME_ML)
    summary = predict(clean_run, cart)
    assert summary.status == "ok" and not summary.problems


def test_a_blood_volume_not_stated_is_said_on_the_console(clean_run, cart, caplog):
    """7.5 mL assumed: the rates rest on it, said as the run ends, not only in the files."""
    import logging

    info = json.loads((cart / "cartridge.json").read_text())
    del info["blood_volume_ml"]
    (cart / "cartridge.json").write_text(json.dumps(info))
    with caplog.at_level(logging.WARNING):
        summary = predict(clean_run, cart)
    assert summary.blood_volume_stated is False
    assert any("states no blood_volume_ml: 7.5 mL assumed" in r.getMessage()
               for r in caplog.records)


def test_more_blood_than_a_person_has_is_refused_in_one_line(clean_run, cart, capsys):
    edit_json(cart / "cartridge.json", blood_volume_ml=7500)
    status, err = predict_cli(capsys, clean_run, cart)
    assert_one_line_error(status, err, "blood_volume_ml 7500 is more blood than a person has")


# --- pixels the panel does not describe: the frame is skipped with its reason -------------------

def test_values_above_the_panels_range_skip_the_frame(clean_run, cart):
    first = frames(cart)[0]

    def hot(pixels):
        pixels[1, 10:20, 10:20] = 65535  # in a panel that states 12 bits
    rewrite_frame(first, hot)
    summary = predict(clean_run, cart)
    assert summary.status == "partial" and summary.frames.skipped == 1
    skip = summary.skipped_frames[0]
    assert skip["frame"] == "r00c00"
    assert "channel CK up to 65535: out of the panel's value_range [0, 4095]" \
        in skip["reason"]
    # how to state it: every channel's (one channel alone at another scale reads wrong)
    assert '"bit_depth": 16 for a 16-bit camera, [0, 65535] for every channel' in skip["reason"]
    assert summary.blood_volume_processed_ml == pytest.approx(7.5 * 2 / 3)


def test_a_12_bit_scan_stored_x16_under_a_12_bit_panel_is_told_what_it_is(clean_run, cart):
    """Counts x16 (to 65520) with panel.json left at 0-4095: the skip says they read as
    such (every value a multiple of 16), not that the export is damaged (its bright pixels
    fall in CellSearch's offset span too)."""
    rewrite_frame(frames(cart)[0], lambda pixels: pixels.__imul__(16))
    skip = predict(clean_run, cart).skipped_frames[0]
    assert "every value is a multiple of 16, as a 12-bit camera's counts stored x16" in \
        skip["reason"] and "damaged" not in skip["reason"]
    # Every channel over the range named at once, not one a run.
    assert "channels DAPI up to " in skip["reason"] and ", CK up to " in skip["reason"]


def test_one_channel_stored_x16_is_told_to_be_divided_not_restated():
    """CD45 alone stored x16 beside 12-bit DAPI and CK: stating a 16-bit range (for it, or for
    every channel) reads it past the guard (a cartridge so read counted 1 of 20 CTCs, 16
    held as CD45-positive); told to divide it by 16. Every channel x16: state the range."""
    import numpy as np

    from ctcnet.io.frame_checks import check_frame_values

    panel = Panel.from_dict({"channels": ["DAPI", "CK", "CD45"]})
    frame = np.random.default_rng(0).integers(100, 4000, (3, 16, 16)).astype(np.uint16)
    alone = frame.copy()
    alone[2] *= 16
    with pytest.raises(InputError, match=r"channel CD45 up to .*it alone is stored x16; divide "
                                         r"it by 16"):
        check_frame_values(alone, panel.channels, "f.tif")
    with pytest.raises(InputError, match=r'"bit_depth": 16 .*for every channel\); every value '
                                         r"is a multiple of 16"):
        check_frame_values(frame * 16, panel.channels, "f.tif")
    # ...and under a range stated to hold it (for every channel, or for it alone): read, the
    # CTCs held as CD45-positive, unsaid.
    wide = Panel.from_dict({"channels": ["DAPI", "CK", "CD45"], "bit_depth": 16})
    with pytest.raises(InputError, match=r"CD45: every value a multiple of 16, up to .*stored "
                                         r"x16 alone; divide it by 16"):
        check_frame_values(alone, wide.channels, "f.tif")
    check_frame_values(frame * 16, wide.channels, "f.tif")  # every channel x16: one scale
    check_frame_values(frame, wide.channels, "f.tif")
    # ...and beside a plane stated 0-255 (a bright field's): no counts to weigh against.
    four = Panel.from_dict({"channels": [*(c.to_dict() for c in wide.channels),
                                         {"name": "BF", "value_range": [0, 255]}]})
    check_frame_values(np.concatenate([frame * 16, frame[:1] % 200]), four.channels, "f.tif")


def test_a_frame_rescaled_one_count_past_12_bits_is_told_so():
    """0-4096 for 0-4095 (an off-by-one rescale): clipping is the remedy, not a 16-bit range."""
    import numpy as np

    from ctcnet.io.frame_checks import check_frame_values

    panel = Panel.from_dict({"channels": ["DAPI", "CK", "CD45"]})
    frame = np.tile(np.arange(0, 4097, 16, dtype=np.uint16)[:256].reshape(1, 16, 16), (3, 1, 1))
    frame[:, 0, 0] = 4096
    with pytest.raises(InputError, match=r"channels DAPI up to 4096, CK up to 4096, CD45 up to "
                                         r"4096: .*one count past the top.*clip them at 4095"):
        check_frame_values(frame, panel.channels, "f.tif")
    # Counts in floating point a flat-field correction moved a fraction past the top: the same
    # remedy (it was sent to a 14-bit camera's range).
    floats = frame.astype(np.float32) + 0.5
    floats[:, 0, 0] = 4095.99
    with pytest.raises(InputError, match=r"up to one count past the top.*flat-field correction "
                                         r"moved; clip them at 4095"):
        check_frame_values(floats, panel.channels, "f.tif")


def test_a_panel_that_states_16_bits_reads_16_bit_values(clean_run, cart):
    def brighter(pixels):
        pixels[1, 10:20, 10:20] = 65535
    rewrite_frame(frames(cart)[0], brighter)
    panel = json.loads((cart / "panel.json").read_text())
    for channel in panel["channels"]:
        channel["value_range"] = [0, 65535]
    (cart / "panel.json").write_text(json.dumps(panel))
    summary = predict(clean_run, cart)
    assert summary.status == "ok" and summary.frames.skipped == 0


def test_an_all_zero_channel_skips_the_frame(clean_run, cart):
    def dead(pixels):
        pixels[2] = 0  # CD45 lost: every leukocyte would look CD45-negative
    rewrite_frame(frames(cart)[0], dead)
    summary = predict(clean_run, cart)
    assert summary.status == "partial" and summary.frames.skipped == 1
    assert "channel CD45 is empty (every pixel 0)" in summary.skipped_frames[0]["reason"]


# --- the frame list: one file per position, one way to read it ----------------------------------

def _case_only_suffix(cart):
    shutil.copy(cart / "r00c01.tif", cart / "r00c01.TIF")


def _case_only_stem(cart):
    shutil.copy(cart / "r00c01.tif", cart / "R00C01.tif")


def _another_format(cart):
    shutil.copy(cart / "r00c01.tif", cart / "r00c01.png")


def _whole_and_channels(cart):
    pixels = tifffile.imread(cart / "r00c01.tif")
    for c in range(len(pixels)):
        tifffile.imwrite(cart / f"r00c01_c{c}.tif", pixels[c:c + 1], photometric="minisblack")


def _channel_twice(cart):
    pixels = tifffile.imread(cart / "r00c01.tif")
    (cart / "r00c01.tif").unlink()
    for c in range(len(pixels)):
        tifffile.imwrite(cart / f"r00c01_c{c}.tif", pixels[c:c + 1], photometric="minisblack")
    shutil.copy(cart / "r00c01_c0.tif", cart / "r00c01_C0.tif")


@pytest.mark.parametrize("make, match", [
    (_case_only_suffix, "r00c01.TIF and r00c01.tif both name frame r00c01"),
    (_case_only_stem, "R00C01.tif and r00c01.tif both name frame r00c01"),
    (_another_format, "r00c01.png and r00c01.tif both name frame r00c01"),
    (_whole_and_channels, "r00c01.tif and r00c01_c0.tif both name frame r00c01 (row 0, "
                          "column 1): a whole-frame file and per-channel files"),
    (_channel_twice, "r00c01_C0.tif and r00c01_c0.tif both name channel 0 of frame r00c01"),
])
def test_two_ways_to_read_one_frame_are_refused(clean_run, cart, capsys, make, match):
    make(cart)
    with pytest.raises(InputError, match="keep one|move the copy out"):
        open_cartridge(cart)
    status, err = predict_cli(capsys, clean_run, cart)
    assert_one_line_error(status, err, match)


def test_a_tile_written_twice_is_counted_once(clean_run, cart):
    shutil.copy(cart / "r00c01.tif", cart / "r00c03.tif")  # the same tile under a second name
    edit_json(cart / "cartridge.json", num_frames=4)
    summary = predict(clean_run, cart)
    clean = clean_run["clean"]
    assert summary.events == clean.events and summary.counts == clean.counts
    assert summary.status == "partial" and summary.frames.skipped == 1
    skip = summary.skipped_frames[0]
    assert skip["frame"] == "r00c03" and "same bytes as frame r00c01" in skip["reason"]


def test_empty_and_unreadable_frames_are_skipped_with_their_reasons_not_as_copies(
        clean_run, cart, monkeypatch):
    """Two empty files hold the same bytes: each is skipped as empty, not as a copy of the
    other; a frame file this user may not read is skipped with that reason, the others run."""
    from ctcnet.io.sources import base

    for name in ("r00c01.tif", "r00c02.tif"):
        (cart / name).write_bytes(b"")
    locked = cart / "r00c00.tif"
    real_open = open

    def refusing(path, *args, **kwargs):
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(base, "open", refusing, raising=False)
    summary = predict(clean_run, cart)
    reasons = {s["frame"]: s["reason"] for s in summary.skipped_frames}
    assert "cannot read: Permission denied" in reasons["r00c00"]
    assert "empty file (0 bytes)" in reasons["r00c01"] and "empty file" in reasons["r00c02"]
    assert not any("same bytes" in r for r in reasons.values())
    assert summary.status == "failed"  # no frame of the three left to read


def test_frames_written_blank_alike_are_each_skipped_as_empty(clean_run, cart):
    """Frames left blank hold the same bytes: the second is skipped as the first was, for an
    empty frame (said as the first's bytes), not as a tile written twice under two names."""
    import tifffile

    blank = np.zeros_like(tifffile.imread(cart / "r00c00.tif"))
    for name in ("r00c01.tif", "r00c02.tif"):
        tifffile.imwrite(cart / name, blank)
    summary = predict(clean_run, cart)
    reasons = {s["frame"]: s["reason"] for s in summary.skipped_frames}
    assert "empty frame" in reasons["r00c01"] and "empty frame" in reasons["r00c02"]
    assert "r00c02.tif: the same bytes as frame r00c01, itself skipped" in reasons["r00c02"]
    assert not any("written twice" in r for r in reasons.values())


def test_calls_that_look_like_a_channel_swap_are_a_problem_of_the_sample(clean_run, cart,
                                                                         monkeypatch):
    """The warning of a swapped CK and CD45 also lands in summary.json's problems and makes the
    sample partial: a batch job reads status, not the console."""
    import ctcnet.inference.run_summary as run_summary

    said = "12 events called ctc against 30 called wbc: ... (CK and CD45 swapped?)"
    monkeypatch.setattr(run_summary, "implausible_marker_balance",
                        lambda tally, kinds, at_training_prior, wbc_kinds: said)
    summary = predict(clean_run, cart)
    assert summary.status == "partial" and said in summary.problems
    assert summary.counts == clean_run["clean"].counts  # its counts stand


def test_a_fifo_among_the_frames_is_refused_never_opened(clean_run, cart, capsys):
    os.mkfifo(cart / "r00c03.tif")
    outcome = {}

    def open_it():  # in a thread: a listing that opened the FIFO would block here for good
        try:
            open_cartridge(cart)
        except InputError as err:
            outcome["error"] = str(err)
    thread = threading.Thread(target=open_it, daemon=True)
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive(), "the FIFO was opened"
    assert "r00c03.tif: not a regular file: a FIFO where a frame is meant" in outcome["error"]
    status, err = predict_cli(capsys, clean_run, cart)
    assert_one_line_error(status, err, "not a regular file: a FIFO where a frame is meant")


def test_a_frame_name_that_is_not_utf8_is_refused_by_name(clean_run, cart, capsys):
    name = os.fsdecode(b"r00c03\xff.tif")
    shutil.copy(cart / "r00c01.tif", cart / name)
    with pytest.raises(InputError, match=r"b'r00c03\\xff.tif' is not valid UTF-8"):
        open_cartridge(cart)
    status, err = predict_cli(capsys, clean_run, cart)
    assert_one_line_error(status, err, "is not valid UTF-8")


def test_a_frame_missing_a_channel_file_is_skipped_not_dropped(clean_run, cart):
    pixels = tifffile.imread(cart / "r00c02.tif")
    (cart / "r00c02.tif").unlink()
    for c in range(len(pixels) - 1):  # the last channel's file never arrived
        tifffile.imwrite(cart / f"r00c02_c{c}.tif", pixels[c:c + 1], photometric="minisblack")
    summary = predict(clean_run, cart)
    assert summary.frames.total == 3 and summary.frames.skipped == 1
    assert "missing channel file(s) [4]" in summary.skipped_frames[0]["reason"]
    assert summary.status == "partial"
    assert summary.blood_volume_processed_ml == pytest.approx(7.5 * 2 / 3)


def test_a_stated_grid_without_num_frames_says_which_frame_is_missing(clean_run, cart):
    """rows x columns stated, num_frames not, an old frame gone: before, the frames present
    read as the whole tube ('ok', 7.5 mL read) once the files were minutes old."""
    info = json.loads((cart / "cartridge.json").read_text())
    del info["num_frames"]
    (cart / "cartridge.json").write_text(json.dumps({**info, "rows": 1, "columns": 3}))
    (cart / "r00c02.tif").unlink()
    summary = predict(clean_run, cart)
    assert summary.status == "partial"
    assert any("states a grid of 1 x 3 = 3 frames but 2 are present" in p and "r00c02" in p
               for p in summary.problems)
    assert summary.blood_volume_processed_ml == pytest.approx(7.5 * 2 / 3)


def test_missing_frames_are_not_counted_as_blood_read(clean_run, cart, caplog):
    (cart / "r00c02.tif").unlink()  # cartridge.json lists 3 frames
    with caplog.at_level("WARNING"):
        summary = predict(clean_run, cart)
    assert summary.status == "partial"
    assert any("lists 3 frames but 2 are present" in p for p in summary.problems)
    # What to do: the frame put back, the same command reads it and keeps the rest.
    assert any("Once the missing frames are in the folder, the same command reads them and "
               "keeps those done" in p for p in summary.problems)
    # Said on the console too, once, not only written into summary.json.
    assert sum("lists 3 frames but 2 are present" in r.getMessage()
               for r in caplog.records) == 1
    assert summary.blood_volume_processed_ml == pytest.approx(7.5 * 2 / 3)
    # The frames the blood volume is of: 2 processed of the 3 scanned, 1 missing.
    assert (summary.frames.processed, summary.frames.total, summary.frames.missing) == (2, 2, 1)


def test_a_frame_restored_before_a_resume_leaves_every_frame_in_its_place(clean_run, cart):
    """A partial cartridge's missing frame copied in again and the run resumed: the frames
    after it move one place in the scan, and their journaled rows and gallery crops move
    with them (the review page finds an event's crop by its frame's place)."""
    from ctcnet.inference.journal import PARTS_DIR, journal_gallery

    moved = cart.parent / "r00c01.tif"
    (cart / "r00c01.tif").rename(moved)
    out = cart.parent / "out"
    predict(clean_run, cart, out)
    moved.rename(cart / "r00c01.tif")
    again = predict(clean_run, cart, out)
    assert again.frames.resumed_from_journal == 2 and again.status == "ok"
    clean_dir = clean_run["root"] / "clean"
    mine, theirs = (pd.read_parquet(d / "events.parquet") for d in (out, clean_dir))
    place = ["frame", "frame_id", "row", "col", "x", "y"]
    pd.testing.assert_frame_equal(mine[place], theirs[place])
    frames = open_cartridge(cart).frames
    mine, theirs = (journal_gallery(d / PARTS_DIR, frames) for d in (out, clean_dir))
    assert sorted(mine) == sorted(theirs)
    for index in mine:
        np.testing.assert_array_equal(mine[index][0], theirs[index][0])


def test_a_damaged_journal_part_is_done_again_not_a_stop_for_every_rerun(clean_run, cart,
                                                                         caplog):
    """A crash can leave a part named but empty (and a gallery cut short): the resume does
    those frames again, saying so, and ends as a clean run does."""
    from ctcnet.inference.journal import PARTS_DIR

    out = cart.parent / "out"
    predict(clean_run, cart, out)
    parts = out / PARTS_DIR
    (parts / "r00c01.parquet").write_bytes(b"")
    gallery = next(p for p in sorted(parts.glob("*.gallery.npz")) if "r00c01" not in p.name)
    gallery.write_bytes(gallery.read_bytes()[:100])
    with caplog.at_level("WARNING"):
        again = predict(clean_run, cart, out)
    assert again.status == "ok" and again.frames.resumed_from_journal == 1
    assert any("journal part(s) unreadable" in r.getMessage() and "r00c01" in r.getMessage()
               for r in caplog.records)
    pd.testing.assert_frame_equal(pd.read_parquet(out / "events.parquet"),
                                  pd.read_parquet(clean_run["root"] / "clean" / "events.parquet"))


# --- the cartridge's identity -------------------------------------------------------------------

def test_the_identity_follows_the_scan_not_the_folder(clean_run, cart, tmp_path):
    identity = open_cartridge(cart).identity
    assert identity and clean_run["clean"].cartridge_id == identity
    assert json.loads((clean_run["root"] / "clean" / "summary.json").read_text())[
        "cartridge_id"] == identity
    shutil.copytree(cart, tmp_path / "moved")
    assert open_cartridge(tmp_path / "moved").identity == identity
    # Another scan of the same shape (uncompressed frames of one size): another identity.
    rewrite_frame(frames(cart)[1], lambda pixels: pixels.__iadd__(np.uint16(1)))
    assert open_cartridge(cart).identity != identity


# --- a property: small changes to the metadata -------------------------------------------------

EDITS = st.one_of(
    st.tuples(st.just("blood_volume_ml"),
              st.floats(1e-3, 1e5) | st.sampled_from([7.5, 10.0, 10.01, 750.0, 6001.0])),
    # Unit slips of the pixel size (um per pixel read as nm, or as pixels per um, ...): each is
    # a pixel size no scan has. A plausible but wrong pixel size cannot be told from the data.
    st.tuples(st.just("pixel_size_um"), st.sampled_from([0.02, 0.04, 2.5, 4.0, 4.5])),
    st.tuples(st.just("num_frames"), st.integers(1, 8)),
    st.tuples(st.just("columns"), st.integers(1, 8)),
    st.tuples(st.just("sample_id"), st.text("abcXYZ019-_", min_size=1, max_size=8)),
    st.tuples(st.just("note"), st.text(max_size=10)),  # a key the reader does not know
    st.tuples(st.just("value_high"), st.integers(50, 130)),  # under every frame's values
)


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.lists(EDITS, min_size=1, max_size=3))
@example(edits=[("num_frames", 1), ("columns", 1)])  # a grid smaller than the scan
def test_metadata_changes_are_refused_flagged_or_change_nothing(clean_run, tmp_path_factory, edits):
    cart = tmp_path_factory.mktemp("edited") / "cart"
    shutil.copytree(clean_run["root"] / "cart", cart)
    for key, value in edits:
        if key == "pixel_size_um":
            edit_json(cart / "panel.json", pixel_size_um=value)
        elif key == "value_high":
            panel = json.loads((cart / "panel.json").read_text())
            for channel in panel["channels"]:
                channel["value_range"] = [0, value]
            (cart / "panel.json").write_text(json.dumps(panel))
        else:
            edit_json(cart / "cartridge.json", **{key: value})
    try:
        summary = predict(clean_run, cart)
    except InputError:
        reject()  # refused by name; hypothesis fails a test whose inputs are all refused
    clean = clean_run["clean"]
    flagged = bool(summary.problems or summary.skipped_frames)
    assert (summary.status != "ok") == flagged
    if summary.status == "ok":  # an ok count stands on plausible inputs only ...
        lo, hi = SCAN_PIXEL_SIZE_UM
        assert lo <= summary.panel["pixel_size_um"] <= hi
        assert 0 < summary.blood_volume_ml <= TUBE_VOLUME_ML
    # ... and none of these edits changes what is counted on the frames read (a grid stated
    # smaller than the scan leaves the frames outside it unread, partial: a problem said)
    if not summary.skipped_frames and summary.frames.total == clean.frames.total:
        assert summary.counts == clean.counts and summary.events == clean.events
        assert summary.per_7_5_ml["ctc"] == pytest.approx(
            summary.counts["ctc"] * 7.5 / summary.blood_volume_processed_ml)


# --- cartridges ---------------------------------------------------------------------------------

def test_cellsearch_offset():
    raw = np.array([[0, 100, 4095]], dtype=np.uint16)
    shifted = np.where(raw > 0, raw + 32768, raw).astype(np.uint16)
    assert np.array_equal(remove_cellsearch_offset(shifted), raw)
    genuine = np.array([[0, 40000, 65535]], dtype=np.uint16)  # real 16-bit: untouched
    assert np.array_equal(remove_cellsearch_offset(genuine), genuine)
    # The same export converted to float32 (every value whole): taken off as well; it was
    # kept on, and the frame refused with advice that read every count 32768 too high.
    as_float = remove_cellsearch_offset(shifted.astype(np.float32))
    assert as_float.dtype == np.float32 and np.array_equal(as_float, raw)
    fractions = shifted.astype(np.float32) + np.float32(0.5)  # not counts: left as given
    assert np.array_equal(remove_cellsearch_offset(fractions), fractions)


@pytest.mark.parametrize("layout", ["multipage", "channels", "png"])
def test_cartridge_round_trip(tmp_path, rng, layout):
    panel = Panel.from_dict({"channels": ["DAPI", "CK", "CD45", "CD61"]})
    dtype = np.uint8 if layout == "png" else np.uint16
    frames = {}
    for index in range(5):
        row, col = serpentine_position(index, columns=3)
        frame = rng.integers(1, 250, (4, 24, 32)).astype(dtype)
        write_frame(tmp_path, row, col, frame, panel, layout=layout,
                    cellsearch_offset=(layout == "multipage"))
        frames[(row, col)] = frame
    write_cartridge_info(tmp_path, panel, "S1", 5, rows=2, columns=3, frame_shape=(24, 32))
    cart = open_cartridge(tmp_path)
    assert cart.sample_id == "S1" and len(cart) == 5 and not cart.problems
    assert [(f.row, f.col) for f in cart.frames] == [serpentine_position(i, 3) for i in range(5)]
    for f in cart.frames:
        assert np.array_equal(read_frame(f, panel), frames[(f.row, f.col)].astype(np.float32))


def test_an_ome_frame_naming_the_panels_channels_in_another_order_is_read_by_name(tmp_path,
                                                                                   rng):
    """An OME frame stores which plane holds which channel: a frame exported in another order
    than panel.json's is read by its names (it was refused, skipping the frame); names that
    do not name the panel's channels are still refused, and a frame in the panel's order is
    read as it is."""
    from ctcnet.errors import PanelMismatchError
    from ctcnet.io.images import write_tiff

    panel = Panel.from_dict({"channels": ["DAPI", "CK", "CD45", "CD61"]})
    frames = [rng.integers(1, 999, (4, 16, 16)).astype(np.uint16) for _ in range(3)]
    write_frame(tmp_path, 0, 0, frames[0], panel)
    order = [1, 3, 0, 2]
    write_tiff(tmp_path / "r00c01.tif", frames[1][order], ["PanCK-PE", "CD61", "Hoechst", "CD45"])
    write_tiff(tmp_path / "r00c02.tif", frames[2][order], ["CK", "CD61", "DAPI", "EpCAM"])
    write_cartridge_info(tmp_path, panel, "S3", 3, rows=1, columns=3, frame_shape=(16, 16))
    cart = open_cartridge(tmp_path)
    assert np.array_equal(read_frame(cart.frames[0], panel), frames[0].astype(np.float32))
    assert np.array_equal(read_frame(cart.frames[1], panel), frames[1].astype(np.float32))
    with pytest.raises(PanelMismatchError, match="channel mismatch"):
        read_frame(cart.frames[2], panel)


def test_truncated_cartridge_and_bad_frames(tmp_path, rng):
    panel = Panel.from_dict({"channels": ["DAPI", "CK", "CD45"]})
    write_frame(tmp_path, 0, 0, rng.integers(1, 999, (3, 16, 16), dtype=np.uint16), panel)
    write_frame(tmp_path, 0, 1, np.zeros((3, 16, 16), np.uint16), panel)
    write_frame(tmp_path, 0, 2, rng.integers(1, 999, (4, 16, 16), dtype=np.uint16), panel)
    write_frame(tmp_path, 1, 2, rng.integers(1, 999, (3, 16, 16), dtype=np.uint16), panel,
                layout="channels")
    (tmp_path / "r01c02_c1.tif").unlink()
    write_cartridge_info(tmp_path, panel, "S2", 6, rows=2, columns=3, frame_shape=(16, 16))
    cart = open_cartridge(tmp_path)
    # The frame that lacks a channel file stays listed, to be skipped with its reason: its
    # blood volume was not read.
    assert len(cart) == 4 and cart.frames_scanned == 6
    assert any("truncated" in p for p in cart.problems)
    # The grid cartridge.json states names the frames absent, for the operator to re-export.
    assert any(p.endswith("; missing: r01c00, r01c01") for p in cart.problems), cart.problems
    read_frame(cart.frames[0], panel)
    with pytest.raises(InputError, match="empty frame"):
        read_frame(cart.frames[1], panel)
    with pytest.raises(InputError, match="4 channels"):
        read_frame(cart.frames[2], panel)
    with pytest.raises(InputError, match=r"missing channel file\(s\) \[1\]"):
        read_frame(cart.frames[3], panel)


def test_a_frame_rescaled_to_fractions_is_refused_raw_float_counts_are_read(tmp_path, rng):
    """A frame saved as float32 on a 0-1 scale reads as faint specks (every cell debris, the
    count silently zero): it is refused by name. Float frames of whole counts, and frames whose
    counts are low but whole, are read."""
    panel = Panel.from_dict({"channels": ["DAPI", "CK", "CD45"]})  # 12-bit: 0-4095
    counts = rng.integers(90, 3000, (3, 16, 16)).astype(np.float32)
    write_frame(tmp_path, 0, 0, counts / 4095.0, panel)
    write_frame(tmp_path, 0, 1, counts, panel)
    write_frame(tmp_path, 0, 2, rng.integers(0, 30, (3, 16, 16)).astype(np.float32), panel)
    write_cartridge_info(tmp_path, panel, "S3", 3, rows=1, columns=3, frame_shape=(16, 16))
    cart = open_cartridge(tmp_path)
    with pytest.raises(InputError, match="rescaled"):
        read_frame(cart.frames[0], panel)
    assert np.array_equal(read_frame(cart.frames[1], panel), counts)
    assert read_frame(cart.frames[2], panel).max() < 30


def test_one_channel_rescaled_to_fractions_beside_counts_is_refused(tmp_path, rng):
    """CK alone as 0-1 fractions, DAPI and CD45 in counts: the frame's brightest pixel is
    another channel's, so the frame read, and every CTC of the cartridge was lost, the sample
    ok. A float channel of low whole counts is read."""
    panel = Panel.from_dict({"channels": ["DAPI", "CK", "CD45"]})
    counts = rng.integers(90, 3000, (3, 16, 16)).astype(np.float32)
    one = counts.copy()
    one[1] /= 4095.0
    write_frame(tmp_path, 0, 0, one, panel)
    low = counts.copy()
    low[1] = rng.integers(0, 30, (16, 16))
    write_frame(tmp_path, 0, 1, low, panel)
    write_cartridge_info(tmp_path, panel, "S2", 2, rows=1, columns=2, frame_shape=(16, 16))
    cart = open_cartridge(tmp_path)
    with pytest.raises(InputError, match="channel CK up to 0.7.*rescaled alone"):
        read_frame(cart.frames[0], panel)
    assert np.array_equal(read_frame(cart.frames[1], panel), low)


@pytest.mark.parametrize("top", [1.0, 100.0])
def test_fractions_with_a_range_stated_to_match_are_refused(tmp_path, rng, top):
    """A frame converted to floating point (0-1, 0-100) with panel.json stating that range:
    its noise sits under every floor ctcnet reads counts with, so it would read no cell (a
    count of zero, status ok); it is refused, saying how to bring it back to counts. The same
    scale of whole numbers (an 8-bit frame) and a tenth of a scan's counts are read."""
    counts = rng.integers(90, 3000, (3, 16, 16)).astype(np.float32)
    panel = Panel.from_dict({"channels": [{"name": n, "value_range": [0, top]}
                                          for n in ("DAPI", "CK", "CD45")]})
    write_frame(tmp_path, 0, 0, counts / 4095.0 * top, panel)
    write_frame(tmp_path, 0, 1, np.round(counts / 4095.0 * top), panel)
    write_cartridge_info(tmp_path, panel, "S5", 2, rows=1, columns=2, frame_shape=(16, 16))
    cart = open_cartridge(tmp_path)
    with pytest.raises(InputError, match=r"fractions of a value_range of .*x65535"):
        read_frame(cart.frames[0], panel)
    assert read_frame(cart.frames[1], panel).max() <= top
    twelve_bit = Panel.from_dict({"channels": ["DAPI", "CK", "CD45"]})
    write_frame(tmp_path / "tenth", 0, 0, counts / 10.0, twelve_bit)
    write_cartridge_info(tmp_path / "tenth", twelve_bit, "S6", 1, rows=1, columns=1,
                         frame_shape=(16, 16))
    tenth = open_cartridge(tmp_path / "tenth")
    assert np.allclose(read_frame(tenth.frames[0], twelve_bit), counts / 10.0)


def test_channel_files_numbered_from_one_are_told_how_they_count(tmp_path, rng):
    """_c1 to _c3 for three channels: the frame is skipped naming the missing _c0 and the
    _c3 past the panel, and that channel files count from _c0."""
    panel = Panel.from_dict({"channels": ["DAPI", "CK", "CD45"]})
    write_frame(tmp_path, 0, 0, rng.integers(1, 999, (3, 16, 16), dtype=np.uint16), panel,
                layout="channels")
    for k in (2, 1, 0):
        (tmp_path / f"r00c00_c{k}.tif").rename(tmp_path / f"r00c00_c{k + 1}.tif")
    write_cartridge_info(tmp_path, panel, "S4", 1, rows=1, columns=1, frame_shape=(16, 16))
    cart = open_cartridge(tmp_path)
    with pytest.raises(InputError, match=r"missing channel file\(s\) \[0\] \(r00c00_c0.tif\) "
                                         r"and channel file\(s\) \[3\].*numbered from _c0"):
        read_frame(cart.frames[0], panel)


def test_channel_files_named_by_their_marker_are_read_by_name(tmp_path, rng, caplog):
    """r00c00_Hoechst.tif, r00c00_pan-CK.tif, r00c00_CD45-APC.tif (a scanner's export, in no
    order) read as panel.json's DAPI, CK and CD45, as the numbered files do; a file naming no
    channel of the panel (an overview) is said and not read; a missing marker is named."""
    panel = Panel.from_dict({"channels": ["DAPI", "CK", "CD45"]})
    counts = rng.integers(1, 999, (3, 16, 16), dtype=np.uint16)
    for name, plane in zip(("Hoechst", "pan-CK", "CD45-APC"), counts):
        tifffile.imwrite(tmp_path / f"r00c00_{name}.tif", plane)
    tifffile.imwrite(tmp_path / "r00c00_overview.tif", counts[0])
    write_cartridge_info(tmp_path, panel, "S7", 1, rows=1, columns=1, frame_shape=(16, 16))
    with caplog.at_level("WARNING"):
        cart = open_cartridge(tmp_path)
    assert np.array_equal(read_frame(cart.frames[0], panel), counts)
    assert "naming no channel of panel.json" in caplog.text and "r00c00_overview.tif" in \
        caplog.text
    (tmp_path / "r00c00_pan-CK.tif").unlink()
    with pytest.raises(InputError, match=r"missing channel file\(s\) \[1\] \(r00c00_CK.tif\)"):
        read_frame(open_cartridge(tmp_path).frames[0], panel)


def test_channel_files_of_a_plane_named_with_its_dye_or_a_slash_are_read(tmp_path, rng):
    """panel.json's HER2-FITC beside r00c00_HER2-FITC.tif (the docs' own example), and
    HER2/neu beside r00c00_HER2-neu.tif: read, where every frame was skipped as missing the
    file beside it; a missing one is named as a file can be named."""
    for name, file_name in (("HER2-FITC", "HER2-FITC"), ("HER2/neu", "HER2-neu")):
        folder = tmp_path / file_name
        folder.mkdir()
        panel = Panel.from_dict({"channels": ["DAPI", "CK-PE", "CD45-APC", name]})
        counts = rng.integers(1, 999, (4, 16, 16), dtype=np.uint16)
        for marker, plane in zip(("DAPI", "CK-PE", "CD45-APC", file_name), counts):
            tifffile.imwrite(folder / f"r00c00_{marker}.tif", plane)
        write_cartridge_info(folder, panel, "S7", 1, rows=1, columns=1, frame_shape=(16, 16))
        assert np.array_equal(read_frame(open_cartridge(folder).frames[0], panel), counts)
        (folder / f"r00c00_{file_name}.tif").unlink()
        with pytest.raises(InputError, match=rf"missing channel file\(s\) \[3\] "
                                             rf"\(r00c00_{file_name}.tif\)"):
            read_frame(open_cartridge(folder).frames[0], panel)


def test_a_marker_name_reads_past_its_dye_but_no_other_word(tmp_path, rng):
    """A lab's own marker with its dye (HER2-FITC, CD45.APC, Hoechst 33342) is its channel; a
    preview or mask named after a marker (r00c00_CK_preview.jpg beside a CellSearch frame,
    r00c00_CK_mask.tif) is no channel's, and the frame reads as it did without it."""
    from ctcnet.io.sources.named import marker_channel

    panel = Panel.from_dict({"channels": ["DAPI", "CK", "CD45", "HER2"]})
    for marker, channel in (("HER2-FITC", 3), ("her2", 3), ("CD45.APC", 2), ("Hoechst 33342", 0),
                            ("CK_PE-Cy7", 1), ("Pan Cytokeratin", 1), ("CK_preview", None),
                            ("anti-human CD45-APC", 2), ("human CK", 1), ("DAPI (405)", 0),
                            ("PE-CK", 1),
                            ("CK_mask", None), ("overview", None)):
        assert marker_channel(marker, panel) == channel, marker
    from ctcnet.io.sources.named import frame_stem  # (a wavelength in brackets in a file name)

    assert frame_stem(Path("r00c00_DAPI (405).tif")) == ("r00c00", "DAPI (405)")
    # A word processor's dashes and spaces (CK–PE, an en dash): the file was no channel's,
    # and every frame skipped as missing its CK.
    for typeset in ("r00c00_CK\u2013PE.tif", "r00c00_CK\u2010PE.tif", "r00c00_CK\u00a0PE.tif"):
        stem, marker = frame_stem(Path(typeset))
        assert stem == "r00c00" and marker_channel(marker, panel) == 1, typeset
    # ... and panel.json pasted from the same spreadsheet, its names typeset alike.
    pasted = Panel.from_dict({"channels": ["DAPI", "CK\u2013PE", "CD45\u2013APC", "HER2"]})
    for typeset, channel in (("r00c00_CK\u2013PE.tif", 1), ("r00c00_CD45-APC.tif", 2)):
        assert marker_channel(frame_stem(Path(typeset))[1], pasted) == channel, typeset
    # panel.json naming the plane with its dye, or with a slash no file name can hold: the
    # file of that name, separators and case aside, or of the marker alone, is its channel.
    dyed = Panel.from_dict({"channels": ["DAPI", "CK-PE", "CD45-APC", "HER2-FITC"]})
    for marker, channel in (("HER2-FITC", 3), ("HER2_FITC", 3), ("her2", 3), ("CK-PE", 1),
                            ("CK", 1), ("CD45", 2), ("HER2-PE", 3)):
        assert marker_channel(marker, dyed) == channel, marker
    slashed = Panel.from_dict({"channels": ["DAPI", "CK", "CD45", "HER2/neu"]})
    assert marker_channel("HER2-neu", slashed) == 3 and marker_channel("HER2_neu", slashed) == 3
    # The marker alone for a name of more words, a dye alone for the one channel it stains.
    assert marker_channel("HER2", slashed) == 3 and marker_channel("neu", slashed) is None
    assert marker_channel("FITC", dyed) == 3 and marker_channel("APC", dyed) == 2
    bracketed = Panel.from_dict({"channels": ["DAPI", "CK-PE", "CD45-APC", "HER2 (FITC)"]})
    assert marker_channel("HER2", bracketed) == 3 and marker_channel("FITC", bracketed) == 3
    # Two planes read alike by the marker alone: the one named in full, never a guess.
    two = Panel.from_dict({"channels": ["DAPI", "CK-PE", "CD45", "CK-FITC"]})
    assert marker_channel("CK-FITC", two) == 3 and marker_channel("CK", two) is None
    counts = rng.integers(1, 999, (4, 16, 16), dtype=np.uint16)
    write_frame(tmp_path, 0, 0, counts, panel)
    tifffile.imwrite(tmp_path / "r00c00_CK_preview.tif", counts[1])
    write_cartridge_info(tmp_path, panel, "S9", 1, rows=1, columns=1, frame_shape=(16, 16))
    (frame,) = open_cartridge(tmp_path).frames
    assert frame.files == (tmp_path / "r00c00.tif",)
    assert np.array_equal(read_frame(frame, panel), counts)


def test_a_cartridge_whose_frames_lie_in_a_subfolder_is_told_where(tmp_path, rng):
    """cartridge.json and panel.json above the scanner's Images/ folder: "no frames found"
    names the folder that holds them."""
    panel = Panel.from_dict({"channels": ["DAPI", "CK", "CD45"]})
    write_frame(tmp_path / "Images", 0, 0, rng.integers(1, 999, (3, 16, 16), dtype=np.uint16),
                panel)
    write_cartridge_info(tmp_path, panel, "S8", 1, rows=1, columns=1, frame_shape=(16, 16))
    with pytest.raises(InputError, match="no frames found .*; frames of a scan lie in Images: "
                                         "pass that folder as the cartridge"):
        open_cartridge(tmp_path)


def test_frames_named_with_a_scanners_prefix_are_told_apart_from_missing(tmp_path, rng):
    """"Scan 2024-05-13 r00c01.tif": not read as a frame, and said so, not only "missing"."""
    panel = Panel.from_dict({"channels": ["DAPI", "CK", "CD45"]})
    for col in (0, 1):
        write_frame(tmp_path, 0, col, rng.integers(1, 999, (3, 16, 16), dtype=np.uint16), panel)
    write_cartridge_info(tmp_path, panel, "S9", 2, rows=1, columns=2, frame_shape=(16, 16))
    (tmp_path / "r00c01.tif").rename(tmp_path / "Scan 2024-05-13 r00c01.tif")
    (problem,) = [p for p in open_cartridge(tmp_path).problems if "missing" in p]
    assert "missing: r00c01; 1 file(s) hold a frame's position after other text" in problem
    assert "'Scan 2024-05-13 r00c01.tif'" in problem
    (tmp_path / "r00c00.tif").rename(tmp_path / "Scan r00c00.tif")
    with pytest.raises(InputError, match="no frames found .*; 2 file.s. hold a frame's position"):
        open_cartridge(tmp_path)


PANEL = Panel.from_dict({"channels": ["DAPI", "CK", "CD45"], "pixel_size_um": 0.64})


CARTRIDGE_VALUES = {
    "sample_id": JSON_VALUES | st.sampled_from(["../x", "/abs", "a/b", "..", "ok-1", ""]),
    "columns": JSON_VALUES | st.integers(0, 3), "num_frames": JSON_VALUES | st.integers(0, 3),
    "blood_volume_ml": JSON_VALUES | st.floats(0, 12), "rows": JSON_VALUES | st.integers(0, 3),
    "frame_height": JSON_VALUES | st.integers(0, 40),
    "pixel_size_um": JSON_VALUES | st.sampled_from([0.64, 0.6401, 0.45])}


@FUZZ
@given(st.one_of(
    st.fixed_dictionaries({}, optional=CARTRIDGE_VALUES),
    # one value fuzzed in a good file: some are read, so not every input is refused
    st.sampled_from(sorted(CARTRIDGE_VALUES)).flatmap(
        lambda key: st.fixed_dictionaries({key: CARTRIDGE_VALUES[key]})).map(
            lambda one: {"good file": True, **one})))
def test_cartridge_json_values_are_checked(tmp_path_factory, info):
    root = tmp_path_factory.mktemp("cart")
    write_cartridge_info(root, PANEL, "s", 1, 1, 1, (16, 16))
    if info.pop("good file", False):
        info = {**json.loads((root / "cartridge.json").read_text()), **info}
    (root / "cartridge.json").write_text(json.dumps(info))
    (root / "r00c00.tif").write_bytes(b"")  # indexed only: open_cartridge reads no pixels
    try:
        cart = open_cartridge(root)
    except InputError:
        reject()  # (hypothesis fails a test whose inputs are all refused)
    assert math.isfinite(cart.blood_volume_ml) and cart.blood_volume_ml > 0
    for key in ("rows", "frame_height"):
        assert info.get(key) is None or (float(info[key]).is_integer() and info[key] >= 1)
    if "pixel_size_um" in info:  # a number; beside panel.json's 0.64 a problem if it differs
        differs = abs(info["pixel_size_um"] - 0.64) > 0.0064
        try:  # (a blood volume no person has, drawn beside it, refuses the cartridge here)
            problems = plausibility_problems(cart)
        except InputError:
            reject()
        assert differs == any("states pixel_size_um" in p for p in problems)
    sid = cart.sample_id
    assert sid and "/" not in sid and "\\" not in sid and sid not in (".", "..")
    assert (root / "out" / sid).resolve().parent == (root / "out").resolve()


def test_a_folder_this_user_may_not_read_is_a_cartridge_to_set_aside_only_when_given(
        tmp_path, monkeypatch):
    """Given as an input, an unreadable folder is opened (and set aside with its reason); a
    folder of cartridges' unreadable subfolder (a lost+found) is not read, not a cartridge."""
    import ctcnet.io.scan as scan

    def refused(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(scan, "claim", refused)
    assert scan.is_cartridge(tmp_path)
    assert not scan.is_cartridge(tmp_path, unreadable=False)


def test_an_offset_export_with_a_stray_value_says_the_offset_stays_on(tmp_path, rng):
    """A CellSearch export whose flagged pixels carry the 2^15 offset, with one pixel past
    both ranges: the offset cannot be taken off, and the refusal says why rather than only
    to state a 16-bit range (which would read the offset as signal)."""
    panel = Panel.from_dict({"channels": ["DAPI", "CK", "CD45"]})
    frame = rng.integers(90, 3000, (3, 16, 16)).astype(np.uint16)
    frame[1, :4] += 32768
    frame[1, 8, 8] = 40000
    write_frame(tmp_path, 0, 0, frame, panel)
    write_cartridge_info(tmp_path, panel, "S7", 1, rows=1, columns=1, frame_shape=(16, 16))
    cart = open_cartridge(tmp_path)
    with pytest.raises(InputError, match=r"64 pixel\(s\) carry CellSearch's 2\^15 export "
                                         r"offset .* and 1 lie past both ranges"):
        read_frame(cart.frames[0], panel)


def test_copies_of_a_frame_under_a_copys_name_are_said_not_read(cart, caplog):
    """"r00c00 - Copy.tif" (Windows' copy) and "r00c01 (1).tif" (a browser's download) are no
    frames: not read, and said as a warning, since a person may take them for frames; an
    overview image beside the frames is a note only."""
    from ctcnet.io.scan import open_cartridge

    first = sorted(cart.glob("r*c*.tif"))[0]
    for name in ("r00c00 - Copy.tif", "R00C01 (1).TIF", "overview.tif"):
        shutil.copy(first, cart / name)
    with caplog.at_level("INFO", logger="ctcnet.io.scan"):
        assert len(open_cartridge(cart).frames) == len(open_cartridge(cart).frames) == 3
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warned) == 1 and "2 file(s) named like a frame and more" in warned[0]
    assert "r00c00 - Copy.tif" in warned[0] and "overview.tif" not in warned[0]
    assert any("overview.tif" in r.getMessage() for r in caplog.records
               if r.levelname == "INFO")


def test_a_layout_read_wrong_without_a_word_is_a_problem_of_the_sample(tmp_path, rng):
    """Another scanner's files: a channel file past panel.json's channels (vimentin among
    _c0 .. _c3 under a three-channel panel), frames stated to overlap, frame<k> files numbered
    from 1. Each was read without a word; each is now a problem (the sample partial) naming
    the files and what to do. A layout as the docs ask has none."""
    panel = Panel.from_dict({"channels": ["DAPI", "CK", "CD45"]})

    def cartridge(name, extra=None, names=None):
        root = tmp_path / name
        for k in range(2):
            write_frame(root, 0, k, rng.integers(1, 999, (3, 16, 16), dtype=np.uint16),
                        panel, layout="channels")
        write_cartridge_info(root, panel, name, 2, rows=1, columns=2, frame_shape=(16, 16),
                             extra=extra)
        for old, new in (names or {}).items():
            for path in root.glob(f"{old}*"):
                path.rename(root / path.name.replace(old, new))
        return root

    assert open_cartridge(cartridge("plain")).problems == []
    root = cartridge("vimentin")
    shutil.copy(root / "r00c00_c2.tif", root / "r00c00_c3.tif")
    (said,) = open_cartridge(root).problems
    assert "channel files numbered past panel.json's 3 channels (_c3; e.g. r00c00_c3.tif)" \
        in said and "name every channel" in said
    # Numbered _c1 to _c3 for three channels: counted from 1, not a marker left out.
    root = cartridge("from_c1")
    for k in range(2):
        for c in (2, 1, 0):
            (root / f"r00c0{k}_c{c}.tif").rename(root / f"r00c0{k}_c{c + 1}.tif")
    said = " ".join(open_cartridge(root).problems)
    assert "channel files are numbered _c1 to _c3" in said and "rename them from _c0" in said
    assert "vimentin" not in said
    (said,) = open_cartridge(cartridge("tiles", {"overlap_px": 208})).problems
    assert "states the frames overlap (overlap_px 208)" in said and "counted in each" in said
    assert open_cartridge(cartridge("none", {"overlap_px": 0})).problems == []
    (said,) = open_cartridge(cartridge("from1", names={"r00c01": "frame2",
                                                       "r00c00": "frame1"})).problems
    assert "numbered frame1 to frame2 against 2 frames listed" in said and "frame0" in said
    assert open_cartridge(cartridge("from0", names={"r00c00": "frame0",
                                                    "r00c01": "frame1"})).problems == []


def test_frames_numbered_without_columns_are_said_to_lie_in_one_row(tmp_path, rng, caplog):
    """frame0..frame3 of a 2 x 2 scan with no columns in cartridge.json: placed in one row
    (r00c00..r00c03), not on the scanner's grid, without a word; said now."""
    panel = Panel.from_dict({"channels": ["DAPI", "CK", "CD45"]})
    for k in range(4):
        write_frame(tmp_path, 0, k, rng.integers(1, 999, (3, 16, 16), dtype=np.uint16), panel)
        (tmp_path / f"r00c0{k}.tif").rename(tmp_path / f"frame{k}.tif")
    (tmp_path / "panel.json").write_text(json.dumps(panel.to_dict()))
    with caplog.at_level("WARNING"):
        ids = [f.frame_id for f in open_cartridge(tmp_path).frames]
    assert ids == ["r00c00", "r00c01", "r00c02", "r00c03"]
    assert any("no columns in cartridge.json" in r.getMessage() for r in caplog.records)
    (tmp_path / "cartridge.json").write_text('{"columns": 2}')
    caplog.clear()
    with caplog.at_level("WARNING"):
        ids = [f.frame_id for f in open_cartridge(tmp_path).frames]
    assert sorted(ids) == ["r00c00", "r00c01", "r01c00", "r01c01"]
    assert not any("no columns" in r.getMessage() for r in caplog.records)


def test_a_panel_without_a_pixel_size_is_refused_naming_the_one_cartridge_json_states(
        tmp_path, rng):
    panel = Panel.from_dict({"channels": ["DAPI", "CK", "CD45"], "pixel_size_um": 0.53})
    write_frame(tmp_path, 0, 0, rng.integers(1, 999, (3, 16, 16), dtype=np.uint16), panel)
    write_cartridge_info(tmp_path, panel, "S9", 1, rows=1, columns=1, frame_shape=(16, 16),
                         extra={"pixel_size_um": 0.53})
    stated = json.loads((tmp_path / "panel.json").read_text())
    del stated["pixel_size_um"]
    (tmp_path / "panel.json").write_text(json.dumps(stated))
    with pytest.raises(InputError, match=r"panel.json: panel has no pixel_size_um .*never "
                                         r"guessed; cartridge.json states pixel_size_um 0.53"):
        open_cartridge(tmp_path)


def test_a_channel_file_of_another_size_is_named(tmp_path, rng):
    panel = Panel.from_dict({"channels": ["DAPI", "CK", "CD45"], "pixel_size_um": 0.64})
    write_frame(tmp_path, 0, 0, rng.integers(1, 999, (3, 16, 16), dtype=np.uint16), panel,
                layout="channels")
    tifffile.imwrite(tmp_path / "r00c00_c1.tif", np.ones((8, 8), np.uint16))
    write_cartridge_info(tmp_path, panel, "S8", 1, rows=1, columns=1, frame_shape=(16, 16))
    with pytest.raises(InputError, match=r"differ in size: r00c00_c1.tif is not 16 x 16 as "
                                         r"the others are"):
        read_frame(open_cartridge(tmp_path).frames[0], panel)


def test_channel_files_numbered_the_scanners_way_are_told_the_name_read(tmp_path):
    for k in range(3):
        tifffile.imwrite(tmp_path / f"frame0_ch{k:02d}.tif", np.full((16, 16), k + 5, np.uint16))
    (tmp_path / "panel.json").write_text(json.dumps({"channels": ["DAPI", "CK", "CD45"],
                                                     "pixel_size_um": 0.64}))
    with pytest.raises(InputError, match=r"e.g. frame0_ch00.tif; channel files numbered by the "
                                         r"scanner are read as _c<k>"):
        open_cartridge(tmp_path)


def test_a_channel_left_out_of_panel_json_is_said_beside_the_missing_stain(cart):
    """panel.json naming 4 of a 5-plane scan's channels read as a scan without CD66b: the
    refusal says that its frames hold 5 planes, so the lab looks at panel.json, not for a
    stain."""
    import json

    import pytest

    from ctcnet.errors import PanelMismatchError
    from ctcnet.io.panel import default_panel
    from ctcnet.io.scan import open_cartridge

    panel = json.loads((cart / "panel.json").read_text())
    panel["channels"] = panel["channels"][:4]
    (cart / "panel.json").write_text(json.dumps(panel))
    with pytest.raises(PanelMismatchError, match=r"lacks \['CD66b'\].*its frames hold 5 planes "
                                                 r"where panel.json names 4 channels"):
        open_cartridge(cart).conform(default_panel())


@pytest.mark.parametrize("channels_last", [False, True])
def test_a_channel_left_out_of_panel_json_is_named_by_the_frames_planes(tmp_path, rng,
                                                                         channels_last):
    scan = Panel.from_dict({"channels": ["DAPI", "CK", "CD45", "CD61"], "pixel_size_um": 0.64})
    frame = rng.integers(1, 999, (4, 24, 32), dtype=np.uint16)
    write_frame(tmp_path, 0, 0, frame, scan)
    write_cartridge_info(tmp_path, scan, "S1", 1, rows=1, columns=1, frame_shape=(24, 32))
    (path,) = tmp_path.glob("r00c00*.tif")
    if channels_last:  # (H, W, C) as image software writes it: 24 pages of 32 x 4
        tifffile.imwrite(path, np.moveaxis(frame, 0, -1))
    (tmp_path / "panel.json").write_text(json.dumps({"channels": ["DAPI", "CK", "CD61"],
                                                         "pixel_size_um": 0.64}))
    with pytest.raises(InputError, match=r"its frames hold 4 planes where panel.json names 3"):
        open_cartridge(tmp_path).conform(Panel.from_dict({"channels": ["DAPI", "CK", "CD45"]}))


def test_frames_holding_a_whole_number_of_planes_a_channel_name_a_stack_too(tmp_path, rng):
    """A z-stack saved as a plain TIFF (3 focal planes of 3 channels, 9 pages): the hint was a
    channel missing from panel.json alone, which the user followed; a hyperstack read as one
    names the stack too."""
    from ctcnet.inference.model_choice import choose_for_inputs
    from ctcnet.io.images import check_pixels

    three = Panel.from_dict({"channels": ["DAPI", "CK", "CD45"], "pixel_size_um": 0.64})
    write_frame(tmp_path, 0, 0, rng.integers(1, 999, (3, 24, 32), dtype=np.uint16), three)
    write_cartridge_info(tmp_path, three, "S1", 1, rows=1, columns=1, frame_shape=(24, 32))
    (path,) = tmp_path.glob("r00c00*.tif")
    tifffile.imwrite(path, rng.integers(1, 999, (9, 24, 32), dtype=np.uint16))
    (tmp_path / "panel.json").write_text(json.dumps(three.to_dict()))
    with pytest.raises(InputError, match=r"hold 9 planes where panel.json names 3 channels: a "
                                         r"channel missing from panel.json\?; or 3 planes a "
                                         "channel"):
        choose_for_inputs([tmp_path], [], None, "the input data")
    with pytest.raises(InputError, match="focal planes or time points"):
        check_pixels(np.zeros((3, 2, 8, 8), np.uint16), path)


def test_a_stated_frame_size_or_grid_the_frames_do_not_have_is_warned_of(tmp_path, rng, caplog):
    """A hand-written cartridge.json with height and width swapped, or a grid too small for
    its frames: a record only, but said (the file may be wrong where it counts too)."""
    panel = Panel.from_dict({"channels": ["DAPI", "CK", "CD45"]})
    for col in (0, 1, 2):
        write_frame(tmp_path, 0, col, rng.integers(1, 999, (3, 16, 24), dtype=np.uint16), panel)
    write_cartridge_info(tmp_path, panel, "S10", 3, rows=1, columns=2, frame_shape=(24, 16))
    with caplog.at_level("WARNING"):
        cartridge = open_cartridge(tmp_path)
    said = " ".join(r.getMessage() for r in caplog.records)
    assert "frames of 24 x 16 px (height x width), the frames are 16 x 24 (height and width " \
        "swapped?)" in said
    assert "a grid of 1 x 2 frames, but 1 lie outside it (r00c02)" in said
    assert len(cartridge.frames) == 3 and not any("grid" in p for p in cartridge.problems)


def test_frames_named_from_r01c01_are_said_to_count_from_one(tmp_path, rng, caplog):
    """A scanner naming its frames from r01c01: each sat one place off, warned only that some
    lay outside the grid; the warning says they count from r00c00."""
    panel = Panel.from_dict({"channels": ["DAPI", "CK", "CD45"]})
    for row, col in ((1, 1), (1, 2)):
        write_frame(tmp_path, row, col, rng.integers(1, 999, (3, 16, 16), dtype=np.uint16),
                    panel)
    write_cartridge_info(tmp_path, panel, "S11", 2, rows=1, columns=2, frame_shape=(16, 16))
    with caplog.at_level("WARNING"):
        open_cartridge(tmp_path)
    assert "named from r01c01? Rows and columns count from r00c00" in caplog.text


def test_a_frame_outside_the_stated_grid_is_not_read_into_the_sample(tmp_path, rng, caplog):
    """Another scan's frame copied into a cartridge whose cartridge.json states its grid (1 x 2,
    2 frames): read, its events were counted into this sample over its blood volume. It is
    left out and named among the sample's problems (the sample reads partial)."""
    panel = Panel.from_dict({"channels": ["DAPI", "CK", "CD45"]})
    for col in (0, 1, 3):
        write_frame(tmp_path, 0, col, rng.integers(1, 999, (3, 16, 16), dtype=np.uint16), panel)
    write_cartridge_info(tmp_path, panel, "S12", 2, rows=1, columns=2, frame_shape=(16, 16))
    cartridge = open_cartridge(tmp_path)
    assert [f.frame_id for f in cartridge.frames] == ["r00c00", "r00c01"]
    (problem,) = cartridge.problems
    assert "states a grid of 1 x 2 frames, and 1 frame(s) lie outside it (r00c03): not read" \
        in problem
    # Without num_frames the grid is the scan's whole all the same.
    info = json.loads((tmp_path / "cartridge.json").read_text())
    del info["num_frames"]
    (tmp_path / "cartridge.json").write_text(json.dumps(info))
    assert len(open_cartridge(tmp_path).frames) == 2


def test_a_first_frame_cut_short_is_no_panel_with_another_number_of_planes(cart):
    """The first frame's file cut short holds the pages before the cut: read as a frame of 1
    plane, its whole cartridge was refused as "a channel missing from panel.json?" (exit 2,
    no output) where the same cut on another frame skips that frame. Its header now says
    nothing of the planes; the frame's read says why it is skipped."""
    from ctcnet.inference.model_choice import choose_for_inputs
    from ctcnet.io.scan import frame_planes

    first = frames(cart)[0]
    assert frame_planes(open_cartridge(cart).frames[0]) == 5
    first.write_bytes(first.read_bytes()[:5000])
    assert frame_planes(open_cartridge(cart).frames[0]) is None
    choose_for_inputs([cart], [], None, "the input data")  # (refused before)
    open_cartridge(cart).conform(load_panel(None))


@pytest.mark.parametrize("odd", ["thumbnail", "extra plane", "two images", "imagej slices"])
def test_a_first_frame_holding_more_than_its_channels_is_that_frames_to_skip(cart, odd):
    """A thumbnail page (unflagged), a second image or an ImageJ stack of slices in the first
    frame, or a plane too many in it alone: the whole cartridge was refused as "its frames hold
    6 planes ...: a channel missing from panel.json?" when run alone (in a batch it ran, the
    frame skipped): the frame's read says what it holds, and it is skipped."""
    import tifffile

    from ctcnet.inference.model_choice import choose_for_inputs
    from ctcnet.io.scan import frame_planes

    first = frames(cart)[0]
    planes = tifffile.imread(first)
    if odd == "thumbnail":
        tifffile.imwrite(first, planes)
        tifffile.imwrite(first, planes[0][::4, ::4], append=True)
    elif odd == "extra plane":
        tifffile.imwrite(first, np.concatenate([planes, planes[:1]]))
    elif odd == "two images":
        with tifffile.TiffWriter(first) as tif:
            tif.write(planes)
            tif.write(planes[:2])
    else:
        tifffile.imwrite(first, np.stack([planes, planes]), imagej=True,
                         metadata={"axes": "ZCYX"})
    if odd in ("thumbnail", "imagej slices"):  # (no count of channels: the read says why;
        assert frame_planes(open_cartridge(cart).frames[0]) is None  # else the frames differ)
    choose_for_inputs([cart], [], None, "the input data")  # (refused before)


def test_a_stack_of_slices_alone_is_read_as_its_channels_and_still_counted(tmp_path):
    """Fiji's "Images to Stack" saves the planes as slices: read as the channels they are,
    so a frame of 6 such planes still refuses a panel.json that names 5 (it was no count)."""
    import tifffile

    from ctcnet.io.image_headers import tiff_planes

    tifffile.imwrite(tmp_path / "z.tif", np.zeros((6, 32, 32), np.uint16), imagej=True,
                     metadata={"axes": "ZYX"})
    assert tiff_planes(tmp_path / "z.tif") == 6


def test_two_frames_sampled_alike_are_held_to_their_whole_bytes(tmp_path):
    """Two sparse 8-bit frames on a black background, their cells in rows the digest's
    sampled blocks miss: read as one tile written twice, and the second skipped with its
    cells; only frames whose whole bytes agree are copies."""
    from ctcnet.io.frame_copies import mark_copies

    panel = Panel.from_dict({"channels": ["DAPI", "CK", "CD45"]})
    first = np.zeros((3, 1036, 1384), np.uint8)
    second = first.copy()
    first[:, 38:44, 100:106] = 200
    second[:, 997:1003, 100:106] = 200
    write_frame(tmp_path, 0, 0, first, panel)
    write_frame(tmp_path, 0, 1, second, panel)
    write_frame(tmp_path, 0, 2, second, panel)  # a true copy of the second
    write_cartridge_info(tmp_path, panel, "S", 3, rows=1, columns=3, frame_shape=(1036, 1384))
    frames = mark_copies(open_cartridge(tmp_path).frames)
    assert frames[0].digest == frames[1].digest  # the sampled blocks alike
    assert [f.problem is None for f in frames] == [True, True, False]
    assert "same bytes as frame r00c01" in frames[2].problem


def test_two_frames_zarr_stores_are_copies_only_where_every_file_agrees(tmp_path, rng):
    """Two frames' OME-Zarr stores written uncompressed with one metadata (every file's name
    and size alike): the second was skipped as a copy of the first, its cells not counted.
    A store copied whole still is one."""
    from ctcnet.io.frame_copies import mark_copies
    from ctcnet.io.sources import FrameRef, frame_digest

    def store(name, chunks):
        (tmp_path / name / "0" / "c").mkdir(parents=True)
        (tmp_path / name / "zarr.json").write_text('{"zarr_format": 3, "node_type": "group"}')
        for k, chunk in enumerate(chunks):
            (tmp_path / name / "0" / "c" / str(k)).write_bytes(chunk.tobytes())
        return FrameRef(0, 0, len(list(tmp_path.iterdir())), (tmp_path / name,), name,
                        digest=frame_digest((tmp_path / name,)))

    chunks = rng.integers(100, 4000, (16, 32, 32)).astype(np.uint16)
    other = chunks.copy()
    other[1] += 1  # a chunk the digest's sample passes over
    first, second = store("a.ome.zarr", chunks), store("b.ome.zarr", other)
    shutil.copytree(tmp_path / "a.ome.zarr", tmp_path / "c.ome.zarr")
    copy = FrameRef(0, 2, 0, (tmp_path / "c.ome.zarr",), "c",
                    digest=frame_digest((tmp_path / "c.ome.zarr",)))
    marked = mark_copies([first, second, copy])
    assert [f.problem is None for f in marked] == [True, True, False]
    assert marked[2].copy_of == first.frame_id
    # Different chunks the sample reads: different digests, no whole read to tell them apart.
    assert store("d.ome.zarr", chunks[::-1]).digest != first.digest


@pytest.mark.parametrize("unnamed", ["", "Channel:0:2", "FITC"])
def test_a_frames_plane_named_by_no_marker_takes_the_channel_its_other_names_leave(
        tmp_path, rng, unnamed):
    """OME names CK, DAPI and one left blank: every name was dropped and the planes read in
    panel.json's order (CK read as DAPI, unsaid); a reader's name or a dye there was refused
    as "ImageJ labels or TIFF page names". The named planes are placed by their names, the
    other takes the channel left; where that cannot be told, refused naming the OME names."""
    from ctcnet.errors import PanelMismatchError
    from ctcnet.io.images import write_tiff

    panel = Panel.from_dict({"channels": ["DAPI", "CK", "CD45"], "pixel_size_um": 0.64})
    frame = rng.integers(100, 4000, (3, 16, 16)).astype(np.uint16)
    write_tiff(tmp_path / "r00c00.tif", frame, ["CK", "DAPI", unnamed], 0.64)
    write_cartridge_info(tmp_path, panel, "S", 1, rows=1, columns=1, frame_shape=(16, 16))
    assert np.array_equal(read_frame(open_cartridge(tmp_path).frames[0], panel),
                          frame[[1, 0, 2]])
    four = Panel.from_dict({"channels": ["DAPI", "CK", "CD45", "CD61"], "pixel_size_um": 0.64})
    write_tiff(tmp_path / "r00c00.tif", np.concatenate([frame, frame[:1]]),
               ["CK", "DAPI", unnamed, "PE"], 0.64)
    with pytest.raises(PanelMismatchError, match=r"r00c00.tif: .*the file's OME channel names"):
        read_frame(open_cartridge(tmp_path).frames[0], four)


@pytest.mark.parametrize("names", [["Channel:0:0", "Channel:0:1", "Channel:0:2"],
                                   ["DAPI", "PE", "APC"]])
def test_a_frames_ome_names_that_name_no_marker_leave_the_panel_to_name_them(tmp_path, rng,
                                                                            names):
    """A reader's made-up names or dyes in a frame's OME metadata: a container so named reads
    panel.json's names, a frame named r00c00.tif was refused with no way on (renaming the
    panel's channels breaks the model's match). Markers named are still read by their names."""
    from ctcnet.io.images import write_tiff

    panel = Panel.from_dict({"channels": ["DAPI", "CK", "CD45"], "pixel_size_um": 0.64})
    frame = rng.integers(100, 4000, (3, 16, 16)).astype(np.uint16)
    write_tiff(tmp_path / "r00c00.tif", frame, names, 0.64)
    write_cartridge_info(tmp_path, panel, "S", 1, rows=1, columns=1, frame_shape=(16, 16))
    assert np.array_equal(read_frame(open_cartridge(tmp_path).frames[0], panel), frame)
    write_tiff(tmp_path / "r00c00.tif", frame, ["DAPI", "CD45", "CK"], 0.64)
    assert np.array_equal(read_frame(open_cartridge(tmp_path).frames[0], panel),
                          frame[[0, 2, 1]])
