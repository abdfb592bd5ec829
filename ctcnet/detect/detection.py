"""Event detection on one frame: find every object worth classifying, in frame pixels.

What counts as an event: anything significantly above the local background in *any* channel,
so DAPI-negative objects (tdEVs: small CK+ vesicles, CK+ fragments, dye aggregates) are found
as well as nucleated cells. Steps, all vectorised over the frame:

1. **Bin** the frame to a working pixel of about ``work_pixel_um`` (3x3 at CellSearch's
   0.64 um/px): 9x fewer pixels to touch, and binning averages shot noise. Cells are >= 6 um
   and a tdEV, spread by the PSF, >= ~3 um, so nothing of interest falls below a working pixel.
2. Estimate a slowly varying **background map** per channel (median of ~40 um blocks,
   interpolated: corrects uneven illumination) and the **noise** (MAD of the residual). Each
   channel becomes a signal-to-noise map; their maximum over channels is the detection image.
3. **Hysteresis threshold**: an object needs a core above ``threshold_snr`` and extends down to
   ``extent_snr``, so dim edges of a cell stay attached to it.
4. **Split touching objects, keep clusters whole** (``split_and_merge``): a seeded watershed
   cuts blobs at every local maximum at least ~one nucleus apart, then neighbouring pieces are
   merged back when the saddle between them is high: one object (a lobed nucleus, a CD45 ring
   around its nucleus) or cells that really touch, as in a CTC-neutrophil or CTC-platelet
   cluster (cutting it would turn a cluster call into a CTC call plus WBC calls). Separate
   cells joined only by their dim halos stay apart.
5. **Size limits in micrometres** (``min_diameter_um``, ``max_diameter_um``) through the panel's
   pixel size; per-object statistics (centre, bounding box, area, per-channel mean counts,
   peak SNR) come from ``numpy.bincount`` / ``scipy.ndimage`` over the label image.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage

from ctcnet.core.robust import median, median_and_mad_sigma
from ctcnet.detect.members import LABEL, marker_channels, marker_seeds, with_marker_parts
from ctcnet.detect.resampling import two_tap_matrix
from ctcnet.detect.splitting import group_max, split_and_merge
from ctcnet.errors import InputError
from ctcnet.io.frame_checks import holds_eight_bit_values
from ctcnet.io.panel import Panel, load_panel


@dataclass(frozen=True)
class DetectConfig:
    """Detection settings; sizes in micrometres so they follow the panel's pixel size."""

    # An object needs a smoothed pixel this many noise units above background in some channel.
    threshold_snr: float = 5.0
    # ...and extends over connected pixels down to this level (hysteresis).
    extent_snr: float = 2.5
    # Smallest object kept (equivalent-circle diameter): tdEVs are ~1-3 um but the PSF spreads
    # them to >= 3 um; a hot pixel or a noise speck stays smaller.
    min_diameter_um: float = 3.0
    # Largest object kept: a CTC-neutrophil cluster spans 20-40 um; far larger blobs are
    # illumination artefacts or background patches, not events.
    max_diameter_um: float = 90.0
    # Gaussian smoothing before thresholding; about the PSF, so a point source keeps its peak.
    smooth_sigma_um: float = 0.8
    # Target working pixel after binning (3x3 at 0.64 um/px): still finer than a tdEV, and
    # binning averages noise as well as a Gaussian of the PSF's width would.
    work_pixel_um: float = 1.9
    # Background map block; several cell diameters so cells barely move a block's median.
    background_block_um: float = 40.0
    # Splitting: seeds are maxima of the detection image smoothed this much...
    seed_sigma_um: float = 1.5
    # ...at least this far apart (about a small nucleus).
    seed_distance_um: float = 7.0
    # Merging pieces back: saddle / lower peak above this -> one object (lobes of a nucleus, a
    # CD45 ring around its nucleus) or physically touching cells of a cluster.
    same_object_ratio: float = 0.5
    split_touching: bool = True
    # Members of merged objects whose own markers read as a CTC's are offered as events of
    # their own beside the whole (``ctcnet.detect.members``), for predict to choose between.
    offer_members: bool = True
    # An object is edge-cut when the frame border runs through pixels brighter than this
    # fraction of its peak (through the object, not its blur halo).
    edge_fraction: float = 0.25

    def binning(self, pixel_size_um: float) -> int:
        """How many pixels per side are binned into one working pixel at ``pixel_size_um``."""
        return max(1, int(round(self.work_pixel_um / pixel_size_um)))

    def work_grid(self, pixel_size_um: float) -> tuple[int, float]:
        """(binning factor, working pixel in um) for frames of ``pixel_size_um``."""
        factor = self.binning(float(pixel_size_um))
        return factor, float(pixel_size_um) * factor

    def smoothing_px(self, work_px: float) -> tuple[float, int]:
        """(Gaussian sigma, background block) in working pixels."""
        return self.smooth_sigma_um / work_px, int(round(self.background_block_um / work_px))


def bin_frame(frame: np.ndarray, factor: int) -> np.ndarray:
    """Mean of ``factor`` x ``factor`` blocks of a (C, H, W) frame, as float32.

    The last ``H % factor`` rows and ``W % factor`` columns (at most factor-1 pixels) are left
    out; objects touching the binned border are still flagged as touching the frame border.
    """
    if factor == 1:
        return np.asarray(frame, dtype=np.float32)
    c, h, w = frame.shape
    hb, wb = h // factor, w // factor
    out = np.empty((c, hb, wb), np.float32)
    # Separable sums over strided views (columns, then rows): about 4x faster than a
    # reshape-and-reduce over two axes, and no padded copy of the frame. Done in bands of
    # about BIN_BAND_ROWS frame rows, so that the factor strided passes over a band's columns
    # read it from the cache rather than memory (factor passes over the whole frame each
    # streamed it; 30-45 % faster at a factor of 3-4); each output pixel is summed in the
    # same order as over the whole frame, so the numbers are the same.
    rows = max(1, BIN_BAND_ROWS // factor)  # binned rows per band
    cols = np.empty((c, rows * factor, wb), np.float32)
    for r0 in range(0, hb, rows):
        r1 = min(hb, r0 + rows)
        band = frame[:, r0 * factor:r1 * factor]
        band_cols = cols[:, :(r1 - r0) * factor]
        np.copyto(band_cols, band[:, :, 0:wb * factor:factor], casting="unsafe")
        for dx in range(1, factor):
            band_cols += band[:, :, dx:wb * factor:factor]
        band_out = out[:, r0:r1]
        np.copyto(band_out, band_cols[:, 0::factor])
        for dy in range(1, factor):
            band_out += band_cols[:, dy::factor]
    out *= 1.0 / (factor * factor)
    return out


# Frame rows binned at a time (:func:`bin_frame`): a band of a 5-channel CellSearch frame is
# ~3.5 MB of float32, kept in the cache over its strided passes.
BIN_BAND_ROWS = 128


def interpolation_weights(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Neighbour indices and weights that linearly interpolate n_in block centres onto n_out."""
    centres = (np.arange(n_in) + 0.5) * (n_out / n_in) - 0.5
    pos = np.clip(np.interp(np.arange(n_out), centres, np.arange(n_in)), 0, n_in - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, n_in - 1)
    return lo, hi, (pos - lo).astype(np.float32)


def linear_upsample(coarse: np.ndarray, h: int, w: int) -> np.ndarray:
    """Bilinear upsampling of (C, hb, wb) block values to (C, h, w), separable: two small
    matrix products per channel (the interpolation matrices hold two weights a row).

    Twenty times faster than gathering and blending the neighbours (0.45 against ~9 ms for a
    binned CellSearch frame): the gathers along the last axis were the slow part. BLAS runs
    single-threaded during predict (``inference.predict.single_threaded_blas``), so the
    products do not spin a thread pool beside the model.
    """
    return (interpolation_matrix(h, coarse.shape[1]) @ coarse
            @ interpolation_matrix(w, coarse.shape[2]).T)


def interpolation_matrix(n_out: int, n_in: int) -> np.ndarray:
    """(n_out, n_in) float32 weights of :func:`interpolation_weights` as a matrix."""
    return two_tap_matrix(*interpolation_weights(n_out, n_in), n_in)


def background_map(image: np.ndarray, block: int) -> np.ndarray:
    """Slowly varying background of a (C, H, W) image: block medians, bilinearly upsampled."""
    c, h, w = image.shape
    block = max(4, min(block, h, w))
    block -= block % 2  # even, so every second pixel splits evenly into blocks
    hb, wb = h // block, w // block
    # Medians over every second pixel of each block of the largest block-aligned region (the
    # interpolation stretches them over the whole frame); neighbours are correlated anyway.
    blocks = image[:, :hb * block:2, :wb * block:2].reshape(c, hb, block // 2, wb, block // 2)
    coarse = median(blocks.transpose(0, 1, 3, 2, 4).reshape(c, hb, wb, -1))
    if hb >= 3 and wb >= 3:  # a block filled by a big cluster is an outlier: median of neighbours
        coarse = ndimage.median_filter(coarse, size=(1, 3, 3), mode="nearest")
    return linear_upsample(coarse.astype(np.float32), h, w)


# The least noise a frame is read with, in counts. Whole-number counts cannot show less than
# the quantisation's, one count's 1/sqrt(12). A frame of whole numbers within 0-255 is an
# 8-bit display export or a channel squeezed into 256 levels: its black is clipped (no noise
# to measure at all) and one count is a visible step, so one count is the least a detection
# unit there. Read in units of none, every faint halo pixel of a JPEG or PNG export became an
# event (3,473 events on a 4-frame composite cartridge of 144 cells, two specks counted as
# CTCs; with the floor, 144). Scans of 12 bits or more measure far more (simulated: 1.4-8
# counts after binning): for them nothing changes.
QUANTISATION_NOISE = 12 ** -0.5
EIGHT_BIT_NOISE = 1.0


def noise_floor(frame) -> float:
    """The least noise (counts) detection reads ``frame`` (a numpy array, or a tensor on the
    GPU path) with: by its values, not its type, so that a frame uploaded as float32 is read
    as the same frame on the host."""
    sample = frame[:, ::4, ::4]  # a sixteenth of the pixels tell a frame's kind, cheaply
    return EIGHT_BIT_NOISE if holds_eight_bit_values(sample) else QUANTISATION_NOISE


def robust_noise(residual: np.ndarray, floor: float = QUANTISATION_NOISE) -> np.ndarray:
    """Per-channel noise sigma of a background-subtracted (C, H, W) image: the MAD of every
    third pixel (:func:`~ctcnet.core.robust.median_and_mad_sigma`), at least ``floor``. The
    MAD, not the 10th/30th percentiles crops are read with: the residual's median is its
    background, and detection's thresholds (and so every event a run finds) are set in these
    noise units."""
    sample = residual[:, ::3, ::3].reshape(residual.shape[0], -1)
    return np.maximum(median_and_mad_sigma(sample)[1], floor).astype(np.float32)


def snr_maps(binned: np.ndarray, sigma_px: float, block_px: int,
             floor: float = QUANTISATION_NOISE) -> np.ndarray:
    """Per-channel signal-to-noise maps of a binned (C, H, W) frame (noise at least
    ``floor``: :func:`noise_floor`)."""
    smooth = binned
    if sigma_px >= 0.5:  # below half a pixel the binning has already done the smoothing
        smooth = ndimage.gaussian_filter(binned, sigma=(0, sigma_px, sigma_px), mode="nearest",
                                         truncate=3.0)
    residual = smooth - background_map(smooth, block_px)
    residual /= robust_noise(residual, floor)[:, None, None]
    return residual


MIN_BINNED_SIDE = 4  # the background map needs at least one 4 x 4 block of working pixels


def check_frame(frame: np.ndarray, factor: int, channels: int | None = None) -> None:
    """Refuse a frame detection cannot work on (wrong rank or type, too small, another number
    of planes than the panel's ``channels``: a channels-last array named so), by name.
    Values are checked after binning (``detect_events``): a pass over the binned frame is 9x
    cheaper, and NaN or overflowing counts show up there too."""
    if frame.ndim != 3:
        raise InputError(f"a frame is (channels, height, width), got shape {frame.shape}")
    if channels is not None and frame.shape[0] != channels:
        raise InputError(f"a frame is (channels, height, width) with the panel's {channels} "
                         f"channels, got shape {frame.shape}" + (
                             ": channels last? np.moveaxis(frame, -1, 0)"
                             if frame.shape[-1] == channels else ""))
    if not np.issubdtype(frame.dtype, np.number) or np.issubdtype(frame.dtype, np.complexfloating):
        raise InputError(f"frame pixels must be numbers, got {frame.dtype}")
    check_frame_size(*frame.shape[1:], factor)


def check_frame_size(h: int, w: int, factor: int) -> None:
    """Refuse a frame too small for detection once binned by ``factor``."""
    side = MIN_BINNED_SIDE * factor
    if min(h, w) < side:
        raise InputError(f"frame is {h} x {w} px: too small for detection (at least {side} px "
                         "per side)")


def detect_events(frame: np.ndarray, panel: Panel, config: DetectConfig | None = None,
                  return_labels: bool = False, alternates: bool = False,
                  measured: dict[str, np.ndarray] | None = None, counts_checked: bool = False):
    """Find the events of one (C, H, W) frame of raw counts (``panel``: its Panel, or the path
    of its panel.json).

    Returns a DataFrame with one row per event: ``x, y`` (centre, frame pixels), ``bbox_x0,
    bbox_y0, bbox_x1, bbox_y1`` (exclusive ends), ``area_px``, ``area_um2``, ``peak_snr``,
    ``edge_cut`` (the frame border cuts through the object) and ``mean_<channel>`` (mean raw counts
    over the object, per panel channel). With ``return_labels`` also the label image on the
    binned grid and the binning factor. With ``alternates`` also the members of merged objects
    whose own markers read as a CTC's, as rows of their own (:func:`with_marker_parts`).
    ``measured``: (H, W) planes by name that take no part in finding events, each event's mean
    over its object in them given as ``mean_<name>`` too (a scan's planes the model does not
    read: :mod:`ctcnet.io.unread_planes`). A floating-point frame scaled to fractions (0-1) is
    refused (:func:`refuse_fractions`), unless ``counts_checked``: a scan's reader checked the
    frame as read (:func:`ctcnet.io.frame_checks.check_frame_values`), and a background it
    drew again below a clip at 0 holds fractions of its own.
    """
    config = config or DetectConfig()
    frame = np.asarray(frame)
    if isinstance(panel, (str, Path)):
        panel = load_panel(panel)
    elif not isinstance(panel, Panel):
        raise InputError("panel must be the frame's Panel (ctcnet.load_panel(path)) or the path "
                         f"of its panel.json, got {type(panel).__name__}")
    factor = config.binning(float(panel.pixel_size_um))
    check_frame(frame, factor, panel.num_channels)
    binned, snr = frame_maps(frame, panel, config)
    if not counts_checked:
        refuse_fractions(frame, binned, panel)
    return events_from_maps(binned, snr, frame.shape[1:], panel, config, return_labels,
                            alternates, binned_planes(measured, factor))


def refuse_fractions(frame: np.ndarray, binned: np.ndarray, panel: Panel) -> None:
    """Refuse a floating-point frame scaled to 0-1 (as ``skimage.img_as_float`` gives: its
    brightest at most 1, with fractions), whatever the panel's range: detection's thresholds
    are set in counts, and it found no event in such a frame without a word. Looked for on
    the binned frame's brightest first, the whole frame only where that is at most 1 (a dim
    frame of counts in floating point, its values a few counts with fractions, is read)."""
    if frame.dtype.kind != "f" or not frame.size or float(np.nanmax(binned)) > 1.0:
        return
    brightest = float(np.nanmax(frame))
    if 0.0 < brightest <= 1.0 and bool((frame != np.round(frame)).any()):
        raise InputError(f"the frame's values lie within 0-1 (the brightest {brightest:.3g}), "
                         "with fractions: scaled (e.g. skimage's img_as_float)? detection "
                         "reads the scanner's raw counts and would find no cells in it; give "
                         "the counts as read from the image files")


def binned_planes(measured: dict[str, np.ndarray] | None, factor: int
                  ) -> dict[str, np.ndarray] | None:
    """``measured`` planes binned as detection bins the frame (:func:`bin_frame`), for the
    events' means over their objects."""
    if not measured:
        return None
    return {name: bin_frame(np.asarray(plane)[None], factor)[0]
            for name, plane in measured.items()}


def frame_maps(frame: np.ndarray, panel: Panel, config: DetectConfig
               ) -> tuple[np.ndarray, np.ndarray]:
    """Steps 1-2 on a checked frame: the binned frame (C, h, w) and its per-channel
    signal-to-noise maps (C, h, w), whose largest over channels is the detection image. The
    dense, whole-frame part of detection (its torch twin for frames on a GPU:
    :func:`ctcnet.detect.device.frame_maps`)."""
    factor, work_px = config.work_grid(panel.pixel_size_um)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        binned = bin_frame(frame, factor)
        snr = snr_maps(binned, *config.smoothing_px(work_px), noise_floor(frame))
    if not np.isfinite(snr).all():
        raise non_finite_error(float(np.nanmax(frame)))
    return binned, snr


def non_finite_error(frame_max: float) -> InputError:
    """The error for a frame whose pixels are not finite or overflow when binned."""
    # NaN/inf pixels, or counts near float32's limit that overflow when binned: no honest
    # event list exists, so the frame is refused rather than given zero events.
    return InputError("pixel values are NaN, infinite or out of range for detection (max "
                      f"{frame_max:.3g}; raw counts are expected)")


def events_from_maps(binned: np.ndarray, snr: np.ndarray, frame_shape: tuple[int, int],
                     panel: Panel, config: DetectConfig, return_labels: bool = False,
                     alternates: bool = False, measured: dict[str, np.ndarray] | None = None):
    """Steps 3-5 on the binned grid (a ninth of the frame's pixels), from the per-channel
    signal-to-noise maps: threshold, split and merge, measure; the event table of
    :func:`detect_events` (``measured``: binned planes measured too, :func:`binned_planes`)."""
    factor, work_px = config.work_grid(panel.pixel_size_um)
    detection = snr.max(axis=0)
    mask = hysteresis_threshold(detection, config.extent_snr, config.threshold_snr)
    pieces = pairs = None
    if config.split_touching and mask.any():
        height = ndimage.gaussian_filter(detection, config.seed_sigma_um / work_px,
                                         mode="nearest")
        seed_radius = max(1, int(round(config.seed_distance_um / work_px / 2)))
        # With members offered, the markers' own seeds cut a CTC out of a brighter
        # neighbour's piece, so that it can be offered as a member of its own.
        extra = marker_seeds(snr, mask, marker_channels(panel), seed_radius,
                             config.threshold_snr) if alternates else None
        labels, pieces, pairs = split_and_merge(mask, height, seed_radius,
                                                config.same_object_ratio, with_pieces=True,
                                                extra_seeds=extra)
    else:
        labels, _ = ndimage.label(mask)
    table = lambda image: _object_table(image, binned, detection, panel,  # noqa: E731
                                        factor, tuple(frame_shape), config, alternates,
                                        measured)
    events = table(labels)
    if alternates:
        events = with_marker_parts(events, labels, pieces, pairs, snr, panel, config, table)
    if return_labels:
        return events, labels, factor
    return events


def hysteresis_threshold(image: np.ndarray, low: float, high: float) -> np.ndarray:
    """``skimage.filters.apply_hysteresis_threshold(image, low, high)``: the connected
    components of ``image > low`` that hold a pixel of ``image > high``. The same steps and
    comparisons as skimage's (its ``low`` clipped to ``high``, a numpy float64), but the
    components holding a high pixel are marked by indexing, not counted with
    ``ndimage.sum`` over every label (a third of the step's time)."""
    low = np.clip(low, a_min=None, a_max=high)
    mask_low = image > low
    mask_high = image > high
    labels_low, num_labels = ndimage.label(mask_low)
    connected_to_high = np.zeros(num_labels + 1, bool)
    connected_to_high[labels_low[mask_high]] = True
    return connected_to_high[labels_low]


def _object_table(labels: np.ndarray, binned: np.ndarray, detection: np.ndarray, panel: Panel,
                  factor: int, frame_shape: tuple[int, int], config: DetectConfig,
                  with_label: bool = False, measured: dict[str, np.ndarray] | None = None
                  ) -> pd.DataFrame:
    """Per-object statistics of a label image, filtered by size; one row per kept object
    (``with_label``: and its label, in a :data:`LABEL` column; ``measured``: binned planes
    whose means are given after the panel's)."""
    h, w = frame_shape
    px = float(panel.pixel_size_um)
    flat = labels.ravel()
    n_labels = int(flat.max()) + 1
    # Statistics over foreground pixels only (a few % of the frame), by bincount per label.
    # (Found as a bool's nonzero: 3 times faster than the integer labels'.)
    fg = np.flatnonzero(flat != 0)
    lab = flat[fg]
    area_bin = np.bincount(lab, minlength=n_labels).astype(np.float64)
    area_px = area_bin * factor * factor
    diameter_um = 2.0 * np.sqrt(area_px / np.pi) * px
    keep = (diameter_um >= config.min_diameter_um) & (diameter_um <= config.max_diameter_um)
    keep[0] = False
    ids = np.flatnonzero(keep)
    columns = {}
    if ids.size:
        # Centre weighted by the detection signal: the bright core, not a dim halo, sits at the
        # crop centre.
        weight = np.clip(detection.ravel()[fg], 0.0, None).astype(np.float64)
        yy, xx = np.divmod(fg, labels.shape[1])
        wsum = np.bincount(lab, weights=weight, minlength=n_labels)[ids]
        cy = np.bincount(lab, weights=weight * yy, minlength=n_labels)[ids] / wsum
        cx = np.bincount(lab, weights=weight * xx, minlength=n_labels)[ids] / wsum
        peak_all = group_max(detection.ravel()[fg], lab, n_labels)
        peak = peak_all[ids]
        slices = ndimage.find_objects(labels)
        boxes = np.array([(s[0].start, s[0].stop, s[1].start, s[1].stop)
                          for s in (slices[i - 1] for i in ids)], dtype=np.int64)
        # Binned pixel i covers frame pixels [i*f, (i+1)*f): map centre and box back.
        columns["x"] = (cx + 0.5) * factor - 0.5
        columns["y"] = (cy + 0.5) * factor - 0.5
        hb, wb = labels.shape
        # A box reaching the binned border reaches the frame border (the unbinned remainder).
        columns["bbox_x0"] = boxes[:, 2] * factor
        columns["bbox_y0"] = boxes[:, 0] * factor
        columns["bbox_x1"] = np.where(boxes[:, 3] >= wb, w, boxes[:, 3] * factor)
        columns["bbox_y1"] = np.where(boxes[:, 1] >= hb, h, boxes[:, 1] * factor)
        columns["area_px"] = area_px[ids].astype(np.int64)
        columns["area_um2"] = area_px[ids] * px * px
        columns["peak_snr"] = np.asarray(peak, dtype=np.float32)
        columns["edge_cut"] = _cut_by_border(labels, detection, peak_all, config.edge_fraction)[ids]
        planes = [*zip(panel.names, binned), *(measured or {}).items()]
        for name, plane in planes:
            sums = np.bincount(lab, weights=plane.ravel()[fg], minlength=n_labels)
            columns[f"mean_{name}"] = (sums[ids] / area_bin[ids]).astype(np.float32)
        if with_label:
            columns[LABEL] = ids
        return pd.DataFrame(columns)
    table = empty_event_table(panel).assign(**{f"mean_{name}": np.zeros(0, np.float32)
                                               for name in measured or {}})
    return table.assign(**{LABEL: np.zeros(0, np.int64)}) if with_label else table


def _cut_by_border(labels: np.ndarray, detection: np.ndarray, peak: np.ndarray,
                   fraction: float) -> np.ndarray:
    """Per label: does the frame border cut the object itself, not just its faint halo?

    True when a border pixel of the object is brighter than ``fraction`` of its peak: a cell
    whose dim blur tail merely reaches the border is intact.
    """
    border = np.concatenate([labels[0], labels[-1], labels[1:-1, 0], labels[1:-1, -1]])
    values = np.concatenate([detection[0], detection[-1], detection[1:-1, 0],
                             detection[1:-1, -1]])
    on = border > 0
    cut = np.zeros(len(peak), dtype=bool)
    hit = border[on][values[on] >= fraction * peak[border[on]]]
    cut[hit] = True
    return cut


# An event's bounding box in frame pixels: first column and row, last column and row + 1.
BOX_COLUMNS = ("bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1")


def event_columns(panel: Panel) -> list[str]:
    """The columns of an event table for ``panel``, in order (one ``mean_`` column per channel)."""
    return (["x", "y", *BOX_COLUMNS, "area_px", "area_um2", "peak_snr", "edge_cut"]
            + [f"mean_{n}" for n in panel.names])


def empty_event_table(panel: Panel) -> pd.DataFrame:
    """An event table with no rows and the right columns and dtypes (a frame with no event)."""
    dtypes = {"x": "float64", "y": "float64", "bbox_x0": "int64", "bbox_y0": "int64",
              "bbox_x1": "int64", "bbox_y1": "int64", "area_px": "int64", "area_um2": "float64",
              "peak_snr": "float32", "edge_cut": "bool"}
    return pd.DataFrame({col: pd.Series(dtype=dtypes.get(col, "float32"))
                         for col in event_columns(panel)})
