"""A cartridge's count is ``ok`` only when its inputs are plausible.

Metadata no scan or blood tube can have are refused in one line (exit 2) or, where the user may
know better, accepted with a ``problems`` entry and status ``partial``; a frame whose pixels the
panel does not describe is skipped with its reason; the frame list is built once, by position,
and refuses files it cannot read one way; a tile written twice is counted once; the cartridge
carries an identity. Small simulated cartridges, an untrained tiny model, the CLI in process.
"""

import json
import os
import shutil
import threading

import numpy as np
import pytest
import tifffile
from conftest import save_tiny_model
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ctcnet.cli import main
from ctcnet.errors import InputError
from ctcnet.inference.backends import load_backend
from ctcnet.inference.predict import PredictOptions, predict_cartridge
from ctcnet.io.panel import load_panel
from ctcnet.io.scan import SCAN_PIXEL_SIZE_UM, TUBE_VOLUME_ML, open_cartridge

CROP = 32
QUIET = dict(quiet=True, workers=0, report=False)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A 3-frame simulated cartridge, a tiny model and the clean run's summary."""
    from ctcnet.simulate import simulate_cartridge

    root = tmp_path_factory.mktemp("plausible")
    simulate_cartridge(root / "cart", load_panel(None), num_frames=3, frame_shape=(128, 160),
                       seed=5, events_per_frame=8, sample_id="S1")
    save_tiny_model(root / "model.pt", crop_size=CROP)
    backend = load_backend(root / "model.pt", device="cpu")
    clean = predict_cartridge(root / "cart", backend, root / "clean", PredictOptions(**QUIET))
    assert clean.status == "ok" and clean.events > 0
    return {"root": root, "backend": backend, "clean": clean}


@pytest.fixture
def cart(base, tmp_path):
    shutil.copytree(base["root"] / "cart", tmp_path / "cart")
    return tmp_path / "cart"


def frames(cart):
    return sorted(cart.glob("r*c*.tif"))


def edit_json(path, **changes):
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def predict(base, cart, out=None, **options):
    return predict_cartridge(cart, base["backend"], out or cart.parent / "out",
                             PredictOptions(**QUIET, **options))


def run_cli(capsys, base, cart):
    """(exit status, stderr lines) of ``ctcnet predict`` on ``cart``, in this process."""
    status = main(["predict", str(cart), "--out", str(cart.parent / "cli"), "--model",
                   str(base["root"] / "model.pt"), "--device", "cpu", "--quiet", "--no-report",
                   "--workers", "0"])
    return status, [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]


def assert_one_line_error(status, err, match):
    assert status == 2 and len(err) == 1, err
    assert match in err[0], err[0]


def rewrite_frame(path, edit):
    pixels = tifffile.imread(path)
    edit(pixels)
    tifffile.imwrite(path, pixels, photometric="minisblack")


# --- metadata: pixel size, blood volume ---------------------------------------------------------

@pytest.mark.parametrize("pixel_size", [4.0, 2.5, 0.02])
def test_a_pixel_size_no_scan_has_is_refused_in_one_line(base, cart, capsys, pixel_size):
    edit_json(cart / "panel.json", pixel_size_um=pixel_size)
    status, err = run_cli(capsys, base, cart)
    assert_one_line_error(status, err, "is not a scan's pixel size (0.05 to 2 um per pixel")
    assert not (cart.parent / "cli" / "S1").exists()  # refused before any work


def test_every_predict_entry_point_checks_the_metadata(base, cart):
    """A Cartridge handed to predict_cartridge is checked as one read from its folder."""
    from dataclasses import replace

    opened = open_cartridge(cart)
    out = cart.parent / "out"
    with pytest.raises(InputError, match="not a scan's pixel size"):
        predict(base, replace(opened, panel=opened.panel.with_pixel_size(4.0)), out)
    assert not out.exists()  # refused before any work
    summary = predict(base, replace(opened, blood_volume_ml=750.0), out)
    assert summary.status == "partial" and any("blood tube" in p for p in summary.problems)


def test_blood_volume_beyond_one_tube_is_partial_and_said(base, cart):
    edit_json(cart / "cartridge.json", blood_volume_ml=750)
    summary = predict(base, cart)
    clean = base["clean"]
    assert summary.status == "partial"
    assert [p for p in summary.problems if "blood_volume_ml 750 is more than one blood tube"]
    # The counts stand; the per-7.5 mL figures divide by the stated volume, flagged.
    assert summary.counts == clean.counts and summary.events == clean.events
    assert summary.per_7_5_ml["ctc"] == pytest.approx(summary.counts["ctc"] * 7.5 / 750)


def test_a_full_tube_is_still_ok(base, cart):
    edit_json(cart / "cartridge.json", blood_volume_ml=TUBE_VOLUME_ML)
    summary = predict(base, cart)
    assert summary.status == "ok" and not summary.problems


def test_more_blood_than_a_person_has_is_refused_in_one_line(base, cart, capsys):
    edit_json(cart / "cartridge.json", blood_volume_ml=7500)
    status, err = run_cli(capsys, base, cart)
    assert_one_line_error(status, err, "blood_volume_ml 7500 is more blood than a person has")


# --- pixels the panel does not describe: the frame is skipped with its reason -------------------

def test_values_above_the_panels_range_skip_the_frame(base, cart):
    first = frames(cart)[0]

    def hot(pixels):
        pixels[1, 10:20, 10:20] = 65535  # in a panel that states 12 bits
    rewrite_frame(first, hot)
    summary = predict(base, cart)
    assert summary.status == "partial" and summary.frames.skipped == 1
    skip = summary.skipped_frames[0]
    assert skip["frame"] == "r00c00"
    assert "channel CK holds values up to 65535, out of the panel's value_range [0, 4095]" \
        in skip["reason"]
    assert summary.blood_volume_processed_ml == pytest.approx(7.5 * 2 / 3)


def test_a_panel_that_states_16_bits_reads_16_bit_values(base, cart):
    def brighter(pixels):
        pixels[1, 10:20, 10:20] = 65535
    rewrite_frame(frames(cart)[0], brighter)
    panel = json.loads((cart / "panel.json").read_text())
    for channel in panel["channels"]:
        channel["value_range"] = [0, 65535]
    (cart / "panel.json").write_text(json.dumps(panel))
    summary = predict(base, cart)
    assert summary.status == "ok" and summary.frames.skipped == 0


def test_an_all_zero_channel_skips_the_frame(base, cart):
    def dead(pixels):
        pixels[2] = 0  # CD45 lost: every leukocyte would look CD45-negative
    rewrite_frame(frames(cart)[0], dead)
    summary = predict(base, cart)
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
def test_two_ways_to_read_one_frame_are_refused(base, cart, capsys, make, match):
    make(cart)
    with pytest.raises(InputError, match="keep one"):
        open_cartridge(cart)
    status, err = run_cli(capsys, base, cart)
    assert_one_line_error(status, err, match)


def test_a_tile_written_twice_is_counted_once(base, cart):
    shutil.copy(cart / "r00c01.tif", cart / "r00c03.tif")  # the same tile under a second name
    edit_json(cart / "cartridge.json", num_frames=4)
    summary = predict(base, cart)
    clean = base["clean"]
    assert summary.events == clean.events and summary.counts == clean.counts
    assert summary.status == "partial" and summary.frames.skipped == 1
    skip = summary.skipped_frames[0]
    assert skip["frame"] == "r00c03" and "same bytes as frame r00c01" in skip["reason"]


def test_a_copy_done_before_is_dropped_from_the_journal(base, cart):
    """A resumed run does not keep a frame it now knows to be a copy."""
    predict(base, cart)
    before = (cart / "r00c02.tif").stat()
    shutil.copy(cart / "r00c01.tif", cart / "r00c02.tif")  # r00c02 replaced by r00c01's bytes
    # Same name, size and time as before: the journal's own check sees no change.
    os.utime(cart / "r00c02.tif", ns=(before.st_atime_ns, before.st_mtime_ns))
    summary = predict(base, cart)
    assert summary.frames.skipped == 1 and summary.skipped_frames[0]["frame"] == "r00c02"
    assert summary.frames.resumed_from_journal == 2
    assert not (cart.parent / "out" / "parts" / "r00c02.parquet").exists()


def test_a_fifo_among_the_frames_is_refused_never_opened(base, cart, capsys):
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
    assert "r00c03.tif: not a regular file (a FIFO named like a frame)" in outcome["error"]
    status, err = run_cli(capsys, base, cart)
    assert_one_line_error(status, err, "not a regular file (a FIFO named like a frame)")


def test_a_frame_name_that_is_not_utf8_is_refused_by_name(base, cart, capsys):
    name = os.fsdecode(b"r00c03\xff.tif")
    shutil.copy(cart / "r00c01.tif", cart / name)
    with pytest.raises(InputError, match=r"b'r00c03\\xff.tif' is not valid UTF-8"):
        open_cartridge(cart)
    status, err = run_cli(capsys, base, cart)
    assert_one_line_error(status, err, "is not valid UTF-8")


def test_a_frame_missing_a_channel_file_is_skipped_not_dropped(base, cart):
    pixels = tifffile.imread(cart / "r00c02.tif")
    (cart / "r00c02.tif").unlink()
    for c in range(len(pixels) - 1):  # the last channel's file never arrived
        tifffile.imwrite(cart / f"r00c02_c{c}.tif", pixels[c:c + 1], photometric="minisblack")
    summary = predict(base, cart)
    assert summary.frames.total == 3 and summary.frames.skipped == 1
    assert "missing channel file(s) [4]" in summary.skipped_frames[0]["reason"]
    assert summary.status == "partial"
    assert summary.blood_volume_processed_ml == pytest.approx(7.5 * 2 / 3)


def test_missing_frames_are_not_counted_as_blood_read(base, cart):
    (cart / "r00c02.tif").unlink()  # cartridge.json lists 3 frames
    summary = predict(base, cart)
    assert summary.status == "partial"
    assert any("lists 3 frames but 2 are present" in p for p in summary.problems)
    assert summary.blood_volume_processed_ml == pytest.approx(7.5 * 2 / 3)


# --- the cartridge's identity -------------------------------------------------------------------

def test_the_identity_follows_the_scan_not_the_folder(base, cart, tmp_path):
    identity = open_cartridge(cart).identity
    assert identity and base["clean"].cartridge_id == identity
    assert json.loads((base["root"] / "clean" / "summary.json").read_text())[
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
def test_metadata_changes_are_refused_flagged_or_change_nothing(base, tmp_path_factory, edits):
    cart = tmp_path_factory.mktemp("edited") / "cart"
    shutil.copytree(base["root"] / "cart", cart)
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
        summary = predict(base, cart)
    except InputError:
        return  # refused by name
    clean = base["clean"]
    flagged = bool(summary.problems or summary.skipped_frames)
    assert (summary.status != "ok") == flagged
    if summary.status == "ok":  # an ok count stands on plausible inputs only ...
        lo, hi = SCAN_PIXEL_SIZE_UM
        assert lo <= summary.panel["pixel_size_um"] <= hi
        assert 0 < summary.blood_volume_ml <= TUBE_VOLUME_ML
    if not summary.skipped_frames:  # ... and none of these edits changes what is counted
        assert summary.counts == clean.counts and summary.events == clean.events
        assert summary.per_7_5_ml["ctc"] == pytest.approx(
            summary.counts["ctc"] * 7.5 / summary.blood_volume_processed_ml)


def test_a_benchmark_cartridge_repeats_its_frames_on_purpose(base, tmp_path):
    """``ctcnet benchmark`` builds long cartridges from hard links to a few frames: it says
    so in cartridge.json, and every frame is read (a scan never says so)."""
    from ctcnet.benchmark import linked_cartridge

    target = linked_cartridge(base["root"] / "cart", tmp_path / "bench", 7)
    assert all(f.problem is None for f in open_cartridge(target).frames)
    edit_json(target / "cartridge.json", repeated_frames=False)  # an older benchmark folder
    copies = [f for f in open_cartridge(target).frames if f.problem]
    assert len(copies) == 4 and "same bytes as frame" in copies[0].problem
    linked_cartridge(base["root"] / "cart", target, 7)  # kept, and marked again
    assert all(f.problem is None for f in open_cartridge(target).frames)
