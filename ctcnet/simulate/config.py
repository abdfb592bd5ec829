"""Simulator knobs: what varies between scanners, stains and samples, and by how much.

``SimConfig()`` holds the documented default ranges the shipped model trains over: wide enough
that a lab's own scanner falls inside them (channel intensity over 10x, backgrounds, blur, noise,
pixel size, bleed-through, stain strength). A knob given as ``(low, high)`` is drawn once per
simulated sample ("patient": one scanner run, one staining) unless its comment says otherwise;
scale-like knobs are drawn log-uniformly. ``SimConfig.clean()`` is one nominal CellSearch-like
scanner with little randomisation. ``with_shift(name)`` applies a named distribution shift from
``NAMED_SHIFTS`` for evaluation (a model is trained on ``SimConfig()`` and tested on shifts).

What keeps every label decidable from marker evidence over the whole range (documented here
because the model can only be as right as the labels):

* ctc_dim (CK-dim / EMT CTC) versus bare_nucleus: a ctc_dim has CK of at least
  ``dim_ck_min_snr`` background-noise units spread over a cytoplasm whose diameter is at least
  1.5x its nucleus; a bare nucleus has no CK, no cytoplasm, no CD45 and no vimentin. Only when the
  panel has vimentin or EpCAM may a ctc_dim's CK drop to ``ck_negative_min_snr`` (CK-negative EMT
  cell), and then that marker carries the evidence.
* ctc_dim versus a leukocyte: no CD45 at all on any CTC (beyond bleed-through, which copies
  another channel's pattern at a fixed ratio); every leukocyte has CD45 of at least
  ``cd45_min_snr`` noise units (all but a dim tail ``cd45_bright_snr``), also when it carries
  non-specific CK (a CK+CD45+ double positive is a leukocyte). Shape is not part of the rule:
  with ``shape_swap`` any class's cell may take any other's outline, size and nucleus.
* ctc versus a CTC fragment (debris): a fragment's CK is in pieces or one body under 4 µm,
  and its DAPI, when it has any, is one dim speck at most 1.6 µm across; a CTC's nucleus is at
  least 2.3 µm across (4-9 µm typically) and holds more DAPI than any speck at the same stain.
* ctc versus cluster: cluster partners touch the CTC; crop neighbours keep a gap of at least
  ``neighbour_gap_um`` (a CTC neighbour never touches the labelled object) and are never
  clusters or platelets.
These floors are set against the nominal noise (before the ``noise_scale`` and ``ck_scale``
shifts), so a shift really does make the task harder.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, replace

import numpy as np

from ctcnet.errors import InputError

Range = tuple[float, float]


def _default_subtype_weights() -> dict:
    # Within-class mixture of subtypes; a subtype whose marker the panel lacks is dropped.
    return {
        "ctc_bright": 0.55, "ctc_dim": 0.30, "ctc_apoptotic": 0.15,
        "lymphocyte": 0.45, "neutrophil": 0.40, "monocyte": 0.15,
        "ctc_neutrophil": 0.45, "ctc_platelet": 0.30, "ctc_doublet": 0.25,
        "tdev": 0.26, "bare_nucleus": 0.18, "fragment": 0.11, "aggregate": 0.09, "blob": 0.09,
        "fibre": 0.06, "edge_cut": 0.12, "autofluorescent": 0.09,
    }


def _default_neighbour_weights() -> dict:
    # What lies near a detected event in an enriched sample: mostly leukocytes, some debris.
    # A few CK+ neighbours (CTCs, aggregates) teach that the object at the centre decides the
    # call: in a real scan a leukocyte beside a CTC is cropped with the CTC in view.
    return {"lymphocyte": 0.35, "neutrophil": 0.30, "monocyte": 0.08, "bare_nucleus": 0.08,
            "tdev": 0.12, "fragment": 0.04, "blob": 0.03, "ctc_bright": 0.04, "aggregate": 0.03}


@dataclass(frozen=True)
class SimConfig:
    """Randomisation knobs of the simulator (see module docstring for the decidability rules)."""

    # --- scanner, drawn per sample -------------------------------------------------------------
    # Per-channel gain on everything the camera sees (signal and background), log-uniform:
    # scanners and exposure settings differ 10x in counts for the same cell.
    intensity_scale: Range = (0.33, 3.0)
    camera_offset: Range = (100.0, 200.0)      # counts added by the camera (pseudo 12-bit)
    background: Range = (10.0, 80.0)           # per channel, counts over offset at gain 1
    background_patchiness: Range = (0.03, 0.25)  # relative std of the slowly varying background
    illumination_falloff: Range = (0.0, 0.3)   # vignetting: relative loss at the frame corners
    psf_sigma_um: Range = (0.55, 1.3)          # Gaussian PSF sigma of a 10x objective, in µm
    defocus_um: Range = (0.0, 0.7)             # extra blur drawn per crop / frame (focus drift)
    camera_gain: Range = (0.7, 2.0)            # counts per photon: shot-noise variance = gain*x
    read_noise: Range = (2.0, 6.0)             # Gaussian read noise sd, counts
    noise_scale: float = 1.0                   # multiplies the noise sd (shift "noise_2x")
    pixel_scale: Range = (0.7, 1.3)            # x the panel pixel size: 0.64 -> 0.45..0.83 µm
    # Spectral bleed-through: the fraction of each channel's dye seen in every OTHER channel,
    # drawn per sample and per ordered channel pair (log-uniform when low > 0). Set by dyes and
    # filters, not by the order of channels in a file: PE leaks into the FITC and APC filters,
    # DAPI into the green one; a few % is typical, 10 % happens (DOMAIN.md). A bright cell's
    # ghost in another channel must be read as a leak (same pattern, fixed ratio), not as stain.
    bleed_through: Range = (0.002, 0.10)
    bleed_pairs: str = "all"                   # "neighbours": the earlier model (ablations)
    # One instrument's own filter set, the same on every sample it scans: (dye's channel, channel
    # it is seen in, fraction), by channel name or alias (``Panel.index_of``), added to the
    # drawn matrix. Pairs naming a channel the panel lacks are skipped. Empty for the training
    # ranges (no instrument's spillover is a given); the new-scanner protocol of
    # scripts/adaptation_curve.py sets it.
    instrument_bleed: tuple[tuple[str, str, float], ...] = ()
    # Per marker, log-uniform: antibody lot, staining protocol and fluorophore differ 30x and
    # more between labs and runs (floors in noise units keep dim markers decidable).
    stain_strength: Range = (0.18, 5.5)
    # DAPI is a small dye, not an antibody: its staining varies far less between runs.
    dna_stain_strength: Range = (0.5, 2.0)
    saturation: float = 4095.0                 # pseudo 12-bit ceiling of the camera
    # --- biology, drawn per sample ---------------------------------------------------------------
    ck_scale: float = 1.0                      # multiplies CK expression (shift "dim_ck")
    cell_size_scale: float = 1.0               # multiplies every object size (size shifts)
    neighbours: Range = (0.2, 1.5)             # mean number of extra objects per crop
    neighbour_gap_um: float = 3.0              # a neighbour never touches the labelled object
    centre_jitter_um: float = 2.0              # detections are not perfectly centred
    # Floor of a ctc_dim's CK, in noise units. CK-positive is the CellSearch definition: at 8 the
    # dimmest CTC's CK (textured, crescent or a thin rim, then blurred) still shows in a tight
    # export (3x3 peak >= 10 of 255 on 99 % of CTCs; at 4, 7-20 % of CTCs showed no CK at all
    # and no reader could call them from the image).
    dim_ck_min_snr: float = 8.0
    ck_negative_min_snr: float = 2.0           # CK-negative EMT CTC floor (needs vim/EpCAM)
    # A leukocyte's CD45, in noise units: real leukocytes show CD45 clearly on every one (in
    # 8-bit single-cell exports its 95th percentile is near 150 of 255), so all but a dim
    # tail (cd45_dim_share) reach cd45_bright_snr; that tail lies between cd45_min_snr and it.
    cd45_min_snr: float = 5.0
    cd45_bright_snr: float = 30.0
    cd45_dim_share: float = 0.08
    # How cells look (what real single-cell images show; ``with_filled_ctc_look`` gives the look
    # the shipped default model was trained on):
    ctc_rim_share: float = 0.4                 # CTCs whose CK is a rim over a dim interior
    ctc_nucleus_ratio: Range = (0.5, 0.85)     # nucleus over cell radius (dim CTCs: -0.08)
    ctc_size_spread: float = 0.25              # log-normal sd of CTC diameters
    ctc_min_diameter_um: float = 4.5           # the CellSearch rule asks > 4 um
    # CTC length over width, area kept, nucleus stretched along (square root of it): spindle
    # and EMT CTCs are 2-3x as long as wide. (1, 1): the native round-to-oval outline only.
    ctc_elongation: Range = (1.0, 1.0)
    monocyte_radius_um: Range = (6.0, 8.5)     # large monocytes reach CTC sizes
    cd45_membrane_fill: Range = (0.45, 0.85)   # CD45 inside the cell, as a share of its rim
    faint_ck_share: float = 0.3                # leukocytes with 1-3 noise units of CK
    nonspecific_ck_diffuse_share: float = 0.4  # non-specific CK filling the cell, not the rim
    # Share of cells (CTCs, leukocytes, cluster members, bare nuclei) drawn with another
    # class's shape: outline, size and nucleus (``cells.SHAPES``), their own class's markers.
    # 0 keeps each class's native shape; the shape-swap test family sets 1, where shape says
    # nothing of the class (or the opposite), and only the markers name it.
    shape_swap: float = 0.0
    # Non-specific CK on leukocytes (Fc receptors, damaged cells): the share of a sample's
    # leukocytes that are CK+CD45+ double positives (labelled wbc: a CD45+ event is no CTC),
    # and their CK relative to their own CD45 (log-uniform).
    # Most real leukocytes show some signal in the CK channel (non-specific binding, bleed, a
    # viewer's per-channel stretch), at any level.
    nonspecific_ck_rate: Range = (0.4, 0.95)
    nonspecific_ck_ratio: Range = (0.1, 2.0)
    # Granulocyte autofluorescence in the green (free, FITC) channel, in nominal noise units:
    # which panel marker sits in that channel is drawn per sample among the extra markers.
    granulocyte_autofluorescence: Range = (0.5, 8.0)
    # --- export ---------------------------------------------------------------------------------
    output_bits: int = 12                      # 8: display export scaled to 0..255 and clipped
    display_max: Range = (300.0, 1200.0)       # 8-bit export: counts over offset shown as 255
    subtype_weights: dict = field(default_factory=_default_subtype_weights)
    neighbour_weights: dict = field(default_factory=_default_neighbour_weights)
    shifts: tuple[str, ...] = ()               # names of the shifts applied, for the record

    @classmethod
    def clean(cls) -> SimConfig:
        """One nominal CellSearch-like scanner (0.64 µm, moderate blur and noise)."""
        return cls(intensity_scale=(1.0, 1.0), camera_offset=(150.0, 150.0),
                   background=(30.0, 30.0), background_patchiness=(0.1, 0.1),
                   illumination_falloff=(0.1, 0.1), psf_sigma_um=(0.8, 0.8),
                   defocus_um=(0.0, 0.2), camera_gain=(1.0, 1.0), read_noise=(3.0, 3.0),
                   pixel_scale=(1.0, 1.0), bleed_through=(0.02, 0.02),
                   stain_strength=(1.0, 1.0), neighbours=(0.5, 0.5),
                   nonspecific_ck_rate=(0.0, 0.0), granulocyte_autofluorescence=(0.0, 0.0))

    def with_filled_ctc_look(self) -> SimConfig:
        """This config with the cell look the shipped default model was trained on:
        CTCs CK-filled round smaller nuclei and at least 5.5 um across, CD45 floored at 5 noise
        units on every leukocyte (many barely visible in an export), non-specific CK on up to
        half of a sample's leukocytes and on their membrane only."""
        return dataclasses.replace(
            self, ctc_rim_share=0.0, ctc_nucleus_ratio=(0.5, 0.72), ctc_size_spread=0.18,
            ctc_min_diameter_um=5.5, monocyte_radius_um=(6.0, 7.5),
            cd45_membrane_fill=(0.25, 0.5), faint_ck_share=0.1,
            nonspecific_ck_diffuse_share=0.0, cd45_bright_snr=5.0, cd45_dim_share=0.0,
            nonspecific_ck_rate=(0.0, 0.5), nonspecific_ck_ratio=(0.05, 2.0))

    def with_shift(self, *names: str) -> SimConfig:
        """This config with one or more named shifts applied (see ``NAMED_SHIFTS``)."""
        cfg = self
        for name in names:
            if name not in NAMED_SHIFTS:
                raise InputError(f"unknown shift {name!r}; known shifts: {sorted(NAMED_SHIFTS)}")
            _, changes = NAMED_SHIFTS[name]
            updates = {k: (f(getattr(cfg, k)) if callable(f) else f) for k, f in changes.items()}
            cfg = dataclasses.replace(cfg, shifts=cfg.shifts + (name,), **updates)
        return cfg

    def summary(self) -> dict:
        """Plain JSON-able record of every knob (stored beside simulated data)."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out


def _times(factor: float):
    return lambda r: (r[0] * factor, r[1] * factor) if isinstance(r, tuple) else r * factor


# name -> (what it does, {knob: new value or function of the old value})
NAMED_SHIFTS: dict[str, tuple[str, dict]] = {
    "defocus": ("out of focus: 1.2-2.0 µm extra blur", {"defocus_um": (1.2, 2.0)}),
    "dim_ck": ("CK expression 2x dimmer", {"ck_scale": _times(0.5)}),
    "noise_2x": ("noise standard deviation doubled", {"noise_scale": _times(2.0)}),
    "pixel_size": ("another scanner's pixel size: 0.7x the panel's (0.45 µm at 0.64)",
                   {"pixel_scale": (0.7, 0.7)}),
    "small_cells": ("every object 0.7x smaller", {"cell_size_scale": _times(0.7)}),
    "large_cells": ("every object 1.5x larger", {"cell_size_scale": _times(1.5)}),
    "elongated_ctcs": ("CTCs spindle-shaped: 1.8-3x as long as wide (area kept), nucleus "
                       "stretched along", {"ctc_elongation": (1.8, 3.0)}),
    "bleed_through": ("strong spectral bleed-through between every channel pair (8-20 %)",
                      {"bleed_through": (0.08, 0.20)}),
    "display_8bit": ("8-bit display export: scaled to 0..255, highlights clipped",
                     {"output_bits": 8}),
}


def draw(rng: np.random.Generator, r: Range, size=None, log: bool = False) -> np.ndarray:
    """Uniform (or log-uniform) draws from a (low, high) knob; low == high gives the constant."""
    lo, hi = float(r[0]), float(r[1])
    if log:
        return np.exp(rng.uniform(np.log(lo), np.log(hi), size))
    return rng.uniform(lo, hi, size)


def with_overrides(config, overrides: dict | None):
    """A SimConfig with knobs replaced (lists become ranges; subtype/neighbour weights are
    merged into the config's own, so one weight can be raised alone)."""
    if not overrides:
        return config
    known = {f.name for f in dataclasses.fields(config)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise InputError(f"data.simulate.overrides: unknown simulator knobs {unknown}")
    changes = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
    for key in ("subtype_weights", "neighbour_weights"):
        if key in changes:
            changes[key] = {**getattr(config, key), **changes[key]}
    return dataclasses.replace(config, **changes)


def at_panel_ceiling(cfg: SimConfig, panel) -> SimConfig:
    """``cfg`` with the camera's ceiling at ``panel``'s: the lowest top of its channels'
    value ranges (a 14-bit scanner's 16383), where the config keeps the 12-bit default. The
    counts are drawn as before (the same exposure), but no longer clip at 4095 in files whose
    panel.json says they reach 16383; an 8-bit export keeps its own scale, and an 8-bit panel
    is drawn as one (the counts shown on 0-255: drawn at the 12-bit exposure and cut at 255,
    nine tenths of a channel's pixels were at its top)."""
    top = min(float(c.value_range[1]) for c in panel.channels)
    if cfg.saturation != SimConfig.saturation or cfg.output_bits == 8 or top == cfg.saturation:
        return cfg
    return replace(cfg, output_bits=8) if top <= 255 else replace(cfg, saturation=top)
