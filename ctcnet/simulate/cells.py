"""Biology of the simulator: cells, clusters and debris as lists of simple shapes, in µm.

Every object is built at the origin as a few *primitives*: soft ellipses (nuclei, nuclear lobes,
cytoplasm, puncta, fibres) or membrane rings, each with an intensity per marker *role*
(``nucleus``, ``epithelial``, ... and ``all`` for things bright in every channel, such as dye
aggregates). The optics module renders primitives into whatever channels a panel has, so one
description of a neutrophil serves a 3-channel CellSearch panel and a 6-channel research panel.

Builders are vectorised over the objects of one subtype: ``build(kind, events, ctx)`` appends
the primitives of ``len(events)`` objects and returns their radii (µm, for placement).
Intensities are nominal counts over background (before the scanner's channel gain), scaled by
the sample's stain strength; floors in noise units keep labels decidable (see ``config``).

This module holds the subtypes, the cell shapes, the cells and clusters, and
:func:`build_events`, which runs every subtype's builder; the roles, :class:`Primitives` and
the build context are in :mod:`ctcnet.simulate.primitives`, most debris builders in
:mod:`ctcnet.simulate.debris`.
"""

from __future__ import annotations

import numpy as np

from ctcnet.io.panel import CK_NEGATIVE_CTC_ROLES
from ctcnet.io.taxonomy import SUBTYPE_PARENTS
from ctcnet.simulate.debris import aggregate, autofluorescent, blob, fibre, fragment, tdev
from ctcnet.simulate.primitives import (
    FILLED,
    RING,
    ROLE_INDEX,
    ROLES,
    Context,
    Primitives,
    _amp,
    _at,
    _blur_loss,
    _floor,
    _group_max,
    _loguni,
    _polar,
)

SUBTYPES: dict[str, str] = SUBTYPE_PARENTS  # each subtype's class (its parent)
# A subtype is only simulated when the panel shows what defines it.
SUBTYPE_NEEDS = {"ctc_platelet": "platelet"}

# Median CTC diameters (µm) of CellSearch CTCs per cancer type; one type is drawn per sample.
CTC_MEDIAN_DIAMETER_UM = {"breast": 12.4, "prostate": 10.3, "bladder": 8.6, "colorectal": 7.5}

# ---------------------------------------------------------------------------------------------
# Cells. Each returns the object radius in µm; (x0, y0) shifts the object (clusters use it).
# ---------------------------------------------------------------------------------------------

def ctc_radius(ctx: Context, ev, style: str = "bright") -> np.ndarray:
    """Semi-major axis (µm) of CTCs of the sample's cancer type; always > 2.25 µm (> 4.5 µm
    across before the size knob): the CellSearch rule asks > 4 µm and has no upper limit, and
    in patient samples CTCs are often no larger than leukocytes."""
    rng, n = ctx.rng, len(ev)
    grow = 1.15 if style == "dim" else 1.0  # EMT cells are as large or larger
    diam = np.clip(ctx.ctc_median_um[ev] * grow * np.exp(rng.normal(0, ctx.ctc_size_spread, n)),
                   ctx.ctc_min_diameter_um, 30.0)
    return (diam / 2 * ctx.size_scale * rng.uniform(0.92, 1.08, n)).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Shapes: a cell's outline and nucleus, apart from its markers. Each class has its native shape
# (CTCs epithelial, lymphocytes lymphoid, neutrophils lobed, monocytes kidney); with
# ``Context.shape_swap`` a share of cells takes one of the OTHER shapes instead (sizes and
# nucleus-to-cell ratios included), so that only the markers name the class. A shape adds the
# nucleus (DAPI) primitives and returns the outline (a, b, theta) its markers are drawn on.
# ---------------------------------------------------------------------------------------------

# CTC nuclei (``Context.ctc_nucleus_ratio``, nucleus over cell radius) range from a thin CK
# rim round a large nucleus (0.85: 72 % of the cell's area) to a filled cytoplasm (0.5: 25 %);
# EMT (dim) CTCs' nuclei are this much smaller.
DIM_NUCLEUS_SHIFT = 0.08


def _epithelial_shape(p, ev, ctx, x0, y0, a=None, style="bright"):
    """A CTC's shape: a round-to-oval cell of the sample's CTC size, one off-centre nucleus."""
    rng, n = ctx.rng, len(ev)
    a = ctc_radius(ctx, ev, style) if a is None else np.asarray(a, np.float32)
    b = a * rng.uniform(0.78, 1.0, n)
    theta = rng.uniform(0, np.pi, n)
    shift = DIM_NUCLEUS_SHIFT if style == "dim" else 0.0
    an = a * rng.uniform(ctx.ctc_nucleus_ratio[0] - shift, ctx.ctc_nucleus_ratio[1] - shift, n)
    nx, ny = _polar(rng, n, (a - an) * rng.uniform(0.0, 0.6, n))
    if style == "apoptotic":
        _fragmented_nucleus(p, ev, ctx, x0 + nx, y0 + ny, an)
        return a, b, theta
    bn, n_theta = an * rng.uniform(0.75, 1.0, n), rng.uniform(0, np.pi, n)
    if tuple(ctx.ctc_elongation) != (1.0, 1.0):  # drawn only then: the default draws stay
        a, b, an, bn, n_theta, nx, ny = _elongated(ctx, n, a, b, theta, an, bn)
    p.add(rng, ev, x0 + nx, y0 + ny, an, bn, n_theta, FILLED, soft=rng.uniform(0.3, 0.55, n),
          tex_amp=rng.uniform(0.15, 0.4, n), tex_freq=rng.uniform(0.35, 0.7, n),
          nucleus=_amp(ctx, ev, "nucleus", 110, 450))
    return a, b, theta


def _elongated(ctx, n, a, b, theta, an, bn):
    """A spindle-shaped cell: the outline ``ctx.ctc_elongation`` times as long as wide as it
    was (area kept), its nucleus stretched by the square root of that along the cell's axis,
    no wider than 85 % of the cell, and placed somewhere along the cell's length."""
    rng = ctx.rng
    stretch = np.sqrt(rng.uniform(*ctx.ctc_elongation, n)).astype(np.float32)
    a, b = a * stretch, b / stretch
    an, bn = an * np.sqrt(stretch), np.minimum(bn / np.sqrt(stretch), 0.85 * b)
    along = (a - an) * rng.uniform(-0.6, 0.6, n)
    return a, b, an, bn, theta, along * np.cos(theta), along * np.sin(theta)


def _round_outline(ctx, n, a, radius_um):
    """A leukocyte shape's outline: semi-axes (``a`` given, or drawn from ``radius_um`` times
    the size knob; ``b`` 0.85-1x ``a``) and a rotation."""
    rng = ctx.rng
    a = rng.uniform(*radius_um, n) * ctx.size_scale if a is None else np.asarray(a, np.float32)
    return a, a * rng.uniform(0.85, 1.0, n), rng.uniform(0, np.pi, n)


def _lymphoid_shape(p, ev, ctx, x0, y0, a=None):
    """A lymphocyte's shape: small and round, a round nucleus filling most of it."""
    rng, n = ctx.rng, len(ev)
    a, b, theta = _round_outline(ctx, n, a, (3.4, 4.8))
    an = a * rng.uniform(0.74, 0.88, n)
    nx, ny = _polar(rng, n, (a - an) * 0.4)
    p.add(rng, ev, x0 + nx, y0 + ny, an, an * rng.uniform(0.85, 1.0, n), theta, FILLED,
          soft=0.35, tex_amp=rng.uniform(0.1, 0.3, n), tex_freq=rng.uniform(0.4, 0.8, n),
          nucleus=_amp(ctx, ev, "nucleus", 200, 650))
    return a, b, theta


def _lobed_shape(p, ev, ctx, x0, y0, a=None):
    """A neutrophil's shape: 10-12.5 µm, 3-4 nuclear lobes in a curved chain."""
    rng, n = ctx.rng, len(ev)
    a, b, theta = _round_outline(ctx, n, a, (5.0, 6.3))
    k = rng.integers(3, 5, n)
    idx = np.repeat(np.arange(n), k)
    step = np.concatenate([np.arange(m) for m in k]).astype(np.float32)
    start = rng.uniform(0, 2 * np.pi, n)[idx]
    ang = start + step * rng.uniform(0.9, 1.4, idx.size)
    ring = a[idx] * rng.uniform(0.42, 0.58, idx.size)
    lobe = a[idx] * rng.uniform(0.26, 0.34, idx.size)
    p.add(rng, ev[idx], _at(x0, idx) + ring * np.cos(ang), _at(y0, idx) + ring * np.sin(ang),
          lobe, lobe * rng.uniform(0.7, 0.95, idx.size), ang, FILLED, soft=0.3, tex_amp=0.15,
          nucleus=_amp(ctx, ev[idx], "nucleus", 160, 420))
    return a, b, theta


def _kidney_shape(p, ev, ctx, x0, y0, a=None):
    """A monocyte's shape: 12-17 µm (``Context.monocyte_radius_um``), a kidney-shaped nucleus
    (overlapping lobes on an arc)."""
    rng, n = ctx.rng, len(ev)
    a, b, theta = _round_outline(ctx, n, a, ctx.monocyte_radius_um)
    idx = np.repeat(np.arange(n), 3)
    step = np.tile(np.array([-1.0, 0.0, 1.0], np.float32), n)
    centre = rng.uniform(0, 2 * np.pi, n)[idx]
    ang = centre + step * 0.75
    arc = a[idx] * 0.32
    lobe = a[idx] * rng.uniform(0.36, 0.42, idx.size)
    p.add(rng, ev[idx], _at(x0, idx) + arc * np.cos(ang), _at(y0, idx) + arc * np.sin(ang),
          lobe, lobe * 0.85, ang, FILLED, soft=0.45, tex_amp=0.2,
          nucleus=_amp(ctx, ev[idx], "nucleus", 70, 200))
    return a, b, theta


SHAPES = {"epithelial": _epithelial_shape, "lymphoid": _lymphoid_shape, "lobed": _lobed_shape,
          "kidney": _kidney_shape}


def draw_shapes(ctx: Context, n: int, native: str) -> np.ndarray:
    """Each of ``n`` cells' shape: ``native``, or with probability ``ctx.shape_swap`` one of
    the other shapes (uniformly)."""
    out = np.full(n, native, dtype=object)
    if ctx.shape_swap > 0:
        swap = ctx.rng.random(n) < ctx.shape_swap
        others = [s for s in SHAPES if s != native]
        out[swap] = np.array(others, dtype=object)[ctx.rng.integers(0, len(others),
                                                                      swap.sum())]
    return out.astype(str)


def _shaped(p, ev, ctx, x0, y0, native, a=None, style=None, swap=True):
    """Draw each cell's shape (native or swapped, :func:`draw_shapes`): its nucleus goes into
    ``p``; returns the outlines (a, b, theta) the markers are drawn on."""
    n = len(ev)
    names = draw_shapes(ctx, n, native) if swap else np.full(n, native)
    out = np.zeros((3, n), np.float32)
    for name in sorted(set(names.tolist())):
        at = np.flatnonzero(names == name)
        kwargs = {"style": style} if name == "epithelial" and style else {}
        out[:, at] = SHAPES[name](p, ev[at], ctx, _at(x0, at), _at(y0, at),
                                  a=None if a is None else _at(a, at), **kwargs)
    return out[0], out[1], out[2]


# ---------------------------------------------------------------------------------------------
# Cells: a shape plus the markers of the class. Each returns the object radius in µm; (x0, y0)
# shifts the object (clusters use it).
# ---------------------------------------------------------------------------------------------

def ctc(p: Primitives, ev, ctx: Context, x0=0.0, y0=0.0, style: str = "bright",
        a=None) -> np.ndarray:
    """A CTC: CK+ (bright, dim/EMT or apoptotic) cytoplasm, filled or a rim, round a nucleus,
    no CD45. An apoptotic CTC keeps its fragmented nucleus; other CTCs may take a leukocyte's
    shape (``Context.shape_swap``)."""
    rng, n = ctx.rng, len(ev)
    a, b, theta = _shaped(p, ev, ctx, x0, y0, "epithelial", a=a, style=style,
                          swap=style != "apoptotic")
    # CK: often patchy or crescent-shaped rather than a clean disc.
    look = rng.random(n)
    tex = np.where(look < 0.4, rng.uniform(0.6, 1.2, n), rng.uniform(0.15, 0.45, n))
    cres = np.where(look > 0.75, rng.uniform(0.6, 0.95, n), rng.uniform(0.0, 0.3, n))
    freq = rng.uniform(0.2, 0.45, n)
    vim = _amp(ctx, ev, "mesenchymal", 5, 30)
    epcam = _amp(ctx, ev, "epcam", 60, 500)
    if style == "dim":
        ck = _amp(ctx, ev, "epithelial", 12, 60)
        # CK-negative EMT cells only where vimentin or EpCAM can vouch for them.
        can_lack_ck = bool(set(CK_NEGATIVE_CTC_ROLES) & ctx.panel_roles)
        snr = np.where(can_lack_ck & (rng.random(n) < 0.35), ctx.ck_negative_min_snr,
                       ctx.dim_ck_min_snr)
        # The floor is set against nominal noise; the dim_ck shift still halves it.
        ck = np.maximum(ck, _floor(ctx, ev, "epithelial", snr) * ctx.ck_scale)
        vim = np.maximum(_amp(ctx, ev, "mesenchymal", 60, 300),
                         _floor(ctx, ev, "mesenchymal", 5.0))
        epcam = _amp(ctx, ev, "epcam", 8, 50)
        tex = tex * 0.7
    elif style == "apoptotic":
        ck = _amp(ctx, ev, "epithelial", 80, 1500)
        # Speckled CK: coarse enough (1.5-3 µm) to survive the blur of a 10x objective.
        tex, freq = rng.uniform(1.4, 2.4, n), rng.uniform(0.3, 0.5, n)
    else:
        ck = _amp(ctx, ev, "epithelial", 120, 3500)
    # A share of them shows CK as a bright membrane-near rim over a dim interior.
    rim = (rng.random(n) < ctx.ctc_rim_share) & (style != "apoptotic")
    fill = ~rim
    p.add(rng, ev[fill], _at(x0, fill), _at(y0, fill), a[fill], b[fill], theta[fill], FILLED,
          soft=rng.uniform(0.35, 0.7, fill.sum()), tex_amp=tex[fill], tex_freq=freq[fill],
          crescent=cres[fill], epithelial=ck[fill], mesenchymal=vim[fill])
    # A rim: the CK membrane-near band (0.5-1 µm) over a dim interior (15-50 % of it).
    p.add(rng, ev[rim], _at(x0, rim), _at(y0, rim), a[rim], b[rim], theta[rim], RING,
          soft=rng.uniform(0.5, 1.0, rim.sum()), fill=rng.uniform(0.15, 0.5, rim.sum()),
          tex_amp=tex[rim] * 0.5, tex_freq=freq[rim], crescent=cres[rim] * 0.5,
          epithelial=ck[rim], mesenchymal=vim[rim])
    p.add(rng, ev, x0, y0, a, b, theta, RING, soft=0.8, fill=0.5, tex_amp=0.3, tex_freq=0.4,
          epcam=epcam)
    return a


def _fragmented_nucleus(p, ev, ctx, cx, cy, radius):
    """3-6 condensed DAPI fragments (apoptosis) scattered inside ``radius``."""
    rng = ctx.rng
    k = rng.integers(3, 7, len(ev))
    idx = np.repeat(np.arange(len(ev)), k)
    fx, fy = _polar(rng, idx.size, radius[idx] * rng.uniform(0.3, 1.3, idx.size))
    r = rng.uniform(0.8, 1.5, idx.size) * ctx.size_scale
    p.add(rng, ev[idx], cx[idx] + fx, cy[idx] + fy, r, r * rng.uniform(0.7, 1.0, idx.size),
          rng.uniform(0, np.pi, idx.size), FILLED, soft=0.3,
          nucleus=_amp(ctx, ev[idx], "nucleus", 180, 700))


def _leukocyte_membrane(p, ev, ctx, x0, y0, a, b, theta, cd45_lo, cd45_hi):
    """The CD45 membrane, clearly visible on every leukocyte (at least ``cd45_bright_snr``
    noise units) but for a dim tail (``cd45_dim_share`` of them, down to ``cd45_min_snr``).
    On a share of leukocytes non-specific CK rides on it (Fc receptors bind the CK antibody on
    the surface) or fills the cytoplasm (a damaged cell, a viewer's stretch of a faint
    background): a CK+CD45+ double positive, still a leukocyte."""
    rng, n = ctx.rng, len(ev)
    dim = rng.random(n) < ctx.cd45_dim_share
    snr = np.where(dim, rng.uniform(ctx.cd45_min_snr, ctx.cd45_bright_snr, n),
                   ctx.cd45_bright_snr)
    cd45 = np.maximum(_amp(ctx, ev, "leukocyte", cd45_lo, cd45_hi),
                      _floor(ctx, ev, "leukocyte", snr))
    ck = np.zeros(n, np.float32)
    diffuse = np.zeros(n, bool)
    if ctx.nonspecific_ck is not None:
        on = rng.random(n) < ctx.nonspecific_ck[ev]
        # Relative to the cell's CD45 in noise units of each channel, so a 2x ratio looks like
        # 2x in either channel whatever the two channels' gains and backgrounds.
        snr45 = cd45 / ctx.noise[ev, ROLE_INDEX["leukocyte"]]
        ratio = _loguni(rng, *ctx.nonspecific_ck_ratio, n)
        ck = np.where(on, _floor(ctx, ev, "epithelial", snr45 * ratio), 0.0)
        diffuse = on & (rng.random(n) < ctx.nonspecific_ck_diffuse_share)
    # Seen from above, the membrane covers the cell's top and bottom too: a bright rim over
    # an interior at half to most of it.
    p.add(rng, ev, x0, y0, a, b, theta, RING, soft=rng.uniform(0.6, 1.0, n),
          fill=rng.uniform(*ctx.cd45_membrane_fill, n), tex_amp=rng.uniform(0.1, 0.4, n),
          tex_freq=0.5,
          crescent=rng.uniform(0, 0.4, n), leukocyte=cd45, epithelial=np.where(diffuse, 0, ck))
    p.add(rng, ev[diffuse], _at(x0, diffuse), _at(y0, diffuse), a[diffuse], b[diffuse],
          theta[diffuse], FILLED, soft=0.6, tex_amp=rng.uniform(0.2, 0.8, diffuse.sum()),
          tex_freq=0.5, epithelial=ck[diffuse] * 0.6)


def _green_autofluorescence(p, ev, ctx, x0, y0, a, b, theta):
    """Granulocytes glow faintly in the green channel (flavins in their granules): a diffuse
    granular body in whichever marker's channel is green in this sample."""
    rng, n = ctx.rng, len(ev)
    if ctx.green_role is None or ctx.autofluorescence[1] <= 0:
        return
    green = ctx.green_role[ev]
    level = rng.uniform(*ctx.autofluorescence, n)
    weights = {}
    for role in set(ROLES[g] for g in green.tolist() if g >= 0):
        at = green == ROLE_INDEX[role]
        weights[role] = np.where(at, _floor(ctx, ev, role, level), 0.0)
    if weights:
        p.add(rng, ev, x0, y0, a * 0.9, b * 0.9, theta, FILLED, soft=0.8, tex_amp=0.5,
              tex_freq=0.6, **weights)


def _faint_ck(ctx, ev):
    """Many leukocytes carry faint non-specific CK: 1-3 noise units on a share of them
    (``Context.faint_ck_share``)."""
    rng = ctx.rng
    on = rng.random(len(ev)) < ctx.faint_ck_share
    return np.where(on, _floor(ctx, ev, "epithelial", rng.uniform(1.0, 3.0, len(ev))), 0.0)


def lymphocyte(p, ev, ctx, x0=0.0, y0=0.0):
    """A lymphocyte's markers (bright CD45 ring) on its shape (native: small, round nucleus)."""
    rng = ctx.rng
    a, b, theta = _shaped(p, ev, ctx, x0, y0, "lymphoid")
    _leukocyte_membrane(p, ev, ctx, x0, y0, a, b, theta, 60, 320)
    p.add(rng, ev, x0, y0, a, b, theta, FILLED, soft=0.5, tex_amp=0.2,
          epithelial=_faint_ck(ctx, ev), mesenchymal=_amp(ctx, ev, "mesenchymal", 10, 50))
    return a


def neutrophil(p, ev, ctx, x0=0.0, y0=0.0):
    """A neutrophil's markers (CD45 dimmer, CD66b+, green autofluorescence) on its shape
    (native: lobed nucleus)."""
    rng = ctx.rng
    a, b, theta = _shaped(p, ev, ctx, x0, y0, "lobed")
    _leukocyte_membrane(p, ev, ctx, x0, y0, a, b, theta, 40, 200)
    _green_autofluorescence(p, ev, ctx, x0, y0, a, b, theta)
    p.add(rng, ev, x0, y0, a, b, theta, RING, soft=0.9, fill=0.6, tex_amp=0.3,
          neutrophil=_amp(ctx, ev, "neutrophil", 60, 320), epithelial=_faint_ck(ctx, ev),
          mesenchymal=_amp(ctx, ev, "mesenchymal", 10, 60))
    return a


def monocyte(p, ev, ctx, x0=0.0, y0=0.0):
    """A monocyte's markers (bright CD45, vimentin) on its shape (native: kidney nucleus)."""
    rng = ctx.rng
    a, b, theta = _shaped(p, ev, ctx, x0, y0, "kidney")
    _leukocyte_membrane(p, ev, ctx, x0, y0, a, b, theta, 80, 380)
    p.add(rng, ev, x0, y0, a, b, theta, FILLED, soft=0.6, tex_amp=0.3,
          mesenchymal=_amp(ctx, ev, "mesenchymal", 40, 160),
          neutrophil=_amp(ctx, ev, "neutrophil", 3, 20), epithelial=_faint_ck(ctx, ev))
    return a


# ---------------------------------------------------------------------------------------------
# Clusters: partners touch (or slightly overlap) the CTC; the object is centred on its centroid.
# ---------------------------------------------------------------------------------------------

def _centroid_shift(cx, cy, r2, owner, n):
    """-(area-weighted centroid) per object of components at (cx, cy) with squared radius r2."""
    w = np.bincount(owner, r2, n)
    return -np.bincount(owner, cx * r2, n) / w, -np.bincount(owner, cy * r2, n) / w


def ctc_neutrophil(p, ev, ctx):
    """A CTC with 1-4 neutrophils attached (20-40 µm across)."""
    rng, n = ctx.rng, len(ev)
    a = ctc_radius(ctx, ev)
    k = rng.choice([1, 2, 3, 4], n, p=[0.4, 0.3, 0.2, 0.1])
    idx = np.repeat(np.arange(n), k)
    step = np.concatenate([np.arange(m) for m in k]).astype(np.float32)
    ang = rng.uniform(0, 2 * np.pi, n)[idx] + step * rng.uniform(1.1, 1.7, idx.size)
    dist = a[idx] * rng.uniform(0.9, 1.0, idx.size) + 5.0 * ctx.size_scale
    nx, ny = dist * np.cos(ang), dist * np.sin(ang)
    sx, sy = _centroid_shift(np.concatenate([np.zeros(n), nx]), np.concatenate([np.zeros(n), ny]),
                             np.concatenate([a ** 2, np.full(idx.size, 30.0)]),
                             np.concatenate([np.arange(n), idx]), n)
    ctc(p, ev, ctx, sx, sy, a=a)
    neutrophil(p, ev[idx], ctx, nx + sx[idx], ny + sy[idx])
    reach = np.hypot(nx + sx[idx], ny + sy[idx]) + 6.3 * ctx.size_scale
    return np.maximum(np.hypot(sx, sy) + a, _group_max(reach, idx, n))


def ctc_platelet(p, ev, ctx):
    """A CTC coated with 6-18 CD61+ platelet puncta (2-3 µm) on its rim."""
    rng, n = ctx.rng, len(ev)
    a = ctc(p, ev, ctx)
    k = rng.integers(6, 19, n)
    idx = np.repeat(np.arange(n), k)
    px, py = _polar(rng, idx.size, a[idx] * rng.uniform(0.8, 1.12, idx.size))
    r = rng.uniform(0.95, 1.5, idx.size) * ctx.size_scale
    cd61 = np.maximum(_amp(ctx, ev[idx], "platelet", 120, 700),
                      _floor(ctx, ev[idx], "platelet", 4.0) * _blur_loss(r))
    p.add(rng, ev[idx], px, py, r, r * rng.uniform(0.75, 1.0, idx.size), 0.0, FILLED, soft=0.3,
          platelet=cd61)
    return a + 1.5 * ctx.size_scale


def ctc_doublet(p, ev, ctx):
    """Two or three CTCs touching (homotypic cluster)."""
    rng, n = ctx.rng, len(ev)
    k = np.where(rng.random(n) < 0.8, 2, 3)
    idx = np.repeat(np.arange(n), k)
    step = np.concatenate([np.arange(m) for m in k])
    a = ctc_radius(ctx, ev[idx])
    # Each further cell touches the previous one, turning by 60-120 degrees each time.
    ang = rng.uniform(0, 2 * np.pi, n)[idx] + step * rng.uniform(1.0, 2.1, idx.size)
    prev = np.concatenate([[0.0], a[:-1]])
    dist = np.where(step > 0, (a + prev) * rng.uniform(0.72, 0.9, idx.size), 0.0)
    cx = np.zeros(idx.size)
    cy = np.zeros(idx.size)
    for s in range(1, 3):  # at most three cells: two short sequential steps
        at = np.flatnonzero(step == s)
        cx[at] = cx[at - 1] + dist[at] * np.cos(ang[at])
        cy[at] = cy[at - 1] + dist[at] * np.sin(ang[at])
    sx, sy = _centroid_shift(cx, cy, a ** 2, idx, n)
    ctc(p, ev[idx], ctx, cx + sx[idx], cy + sy[idx], a=a)
    return _group_max(np.hypot(cx + sx[idx], cy + sy[idx]) + a, idx, n)


# ---------------------------------------------------------------------------------------------
# Debris made of a cell's parts: a bare nucleus (a cell shape's nucleus without its cell) and a
# cell the frame edge cuts. The other debris builders are in ctcnet.simulate.debris.
# ---------------------------------------------------------------------------------------------

def bare_nucleus(p, ev, ctx):
    """A nucleus without cytoplasm: DAPI only (sometimes two lobes, sometimes smeared); with
    ``Context.shape_swap``, a share of them is a cell shape's nucleus alone (round, lobed,
    kidney), so a nucleus's form never stands in for the CD45 a leukocyte must show."""
    rng, n = ctx.rng, len(ev)
    a = rng.uniform(2.8, 5.0, n) * ctx.size_scale
    swap = rng.random(n) < ctx.shape_swap
    if swap.any():
        # Cell shapes whose nucleus is about as large as a bare nucleus's.
        sub = ev[swap]
        outline = np.zeros(len(sub), np.float32)
        names = np.array(sorted(SHAPES))[rng.integers(0, len(SHAPES), len(sub))]
        for name in sorted(set(names.tolist())):
            at = np.flatnonzero(names == name)
            outline[at] = SHAPES[name](p, sub[at], ctx, 0.0, 0.0)[0]
        a[swap] = outline
    keep = np.flatnonzero(~swap)
    ev, m = ev[keep], keep.size
    two = rng.random(m) < 0.3
    ak = a[keep]
    off = np.where(two, ak * 0.35, 0.0)
    ang = rng.uniform(0, 2 * np.pi, m)
    for sign in (1.0, -1.0):
        p.add(rng, ev, sign * off * np.cos(ang), sign * off * np.sin(ang),
              np.where(two, ak * 0.7, ak), np.where(two, ak * 0.6, ak * rng.uniform(0.75, 1.0, m)),
              ang, FILLED, soft=rng.uniform(0.35, 0.9, m), tex_amp=rng.uniform(0.2, 0.45, m),
              tex_freq=rng.uniform(0.35, 0.7, m),
              nucleus=np.where(two | (sign > 0), _amp(ctx, ev, "nucleus", 110, 450), 0.0))
    return a


def edge_cut(p, ev, ctx):
    """A cell that the frame edge cuts; the cut itself is applied to the pixels later."""
    rng, n = ctx.rng, len(ev)
    kind = rng.random(n)
    radius = np.zeros(n, np.float64)
    for sel, build in ((kind < 0.4, lambda e: ctc(p, e, ctx)),
                       ((kind >= 0.4) & (kind < 0.7), lambda e: lymphocyte(p, e, ctx)),
                       (kind >= 0.7, lambda e: neutrophil(p, e, ctx))):
        if sel.any():
            radius[sel] = build(ev[sel])
    return radius


BUILDERS = {
    "ctc_bright": lambda p, ev, ctx: ctc(p, ev, ctx, style="bright"),
    "ctc_dim": lambda p, ev, ctx: ctc(p, ev, ctx, style="dim"),
    "ctc_apoptotic": lambda p, ev, ctx: ctc(p, ev, ctx, style="apoptotic"),
    "lymphocyte": lambda p, ev, ctx: lymphocyte(p, ev, ctx),
    "neutrophil": lambda p, ev, ctx: neutrophil(p, ev, ctx),
    "monocyte": lambda p, ev, ctx: monocyte(p, ev, ctx),
    "ctc_neutrophil": ctc_neutrophil, "ctc_platelet": ctc_platelet, "ctc_doublet": ctc_doublet,
    "tdev": tdev, "bare_nucleus": bare_nucleus, "fragment": fragment, "aggregate": aggregate,
    "blob": blob, "fibre": fibre, "edge_cut": edge_cut, "autofluorescent": autofluorescent,
}
assert set(BUILDERS) == set(SUBTYPES)


def build_events(subtypes: np.ndarray, ctx: Context) -> tuple[dict, np.ndarray]:
    """Primitives (built at the origin) and radius (µm) of events 0..E-1 of given subtypes."""
    p = Primitives()
    radius = np.zeros(len(subtypes), np.float64)
    for name in sorted(set(subtypes.tolist())):
        ev = np.flatnonzero(subtypes == name)
        radius[ev] = BUILDERS[name](p, ev, ctx)
    return p.arrays(), radius
