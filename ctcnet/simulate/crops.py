"""Simulated crop datasets: labelled (C, S, S) cell images in raw camera counts.

Each crop shows one labelled object near its centre plus unlabelled neighbours (leukocytes,
debris, now and then a CTC; never a cluster or platelets, never touching), in a sample's
scanner and stain settings.
Crops are made in chunks: all primitives of a chunk are rendered in one pass, then blur,
bleed-through, background, illumination and camera noise run on the whole (n, C, H, W) stack.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.fft

from ctcnet.detect.crop_dataset import write_crop_dataset
from ctcnet.errors import InputError
from ctcnet.io.panel import Panel, load_panel
from ctcnet.io.plausibility import CELLSEARCH_FRAME_SHAPE
from ctcnet.io.taxonomy import Taxonomy, load_taxonomy
from ctcnet.simulate.cells import SUBTYPE_NEEDS, SUBTYPES, build_events
from ctcnet.simulate.config import SimConfig, at_panel_ceiling, draw
from ctcnet.simulate.optics import (
    camera,
    display_8bit_panel,
    gaussian_blur,
    mix_channels,
    render,
    role_matrix,
    smooth_field,
    to_display_8bit,
    vignetting,
)
from ctcnet.simulate.scanner import draw_samples, make_context, threaded_map

CHUNK = 192  # crops rendered together: bounds memory (~100 MB) while keeping numpy busy
_PAD_UM = 7.0  # rendered margin around a crop: room for blur and for neighbours' glow
_FRAME = CELLSEARCH_FRAME_SHAPE  # crops come from random places of a CellSearch frame
_BACKGROUND_CORRELATION_UM = 25.0


@dataclass
class CropBatch:
    """Simulated crops and what they are."""

    images: np.ndarray          # uint16 (N, C, S, S) raw counts (0..255 for 8-bit exports)
    labels: list[str]           # taxonomy class per crop
    subtypes: list[str]         # simulator subtype per crop (see SUBTYPES)
    sample_ids: list[str]       # simulated sample ("patient") per crop
    seed: int
    config: dict                # SimConfig.summary() of the knobs used
    pixel_size_um: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (N,) per crop
    # Ground truth: each sample's spillover (SampleDraws.spillover), by sample id.
    spillover: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.labels)


def available_subtypes(panel: Panel, taxonomy: Taxonomy, cfg: SimConfig,
                       weights: dict | None = None) -> dict[str, dict[str, float]]:
    """class name -> {subtype: weight} of the subtypes this panel can show."""
    weights = cfg.subtype_weights if weights is None else weights
    roles = set(panel.roles())
    out: dict[str, dict[str, float]] = {}
    for subtype, parent in SUBTYPES.items():
        w = float(weights.get(subtype, 0.0))
        if w <= 0 or SUBTYPE_NEEDS.get(subtype, "nucleus") not in roles | {"nucleus"}:
            continue
        try:
            name = taxonomy.class_for_subtype(subtype, parent)
        except InputError:
            continue
        out.setdefault(name, {})[subtype] = w
    return out


def undrawn_classes(panel: Panel, taxonomy: Taxonomy) -> list[str]:
    """The classes of ``taxonomy`` the simulator draws no cell of on ``panel`` (a lab's
    ``emt_ctc`` that lists no subtype it is drawn as): what needs only pixels (an export's
    check) draws the simulator's own cells instead, what needs labels (baselines, a pool of
    simulated calibration crops) goes without them."""
    drawn = available_subtypes(panel, taxonomy, at_panel_ceiling(SimConfig(), panel))
    return [name for name in taxonomy.names if name not in drawn]


def _parse_counts(counts, taxonomy: Taxonomy) -> dict[str, int]:
    if isinstance(counts, str) and counts.strip().isdigit():
        # From a command line's dotted override (``--data.simulate.train=60``), which a
        # free-form mapping option receives as text.
        counts = int(counts)
    if isinstance(counts, (int, np.integer)):
        return {name: int(counts) for name in taxonomy.names}
    if not isinstance(counts, dict):
        raise InputError(f"counts must be an int or a {{class: n}} mapping, got {counts!r}")
    out = {}
    for name, n in counts.items():
        taxonomy.index(name)  # raises InputError for unknown classes
        if int(n) < 0:
            raise InputError(f"count for class {name!r} must be >= 0, got {n}")
        out[name] = int(n)
    return out


def choose_subtypes(rng, classes: list[str], options: dict) -> np.ndarray:
    """One subtype per requested class name, drawn by the class's subtype weights."""
    out = np.empty(len(classes), dtype=object)
    classes_arr = np.array(classes, dtype=object)
    for name in sorted(set(classes)):
        if name not in options:
            raise InputError(f"the simulator cannot make class {name!r} with this panel and "
                             "taxonomy (no simulated subtype maps to it): list the subtypes it "
                             f'is drawn as in the taxonomy, {{"name": "{name}", "includes": '
                             f'["ctc_dim"]}} (subtypes: {", ".join(SUBTYPES)}; '
                             "docs/data-formats.md)")
        subs = sorted(options[name])
        p = np.array([options[name][s] for s in subs], float)
        at = np.flatnonzero(classes_arr == name)
        out[at] = np.array(subs, dtype=object)[rng.choice(len(subs), at.size, p=p / p.sum())]
    return out.astype(str)


def simulate_crops(counts, panel=None, taxonomy=None, crop_size: int = 80, seed: int = 0,
                   config: SimConfig | None = None, num_samples: int = 8) -> CropBatch:
    """Simulate a labelled crop dataset; deterministic for a given seed and arguments."""
    panel = load_panel(panel)
    taxonomy = load_taxonomy(taxonomy)
    cfg = at_panel_ceiling(config or SimConfig(), panel)
    if int(crop_size) < 16:
        raise InputError(f"crop_size must be at least 16 px, got {crop_size}")
    if int(num_samples) < 1:
        raise InputError(f"num_samples must be at least 1, got {num_samples}")
    per_class = _parse_counts(counts, taxonomy)
    options = available_subtypes(panel, taxonomy, cfg)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0]))
    classes = [name for name in taxonomy.names for _ in range(per_class.get(name, 0))]
    if not classes:
        raise InputError("nothing to simulate: every class count is 0")
    classes = [classes[i] for i in rng.permutation(len(classes))]
    subtypes = choose_subtypes(rng, classes, options)
    samples = rng.permutation(np.arange(len(classes)) % num_samples)
    draws = draw_samples(rng, cfg, panel, num_samples)
    neighbour_types = _neighbour_types(panel, cfg)

    def chunk(k: int) -> np.ndarray:
        # Each chunk has its own seeded stream, so the result does not depend on the threads.
        chunk_rng = np.random.default_rng(np.random.SeedSequence([seed, 1, k]))
        start, stop = k * CHUNK, min((k + 1) * CHUNK, len(classes))
        return _render_chunk(chunk_rng, cfg, panel, draws, subtypes[start:stop],
                             samples[start:stop], int(crop_size), neighbour_types)

    num_chunks = -(-len(classes) // CHUNK)
    images = threaded_map(chunk, num_chunks)
    return CropBatch(images=np.concatenate(images), labels=classes, subtypes=subtypes.tolist(),
                     sample_ids=[f"sim{seed}-s{s:03d}" for s in samples], seed=int(seed),
                     config=cfg.summary(), pixel_size_um=draws.pixel_um[samples],
                     spillover={f"sim{seed}-s{k:03d}": draws.spillover[k]
                                for k in range(num_samples)})


def _neighbour_types(panel: Panel, cfg: SimConfig) -> tuple[list[str], np.ndarray]:
    names = sorted(k for k, v in cfg.neighbour_weights.items() if v > 0 and k in SUBTYPES
                   and SUBTYPES[k] in ("ctc", "wbc", "debris") and k not in SUBTYPE_NEEDS)
    p = np.array([cfg.neighbour_weights[k] for k in names], float)
    return names, p / p.sum()


def _render_chunk(rng, cfg: SimConfig, panel: Panel, draws, subtypes, samples, size: int,
                  neighbour_types) -> np.ndarray:
    n, c = len(subtypes), panel.num_channels
    px = draws.pixel_um[samples]  # (n,)
    # A margin for the blur (the FFT wraps) and for neighbours' glow, grown to a fast FFT size.
    full = scipy.fft.next_fast_len(size + 2 * int(np.ceil(_PAD_UM / px.min())), real=True)
    full += (full - size) % 2
    pad = (full - size) // 2
    # Events: the labelled object of each crop first, then its neighbours.
    n_nb = np.minimum(rng.poisson(draws.neighbour_rate[samples]), 4)
    nb_owner = np.repeat(np.arange(n), n_nb)
    names, p = neighbour_types
    nb_types = np.array(names)[rng.choice(len(names), nb_owner.size, p=p)]
    owner = np.concatenate([np.arange(n), nb_owner])
    ev_types = np.concatenate([subtypes, nb_types])
    ctx = make_context(rng, cfg, panel, draws, samples[owner])
    prims, radius = build_events(ev_types, ctx)
    # Placement (µm from the crop centre): the object jittered about the centre; neighbours
    # at a gap of at least neighbour_gap_um, anywhere out to the rendered margin.
    jitter_r = cfg.centre_jitter_um * np.sqrt(rng.random(n))
    jitter_a = rng.uniform(0, 2 * np.pi, n)
    ex = np.concatenate([jitter_r * np.cos(jitter_a), np.zeros(nb_owner.size)])
    ey = np.concatenate([jitter_r * np.sin(jitter_a), np.zeros(nb_owner.size)])
    # Edge-cut objects sit on the crop border, as tools that clamp the crop window inside the
    # frame show them: the cut is visible. (ctcnet predict fills the part of a window past the
    # frame with background, and files events cut by the border as debris by their geometry.)
    on_border = np.flatnonzero(subtypes == "edge_cut")
    side = rng.integers(0, 4, on_border.size)
    inset = size / 2 * px[on_border] - rng.uniform(-0.3, 0.5, on_border.size) * \
        radius[on_border]
    ex[on_border] = np.select([side == 0, side == 1], [inset, -inset], ex[on_border])
    ey[on_border] = np.select([side == 2, side == 3], [inset, -inset], ey[on_border])
    reach = (size / 2 + pad) * px[nb_owner]
    dist = radius[nb_owner] + radius[n:] + cfg.neighbour_gap_um + rng.random(nb_owner.size) * \
        np.maximum(reach - radius[nb_owner], 0)
    ang = rng.uniform(0, 2 * np.pi, nb_owner.size)
    ex[n:] = ex[nb_owner] + dist * np.cos(ang)
    ey[n:] = ey[nb_owner] + dist * np.sin(ang)
    ev = prims["event"]
    prims["x"] = (prims["x"] + ex[ev]).astype(np.float32)
    prims["y"] = (prims["y"] + ey[ev]).astype(np.float32)
    centre = full / 2 - 0.5
    signal = render(prims, owner[ev], px[owner[ev]], (centre, centre), (n, c, full, full),
                    role_matrix(panel.roles()))
    # Optics: PSF with per-crop focus on the padded canvas (the FFT wraps), then the crop
    # itself; spectral bleed-through between channels.
    defocus = draw(rng, cfg.defocus_um, n)
    sigma_px = np.sqrt(draws.psf_um[samples] ** 2 + defocus ** 2) / px
    signal = gaussian_blur(signal, sigma_px)[:, :, pad:pad + size, pad:pad + size]
    signal = mix_channels(draws.bleed[samples], signal)
    # Background: per channel level, slowly varying patches; illumination from the crop's
    # random place in a frame; the channel gain scales everything the camera sees.
    cell_px = float(_BACKGROUND_CORRELATION_UM / px.mean())
    field_ = smooth_field(rng, (n, c, size, size), cell_px)
    patch = draws.patchiness[samples].reshape(n, 1, 1, 1).astype(np.float32)
    background = draws.background[samples][:, :, None, None].astype(np.float32) * \
        np.maximum(1.0 + patch * field_, 0.2)
    grid = np.arange(size, dtype=np.float32) - size / 2
    fx = (rng.uniform(0, _FRAME[1], n)[:, None] + grid)[:, None, None, :]
    fy = (rng.uniform(0, _FRAME[0], n)[:, None] + grid)[:, None, :, None]
    light = vignetting(fx, fy, _FRAME, draws.falloff[samples].reshape(n, 1, 1, 1))
    gain = draws.channel_gain[samples][:, :, None, None]
    expected = (signal + background) * (light * gain).astype(np.float32)
    counts = camera(rng, expected, draws.offset[samples], draws.camera_gain[samples],
                    draws.read_noise[samples], cfg.noise_scale, cfg.saturation)
    if cfg.output_bits == 8:
        counts = to_display_8bit(counts, draws.offset[samples], draws.display_max[samples])
    return counts.astype(np.uint16)


def write_crop_batch(batch: CropBatch, out_dir: str | Path, panel=None) -> Path:
    """Write a crop batch as a crop dataset (class folders, manifest.csv, panel.json) plus
    dataset.json (seed, per-class counts, subtypes, sample ids, knobs)."""
    panel = load_panel(panel)
    if batch.images.shape[1] != panel.num_channels:
        raise InputError(f"the crops have {batch.images.shape[1]} channels, the panel "
                         f"{panel.names} has {panel.num_channels}")
    if (batch.config or {}).get("output_bits") == 8:  # (as a cartridge's panel.json says)
        panel = display_8bit_panel(panel)
    counts: dict[str, int] = {}
    for label in batch.labels:
        counts[label] = counts.get(label, 0) + 1
    extra = {"generator": "ctcnet.simulate", "seed": batch.seed, "num_crops": len(batch),
             "crop_size": int(batch.images.shape[-1]), "class_counts": dict(sorted(counts.items())),
             "sample_ids": sorted(set(batch.sample_ids)), "subtypes": batch.subtypes,
             "pixel_size_um": [round(float(v), 4) for v in batch.pixel_size_um],
             "spillover": {k: np.round(v, 5).tolist() for k, v in batch.spillover.items()},
             "config": batch.config}
    return write_crop_dataset(out_dir, batch.images, batch.labels, panel, batch.sample_ids,
                              extra=extra)
