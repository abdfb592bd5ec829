"""Predict's frame threads: no module is first imported there, an error that is not about a
frame stops the run instead of skipping the frame, and one thread's damaged TIFF never makes
another thread refuse an intact one."""

import json
import logging
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import save_tiny_model

from ctcnet.errors import InputError
from ctcnet.io.images import read_tiff, write_tiff
from ctcnet.io.panel import load_panel

REPO = Path(__file__).resolve().parents[2]
CROP = 48


def simulate(root, frames=3):
    from ctcnet.simulate import simulate_cartridge

    simulate_cartridge(root, load_panel(None), num_frames=frames, frame_shape=(256, 320), seed=5,
                       events_per_frame=20, rare_rates={"ctc": 0.2, "cluster": 0.1})
    return root


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    base = tmp_path_factory.mktemp("threads")
    cart = simulate(base / "cart")
    scan_px = json.loads((cart / "panel.json").read_text())["pixel_size_um"]
    # A model pixel larger than the scan's: every crop is shrunk (antialiased resampling).
    panel = load_panel(None).with_pixel_size(round(scan_px * 1.4, 4))
    model, _ = save_tiny_model(base / "model.pt", crop_size=CROP, panel=panel, width=8)
    from ctcnet.deploy.export import export_onnx

    export_onnx(model)
    return {"base": base, "cart": cart, "model": model, "onnx": model.with_suffix(".onnx")}


# Records every module imported for the first time in a frame thread (a meta path finder is
# asked only for modules not yet in sys.modules), then runs predict with two frame threads.
_SPY = """
import json, sys, threading
first_in_frame_threads = []

class Spy:
    def find_spec(self, name, path=None, target=None):
        if threading.current_thread().name.startswith("ctcnet-frame"):
            first_in_frame_threads.append(name)
        return None

sys.meta_path.insert(0, Spy())
from ctcnet.inference.backends import load_backend
from ctcnet.inference.predict import PredictOptions, predict_cartridge

model, cart, out, frame_device = sys.argv[1:]
backend = load_backend(model, device="cpu")
summary = predict_cartridge(cart, backend, out, PredictOptions(
    quiet=True, workers=2, report=False, frame_device=frame_device))
print(json.dumps({"imports": first_in_frame_threads, "skipped": summary.skipped_frames,
                  "torch": "torch" in sys.modules}))
"""


@pytest.mark.parametrize("backend,frame_device", [("onnx", "numpy"), ("pt", "cpu")])
def test_no_module_is_first_imported_in_a_frame_thread(setup, tmp_path, backend, frame_device):
    """A first import of a heavy module (torch, scikit-image's lazy submodules) from several
    threads at once can fail with a half-initialised module; predict imports everything the
    frame threads use in the main thread, before they start."""
    model = setup["onnx"] if backend == "onnx" else setup["model"]
    run = subprocess.run([sys.executable, "-c", _SPY, str(model), str(setup["cart"]),
                          str(tmp_path / "out"), frame_device],
                         capture_output=True, text=True, cwd=REPO, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["skipped"] == []
    # The torch frame path imports torch; the numpy one, shrinking included, never does.
    assert result["torch"] == (frame_device == "cpu")
    assert result["imports"] == [], result["imports"]


class _FailFirstCall:
    """Wraps a function; its first call raises ``error`` (as a first concurrent import of a
    module in a frame thread can), later calls run the function."""

    def __init__(self, fn, error):
        self.fn, self.error, self.calls = fn, error, 0
        self.lock = threading.Lock()

    def __call__(self, *args, **kwargs):
        with self.lock:
            self.calls += 1
            first = self.calls == 1
        if first:
            raise self.error
        return self.fn(*args, **kwargs)


@pytest.mark.parametrize("error", [
    ImportError("cannot import name 'interpolate' from partially initialized module "
                "'torch.nn.functional' (most likely due to a circular import)"),
    MemoryError("Unable to allocate 27.3 MiB for an array")])  # beside other work, not the frame
def test_an_import_or_memory_error_in_a_frame_thread_stops_the_run(setup, tmp_path, capsys,
                                                                   monkeypatch, error):
    """Not about the frame's data: the run must fail loudly, never finish with exit 0 and a
    frame skipped (a count short of that frame's cells)."""
    import ctcnet.inference.frames as F
    from ctcnet.cli import main

    monkeypatch.setattr(F, "detect_events", _FailFirstCall(F.detect_events, error))
    out = tmp_path / "out"
    args = ["predict", str(setup["cart"]), "--model", str(setup["onnx"]), "--out", str(out),
            "--device", "cpu", "--workers", "2", "--quiet", "--no-report"]
    if isinstance(error, MemoryError):  # one line saying what to do, exit 4 (the machine's)
        assert main(args) == 4
        assert "out of memory (Unable to allocate" in capsys.readouterr().err
    else:
        with pytest.raises(type(error), match="partially initialized") as caught:
            main(args)
        assert any("frame" in note for note in getattr(caught.value, "__notes__", []))
    assert not list(out.glob("*/summary.json"))
    # Once the cause is gone, a rerun resumes the journal and finishes every frame.
    monkeypatch.undo()
    assert main(args) == 0
    summary = json.loads(next(out.glob("*/summary.json")).read_text())
    # (partial at most for the untrained model's calls: all ctc, no wbc, read as a swap, and
    # most of them in doubt, an oversized review list)
    assert summary["frames"]["skipped"] == 0 and summary["status"] in ("ok", "partial")
    assert not [p for p in summary["problems"]
                if "swapped?" not in p and not p.startswith("review list of")]


def test_a_frame_whose_data_breaks_detection_is_still_skipped(setup, tmp_path, monkeypatch):
    import ctcnet.inference.frames as F
    import ctcnet.inference.predict as P
    from ctcnet.inference.backends import load_backend

    error = ValueError("odd pixels no check foresaw")
    monkeypatch.setattr(F, "detect_events", _FailFirstCall(F.detect_events, error))
    summary = P.predict_cartridge(setup["cart"], load_backend(setup["onnx"], device="cpu"),
                                  tmp_path / "out", P.PredictOptions(quiet=True, workers=2,
                                                                     report=False))
    assert summary.frames.skipped == 1 and summary.status == "partial"
    assert "odd pixels" in summary.skipped_frames[0]["reason"]


def test_too_many_open_files_stops_the_run_rather_than_skipping_a_frame(setup, tmp_path,
                                                                         monkeypatch):
    """ulimit -n 19 with 4 frame workers: a frame's read met EMFILE and the frame was skipped,
    its sample reported `partial` at another count, the run exit 0; the machine's state stops
    the run (exit 4) and a rerun reads the frame."""
    import errno

    import tifffile

    import ctcnet.inference.frames as F
    import ctcnet.inference.predict as P
    from ctcnet.inference.backends import load_backend
    from ctcnet.io.images import read_tiff

    error = OSError(errno.EMFILE, "Too many open files")
    # Where a frame's file is opened: the TIFF reader took any error for a corrupt file.
    frame = next(iter(sorted(setup["cart"].glob("*.tif"))))

    def no_file_left(*args, **kwargs):
        raise error

    with monkeypatch.context() as patch:
        patch.setattr(tifffile, "TiffFile", no_file_left)
        with pytest.raises(OSError, match="Too many open files"):
            read_tiff(frame)
    # Reading, and opening the frame's files again for its digest: the run stops.
    backend = load_backend(setup["onnx"], device="cpu")
    for name in ("read_with_unread", "frame_record"):
        with monkeypatch.context() as patch:
            patch.setattr(F, name, _FailFirstCall(getattr(F, name), error))
            with pytest.raises(OSError, match="Too many open files"):
                P.predict_cartridge(setup["cart"], backend, tmp_path / name,
                                    P.PredictOptions(quiet=True, workers=0, report=False))


def test_a_failed_read_of_the_metadata_signs_costs_no_frame(clean_run, cart, monkeypatch):
    """The signs of the metadata (ctcnet.detect.metadata_signs) are a check beside the counts:
    where reading them fails on odd pixels, the frame's events are counted all the same and
    the frame has no signs (a journal of an earlier version, with none, reads the same)."""
    from conftest import predict

    import ctcnet.inference.frames as F

    def fail(*args, **kwargs):
        raise ValueError("odd pixels")

    monkeypatch.setattr(F, "frame_signs", fail)
    summary = predict(clean_run, cart)
    assert summary.frames.skipped == 0 and summary.events == clean_run["clean"].events
    assert summary.metadata_check["events_read"] == 0
    assert not [p for p in summary.problems if "(metadata_check)" in p]


def test_a_frame_cut_short_while_it_is_read_is_skipped_not_recorded(clean_run, cart,
                                                                    monkeypatch):
    """A frame file rewritten while predict reads it (cut short between its decoding and its
    digest) is skipped with the reason, never recorded as read: its digest would be of other
    bytes than the pixels counted, and a resumed run, the crops and the review trust it. The
    frame intact again, a rerun reads it."""
    from conftest import frames, predict

    from ctcnet.io import scan

    target = frames(cart)[0]
    whole = target.read_bytes()
    read = scan.Cartridge.read

    def read_then_cut(self, frame):
        pixels = read(self, frame)
        if Path(frame.files[0]).name == target.name:
            with open(target, "r+b") as fh:
                fh.truncate(len(whole) // 2)
        return pixels

    monkeypatch.setattr(scan.Cartridge, "read", read_then_cut)
    summary = predict(clean_run, cart)
    assert summary.status == "partial" and target.stem not in summary.frame_digests
    assert "changed while it was read" in summary.skipped_frames[0]["reason"]
    monkeypatch.setattr(scan.Cartridge, "read", read)
    target.write_bytes(whole)
    again = predict(clean_run, cart)
    assert again.status == "ok" and target.stem in again.frame_digests


# ---------------------------------------------------------------------------------------------
# tifffile's damage log is per thread.

def _damaged_by_log(path: Path) -> Path:
    """A multipage TIFF whose last page's IFD offset points past the end of the file: tifffile
    logs (does not raise) "invalid page offset" and reads the pages before it."""
    import tifffile

    frame = (np.arange(3 * 40 * 50, dtype=np.uint16) % 4000).reshape(3, 40, 50)
    write_tiff(path, frame, ome=False)
    with tifffile.TiffFile(path) as tif:
        next_ifd_at = tif.pages[1].offset  # where page 0's "next IFD" offset points
    data = bytearray(path.read_bytes())
    pos = data.find(next_ifd_at.to_bytes(4, "little"), 8)
    data[pos:pos + 4] = (len(data) + 10_000).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    return path


@pytest.fixture
def tiffs(tmp_path):
    intact = tmp_path / "intact.tif"
    write_tiff(intact, np.ones((3, 40, 50), np.uint16) * np.arange(50, dtype=np.uint16),
               ome=False)
    return intact, _damaged_by_log(tmp_path / "damaged.tif")


def test_a_file_damaged_by_log_only_is_refused(tiffs, caplog):
    """Refused in tifffile's words, without its objects' repr, and with what to do; tifffile's
    own record is not printed besides (it was, unattributed, once for each look at the file,
    its header's too)."""
    from ctcnet.io.image_headers import image_shape, tiff_planes

    _, damaged = tiffs
    image_shape(damaged), tiff_planes(damaged)
    with pytest.raises(InputError, match=r"corrupt or truncated TIFF \(invalid page offset "
                                         r"\d+\): export the file again") as refused:
        read_tiff(damaged)
    assert "<tifffile" not in str(refused.value)
    assert not [r for r in caplog.records if r.name.startswith("tifffile")]


def test_damage_logged_by_another_thread_does_not_refuse_an_intact_file(tiffs, monkeypatch):
    """Deterministic: while this thread reads the intact file, another thread logs tifffile
    damage (as it would reading a truncated frame at that moment)."""
    import ctcnet.io.images as images

    intact, _ = tiffs
    original = images._ome_channel_names

    def read_while_another_thread_logs(tif):
        other = threading.Thread(target=lambda: logging.getLogger("tifffile").error(
            "<TiffPage 2> invalid page offset (another thread's truncated file)"))
        other.start()
        other.join()
        return original(tif)

    monkeypatch.setattr(images, "_ome_channel_names", read_while_another_thread_logs)
    arr, _ = read_tiff(intact)
    assert arr.shape == (3, 40, 50)


def test_two_threads_read_damaged_and_intact_files_at_once(tiffs, monkeypatch):
    """Both reads are inside tifffile at the same moment (a barrier in the middle of each
    read): the damaged file is refused, the intact one read."""
    import ctcnet.io.images as images

    intact, damaged = tiffs
    original = images._ome_channel_names
    barrier = threading.Barrier(2, timeout=20)

    def meet_then_read(tif):
        barrier.wait()  # both threads have their damage collectors in place now
        names = original(tif)
        list(tif.pages)  # the damaged file's bad page offset is logged here...
        barrier.wait()  # ...before the other thread's read ends
        return names

    monkeypatch.setattr(images, "_ome_channel_names", meet_then_read)
    results = {}

    def read(path):
        try:
            results[path] = read_tiff(path)[0].shape
        except InputError as err:
            results[path] = err

    threads = [threading.Thread(target=read, args=(p,)) for p in (intact, damaged)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results[intact] == (3, 40, 50)
    assert isinstance(results[damaged], InputError), results[damaged]


def test_each_frame_read_is_recorded_with_its_sha256_and_a_resumed_run_keeps_them(clean_run,
                                                                                 cart):
    """The run's summary holds each processed frame's files and SHA-256 (what `ctcnet crops`
    and the review's tiles check before cutting again), hashed as the frame is read; a resumed
    run, which reads no frame again, reports them from the journal (a line a killed run cut
    short is passed over), and the time the first run took over them
    (``journal_timings_s``)."""
    import hashlib

    from conftest import frames, predict

    from ctcnet.inference.frames import FRAME_RECORDS

    first = predict(clean_run, cart)
    for path in frames(cart):
        record = first.frame_digests[path.stem]
        assert record["of"] == "files" and record["files"][0][:2] == [path.name,
                                                                      path.stat().st_size]
        assert record["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    with open(cart.parent / "out" / "parts" / FRAME_RECORDS, "a") as fh:
        fh.write('{"frame": "r00c0')  # a killed run's last line
    again = predict(clean_run, cart)
    assert again.frames.resumed_from_journal == 3 and again.frame_digests == first.frame_digests
    # Its timings are its own (no frame read); the frames' stages as the first run timed them.
    assert first.journal_timings_s is None and again.timings_s["detect"] == 0.0
    for stage in ("read", "digest", "detect", "crop"):
        assert again.journal_timings_s[stage] == pytest.approx(first.timings_s[stage], abs=1e-3)
    # The frames' signs of the metadata are journaled beside their records: judged alike.
    assert again.metadata_check == first.metadata_check and first.metadata_check["events_read"]


def test_a_frame_record_a_crash_tore_is_made_again_and_the_next_kept(clean_run, cart):
    """A power cut as a frame's record was appended: the line ends torn, no newline. The frame
    whose record it was is done again (its digest, note and leak ratios are the record's),
    and the record appended next starts a line of its own (appended onto the torn one, it was
    lost with it: frame_digests lacked two frames on every later rerun)."""
    import json

    from conftest import predict

    from ctcnet.inference.frames import FRAME_RECORDS

    first = predict(clean_run, cart)
    journal = cart.parent / "out" / "parts" / FRAME_RECORDS
    lines = journal.read_text().splitlines(keepends=True)
    torn = json.loads(lines[-1])["frame"]
    journal.write_text("".join(lines[:-1]) + lines[-1][:40])  # the last record cut short
    again = predict(clean_run, cart)
    assert again.frames.resumed_from_journal == 2 and again.frames.processed == 3
    assert again.frame_digests == first.frame_digests and torn in again.frame_digests
    *whole, broken, last = journal.read_text().splitlines()
    assert [json.loads(line)["frame"] for line in [*whole, last]] == \
        [json.loads(line)["frame"] for line in lines[:-1]] + [torn]
    assert broken == lines[-1][:40]


def test_a_journal_part_holding_another_frames_events_is_done_again(clean_run, cart, caplog):
    """A readable part whose rows are another frame's (a file copied over it): resumed as it
    was, one frame's events were counted twice and the other's lost, the sample ``ok``."""
    import shutil

    import pandas as pd
    from conftest import predict

    first = predict(clean_run, cart)
    out = cart.parent / "out"
    before = pd.read_parquet(out / "events.parquet")["frame_id"].value_counts().to_dict()
    parts = sorted((out / "parts").glob("r*.parquet"))
    shutil.copy(parts[0], parts[1])
    again = predict(clean_run, cart)
    assert again.frames.resumed_from_journal == 2 and again.frames.processed == 3
    assert pd.read_parquet(out / "events.parquet")["frame_id"].value_counts().to_dict() == \
        before
    assert again.per_7_5_ml == first.per_7_5_ml
    assert f"1 journal part(s) unreadable, of another frame or without their frame's record " \
        f"(a crash, a file copied?), done again: {parts[1].stem}" in caplog.text


def test_the_frames_of_an_8_bit_export_are_counted_in_the_summary(clean_run, cart, tmp_path):
    """An 8-bit export is read with a warning, not a problem; summary.json counts its frames
    (``metadata_check.eight_bit_frames``), a resumed run's from its journal, so a study
    pooling samples can tell it. Some frames 8-bit among counts is a problem naming them (one
    such frame lost a quarter of its events, the sample ``ok``)."""
    from conftest import frames, predict

    assert clean_run["clean"].metadata_check["eight_bit_frames"] == 0
    mixed = tmp_path / "mixed"
    shutil.copytree(cart, mixed)
    for path in frames(cart):
        pixels, names = read_tiff(path)
        write_tiff(path, np.clip(np.round(pixels / 16.0), 0, 255).astype(pixels.dtype), names)
        if path.name == frames(cart)[1].name:
            shutil.copy(path, mixed / path.name)
    summary = predict(clean_run, cart)
    assert summary.metadata_check["eight_bit_frames"] == 3
    assert not [p for p in summary.problems if "255" in p]
    again = predict(clean_run, cart)  # every frame from the journal
    assert again.frames.resumed_from_journal == 3
    assert again.metadata_check["eight_bit_frames"] == 3
    summary = predict(clean_run, mixed, out=tmp_path / "mixed_out")
    assert summary.metadata_check["eight_bit_frames"] == 1
    said = [p for p in summary.problems if "hold no value above 255" in p]
    assert len(said) == 1 and said[0].startswith(f"frame(s) {frames(cart)[1].stem} ")
    assert "where the other 2 hold counts" in said[0]
    # A camera frame of dim cells alone holds no value above 255 either, its background where
    # the others' is: not another depth (a sparse cartridge was marked partial so).
    dim = tmp_path / "dim"
    shutil.copytree(clean_run["root"] / "cart", dim)
    path = frames(dim)[1]
    pixels, names = read_tiff(path)
    write_tiff(path, np.minimum(pixels, 255).astype(pixels.dtype), names)
    summary = predict(clean_run, dim, out=tmp_path / "dim_out")
    assert summary.metadata_check["eight_bit_frames"] == 1
    assert not [p for p in summary.problems if "255" in p], summary.problems


def test_frames_whose_background_was_subtracted_are_read_as_the_cameras_counts(
        clean_run, cart, tmp_path, caplog, monkeypatch):
    """Frames less each channel's median, clipped at 0 (an export so made): their pixels at 0
    are drawn again as the background's lower half (ctcnet.detect.clipped_background), said
    once, and counted in ``metadata_check.subtracted_frames``; detection then finds the
    events it finds in the camera's counts, and the markers read near what they read there.
    As they are, the noise is a share of the brightest channel's and the markers read far off
    (a cartridge of 4 simulated frames found 1,817 events against 1,141, and 36 to review
    against 13; restored, 1,142 and 12)."""
    from conftest import frames, predict

    assert clean_run["clean"].metadata_check["subtracted_frames"] == 0
    for path in frames(cart):
        pixels, names = read_tiff(path)
        level = np.median(pixels.reshape(len(pixels), -1), axis=1)[:, None, None]
        write_tiff(path, np.clip(pixels - level, 0, None).astype(pixels.dtype), names)
    with caplog.at_level(logging.WARNING, logger="ctcnet.inference.frames"):
        summary = predict(clean_run, cart)
    said = [r.getMessage() for r in caplog.records if "clipped at 0" in r.getMessage()]
    assert len(said) == 1 and "background subtracted and clipped at 0 in DAPI, CK" in said[0]
    assert summary.metadata_check["subtracted_frames"] == 3 and summary.status == "ok"
    clean = clean_run["clean"].events
    assert abs(summary.events - clean) <= 0.05 * clean
    monkeypatch.setattr("ctcnet.inference.frames.restore_clipped_background",
                        lambda pixels: (pixels, []))
    predict(clean_run, cart, out=tmp_path / "as_they_are")

    def marker_error(out: Path) -> float:
        """The median factor by which the events' CK peaks and DAPI in CK (noise units) are
        off the camera's counts' (log), over events whose values are read (over 1)."""
        import pandas as pd

        read = [pd.read_parquet(next(o.rglob("events.parquet")))[["ck_peak", "dna_in_ck"]]
                .to_numpy() for o in (clean_run["root"] / "clean", out)]
        lit = read[0] > 1
        return float(np.median(np.abs(np.log(np.maximum(read[1][lit], 0.1) / read[0][lit]))))

    assert marker_error(cart.parent / "out") < 0.3 < 0.6 < marker_error(tmp_path / "as_they_are")


def test_a_channel_file_of_another_bit_depth_skips_its_frame(tmp_path):
    """One frame's DAPI file stored in 8 bits (its counts / 16) beside 16-bit channel files
    was read without a word, the frame's cells lost: the frame is refused, naming it."""
    from ctcnet.io.scan import open_cartridge
    from ctcnet.simulate import simulate_cartridge

    cart = tmp_path / "cart"
    simulate_cartridge(cart, load_panel(None), num_frames=1, frame_shape=(64, 64), seed=3,
                       events_per_frame=2, layout="channels")
    ck = sorted(cart.glob("r00c00_*"))[1]
    pixels, names = read_tiff(ck)
    write_tiff(ck, np.clip(pixels / 16, 0, 255).astype(np.uint8), names)
    cartridge = open_cartridge(cart)
    with pytest.raises(InputError, match="CK stored in 8 bits, the frame's other channels in "
                                         "16: a channel exported at another bit depth") as err:
        cartridge.read(cartridge.frames[0])
    assert str(err.value).startswith(f"{ck}: ")  # its own file named, not the frame's first


def test_too_few_nuclei_to_judge_yet_out_of_the_band_is_warned_of():
    """A sparse 40x scan stated at 4x its pixel size read its 17 nuclei 23 um across: too few
    to judge (20), said nowhere; a warning now, not a problem."""
    from ctcnet.inference.frames import _unjudged_scale

    said = _unjudged_scale({"pixel_size_judged": False, "nuclei_measured": 17,
                            "nucleus_median_um": 23.36})
    assert said.startswith("the pixel size was not judged: 17 nuclei measured (20 needed), "
                           "yet they read 23.4 um across")
    assert _unjudged_scale({"pixel_size_judged": False, "nuclei_measured": 17,
                            "nucleus_median_um": 7.0}) is None
    assert _unjudged_scale({"pixel_size_judged": True, "nuclei_measured": 40,
                            "nucleus_median_um": 23.0}) is None
    assert _unjudged_scale({"pixel_size_judged": False, "nuclei_measured": 0,
                            "nucleus_median_um": None}) is None


def test_a_sparse_scan_whose_few_nuclei_read_no_nucleus_size_is_partial(clean_run, cart):
    """Too few nuclei to judge the pixel size (20), yet far out of a nucleus's band: a scan
    of few events stated at a sixth of its pixel size counted none of its CTCs as ok; from 3
    nuclei on it is a problem (partial), said in summary.json."""
    from conftest import edit_json, predict

    clean = clean_run["clean"].metadata_check
    assert not clean["pixel_size_judged"] and clean["nuclei_measured"] >= 3
    edit_json(cart / "panel.json", pixel_size_um=0.1)
    summary = predict(clean_run, cart)
    said = [p for p in summary.problems if p.startswith("the pixel size was not judged")]
    assert summary.status == "partial" and len(said) == 1, summary.problems
    assert said[0].endswith("is panel.json's pixel_size_um right? (metadata_check)")


def test_a_scan_that_states_no_frame_count_says_so_in_its_record(clean_run, cart):
    """A truncated copy whose cartridge.json states no num_frames (files old enough to read
    as complete) read as the whole tube, "ok", and no field told a data manager that the
    frame count was never stated: summary.json's frames and run.json say so."""
    from conftest import predict

    from ctcnet.inference.run_entry import _denominator

    stated = predict(clean_run, cart)
    assert stated.frames.expected_stated is True
    info = json.loads((cart / "cartridge.json").read_text())
    for key in ("num_frames", "rows", "columns"):
        info.pop(key, None)
    (cart / "cartridge.json").write_text(json.dumps(info))
    unstated = predict(clean_run, cart, out=cart.parent / "out2")
    assert unstated.frames.expected_stated is False
    assert _denominator(unstated.to_dict())["frames_expected_stated"] is False


def test_the_frames_a_run_took_from_its_journal_are_in_its_record(clean_run, cart):
    """A night rerun after a crash read the same in samples.csv whether it computed its frames
    or took them from the journal: run.json's entry and the table say how many it took."""
    import csv
    import io

    from conftest import predict

    from ctcnet.inference.run_entry import _denominator
    from ctcnet.inference.run_table import samples_csv

    first = _denominator(predict(clean_run, cart).to_dict())
    again = _denominator(predict(clean_run, cart).to_dict())
    assert (first["frames_read"], first["frames_resumed"]) == (3, 0)
    assert (again["frames_read"], again["frames_resumed"]) == (3, 3)
    row = next(csv.DictReader(io.StringIO(samples_csv([{"name": "s", **again}]))))
    assert (row["frames_read"], row["frames_resumed"]) == ("3", "3")


def test_a_thumbnail_page_is_no_plane_of_the_frame(tmp_path):
    """Five channel pages and a reduced-resolution page (a scanner's thumbnail): five planes
    (it was six, refusing the cartridge as "a channel missing from panel.json?"); the frame's
    read refuses the thumbnail by name."""
    import tifffile

    from ctcnet.io.image_headers import tiff_planes

    path = tmp_path / "r00c00.tif"
    with tifffile.TiffWriter(path) as tif:
        for _ in range(5):
            tif.write(np.full((64, 64), 120, np.uint16), photometric="minisblack")
        tif.write(np.full((16, 16), 120, np.uint16), photometric="minisblack", subfiletype=1)
    assert tiff_planes(path) == 5
    from ctcnet.errors import WholeFileError  # (a whole file's: no "still being written?")

    with pytest.raises(WholeFileError, match="holds pages of 2 sizes"):
        read_tiff(path)
