"""What makes a sample's counts doubtful as a whole, beyond any one frame or event: read off the
whole sample's events once its frames are done, each a ``problems`` entry (the sample
``partial``) said on the console too, for the operator of a night's batch.

* **Crowded** (:func:`crowding_problem`): detection merges and misses cells in crowds.
* **Almost nothing detected** (:func:`sparse_problem`): an enriched sample carries hundreds to
  thousands of nucleated events (healthy donors about 4,000 DAPI+ objects a sample, 24 a frame
  of 175): one with next to none (under 2.5 events per mm^2 of frame) was not loaded, or its
  enrichment or DNA stain failed, and its zero counts are no negative.
* **An oversized review list** (:func:`review_load_problem`): a sample whose list holds a
  tenth of its events (platelet clumps, debris, a look the model was not trained on) is
  one the model reads poorly; its automatic counts are not to be reported without that list.
* **A tile counted twice** (:func:`repeated_frames_problem`): two frames holding the same
  events at the same places are one tile under two names; one written in another encoding
  (zlib, float) passes the listing's byte check and its cells were counted twice, unsaid.
* **Faint** (:func:`faint_problem`): events whose median peak stands fewer noise units above
  the background than on any scan the model was checked on (a dim stain, an old tube, a
  noisy camera): dim CTCs read as debris, unshown.
* **A frame of no cells** (:func:`empty_frames_problem`): a frame read with next to none of
  the events its cartridge's frames hold (a frame of noise, a lamp off, focus lost on it)
  had its blood counted as read, unsaid but in a log line.
* **A frame out of focus** (:func:`blurred_frames_problem`): a frame whose objects spread over
  far more area than the other frames' lost its CTCs to debris, unsaid.
* **A plane dark on a frame** (:func:`dark_planes_problem`): CK or the DNA stain lighting next
  to none of a frame's events where the other frames' light many (a lamp, a filter or an
  exposure that failed on that frame, or on every frame after it) lost their CTCs, unsaid.
"""

from __future__ import annotations

from ctcnet.detect.metadata_signs import LIT_NOISE
from ctcnet.io.plausibility import CROWDED_PER_MM2


def crowding_problem(density: float | None) -> str | None:
    """What to say of a sample crowded past what detection was checked on (None: nothing)."""
    if density is None or density <= CROWDED_PER_MM2:
        return None
    return (f"crowded: {density:,.0f} detected events per mm^2 of frame, more than the "
            f"{CROWDED_PER_MM2:,.0f} detection was checked to (in simulated crowds it misses "
            "and merges cells: leukocyte recall 0.89 at 2,500 and 0.77 at 4,100 drawn cells "
            "per mm^2): the counts may be low, and in a sample rich in CTCs high as well (a "
            "leukocyte touching a CTC can be called one: 17 of a simulated cartridge's 164 "
            "counted at 3,500 per mm^2; review the CTC calls with their neighbours)")


# Fewer detected events than this per mm^2 of frame make a sample next to empty (a CellSearch
# frame is 0.59 mm^2): healthy donors' enriched samples hold about 4,000 DAPI+ objects (24 a
# frame, 41 per mm^2; their low tail some 500, 4.9 per mm^2); cartridges simulated with no
# cells read 1-3 events in 3 frames (0.6-1.7 per mm^2); the simulated families 440-700.
# Where the frames' size is not known, one event a frame.
SPARSE_PER_MM2 = 2.5
SPARSE_EVENTS_PER_FRAME = 1.0


def sparse_problem(events: int, frames: int, density: float | None = None) -> str | None:
    """What to say of a sample with next to no detected event (``density``: its events per
    mm^2 of frame, :func:`events_per_mm2`, where known; None: nothing, or no frame read: a
    failed sample says so itself)."""
    if frames <= 0:
        return None
    sparse = density < SPARSE_PER_MM2 if density is not None else \
        events < SPARSE_EVENTS_PER_FRAME * frames
    if not sparse:
        return None
    return (f"almost nothing detected: {events} event(s) in {frames} frame(s) read, where an "
            "enriched sample carries hundreds to thousands of nucleated cells: was the "
            "cartridge loaded, did the enrichment or the DNA stain fail? Its zero counts are "
            "no negative")


# The share of a sample's events on its review list over which the sample is a problem: the
# 20 counting cartridges show 0.44 %, dense ones 2.4 %, CTC-rich band-fitting ones 5 %, a
# leukaemia-like crowd 1.3-1.9 %; 250 platelet clumps a frame 22.5 % (8 % with CD61 alone).
REVIEW_LOAD_SHARE = 0.10
REVIEW_LOAD_MIN_EVENTS = 50  # a handful of events on a tiny scan is no load


def review_load_problem(review_list: dict | None, events: int) -> str | None:
    """What to say of a sample whose review list holds ``REVIEW_LOAD_SHARE`` of its events or
    more (None: nothing)."""
    listed = (review_list or {}).get("events") or 0
    if not events or listed < REVIEW_LOAD_MIN_EVENTS or listed < REVIEW_LOAD_SHARE * events:
        return None
    return (f"review list of {listed} events, {listed / events:.0%} of the sample's (a typical "
            "sample's is under 1 %): platelet clumps, debris, a look the model was not "
            "trained on, or classes it cannot tell apart? The model reads this sample "
            "poorly: the automatic counts may be far off; review the list, or check the "
            "sample")


# The median detected event's peak (the detection image's signal-to-noise, ``peak_snr``) under
# which a sample is fainter than any the models were checked on: 23.5-220 over the 20 counting
# and 20 dense simulated cartridges (every look the simulator draws, intensity down to a third).
# A simulated cartridge of dim CK, defocus and twice the noise read 25.0 and counted 24 of its
# 27 CTCs; with camera noise added 19.6 (19 counted) and 11.9 (12 counted, 11 CTCs called
# debris and not shown), each "ok".
FAINT_PEAK_SNR = 20.0
FAINT_MIN_EVENTS = 50  # a median of a few events says little


def faint_problem(peak_snr) -> str | None:
    """What to say of a sample whose events' median peak (``peak_snr``, one per event) is
    under ``FAINT_PEAK_SNR`` noise units (None: nothing, or too few events to say)."""
    import numpy as np

    values = np.asarray(peak_snr, np.float64)
    values = values[np.isfinite(values)]
    if len(values) < FAINT_MIN_EVENTS:
        return None
    median = float(np.median(values))
    if median >= FAINT_PEAK_SNR:
        return None
    return (f"faint: the events' median peak stands {median:.1f} times the frames' noise above "
            f"their background, under the {FAINT_PEAK_SNR:g} of the faintest scans the model "
            "was checked on (a dim stain, an old tube, a short exposure, a noisy camera?): dim "
            "CTCs read as debris and may be neither counted nor shown, so the counts may be "
            "low; check the stain and the exposure and scan again if the tube allows, else "
            "read its counts as a lower bound")


# A frame holding under this share of its cartridge's median frame's events is said (a
# warning, not a problem: real scans' spread between frames is not measured here), on a
# cartridge of at least SPARSE_FRAMES_MIN frames whose median frame holds at least
# SPARSE_FRAMES_MIN_EVENTS: simulated frames hold at least 0.82 of their cartridge's median
# (the 20 full-size counting cartridges); half a frame blanked by a bubble about 0.5.
SPARSE_FRAME_SHARE = 0.5
SPARSE_FRAMES_MIN = 10
SPARSE_FRAMES_MIN_EVENTS = 20


def sparse_frames(events_by_frame: dict[str, int]) -> str | None:
    """What to say of the frames holding far fewer events than the cartridge's others (None:
    nothing, or too few frames or events to say)."""
    import numpy as np

    if len(events_by_frame) < SPARSE_FRAMES_MIN:
        return None
    median = float(np.median(list(events_by_frame.values())))
    if median < SPARSE_FRAMES_MIN_EVENTS:
        return None
    # (those under a tenth of the upper quartile are a problem of the sample, said by
    # empty_frames_problem)
    upper = float(np.percentile(list(events_by_frame.values()), REFERENCE_PERCENTILE))
    low = sorted(f for f, n in events_by_frame.items()
                 if EMPTY_FRAME_SHARE * upper <= n < SPARSE_FRAME_SHARE * median)
    if not low:
        return None
    return (f"{len(low)} frame(s) hold under half the events of the cartridge's median frame "
            f"({median:.0f}): {', '.join(low[:5])}{', ...' if len(low) > 5 else ''} (a bubble, "
            "a blank or blurred area?): their blood is counted as read; check them "
            "(summary.json events_by_frame)")


# A frame with fewer events than this is not compared (two nearly empty frames may agree).
REPEATED_MIN_EVENTS = 3


def repeated_frames_problem(events) -> str | None:
    """What to say of frames whose events are another frame's exactly (each event's place to
    the subpixel, and what of its reading the table holds: the network's confidence, its
    peak): the same pixels under two names, whose cells are counted twice (None: no such
    frames). Two tiles of a scan never agree so on three events."""
    import pandas as pd

    columns = [c for c in ("x", "y", "area_px", "confidence", "peak_snr") if c in events]
    if len(events) < 2 * REPEATED_MIN_EVENTS or not {"frame_id", "x", "y"} <= set(events):
        return None
    sizes = events.groupby("frame_id", sort=False).size()
    kept = events[events["frame_id"].isin(sizes.index[sizes >= REPEATED_MIN_EVENTS])]
    # One digest a frame, of its events in their order (the events of one tile come in one).
    digests = pd.util.hash_pandas_object(kept[columns], index=False).groupby(
        kept["frame_id"].to_numpy(), sort=False).agg(lambda h: hash(tuple(h)))
    twins = digests[digests.duplicated(keep=False)]
    if twins.empty:
        return None
    pairs = [", ".join(sorted(map(str, group.index))) for _, group in twins.groupby(twins)]
    return (f"frames holding the same events at the same places: {'; '.join(pairs[:3])}"
            f"{'; ...' if len(pairs) > 3 else ''} (one tile under two names, one of them "
            "written in another encoding?): its cells are counted under each name; remove the "
            "copy and run again")


# A frame holding under this share of its cartridge's frames' upper quartile of events (20 or
# more) holds next to no cells: no real frame of blood read does (simulated frames hold 0.74
# of the upper quartile or more; half a frame under a bubble about 0.5, said by
# sparse_frames), but a frame of noise, a lamp off or a stage that lost the chamber does (0 of
# 304). Its blood counted as read makes every rate too low. The upper quartile, not the
# median: a chamber or focus lost mid-scan spoils every frame after it, and with half the
# frames empty the median was one of them (2 of 3 frames empty read ok, 1 of 3 partial).
EMPTY_FRAME_SHARE = 0.1
# The frames' reference for a share lit or events held: their upper quartile (see above).
REFERENCE_PERCENTILE = 75


def empty_frames_problem(events_by_frame: dict[str, int]) -> str | None:
    """What to say of the frames read with next to none of the events the cartridge's frames
    hold (None: none, or too few frames or events to say)."""
    import numpy as np

    if len(events_by_frame) < 2:
        return None
    upper = float(np.percentile(list(events_by_frame.values()), REFERENCE_PERCENTILE))
    if upper < SPARSE_FRAMES_MIN_EVENTS:
        return None
    empty = sorted(f for f, n in events_by_frame.items() if n < EMPTY_FRAME_SHARE * upper)
    if not empty:
        return None
    named = ", ".join(f"{f} ({events_by_frame[f]})" for f in empty[:5])
    return (f"{len(empty)} of {len(events_by_frame)} frames read hold next to no events "
            f"(under a tenth of the frames' upper quartile, {upper:.0f}): {named}"
            f"{', ...' if len(empty) > 5 else ''} (a frame of noise, a lamp off, focus or the "
            "chamber lost?): their blood is counted as read, so the rates are too low if they "
            "held cells; check them (summary.json events_by_frame)")


# A frame whose events' median area is this many times the 10th percentile of the frames'
# medians or more is out of focus: blur spreads every object over its threshold (a frame
# blurred at 4 px read 2.5x, its CTCs lost to debris). A low percentile, not the median: with
# half the frames blurred the median lies between, and with two of three blurred so did the
# lower quartile. On simulated cartridges a frame's median area lay within 1.26x of the 10th
# percentile (frames of 80 events; 1.32x of the least); a frame dimmed at its corners 1.5x.
BLURRED_AREA_RATIO = 1.8
BLURRED_REFERENCE_PERCENTILE = 10
# A frame's median of fewer events says too little: frames of 20-30 events drawn alike read
# up to 2.1x by chance (the worst of 300 cartridges of 175 frames), of 80 events 1.5x.
BLURRED_MIN_EVENTS = 80


def blurred_frames_problem(events) -> str | None:
    """What to say of the frames whose events spread over far more area than the other
    frames' (None: none, or too few frames of enough events to compare)."""
    import numpy as np

    if not len(events) or not {"frame_id", "area_um2"} <= set(events):
        return None
    by_frame = events.groupby("frame_id", sort=True)["area_um2"].agg(["median", "size"])
    by_frame = by_frame[by_frame["size"] >= BLURRED_MIN_EVENTS]
    if len(by_frame) < 2:
        return None
    sharp = float(np.percentile(by_frame["median"], BLURRED_REFERENCE_PERCENTILE))
    ratio = by_frame["median"] / max(sharp, 1e-9)
    blurred = ratio[ratio >= BLURRED_AREA_RATIO]
    if blurred.empty:
        return None
    named = ", ".join(f"{f} ({r:.1f}x)" for f, r in list(blurred.items())[:5])
    return (f"{len(blurred)} frame(s) hold objects spread over far more area than the other "
            f"frames' (their median event area against the frames' 10th percentile, "
            f"{sharp:.0f} um^2): {named}{', ...' if len(blurred) > 5 else ''}: out of "
            "focus? Blur spreads a CTC's CK and nucleus into debris and loses it; check them, "
            "and rescan them if so")


# A plane is lit on an event past LIT_NOISE noise units (the guard's CK peak; the DNA stain's
# peak inside the CK area, read on the events with one), as the metadata signs read it.
# A frame is judged where the frames' upper quartile of shares of lit events is this share at
# least and would light this many of its events, and said dark where it lights a twentieth of
# that or less: a plane dark on one frame of a simulated cartridge lit 0 of 250-290 events
# against 57-78 % on the others. The share's floor and the twentieth, not a Poisson bound
# alone: where few events show CK (a few per cent on real blood, CTCs and CK-positive
# debris), their share swings between frames far past chance, and frames drawn with a share
# spread 50 % between them (5 % lit on average, 600 events) read dark at a fifth on 20 of 100
# cartridges of 6 frames. The upper quartile: a lamp failed mid-scan darkens every frame after
# it, and with most frames dark the median share was theirs. CK's share on real scans is not
# measured here: where it is under the floor the frames are not judged.
DARK_MIN_EXPECTED = 20
DARK_MIN_SHARE = 0.10
DARK_SHARE = 0.05
# ...and only where the frames not dark light shares alike: their 10th percentile at least this
# share of the upper quartile (simulated frames: 0.77 or more; a share drawn with a spread of
# 50 % between frames, about 0.35, where a frame of next to none is chance, not a lamp).
DARK_SPREAD = 0.5


def dark_planes_problem(events) -> str | None:
    """What to say of the frames whose CK, or whose DNA stain inside the CK areas, lights next
    to none of the events the other frames' light (None: none, or too few frames or lit
    events to judge)."""
    import numpy as np

    said = []
    for plane, lit, read in _lit_events(events):
        by_frame = lit.groupby(events["frame_id"][read], sort=True).agg(["sum", "size"])
        if len(by_frame) < 2:
            continue
        share = float(np.percentile(by_frame["sum"] / by_frame["size"],
                                    REFERENCE_PERCENTILE))
        if share < DARK_MIN_SHARE:
            continue
        expected = share * by_frame["size"]
        judged = expected >= DARK_MIN_EXPECTED
        is_dark = judged & (by_frame["sum"] <= DARK_SHARE * expected)
        dark = by_frame[is_dark]
        rest = (by_frame["sum"] / by_frame["size"] / share)[judged & ~is_dark]
        if dark.empty or not len(rest) or np.percentile(rest, 10) < DARK_SPREAD:
            continue  # (the other frames' shares too spread to tell a dark one from chance)
        named = ", ".join(f"{f} ({int(n)} of {int(size)})"
                          for f, (n, size) in list(dark.iterrows())[:5])
        said.append(f"{plane} lights next to none of the events on {len(dark)} frame(s) where "
                    f"the frames' upper quartile lights {share:.0%}: {named}"
                    f"{', ...' if len(dark) > 5 else ''}")
    if not said:
        return None
    return ("; ".join(said) + " (a lamp, filter or exposure that failed on those frames?): "
            "their CTCs are lost unsaid; check those frames' planes, and rescan them if so")


def _lit_events(events):
    """(plane's name, per event read whether it is lit, which events are read) of CK (every
    event) and of the DNA stain (the events with a CK area: what of DNA the table keeps)."""
    import numpy as np

    if not len(events) or not {"frame_id", "ck_peak"} <= set(events):
        return
    yield "CK", events["ck_peak"] > LIT_NOISE, np.ones(len(events), bool)
    if {"ck_area_um2", "dna_in_ck"} <= set(events):
        with_area = (events["ck_area_um2"] > 0).to_numpy()
        yield "the DNA stain (inside CK)", \
            events["dna_in_ck"][with_area] > LIT_NOISE, with_area
