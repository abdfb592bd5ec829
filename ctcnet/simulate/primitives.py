"""The vocabulary of the simulator's biology: marker roles, primitives and the build context.

An object is built as a few *primitives* (soft ellipses or membrane rings, each with an
intensity per marker role), gathered by :class:`Primitives`; builders read what they need about
their events (stain strength, noise, the sample's CTC size and the look knobs) from a
:class:`Context`. The small helpers below draw the intensities and positions that the cell
(:mod:`ctcnet.simulate.cells`) and debris (:mod:`ctcnet.simulate.debris`) builders share.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ROLES = ("nucleus", "epithelial", "leukocyte", "platelet", "neutrophil", "mesenchymal", "epcam",
         "all")
ROLE_INDEX = {r: i for i, r in enumerate(ROLES)}
FILLED, RING = 0, 1

_FIELDS = ("event", "x", "y", "a", "b", "theta", "kind", "soft", "fill", "tex_amp", "tex_freq",
           "tex_angle", "tex_phase1", "tex_phase2", "crescent", "cres_angle")


@dataclass
class Context:
    """What builders need about the events they build (arrays indexed by event id)."""

    rng: np.random.Generator
    stain: np.ndarray          # (E, len(ROLES)) stain strength x ck_scale, per event's sample
    noise: np.ndarray          # (E, len(ROLES)) nominal background noise sd per role, counts
    ctc_median_um: np.ndarray  # (E,) median CTC diameter of the event's sample
    size_scale: float
    panel_roles: frozenset     # roles the panel shows
    ck_scale: float = 1.0
    dim_ck_min_snr: float = 8.0
    ck_negative_min_snr: float = 2.0
    cd45_min_snr: float = 5.0
    cd45_bright_snr: float = 30.0
    cd45_dim_share: float = 0.08
    shape_swap: float = 0.0                    # share of cells given another class's shape
    # The look of cells (``SimConfig``'s knobs of the same names).
    ctc_rim_share: float = 0.4
    ctc_nucleus_ratio: tuple = (0.5, 0.85)
    ctc_size_spread: float = 0.25
    ctc_min_diameter_um: float = 4.5
    ctc_elongation: tuple = (1.0, 1.0)
    monocyte_radius_um: tuple = (6.0, 8.5)
    cd45_membrane_fill: tuple = (0.45, 0.85)
    faint_ck_share: float = 0.3
    nonspecific_ck_diffuse_share: float = 0.4
    nonspecific_ck: np.ndarray | None = None   # (E,) share of leukocytes with non-specific CK
    nonspecific_ck_ratio: tuple = (0.05, 2.0)  # their CK / their CD45, log-uniform
    green_role: np.ndarray | None = None       # (E,) ROLES index in the green channel, -1 none
    autofluorescence: tuple = (0.0, 0.0)       # granulocyte green autofluorescence, noise units


class Primitives:
    """Accumulates primitives; ``arrays()`` gives one dict of concatenated arrays.

    A primitive: ``event`` (the object it belongs to), centre ``x, y`` and semi-axes ``a, b``
    (µm), rotation ``theta``, ``kind`` (FILLED soft ellipse or RING membrane with an inner
    ``fill`` fraction), edge width ``soft`` (µm), a texture (``tex_amp``: relative depth,
    ``tex_freq``: cycles per µm), a ``crescent`` fraction (how much of the shape fades away on
    one side), and ``weights``: intensity per role in ROLES.
    """

    def __init__(self):
        self._parts: list[dict] = []

    def add(self, rng: np.random.Generator, event, x, y, a, b, theta=0.0, kind=FILLED, soft=0.4,
            fill=0.0, tex_amp=0.0, tex_freq=0.5, crescent=0.0, cres_angle=None, **weights):
        """Add one primitive to each object of ``event`` (arguments as the class says: scalars or
        one value per object)."""
        event = np.asarray(event, dtype=np.int64)
        n = event.size
        if n == 0:
            return

        def full(v):  # a scalar or per-object value as one float32 array of length n
            return np.broadcast_to(np.asarray(v, dtype=np.float32), (n,)).copy()

        part = {"event": event, "x": full(x), "y": full(y), "a": full(a), "b": full(b),
                "theta": full(theta), "kind": np.full(n, kind, np.int8), "soft": full(soft),
                "fill": full(fill), "tex_amp": full(tex_amp), "tex_freq": full(tex_freq),
                "tex_angle": full(rng.uniform(0, np.pi, n)),
                "tex_phase1": full(rng.uniform(0, 2 * np.pi, n)),
                "tex_phase2": full(rng.uniform(0, 2 * np.pi, n)),
                "crescent": full(crescent),
                "cres_angle": full(rng.uniform(0, 2 * np.pi, n) if cres_angle is None
                                   else cres_angle)}
        w = np.zeros((n, len(ROLES)), np.float32)
        for role, value in weights.items():
            w[:, ROLE_INDEX[role]] = value
        part["weights"] = w
        self._parts.append(part)

    def arrays(self) -> dict:
        """Every primitive added, as one dict of concatenated arrays (empty arrays when none)."""
        if not self._parts:
            out = {k: np.zeros(0, np.float32) for k in _FIELDS}
            out["event"] = np.zeros(0, np.int64)
            out["kind"] = np.zeros(0, np.int8)
            out["weights"] = np.zeros((0, len(ROLES)), np.float32)
            return out
        return {k: np.concatenate([p[k] for p in self._parts]) for k in self._parts[0]}


def _loguni(rng, lo, hi, n):
    return np.exp(rng.uniform(np.log(lo), np.log(hi), n)).astype(np.float32)


def _amp(ctx: Context, events, role: str, lo: float, hi: float) -> np.ndarray:
    """Nominal intensity of a marker on these events: log-uniform x the sample's stain."""
    return _loguni(ctx.rng, lo, hi, len(events)) * ctx.stain[events, ROLE_INDEX[role]]


def _floor(ctx: Context, events, role: str, snr) -> np.ndarray:
    """Intensity of ``snr`` nominal noise units of this role's channel, per event."""
    return np.asarray(snr, np.float32) * ctx.noise[events, ROLE_INDEX[role]]


def _polar(rng, n, radius):
    angle = rng.uniform(0, 2 * np.pi, n)
    return radius * np.cos(angle), radius * np.sin(angle)


def _at(v, idx):
    """Index a per-object offset array, or pass a scalar through."""
    return np.asarray(v, np.float32)[idx] if np.ndim(v) else v


def _group_max(values, owner, n):
    out = np.zeros(n, np.float64)
    np.maximum.at(out, owner, values)
    return out


def _blur_loss(radius_um, sigma_um: float = 1.5):
    """1 / (peak fraction left of a disk of this radius after a Gaussian blur)."""
    return 1.0 / (1.0 - np.exp(-np.asarray(radius_um) ** 2 / (2 * sigma_um ** 2)))
