"""A crop folder's page: ``index.html`` beside its ``predictions.csv``, every call shown with
its crop, so a person can look at what was called what (:func:`write_crop_set_page`, for
``ctcnet predict``); and for ``ctcnet evaluate`` the crops called other than their label, per
label and call, the most confident first (:func:`write_evaluation_page`).

A crop folder is cells someone chose (a lab's labelled crops, published single-cell images):
the person who runs it wants to see the calls, not only count them. The page shows, as montage
pages of tiles drawn as a cartridge's gallery draws them (each marker in grey beside the colour
overlay, :func:`ctcnet.report.gallery_pages.render_tiles`), first the crops the marker guard held
for a person (not counted), then the calls of each class, the reported classes first. Each crop is
shown on a scale of its own, one for all its channels: a folder's crops come from different
images, so no one display scale fits them all, and a marker a fifth as bright as another
looks so, as in the file (a faint copy of CK in the CD45 plane stays faint). Within a group
the least confident calls come first, the ones to look at; each tile's caption names the
file, the call (and the network's, where the markers made it), the folder's label where it
disagrees, and why the guard held it.
"""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pandas as pd

from ctcnet.detect.pixel_size import pixel_size_text
from ctcnet.inference.result_state import RESEARCH_USE
from ctcnet.inference.sample_folders import GALLERY_DIR, GALLERY_HOLDS
from ctcnet.inference.summary import CropRunSummary
from ctcnet.io.atomic import atomic_write_text, own_folder
from ctcnet.nn.spec import ModelSpec
from ctcnet.report.colours import overlay_legend
from ctcnet.report.gallery_pages import (
    TILES_PER_PAGE,
    drawn_in_order,
    remove_stale_pages,
    stretch_each_crop,
)
from ctcnet.report.page_frame import PAGE_END, page_start
from ctcnet.report.reasons import call_text, caption_line, event_reasons, review_list_text
from ctcnet.report.report_page import html_table, page_images

HELD = "held"
# Characters of a file's name a caption keeps (a tile of three markers is ~340 px wide).
NAME_CHARS = 28


class _OneScalePerCrop:
    """The tiles' display: each crop's channels on one scale (as ``render_tiles`` asks of a
    display scale: a ``stretch``)."""

    @staticmethod
    def stretch(crops: np.ndarray) -> np.ndarray:
        """Each crop's channels on its brightest channel's scale."""
        return stretch_each_crop(crops, together=True)


def crop_groups(table: pd.DataFrame, spec: ModelSpec) -> dict[str, np.ndarray]:
    """Row positions per group, least confident first: the crops the guard held for a person
    (a non-empty ``guard``), then each class's other calls, the reported classes first."""
    held = table["guard"].fillna("").astype(str).to_numpy() != "" if "guard" in table \
        else np.zeros(len(table), bool)
    calls = table["class"].astype(object).to_numpy()
    confidence = table["confidence"].to_numpy(np.float64)
    reported = spec.taxonomy.reported_classes()
    order = [*reported, *(c for c in spec.class_names if c not in reported)]
    order += sorted(set(calls) - set(order))  # a call no class has (a failed crop)
    groups = {HELD: np.flatnonzero(held)}
    for name in order:
        groups[name] = np.flatnonzero((calls == name) & ~held)
    return {name: rows[np.argsort(confidence[rows], kind="stable")]
            for name, rows in groups.items() if len(rows)}


def tile_captions(rows: pd.DataFrame, spec: ModelSpec) -> list[str]:
    """Per crop its file, its call and its label where it disagrees, and on a line of its own
    why the guard held it (on one line, a three-marker tile cut the reason off)."""
    models = rows["model_class"] if "model_class" in rows else rows["class"]
    reported = spec.taxonomy.reported_classes()
    reasons = event_reasons(rows, reported, spec.review_threshold)
    out = []
    for path, call, model, p, label, codes in zip(rows["path"], rows["class"], models,
                                                  rows["confidence"], rows["label"], reasons):
        # As the table names it, less the class folder its label says (ctc/P1/cell_0.tif and
        # ctc/P2/cell_0.tif were two tiles both captioned cell_0.tif); a folder no class's
        # name (batch1/cell_0.tif beside batch2/cell_0.tif) is kept.
        parts = Path(str(path)).parts
        name = "/".join(parts[1:] if len(parts) > 1 and parts[0] == label and
                        label in spec.class_names else parts)
        name = name if len(name) <= NAME_CHARS else "..." + name[-(NAME_CHARS - 3):]
        text = f"{name} {call_text(call, model, p, after='')}"  # (at the set's own prior)
        if label in spec.class_names and label != call:
            text += f" (label {label})"
        codes = [c for c in codes if c != "call"]
        if codes:
            text += f"\n{caption_line(codes, p, spec.review_threshold, reported)}"
        out.append(text)
    return out


def disagreement_groups(table: pd.DataFrame, spec: ModelSpec) -> dict[str, np.ndarray]:
    """Row positions of the crops called other than their label, per (label, call) pair in
    class order (``<label>_as_<call>``), the most confident call first: a confident miss is a
    wrong label or a real failure, the first to look at."""
    labels = table["label"].astype(object).to_numpy()
    calls = table["class"].astype(object).to_numpy()
    confidence = table["confidence"].to_numpy(np.float64)
    called = [*spec.class_names, *sorted(set(calls) - set(spec.class_names))]  # "failed" too
    groups = {}
    for label in spec.class_names:
        for call in called:
            rows = np.flatnonzero((labels == label) & (calls == call))
            if call != label and len(rows):
                groups[f"{label}_as_{call}"] = rows[np.argsort(-confidence[rows],
                                                               kind="stable")]
    return groups


def write_tile_pages(out_dir: Path, table: pd.DataFrame, crops: np.ndarray, spec: ModelSpec,
                     groups: dict[str, np.ndarray], limit: int) -> dict:
    """Montage PNGs under ``out_dir/gallery``, one set per group of ``table``'s rows (row
    positions, in the order shown; ``crops``: (N, C, S, S) at model scale in the model's
    channel order), at most ``limit`` crops a group; returns per group shown/total/pages and
    the ``files`` shown (``table``'s paths), in order."""
    gdir = own_folder(Path(out_dir) / GALLERY_DIR, GALLERY_HOLDS)
    panel = spec.panel
    info = {}
    # Pages are drawn on threads, a few at a time, as the cartridge report's are; a page's
    # crops are read (from the run's spilled crops) only as it is handed out.
    for group, rows in groups.items():
        shown = rows[:limit]
        captions = tile_captions(table.iloc[shown], spec)
        pages = drawn_in_order(
            (gdir / f"{group}_{page_no:03d}.png",
             np.asarray(crops[shown[start:start + TILES_PER_PAGE]], np.float32),
             captions[start:start + TILES_PER_PAGE], [*panel.names, "overlay"], panel,
             _OneScalePerCrop())
            for page_no, start in enumerate(range(0, len(shown), TILES_PER_PAGE), start=1))
        info[group] = {"total": int(len(rows)), "shown": int(len(shown)), "pages": pages,
                       "files": [str(f) for f in table["path"].iloc[shown]]}
    remove_stale_pages(gdir, info)
    return info


def write_crop_set_page(out_dir: Path, table: pd.DataFrame, crops: np.ndarray,
                        spec: ModelSpec, summary: CropRunSummary, limit: int) -> dict:
    """``ctcnet predict`` on a crop folder: the gallery of every call (:func:`crop_groups`)
    and ``out_dir/index.html`` (``table``: predictions.csv's rows); returns per group
    shown/total/pages."""
    s = summary
    info = write_tile_pages(out_dir, table, crops, spec, crop_groups(table, spec), limit)
    overview = [("crop folder", s.dataset), ("crops", s.crops),
                ("model", s.model), ("backend / device", f"{s.backend} / {s.device}"),
                ("pixel size", pixel_size_text(s.pixel_size_um, s.pixel_size_from)),
                ("prior", s.prior),
                ("sent to review", review_list_text(s.review_list, s.review,
                                                    spec.taxonomy.reported_classes()))]
    if s.accuracy is not None:
        overview.append(("agreement with the folder's labels",
                         f"{s.accuracy:.3f} of {s.accuracy_of} labelled crops"))
    check = s.leak_check or {}
    for name in check.get("beyond", []):  # past it, CTCs read as CD45-positive (spillover)
        overview.append((f"{check['source']} leaking into {name}",
                         f"{check['leaks'][name]:.0%}, past the marker guard's "
                         f"{check['allowance'][name]:.0%}: CTCs may be called another class; "
                         "label a few and fine-tune (docs/adapting.md)"))
    for line in s.warnings:  # the checks' warnings (a pixel size the nuclei belie)
        overview.append(("warning", line))
    counts = "".join(f'<tr><th scope="row">{html.escape(c)}</th><td>{s.counts.get(c, 0)}</td>'
                     f"<td>{s.held.get(c, 0)}</td></tr>" for c in spec.class_names)
    middle = ('<h2>Calls</h2><table><tr><th scope="col">class</th><th scope="col">counted</th>'
              f'<th scope="col">held by the guard</th></tr>{counts}</table>'
              "<p>Tables: <a href=\"predictions.csv\">predictions.csv</a>, "
              "<a href=\"predictions.parquet\">predictions.parquet</a>, "
              "<a href=\"summary.json\">summary.json</a></p>")
    titles = {g: ("held for a person by the marker guard (not counted)" if g == HELD
                  else f"{g} calls") for g in info}
    atomic_write_text(Path(out_dir) / "index.html",
                      _page(Path(s.dataset), Path(out_dir), overview, middle, info, titles,
                            "least confident first", spec))
    return info


def write_evaluation_page(out_dir: Path, table: pd.DataFrame, crops: np.ndarray,
                          spec: ModelSpec, report: dict, limit: int = 200,
                          figures: Sequence[str] = ()) -> dict:
    """``ctcnet evaluate``: the crops called other than their label, per (label, call) pair
    (:func:`disagreement_groups`), beside the figures of ``report`` (report.json's) and
    ``figures``, lines as the console says them (per class with intervals, the review band,
    the baselines: the page showed the macro-F1 alone), as ``out_dir/index.html``; returns
    per group shown/total/pages."""
    info = write_tile_pages(out_dir, table, crops, spec, disagreement_groups(table, spec),
                            limit)
    cnn = report.get("cnn", {})
    overview = [("crop folder", report.get("data")), ("crops", len(table)),
                ("model", report.get("model")), ("prior", report.get("prior")),
                ("pixel size", pixel_size_text(report.get("pixel_size_um"),
                                                report.get("pixel_size_from")))]
    overview += [(key.replace("_", " "), f"{cnn[key]:.4f}") for key in ("macro_f1", "accuracy")
                 if isinstance(cnn.get(key), float)]
    wrong = sum(g["total"] for g in info.values())
    said = (f'<h2>Figures</h2><pre style="white-space: pre-wrap">'
            f"{html.escape(chr(10).join(figures))}</pre>"
            if figures else "")
    middle = (f"{said}<p>{wrong} of {len(table)} crops called other than their label.</p>"
              "<p><a href=\"report.json\">report.json</a>, <a href=\"predictions.csv\">"
              "predictions.csv</a>, <a href=\"confusion.json\">confusion.json</a></p>"
              "<p><img src=\"confusion.png\" alt=\"confusion matrix\" style=\"width: "
              "min(100%, 480px)\"> <img src=\"reliability.png\" alt=\"reliability\" "
              "style=\"width: min(100%, 480px)\"></p>")
    titles = {g: "labelled {}, called {}".format(*g.split("_as_", 1)) for g in info}
    atomic_write_text(Path(out_dir) / "index.html",
                      _page(Path(str(report.get("data"))), Path(out_dir), overview, middle, info,
                            titles, "most confident first", spec, heading="evaluation"))
    return info


def file_link(path: Path, page_dir: Path) -> str:
    """A page's link to a file: relative to the page's folder, so that it holds wherever the
    two are opened from together (a share mounted as ``\\\\server\\share`` on Windows, under
    ``/Volumes`` on a Mac); an absolute ``file:`` address only where no relative path leads
    there (another drive)."""
    try:
        relative = os.path.relpath(Path(path).absolute(), Path(page_dir).absolute())
    except ValueError:
        return Path(path).absolute().as_uri()
    return quote(Path(relative).as_posix())


def _file_list(files: list[str], root: Path, page_dir: Path) -> str:
    """The files of a group's tiles, in the order shown, each a link to the image itself."""
    items = "".join(f'<li><a href="{html.escape(file_link(root / f, page_dir))}">'
                    f"{html.escape(f)}</a></li>" for f in files)
    return f"<details><summary>the files, in the order shown</summary><ol>{items}</ol></details>"


def _page(root: Path, page_dir: Path, overview: list, middle: str, groups: dict, titles: dict,
          order: str, spec: ModelSpec, heading: str = "predictions") -> str:
    name = root.name
    sections = []
    for group, g in groups.items():
        note = f"{g['shown']} of {g['total']} shown" if g["shown"] < g["total"] else \
            f"{g['total']} crop(s)"
        sections.append(f'<section class="gallery"><h2>{html.escape(titles[group])}</h2>'
                        f"<p>{note}, {order}</p>{page_images(g['pages'], group)}"
                        f"{_file_list(g['files'], root, page_dir)}</section>")
    legend = overlay_legend(spec.panel.names, spec.panel.roles())
    return f"""{page_start(name, heading)}
<p class="ruo" id="research-use">{html.escape(RESEARCH_USE)}</p>
{html_table(overview)}
{middle}
<p>Tiles: each crop as the model reads it (brought to its scale), each marker in grey on one
scale for the crop (black its background, white its brightest marker), then the markers overlaid
in colour ({html.escape(legend)}); the ticks mark the crop's centre. Click a page to see it full
size.</p>
{''.join(sections)}
{PAGE_END}"""
