"""The frames of a cartridge, made ready for the model: each frame read, its events detected and
cropped and the marker guard's call-independent measurements made (:func:`prepare_frame`), by
frame workers (threads or processes, :mod:`ctcnet.inference.frame_workers`) a few frames ahead
of the classifier, on numpy or on the model's GPU (:func:`resolve_frame_device`).

On a 2-core CPU two frame workers feed one model thread (:func:`default_workers`,
``ctcnet.inference.resources.cpu_frame_workers``): the frame work outweighs the model's, so the
second frame worker fills the model core's idle time.
With spillover compensation, :func:`measure_scan_leaks` measures CK's spillover of the scan
from a few frames first, and every frame's model crops are compensated with it.

Each frame read gets its record (its files and SHA-256, :func:`ctcnet.io.digests.frame_record`),
a note where its pixels call for a look (saturated, its last rows unfilled), CK's leak ratios
of a few events and what a few of its cells say of the metadata
(:mod:`ctcnet.detect.metadata_signs`: the planes' order, a dark plane, the planes' register,
the pixel size); they are journaled beside its part (:func:`keep_frame_record`) and end in
the run's summary (:func:`with_frame_records`).
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from ctcnet.core.ordered import ordered_map
from ctcnet.core.paths import written_lately
from ctcnet.core.said_once import SAID_ONCE, first_time
from ctcnet.detect.clipped_background import restore_clipped_background, subtracted_note
from ctcnet.detect.cropping import extract_crops
from ctcnet.detect.detection import DetectConfig, detect_events
from ctcnet.detect.metadata_signs import (
    MIN_NUCLEI,
    NUCLEUS_UM,
    frame_signs,
    metadata_problems,
)
from ctcnet.errors import InputError, WholeFileError, is_resource_error
from ctcnet.inference.guard import RULES, measure_for_guard_start
from ctcnet.inference.leak_sample import frame_leak_ratios, leak_carriers, leak_share
from ctcnet.inference.model_records import frames_made_by, same_model_file
from ctcnet.inference.options import spec_read_as
from ctcnet.inference.spillover import (
    compensate,
    leak_check,
    leak_record,
    leaks_from_ratios,
    scan_ratios,
)
from ctcnet.io.atomic import open_own
from ctcnet.io.digests import file_marks, file_stats, frame_record
from ctcnet.io.frame_checks import (
    at_another_depth,
    at_camera_tops,
    channel_maxima,
    eight_bit_note,
    frame_background,
    saturation_note,
    unfilled_note,
)
from ctcnet.io.panel import Panel
from ctcnet.io.scan import Cartridge, FrameRef, get_source
from ctcnet.io.unread_planes import read_with_unread
from ctcnet.nn.spec import ModelSpec

# Frames (spread over the cartridge) whose events measure its spillover, with compensation on:
# 12 frames hold ~3,400 events, ~1,000 of them CK+ (docs/robustness_matrix.md).
SPILLOVER_FRAMES = 12

log = logging.getLogger(__name__)


@dataclass
class FrameWork:
    """One frame after reading, detection and cropping (or the reason it was skipped)."""

    frame: FrameRef
    events: pd.DataFrame | None = None
    crops: np.ndarray | None = None        # as the scanner wrote them: the guard, the gallery
    model_crops: np.ndarray | None = None  # what the model sees, when unlike ``crops``
    error: str | None = None
    seconds: dict = field(default_factory=dict)
    measured: pd.DataFrame | None = None  # the guard's call-independent measurements
    guard_start: object | None = None     # what they started from, for the CD45 reads
    record: dict | None = None  # its files and SHA-256 as read (ctcnet.io.digests.frame_record)
    note: str | None = None     # read, but its count is not to be trusted alone (saturated,
    #                             or its last rows unfilled)
    leak_ratios: list | None = None  # CK's ratios of some CK-bright events ([ratios, sds])
    read_panel: Panel | None = None  # the panel its pixels were read at (range, camera's top)
    signs: dict | None = None  # what a few events say of the metadata (detect.metadata_signs)
    eight_bit: bool = False  # its values fit 8 bits (an export; io.frame_checks.eight_bit_note)
    background: list | None = None  # per channel (io.frame_checks.frame_background)
    subtracted: list = field(default_factory=list)  # channels whose clipped background was drawn
    # Prepared in a frame process: where its results lie in shared memory, for finishing there
    # too (ctcnet.inference.frame_workers.finished).
    shared: object | None = None


# What a frame's detection or cropping raises on pixels no check foresaw: the frame is skipped
# with the reason. Anything else (ImportError, AttributeError, TypeError, a CUDA error, memory
# running out beside other work...) is about the program or the machine, not this frame:
# skipping would drop an intact frame behind exit 0, so it stops the run (the journal keeps the
# frames done; a rerun resumes).
FRAME_DATA_ERRORS = (ValueError, ArithmeticError, IndexError)


def import_frame_modules(cartridge: Cartridge, spec: ModelSpec, device=None) -> None:
    """Import, in the calling (main) thread, every module the frame threads would otherwise
    import lazily on first use: tifffile (and its codecs), Pillow's plugins, the scipy and
    scikit-image parts of detection, and torch where the frames need it (the torch frame path
    only: crops of another pixel size are resampled in numpy).

    A first import of a heavy module from several threads at once can fail (a partially
    initialised module, an ImportError or AttributeError); in a frame thread that failure once
    became a skipped frame and the run still exited 0.
    ``tests/inference/test_frames.py`` checks that no module is first imported in a frame thread.
    """
    import tifffile  # noqa: F401 - with its codecs (imagecodecs)
    from PIL import Image
    from scipy.sparse import coo_matrix  # noqa: F401 - splitting.split_and_merge
    from scipy.sparse.csgraph import connected_components  # noqa: F401

    # scikit-image loads its submodules lazily, on first attribute access.
    from skimage.segmentation import watershed  # noqa: F401

    Image.preinit()  # the PNG and JPEG plugins, which Image.open would import on first use
    # pandas' Arrow-backed strings import parts of pyarrow when the first string index is made
    # (detection's event table).
    pd.DataFrame({"frame_id": ["r00c00"]})
    # Crops of another pixel size are resampled in numpy (detect.cropping); torch is needed
    # only for frames on the model's GPU.
    if device is not None:
        import ctcnet.detect.device  # noqa: F401 - torch: the frames on the model's GPU


def prepare_frame(frame: FrameRef, cartridge: Cartridge, spec: ModelSpec,
                  config: DetectConfig, device=None, leaks: np.ndarray | None = None,
                  guard: bool = True, alternates: bool = True) -> FrameWork:
    """Read one frame, detect its events, cut their crops and make the marker guard's
    measurements (``guard=False``: not, for a pass that only reads the crops); with
    ``alternates``, the members of merged objects whose markers read as a CTC's are events too
    (:mod:`ctcnet.inference.alternates` keeps one reading once they are called); with the scan's
    CK ``leaks``, also the compensated crops the model sees (the guard measures the crops as
    the scanner wrote them, with the allowance of ``spec``'s panel: an estimated leak cannot
    blind it).
    Errors about the frame (unreadable, odd pixels: :data:`FRAME_DATA_ERRORS`) become a skip
    reason; any other error is raised, with a note naming the frame.
    With a torch ``device`` the frame's dense work and the cropping run there
    (:mod:`ctcnet.detect.device`), else in numpy. In threads, call
    :func:`import_frame_modules` in the main thread first."""
    t0 = time.perf_counter()
    try:
        before = file_marks(frame.files)  # what the digest's files must still be once hashed
        pixels, measured_planes = read_with_unread(cartridge, frame)
    except InputError as err:  # (a file written lately may be a frame still being written)
        lately = " (written in the last minutes: if it is still being written, the next run " \
            "reads it once whole)" if written_lately(frame.files, arrived=True) and \
            not isinstance(err, WholeFileError) else ""
        return FrameWork(frame, error=f"{err}{lately}", seconds={"read": time.perf_counter() - t0})
    except (OSError, ValueError) as err:  # e.g. a file that vanished mid-run
        if is_resource_error(err):
            raise  # the machine's (too many open files, no memory): not a bad frame
        return FrameWork(frame, error=f"{frame.stem}: cannot read: {err}",
                         seconds={"read": time.perf_counter() - t0})
    brightest = channel_maxima(pixels)
    # A camera frame's file ending in rows of 0 was cut short (one written lately was refused
    # in reading, to be read once whole); a container's tile may end in its scene's padding.
    container = get_source(frame.source_name).container
    notes = (saturation_note(pixels, cartridge.panel.channels, brightest),
             None if container else unfilled_note(pixels, cartridge.panel.channels))
    note = "; ".join(n for n in notes if n) or None
    # Every frame's kept (summary.json's metadata_check counts them), said once a cartridge:
    # a warning, not a problem.
    eight_bit = eight_bit_note(pixels, brightest)
    background = frame_background(pixels)  # (numpy, as read: before any upload to a device)
    if eight_bit:  # (the first met named: a frame of a mixed export is said apart, at the end)
        _say_once(cartridge, frame, "eight_bit", eight_bit)
    t_read = time.perf_counter()
    # Its digest while its files are in the page cache: what later cuts check it against. A
    # stage of its own: on a CPU without SHA instructions SHA-256 costs about what reading the
    # frame does (a 3.6 MB frame: 16 ms against 14), several times less on one with them.
    try:
        record = frame_record(frame.files, pixels, not container, before)
    except OSError as err:  # read a moment ago, gone or changed now
        if is_resource_error(err):
            raise  # the machine's, as in reading it
        return FrameWork(frame, error=f"{frame.stem}: cannot read: {err}",
                         seconds={"read": time.perf_counter() - t0})
    t1 = time.perf_counter()
    try:
        # A background subtracted and clipped at 0 (an export so made) is drawn again, as a
        # crop folder's is: detection's noise, the models and the guard read its lower half.
        pixels, drawn = restore_clipped_background(pixels)
        subtracted = [cartridge.panel.names[c] for c in drawn]
        if subtracted:
            _say_once(cartridge, frame, "subtracted", subtracted_note(subtracted))
        detect, cut = detect_events, extract_crops
        if device is not None:
            # torch; already imported by import_frame_modules (main thread): a look-up here.
            from ctcnet.detect import device as on_device

            pixels = on_device.upload(pixels, device)
            detect, cut = on_device.detect_events, on_device.extract_crops
        events = detect(pixels, cartridge.panel, config,
                        alternates=alternates and config.offer_members,
                        measured=measured_planes, counts_checked=True)  # (by the reader)
        t2 = time.perf_counter()
        crops, padded = cut(pixels, events["x"].to_numpy(), events["y"].to_numpy(),
                            spec.crop_size, spec.pixel_size_um, cartridge.panel.pixel_size_um)
        model_crops = compensate(crops, leaks, spec.panel) if leaks is not None else None
        t3 = time.perf_counter()
        # The marker guard's measurements need no call: made here, beside the model. Pixels
        # are saturated at the scan's stated range (a 16-bit scan's 0-65535), not the
        # training data's: read at 0-4095, its bright CK and DNA left the CD45 measurement;
        # or at its camera's top where the frame clips there under that range (12-bit counts
        # stated 0-65535, clipped at 4095 or, stored x16, at 65520).
        read_as = spec_read_as(spec, at_camera_tops(cartridge.panel, brightest))
        measured, guard_start = (measure_for_guard_start(crops, read_as) if guard and len(crops)
                                 else (None, None))
        leak_ratios = frame_leak_ratios(crops, measured, read_as.panel, leak_share(cartridge))
    except InputError as err:
        return FrameWork(frame, error=f"{frame.stem}: {err}",
                         seconds={"read": t1 - t0, "detect": time.perf_counter() - t1})
    except FRAME_DATA_ERRORS as err:  # one odd frame must not end the cartridge
        # A frame readable but odd in a way no check foresaw: skip it with its reason (the
        # other frames still finish); the traceback goes to the debug log, not the screen.
        log.debug("frame %s: detection or cropping failed", frame.stem, exc_info=True)
        return FrameWork(frame, error=f"{frame.stem}: detection failed on this frame "
                                      f"({type(err).__name__}: {err})",
                         seconds={"read": t1 - t0, "detect": time.perf_counter() - t1})
    except Exception as err:
        err.add_note(f"ctcnet predict: raised while preparing frame {frame.stem} (not an error "
                     "of its data, so the run stops; rerunning resumes)")
        raise
    signs = _metadata_signs(crops, cartridge, spec, ~np.asarray(padded, bool))
    events.insert(0, "frame_id", frame.frame_id)
    events.insert(0, "col", frame.col)
    events.insert(0, "row", frame.row)
    events.insert(0, "frame", frame.index)
    events["padded"] = padded
    t4 = time.perf_counter()
    return FrameWork(frame, events, crops, seconds={"read": t_read - t0, "digest": t1 - t_read,
                                                    "detect": t2 - t1, "crop": t3 - t2,
                                                    "guard": t4 - t3},
                     model_crops=model_crops, measured=measured,
                     guard_start=guard_start, record=record, note=note,
                     leak_ratios=leak_ratios, signs=signs, eight_bit=eight_bit is not None,
                     background=background, subtracted=subtracted, read_panel=read_as.panel)


def _say_once(cartridge: Cartridge, frame: FrameRef, kind: str, text: str) -> None:
    """Warn of ``text``, of a ``kind`` every frame of a cartridge may show, once a cartridge
    (naming the first frame met): every frame's is kept in its record, not said."""
    key = (__name__, str(cartridge.root), kind)
    if first_time(*key):  # (the key travels: a frame process's record is said once too)
        log.warning("%s: frame %s (the first such read): %s", cartridge.sample_id,
                    frame.frame_id, text, extra={SAID_ONCE: key})


def _metadata_signs(crops: np.ndarray, cartridge: Cartridge, spec: ModelSpec,
                    whole: np.ndarray) -> dict | None:
    """:func:`~ctcnet.detect.metadata_signs.frame_signs` of a frame's crops (model scale and
    channel order; ``whole``: those whose window lies in the frame), or None where reading them
    failed: a check beside the counts, which must not cost the frame its events."""
    try:
        return frame_signs(crops, spec.panel, spec.pixel_size_um, len(cartridge.frames),
                           whole)
    except FRAME_DATA_ERRORS:
        log.debug("frame signs of %s not read", cartridge.sample_id, exc_info=True)
        return None


# Appended to by the finishing thread as each frame is journaled: the frames' records and notes
# outlive a killed run, so a resumed one reports the frames it does not read again.
FRAME_RECORDS = "frames_read.jsonl"


def keep_frame_record(parts: Path, work: FrameWork, made_by: str = "") -> None:
    """Add a journaled frame's record, note, leak ratios, metadata signs and what made it
    (``made_by``: :func:`made_by`) to ``parts/frames_read.jsonl``."""
    line = json.dumps({"frame": work.frame.frame_id, "record": work.record, "note": work.note,
                       "leak_ratios": work.leak_ratios, "signs": work.signs,
                       "eight_bit": work.eight_bit, "background": work.background,
                       "subtracted": work.subtracted,
                       "seconds": {k: round(v, 4) for k, v in work.seconds.items()},
                       "made_by": made_by})
    with open_own(parts / FRAME_RECORDS, "a", encoding="utf-8") as fh:
        fh.write(line + "\n")


def mended_frame_records(parts: Path) -> dict[str, dict]:
    """:func:`journaled_frames`, once a last line a killed run or a power cut tore (no newline
    at its end) is ended where it stops: the next record then starts a line of its own
    (appended onto it, it was lost with it, read as one broken line). Made as a journal is
    opened, before its run appends."""
    path = Path(parts) / FRAME_RECORDS
    if path.is_file() and path.stat().st_size:
        with open_own(path, "a+b") as fh:
            fh.seek(-1, os.SEEK_END)
            if fh.read(1) != b"\n":
                fh.write(b"\n")
    return journaled_frames(parts)


def journaled_frames(parts: Path) -> dict[str, dict]:
    """Each journaled frame's latest entry in ``parts/frames_read.jsonl``
    (:func:`keep_frame_record`), by frame id; none where there is no such file."""
    entries = {}
    try:
        lines = (Path(parts) / FRAME_RECORDS).read_text(encoding="utf-8").splitlines()
    except OSError:
        lines = []
    for line in lines:
        try:
            entry = json.loads(line)
            entries[entry["frame"]] = entry
        except (ValueError, KeyError, TypeError):  # the line a killed run cut short
            continue
    return entries


def with_frame_records(cartridge: Cartridge, parts: Path, skipped: list[dict], spec: ModelSpec,
                       this_run: str | None = None, read_now=frozenset()
                       ) -> tuple[Cartridge, dict, dict, dict, dict | None, dict | None]:
    """The records of the frames processed (this run's and a resumed one's; a frame's latest),
    the cartridge with their notes (a saturated frame) added to its problems, said once: a
    count over such a frame stands only once a person has looked; CK's leaks read from
    their kept ratios against the guard's allowance (:func:`spillover.leak_check
    <ctcnet.inference.spillover.leak_check>`; a leak beyond it is warned of and is a problem
    too); and the frames' signs of the metadata summed
    (:func:`~ctcnet.detect.metadata_signs.metadata_problems`: planes in another order, dark
    or out of register, or a pixel size the nuclei belie, are problems as well); and what
    made the frames where more than one did, or another than ``this_run``
    (:func:`frames_made_by`), and the frame stages' seconds of the frames taken from the
    journal (None: none was). A frame this run read (``read_now``) whose files have changed
    since is a problem: a rescan written over it in place was read part old, part new."""
    entries = journaled_frames(parts)
    set_aside = {s["frame"] for s in skipped}
    done = {f.frame_id: entries[f.frame_id] for f in cartridge.frames
            if f.frame_id not in set_aside and f.frame_id in entries}
    notes = [f"frame {fid}: {e['note']}" for fid, e in done.items() if e.get("note")]
    files = {f.frame_id: f.files for f in cartridge.frames}
    moved = [fid for fid, e in done.items() if fid in read_now and (e.get("record") or {})
             .get("files") is not None and file_stats(files[fid]) != e["record"]["files"]]
    if moved:
        notes.append(f"frame(s) {', '.join(moved[:5])} changed after this run read them (still "
                     "being written, or rescanned?): their calls are of what was read; run "
                     "again once the scan is complete")
    for line in notes:
        log.warning("%s: %s", cartridge.sample_id, line)
    # Each frame's share as a run of these frames from the start reads it (a frame journaled
    # when fewer had arrived read more), the crops without a ratio left out.
    kept, share = [e["leak_ratios"] for e in done.values() if e.get("leak_ratios")], \
        leak_share(cartridge)
    width = spec.panel.num_channels
    ratio, sd = (np.asarray([row for k in kept for row in k[i][:share]], np.float64)
                 .reshape(-1, width) for i in (0, 1))
    ratio, sd = (a[np.isfinite(ratio).any(axis=1)] for a in (ratio, sd))
    checked = leak_check(leaks_from_ratios(ratio, sd, spec.panel), spec.panel, RULES,
                         cartridge.sample_id, crops=len(ratio))
    # A leak past the guard's allowance makes CTCs read CD45-positive: the CTC count is not
    # to be trusted alone, as over a saturated frame.
    notes += [f"{checked['source']} leaks {checked['leaks'][name]:.0%} into {name}, past the "
              f"marker guard's {checked['allowance'][name]:.0%}: CTCs may be called another "
              "class (leak_check)" for name in checked["beyond"]]
    # The cartridge's panel: the model's channels in its order, under the names its panel.json
    # gives them (Hoechst for DAPI), at the scan's pixel size.
    said, signs = metadata_problems([e.get("signs") for e in done.values()], cartridge.panel,
                                    cartridge.panel.pixel_size_um)
    said = [f"{line} (metadata_check)" for line in said]
    if unjudged := _unjudged_scale(signs):  # too few nuclei to judge, yet out of the band:
        # a problem from 3 on (a sparse scan stated at 0.1 for 0.64 counted 0 of 6 CTCs, ok)
        if signs.get("nuclei_measured", 0) >= 3:
            said.append(f"{unjudged} (metadata_check)")
        else:
            log.warning("%s: %s", cartridge.sample_id, unjudged)
    # An 8-bit export is read, with a warning; kept here, so a report pooling samples sees it.
    signs["eight_bit_frames"] = sum(bool(e.get("eight_bit")) for e in done.values())
    signs["subtracted_frames"] = sum(bool(e.get("subtracted")) for e in done.values())
    # Some frames a display's among counts: an export mixed from two settings. (Only those
    # with cells lit in them and a background under the others': a camera's frame of nothing
    # but background, or of a few dim cells, may read under 256.)
    counts_backgrounds = [e["background"] for e in done.values()
                          if not e.get("eight_bit") and e.get("background")]
    eight = [fid for fid, e in done.items() if e.get("eight_bit")
             and sum((e.get("signs") or {}).get("lit", ())) > 0
             and at_another_depth(e.get("background"), counts_backgrounds)]
    if eight and signs["eight_bit_frames"] < len(done):
        said.append(f"frame(s) {', '.join(eight[:5])}{' ...' * (len(eight) > 5)} hold no value "
                    f"above 255 where the other {len(done) - signs['eight_bit_frames']} hold "
                    "counts: frames exported at another bit depth (256 levels lose dim cells); "
                    "export them at the camera's depth (metadata_check)")
    for line in said:
        log.warning("%s: %s", cartridge.sample_id, line)
    notes += said
    new = [n for n in notes if n not in cartridge.problems]
    if new:
        cartridge = replace(cartridge, problems=[*cartridge.problems, *new])
    made = frames_made_by(done.values(), this_run)
    if made and this_run and not any(same_model_file(m, this_run) for m in made):
        # A rerun on the model's other file that made none of its calls (another ctcnet's
        # frames of the same file, after an upgrade, are a nightly rerun's: not said).
        log.warning("%s: every call is from the earlier run's journal (%s), none made by this "
                    "run's model (%s): --overwrite makes them again with it",
                    cartridge.sample_id, "; ".join(made), this_run)
    # The frame stages' seconds of the frames taken from the journal, as their run measured
    # them: this run's timings hold none of that work.
    journal = [e.get("seconds") or {} for fid, e in done.items() if fid not in read_now]
    journal_s = {k: round(sum(t.get(k, 0.0) for t in journal), 4)
                 for k in dict.fromkeys(k for t in journal for k in t)} or None
    return cartridge, {fid: e["record"] for fid, e in done.items() if e.get("record")}, \
        checked, signs, made, journal_s


def _unjudged_scale(signs: dict) -> str | None:
    """What to say where too few nuclei were measured to judge the stated pixel size (a
    sparse scan) and they read out of a nucleus's band all the same (a 40x scan stated at
    4x its pixel size read 23 um on 17 nuclei, said nowhere)."""
    median, measured = signs.get("nucleus_median_um"), signs.get("nuclei_measured", 0)
    if signs.get("pixel_size_judged") or median is None or not measured or \
            NUCLEUS_UM[0] <= median <= NUCLEUS_UM[1]:
        return None
    return (f"the pixel size was not judged: {measured} nuclei measured ({MIN_NUCLEI} needed), "
            f"yet they read {median:.1f} um across, where a scan's read "
            f"{NUCLEUS_UM[0]:g}-{NUCLEUS_UM[1]:g}: is panel.json's pixel_size_um right?")


def measure_scan_leaks(cartridge: Cartridge, spec: ModelSpec, config: DetectConfig,
                       device=None, workers: int = 0) -> tuple[np.ndarray, dict]:
    """CK's spillover of a scan, from the events of up to ``SPILLOVER_FRAMES`` frames spread
    evenly over it (the same frames on every run of the cartridge, so a resumed run takes off
    the same leaks), prepared by ``workers`` frame threads (0: inline). Returns the (C,) leaks
    in model channel order and their record."""
    t0 = time.perf_counter()
    frames = cartridge.frames
    picks = np.unique(np.linspace(0, len(frames) - 1, min(len(frames), SPILLOVER_FRAMES))
                      .round().astype(int)) if frames else []

    def frame_ratios(i: int) -> tuple[np.ndarray, np.ndarray, int] | None:
        # The ratios only, made in the frame thread: a frame's crops (~40 MB) are let go there.
        # Its guard measurements choose the crops read, as the leak check's are chosen.
        work = prepare_frame(frames[i], cartridge, spec, config, device, guard=True,
                             alternates=False)
        if work.error is not None or not len(work.crops):
            return None
        carriers = work.crops[leak_carriers(work.measured)]
        # Read at the panel the frame's guard read it at: its stated range and its camera's top
        # (at the model's 0-4095, every CK-bright pixel of a 16-bit scan read as clipped, and
        # --compensate measured no leak).
        return (*scan_ratios(carriers, work.read_panel, central=True), len(work.crops))

    # The model waits for these leaks, so this pass has the frame threads to itself.
    measured = [r for r in ordered_map(frame_ratios, list(picks), workers, workers,
                                         "ctcnet-frame")
                if r is not None]
    width = spec.panel.num_channels
    ratio = np.concatenate([r[0] for r in measured]) if measured else np.zeros((0, width))
    sd = np.concatenate([r[1] for r in measured]) if measured else np.zeros((0, width))
    leaks = leaks_from_ratios(ratio, sd, spec.panel)
    record = leak_record(leaks, spec.panel, frames=len(picks),
                         events=sum(r[2] for r in measured), ck_events=int(len(ratio)),
                         seconds=round(time.perf_counter() - t0, 3))
    log.info("%s: CK spillover %s (from %d CK+ events of %d frames)", cartridge.sample_id,
             record["leaks"], len(ratio), len(picks))
    return leaks, record
