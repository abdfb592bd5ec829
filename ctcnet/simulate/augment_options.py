"""What the training augmentation is told: :class:`AugmentConfig` (each step's probability and
ranges), built from a config's mapping of overrides by :func:`augment_config`, and
:func:`export_only`, the export view a ``view: export`` model's validation crops are given.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass

import yaml

from ctcnet.errors import InputError
from ctcnet.simulate.export import EXPORT_HEADROOM


@dataclass
class AugmentConfig:
    """Probabilities and ranges; the defaults suit 64-96 px crops at ~0.64 um/px."""

    flips: bool = True
    rotate90: bool = True
    affine_p: float = 0.5
    shift_fraction: float = 0.06      # of the crop side; cells are detected near the centre
    scale_range: tuple[float, float] = (0.85, 1.15)
    rotate_degrees: float = 20.0
    blur_p: float = 0.25
    blur_sigma: tuple[float, float] = (0.3, 1.5)   # px, on top of the scanner's own PSF
    defocus_radius: tuple[int, int] = (1, 3)
    gain_p: float = 0.5
    gain_range: tuple[float, float] = (0.2, 5.0)   # per-channel signal gain, log-uniform
    gamma_p: float = 0.3
    gamma_range: tuple[float, float] = (0.7, 1.4)
    # Rarely: the simulator already varies noise widely.
    noise_p: float = 0.15
    noise_range: tuple[float, float] = (0.2, 1.0)  # added noise sd, in units of the crop's noise
    offset_p: float = 0.3
    offset_range: tuple[float, float] = (-0.3, 0.5)  # background shift, fraction of background
    scale_p: float = 0.5
    intensity_scale: tuple[float, float] = (0.3, 3.0)  # whole-crop scale, log-uniform (10x)
    # Bleed-through between 1-3 random ordered channel pairs, fraction log-uniform.
    bleed_p: float = 0.5
    bleed_range: tuple[float, float] = (0.003, 0.12)
    # Non-specific CK: CK += ratio x the CD45 signal (needs the panel's roles).
    nonspecific_ck_p: float = 0.3
    nonspecific_ck_ratio: tuple[float, float] = (0.05, 2.0)
    # Non-specific neutrophil marker (CD66b) on other leukocytes: += ratio x CD45 (off by default).
    nonspecific_neutrophil_p: float = 0.0
    # A copy of a scan crop's CK signal in its CD45 channel, at ``ck_copy_share`` of it, on
    # ``ck_copy_p`` of the crops of every class (off by default): published dim-CK CTCs show
    # their CK faintly in the CD45 channel (15-30 %), far above the few per cent of the
    # random bleed above, and a network that never saw it reads such a CTC as CD45-positive.
    # Every class gets it, as the optics would: a copy says nothing of the class.
    ck_copy_p: float = 0.0
    ck_copy_share: tuple[float, float] = (0.15, 0.3)
    jpeg_p: float = 0.0               # share of crops shown as 8-bit RGB-JPEG composites
    jpeg_quality: tuple[int, int] = (60, 95)
    # The export's magnification against the crop (log-uniform; 1: exported at model scale):
    # viewer exports are made at any zoom, and JPEG at a finer pixel size looks different.
    jpeg_zoom: tuple[float, float] = (1.0, 1.0)
    # The export's display maximum over the crop's own bright end (log-uniform): a sample's
    # export is ranged for its brightest events, so most crops sit far below 255.
    jpeg_headroom: tuple[float, float] = EXPORT_HEADROOM
    # Optics on the signal only (background and camera noise stay, as a scanner makes them):
    # objects ``zoom`` times as large (a scanner of another pixel size, not resampled; log-
    # uniform) and defocus (a further Gaussian of ``sigma`` px). Off by default.
    zoom_p: float = 0.0
    zoom_range: tuple[float, float] = (0.6, 2.1)
    defocus_p: float = 0.0
    defocus_sigma: tuple[float, float] = (0.5, 3.5)
    # 8-bit display export of every channel (off by default): per channel a floor of 0-3 noise
    # sd below background maps to 0 and a ceiling ``export_ceiling`` noise sd above it
    # (log-uniform) to 255, brighter highlights clip; a share of those crops is also saved as
    # lossy JPEG composites of channel triples (random quality and chroma subsampling).
    # Uneven illumination (off by default): a linear ramp in a random direction, zero at the
    # centre, ``gradient_range`` x the background from edge to edge.
    gradient_p: float = 0.0
    gradient_range: tuple[float, float] = (0.05, 0.6)
    export_p: float = 0.0
    export_ceiling: tuple[float, float] = (10.0, 800.0)
    export_jpeg_share: float = 0.5
    export_quality: tuple[int, int] = (40, 95)
    # Tight single-cell exports (off by default): a share of crops cut around the object,
    # auto-contrasted with a black background, JPEG-saved for ``tight_jpeg_share`` of them,
    # and read back at a scale off by a log-uniform factor in ``tight_scale_error``.
    tight_p: float = 0.0
    tight_jpeg_share: float = 0.5
    tight_scale_error: tuple[float, float] = (0.5, 2.0)
    # The export's pixel size as a fraction of the crop's (log-uniform: 1 to 4x finer), so
    # its display range clips noise at the export's finer pixels (ctcnet.simulate.export).
    tight_fine: tuple[float, float] = (1.0, 4.0)
    # The marker channels' display ranges tied (``TIGHT_MARKER_SPAN`` of
    # ctcnet.simulate.export), as the test exports tie them and published figures show a leak:
    # a bright CTC's CK bleeding into CD45 stays faint instead of being stretched into a CD45
    # that a network would learn to ignore. Needs the panel's roles; False stretches each
    # channel alone (the shipped export models' training).
    tight_tied_markers: bool = True
    # A copy of the CK plane in the CD45 plane of a tight export, at ``tight_ck_copy_share`` of
    # CK's display level, on ``tight_ck_copy_p`` of the exports of every class (off by
    # default): published dim-CK CTCs show one (CK's dye seen through the CD45 filter, a
    # viewer's stretch lifting it), where the tied display ranges above leave a scan's bleed a
    # few per cent. Every class gets it, as the optics would: a copy says nothing of the class.
    tight_ck_copy_p: float = 0.0
    tight_ck_copy_share: tuple[float, float] = (0.15, 0.3)

    def to_dict(self) -> dict:
        """The settings as plain data (tuples as lists), as configs and the card hold them."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def augment_config(cfg: AugmentConfig | dict | None = None) -> AugmentConfig:
    """An :class:`AugmentConfig` from a mapping of overrides, each value brought to its
    option's type. A dotted command-line override arrives as text
    (``--data.augment.nonspecific_ck_p=0.45`` is the string ``'0.45'``), which would fail only
    later, in a data-loader worker, after the training data were made; an unknown option or a
    value of the wrong kind is refused here, by name."""
    if cfg is None or isinstance(cfg, AugmentConfig):
        return cfg or AugmentConfig()
    if not isinstance(cfg, dict):
        raise InputError(f"data.augment must be a mapping of options or false, got {cfg!r}")
    defaults = AugmentConfig()
    known = [f.name for f in dataclasses.fields(AugmentConfig)]
    unknown = sorted(set(cfg) - set(known))
    if unknown:
        raise InputError(f"data.augment: unknown option(s) {', '.join(unknown)} (known: "
                         f"{', '.join(known)})")
    return AugmentConfig(**{name: _as_type_of(getattr(defaults, name), value, name)
                            for name, value in cfg.items()})


# The steps that make a crop an export; every other step is an optics or stain shift.
EXPORT_STEPS = ("jpeg_p", "tight_p")


def export_only(cfg: AugmentConfig) -> AugmentConfig:
    """``cfg`` with only its export steps left (``EXPORT_STEPS``, with their ranges): the
    view a ``view: export`` model's validation and test crops get, as deployment shows them,
    not as training perturbs them. Flips, turns and every other step are off."""
    off = {f.name: 0.0 for f in dataclasses.fields(AugmentConfig)
           if f.name.endswith("_p") and f.name not in EXPORT_STEPS}
    return dataclasses.replace(cfg, flips=False, rotate90=False, **off)


def _as_type_of(default, value, name: str):
    """``value`` (a number, a list, or their text) as the type of ``default``."""
    try:
        return _converted(default, yaml.safe_load(value) if isinstance(value, str) else value)
    except (TypeError, ValueError):
        kind = f"{len(default)} numbers" if isinstance(default, tuple) else \
            type(default).__name__
        raise InputError(f"data.augment.{name}: expected {kind} (like {default!r}), got "
                         f"{value!r}") from None


def _converted(default, value):
    # '0.45' -> 0.45, '[0.1, 3]' -> (0.1, 3.0), 'false' -> False (text parsed as YAML first)
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ValueError(value)
        return value
    if isinstance(default, tuple):
        if not isinstance(value, (list, tuple)) or len(value) != len(default):
            raise ValueError(value)
        return tuple(_converted(d, v) for d, v in zip(default, value))
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(default, int):
        if float(value) != int(value):
            raise ValueError(value)
        return int(value)
    return float(value)
