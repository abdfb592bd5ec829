"""Imaging physics: primitives -> channels -> blur -> background, light, noise -> camera counts.

Everything here is vectorised over a stack of canvases (many crops at once, or one frame):
primitives are evaluated on small patches and scattered with one ``bincount``; the PSF (and
defocus) is a Gaussian applied in Fourier space with a sigma per canvas; backgrounds are smooth
random fields made by interpolating a coarse grid with two small matrices; the camera adds shot
noise (Gaussian with the Poisson variance: backgrounds are always tens of photons, where the two
agree), read noise, offset, quantisation and saturation.
"""

from __future__ import annotations

import numpy as np
import scipy.fft

from ctcnet.simulate.primitives import FILLED, ROLES

# Patch sizes (px) a primitive is evaluated on: few sizes keep the work vectorised.
_PATCH_SIZES = np.array([9, 13, 17, 23, 29, 37, 45, 55, 67, 81, 97, 121, 151, 191, 241])


def role_matrix(roles: list[str]) -> np.ndarray:
    """(C, R) map from marker roles to panel channels; 'all' reaches every channel."""
    m = np.zeros((len(roles), len(ROLES)), np.float32)
    for c, role in enumerate(roles):
        if role in ROLES:
            m[c, ROLES.index(role)] = 1.0
    m[:, ROLES.index("all")] = 1.0
    return m


def render(prims: dict, owner: np.ndarray, px_um: np.ndarray, origin_px: tuple[float, float],
           shape: tuple[int, int, int, int], role_to_channel: np.ndarray) -> np.ndarray:
    """Render primitives into float32 canvases of ``shape`` = (N, C, H, W).

    ``owner`` and ``px_um`` give each primitive's canvas and that canvas's pixel size;
    primitive positions are µm relative to ``origin_px`` (x, y) of the canvas.
    """
    n, c, h, w = shape
    weights = prims["weights"] @ role_to_channel.T  # (P, C)
    keep = np.flatnonzero((weights > 0).any(axis=1))
    out = np.zeros(n * c * h * w, np.float64)
    if keep.size == 0:
        return out.reshape(shape).astype(np.float32)
    px = px_um[keep].astype(np.float32)
    a, b, soft = prims["a"][keep], prims["b"][keep], prims["soft"][keep]
    extent = (np.maximum(a, b) + 3.0 * soft) / px
    size_idx = np.searchsorted(_PATCH_SIZES, 2 * np.ceil(extent) + 1)
    size_idx = np.minimum(size_idx, len(_PATCH_SIZES) - 1)
    flat_idx, flat_val = [], []
    for k in np.unique(size_idx):
        sel = keep[size_idx == k]
        vals, ix, iy = _patch_values(prims, sel, px_um[sel], origin_px, int(_PATCH_SIZES[k]))
        valid = (ix >= 0) & (ix < w) & (iy >= 0) & (iy < h)
        base = (owner[sel].astype(np.int64) * c)[:, None, None]
        wsel = weights[sel]
        for ch in range(c):
            rows = np.flatnonzero(wsel[:, ch] > 0)
            if rows.size == 0:
                continue
            v = valid[rows]
            idx = ((base[rows] + ch) * h + iy[rows]) * w + ix[rows]
            flat_idx.append(idx[v])
            flat_val.append((vals[rows] * wsel[rows, ch][:, None, None])[v])
    if flat_idx:
        out += np.bincount(np.concatenate(flat_idx), np.concatenate(flat_val), out.size)
    return out.reshape(shape).astype(np.float32)


# (direction offset in radians, frequency ratio, weights of the two random phases) per wave.
_TEXTURE_WAVES = ((0.0, 1.0, 1.0, 0.0), (1.13, 1.31, 0.0, 1.0), (2.21, 0.77, 1.0, 1.7),
                  (3.07, 1.58, 2.3, 0.6), (4.19, 0.61, 0.4, 2.9), (5.3, 1.19, 3.1, 1.3))


def _patch_values(prims, sel, px, origin_px, size):
    """Evaluate primitives ``sel`` on size x size patches; returns values and pixel indices."""
    f = {k: prims[k][sel].astype(np.float32) for k in (
        "x", "y", "a", "b", "theta", "soft", "fill", "tex_amp", "tex_freq", "tex_angle",
        "tex_phase1", "tex_phase2", "crescent", "cres_angle")}
    px = px.astype(np.float32)[:, None, None]
    cx = origin_px[0] + f["x"] / px[:, 0, 0]
    cy = origin_px[1] + f["y"] / px[:, 0, 0]
    half = size // 2
    ix = (np.round(cx).astype(np.int64) - half)[:, None] + np.arange(size)  # (n, size)
    iy = (np.round(cy).astype(np.int64) - half)[:, None] + np.arange(size)
    u = ((ix - cx[:, None]).astype(np.float32) * px[:, 0])[:, None, :]     # µm, (n, 1, size)
    v = ((iy - cy[:, None]).astype(np.float32) * px[:, 0])[:, :, None]     # µm, (n, size, 1)

    def col(key):  # a per-primitive value shaped to broadcast over the patch
        return f[key][:, None, None]

    cos, sin = np.cos(col("theta")), np.sin(col("theta"))
    ur, vr = u * cos + v * sin, v * cos - u * sin
    a, b = col("a"), col("b")
    rho = np.sqrt((ur / a) ** 2 + (vr / b) ** 2)
    dist = (rho - 1.0) * np.sqrt(a * b)  # approximate signed distance to the outline, µm
    soft = col("soft")
    inside = 0.5 - 0.5 * np.tanh(dist / (2.0 * soft))  # smooth step: logistic(-dist/soft)
    ring = prims["kind"][sel] != FILLED
    val = inside
    if ring.any():
        r = np.flatnonzero(ring)
        membrane = np.exp(-(dist[r] / soft[r]) ** 2)
        val[r] = np.maximum(membrane, col("fill")[r] * inside[r])
    textured = np.flatnonzero(f["tex_amp"] > 0)
    if textured.size:
        t = textured
        # Six plane waves at irregular angles and incommensurate frequencies, phases mixed from
        # the primitive's two random phases: a random-looking blotchy field. (Three waves, as
        # before, drew a visible dot lattice on bright cells: a simulator quirk a CNN could
        # learn instead of marker evidence.)
        k = 2 * np.pi * col("tex_freq")[t]
        ang, p1, p2 = col("tex_angle")[t], col("tex_phase1")[t], col("tex_phase2")[t]
        waves = 0.0
        for turn, ratio, a1, a2 in _TEXTURE_WAVES:
            waves = waves + np.sin(k * ratio * (u[t] * np.cos(ang + turn) +
                                                v[t] * np.sin(ang + turn)) + a1 * p1 + a2 * p2)
        # The sum of six unit sines has sd sqrt(3); 0.32 keeps the old depth per tex_amp.
        val[t] *= np.maximum(1.0 + col("tex_amp")[t] * 0.32 * waves, 0.0)
    curved = np.flatnonzero(f["crescent"] > 0)
    if curved.size:
        t = curved
        phi = np.arctan2(vr[t], ur[t]) - col("cres_angle")[t]
        val[t] *= 1.0 - col("crescent")[t] * (1.0 - (0.5 + 0.5 * np.cos(phi)) ** 1.5)
    iy_full = np.broadcast_to(iy[:, :, None], val.shape)
    ix_full = np.broadcast_to(ix[:, None, :], val.shape)
    return val, ix_full, iy_full


def gaussian_blur(stack: np.ndarray, sigma_px: np.ndarray) -> np.ndarray:
    """Blur (N, C, H, W) with a Gaussian of sigma ``sigma_px[n]`` (or (N, C)), via the FFT.

    The FFT wraps around, so callers render on a canvas padded by ~3 sigma and cut it away.
    """
    n, c, h, w = stack.shape
    sigma = np.broadcast_to(np.asarray(sigma_px, np.float32).reshape(n, -1), (n, c))
    planes = stack.reshape(n * c, h, w)
    # Only planes with something in them: most crops leave some channels empty.
    busy = np.flatnonzero(planes.any(axis=(1, 2)))
    out = np.zeros_like(planes)
    if busy.size:
        spec = scipy.fft.rfft2(planes[busy], axes=(-2, -1), workers=1)
        fy = np.fft.fftfreq(h).astype(np.float32)[:, None]
        fx = np.fft.rfftfreq(w).astype(np.float32)[None, :]
        s = sigma.reshape(-1)[busy][:, None, None]
        spec *= np.exp(-2.0 * np.pi ** 2 * s ** 2 * (fy ** 2 + fx ** 2))
        out[busy] = scipy.fft.irfft2(spec, s=(h, w), axes=(-2, -1), workers=1)
    return out.reshape(n, c, h, w)


def smooth_field(rng: np.random.Generator, shape: tuple, cell_px: float) -> np.ndarray:
    """Random smooth field of unit-ish std and zero mean, correlated over ~``cell_px`` px.

    A coarse Gaussian grid interpolated by two Gaussian-kernel matrices: (N, C, H, W) for the
    cost of two small matrix products instead of a large blur.
    """
    n, c, h, w = shape
    gh, gw = int(np.ceil(h / cell_px)) + 2, int(np.ceil(w / cell_px)) + 2
    grid = rng.standard_normal((n, c, gh, gw)).astype(np.float32)
    mh, mw = _interp_matrix(h, gh, cell_px), _interp_matrix(w, gw, cell_px)
    return np.matmul(mh, np.matmul(grid, mw.T))


def _interp_matrix(size: int, knots: int, spacing: float) -> np.ndarray:
    pos = np.arange(size, dtype=np.float32)[:, None]
    centres = (np.arange(knots, dtype=np.float32) - 1.0)[None, :] * spacing
    k = np.exp(-0.5 * ((pos - centres) / (0.7 * spacing)) ** 2)
    # Normalised so the field's std stays close to 1 wherever it is evaluated.
    return (k / np.sqrt((k ** 2).sum(axis=1, keepdims=True))).astype(np.float32)


def vignetting(xs: np.ndarray, ys: np.ndarray, frame_shape: tuple[int, int],
               falloff: np.ndarray) -> np.ndarray:
    """Relative illumination at frame pixel coordinates: 1 at the centre, 1-falloff at corners."""
    h, w = frame_shape
    r2 = ((xs - w / 2) / (w / 2)) ** 2 + ((ys - h / 2) / (h / 2)) ** 2
    return 1.0 - falloff * r2 / 2.0


def bleed_matrices(rng: np.random.Generator, n: int, c: int, low: float, high: float,
                   pairs: str = "all"):
    """(n, C, C) mixing: channel ``j`` sees ``m[:, j, i]`` of channel ``i``, for EVERY ordered
    pair: which dye leaks into which filter is set by the optics, not by the panel order.

    Fractions are drawn per sample and pair, log-uniform over ``(low, high)`` when ``low > 0``
    (most pairs leak little, a few leak much), uniform when ``low == 0``. ``pairs="neighbours"``
    is the simulator's earlier model (kept for ablations): only panel neighbours leak, the
    next channel by the fraction and the previous one by a third of it.
    """
    m = np.tile(np.eye(c, dtype=np.float32), (n, 1, 1))
    if c < 2 or high <= 0:
        return m
    if pairs == "neighbours":
        frac = rng.uniform(low, high, (n, c - 1)).astype(np.float32)
        i = np.arange(c - 1)
        m[:, i + 1, i] += frac
        m[:, i, i + 1] += frac / 3.0
        return m
    if low > 0:
        frac = np.exp(rng.uniform(np.log(low), np.log(high), (n, c, c)))
    else:
        frac = rng.uniform(low, high, (n, c, c))
    off = ~np.eye(c, dtype=bool)
    m[:, off] += frac[:, off].astype(np.float32)
    return m


def mix_channels(matrices: np.ndarray, stack: np.ndarray) -> np.ndarray:
    """Apply a (N, C, C) channel mixing (bleed-through) to (N, C, H, W), one matmul each."""
    n, c, h, w = stack.shape
    return np.matmul(matrices.astype(np.float32), stack.reshape(n, c, h * w)).reshape(stack.shape)


def camera(rng: np.random.Generator, photons: np.ndarray, offset: np.ndarray,
           camera_gain: np.ndarray, read_noise: np.ndarray, noise_scale: float,
           saturation: float) -> np.ndarray:
    """Expected counts over offset (N, C, H, W) -> noisy, quantised, saturated camera counts.

    Shot noise variance is gain x counts (Poisson in photons), read noise adds in quadrature.
    """
    n = photons.shape[0]
    g = np.asarray(camera_gain, np.float32).reshape(n, 1, 1, 1)
    rn = np.asarray(read_noise, np.float32).reshape(n, 1, 1, 1)
    sd = np.sqrt(np.maximum(photons, 0.0) * g + rn ** 2) * np.float32(noise_scale)
    noisy = photons + sd * standard_normal(rng, photons.shape)
    noisy += np.asarray(offset, np.float32).reshape(n, 1, 1, 1)
    return np.clip(np.rint(noisy), 0.0, saturation)


def standard_normal(rng: np.random.Generator, shape) -> np.ndarray:
    """float32 N(0, 1) noise, seeded from ``rng``; torch's generator is ~3x faster than numpy's
    here, and camera noise is the largest random draw of the simulator."""
    import torch

    gen = torch.Generator().manual_seed(int(rng.integers(0, 2 ** 62)))
    return torch.randn(tuple(shape), generator=gen, dtype=torch.float32).numpy()


def to_display_8bit(counts: np.ndarray, offset: np.ndarray, display_max: np.ndarray):
    """An 8-bit display export: (counts - offset) * 255 / display_max, clipped to 0..255."""
    n, c = counts.shape[:2]
    scaled = (counts - np.asarray(offset, np.float32).reshape(n, 1, 1, 1)) * (
        255.0 / np.asarray(display_max, np.float32).reshape(n, c, 1, 1))
    return np.clip(np.rint(scaled), 0, 255)


def display_8bit_panel(panel):
    """``panel`` of an 8-bit display export (:func:`to_display_8bit`): each channel spans
    0-255, as its panel.json says (read as 12-bit counts, clipped highlights go unsaid)."""
    from dataclasses import replace

    return replace(panel, channels=tuple(replace(c, value_range=(0.0, 255.0))
                                         for c in panel.channels))
