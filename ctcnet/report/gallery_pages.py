"""A run's review gallery: montage pages (PNG) of its events' tiles, and the display scale they
share with the review server's tiles. The page that shows them is :mod:`ctcnet.report.report_page`;
what predict is handed to draw both is :mod:`ctcnet.report.run_report`.

A gallery tile shows one event: every channel side by side in grey, each on the sample's own
display scale (:mod:`ctcnet.report.display`: black the sample's background, white a high
percentile of its cells, an arcsinh between them that keeps a dim marker dim and visible, the
same for every tile) with the event's
mean and peak in noise units written above it, plus a colour overlay of the nucleus, the CTC
marker and CD45 (blue, green, red; :mod:`ctcnet.report.colours`); ticks at the middle of
each border of every panel mark the event's centre, a dotted box its object, and a hatch
the pixels past the frame's border (:mod:`ctcnet.report.tile_marks`).
Under them, when the model allows gradients, a per-channel saliency row (Grad-CAM x input)
shows which marker drove the call. Tiles are stacked into montage pages per category: every
call of a reported class (``ctc``, ``cluster``) and the uncertain events (``review``), as
``ctcnet.inference.gallery`` chooses them (predict journals those events' crops). ``index.html``
shows the summary and the pages; a small inline script reports any image that fails to load, so
a broken page is obvious to a reader (and to the headless-browser test).
"""
from __future__ import annotations

import logging
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd

from ctcnet.core.ordered import ordered_map
from ctcnet.core.robust import crop_statistics, median_and_mad_sigma
from ctcnet.detect.detection import BOX_COLUMNS
from ctcnet.inference.gallery import gallery_categories
from ctcnet.inference.sample_folders import GALLERY_DIR, GALLERY_HOLDS
from ctcnet.inference.tables import BAND_PREFIX
from ctcnet.io.atomic import atomic_path, own_folder
from ctcnet.io.panel import Panel
from ctcnet.nn.calls import COUNTED_CLASSES
from ctcnet.nn.spec import ModelSpec
from ctcnet.report import display
from ctcnet.report.colours import DEFAULT_PALETTE, overlay_roles, role_colour
from ctcnet.report.reasons import call_text, caption_line, event_reasons, own_calls
from ctcnet.report.tile_marks import event_boxes, hatch_outside, outline_boxes, outside_frame
from ctcnet.review.decisions import run_id
from ctcnet.review.levels import DisplayLevels, levels_from_statistics, write_levels

log = logging.getLogger(__name__)

TILES_PER_PAGE = 20
# Saliency is computed for this many pages at a time (60 crops: one efficient backward batch),
# so its maps never hold a whole category: the report's memory does not grow with the gallery.
SALIENCY_PAGES = 3
# Gallery pages drawn at once (threads: numpy, the text and PNG encoding release the GIL).
PAGE_THREADS = 2
LABEL_HEIGHT = 14
GAP = 4
TILE_PX = 96  # crops are zoomed to about this many pixels a side (80 px ones shown 1:1)
# The centre marks on the grey channel panels: a colour no grey level has, so a tick never
# reads as signal; the overlay's are white, as its signal is coloured.
TICK_COLOUR = (1.0, 0.85, 0.0)


def stretch_each_crop(crops: np.ndarray, high: float = 99.5, min_snr: float = 12.0,
                      together: bool = False) -> np.ndarray:
    """(N, C, S, S) counts -> float32 in [0, 1], per crop and channel.

    Black is the crop's background (median); white is the ``high`` percentile of the crop's
    central half, where the event is, so the event sets the contrast and a bright neighbour at
    the border saturates instead of hiding a dim event. White is never less than ``min_snr``
    noise units above background, so a channel without signal shows as dark speckle.
    ``together``: one white for all of a crop's channels, its brightest channel's, so a marker
    a fifth as bright as another looks so, as the image file shows it (each channel to itself
    shows a faint copy of CK in the CD45 plane as bright as CK).
    """
    crops = np.asarray(crops, dtype=np.float32)
    n, c, s, _ = crops.shape
    flat = crops[:, :, ::2, ::2].reshape(n, c, -1)  # display levels: a quarter of the pixels do
    background, noise = median_and_mad_sigma(flat)
    q = s // 4
    centre = crops[:, :, q:s - q, q:s - q].reshape(n, c, -1)
    top = np.percentile(centre, high, axis=2) - background
    if together:
        top = top.max(axis=1, keepdims=True)
    span = np.maximum(top, np.maximum(min_snr * noise, 1e-3))
    return np.clip((crops - background[..., None, None]) / span[..., None, None], 0.0, 1.0)


def role_overlay(stretched: np.ndarray, panel: Panel, palette: str = DEFAULT_PALETTE
                 ) -> np.ndarray:
    """(N, C, S, S) in [0, 1] -> (N, S, S, 3) colour composite by marker role."""
    shown = overlay_roles(panel.roles())  # the others stay out of the mix (colours.py)
    colours = np.array([role_colour(r, palette) if r in shown else (0.0, 0.0, 0.0)
                        for r in panel.roles()], dtype=np.float32)
    return np.clip(np.einsum("ncij,ck->nijk", stretched, colours), 0.0, 1.0)


def heat_colours(saliency: np.ndarray) -> np.ndarray:
    """(..., S, S) saliency in [0, 1] -> (..., S, S, 3): black, red, yellow, white ("hot")."""
    v = np.clip(saliency, 0.0, 1.0)[..., None]
    return np.clip(np.concatenate([3 * v, 3 * v - 1, 3 * v - 2], axis=-1), 0.0, 1.0)


def panel_mark_colours(panels: int) -> list[tuple[float, float, float]]:
    """The colour of marks on each of a tile's panels: the ticks' on the grey channels, white
    on the overlay (the last)."""
    return [TICK_COLOUR] * (panels - 1) + [(1.0, 1.0, 1.0)]


def mark_centre(panels: np.ndarray, box: int | None = None) -> None:
    """Ticks at the middle of each border of every panel ((N, P, S, S, 3), the last panel the
    overlay) mark the event's centre; ``box``: also outline the centred square of that side
    (a context tile shows where the event's own crop lies). In place."""
    s = panels.shape[2]
    tick = max(2, s // 16)
    mid = slice(s // 2 - 1, s // 2 + 1)
    for k, colour in enumerate(panel_mark_colours(panels.shape[1])):
        panel = panels[:, k]
        for rows, cols in ((slice(0, tick), mid), (slice(s - tick, s), mid),
                           (mid, slice(0, tick)), (mid, slice(s - tick, s))):
            panel[:, rows, cols] = colour
        if box is not None and box < s:
            a, b = (s - box) // 2, (s + box) // 2 - 1
            for edge in (a, b):
                panel[:, edge, a:b + 1] = colour
                panel[:, a:b + 1, edge] = colour


def render_tiles(crops: np.ndarray, panel: Panel, scale: int,
                 saliency: np.ndarray | None = None,
                 levels: DisplayLevels | None = None,
                 box: int | None = None, palette: str = DEFAULT_PALETTE,
                 outside: np.ndarray | None = None,
                 boxes: np.ndarray | None = None) -> np.ndarray:
    """(N, C, S, S) crops -> (N, S*scale, (C+1)*(S*scale+GAP), 3) uint8 tiles.

    ``levels``: the sample's display scale (every tile alike), or any object whose
    ``stretch`` takes crops to [0, 1]; without it each crop is stretched to itself
    (:func:`stretch_each_crop`). With ``saliency`` (N, C, S, S), a second
    row under the channels shows which pixels of which marker drove the call (the overlay
    column's second row: the saliency summed over channels). ``box``: see :func:`mark_centre`.
    ``palette``: the overlay's colours (:data:`ctcnet.report.colours.PALETTES`).
    ``outside``: (N, S, S) bool, the pixels past the frame's border
    (:func:`ctcnet.report.tile_marks.outside_frame`), hatched on every panel. ``boxes``:
    (N, 4) each event's bounding box in crop pixels
    (:func:`ctcnet.report.tile_marks.event_boxes`), outlined, dotted, on every panel.
    """
    n, c, s, _ = crops.shape
    st = levels.stretch(crops) if levels is not None else stretch_each_crop(crops)
    grey = np.repeat(st[..., None], 3, axis=-1)                      # (N, C, S, S, 3)
    # The overlay without the noise's speckle (display.OVERLAY_FLOOR_SNR), on the sample's
    # scale; stretched to itself, as the grey panels.
    colour = role_overlay(levels.stretch(crops, display.OVERLAY_FLOOR_SNR)
                          if isinstance(levels, DisplayLevels) else st, panel, palette)
    panels = np.concatenate([grey, colour[:, None]], 1)              # (N, C+1, S, S, 3)
    if outside is not None:
        hatch_outside(panels, outside)
    mark_centre(panels, box)
    if saliency is not None:
        total = saliency.sum(axis=1, keepdims=True)
        total = total / np.maximum(total.max(axis=(2, 3), keepdims=True), 1e-6)
        heat = heat_colours(np.concatenate([saliency, total], 1))    # (N, C+1, S, S, 3)
        gap = np.full(panels.shape[:2] + (GAP, s, 3), 0.15, np.float32)
        panels = np.concatenate([panels, gap, heat], axis=2)          # two rows per tile
    rows = panels.shape[2]
    if scale > 1:
        panels = panels.repeat(scale, axis=2).repeat(scale, axis=3)  # nearest-neighbour zoom
    if boxes is not None:  # after the zoom: a dotted line one pixel wide
        outline_boxes(panels[:, :, :s * scale], boxes, panel_mark_colours(c + 1), scale)
    ss = s * scale
    panels = np.pad(panels, ((0, 0), (0, 0), (0, 0), (0, GAP), (0, 0)), constant_values=0.15)
    tiles = panels.transpose(0, 2, 1, 3, 4).reshape(n, rows * scale, (c + 1) * (ss + GAP), 3)
    return (tiles * 255 + 0.5).astype(np.uint8)


def montage_page(tiles: np.ndarray, labels: list[str], header: list[str], tile_px: int,
                 measures: list[list[str]] | None = None):
    """Stack tiles vertically under a channel header, each with its label; a PIL image.

    A label may hold several lines ("\\n"), and a line wider than the tile is wrapped (the
    reasons at a caption's end were cut off at the tile's edge): every row then has room for
    the page's longest. ``measures``: per tile, a text per channel column (the marker's
    intensities), written on a line of their own between the label and the tile, above each
    channel."""
    from PIL import Image, ImageDraw, ImageFont

    n, th, tw, _ = tiles.shape
    font = ImageFont.load_default()
    lines = [[part for line in text.split("\n") for part in _wrapped(line, tw - 4, font)]
             for text in labels]
    label_lines = max((len(t) for t in lines), default=1)
    text_h = LABEL_HEIGHT * (label_lines + (measures is not None))
    row_h = text_h + th + GAP
    page = np.full((LABEL_HEIGHT + n * row_h, tw, 3), 24, dtype=np.uint8)
    for i in range(n):  # per tile, not per pixel: placing arrays and drawing one label each
        top = LABEL_HEIGHT + i * row_h + text_h
        page[top:top + th] = tiles[i]
    image = Image.fromarray(page)
    draw = ImageDraw.Draw(image)
    for k, name in enumerate(header):
        draw.text((k * (tile_px + GAP) + 2, 1), name, fill=(255, 255, 160))
    for i, text in enumerate(lines):
        for j, line in enumerate(text):
            draw.text((2, LABEL_HEIGHT * (1 + j) + i * row_h + 1), line, fill=(230, 230, 230))
    for i, cells in enumerate(measures or []):
        for k, text in enumerate(cells):
            draw.text((k * (tile_px + GAP) + 2, LABEL_HEIGHT * (1 + label_lines) + i * row_h
                       + 1), text, fill=(170, 210, 255))
    return image


def _wrapped(line: str, width_px: int, font) -> list[str]:
    """``line`` in lines no wider than ``width_px`` in ``font``, broken at spaces."""
    if not line or font.getlength(line) <= width_px:
        return [line]
    chars = max(20, int(width_px * len(line) / font.getlength(line)))
    return textwrap.wrap(line, chars) or [line]


def journal_event_ids(events: pd.DataFrame, gallery: dict) -> dict:
    """Per journaled frame, the event_id of each of its gallery rows (NaN: no such event)."""
    within = events.groupby("frame", sort=False).cumcount().to_numpy()
    key_of_event = pd.Series(events["event_id"].to_numpy(),
                             index=pd.MultiIndex.from_arrays([events["frame"].to_numpy(), within]))
    out = {}
    for frame, (rows, _) in gallery.items():
        keys = pd.MultiIndex.from_arrays([np.full(len(rows), frame), rows])
        out[frame] = key_of_event.reindex(keys).to_numpy(dtype=np.float64)
    return out


def _journal_crops(crops) -> np.ndarray:
    """A frame's journaled gallery crops: the array, or read from its ``.gallery.npz``."""
    if isinstance(crops, (str, Path)):
        with np.load(crops) as blob:
            return blob["crops"]
    return crops


def gallery_lookup(events: pd.DataFrame, gallery: dict, wanted=None, event_ids=None
                   ) -> tuple[pd.Series, np.ndarray]:
    """Map event_id -> position in one stacked array of the journaled gallery crops.

    ``gallery`` maps a frame index to (journaled rows, crops or the ``.gallery.npz`` holding
    them); with ``wanted`` (event ids) only those events' crops are read and stacked, so the
    memory is the gallery's, not the cartridge's. ``event_ids``: :func:`journal_event_ids` of
    the same events and gallery, if the caller already has it (it groups every event).
    """
    keep = None if wanted is None else np.asarray(sorted(set(wanted)), dtype=np.float64)
    ids, stacks = [], []
    if event_ids is None:
        event_ids = journal_event_ids(events, gallery)
    for frame, frame_ids in event_ids.items():
        ok = ~np.isnan(frame_ids)
        if keep is not None:
            ok &= np.isin(frame_ids, keep)
        if not ok.any():
            continue
        ids.append(frame_ids[ok])
        stacks.append(_journal_crops(gallery[frame][1])[ok])
    if not ids:
        return pd.Series(dtype=np.int64), np.zeros((0,), np.float16)
    ids = np.concatenate(ids).astype(np.int64)
    return pd.Series(np.arange(len(ids)), index=ids), np.concatenate(stacks)


def call_indices(calls, spec: ModelSpec) -> np.ndarray:
    """Each call's class index; -1 for a call outside the taxonomy (``failed``: an event
    whose probabilities were not finite, which the review gallery shows uncalled)."""
    names = spec.class_names
    return np.array([names.index(k) if k in names else -1 for k in calls], np.int64)


def explained(explain, crops: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Saliency of each crop for its call (:func:`call_indices`); blank for a crop without a
    class, as nothing was called there to explain."""
    maps = np.zeros(crops.shape, np.float32)
    called = classes >= 0
    if called.any():
        maps[called] = explain(crops[called], classes[called])
    return maps


def tile_labels(events: pd.DataFrame, reasons: list[list[str]],
                review_threshold: float, classes=(), counted=COUNTED_CLASSES) -> list[str]:
    """Each tile's caption: the event, its call (and the network's own most probable of
    ``classes`` where the prior made it another of the ``counted``) and why it is shown
    (``reasons``: codes of :mod:`ctcnet.report.reasons`, one list per event)."""
    models = events["model_class"] if "model_class" in events else events["class"]
    own, own_p = own_calls(events, classes, counted)
    partners = events["cluster_partner"] if "cluster_partner" in events else [None] * len(events)
    return [f"#{e} {f} x={x:.0f} y={y:.0f} {call_text(k, m, p, o, op, pa)}"
            + (" border-cut" if ec else "")
            + (f" | {caption_line(codes, p, review_threshold, counted)}" if codes else "")
            for e, f, x, y, k, m, p, ec, codes, o, op, pa in zip(
                events["event_id"], events["frame_id"], events["x"], events["y"],
                events["class"], models, events["confidence"], events["edge_cut"], reasons,
                own, own_p, partners)]


def write_gallery(out_dir: Path, events: pd.DataFrame, gallery: dict, panel: Panel,
                  spec: ModelSpec, limit: int, explain=None, frame_shape=None) -> dict:
    """Montage PNGs under ``out_dir/gallery``; returns per category shown/total/pages.
    ``frame_shape``: (height, width) of the scan's frames, so tiles past a frame's border are
    hatched there.

    ``explain(crops, class_indices) -> (N, C, S, S)`` adds a saliency row to every tile.
    Only the crops of the events shown are read from the journal, and tiles are drawn a page
    at a time, so memory does not grow with the cartridge."""
    gdir = own_folder(out_dir / GALLERY_DIR, GALLERY_HOLDS)
    event_ids = journal_event_ids(events, gallery)
    journaled = [ids[~np.isnan(ids)] for ids in event_ids.values()]
    has_crop = set(np.concatenate(journaled).astype(np.int64).tolist()) if journaled else set()
    levels = gallery_levels(out_dir, events, gallery, event_ids, panel.names)
    # What the tiles show beyond the columns predict hands the report, read once: the
    # objects' means, their boxes, and the probabilities the calls' rule read (for the class
    # likeliest before the prior, reasons.own_calls, as the review page names it).
    means = [f"mean_{c}" for c in panel.names]
    read = read_event_columns(out_dir, events, [
        *means, *BOX_COLUMNS,
        *(f"{prefix}{c}" for prefix in (BAND_PREFIX, "p_") for c in spec.class_names)])
    object_means = read[[c for c in means if c in read]]
    for_tiles = read.drop(columns=[*means, *events.columns], errors="ignore")
    info = {}
    # Pages are drawn two at a time (drawn_in_order): at the end of a cartridge's run the
    # report is all that is left to do, and one page's tiles, captions and PNG encoding keep
    # one core of two.
    for cat, chosen in gallery_categories(events, spec).items():
        with_crops = chosen[chosen["event_id"].isin(has_crop)].head(limit)
        pages = []
        if len(with_crops):
            # One category's crops at a time: a full gallery's would be ~50 MB more.
            position, stacked = gallery_lookup(events, gallery, with_crops["event_id"],
                                               event_ids)
            crops = stacked[position.loc[with_crops["event_id"]].to_numpy()]
            del stacked
            pages = _category_pages(gdir, cat, with_crops.join(for_tiles, on="event_id"),
                                    crops, panel, spec, levels, object_means, explain,
                                    frame_shape)
        info[cat] = {"total": int(len(chosen)), "shown": int(len(with_crops)), "pages": pages}
    remove_stale_pages(gdir, info)
    return info


def _category_pages(gdir: Path, cat: str, shown: pd.DataFrame, crops: np.ndarray,
                    panel: Panel, spec: ModelSpec, levels, object_means: pd.DataFrame,
                    explain=None, frame_shape=None) -> list[dict]:
    """One category's montage pages, drawn on threads (:func:`drawn_in_order`); per page, in
    order, its file and which event each tile shows, top to bottom (the review page cuts tiles
    out)."""
    classes = call_indices(shown["class"], spec)
    reported = spec.taxonomy.reported_classes()
    labels = tile_labels(shown, event_reasons(shown, reported, spec.review_threshold),
                         spec.review_threshold, spec.class_names, reported)
    header = panel.names + ["overlay"]
    outside = boxes = None
    sizes = (crops.shape[-1], spec.pixel_size_um, panel.pixel_size_um)  # as the crops were cut
    if frame_shape:
        outside = outside_frame(shown["x"], shown["y"], frame_shape, *sizes)
    if set(BOX_COLUMNS) <= set(shown) and shown[list(BOX_COLUMNS)].notna().all(axis=None):
        boxes = event_boxes(shown[list(BOX_COLUMNS)], shown["x"], shown["y"], *sizes)

    def pages():
        saliency, done = None, 0  # maps of the pages from `done` on, SALIENCY_PAGES at a time
        for page_no, start in enumerate(range(0, len(crops), TILES_PER_PAGE), start=1):
            page = slice(start, start + TILES_PER_PAGE)
            if explain is not None and (saliency is None or start >= done + len(saliency)):
                done = start
                chunk = slice(start, start + TILES_PER_PAGE * SALIENCY_PAGES)
                saliency = explained(explain, np.asarray(crops[chunk], np.float32),
                                     classes[chunk])
            rows = None if saliency is None else \
                saliency[start - done:start - done + TILES_PER_PAGE]
            ids = shown["event_id"].iloc[page]
            means = None if levels is None else object_means.reindex(ids)
            yield (gdir / f"{cat}_{page_no:03d}.png", crops[page], labels[page], header, panel,
                   levels, ids, means, spec.pixel_size_um, rows,
                   None if outside is None else outside[page],
                   None if boxes is None else boxes[page])

    return drawn_in_order(pages())


def drawn_in_order(pages) -> list[dict]:
    """:func:`draw_page` of each of ``pages`` (its arguments, in order) on ``PAGE_THREADS``
    threads, a few in flight at a time (what a page holds, saliency maps included, stays a few
    pages' worth); the pages' records in order. A page that fails raises its error here."""
    return list(ordered_map(lambda args: draw_page(*args), pages, PAGE_THREADS,
                            name="ctcnet-page"))


def draw_page(path: Path, crops: np.ndarray, labels: list[str], header: list[str],
              panel: Panel, levels, ids: pd.Series | None = None, means=None,
              pixel_size_um: float | None = None, saliency=None,
              outside: np.ndarray | None = None, boxes: np.ndarray | None = None) -> dict:
    """One montage page of ``crops`` written to ``path`` (atomically): each tile's channels
    and overlay on ``levels``' display scale, captioned ``labels``, with ``saliency`` rows and
    the measures of ``means`` (an event table's ``mean_<channel>``) where given. Its record:
    file, size and, with ``ids``, which event each tile shows, top to bottom (the review page
    cuts tiles out). Small crops are zoomed to about 96 px a tile; 80 px ones are shown 1:1.
    ``outside``, ``boxes``: the pixels past the frame's border, hatched, and the events'
    boxes, outlined (:func:`render_tiles`)."""
    size = crops.shape[-1]
    scale = max(1, int(round(TILE_PX / size)))
    tiles = render_tiles(crops, panel, scale, saliency, levels=levels, outside=outside,
                         boxes=boxes)
    measures = None if means is None else tile_measures(means, crops, levels, pixel_size_um)
    image = montage_page(tiles, labels, header, size * scale, measures)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG", compress_level=1)  # fast; pages are transient
    record = {"path": f"gallery/{path.name}", "width": image.width, "height": image.height}
    if ids is not None:
        record["event_ids"] = [int(e) for e in ids]
        # The captions drawn into the image, as text: the report says them to a screen
        # reader (and to a search) that cannot read them off the pixels.
        record["captions"] = [str(label) for label in labels]
    return record


def remove_stale_pages(gdir: Path, info: dict) -> None:
    """Remove the montage pages in ``gdir`` that no group of ``info`` (group: {"pages": [its
    records]}) lists: those of an earlier run that this one did not rewrite."""
    kept = {Path(page["path"]).name for group in info.values() for page in group["pages"]}
    for stale in gdir.glob("*.png"):
        if stale.name not in kept:
            stale.unlink()


def gallery_levels(out_dir: Path, events: pd.DataFrame, gallery: dict, event_ids: dict,
                   channels: list[str]) -> DisplayLevels | None:
    """The sample's display levels from every journaled gallery crop (a frame's crops at a
    time), kept in ``gallery/levels.json`` for the run (the review server cuts its tiles on
    the same scale); None without a crop."""
    stats = []
    for frame, frame_ids in event_ids.items():
        ok = ~np.isnan(frame_ids)
        if ok.any():
            stats.append(crop_statistics(
                np.asarray(_journal_crops(gallery[frame][1])[ok], np.float32)))
    if not stats:
        return None
    key = run_id(events) if {"event_id", "frame_id", "x", "y"} <= set(events.columns) else ""
    levels = levels_from_statistics(
        channels, *(np.concatenate(parts) for parts in zip(*stats)), run_id=key)
    write_levels(out_dir, levels)
    return levels


def read_event_columns(out_dir: Path, events: pd.DataFrame, wanted: list[str]) -> pd.DataFrame:
    """Each event's ``wanted`` columns by event id: those ``events`` has, the rest read in one
    pass from the events table predict wrote (it hands the report a few columns only); a
    column neither has is left out (the tiles then go without what it gives)."""
    table = events.set_index("event_id")[[c for c in wanted if c in events]]
    missing = [c for c in wanted if c not in events]
    if not missing:
        return table
    try:
        import pyarrow.parquet as pq  # pandas' parquet engine: the schema without the data

        names = set(pq.read_schema(out_dir / "events.parquet").names)
        missing = [c for c in missing if c in names]
        if not missing:
            return table
        read = pd.read_parquet(out_dir / "events.parquet",
                               columns=["event_id", *missing]).set_index("event_id")
    except (OSError, ValueError, ImportError) as err:
        log.info("%s: no %s for the gallery's tiles: %s", out_dir, ", ".join(missing), err)
        return table
    return table.join(read, how="outer") if len(table.columns) else read


def tile_measures(means: pd.DataFrame, crops: np.ndarray, levels: DisplayLevels,
                  pixel_size_um: float) -> list[list[str]]:
    """Per tile, per channel column: the mean over the object and the peak, in noise units."""
    mean = display.mean_snr(means, levels) if len(means.columns) else None
    return display.measure_texts(mean, display.peak_snr(crops, levels, pixel_size_um))

