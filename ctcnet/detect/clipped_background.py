"""Crops whose background was subtracted and clipped at 0, read as a camera's counts again.

A viewer or a lab's script may take each channel's background off an export and clip what
falls under it at 0. ctcnet reads a camera's counts: the models' normalisation and the marker
guard read a crop's background and noise from the 10th and 30th percentiles of its pixels, as
a Gaussian background's, and such a crop has lost the background's lower half. Its noise then
falls back to a share of the crop's brightest channel (``ctcnet.inference.spillover``), a unit
unrelated to the noise: on 600 simulated crops (`ctcnet simulate crops --seed 777`) subtracted
at each channel's median, macro-F1 fell from 0.982 to 0.951 and the crops sent to review rose
from 7.7 % to 17.3 %, without a word.

:func:`restore_clipped_background` draws the clipped pixels again. Per channel where
``CLIPPED_SHARES`` of the pixels read (every second one, as the background is) are exactly 0,
the background is taken for a Gaussian whose lower part the clip took (the share ``z`` of the
pixels at 0) and whose upper part the pixels over 0 still show. Its noise and level come from
two percentiles over the clip, at ``z + s (1 - z)`` for the shares ``s`` of ``SPANS``: two,
not the clip and one, as whole counts put the clip anywhere in the count under the first value
kept (a bias of a tenth of the noise or more where it is a few counts); both lie in the
background while objects cover less than half of what lies over the clip. Each pixel at 0
becomes ``level + sd Phi^-1(u Phi(-level / sd))``: the Gaussian under 0, at the rank ``u`` of a
fixed pattern, so the same crop always gives the same pixels and the same call. Zeros the
Gaussian puts far less than their share under 0 (``PADDING_SHARE``: a camera's offset of
hundreds of counts beside a padded strip) are padding, not a clip, and are left as they are.

The same 600 crops subtracted at each channel's 20th, 50th and 70th percentile
(``scripts/background_subtracted.py``), clipped and restored: macro-F1 0.962 / 0.951 / 0.958
against 0.977 / 0.973 / 0.975 (0.982 unsubtracted), crops sent to review 16.2 / 17.3 / 13.5 %
against 6.8 / 8.0 / 11.5 % (7.7 %), leukocytes and debris called ``ctc`` 7 / 5 / 4 against 3
/ 3 / 3 (2), CTCs called or shown 148 / 149 / 147 against 148 of 150 each (149).
"""

from __future__ import annotations

import functools

import numpy as np

from ctcnet.core.robust import CLIPPED_SHARES, percentiles

# Where over the clip the background's spread is read: these shares of the pixels over it.
SPANS = (0.1, 0.45)
# The pixels the background is read from (every second one, as the normalisation reads).
STEP = 2
_PATTERN_SEED = 20261204
# Zeros are a clipped background's lower half where the Gaussian the pixels over them show puts
# about their share under 0; where it puts under this share of it there, they are something
# else (padding), and the channel is left as it is.
PADDING_SHARE = 0.25


@functools.lru_cache(maxsize=4)
def _ranks(c: int, h: int, w: int) -> np.ndarray:
    """(c, h, w) fixed ranks in (0, 1), one plane a channel (a pattern shared by two channels
    would read as structure one copies of the other); float32, 29 MB for a CellSearch frame."""
    ranks = np.random.default_rng(_PATTERN_SEED).random((c, h, w), np.float32)
    ranks = np.clip(ranks, np.float32(1e-6), np.float32(1 - 1e-6))
    ranks.flags.writeable = False  # shared between calls and threads
    return ranks


def clipped_channels(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the channels of a (C, H, W) crop or frame whose background reads as clipped at 0,
    their shares of pixels at 0), by :data:`CLIPPED_SHARES`."""
    # Only channels whose lowest value is 0 are read further: a pass over the pixels, a
    # tenth of a frame's sampled share (0.2 against 2 ms on a CellSearch frame).
    candidates = np.flatnonzero(image.reshape(len(image), -1).min(axis=1) == 0)
    zero = (image[candidates, ::STEP, ::STEP] == 0).mean(axis=(1, 2))
    clipped = (zero >= CLIPPED_SHARES[0]) & (zero <= CLIPPED_SHARES[1])
    return candidates[clipped], zero[clipped]


def subtracted_note(channels: list[str]) -> str:
    """What is said of crops or frames whose ``channels`` had their clipped background drawn."""
    low, high = (round(100 * share) for share in CLIPPED_SHARES)
    return (f"background subtracted and clipped at 0 in {', '.join(channels)} ({low}-{high}% "
            "of a channel's pixels at 0, where a camera's counts sit on its offset and noise): "
            "ctcnet reads a camera's counts and takes the noise from the background's lower "
            "half, so the pixels at 0 are drawn again as that half, at the level and noise the "
            "rest of the background shows; export the camera's counts where the scanner can")


def restore_clipped_background(crop: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """(the (C, H, W) crop or frame with each clipped channel's pixels at 0 drawn again as its
    background's lower tail, float32; the channels drawn). One with no such channel is
    returned as it is (its own array and type)."""
    channels, shares = clipped_channels(crop)
    if not len(channels):
        return crop, []
    # scipy only here: the base install (the command line, no scipy) imports this module.
    from scipy.special import ndtr, ndtri

    out = np.array(crop, np.float32)  # one copy, whatever the type
    ranks = _ranks(*crop.shape)
    drawn = []
    for c, z in zip(channels.tolist(), shares.tolist()):
        ranks_read = [z + span * (1 - z) for span in SPANS]
        low, high = percentiles(out[c, ::STEP, ::STEP].reshape(-1),
                                [100 * r for r in ranks_read], "nearest").astype(np.float64)
        quantiles = ndtri(ranks_read)
        sd = (high - low) / (quantiles[1] - quantiles[0])
        if not np.isfinite(sd) or sd <= 0:
            continue
        level = low - sd * quantiles[0]
        # The Gaussian's own share under 0 (z, up to the count a clip of whole counts
        # leaves): every pixel drawn lies under the clip.
        under = ndtr(-level / sd)
        if not under >= z * PADDING_SHARE:
            # Zeros the background over them cannot reach (a camera offset of hundreds of
            # counts, noise of a few): padding (a tile's or a border crop's), no clip. Drawn
            # as the Gaussian's tail they were -inf, and the frame was refused as NaN.
            continue
        at_clip = out[c] == 0
        out[c][at_clip] = level + sd * ndtri(ranks[c][at_clip] * under)
        drawn.append(c)
    return (out, drawn) if drawn else (crop, [])
