"""Physically motivated perturbations of raw-count crops, for the robustness matrix.

Every perturbation is a pure numpy function of raw (N, C, H, W) count crops (plus a seeded
generator where it draws something) and changes what a real scanner, stain or export changes,
and nothing the simulator already draws. Where a perturbation changes the *stain* it acts on
the **signal**: the crop smoothed (Gaussian, :data:`SIGNAL_SMOOTH_PX`) above its per-channel
median. Camera noise stays as it was (a 4x brighter stain is not 4x noisier background).
Results are clipped to ``[0, value_range high]`` of each channel: a camera saturates.

:func:`perturbation_catalogue` declares the matrix for a panel: each perturbation at several
strengths across a stated plausible range (its ends marked ``range_end``, where the robustness
targets apply). Perturbations that need a marker role (CK on leukocytes needs ``epithelial``
and ``leukocyte``) are skipped, with a note, when the panel has no such marker.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ctcnet.core.robust import median_and_mad_sigma
from ctcnet.detect.cropping import background_fill
from ctcnet.io.panel import Panel

# The signal of a crop: Gaussian-smoothed (sigma in px) above its per-channel median.
SIGNAL_SMOOTH_PX = 1.0
# Stated plausible ranges (DOMAIN.md).
STAIN_FACTORS = (0.25, 0.5, 2.0, 4.0, 8.0)
BLEED_FRACTIONS = (0.02, 0.05, 0.10)
NONSPECIFIC_FRACTIONS = (0.25, 0.5, 1.0)
OFFSET_FACTORS = (0.5, 1.0, 2.0)        # added background, in multiples of the crop's own
GRADIENT_FACTORS = (0.1, 0.25, 0.5)     # ramp edge to edge, multiples of the background:
# vignetting is a few % across a crop; a bright neighbour's glow or a patch reaches ~50 %
DEFOCUS_UM = (0.6, 1.2, 2.0)            # extra Gaussian blur sigma, micrometres
NOISE_FACTORS = (1.5, 2.0)              # camera noise standard deviation times this
PIXEL_SIZE_FACTORS = (0.5, 0.75, 1.25, 1.5)  # scanner pixel / model pixel, not resampled
CLIP_SHARES = (0.001, 0.01, 0.03)       # share of a channel's pixels clipped white in 8 bit
JPEG_QUALITIES = (90, 75, 50)
SHIFT_PX = (2.0, 4.0, 6.0)
# One plane moved against the others (a filter or stage shift between exposures), um: a
# scanner in calibration stays within about a pixel (0.64 um); 2 um is one out of it.
REGISTRATION_UM = (0.5, 1.0, 2.0)
# Nonspecific staining: (channel that picks up the pattern, channel whose pattern it is). CK
# binds leukocytes through Fc receptors (CK += their CD45 signal); neutrophil markers on other
# leukocytes. Neither changes what an event is.
NONSPECIFIC_PAIRS = (("epithelial", "leukocyte"), ("neutrophil", "leukocyte"))
# RGB composite planes in the order viewers and papers use them: R = CK, G = CD45, B = DAPI.
COMPOSITE_ROLES = ("epithelial", "leukocyte", "nucleus")


# ---------------------------------------------------------------------------------------------
# Pure pieces.

def split_signal(crops: np.ndarray, smooth_px: float = SIGNAL_SMOOTH_PX) -> np.ndarray:
    """The stain signal of each crop and channel: smoothed crop above its median, >= 0."""
    x = np.asarray(crops, np.float32)
    smooth = ndimage.gaussian_filter(x, (0, 0, smooth_px, smooth_px), mode="reflect")
    median = np.median(x, axis=(2, 3), keepdims=True)
    return np.maximum(smooth - median, 0.0)


def _limits(panel: Panel | None, c: int) -> np.ndarray:
    if panel is None:
        return np.full((1, c, 1, 1), np.inf, np.float32)
    return np.array([ch.value_range[1] for ch in panel.channels],
                    np.float32).reshape(1, c, 1, 1)


def _finish(x: np.ndarray, panel: Panel | None) -> np.ndarray:
    return np.clip(x, 0.0, _limits(panel, x.shape[1])).astype(np.float32)


def stain_strength(crops, channel: int, factor: float, panel: Panel | None = None):
    """The stain of one channel ``factor`` times as bright (signal scaled, noise kept)."""
    x = np.array(crops, np.float32)
    x[:, channel] += (factor - 1.0) * split_signal(x[:, channel:channel + 1])[:, 0]
    return _finish(x, panel)


def random_stain(crops, low: float, high: float, rng: np.random.Generator,
                 panel: Panel | None = None):
    """Every crop and channel its own stain strength, log-uniform in ``[low, high]`` (samples
    stained on different days, by different labs)."""
    x = np.array(crops, np.float32)
    factor = np.exp(rng.uniform(np.log(low), np.log(high), x.shape[:2])).astype(np.float32)
    return _finish(x + (factor[..., None, None] - 1.0) * split_signal(x), panel)


def bleed(crops, source: int, target: int, fraction: float, panel: Panel | None = None):
    """Spectral bleed-through: ``fraction`` of the source channel's signal into the target."""
    x = np.array(crops, np.float32)
    x[:, target] += fraction * split_signal(x[:, source:source + 1])[:, 0]
    return _finish(x, panel)


def background_offset(crops, factor: float, panel: Panel | None = None):
    """A brighter background: each channel plus ``factor`` times its own median."""
    x = np.asarray(crops, np.float32)
    return _finish(x + factor * np.median(x, axis=(2, 3), keepdims=True), panel)


def background_gradient(crops, factor: float, rng: np.random.Generator,
                        panel: Panel | None = None):
    """Uneven illumination: a linear ramp in a random direction per crop, zero at the centre,
    ``factor`` times the channel's median from one edge to the other."""
    x = np.asarray(crops, np.float32)
    n, _, h, w = x.shape
    angle = rng.uniform(0, 2 * np.pi, n)
    yy = (np.arange(h, dtype=np.float32) - (h - 1) / 2) / max(h - 1, 1)
    xx = (np.arange(w, dtype=np.float32) - (w - 1) / 2) / max(w - 1, 1)
    ramp = (np.cos(angle)[:, None, None] * xx[None, None, :] +
            np.sin(angle)[:, None, None] * yy[None, :, None]).astype(np.float32)
    median = np.median(x, axis=(2, 3), keepdims=True)
    return _finish(x + factor * median * ramp[:, None], panel)


def defocus(crops, sigma_px: float, panel: Panel | None = None):
    """Out of focus: the signal blurred by a further Gaussian of ``sigma_px`` (noise kept)."""
    x = np.array(crops, np.float32)
    signal = split_signal(x)
    blurred = ndimage.gaussian_filter(signal, (0, 0, sigma_px, sigma_px), mode="reflect")
    return _finish(x + blurred - signal, panel)


def noise_std(crops) -> np.ndarray:
    """Robust camera-noise standard deviation per crop and channel (N, C, 1, 1): the MAD of
    differences between horizontal neighbours (signal cancels, noise adds twice)."""
    x = np.asarray(crops, np.float32)
    d = x[..., 1:] - x[..., :-1]
    sigma = median_and_mad_sigma(d.reshape(*d.shape[:2], -1))[1][..., None, None]
    return (sigma / np.sqrt(2.0)).astype(np.float32)


def more_noise(crops, factor: float, rng: np.random.Generator, panel: Panel | None = None):
    """Camera noise ``factor`` times stronger: Gaussian noise of the missing variance added."""
    x = np.asarray(crops, np.float32)
    extra = noise_std(x) * np.float32(np.sqrt(max(factor ** 2 - 1.0, 0.0)))
    return _finish(x + extra * rng.standard_normal(x.shape, dtype=np.float32), panel)


def pixel_size(crops, factor: float, panel: Panel | None = None):
    """A scanner whose pixels are ``factor`` times the model's, not resampled: objects appear
    ``1 / factor`` times as large. The signal is rescaled about the crop centre; background
    and noise stay as they are."""
    x = np.array(crops, np.float32)
    signal = split_signal(x)
    n, c, h, w = x.shape
    zoom = 1.0 / factor
    # Output pixel (i, j) samples the signal at centre + (i - centre) / zoom.
    centre = np.array([(h - 1) / 2, (w - 1) / 2])
    matrix = np.diag([1.0, 1.0, 1.0 / zoom, 1.0 / zoom])
    offset = np.concatenate([[0.0, 0.0], centre - centre / zoom])
    scaled = ndimage.affine_transform(signal, matrix, offset, order=1, mode="constant")
    return _finish(x - signal + scaled, panel)


def display_8bit_by_quantile(crops, clip_share: float, low_share: float = 0.01):
    """An 8-bit display export: per channel, the dataset's ``low_share`` quantile maps to 0 and
    the quantile that leaves ``clip_share`` of the pixels above it to 255 (clipped white)."""
    x = np.asarray(crops, np.float32)
    per_channel = np.moveaxis(x, 1, 0).reshape(x.shape[1], -1)
    low = np.quantile(per_channel, low_share, axis=1).reshape(1, -1, 1, 1)
    high = np.quantile(per_channel, 1.0 - clip_share, axis=1).reshape(1, -1, 1, 1)
    scaled = (x - low) / np.maximum(high - low, 1e-6)
    return np.round(np.clip(scaled, 0.0, 1.0) * 255.0).astype(np.float32)


def composite_groups(panel: Panel) -> list[list[int]]:
    """Channels in RGB triples: (CK, CD45, DAPI) first where the panel has them, then the
    rest in panel order; a last short group is padded by the image codec with zeros."""
    first = [panel.index_of_role(r) for r in COMPOSITE_ROLES]
    first = [i for i in first if i is not None]
    rest = [i for i in range(panel.num_channels) if i not in first]
    order = first + rest
    return [order[i:i + 3] for i in range(0, len(order), 3)]


def jpeg_composite(crops, quality: int, panel: Panel, clip_share: float = 0.001):
    """8-bit export (:func:`display_8bit_by_quantile`), saved as RGB JPEG composites (Pillow,
    default 4:2:0 chroma subsampling) of channel triples, read back: the lossy images of viewers
    and papers."""
    from PIL import Image

    x = display_8bit_by_quantile(crops, clip_share).astype(np.uint8)
    out = np.empty(x.shape, np.float32)
    for group in composite_groups(panel):
        for i in range(len(x)):
            rgb = np.zeros(x.shape[2:] + (3,), np.uint8)
            rgb[..., :len(group)] = np.moveaxis(x[i, group], 0, -1)
            buf = io.BytesIO()
            Image.fromarray(rgb, "RGB").save(buf, format="JPEG", quality=int(quality))
            decoded = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
            out[i, group] = np.moveaxis(decoded[..., :len(group)], -1, 0)
    return out


def off_centre(crops, distance_px: float, rng: np.random.Generator):
    """Crops cut off centre: each moved by ``distance_px`` in a random direction (whole
    pixels; the border uncovered is filled with the crop's background, as inference pads a
    window past the frame: a mirror would double a cell at the border)."""
    x = np.asarray(crops, np.float32)
    out = np.empty_like(x)
    angle = rng.uniform(0, 2 * np.pi, len(x))
    dy = np.rint(distance_px * np.sin(angle)).astype(int)
    dx = np.rint(distance_px * np.cos(angle)).astype(int)
    for i in range(len(x)):
        out[i] = ndimage.shift(x[i], (0, dy[i], dx[i]), order=0, mode="constant", cval=np.nan)
    inside = np.isfinite(out).all(axis=1)
    return background_fill(np.nan_to_num(out), inside)


def misregistered(crops, channel: int, shift_px: int):
    """Crops with one ``channel``'s plane moved ``shift_px`` whole pixels along x against the
    others, as a scanner out of register writes every cell (the uncovered edge repeats the
    plane's own edge, its background: no cell wraps round)."""
    x = np.asarray(crops, np.float32)
    out = x.copy()
    if shift_px:
        out[:, channel] = ndimage.shift(x[:, channel], (0, 0, shift_px), order=0,
                                        mode="nearest")
    return out


# ---------------------------------------------------------------------------------------------
# The declared matrix.

@dataclass(frozen=True)
class Cell:
    """One perturbation at one strength: ``apply(crops, rng) -> crops``."""

    family: str          # e.g. "bleed"
    name: str            # e.g. "bleed CK->CD61"
    strength: float
    label: str           # strength as shown, e.g. "10%"
    range_end: bool      # an end of the stated range: the robustness targets apply here
    apply: Callable[[np.ndarray, np.random.Generator], np.ndarray]


def _cells(family, name, strengths, fmt, fn, ends=None) -> list[Cell]:
    ends = ends if ends is not None else (strengths[-1],)
    return [Cell(family, name, float(s), fmt(s), s in ends,
                 (lambda crops, rng, s=s: fn(crops, s, rng))) for s in strengths]


def perturbation_catalogue(panel: Panel) -> tuple[list[Cell], list[str]]:
    """All cells of the robustness matrix for a panel, and notes on what was skipped."""
    names, c = panel.names, panel.num_channels
    cells: list[Cell] = []
    notes: list[str] = []
    pct = lambda s: f"{s:.0%}"  # noqa: E731
    times = lambda s: f"{s:g}x"  # noqa: E731
    for ch in range(c):
        cells += _cells("stain", f"stain {names[ch]}", STAIN_FACTORS, times,
                        lambda x, s, rng, ch=ch: stain_strength(x, ch, s, panel),
                        ends=(STAIN_FACTORS[0], STAIN_FACTORS[-1]))
    for src in range(c):
        for dst in range(c):
            if src != dst:
                cells += _cells("bleed", f"bleed {names[src]}->{names[dst]}", BLEED_FRACTIONS,
                                pct, lambda x, s, rng, a=src, b=dst: bleed(x, a, b, s, panel))
    for target_role, pattern_role in NONSPECIFIC_PAIRS:
        t, p = panel.index_of_role(target_role), panel.index_of_role(pattern_role)
        if t is None or p is None:
            notes.append(f"nonspecific {target_role} on {pattern_role}-positive cells skipped: "
                         f"the panel {names} has no {target_role if t is None else pattern_role}"
                         " marker")
            continue
        cells += _cells("nonspecific", f"{names[t]} += {names[p]} pattern",
                        NONSPECIFIC_FRACTIONS, pct,
                        lambda x, s, rng, a=p, b=t: bleed(x, a, b, s, panel))
    cells += _cells("background", "background offset", OFFSET_FACTORS, times,
                    lambda x, s, rng: background_offset(x, s, panel))
    cells += _cells("background", "background gradient", GRADIENT_FACTORS, times,
                    lambda x, s, rng: background_gradient(x, s, rng, panel))
    px = float(panel.pixel_size_um)
    cells += _cells("optics", "defocus", DEFOCUS_UM, lambda s: f"{s:g} um",
                    lambda x, s, rng: defocus(x, s / px, panel))
    cells += _cells("camera", "noise", NOISE_FACTORS, times,
                    lambda x, s, rng: more_noise(x, s, rng, panel))
    cells += _cells("optics", "pixel size", PIXEL_SIZE_FACTORS, times,
                    lambda x, s, rng: pixel_size(x, s, panel),
                    ends=(PIXEL_SIZE_FACTORS[0], PIXEL_SIZE_FACTORS[-1]))
    cells += _cells("export", "8-bit clipped", CLIP_SHARES, lambda s: f"{s:.1%} clipped",
                    lambda x, s, rng: display_8bit_by_quantile(x, s))
    cells += _cells("export", "JPEG composite", JPEG_QUALITIES, lambda s: f"q{s:g}",
                    lambda x, s, rng: jpeg_composite(x, int(s), panel))
    cells += _cells("crop", "off centre", SHIFT_PX, lambda s: f"{s:g} px",
                    lambda x, s, rng: off_centre(x, s, rng))
    dna = panel.index_of_role("nucleus")
    for ch in (ch for ch in range(c) if ch != dna):
        # Shifted by whole pixels: the label says the shift applied, not only the one asked.
        cells += _cells("registration", f"{names[ch]} out of register", REGISTRATION_UM,
                        lambda s: f"{s:g} um ({int(round(s / px))} px)",
                        lambda x, s, rng, ch=ch: misregistered(x, ch, int(round(s / px))),
                        ends=(1.0,))
    return cells, notes
