"""Simulated cartridges: N frames of one blood sample plus the ground truth of every event.

One sample means one scanner and one staining for the whole cartridge; each frame gets its own
focus and background. Events (hundreds per frame: mostly leukocytes and debris, rare CTCs and
rarer clusters) are built by the same biology as crops, placed without touching, rendered into
the frame, and the frame then goes through the same optics and camera. Objects the frame border
cuts (the outline of one of their shapes crosses it) are recorded as ``edge_cut`` debris, as a
reviewer would call them; an object whose soft edge or blur alone reaches the border is whole.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import scipy.fft

from ctcnet.errors import InputError
from ctcnet.io.atomic import atomic_write_text
from ctcnet.io.cartridge_info import safe_sample_id
from ctcnet.io.panel import load_panel
from ctcnet.io.plausibility import (
    CELLSEARCH_FRAME_SHAPE,
    CROWDED_PER_MM2,
    SCAN_PIXEL_SIZE_UM,
    events_per_mm2,
)
from ctcnet.io.scan import serpentine_position, write_cartridge_info, write_frame
from ctcnet.io.taxonomy import load_taxonomy
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

log = logging.getLogger(__name__)

# Rows x columns of real CellSearch cartridges by frame count (DOMAIN.md).
CARTRIDGE_LAYOUTS = {140: (4, 35), 144: (4, 36), 170: (5, 34), 175: (5, 35), 180: (5, 36),
                     210: (6, 35)}
# Fractions of events per parent class. Real samples hold 0-5 CTCs among tens of thousands of
# events; the defaults are ~100x richer (about one CTC per frame) so that a benchmark cartridge
# has enough of them to count, while staying rare among hundreds of events per frame.
DEFAULT_RARE_RATES = {"ctc": 0.004, "cluster": 0.001}
COMMON_RATES = {"wbc": 0.4, "debris": 0.6}  # share the rest: debris dominates real scans
_GAP_UM = 2.0
_BACKGROUND_CORRELATION_UM = 40.0
TRUTH_COLUMNS = ["frame", "row", "col", "x", "y", "class", "subtype", "bbox_x0", "bbox_y0",
                 "bbox_x1", "bbox_y1", "edge_cut", "frame_id", "source_subtype"]


def frame_grid(num_frames: int, columns: int | None = None) -> tuple[int, int]:
    """(rows, columns) of a cartridge scan: a real layout when the count matches one."""
    if columns is None:
        if num_frames in CARTRIDGE_LAYOUTS:
            return CARTRIDGE_LAYOUTS[num_frames]
        columns = min(num_frames, 35)
    return math.ceil(num_frames / columns), int(columns)


def event_mixture(rare_rates: dict | None, panel, taxonomy, cfg: SimConfig):
    """(subtypes, probabilities) of a random event. ``rare_rates`` gives fractions per parent
    class (ctc, wbc, cluster, debris), over the defaults; wbc and debris, unless given, share
    what is left 40:60. A rare class left out keeps its default where the rates given leave
    room for it, else it is not drawn (``ctc=1`` or ``wbc=0.5,debris=0.5`` were refused as
    adding up past 1 with a cluster rate nobody typed)."""
    given = dict(rare_rates or {})
    for name, value in given.items():
        if name not in COMMON_RATES and name not in DEFAULT_RARE_RATES:
            raise InputError(f"the rates (--rates): unknown class {name!r}; use ctc, wbc, "
                             "cluster, debris "
                             "(the simulator's parent classes: a class of the taxonomy drawn "
                             "from some of their subtypes, by its 'includes', takes its share of "
                             "its parent's rate)")
        if not 0 <= float(value) <= 1:
            raise InputError(f"the rate of {name} ({value}) is a share of the events, a "
                             "fraction in 0..1 (--rates ctc=0.002: one event in 500), not a "
                             "count")
    asked = sum(float(v) for v in given.values())
    if asked > 1 + 1e-9:
        raise InputError(f"the rates (--rates) add up to more than 1: {given}")
    # The parents the panel and the taxonomy let be drawn, found first: a lab's class set
    # without debris spread debris's share over every class (CTCs at 2.5x the rate asked,
    # cartridge.json saying the rate asked); a class not drawn leaves its share to wbc and
    # debris as a rate left out does.
    roles = set(panel.roles())
    # (a class asked for at 0, a blank's cluster=0, asks for nothing: no class needed)
    subtypes = {parent: {} if parent in given and not float(given[parent]) > 0 else
                _drawn_subtypes(parent, cfg, roles, taxonomy, parent in given)
                for parent in {**DEFAULT_RARE_RATES, **COMMON_RATES}}
    defaults = {k: v for k, v in DEFAULT_RARE_RATES.items() if k not in given and subtypes[k]}
    room = asked + sum(defaults.values()) <= 1 + 1e-9
    rates = {**DEFAULT_RARE_RATES, **given}  # (in this order: a seed's draws stay as they were)
    rates.update({k: 0.0 for k in DEFAULT_RARE_RATES if k not in given and not subtypes[k]})
    rates.update({} if room else dict.fromkeys(defaults, 0.0))
    left = 1.0 - sum(float(v) for v in rates.values())
    open_common = {k: v for k, v in COMMON_RATES.items() if k not in rates and subtypes[k]}
    if not open_common and left > 1e-9:  # nothing left to take the rest: it was rescaled
        kept = ", ".join(f"{k} {v:g}" for k, v in defaults.items() if rates[k])
        raise InputError(f"the rates (--rates) of every class add up to {1 - left:g}, not 1"
                         + (f" (with {kept}, the defaults of those left out)" if kept else "")
                         + ": each is a share of all events (ctc=0.01 draws 1 % CTCs); make "
                         "them add up to 1, or leave wbc or debris out to take what is left")
    total_common = sum(open_common.values())
    for k, v in open_common.items():
        rates[k] = max(left, 0.0) * v / total_common
    names, probs = [], []
    for parent, rate in rates.items():
        subs = subtypes[parent]
        if not subs or rate <= 0:
            continue
        total = sum(subs.values())
        for s, w in subs.items():
            names.append(s)
            probs.append(rate * w / total)
    if not names:
        raise InputError("no event type left to simulate with these rates")
    p = np.array(probs)
    return np.array(names), p / p.sum()


def _drawn_subtypes(parent: str, cfg: SimConfig, roles: set, taxonomy, asked: bool) -> dict:
    """{subtype: weight} of ``parent`` the panel's markers can draw and the taxonomy holds;
    {} where none (a lab's class set without the class: its events are not drawn, as simulate
    crops draws none, and said; refused where ``asked`` for by --rates, saying how)."""
    subs = {s: float(cfg.subtype_weights.get(s, 0.0)) for s, p in SUBTYPES.items()
            if p == parent and s != "edge_cut" and SUBTYPE_NEEDS.get(s, "nucleus") in
            roles | {"nucleus"}}
    subs = {s: w for s, w in subs.items() if w > 0}
    try:  # fail early if the taxonomy cannot hold it
        for s in subs:
            taxonomy.class_for_subtype(s, parent)
    except InputError:
        if asked:
            raise
        log.warning("no %s events drawn: the taxonomy has no class for them (%s); give it "
                    "one, or a class whose 'includes' names their subtypes", parent,
                    ", ".join(taxonomy.names))
        return {}
    return subs


def place_events(rng, radius_px: np.ndarray, shape: tuple[int, int], gap_px: float,
                 tries: int = 24) -> np.ndarray:
    """Centres (x, y) for objects of given radii, none touching another; NaN where no room."""
    h, w = shape
    out = np.full((len(radius_px), 2), np.nan)
    kept_xy = np.zeros((0, 2))
    kept_r = np.zeros(0)
    # Largest first: big clusters find room before the small debris fills the frame.
    for i in np.argsort(-radius_px, kind="stable"):
        cand = rng.uniform((0, 0), (w, h), (tries, 2))
        if kept_r.size:
            d = np.hypot(cand[:, None, 0] - kept_xy[None, :, 0], cand[:, None, 1] -
                         kept_xy[None, :, 1])
            ok = (d >= kept_r[None, :] + radius_px[i] + gap_px).all(axis=1)
            if not ok.any():
                continue
            cand = cand[ok]
        out[i] = cand[0]
        kept_xy = np.vstack([kept_xy, cand[:1]])
        kept_r = np.append(kept_r, radius_px[i])
    return out


def simulate_cartridge(out_dir, panel=None, taxonomy=None, num_frames: int = 6,
                       frame_shape: tuple[int, int] = CELLSEARCH_FRAME_SHAPE, seed: int = 0,
                       config: SimConfig | None = None, events_per_frame: float = 300,
                       layout: str = "multipage", rare_rates: dict | None = None,
                       sample_id: str | None = None, columns: int | None = None):
    """Write a simulated cartridge folder and its ground_truth.csv; return the truth table.

    ``layout``: 'multipage' (CellSearch: one 16-bit TIFF per frame), 'channels' (one TIFF per
    channel) or 'png' (8-bit display export, one PNG per channel). Truth ``x, y`` are object
    centres and ``bbox_*`` the drawn extent, in frame pixels (bbox clipped to the frame).
    """
    import pandas as pd

    panel = load_panel(panel)
    taxonomy = load_taxonomy(taxonomy)
    cfg = at_panel_ceiling(config or SimConfig(), panel)
    h, w = (int(v) for v in frame_shape)
    if num_frames < 1:
        raise InputError(f"a cartridge needs at least 1 frame (--frames), got {num_frames}")
    if h < 64 or w < 64:
        raise InputError(f"frame_shape {frame_shape} is too small (at least 64 x 64)")
    if layout not in ("multipage", "channels", "png"):
        raise InputError(f"unknown layout {layout!r}: use multipage, channels or png")
    # (a cell takes tens of pixels, and the frame holds what fits: a count past one a 2 x 2
    # pixel square is a slip of the keyboard, and drawing it ran out of memory)
    if not 0 <= events_per_frame <= h * w / 4:
        raise InputError(f"events per frame (--events) must be 0 to {h * w // 4} for a {h} x "
                         f"{w} frame (one a 2 x 2 pixel square), got {events_per_frame}")
    _readable_as_a_scan(panel, cfg)
    # (an empty --sample-id is refused as one, not taken for the default)
    sample_id = safe_sample_id(f"sim{seed}" if sample_id is None else sample_id, Path(out_dir),
                               "--sample-id")
    rows, columns = frame_grid(num_frames, columns)
    names, probs = event_mixture(rare_rates, panel, taxonomy, cfg)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 2]))
    draws = draw_samples(rng, cfg, panel, 1)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    eight_bit = layout == "png" or cfg.output_bits == 8

    def one_frame(index: int):
        row, col = serpentine_position(index, columns)
        # Each frame has its own seeded stream: the same bytes whatever the threads do.
        frame_rng = np.random.default_rng(np.random.SeedSequence([seed, 3, index]))
        frame, truth = render_frame(frame_rng, cfg, panel, draws, (h, w), events_per_frame,
                                    names, probs, eight_bit)
        write_frame(out_dir, row, col, frame.astype(np.uint8 if layout == "png" else np.uint16),
                    panel, layout)
        truth.insert(0, "frame", index)
        truth.insert(1, "row", row)
        truth.insert(2, "col", col)
        truth["frame_id"] = f"r{row:02d}c{col:02d}"
        return truth

    tables = threaded_map(one_frame, num_frames)
    table = pd.concat(tables, ignore_index=True)
    classes = [_truth_class(taxonomy, s, source)
               for s, source in zip(table["subtype"], table["source_subtype"])]
    table.insert(5, "class", classes)
    table = table[TRUTH_COLUMNS]
    atomic_write_text(out_dir / "ground_truth.csv", table.to_csv(index=False))
    # The scanner's own pixel size goes into panel.json, as a real scanner records it, so
    # inference resamples to the model's pixel size.
    scan_panel = panel.with_pixel_size(round(float(draws.pixel_um[0]), 4))
    if eight_bit:
        scan_panel = display_8bit_panel(scan_panel)
    placed = len(table) / max(num_frames, 1)
    # --events is per frame, not per area: at a fine pixel size a frame is a small field.
    per_mm2 = events_per_mm2(len(table), num_frames, (h, w), float(draws.pixel_um[0]))
    if per_mm2 is not None and per_mm2 > CROWDED_PER_MM2:
        log.warning("%.0f events per mm^2 drawn (%.0f a %d x %d frame at %.3g um per pixel): "
                    "predict reads a sample past %.0f as crowded (partial); draw fewer "
                    "events a frame (--events)", per_mm2, placed, h, w,
                    float(draws.pixel_um[0]), CROWDED_PER_MM2)
    if num_frames and placed < 0.8 * events_per_frame:
        # A frame holds so many cells of these sizes side by side: the rest found no room.
        log.warning("%d events a frame asked for, %.0f placed: a %d x %d frame has no room "
                    "for more cells of these sizes", round(events_per_frame), placed, h, w)
    write_cartridge_info(out_dir, scan_panel, sample_id, num_frames, rows, columns, (h, w), extra={
        "simulated": True, "seed": int(seed), "layout": layout,
        "events_per_frame": float(events_per_frame),
        "events_placed_per_frame": round(placed, 1),
        # the class shares asked for (None: the defaults): cartridges drawn at other rates
        # told apart without counting their ground truth
        "rates": {str(k): float(v) for k, v in rare_rates.items()} if rare_rates else None,
        # panel.json's, by which the frames are read: one pixel size for the scan, not two
        "pixel_size_um": scan_panel.pixel_size_um, "config": cfg.summary(),
        # Ground truth for spillover estimates: [t][s], counts in t per count of s's own dye,
        # in the units of the files written: an 8-bit export shows each channel on 0-255 at
        # its own display top (read at the counts', a png cartridge's true CK leak into CD45
        # read 0.057 beside the 0.20 its files hold), so its matrix is in display levels,
        # and the tops are recorded.
        "spillover": np.round(_in_written_units(draws.spillover[0], draws.display_max[0]
                                                if eight_bit else None), 5).tolist(),
        **({"display_max": np.round(draws.display_max[0], 1).tolist()} if eight_bit else {})})
    return table


def _in_written_units(spillover: np.ndarray, display_max: np.ndarray | None) -> np.ndarray:
    """A spillover matrix ``[t][s]`` of counts in the units a cartridge's files hold: as it is
    for counts; for an 8-bit display export whose channels show their counts over the
    offset at 255 / ``display_max`` levels a count, each entry scaled by
    ``display_max[s] / display_max[t]``."""
    if display_max is None:
        return spillover
    top = np.asarray(display_max, np.float64)
    return np.asarray(spillover, np.float64) * top[None, :] / top[:, None]


def _extents(prims, reach: np.ndarray, px: float, n: int,
             reach_y: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
    """(x0, y0, x1, y1) per event, in pixels: its primitives' centres give or take ``reach``
    (um, one per primitive; across, and down where ``reach_y`` is given)."""
    ev = prims["event"]
    reach_y = reach if reach_y is None else reach_y
    return (_group(np.minimum, (prims["x"] - reach) / px, ev, n, np.inf),
            _group(np.minimum, (prims["y"] - reach_y) / px, ev, n, np.inf),
            _group(np.maximum, (prims["x"] + reach) / px, ev, n, -np.inf),
            _group(np.maximum, (prims["y"] + reach_y) / px, ev, n, -np.inf))


def outline_reach(prims) -> tuple[np.ndarray, np.ndarray]:
    """How far each primitive's outline (its ellipse, axis ``a`` at ``theta``) reaches across
    and down from its centre (um): a spindle lying along a border reaches it by its short
    axis, not its long one (read as a circle of its long axis, whole CTCs and fibres lying
    near the border were filed as cut debris)."""
    a, b, theta = (np.asarray(prims[k], np.float64) for k in ("a", "b", "theta"))
    cos2, sin2 = np.cos(theta) ** 2, np.sin(theta) ** 2
    return np.sqrt(a * a * cos2 + b * b * sin2), np.sqrt(a * a * sin2 + b * b * cos2)


def render_frame(rng, cfg: SimConfig, panel, draws, shape, events_per_frame, names, probs,
                 eight_bit: bool):
    """One frame (C, H, W) of camera counts and its truth (a DataFrame without frame columns)."""
    import pandas as pd

    h, w = shape
    c = panel.num_channels
    px = float(draws.pixel_um[0])
    n = int(rng.poisson(events_per_frame))
    subtypes = names[rng.choice(len(names), n, p=probs)] if n else np.array([], str)
    ctx = make_context(rng, cfg, panel, draws, np.zeros(n, np.int64))
    prims, radius = build_events(subtypes, ctx)
    centres = place_events(rng, radius / px, (h, w), _GAP_UM / px)
    placed = ~np.isnan(centres[:, 0])
    ev = prims["event"]
    keep = placed[ev]
    prims = {k: v[keep] for k, v in prims.items()}
    ev = prims["event"]
    prims["x"] = (prims["x"] + centres[ev, 0] * px).astype(np.float32)
    prims["y"] = (prims["y"] + centres[ev, 1] * px).astype(np.float32)
    # Drawn extent of every event, from its primitives (to the shapes' soft edge).
    x0, y0, x1, y1 = _extents(prims, np.maximum(prims["a"], prims["b"]) + prims["soft"], px, n)
    # Where the shapes' own outlines reach (their half-level, no soft edge, no blur): the frame
    # border cuts an object when they cross it. Read on the drawn extent plus the blur, a cell
    # whose faint rim alone reached the border was recorded as cut debris, and a CTC 90 % in
    # the frame, which a reviewer counts and so does predict (detection's cut asks the border
    # to run through a quarter of the object's peak), read as a false CTC call: 3 of the 5
    # counted on the 20 counting cartridges at 10 frames.
    across, down = outline_reach(prims)
    outline = _extents(prims, across, px, n, down)

    # Optics: blur on a padded canvas (the FFT wraps), then the frame itself.
    defocus = float(draw(rng, cfg.defocus_um))
    sigma_px = math.hypot(float(draws.psf_um[0]), defocus) / px
    pad = int(math.ceil(4 * sigma_px)) + 4
    full_h, full_w = (scipy.fft.next_fast_len(v + 2 * pad, real=True) for v in (h, w))
    signal = render(prims, np.zeros(ev.size, np.int64), np.full(ev.size, px, np.float32),
                    (pad, pad), (1, c, full_h, full_w), role_matrix(panel.roles()))
    signal = gaussian_blur(signal, np.array([sigma_px]))[:, :, pad:pad + h, pad:pad + w]
    signal = mix_channels(draws.bleed, signal)
    field_ = smooth_field(rng, (1, c, h, w), _BACKGROUND_CORRELATION_UM / px)
    background = draws.background[0][None, :, None, None].astype(np.float32) * np.maximum(
        1.0 + np.float32(draws.patchiness[0]) * field_, 0.2)
    light = vignetting(np.arange(w, dtype=np.float32)[None, :],
                       np.arange(h, dtype=np.float32)[:, None], (h, w), float(draws.falloff[0]))
    gain = draws.channel_gain[0][None, :, None, None].astype(np.float32)
    expected = (signal + background) * (light[None, None] * gain).astype(np.float32)
    counts = camera(rng, expected, draws.offset, draws.camera_gain, draws.read_noise,
                    cfg.noise_scale, cfg.saturation)
    if eight_bit:
        counts = to_display_8bit(counts, draws.offset, draws.display_max)

    # Boxes reach one PSF sigma past the drawn edge, where the blurred object still shows.
    x0, y0, x1, y1 = x0 - sigma_px, y0 - sigma_px, x1 + sigma_px, y1 + sigma_px
    idx = np.flatnonzero(placed)
    ox0, oy0, ox1, oy1 = (a[idx] for a in outline)
    cut = (ox0 < 0) | (oy0 < 0) | (ox1 > w - 1) | (oy1 > h - 1)
    truth = pd.DataFrame({
        # A centre drawn in the last half pixel is recorded on the last pixel, like its box.
        "x": np.round(np.clip(centres[idx, 0], 0, w - 1), 2),
        "y": np.round(np.clip(centres[idx, 1], 0, h - 1), 2),
        "subtype": np.where(cut, "edge_cut", subtypes[idx]),
        "bbox_x0": np.clip(np.floor(x0[idx]), 0, w - 1).astype(int),
        "bbox_y0": np.clip(np.floor(y0[idx]), 0, h - 1).astype(int),
        # Half-open, as events.csv's boxes are: x1 one past the last column (IoU and border
        # checks between truth and calls were one pixel off).
        "bbox_x1": np.clip(np.ceil(x1[idx]), 0, w - 1).astype(int) + 1,
        "bbox_y1": np.clip(np.ceil(y1[idx]), 0, h - 1).astype(int) + 1,
        "edge_cut": cut, "source_subtype": subtypes[idx]})
    return counts[0], truth


def _truth_class(taxonomy, subtype: str, source: str) -> str:
    """The class the ground truth files an object under: an object the frame border cuts is
    debris, or, in a class set without one (``ctc``, ``wbc``), its own cell's class (it
    stopped the whole cartridge, after a warning that debris would not be drawn)."""
    if subtype == "edge_cut":
        try:
            return taxonomy.class_for_subtype(subtype, SUBTYPES[subtype])
        except InputError:
            subtype = source
    return taxonomy.class_for_subtype(subtype, SUBTYPES[subtype])


def _readable_as_a_scan(panel, cfg: SimConfig) -> None:
    """Refuse a panel whose pixel size, times the scanners' spread the simulator draws
    (``pixel_scale``), can fall outside what predict reads as a scan: simulate wrote such a
    cartridge, and predict refused it."""
    lo, hi = SCAN_PIXEL_SIZE_UM
    px = float(panel.pixel_size_um)
    drawn = (px * min(cfg.pixel_scale), px * max(cfg.pixel_scale))
    if drawn[0] < lo or drawn[1] > hi:
        raise InputError(f"the panel's pixel size {px:g} um is drawn at {drawn[0]:.3g}-"
                         f"{drawn[1]:.3g} um per pixel (x pixel_scale {min(cfg.pixel_scale):g}-"
                         f"{max(cfg.pixel_scale):g}: scanners differ), outside what predict "
                         f"reads as a scan ({lo:g} to {hi:g}): give one within "
                         f"{lo / min(cfg.pixel_scale):.3g}-{hi / max(cfg.pixel_scale):.3g} um")


def _group(op, values, owner, n, init):
    out = np.full(n, init, np.float64)
    op.at(out, owner, values)
    return out


# What scoring reads of each drawn cell: its frame (row, col), its centre and its class.
SCORED_COLUMNS = ("row", "col", "x", "y", "class")


def read_truth(root) -> object:
    """The ground-truth table of a simulated cartridge folder, refused by name where it is cut
    short or lacks what scoring reads (a file cut mid-row had its last frames' cells scored as
    missing calls, without a word)."""
    import pandas as pd

    path = Path(root) / "ground_truth.csv"
    if not path.exists():
        raise InputError("no ground_truth.csv: not a simulated cartridge", root)
    again = "; simulate the cartridge again, or copy it whole"
    with open(path, "rb") as fh:
        fh.seek(0, 2)
        if fh.tell() and (fh.seek(-1, 2), fh.read(1))[1] != b"\n":
            raise InputError(f"ends within a row: the file was cut short{again}", path)
    try:
        truth = pd.read_csv(path)
    except (ValueError, UnicodeDecodeError) as err:  # (pandas' parser errors among them)
        raise InputError(f"cannot be read as a table: {err}{again}", path) from None
    missing = [c for c in SCORED_COLUMNS if c not in truth.columns]
    if missing:
        raise InputError(f"lacks the column(s) {', '.join(missing)}, which scoring reads "
                         f"(it holds {', '.join(map(str, truth.columns))}){again}", path)
    words = [c for c in SCORED_COLUMNS[:4] if len(truth)  # (no cell drawn: columns of text)
             and not pd.api.types.is_numeric_dtype(truth[c])]
    if words:
        raise InputError(f"column(s) {', '.join(words)} hold text where numbers belong{again}",
                         path)
    incomplete = truth[list(SCORED_COLUMNS)].isna().any(axis=1).to_numpy()
    if incomplete.any():
        lines = [str(i + 2) for i in np.flatnonzero(incomplete)[:5]]  # (line 1: the header)
        raise InputError(f"line(s) {', '.join(lines)} lack a value of {', '.join(SCORED_COLUMNS)}"
                         f"{again}", path)
    return truth
