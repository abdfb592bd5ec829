"""What a cartridge's frames must be for a count to stand on them, checked where they are listed
and where they are read.

Listed (:func:`~ctcnet.io.frame_copies.mark_copies`, :func:`mark_odd_sizes`): a tile written
twice under two names, and a frame of another size than the cartridge's others (a frame of
another scan, a cut or damaged export), are kept in the frame list with the reason, so the run
skips them and their blood is not counted as read. Read (:func:`check_frame_values`,
:func:`saturation_note`, :func:`unfilled_note`): pixels that the panel does not describe are
refused (the frame skipped); a frame largely at the top of its range (saturated), or an older
file with whole rows of 0 (a copy cut short, a hole in it), is read, with a note that the run
records as a problem.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import replace

import numpy as np

from ctcnet.errors import InputError, WholeFileError
from ctcnet.io.images import CELLSEARCH_OFFSET, PSEUDO_12BIT_MAX
from ctcnet.io.sources import FrameRef, get_source

log = logging.getLogger(__name__)

# A frame's brightest pixel under this share of its channels' range, in fractions: rescaled.
SCALED_SHARE = 0.01
# Fractions in a range stated this narrow cannot be a scanner's counts (a frame converted to
# floating point, 0-1 or 0-100, with its range stated to match): every noise floor ctcnet
# reads counts with (detection's quantisation step, the crops' normalisation) is set in
# counts, so such a frame's noise sat under them and its cells with it. A 12-bit scan's
# counts as 0-1 fractions read no event at all, as 0-100 a tenth fewer events and 15 of 20
# CTCs counted, without a word; a tenth of its counts, in floating point, read as the counts.
FRACTION_SPAN = 255.0
# What to do with one plane stored x16 beside others of counts, said wherever it is found.
X16_ADVICE = ("divide it by 16 before ctcnet reads it (no range in panel.json reads it right: "
              "the marker guard weighs one channel's counts against another's)")
# Frames of one scan differ by at most this many pixels a side (a stitched scene's tiles differ
# by one where its size does not divide evenly).
SIZE_SLACK_PX = 1
# Rows at the end of a channel that are exactly 0 where the rest of its plane never is (a
# camera's offset keeps a scan's counts above 0), in a file written in the last minutes: a
# file written to its full size first and filled after (a Windows or SMB copy, a scanner that
# preallocates), read before it was filled; it read as an 'ok' sample with 23 CTCs of 28. This
# many whole rows make such a block; the rest of the plane may hold at most ZERO_ELSEWHERE of
# its pixels at 0 (an 8-bit export's black background holds many: it is not refused). An
# older frame file's are read and said (:func:`unfilled_note`: a copy that broke off after
# writing the file's full size); a container's tile may end in its stitched scene's padding.
UNFILLED_ROWS = 2
ZERO_ELSEWHERE = 0.001
# A channel with more of its pixels than this at the top of its range is saturated: a bright CTC
# saturated in CK covers a few hundred pixels of a million; a twentieth of the frame is an
# overexposure or glare, under which cells cannot be told apart (wbc count 73 read as 45).
SATURATED_SHARE = 0.05


def skipped_entry(frame: FrameRef, reason: str, skipped: list[dict]) -> dict:
    """The ``skipped_frames`` entry of ``frame``, skipped for ``reason``: a copy of a frame
    skipped before it for a reason of its own (``skipped``) is skipped for that reason, said
    as such, not as a tile written twice: frames left blank hold the same bytes alike, and
    the first was never counted."""
    first = next((s for s in skipped if frame.copy_of and s["frame"] == frame.copy_of), None)
    if first is not None:
        where = frame.files[0] if frame.files else frame.frame_id
        reason = f"{where}: the same bytes as frame {frame.copy_of}, itself skipped: " \
                 f"{first['reason']}"
    return {"frame": frame.frame_id, "reason": reason}


def frame_shape(frame: FrameRef) -> tuple[int, int] | None:
    """A frame's (height, width) from its file's header or its container's metadata, None
    where they cannot be read (the frame's read says why)."""
    try:
        return get_source(frame.source_name).shape(frame)
    except (InputError, OSError, ValueError):
        return None


def mark_odd_sizes(frames: list[FrameRef], stated: tuple[int, int] | None = None
                   ) -> tuple[list[FrameRef], tuple[int, int] | None]:
    """The frames with those of another size than the cartridge's (the size most of its
    frames have; ``stated``, cartridge.json's, where two sizes are as common) marked to be
    skipped with the reason, and that size. A camera takes frames of one size: a 700 x 600
    frame among 400 x 500 ones is another scan's, a 40 x 40 one a cut or damaged export, and
    counting either as a frame's blood would misstate every per-7.5 mL figure."""
    shapes = {f.frame_id: frame_shape(f) for f in frames if f.problem is None}
    counts = Counter(s for s in shapes.values() if s is not None)
    if len(counts) < 2:
        return frames, next(iter(counts), None)
    top = max(counts.values())
    common = [s for s, n in counts.items() if n == top]  # in scan order of first appearance
    reference = stated if stated in common else common[0]
    out = []
    for f in frames:
        shape = shapes.get(f.frame_id)
        if shape is not None and max(abs(a - b) for a, b in zip(shape, reference)) > \
                SIZE_SLACK_PX:
            f = replace(f, problem=f"frame is {shape[0]} x {shape[1]} px, the cartridge's "
                                   f"frames {reference[0]} x {reference[1]} px: a frame of "
                                   "another scan, or a cut one? not read, its blood not "
                                   "counted")
        out.append(f)
    return out, reference


def check_frame_values(frame: np.ndarray, channels, path, fresh: bool = False) -> None:
    """Refuse a frame (C, H, W) that its panel's ``channels`` do not describe: a channel with
    one value throughout (all zero: a dead or unwritten channel; a CD45 that shows nothing
    makes every leukocyte a CTC candidate), values above the channel's stated range (65535
    in a 12-bit panel: the file is not what panel.json says, and the guard reads the range's
    top as the camera's saturation), or fractions far below it (a frame scaled to 0-1: its
    cells read as faint specks, called debris, and the count would be silently zero); and a
    ``fresh`` frame (a file written lately: :func:`ctcnet.core.paths.written_lately`) whose
    last rows of a channel are unfilled (:func:`_refuse_unfilled_rows`)."""
    flat = frame.reshape(frame.shape[0], -1)
    high, low = flat.max(axis=1), flat.min(axis=1)
    # One value throughout at a channel's top is light that saturated it (a lamp left at
    # full, a shutter open), not a frame left blank: each sends the user elsewhere.
    tops = np.array([c.value_range[1] for c in channels], dtype=np.float64)
    if (high == low).all():
        raise InputError("empty frame: every pixel has the same value " + (
            f"({float(high[0]):g}, " + ("the top of the channels' range" if (high == tops).all()
                                        else "past the top of the channels' range") +
            ": saturated throughout, overexposed or a shutter or lamp fault)"
            if (high >= tops).all() else
            "(not exposed, or written blank)") + ": export it again from the scanner", path)
    for k, (channel, top, bottom) in enumerate(zip(channels, high, low)):
        if top == bottom:
            raise InputError(f"channel {channel.name} is empty (every pixel {float(top):g}): "
                             + ("saturated throughout, at the top of its range (overexposed)"
                                if top >= tops[k] else
                                "not exposed (lamp, filter) or not written")
                             + "; export the frame again from the scanner", path)
        if fresh and bottom == 0:  # only then unfilled (a scan's offset keeps it above 0)
            _refuse_unfilled_rows(frame[k], channel.name, path)
    # Every channel over its range named at once: a person fixing panel.json one channel a
    # run took a run per channel.
    over = [(k, channel, top) for k, (channel, top) in enumerate(zip(channels, high))
            if top > channel.value_range[1]]
    if over:
        k, channel, top = over[0]
        lo, hi = channel.value_range
        named = ", ".join(f"{c.name} up to {float(t):g}" for _, c, t in over)
        if all(t <= c.value_range[1] + 1 for _, c, t in over):  # 0-4096 for 0-4095
            remedy = (f": up to one count past the top, as frames rescaled to 0-{hi + 1:g} "
                      f"instead of 0-{hi:g} are, or counts in floating point a flat-field "
                      f"correction moved; clip them at {hi:g}, or state value_range "
                      f"[{lo:g}, {hi + 1:g}] in panel.json")
        else:
            x16 = all(t <= 65535 and not np.any(np.mod(flat[j], 16)) for j, _, t in over)
            # The narrowest camera range that holds every value: a 14-bit camera's counts
            # (to 16383) were pointed at 16 bits, which reads its saturation too late.
            bits = next((b for b in (14, 16) if max(t for _, _, t in over) <= 2 ** b - 1
                         and 2 ** b - 1 > hi and not x16), 16)
            # Those channels alone x16, the others not: no range reads them right (the
            # marker guard weighs one channel's counts against another's).
            alone = x16 and any(np.any(np.mod(flat[j], 16)) for j in range(len(flat))
                                if j not in {i for i, _, _ in over})
            remedy = ((": every value of it is a multiple of 16, the other channels' not: it "
                       f"alone is stored x16; {X16_ADVICE}") if alone else
                      (": state the scan's range in panel.json "
                       f'("bit_depth": {bits} for a {bits}-bit camera, [0, {2 ** bits - 1}] '
                       "for every channel)"
                       + ("; every value is a multiple of 16, as a 12-bit camera's counts "
                          "stored x16 (to 65520) are" if x16 else
                          ", or the frame is damaged" + _offset_said(flat[k], hi))))
        raise WholeFileError(f"channel{'s' if len(over) > 1 else ''} {named}: out of the panel's "
                         f"value_range [{lo:g}, {hi:g}] (0-4095, a 12-bit scan's, unless "
                         "panel.json states one; an OME file's SignificantBits, where it "
                         f"records them){remedy}", path)
    _refuse_one_plane_x16(flat, high, channels, path)
    rescaled = rescaled_counts(flat, channels, float(high.max()))
    if rescaled is not None:
        brightest, span = rescaled
        if span < FRACTION_SPAN:
            raise WholeFileError(f"pixel values hold fractions of a value_range of {span:g} (the "
                             "frame converted to floating point, e.g. 0-1): ctcnet reads the "
                             "scanner's counts, whose noise its thresholds are set in, and "
                             "would find no cells in such a frame; convert the frames back to "
                             "counts (x65535 for a 16-bit scan's fractions, x4095 for a "
                             "12-bit's) and state their range in panel.json", path)
        raise WholeFileError(f"pixel values reach only {brightest:.3g}, with fractions, against "
                         f"the panel's value_range of {span:g} counts: the frame was rescaled "
                         "(e.g. to 0-1); ctcnet reads the scanner's raw counts", path)
    # One channel so rescaled beside channels of counts (a plane converted to 0-1 alone): the
    # frame's brightest pixel is another channel's, and CK as fractions lost every CTC of a
    # cartridge, the sample ok and nothing said. Only fractions of 1 at most: a dim channel of
    # counts in floating point (a flat-field correction's) can peak at a few dozen.
    alone = [(c, float(top)) for k, (c, top) in enumerate(zip(channels, high))
             if top <= 1.0 and rescaled_counts(flat[k], [c], float(top)) is not None]
    if alone:
        named = ", ".join(f"{c.name} up to {top:.3g}" for c, top in alone)
        raise WholeFileError(f"channel{'s' if len(alone) > 1 else ''} {named}, with fractions, "
                             "where the other channels hold counts: rescaled alone (e.g. to "
                             "0-1) against the panel's value_range of "
                             f"{alone[0][0].value_range[1]:g} counts; convert "
                             f"{'them' if len(alone) > 1 else 'it'} back to the scanner's "
                             "counts (x4095 for a 12-bit scan's fractions, x65535 for a "
                             "16-bit's)", path)


def _refuse_one_plane_x16(flat: np.ndarray, high: np.ndarray, channels, path) -> None:
    """Refuse planes stored x16 (every value a multiple of 16, past 12 bits) beside planes of
    12-bit counts (none past 4095, not all multiples of 16), under a range stated to hold
    them: the guard weighs one plane's counts against another's (a CD45 plane so stored,
    stated 0-65535, counted 1 of 20 CTCs). Read only where planes lie on both sides of 4095."""
    wide = [k for k, top in enumerate(high) if top > PSEUDO_12BIT_MAX]
    # (a plane stated 0-255, a bright field's or a display's, holds no counts to weigh)
    narrow = [k for k, top in enumerate(high) if top <= PSEUDO_12BIT_MAX
              and channels[k].value_range[1] > EIGHT_BIT_TOP]
    if not wide or not narrow:
        return
    # (a sample of each first: a plane of a 16-bit camera shows a count off 16 at once)
    x16 = [k for k in wide if not np.any(np.mod(flat[k][::97], 16))
           and not np.any(np.mod(flat[k], 16))]
    if x16 and all(np.any(np.mod(flat[k], 16)) for k in narrow):
        named = ", ".join(channels[k].name for k in x16)
        raise WholeFileError(f"{named}: every value a multiple of 16, up to "
                             f"{float(high[x16[0]]):g}, where the other channels hold 12-bit "
                             f"counts: stored x16 alone; {X16_ADVICE}", path)


def unfilled_rows(plane: np.ndarray) -> int:
    """How many of a plane's (H, W) last rows are exactly 0 where its other rows (almost)
    never are (at least :data:`UNFILLED_ROWS`; 0: no such block): a file read before it was
    filled, or one whose copy broke off after its full size was written."""
    if plane[-UNFILLED_ROWS:].any():  # (the common case, at a row's cost)
        return 0
    n, _, at_end = zeroed_rows(plane)
    return n if at_end else 0


def _refuse_unfilled_rows(plane: np.ndarray, name: str, path) -> None:
    """Refuse a plane (H, W) with :func:`unfilled_rows`: a file read before it was filled."""
    n = unfilled_rows(plane)
    if n:
        raise InputError(f"channel {name}: its last {n} of {plane.shape[0]} rows are all 0 "
                         "where its other pixels never are, in a file written minutes ago: "
                         "read before it was filled (still being written or copied?); the "
                         "frame is read again once it is whole", path)


def zeroed_rows(plane: np.ndarray) -> tuple[int, int, bool]:
    """(rows, first, at the end) of a plane's (H, W) runs of at least :data:`UNFILLED_ROWS`
    whole rows exactly 0, anywhere, where its other rows (almost) never are 0: the rows in
    them, the first of them, and whether they are one run that ends the plane (a file filled
    from its start and cut short); (0, -1, False) where there is none. A run inside the plane
    is a hole: a bad block, or a transfer broken off and resumed, which a camera never
    writes."""
    # A few pixels a row first (a frame's every pixel is read only where some row's are all
    # 0): the check is made on every frame read.
    if plane.ndim != 2 or plane[:, ::max(1, plane.shape[1] // 8)].any(axis=1).all():
        return 0, -1, False
    empty = ~plane.any(axis=1)
    if not empty.any() or empty.all():
        return 0, -1, False
    edges = np.flatnonzero(np.diff(np.r_[0, empty.astype(np.int8), 0]))
    runs = [(a, b) for a, b in zip(edges[::2], edges[1::2]) if b - a >= UNFILLED_ROWS]
    if not runs:
        return 0, -1, False
    in_runs = np.zeros(len(empty), bool)
    for a, b in runs:
        in_runs[a:b] = True
    elsewhere = plane[~in_runs]
    if np.count_nonzero(elsewhere == 0) > ZERO_ELSEWHERE * elsewhere.size:
        return 0, -1, False  # zeros are part of this plane's picture (an export's background)
    return int(in_runs.sum()), int(runs[0][0]), bool(len(runs) == 1 and runs[0][1] == len(empty))


def unfilled_note(frame: np.ndarray, channels) -> str | None:
    """What to say of an older frame file's frame (C, H, W) whose channels hold
    :func:`zeroed_rows` (None: none do): a copy that broke off after writing the file's full
    size leaves such rows at its end, a bad block or a broken and resumed transfer inside it,
    and its cells there go uncounted, so the sample's count is not to be trusted without a
    look. The frame is read as it is (a camera never writes such rows; a container's tile,
    whose scene may be padded, is not judged so)."""
    rows = {c.name: z for plane, c in zip(frame, channels) if (z := zeroed_rows(plane))[0]}
    if not rows:
        return None
    most = max(n for n, _, _ in rows.values())
    if all(at_end for _, _, at_end in rows.values()):
        return (f"unfilled: its last {most} of {frame.shape[1]} rows are all 0 in "
                f"{', '.join(rows)} where the rest never is: a copy cut short (its cells there "
                "not counted, its blood counted as read) or a scene's padding; compare the file "
                "with the scanner's and run again once it is whole")
    first = min(f for _, f, _ in rows.values())
    return (f"zeroed: {most} of its {frame.shape[1]} rows, from row {first}, are all 0 in "
            f"{', '.join(rows)} where the rest never is: a hole in the file (a bad block, a "
            "copy broken off and resumed; its cells there not counted, its blood counted as "
            "read); compare the file with the scanner's and run again once it is whole")


def _offset_said(values: np.ndarray, top: float) -> str:
    """What a channel past a 12-bit range says of CellSearch's 2^15 export offset: where
    some pixels carry it, that others lie past it (the offset is taken off only where every
    pixel fits it, so a stray one leaves it on)."""
    if top > PSEUDO_12BIT_MAX:
        return ""
    flagged = (values >= CELLSEARCH_OFFSET) & (values <= CELLSEARCH_OFFSET + PSEUDO_12BIT_MAX)
    if not flagged.any():
        return ""
    stray = int(((values > PSEUDO_12BIT_MAX) & ~flagged).sum())
    return (f"; {int(flagged.sum())} pixel(s) carry CellSearch's 2^15 export offset (32768-"
            f"36863) and {stray} lie past both ranges: the offset is taken off only where "
            "every pixel fits it, so this export is damaged or not pseudo 12-bit")


def rescaled_counts(pixels: np.ndarray, channels, brightest: float | None = None
                    ) -> tuple[float, float] | None:
    """(brightest pixel, the channels' widest value range) when ``pixels`` were rescaled (e.g.
    to 0-1), None when they read as raw counts. Raw counts are whole numbers: pixels that
    hold fractions were rescaled where their brightest is a small fraction of the range, or
    the range itself is too narrow for counts (:data:`FRACTION_SPAN`: fractions with a range
    stated to match; only then is the second pass made). ``brightest``: their maximum, where
    known already."""
    span = max(hi - lo for lo, hi in (c.value_range for c in channels))
    brightest = float(pixels.max()) if brightest is None else brightest
    if (brightest < SCALED_SHARE * span or span < FRACTION_SPAN) and \
            (pixels != np.round(pixels)).any():
        return brightest, span
    return None


EIGHT_BIT_TOP = 255


def holds_eight_bit_values(values) -> bool:
    """Whole numbers, none above 255: an 8-bit frame (a display export, or a channel squeezed
    into 256 levels) whatever type it was read as. A numpy array or a torch tensor (detection
    tells a frame's kind on the GPU too, :func:`ctcnet.detect.detection.noise_floor`)."""
    return float(values.max()) <= EIGHT_BIT_TOP and bool((values == values.round()).all())


def eight_bit_note(frame: np.ndarray, brightest: list[float]) -> str | None:
    """What to say of a frame that is 8-bit (``brightest``: the channels'
    maxima, :func:`channel_maxima`; the frame itself is read only where they fit 8 bits),
    None otherwise. Such a scan is read, but 256 levels lose what a 12-bit camera keeps."""
    if max(brightest, default=np.inf) > EIGHT_BIT_TOP or not holds_eight_bit_values(frame):
        return None
    return ("it holds no value above 255: an 8-bit export (256 levels: dim cells fall "
            "between the levels and are lost or read as CK-negative: a simulated cartridge's "
            "8-bit copy, its counts / 16, had 173 of its 217 events found and 20 of its 21 "
            "CTCs counted, a measurement of that copy, not of this sample: "
            "export the scan at its camera's depth, 12 or 16 bits, where the scanner can), "
            "or a frame with nothing bright in it (an empty cartridge)")


# A frame whose background lies this many times under the counts frames' (in any channel) is
# at another scale: a 12-bit scan's 8-bit copy (counts / 16) reads its background 16 times
# lower, a display export's black point lower still. A sparse camera frame of few dim cells
# holds no value above 255 as well, its background where the others' is (a cartridge of
# 96 px frames read "frames exported at another bit depth" and was marked partial).
DEPTH_BACKGROUND_RATIO = 4.0


def frame_background(frame: np.ndarray) -> list[float]:
    """Each channel's background of a (C, H, W) frame, as :func:`at_another_depth` compares
    them: the median of every 8th pixel each way (a few thousand pixels, a millisecond)."""
    return [round(float(np.median(plane[::8, ::8])), 2) for plane in frame]


def at_another_depth(background: list | None, counts_backgrounds: list) -> bool:
    """Whether an 8-bit frame of ``background`` (:func:`frame_background`) among frames of
    counts (their backgrounds ``counts_backgrounds``) is at another scale than they are: its
    background ``DEPTH_BACKGROUND_RATIO`` times under theirs (their median) in some channel.
    Without backgrounds to compare (a journal an earlier ctcnet wrote): True, as it was
    read."""
    # (the frames of as many channels: a journal's records all are, but none is assumed)
    alike = [b for b in counts_backgrounds if len(b) == len(background or ())]
    if not background or not alike:
        return True
    typical = np.median(np.asarray(alike, np.float64), axis=0)
    own = np.asarray(background, np.float64)
    return bool(((typical + 1) >= DEPTH_BACKGROUND_RATIO * (own + 1)).any())


def check_plane_depths(planes: list[np.ndarray], names: list[str], paths: list) -> None:
    """Refuse a frame whose channel files are integers of different widths (one 8-bit file
    among 16-bit ones: a channel exported at a display's depth, its counts squeezed into 256
    levels, read without a word beside the others' counts and its frame's cells lost);
    ``paths``: each plane's file, the first narrow one's named."""
    widths = {plane.dtype.itemsize for plane in planes if plane.dtype.kind in "ui"}
    if len(widths) < 2:
        return
    narrow = [i for i, plane in enumerate(planes)
              if plane.dtype.kind in "ui" and plane.dtype.itemsize == min(widths)]
    raise InputError(f"{', '.join(names[i] for i in narrow)} stored in {8 * min(widths)} bits, "
                     f"the frame's other channels in {8 * max(widths)}: a channel exported at "
                     "another bit depth (its counts read at another scale than the others'); "
                     "export every channel at the camera's depth", paths[narrow[0]])


def eight_bit_ceiling(frame: np.ndarray) -> float:
    """The highest value ``frame`` can hold where it is an 8-bit frame (255), else infinity:
    an 8-bit frame is saturated at 255 whatever value_range panel.json states (one left at a
    12-bit scan's 4095 never said so). Told by its type, or, for the float32 a cartridge's
    frames are read as, by its values (:func:`holds_eight_bit_values`)."""
    if np.issubdtype(frame.dtype, np.integer):
        return float(np.iinfo(frame.dtype).max)
    return float(EIGHT_BIT_TOP) if holds_eight_bit_values(frame) else np.inf


# The tops of cameras' bit depths below 16 written into 16-bit files: as counts (a 12-bit
# scan's 4095), or shifted to fill the 16 bits (4095 x 16 = 65520, as many cameras store
# 12-bit data; 16383 x 4 = 65532), where the stated 0-65535 is never reached either.
CAMERA_TOPS = {4095.0: "a 12-bit camera's top", 16383.0: "a 14-bit camera's top",
               65520.0: "a 12-bit camera's top stored x16",
               65532.0: "a 14-bit camera's top stored x4"}


def channel_maxima(frame: np.ndarray) -> list[float]:
    """Each channel's brightest value in a frame (C, H, W): what :func:`saturation_note` and
    :func:`at_camera_tops` read, taken once."""
    return [float(plane.max()) if plane.size else 0.0 for plane in frame]


def clipped_tops(peaks, stated) -> np.ndarray:
    """Where each of ``peaks`` (brightest values, any shape) sits at a 12- or 14-bit camera's
    top (:data:`CAMERA_TOPS`; to resampling's rounding, for crops brought to model scale)
    under its ``stated`` top (data stated 0-65535 whose camera clips lower: its glare is
    there, not at 65535), that camera top; elsewhere the stated top."""
    peaks, stated = np.asarray(peaks, np.float64), np.asarray(stated, np.float64)
    near = np.round(peaks)
    at_camera = np.isin(near, list(CAMERA_TOPS)) & (np.abs(peaks - near) < 0.01) & \
        (near < stated)
    return np.where(at_camera, near, stated)


def camera_tops(channels, brightest: list[float]) -> dict[int, float]:
    """Channel index: the camera top its brightest pixel sits at under the channel's stated
    range (:func:`clipped_tops`), for the channels that have one."""
    stated = [channel.value_range[1] for channel in channels]
    tops = clipped_tops(brightest[:len(stated)], stated)
    return {i: float(top) for i, top in enumerate(tops) if top < stated[i]}


def at_camera_tops(panel, brightest: list[float]):
    """``panel`` with each channel a frame clips at a camera's top (:func:`camera_tops`)
    ranging to that top: where the marker guard reads the frame's pixels as saturated, as it
    reads the same counts stated at the camera's own range. ``panel`` itself where none is."""
    tops = camera_tops(panel.channels, brightest)
    if not tops:
        return panel
    return replace(panel, channels=tuple(
        replace(c, value_range=(c.value_range[0], tops[i])) if i in tops else c
        for i, c in enumerate(panel.channels)))


def saturation_note(frame: np.ndarray, channels,
                    brightest: list[float] | None = None) -> str | None:
    """What to say of a frame (C, H, W) with a channel saturated over more than
    :data:`SATURATED_SHARE` of its pixels (at the top of the channel's value_range, or at 255
    for an 8-bit frame, :func:`eight_bit_ceiling`; or at a 12- or 14-bit camera's top under a
    wider stated range, :func:`camera_tops`), None when none is. ``brightest``: the
    channels' maxima, if taken (:func:`channel_maxima`). Such a frame is read, its events
    called, but its count is not to be trusted without a look: the cells under the glare
    merge or vanish."""
    said = []
    brightest = channel_maxima(frame) if brightest is None else brightest
    # A float frame (as cartridges are read) past 8 bits is told by its maxima, without a
    # pass over its pixels.
    ceiling = np.inf if frame.dtype.kind == "f" and max(brightest, default=0.0) > \
        EIGHT_BIT_TOP else eight_bit_ceiling(frame)
    clipped = camera_tops(channels, brightest)
    for i, (plane, channel) in enumerate(zip(frame, channels)):
        top = min(channel.value_range[1], ceiling)
        share = float(np.count_nonzero(plane >= top)) / plane.size
        if share > SATURATED_SHARE:
            said.append(f"{channel.name} {share:.0%}")
            continue
        # A 12- or 14-bit camera's data in 16-bit files stated as 0-65535: clipped at its own
        # top (as counts or shifted), which the stated range never reaches (its glare would
        # pass unsaid).
        if i in clipped and clipped[i] < top:
            share = float(np.count_nonzero(plane >= clipped[i])) / plane.size
            if share > SATURATED_SHARE:
                said.append(f"{channel.name} {share:.0%} (at {clipped[i]:.0f}, "
                            f"{CAMERA_TOPS[clipped[i]]}; panel.json's value_range states "
                            f"{channel.value_range[1]:g})")
    if not said:
        return None
    return (f"saturated: {', '.join(said)} of its pixels at the top of what the camera "
            "records (overexposed, or glare?); its events are called, but cells under it "
            "merge or vanish: check the frame before trusting the count")
