"""Debris of the simulator: vesicles, bare nuclei, fragments, dye aggregates, blobs, fibres and
autofluorescent specks, built as primitives at the origin (:mod:`ctcnet.simulate.primitives`).

Each builder takes ``(primitives, events, context)``, appends the primitives of the events'
objects and returns their radii (µm, for placement), as the cell builders of
:mod:`ctcnet.simulate.cells` do.
"""

from __future__ import annotations

import numpy as np

from ctcnet.simulate.primitives import (
    FILLED,
    ROLE_INDEX,
    ROLES,
    _amp,
    _blur_loss,
    _floor,
    _group_max,
    _loguni,
    _polar,
)


def tdev(p, ev, ctx):
    """Tumour-derived extracellular vesicle: 1-4 µm, CK+ (EpCAM+), DAPI-, CD45-."""
    rng, n = ctx.rng, len(ev)
    r = rng.uniform(0.5, 2.0, n) * ctx.size_scale
    # A vesicle smaller than the PSF loses most of its peak to the blur: the floor holds for
    # the blurred peak (worst-case PSF sigma 1.5 µm), so no tdEV is invisible.
    ck = np.maximum(_amp(ctx, ev, "epithelial", 60, 800),
                    _floor(ctx, ev, "epithelial", 5.0) * _blur_loss(r) * ctx.ck_scale)
    p.add(rng, ev, 0.0, 0.0, r, r * rng.uniform(0.7, 1.0, n), rng.uniform(0, np.pi, n), FILLED,
          soft=0.35, tex_amp=0.2, epithelial=ck, epcam=_amp(ctx, ev, "epcam", 30, 250))
    return r


def fragment(p, ev, ctx):
    """A CTC fragment: CK debris without an intact nucleus, sometimes with a small dim DAPI speck.

    Two looks, neither a round CK+ cell of CTC size (CTCs here are at least 5.5 um across):
    a tumour microparticle (one round CK body 1.4-3 um across, under the CellSearch 4 um rule),
    or the granular remains of a broken cell (2-5 CK pieces 1-3 um across, scattered 2.5-5 um
    from the centre, with gaps between them). First simulated as 2-4 pieces up to
    4.6 um across within 2.5 um of the centre, they merged under the blur into one round CK
    body of CTC size: with the speck below, a label no reviewer could reproduce.
    """
    rng, n = ctx.rng, len(ev)
    microparticle = rng.random(n) < 0.35
    k = np.where(microparticle, 1, rng.integers(2, 6, n))
    idx = np.repeat(np.arange(n), k)
    single = microparticle[idx]
    spread = np.where(single, 0.0, rng.uniform(2.5, 5.0, idx.size)) * ctx.size_scale
    fx, fy = _polar(rng, idx.size, spread)
    r = np.where(single, rng.uniform(0.7, 1.5, idx.size),
                 rng.uniform(0.5, 1.5, idx.size)) * ctx.size_scale
    p.add(rng, ev[idx], fx, fy, r, r * rng.uniform(0.6, 1.0, idx.size),
          rng.uniform(0, np.pi, idx.size), FILLED, soft=0.4, tex_amp=0.3,
          epithelial=np.maximum(_amp(ctx, ev[idx], "epithelial", 50, 500),
                                _floor(ctx, ev[idx], "epithelial", 5.0) * _blur_loss(r)))
    # A dim DAPI speck (a nuclear remnant) at most 1.6 um across, at most about half as bright
    # as the dimmest CTC nucleus before blur (a third after it). A CTC's nucleus is 2.3 um
    # across at the very least (the smallest colorectal CTC, EMT nucleus ratio) and 4-9 um
    # typically, and at the same stain its DAPI content (amplitude x area) exceeds any
    # speck's. Specks up to 2.8 um, as first simulated, overlapped small CTC nuclei: a third
    # of all fragments met the measurable CTC definition, and they were 70 % of the false
    # CTC calls in simulated cartridges (docs/robustness_matrix.md).
    dna = rng.random(n) < 0.3
    r2 = rng.uniform(0.4, 0.8, n) * ctx.size_scale
    p.add(rng, ev[dna], 0.0, 0.0, r2[dna], r2[dna], 0.0, FILLED, soft=0.4,
          nucleus=_amp(ctx, ev[dna], "nucleus", 20, 60))
    return _group_max(spread + r, idx, n)


def aggregate(p, ev, ctx):
    """Dye or ferrofluid aggregate: irregular, bright in every channel."""
    rng, n = ctx.rng, len(ev)
    k = rng.integers(2, 5, n)
    idx = np.repeat(np.arange(n), k)
    fx, fy = _polar(rng, idx.size, rng.uniform(0, 3.0, idx.size) * ctx.size_scale)
    r = rng.uniform(1.2, 3.8, idx.size) * ctx.size_scale
    p.add(rng, ev[idx], fx, fy, r, r * rng.uniform(0.5, 1.0, idx.size),
          rng.uniform(0, np.pi, idx.size), FILLED, soft=0.45, tex_amp=rng.uniform(0.3, 0.7),
          all=_loguni(rng, 250, 2500, idx.size))
    return 3.0 * ctx.size_scale + _group_max(r, idx, n)


def blob(p, ev, ctx):
    """Out-of-focus blob: large, very soft, in a random subset of channels."""
    rng, n = ctx.rng, len(ev)
    a = rng.uniform(3.5, 9.0, n) * ctx.size_scale
    roles = [r for r in ("nucleus", "epithelial", "leukocyte", "all") if r in ctx.panel_roles
             or r == "all"]
    on = rng.random((n, len(roles))) < 0.45
    on[np.arange(n), rng.integers(0, len(roles), n)] = True
    weights = {r: np.where(on[:, i], _loguni(rng, 25, 220, n), 0.0)
               for i, r in enumerate(roles)}
    soft = rng.uniform(1.8, 3.5, n) * ctx.size_scale
    p.add(rng, ev, 0.0, 0.0, a, a * rng.uniform(0.7, 1.0, n), rng.uniform(0, np.pi, n), FILLED,
          soft=soft, tex_amp=0.2, tex_freq=0.15, **weights)
    return a + soft


def fibre(p, ev, ctx):
    """A fibre: long, thin, slightly bent; autofluorescent in all channels, brighter in one."""
    rng, n = ctx.rng, len(ev)
    half = rng.uniform(5.0, 18.0, n) * ctx.size_scale
    width = rng.uniform(0.4, 0.9, n) * ctx.size_scale
    ang = rng.uniform(0, np.pi, n)
    bend = ang + rng.uniform(-0.6, 0.6, n)
    allw = _loguni(rng, 25, 160, n)
    role = rng.choice(["nucleus", "epithelial", "leukocyte"], n)
    extra = _loguni(rng, 30, 300, n)
    weights = {r: np.where(role == r, extra, 0.0) for r in ("nucleus", "epithelial", "leukocyte")}
    # Two segments meeting at the origin, each pointing away from it.
    for direction, phi in ((1.0, ang), (-1.0, bend)):
        p.add(rng, ev, direction * half * np.cos(phi), direction * half * np.sin(phi), half,
              width, phi, FILLED, soft=0.35, tex_amp=0.3, tex_freq=0.2, all=allw, **weights)
    return 2 * half


def autofluorescent(p, ev, ctx):
    """Autofluorescent debris (lipofuscin-like granules, damaged cells, plastic): a granular
    body that glows in every channel with its own spectrum, so its channel ratios differ from
    any dye's, the DAPI channel included."""
    rng, n = ctx.rng, len(ev)
    k = rng.integers(1, 4, n)
    idx = np.repeat(np.arange(n), k)
    fx, fy = _polar(rng, idx.size, rng.uniform(0, 3.0, idx.size) * ctx.size_scale)
    r = rng.uniform(1.5, 4.5, idx.size) * ctx.size_scale
    level = _loguni(rng, 30, 600, n)
    # A broad emission spectrum: every role's channel gets 5-100 % of the peak.
    roles = [role for role in ROLES if role != "all" and role in ctx.panel_roles]
    spectrum = {role: level * _loguni(rng, 0.05, 1.0, n) for role in roles}
    # Visible: its brightest channel reaches at least 6 noise units (the blurred peak).
    snr = np.max([spectrum[r] / ctx.noise[ev, ROLE_INDEX[r]] for r in roles], axis=0)
    lift = np.maximum(6.0 * _blur_loss(1.5) / snr, 1.0)
    weights = {role: (spectrum[role] * lift)[idx] for role in roles}
    p.add(rng, ev[idx], fx, fy, r, r * rng.uniform(0.6, 1.0, idx.size),
          rng.uniform(0, np.pi, idx.size), FILLED, soft=rng.uniform(0.4, 1.2, idx.size),
          tex_amp=rng.uniform(0.4, 1.0, idx.size), tex_freq=rng.uniform(0.3, 0.7, idx.size),
          **weights)
    return 3.0 * ctx.size_scale + _group_max(r, idx, n)
