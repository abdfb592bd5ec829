"""The epithelial marker's spillover, measured on a scan's own events (numpy only).

Why: a dye leaks into other channels at a share the instrument sets (filters, detector gains),
not the cell. One crop cannot tell a CTC whose CK leaks 30 % into CD45 from a CK+CD45+
leukocyte: the same pattern in both channels, only the ratio differs, and the ratio depends on
the scanner. That is why the robustness matrix's stain cells fail: with the CK channel at 0.25x
(or CD45 at 8x) the unchanged leak reads as CD45 and the shipped network calls such CTCs
leukocytes (docs/robustness_matrix.md). A scan can tell: every CK+ event without a marker of
its own in a channel (tdEVs, CTCs: no CD45, CD61 or CD66b) shows the same ratio there when it
is a leak, while co-expression lies above it and varies from cell to cell. Flow cytometry
compensates the same way, with single-stained controls instead of the sample.

How (:func:`estimate_leaks`):

* per crop, the least-squares ratio of each target channel's signal to CK's over the CK-bright
  pixels (3x3 mean above ``LEVEL`` noise units of that mean), with its uncertainty; kept where
  a copy of CK explains the target there (residual at the noise level, or R^2 above ``MIN_R2``);
* per scan, the leak is the lowest mode of those ratios' density (each a Gaussian of its
  uncertainty) that holds at least ``MIN_WEIGHT`` crops' worth: the floor every CK+ event
  shows. No such mode, or one above ``FLOOR_CHECK`` with positive ratios below half of it
  numbering 0.4 of its weight (then the mode is co-expression and the leak is spread out below
  it): zero, the crop left as the scanner wrote it. Taking too much off CD45 would make
  CK+CD45+ leukocytes look like CTCs; so the marker guard keeps measuring the crops as the
  scanner wrote them, with its own allowance, and only the network sees them compensated: a
  wrong estimate cannot blind it. Only a leak measured on CTCs a person labelled raises that
  allowance (:func:`ctcnet.inference.labelled_leaks.labelled_leaks`).

Targets are the leukocyte, platelet and neutrophil markers, which tdEVs and CTCs lack; not the
nucleus, which sits under every CTC's cytoplasm (DAPI over CK is biology in the very events
that would show the leak). :func:`compensate` takes ``leak x CK signal`` off each target.

Every predict run also checks the leak it measures against the marker guard's allowance
(:func:`leak_check`: past it, CTCs read as CD45-positive), and a lab's labelled CTCs give its
instrument's leak directly (:mod:`ctcnet.inference.labelled_leaks`), which ``ctcnet
finetune`` writes into the model's panel for the guard to allow.

Used by ``ctcnet predict|evaluate|robustness`` with ``--compensate`` or for a model trained on
compensated crops (``data.compensate``; per cartridge from a sample of its frames, per
``sample_id`` on crop sets). Measured (``experiments/ablate_spillover.py``;
docs/robustness_matrix.md):
on 8 simulated cartridges the estimate is within 10 % of the true leak for 22 of 24 pairs
(one missed, one 0.037 for 0.008); compensated with it, the shipped network passes the
matrix's CD45 8x and CD61 8x cells and CK 0.25x's macro-F1.
"""

from __future__ import annotations

import logging

import numpy as np

from ctcnet.core.robust import Q_HIGH, Q_LOW, background_from_percentiles, percentiles

log = logging.getLogger(__name__)

# Pixels that count as source-bright: the 3x3 mean above this many noise units of that mean.
LEVEL = 10.0
MIN_BRIGHT_PX = 9
# A crop's ratio is kept when a copy of the source explains the target over those pixels: the
# residual at the noise level (chi^2 per pixel under MAX_CHI2) or R^2 above MIN_R2.
MAX_CHI2 = 3.0
MIN_R2 = 0.95
# Each kept ratio's uncertainty: its noise, plus this share of itself (a leak's copy is not
# exactly proportional where the channels' optics differ).
SYSTEMATIC = 0.05
# The leak: the lowest mode of the ratios' density, on a grid from 0 to MAX_LEAK, holding at
# least MIN_WEIGHT crops' worth of weight.
MIN_WEIGHT = 4.0
# ... and, for a mode above FLOOR_CHECK, unless as many positive ratios as this share of its
# weight lie below half of it (see lowest_mode). Smaller leaks are exempt: taking a tenth of CK
# off a channel cannot erase a co-expressing cell's own marker, and on a cartridge's crowded
# crops many ratios scatter around zero.
BELOW_SHARE = 0.4
FLOOR_CHECK = 0.2
MAX_LEAK = 1.0
GRID = np.concatenate([[0.0], np.geomspace(1e-3, MAX_LEAK, 400)])
# The largest share of CK's counts read as a leak (a lowest mode above it is none, a lab's
# labelled CTCs' median above it measures none): a filter set passing half of a dye into
# another channel is broken, not leaking. Above it the modes are of events lit alike in CK
# and the target: on 3 of 20 dense simulated cartridges (0.45 um/px, true leaks 0-10 %), 0.65
# to 1.0, from autofluorescent bodies and CK+CD45+ leukocytes at equal levels.
PLAUSIBLE_LEAK = 0.5
SOURCE_ROLE = "epithelial"
TARGET_ROLES = ("leukocyte", "platelet", "neutrophil")

# Noise unit of a channel whose background is clipped to black, as a share of the crop's
# brightest channel's bright end (its 99th percentile above background): on tight exports
# (auto-contrasted, black background) a CTC's CD45 residue then reads as what it is, a trace.
CLIPPED_NOISE_SHARE = 0.02
# The robust background's sampling step (every second pixel) and the least noise sd a channel
# is given (counts): the guard's noise units, which its measurements in the model's graph
# (ctcnet.deploy.marker_graph) read alike.
SAMPLE_STEP = 2
NOISE_FLOOR = 0.5


def robust_background(crops: np.ndarray, step: int = SAMPLE_STEP
                      ) -> tuple[np.ndarray, np.ndarray]:
    """(N, C) background and noise sd of (N, C, H, W) crops from the 10th/30th percentiles,
    read as the model's normalisation reads them (``nearest`` ranks of
    :func:`ctcnet.core.robust.percentiles`): the guard's and the compensation's noise units are
    the model's."""
    n, c = crops.shape[:2]
    sample = crops[:, :, ::step, ::step].reshape(n, c, -1).astype(np.float32, copy=False)
    q_low, q_high = percentiles(sample, (Q_LOW, Q_HIGH), "nearest")
    # A background clipped to black (an export's black point set above it: 30 % or more of the
    # channel at its minimum) leaves no noise to measure, and a few counts of residue would
    # read as many noise sd. Such channels get a noise of CLIPPED_NOISE_SHARE of the crop's
    # brightest channel (one unit for all clipped channels of a crop, so their ratios stay).
    floor = np.full(q_high.shape, NOISE_FLOOR, np.float32)
    clipped = q_high <= sample.min(axis=-1)
    if clipped.any():
        bright = percentiles(sample, (99,))[0].astype(np.float32) - q_high  # (N, C)
        share = CLIPPED_NOISE_SHARE * bright.max(axis=1, keepdims=True)  # (N, 1)
        floor = np.where(clipped, np.maximum(floor, share), floor)
    return background_from_percentiles(q_low, q_high, floor)


def mean3x3(images: np.ndarray, minus=None) -> np.ndarray:
    """The 3x3 mean of (..., H, W) float images, edges mirrored (scipy's ``uniform_filter`` up
    to float rounding, in less than half its time on a frame's crops); with ``minus`` (an
    array broadcasting to ``images``), the mean of ``images - minus``, the difference made
    straight into the padded buffer (one pass and one array less, the same numbers).

    Sums of shifted views of the padded images taken as one flat line: a shift by one padded
    row, then by one pixel, each a single long addition (shifts along the last axis image row
    by image row ran as many short loops: 7.0 against 4.5 ms on a frame's crops, the same
    numbers). A sum that runs past a row's or an image's end lands only on the padding, which
    is cut off.
    """
    h, w = images.shape[-2:]
    dtype = images.dtype if minus is None else np.result_type(images, minus)
    # The padding by one mirrored pixel (np.pad's "symmetric": each edge row, then each edge
    # column of the padded rows, repeated), made here so that a difference can be written
    # straight into it (the guard's 9.4 against 11.8 ms on a frame's crops).
    padded = np.empty((*images.shape[:-2], h + 2, w + 2), dtype)
    inner = padded[..., 1:h + 1, 1:w + 1]
    if minus is None:
        inner[...] = images
    else:
        np.subtract(images, minus, out=inner)
    padded[..., 0, 1:w + 1] = inner[..., 0, :]
    padded[..., h + 1, 1:w + 1] = inner[..., h - 1, :]
    padded[..., 0] = padded[..., 1]
    padded[..., w + 1] = padded[..., w]
    wide = w + 2
    line = padded.reshape(-1)
    n = line.size - 2 * wide
    rows = np.add(line[:n], line[wide:wide + n])
    rows += line[2 * wide:]
    # The row sums back into the padded buffer (no longer needed): one array less to make.
    m = n - 2
    np.add(rows[:m], rows[1:m + 1], out=line[:m])
    line[:m] += rows[2:]
    return np.divide(padded[..., :h, :w], dtype.type(9.0))


def wants_compensation(spec, requested: bool | None) -> bool:
    """Whether a run takes the spillover off: as asked (``--compensate`` /
    ``--no-compensate``), else as the model was trained (``spec.compensated_input``)."""
    return bool(spec.compensated_input) if requested is None else bool(requested)


def network_view(spec, crops: np.ndarray, samples=None,
                 compensate: bool | None = None) -> tuple[np.ndarray, dict | None]:
    """What the network of ``spec`` is given of crops held in memory (a crop set, a held-out
    test), and the leaks taken off ({sample: leak_record}, None when none were): the crops
    compensated per sample (``samples``) when :func:`wants_compensation`, else the crops
    (float32)."""
    if wants_compensation(spec, compensate):
        return compensate_samples(crops, spec.panel, samples)
    return np.asarray(crops, np.float32), None


def leak_channels(panel) -> tuple[int | None, list[int]]:
    """The panel's source channel (CK) and the channels its leak is measured into."""
    return (panel.index_of_role(SOURCE_ROLE),
            [i for i, ch in enumerate(panel.channels) if ch.role in TARGET_ROLES])


def leak_ratios(crops: np.ndarray, source: int, targets: list[int],
                saturated: np.ndarray | None = None, central: bool = False
                ) -> tuple[np.ndarray, np.ndarray]:
    """(N, C) ratio of each target's signal to the source's over the source-bright pixels, and
    its uncertainty; NaN where the source is not bright or no copy of it explains the target
    (the target has a pattern of its own there: co-expression, not a leak). ``saturated``:
    (C,) each channel's saturation level (``Panel.saturation_levels``), whose pixels (and
    their neighbours) are left out: a clipped CK under its unclipped leak reads as a larger
    ratio that no copy explains. ``central``: over each crop's central half alone, its
    background too (:func:`central_half`: a scan's crops, whose edges hold neighbours)."""
    x = np.asarray(crops, np.float32)
    x = central_half(x) if central else x
    n, c = x.shape[:2]
    ratio, sd = np.full((n, c), np.nan), np.full((n, c), np.nan)
    if n == 0 or not targets:
        return ratio, sd
    # Most events of a frame (leukocytes) show no CK: the source channel alone finds the crops
    # worth fitting.
    background, noise = robust_background(x[:, source:source + 1])
    mean = mean3x3(x[:, source] - background[:, :1, None])
    bright = mean > LEVEL * (noise[:, :1, None] / 3.0)
    if saturated is not None:
        clipped = (x >= np.asarray(saturated, np.float32)[:, None, None]).any(axis=1)
        bright &= ~(mean3x3(clipped.astype(np.float32)) > 0)
    rows = np.flatnonzero(bright.sum(axis=(1, 2)) >= MIN_BRIGHT_PX)
    if not rows.size:
        return ratio, sd
    background, noise = robust_background(x[rows])
    signal = x[rows] - background[:, :, None, None]
    bright = bright[rows]
    src = np.where(bright, signal[:, source], 0.0)
    power = (src * src).sum(axis=(1, 2))
    count = bright.sum(axis=(1, 2))
    for t in targets:
        tgt = np.where(bright, signal[:, t], 0.0)
        a = (src * tgt).sum(axis=(1, 2)) / power
        residual = ((tgt - a[:, None, None] * src) ** 2).sum(axis=(1, 2))
        chi2 = residual / count / noise[:, t] ** 2
        r2 = 1.0 - residual / np.maximum((tgt * tgt).sum(axis=(1, 2)), 1e-12)
        keep = (chi2 < MAX_CHI2) | (r2 > MIN_R2)
        ratio[rows[keep], t] = a[keep]
        sd[rows[keep], t] = np.sqrt(noise[keep, t] ** 2 / power[keep]
                                    + (SYSTEMATIC * a[keep]) ** 2)
    return ratio, sd


def central_half(crops: np.ndarray) -> np.ndarray:
    """The central half (in each direction) of (N, C, H, W) scan crops: the event's own
    pixels and its near background. Over the whole crop a CK-bright neighbour's pixels entered
    each ratio, and in a dense cartridge most CK-bright pixels are neighbours' (autofluorescent
    bodies, aggregates, leukocytes lit by other channels' leaks), whose ratios into CD45 gather
    at a level of their own: on dense simulated blanks and spike-ins with a true CK->CD45 leak
    of 0.7-1.1 %, the lowest mode of 400 crops' ratios read 40-44 % and marked the sample
    partial. On 23 simulated cartridges with known spillover (69 channel pairs; 10 counting,
    5 dense, 8 blanks and spike-ins), within max(10 %, 0.005) of the true leak: the check's
    400 events 64 % of pairs whole, 86 % over the half (largest error 0.46 -> 0.03), the
    compensation's frames 67 % -> 96 %; reading the background from the whole crop instead
    gave 78 % and 71 %. Not for a crop set's crops, each its cell: on 24 tight CTC crops a
    sample the half lost the ratios' precision that a 7-8 % leak into CD61 is read with."""
    h, w = crops.shape[-2:]
    if min(h, w) < 8:  # nothing to spare: a crop this small is its event
        return crops
    return crops[..., h // 4:h - h // 4, w // 4:w - w // 4]


def lowest_mode(ratio: np.ndarray, sd: np.ndarray, min_weight: float = MIN_WEIGHT,
                plausible: float | None = None) -> float:
    """The leak among one target's per-crop ratios (see the module docstring); 0.0 when the
    ratios show none (no mode of ``min_weight`` crops' worth at ``plausible`` or under;
    default ``PLAUSIBLE_LEAK``), as when they agree on none (:func:`leak_mode` tells the
    two apart)."""
    leak = leak_mode(ratio, sd, min_weight, plausible)
    return 0.0 if leak is None else leak


def leak_mode(ratio: np.ndarray, sd: np.ndarray, min_weight: float = MIN_WEIGHT,
              plausible: float | None = None) -> float | None:
    """:func:`lowest_mode`, None where the ratios show no mode (too few, none of
    ``min_weight`` crops' worth at ``plausible`` or under, a co-expression's): 0.0 is a
    measured floor of none, ratios that agree on no leak."""
    ok = np.isfinite(ratio) & np.isfinite(sd)
    ratio, sd = ratio[ok], sd[ok]
    if ratio.size < min_weight:
        return None
    density = np.exp(-0.5 * ((ratio[None, :] - GRID[:, None]) / sd[None, :]) ** 2).sum(axis=1)
    padded = np.concatenate([[-np.inf], density, [-np.inf]])
    peaks = np.flatnonzero((density >= min_weight) & (density >= padded[:-2])
                           & (density >= padded[2:]))
    if not peaks.size or GRID[peaks[0]] > (PLAUSIBLE_LEAK if plausible is None else plausible):
        return None
    peak = peaks[0]
    leak = float(GRID[peak])
    # A leak large enough to erase a co-expressing cell's own marker must be the floor of the
    # CK+ events: a population below half of it, 0.4 of the mode's weight (the matrix's stain
    # cells show at most 0.3), says the mode is co-expression (CK+CD45+ leukocytes) and the
    # leak is lower and spread out. Left alone.
    below = (ratio > 0) & (ratio < 0.5 * leak)
    if leak > FLOOR_CHECK and below.sum() >= max(min_weight, BELOW_SHARE * density[peak]):
        return None
    return leak


def scan_ratios(crops: np.ndarray, panel, central: bool = False, every: bool = False
                ) -> tuple[np.ndarray, np.ndarray]:
    """Per-crop CK ratios and uncertainties (:func:`leak_ratios`; ``central``: over each
    crop's central half, as a scan's crops are read) of the panel's targets, only the crops
    that have any (``every``: every crop, a row of NaN where it has none): what
    :func:`leaks_from_ratios` pools over a scan's frames."""
    source, targets = leak_channels(panel)
    if source is None:
        empty = np.zeros((0, panel.num_channels))
        return empty, empty
    ratio, sd = leak_ratios(crops, source, targets, panel.saturation_levels, central=central)
    rows = np.isfinite(ratio).any(axis=1) | every
    return ratio[rows], sd[rows]


def leaks_from_ratios(ratio: np.ndarray, sd: np.ndarray, panel) -> np.ndarray:
    """(C,) CK's leak into each target channel from a scan's pooled per-crop ratios; zero for
    CK itself, the nucleus, other channels and wherever the ratios show no leak."""
    _, targets = leak_channels(panel)
    leaks = np.zeros(panel.num_channels, np.float32)
    for t in targets:
        leaks[t] = lowest_mode(ratio[:, t], sd[:, t])
    return leaks


def estimate_leaks(crops: np.ndarray, panel) -> np.ndarray:
    """(C,) CK's leak into each channel, measured on one scan's crops (or one sample's)."""
    return leaks_from_ratios(*scan_ratios(crops, panel), panel)


def leak_record(leaks: np.ndarray, panel, **extra) -> dict:
    """What a run reports of the leaks it took off: {"source", "leaks": {channel: share}}."""
    source, targets = leak_channels(panel)
    return {"source": panel.names[source] if source is not None else None,
            "leaks": {panel.names[t]: round(float(leaks[t]), 4) for t in targets}, **extra}


def compensate_samples(crops: np.ndarray, panel, samples=None, out: np.ndarray | None = None,
                       only=None) -> tuple[np.ndarray, dict]:
    """Crops compensated sample by sample (``samples``: a sample id per crop, as crop sets
    carry them; default: one sample), and {sample: leak_record}. ``out``: the array to write
    them into (the crops themselves spare a copy of a training set; an integer array gets
    them rounded and clipped to its range); default a new float32 array. ``only``: the samples
    to compensate (default: all); the others are left as they are."""
    x = np.asarray(crops)
    groups = np.zeros(len(x), np.int64) if samples is None else np.asarray(samples)
    out = np.array(x, np.float32, copy=True) if out is None else out
    integer = np.iinfo(out.dtype) if np.issubdtype(out.dtype, np.integer) else None
    records = {}
    for group in np.unique(groups) if only is None else np.unique(only):
        rows = np.flatnonzero(groups == group)
        part = np.asarray(x[rows], np.float32)
        leaks = estimate_leaks(part, panel)
        fixed = compensate(part, leaks, panel)
        out[rows] = np.clip(np.rint(fixed), integer.min, integer.max) if integer else fixed
        records[str(group)] = leak_record(leaks, panel, crops=int(rows.size))
    return out, records


class SampleLeaks:
    """CK's leak per sample over crops seen a chunk at a time (a crop set too large to hold):
    each chunk's per-crop ratios (:func:`leak_ratios`) kept by sample, and each sample's leaks
    read from all of its crops' ratios, as :func:`compensate_samples` reads them from the
    sample's crops held at once."""

    def __init__(self, panel):
        self.panel = panel
        self._samples, self._ratio, self._sd = [], [], []  # of the crops with any ratio
        self._crops: dict[str, int] = {}

    def add(self, crops: np.ndarray, samples, saturated=None) -> None:
        """Take in a chunk of crops and their sample ids (one per crop); ``saturated``: each
        channel's saturation level in it (default the panel's: a 12-bit camera's counts
        stated 0-65535 clip at 4095, :func:`ctcnet.io.frame_checks.at_camera_tops`)."""
        samples = np.asarray(samples).astype(str)
        for sample, n in zip(*np.unique(samples, return_counts=True)):
            self._crops[str(sample)] = self._crops.get(str(sample), 0) + int(n)
        source, targets = leak_channels(self.panel)
        if source is None:  # no CK: nothing leaks, every sample's leaks are zero
            return
        # (clipped pixels left out, as labelled CTCs' are: a clipped CK read a 30 % leak 0)
        ratio, sd = leak_ratios(crops, source, targets, self.panel.saturation_levels
                                if saturated is None else saturated)
        rows = np.isfinite(ratio).any(axis=1)
        self._samples.append(samples[rows])
        self._ratio.append(ratio[rows])
        self._sd.append(sd[rows])

    def leaks(self) -> dict[str, np.ndarray]:
        """{sample: (C,) leaks} of every sample seen."""
        c = self.panel.num_channels
        samples = np.concatenate(self._samples) if self._samples else np.zeros(0, str)
        ratio = np.concatenate(self._ratio) if self._ratio else np.zeros((0, c))
        sd = np.concatenate(self._sd) if self._sd else np.zeros((0, c))
        # Each sample's rows in their order, by one sort (a crop set may give every crop a
        # sample of its own: a mask per sample would be quadratic).
        keys, inverse = np.unique(samples, return_inverse=True)
        order = np.argsort(inverse, kind="stable")
        rows_of = dict(zip(keys.tolist(), np.split(order, np.cumsum(
            np.bincount(inverse, minlength=len(keys)))[:-1])))
        none = np.zeros(0, np.int64)
        return {s: leaks_from_ratios(ratio[rows_of.get(s, none)], sd[rows_of.get(s, none)],
                                     self.panel) for s in self._crops}

    def pooled(self) -> np.ndarray:
        """(C,) the leaks read from every crop seen, of all samples together (one instrument)."""
        c = self.panel.num_channels
        if not self._ratio:
            return np.zeros(c, np.float32)
        return leaks_from_ratios(np.concatenate(self._ratio), np.concatenate(self._sd),
                                 self.panel)

    def records(self, leaks: dict[str, np.ndarray]) -> dict:
        """{sample: leak_record} as :func:`compensate_samples` reports them."""
        return {s: leak_record(leaks[s], self.panel, crops=n) for s, n in self._crops.items()}


# A measured leak is warned of when it is more than this multiple of the guard's allowance:
# a run's estimate spreads by a fifth (0.119 on a dense simulated cartridge whose leaks are at
# most 0.10; a CTC's per-crop ratios 0.29-0.36 round a leak of 0.30).
CLEARLY_BEYOND = 1.25


def leak_check(leaks: np.ndarray, panel, rules, what: str, crops: int | None = None) -> dict:
    """CK's measured ``leaks`` (C,) against what the marker guard's ``rules`` allow into each
    target channel (``GuardRules.leak_cap``): {"source", "leaks", "allowance", "beyond": [the
    channels it leaks into clearly more than allowed: ``CLEARLY_BEYOND``]}, and a warning
    naming ``what`` where there are any. Beyond the allowance the guard reads a CTC's leaked
    CK as that channel's own marker (in CD45: the CTC is called ``wbc``). ``crops``: how many
    CK-bright crops the leaks were read from, where known (``measured_on``; 0: none, and the
    leaks of 0 measure nothing)."""
    source, targets = leak_channels(panel)
    allowance = {t: rules.leak_cap(panel, t) for t in targets}
    check = {"source": None if source is None else panel.names[source],
             # (null where the panel names no CK: nothing was measured, not a leak of 0)
             "leaks": {panel.names[t]: None if source is None else round(float(leaks[t]), 4)
                       for t in targets},
             "allowance": {panel.names[t]: round(float(allowance[t]), 4) for t in targets},
             "beyond": [panel.names[t] for t in targets
                        if leaks[t] > CLEARLY_BEYOND * allowance[t]],
             **({"measured_on": int(crops)} if crops is not None else {})}
    if check["beyond"]:
        said = ", ".join(f"{check['leaks'][n]:.0%} into {n} (the marker guard allows "
                         f"{check['allowance'][n]:.0%})" for n in check["beyond"])
        # A leak far beyond any filter set's is more often the data misdescribed: two
        # channels in each other's place, or a pixel size several times off (tdEVs then read
        # as cells, and neighbours' signal falls into CK's area).
        log.warning("%s: %s leaks %s: the guard reads a CTC's leaked %s as that channel's own "
                    "marker and calls it another class. First check panel.json's channel "
                    "order and pixel size; one sample far off the instrument's others is more "
                    "likely its staining (a dim CK, a bright background in the other "
                    "channel) than the filters; where every sample of the instrument reads "
                    "so, label a few CTCs of it and run `ctcnet finetune` (or `ctcnet "
                    "evaluate --calibrate-on ... --save-model`): the model then carries the "
                    "measured leak", what,
                    check["source"], said, check["source"])
    return check


def compensate_each(crops: np.ndarray, samples, leaks: dict[str, np.ndarray], panel
                    ) -> np.ndarray:
    """Crops (float32) each compensated by its sample's ``leaks`` (:class:`SampleLeaks`)."""
    samples = np.asarray(samples).astype(str)
    out = np.empty(np.shape(crops), np.float32)
    for sample in np.unique(samples):
        rows = np.flatnonzero(samples == sample)
        out[rows] = compensate(np.asarray(crops[rows], np.float32), leaks[sample], panel)
    return out


def compensate(crops: np.ndarray, leaks: np.ndarray, panel) -> np.ndarray:
    """Crops (float32) with ``leaks[t] x`` the CK signal (above its background) taken off each
    channel t; the crops themselves when there is nothing to take off."""
    x = np.asarray(crops, np.float32)
    source = panel.index_of_role(SOURCE_ROLE)
    if source is None or not np.any(leaks) or not len(x):
        return x
    background, _ = robust_background(x[:, source:source + 1])
    signal = x[:, source] - background[:, :1, None]
    # One copy, then the leak taken off in place, channel by channel, through one plane-sized
    # buffer: a frame's crops are ~40 MB, and each array that size is fresh memory the kernel
    # must fault in (broadcasting over every channel made two; compensation cost as much as
    # cutting the crops).
    out = x.copy()
    taken = np.empty_like(signal)
    for target, leak in enumerate(np.asarray(leaks, np.float32)):
        if leak:
            np.multiply(signal, leak, out=taken)
            np.subtract(out[:, target], taken, out=out[:, target])
    return out
