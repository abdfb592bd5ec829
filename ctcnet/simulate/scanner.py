"""Per-sample draws of the knobs: one scanner run and one staining per simulated sample.

Everything a crop or frame of sample ``s`` needs is in row ``s`` of a :class:`SampleDraws`
array, so rendering code indexes by sample and never loops over samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ctcnet.io.panel import Panel
from ctcnet.simulate.cells import CTC_MEDIAN_DIAMETER_UM
from ctcnet.simulate.config import SimConfig, draw
from ctcnet.simulate.optics import bleed_matrices
from ctcnet.simulate.primitives import ROLES, Context


@dataclass
class SampleDraws:
    """Per-sample scanner and stain draws (one row per simulated sample): pixel size, offset,
    gains, background, optics and noise."""
    pixel_um: np.ndarray       # (S,) µm per pixel
    offset: np.ndarray         # (S,) camera offset, counts
    channel_gain: np.ndarray   # (S, C) intensity scale of each channel
    background: np.ndarray     # (S, C) background over offset at gain 1, counts
    patchiness: np.ndarray     # (S,)
    falloff: np.ndarray        # (S,) vignetting
    psf_um: np.ndarray         # (S,)
    camera_gain: np.ndarray    # (S,)
    read_noise: np.ndarray     # (S,)
    bleed: np.ndarray          # (S, C, C)
    stain: np.ndarray          # (S, R) stain strength per role (x ck_scale for CK)
    ctc_median_um: np.ndarray  # (S,) cancer type of the sample
    neighbour_rate: np.ndarray  # (S,)
    display_max: np.ndarray    # (S, C) 8-bit export ceiling, counts over offset
    noise_nominal: np.ndarray  # (S, R) background noise sd per role in nominal counts
    nonspecific_ck: np.ndarray  # (S,) share of leukocytes with non-specific CK
    green_role: np.ndarray     # (S,) ROLES index of the marker in the green channel, -1: none

    @property
    def spillover(self) -> np.ndarray:
        """(S, C, C) the sample's true spillover as an instrument measures it: counts seen in
        channel t per count of channel s's own dye (``[:, t, s]``), unit diagonal. The ground
        truth a spillover estimate is checked against."""
        gain = self.channel_gain
        return (self.bleed * gain[:, :, None] / gain[:, None, :]).astype(np.float32)


def draw_samples(rng: np.random.Generator, cfg: SimConfig, panel: Panel, n: int) -> SampleDraws:
    """Draw ``n`` samples' scanner and stain settings from the config's ranges."""
    c = panel.num_channels
    pixel = panel.pixel_size_um * draw(rng, cfg.pixel_scale, n, log=True)
    offset = draw(rng, cfg.camera_offset, n)
    gain = draw(rng, cfg.intensity_scale, (n, c), log=True)
    background = draw(rng, cfg.background, (n, c), log=True)
    patchiness = draw(rng, cfg.background_patchiness, n)
    falloff = draw(rng, cfg.illumination_falloff, n)
    psf = draw(rng, cfg.psf_sigma_um, n)
    cam_gain = draw(rng, cfg.camera_gain, n, log=True)
    read = draw(rng, cfg.read_noise, n)
    # Bleed fractions are defined in camera counts (as spillover is measured on an instrument);
    # the mixing runs before the channel gain, so convert: m[j, i] * gain_i / gain_j.
    bleed = bleed_matrices(rng, n, c, *cfg.bleed_through, pairs=cfg.bleed_pairs)
    for source, seen_in, fraction in cfg.instrument_bleed:
        i, j = panel.index_of(source), panel.index_of(seen_in)
        if i is not None and j is not None:
            bleed[:, j, i] += fraction
    bleed = bleed * (gain[:, None, :] / gain[:, :, None]).astype(np.float32)
    stain = draw(rng, cfg.stain_strength, (n, len(ROLES)), log=True)
    stain[:, ROLES.index("nucleus")] = draw(rng, cfg.dna_stain_strength, n, log=True)
    stain[:, ROLES.index("epithelial")] *= cfg.ck_scale
    stain[:, ROLES.index("all")] = 1.0
    types = np.array(list(CTC_MEDIAN_DIAMETER_UM.values()))
    ctc_median = types[rng.integers(0, len(types), n)]
    rate = draw(rng, cfg.neighbours, n)
    display_max = draw(rng, cfg.display_max, (n, c)) * gain
    # Nominal noise (noise_scale 1) of each role's channel, in counts before the channel gain:
    # the unit of the decidability floors.
    sd_out = np.sqrt(cam_gain[:, None] * background * gain + read[:, None] ** 2)
    noise = np.ones((n, len(ROLES)))
    for ch, role in enumerate(panel.roles()):
        if role in ROLES:
            noise[:, ROLES.index(role)] = sd_out[:, ch] / gain[:, ch]
    nonspecific = draw(rng, cfg.nonspecific_ck_rate, n)
    # The free (green, FITC) channel holds one of the panel's extra markers; which one is a
    # property of the assay, so it is drawn per sample rather than read from the channel order.
    extra = [ROLES.index(r) for r in panel.roles()
             if r in ROLES and r not in ("nucleus", "epithelial", "leukocyte", "all")]
    green = (np.array(extra)[rng.integers(0, len(extra), n)] if extra
             else np.full(n, -1, np.int64))
    return SampleDraws(pixel, offset, gain, background, patchiness, falloff, psf, cam_gain, read,
                       bleed, stain, ctc_median, rate, display_max, noise, nonspecific, green)


def make_context(rng: np.random.Generator, cfg: SimConfig, panel: Panel, draws: SampleDraws,
                 event_sample: np.ndarray) -> Context:
    """Builder context for events belonging to samples ``event_sample``."""
    return Context(rng=rng, stain=draws.stain[event_sample].astype(np.float32),
                   noise=draws.noise_nominal[event_sample].astype(np.float32),
                   ctc_median_um=draws.ctc_median_um[event_sample],
                   size_scale=float(cfg.cell_size_scale),
                   panel_roles=frozenset(panel.roles()), ck_scale=float(cfg.ck_scale),
                   dim_ck_min_snr=cfg.dim_ck_min_snr,
                   ck_negative_min_snr=cfg.ck_negative_min_snr, cd45_min_snr=cfg.cd45_min_snr,
                   cd45_bright_snr=cfg.cd45_bright_snr, cd45_dim_share=cfg.cd45_dim_share,
                   shape_swap=cfg.shape_swap, ctc_rim_share=cfg.ctc_rim_share,
                   ctc_nucleus_ratio=tuple(cfg.ctc_nucleus_ratio),
                   ctc_size_spread=cfg.ctc_size_spread,
                   ctc_min_diameter_um=cfg.ctc_min_diameter_um,
                   ctc_elongation=tuple(cfg.ctc_elongation),
                   monocyte_radius_um=tuple(cfg.monocyte_radius_um),
                   cd45_membrane_fill=tuple(cfg.cd45_membrane_fill),
                   faint_ck_share=cfg.faint_ck_share,
                   nonspecific_ck_diffuse_share=cfg.nonspecific_ck_diffuse_share,
                   nonspecific_ck=draws.nonspecific_ck[event_sample],
                   nonspecific_ck_ratio=tuple(cfg.nonspecific_ck_ratio),
                   green_role=draws.green_role[event_sample],
                   autofluorescence=tuple(cfg.granulocyte_autofluorescence))


def threaded_map(fn, count: int) -> list:
    """``[fn(i) for i in range(count)]`` on a thread per core (at most 8), in order.

    FFTs, matrix products, the noise generator and TIFF writing release the GIL, so threads
    keep the cores busy without the cost of processes; each item has its own seed, so the
    result does not depend on the threading.
    """
    import os
    from concurrent.futures import ThreadPoolExecutor

    workers = min(8, os.cpu_count() or 1, count)
    if workers <= 1:
        return [fn(i) for i in range(count)]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(fn, range(count)))
