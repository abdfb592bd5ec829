"""Crop datasets: labelled (C, H, W) cell images on disk, and loading them into arrays.

Two layouts are read (and written):

* class folders: ``ROOT/<class>/<file>.tif``; the sample id is the file-name part before
  ``__`` (``P017__0042.tif`` belongs to sample ``P017``), else the file's own stem; or
  ``ROOT/<class>/<sample>/<file>.tif`` (any depth below), the sample id that subfolder's name;
* ``ROOT/manifest.csv`` with columns ``path,label[,sample_id][,split][,patient_id]`` (paths
  relative to ROOT; ``patient_id`` groups a patient's samples, serial draws, for a split).

``ROOT/panel.json`` gives the channel order. Crops are TIFF (one plane per channel, or an OME
stack) or colour composites (RGB/RGBA PNG, JPEG or TIFF: ``panel.json`` names the R, G, B planes,
and ``"composite": "rgb"`` is inferred from an 8-bit three-plane file). :meth:`CropIndex.conform`
maps the crops' channels to a model's by name. A dataset may hold a subset of the taxonomy's
classes; a class it names that the taxonomy lacks is an error.

Crops are loaded at model scale through the one function every crop takes
(:func:`ctcnet.detect.cropping.to_model_scale`), and a pixel size the files do not state is
measured from their nuclei (:mod:`ctcnet.detect.pixel_size`): so crop folders join the pipeline
here, in detect, where frames become crops, on top of io's file formats (images, panel). What
the read notices in the pixels (blank crops, refused; copies, rescaled values, composite planes
likely in another order, warned of) is :mod:`ctcnet.detect.crop_checks`."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ctcnet.core.paths import shown_in
from ctcnet.core.said_once import first_time
from ctcnet.detect.crop_checks import CropNotes, refuse_planes_unlike_panel
from ctcnet.detect.crop_files import crop_files, refuse_links_out, say_not_read, say_unlisted
from ctcnet.detect.crop_labels import as_class_names, unknown_labels_error
from ctcnet.detect.crop_writing import (  # noqa: F401 (the layout's writers, read from here too)
    MANIFEST_COLUMNS,
    SAMPLE_SEPARATOR,
    finish_crop_dataset,
    write_crop_dataset,
    write_crop_files,
    write_manifest,
)
from ctcnet.detect.cropping import report_fit, to_model_scale
from ctcnet.detect.folder_kinds import is_predict_output, nested_scan, not_a_crop_folder
from ctcnet.detect.manifest_file import read_manifest, refuse_files_not_there, sample_id_from_name
from ctcnet.detect.pixel_size import (
    PIXEL_SIZE_AUTO,
    PIXEL_SIZE_FIT,
    PIXEL_SIZE_OPTION,
    estimate_pixel_size,
    fitted_pixel_sizes,
    pixel_size_option,
)
from ctcnet.errors import InputError, folder_not_found
from ctcnet.io.annotations import without_marks
from ctcnet.io.images import (
    is_rgb_composite,
    ome_pixel_size,
    read_image,
    remove_cellsearch_offset,
)
from ctcnet.io.metadata_text import read_mapping
from ctcnet.io.panel import PANEL_KEYS, Panel, load_panel, refuse_misspelt_keys
from ctcnet.io.sources.base import (
    refuse_another_crops_pixel_size,
    refuse_other_ome_pixel_size,
    same_pixel_size,
)
from ctcnet.io.stored_names import in_panel_order, stored_order
from ctcnet.io.taxonomy import Taxonomy, default_taxonomy

log = logging.getLogger(__name__)


@dataclass
class CropIndex:
    """What a crop dataset holds, without its pixels."""

    root: Path
    panel: Panel
    paths: list[Path]
    labels: list[str]
    sample_ids: list[str]
    splits: list[str]
    # Set by conform(): the files' own panel and which of their channels to keep, in order.
    file_panel: Panel | None = None
    channels: tuple[int, ...] | None = None
    # ``--pixel-size fit``: each crop's own pixel size (um/px), overriding the panel's.
    crop_pixel_um: tuple[float, ...] | None = None
    patient_ids: list[str] | None = None  # a manifest's patient_id column (None: none)
    stated_crop_um: float | None = None  # the crops' stated size, held to (read_crop_index)

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def split_groups(self) -> list[str]:
        """What a split keeps on one side: each crop's patient where named, else its sample."""
        return self.patient_ids or self.sample_ids

    def pixel_um(self, i: int) -> float:
        """Crop ``i``'s pixel size (um/px): its own where each crop has one, else the set's."""
        return self.panel.pixel_size_um if self.crop_pixel_um is None else self.crop_pixel_um[i]

    @property
    def exported(self) -> bool:
        """Whether the crops are display exports (8-bit RGB composites: each plane stretched
        by a viewer on its own), as the files' panel says."""
        return bool((self.file_panel or self.panel).composite)

    def conform(self, model_panel: Panel | Sequence[str], what: str | None = None) -> CropIndex:
        """This dataset seen through a model's channels (by name; its panel, or the names in
        order): ``panel`` becomes the model's channel order (at the data's pixel size) and
        loading returns those channels only."""
        if not isinstance(model_panel, Panel):
            model_panel = load_panel(model_panel)  # (its names and order are what is read)
        source = self.file_panel or self.panel
        indices = model_panel.channel_indices(source, what=what or f"crop dataset {self.root}")
        return replace(self, panel=source.subset(indices), file_panel=source,
                       channels=tuple(indices))

    def read(self, i: int, min_size: int = 0, marks: list[str] | None = None) -> np.ndarray:
        """Crop ``i`` as (C, H, W) in ``self.panel``'s channel order, its stored dtype
        (``marks``: see :func:`read_crop`)."""
        arr = read_crop(self.paths[i], self.file_panel or self.panel, min_size, marks,
                        self.stated_crop_um)
        return arr if self.channels is None else arr[list(self.channels)]

    def table(self):
        """Each crop's ``path`` (relative to the dataset's root where it lies under it),
        ``label`` and ``sample_id``: the first columns of predict's and evaluate's
        predictions."""
        import pandas as pd  # a table only where one is written

        return pd.DataFrame({"path": [shown_in(p, self.root) for p in self.paths],
                             "label": self.labels, "sample_id": self.sample_ids})

    def class_counts(self) -> dict[str, int]:
        """Crops per label, labels in name order."""
        counts: dict[str, int] = {}
        for label in self.labels:
            counts[label] = counts.get(label, 0) + 1
        return dict(sorted(counts.items()))

    def label_indices(self, taxonomy: Taxonomy) -> np.ndarray:
        """Each crop's label as its output index in ``taxonomy``."""
        return np.array([taxonomy.index(label) for label in self.labels], dtype=np.int64)

    def subset(self, mask: Sequence[bool] | np.ndarray) -> CropIndex:
        """The crops where ``mask`` (one boolean a crop) is true, every per-crop list cut
        alike; crop numbers, or a mask of another length, are refused (numbers read as a
        mask picked other crops without a word)."""
        mask = np.asarray(mask)
        if mask.shape != (len(self.paths),) or (mask.dtype != bool and mask.size):
            raise InputError(f"subset takes a mask of one boolean per crop ({len(self.paths)}),"
                             f" not {mask.dtype} of shape {mask.shape}: for crop numbers "
                             "give np.isin(np.arange(len(index)), numbers)", self.root)
        keep = np.flatnonzero(mask)
        return replace(self, paths=[self.paths[i] for i in keep],
                       labels=[self.labels[i] for i in keep],
                       sample_ids=[self.sample_ids[i] for i in keep],
                       splits=[self.splits[i] for i in keep],
                       crop_pixel_um=None if self.crop_pixel_um is None else
                       tuple(self.crop_pixel_um[i] for i in keep),
                       patient_ids=self.patient_ids and [self.patient_ids[i] for i in keep])


# (PIXEL_SIZE_AUTO, PIXEL_SIZE_FIT: the option's words, from detect.pixel_size.)
PLACEHOLDER_PIXEL_UM = 0.64  # replaced by the given or estimated pixel size, never used
# The label of crops that lie in the dataset folder itself, not in a class folder.
UNLABELLED = "unlabelled"


def pixel_size_source(pixel_size: float | str | None) -> str:
    """Where a crop set's pixel size came from, for its summary or report: the ``pixel_size``
    option :func:`read_crop_index` was given (None: ``panel.json``)."""
    if pixel_size is None:
        return "panel.json"
    return {"auto": "estimated from the nuclei", "fit": "each crop fitted to its cell"}.get(
        pixel_size, "given") if isinstance(pixel_size, str) else "given"


def _crop_folder_panel(root: Path, panel: Panel | str | Path | None,
                       pixel_size: float | str | None, option: str) -> Panel:
    """The panel a crop folder is read with (``panel``, else its panel.json with
    ``pixel_size`` applied); a folder that is none, or one of ctcnet's other folders, refused
    saying what it is."""
    if not root.is_dir():
        raise folder_not_found(root)
    if (root / "cartridge.json").exists() or is_predict_output(root):
        raise not_a_crop_folder(root)  # a scan or a predict output, panel.json or not
    if panel is not None:
        return load_panel(panel)
    if not (root / "panel.json").exists():
        raise not_a_crop_folder(root)
    return dataset_panel(root / "panel.json", pixel_size, option)


def read_crop_index(root: str | Path, panel: Panel | str | Path | None = None,
                    taxonomy: Taxonomy | None = None,
                    pixel_size: float | str | None = None,
                    progress: Callable[[str, int, int], None] | None = None,
                    option: str = PIXEL_SIZE_OPTION, look_ahead: bool = False) -> CropIndex:
    """Index a crop dataset folder (manifest.csv if present, else class folders).

    ``pixel_size``: the crops' um per pixel when panel.json does not state it (published crops
    rarely do) or states it wrongly: a number, ``"auto"`` to estimate it from the crops'
    nuclei, or ``"fit"`` for a scale per crop (:mod:`ctcnet.detect.pixel_size`); None:
    panel.json's, which must then state it. ``option``: the caller's option that gives
    ``pixel_size`` (``--pixel-size``; ``ctcnet train``'s ``--data.pixel_size``), named where a
    message asks for it. ``progress``: with ``"fit"``, told ``("fitted", 1, crops)`` after
    each crop is fitted (a progress bar's step, :class:`ctcnet.inference.progress.StepBars`).
    ``look_ahead``: the folder's channels alone are read (a placeholder ``pixel_size``), so a
    stated size set aside is said by the read that uses it.
    """
    root = Path(root)
    if pixel_size is not None:  # (the library's caller: the command line checked its own)
        try:
            pixel_size = pixel_size_option(pixel_size)
        except ValueError as err:
            raise InputError(f"{option}: {err}", root) from None
    given, panel = panel, _crop_folder_panel(root, panel, pixel_size, option)
    manifest = root / "manifest.csv"
    if manifest.exists():
        paths, labels, samples, splits, patients = read_manifest(manifest)
        say_unlisted(root, paths)  # (which refuses a file name not in UTF-8 first)
        say_not_read(root, False)  # (a .bmp there is no crop the manifest can list)
        refuse_files_not_there(paths, manifest)
    else:
        paths, labels, samples, splits, patients = [], [], [], [], None
        # Crops in class folders are labelled by them; crops in the folder itself are not.
        folders = [(root, UNLABELLED)] + [(p, p.name) for p in sorted(root.iterdir())
                                           if p.is_dir() and not p.name.startswith(".")]
        for folder, label in folders:
            # A class folder's subfolders hold its crops too, each subfolder one sample
            # (``ctc/P017/cell_12.tif``: a patient's crops); the dataset folder's own
            # subfolders are the class folders.
            files = crop_files(folder, recursive=label != UNLABELLED, refuse_links=True)
            refuse_links_out(root, files)
            paths += files
            labels += [label] * len(files)
            samples += [sample_id_from_name(f) if f.parent == folder else
                        f.relative_to(folder).parts[0] for f in files]
            splits += [""] * len(files)
        nested = nested_scan(root, paths, labels, (taxonomy or default_taxonomy()).names)
        if nested is not None:
            raise nested
        say_not_read(root, taxonomy is None and UNLABELLED in labels)
    _some_crops(root, paths, panel.pixel_size_um if given is None and pixel_size is None
                else None)
    if panel.composite is None and panel.num_channels == 3:
        # An 8-bit three-plane file is an RGB composite export: say so in what we record.
        first, _ = read_image(paths[0], MAX_CROP_PLANE_PIXELS)
        if is_rgb_composite(first):
            log.debug("%s: 8-bit colour crops, read as an RGB composite %s", root, panel.names)
            panel = replace(panel, composite="rgb")
    if taxonomy is not None:
        labels = as_class_names(labels, taxonomy.names, root)
        unknown = sorted(set(labels) - set(taxonomy.names))
        if UNLABELLED in unknown and UNLABELLED not in taxonomy.names:
            loose = [p.name for p, label in zip(paths, labels) if label == UNLABELLED]
            where = (f"are labelled {UNLABELLED!r} in manifest.csv" if manifest.exists() else
                     "lie in the folder itself, in no class folder, so they have no label")
            raise InputError(f"{len(loose)} crop(s) {where} (e.g. {loose[0]}): give each the "
                             "label of its class (its class folder, or manifest.csv), or "
                             "leave them out of the set this command scores", root)
        if unknown:
            raise unknown_labels_error(unknown, taxonomy.names, root)
    # The size the crops state (the first's OME metadata, else panel.json's), each crop's own
    # held to it; not where each is read at its own scale (fit)
    stated = None if pixel_size == PIXEL_SIZE_FIT else ome_pixel_size(paths[0]) or (
        panel.pixel_size_um if pixel_size is None and given is None else None)
    index = CropIndex(root, panel, paths, labels, samples, splits, patient_ids=patients,
                      stated_crop_um=stated)
    if pixel_size is not None and given is None and not look_ahead and \
            first_time("crop-size-set-aside", root.resolve(), option, str(pixel_size)):
        _say_a_stated_size_set_aside(index, pixel_size, option)
    if pixel_size == PIXEL_SIZE_AUTO:
        index = replace(index, panel=panel.with_pixel_size(estimated_pixel_size(index,
                                                                                option=option)))
    elif pixel_size == PIXEL_SIZE_FIT:
        scales = fitted_pixel_sizes(readable_crops(index, range(len(index))),
                                    what=f"crop dataset {root}", option=option,
                                    done=None if progress is None else
                                    lambda: progress("fitted", 1, len(index.paths)))
        index = replace(index, panel=panel.with_pixel_size(float(np.median(scales))),
                        crop_pixel_um=tuple(float(v) for v in scales))
    elif pixel_size is not None:
        index = replace(index, panel=panel.with_pixel_size(float(pixel_size)))
    return index


def _say_a_stated_size_set_aside(index: CropIndex, pixel_size: float | str, option: str
                                 ) -> None:
    """Warn where ``option`` (a number, ``auto`` or ``fit``) reads the crops at another pixel
    size than the folder states (its panel.json, its first crop's OME metadata): one of the
    two is wrong, and a fine-tune at the wrong one bakes it into a model (0.32 given for crops
    of 0.64 read held-out macro-F1 0.35, unsaid). And ``fit`` on crops labelled ``cluster``:
    it brings an object of several cells to one cell's size."""
    stated = {}
    with contextlib.suppress(InputError, OSError, ValueError):
        if "pixel_size_um" in (read_mapping(index.root / "panel.json") or {}):
            stated["panel.json"] = index.panel.pixel_size_um
    ome = ome_pixel_size(index.paths[0]) if index.paths else None
    if ome is not None:
        stated["the crops' OME metadata"] = ome
    other = {k: v for k, v in stated.items() if isinstance(pixel_size, str)
             or not same_pixel_size(float(pixel_size), float(v))}
    if other:
        said = (f"{' and '.join(other)} state{'' if len(other) > 1 else 's'} "
                f"({', '.join(f'{v:g}' for v in other.values())} um)")
        how = (f"reads the crops at another pixel size than {said}: one of the two is wrong, "
               "and a wrong pixel size costs CTC calls" if not isinstance(pixel_size, str) else
               f"sets aside the pixel size {said} for "
               + ("its estimate" if pixel_size == PIXEL_SIZE_AUTO else "a scale per crop"))
        log.warning("%s: %s %s %s; leave %s out to read them as stated", index.root, option,
                    pixel_size, how, option)
    clusters = sum(label == "cluster" for label in index.labels)
    if pixel_size == PIXEL_SIZE_FIT and clusters:
        log.warning("%s: %s fit brings every crop's object to one cell's size, but %d crop(s) "
                    "are labelled cluster (several cells): read at a size of the folder "
                    "(%s auto, or a number) instead", index.root, option, clusters, option)


def _some_crops(root: Path, paths: list[Path], stated_um: float | None) -> None:
    """Refuse a folder without crops, or whose crops' own OME metadata state another pixel
    size than panel.json's (``stated_um``; None: given otherwise), as a frame's are: one of
    the two is wrong, and the crops were read at panel.json's without a word."""
    if not paths:
        raise InputError("no crops found (expected .tif, .png or .jpg crops, in class folders "
                         "where they are labelled, or a manifest.csv)", root)
    if stated_um is not None:
        refuse_other_ome_pixel_size(paths[0], stated_um, "crops'")


def dataset_panel(path: Path, pixel_size: float | str | None, option: str) -> Panel:
    """A crop dataset's panel.json; with ``pixel_size`` given, its own may be missing (a
    placeholder stands until :func:`read_crop_index` sets it). ``option``: as its."""
    data = read_mapping(path)
    if isinstance(data, dict):  # a "pixel_size" is its slip, not a size left unstated
        refuse_misspelt_keys(data, PANEL_KEYS, "key ", path)
    if isinstance(data, dict) and "pixel_size_um" not in data:
        if pixel_size is None:
            raise InputError(f"panel.json does not state pixel_size_um; for crops whose pixel "
                             f"size is not known, pass {option} fit (crops each scaled to "
                             f"fit their cell, as published single-cell images are), "
                             f"{option} auto (one scale for the folder, estimated from the "
                             f"nuclei) or {option} UM (or add pixel_size_um to panel.json)",
                             path)
        data = {**data, "pixel_size_um": PLACEHOLDER_PIXEL_UM}
    return Panel.from_dict(data, path, require_pixel_size=True)


def estimated_pixel_size(index: CropIndex, sample: int = 400,
                         option: str = PIXEL_SIZE_OPTION) -> float:
    """The pixel size of a crop set from its nuclei (up to ``sample`` crops spread over it;
    ``option``: as for :func:`read_crop_index`)."""
    dna = index.panel.index_of_role("nucleus")
    if dna is None:
        raise InputError(f"{option} auto reads nuclei, but the panel {index.panel.names} "
                         "has no DNA channel; give the pixel size", index.root)
    picks = np.unique(np.linspace(0, len(index) - 1, min(sample, len(index))).astype(int))
    return estimate_pixel_size(readable_crops(index, picks), dna,
                               what=f"crop dataset {index.root}", option=option)


def readable_crops(index: CropIndex, rows) -> Iterator[np.ndarray]:
    """The crops of ``rows`` at the index's panel; then those that cannot be read refused
    together, every crop of the index read for them (each named at once, not one a run)."""
    errors, rows = [], list(rows)
    for i in rows:
        try:
            yield read_crop(index.paths[i], index.panel)
        except InputError as err:
            errors.append(err)
    if errors:
        for i in sorted(set(range(len(index))) - set(rows)):
            try:
                read_crop(index.paths[i], index.panel)
            except InputError as err:
                errors.append(err)
        raise CropNotes(index).refusal(errors)


# A cell's crop is refused, before it is decoded, past this many pixels a plane: 4096 x 4096
# (a 30 um cell at 0.01 um/px); a 650 kB file of 5 x 8000 x 8000 compressed pixels took 4.6 GB
# and more than five minutes before it was read as one crop.
MAX_CROP_PLANE_PIXELS = 4096 * 4096


def read_crop(path: str | Path, panel: Panel, min_size: int = 0,
              marks: list[str] | None = None, stated_um: float | None = None,
              orders: dict | None = None) -> np.ndarray:
    """Read one crop, checked against the panel; returns (C, H, W) in its stored dtype.

    A colour composite's white or grey frame at its edges (a panel's border) and its burnt-in
    scale bar and label are filled from the pixels round them
    (:func:`ctcnet.io.annotations.without_marks`); ``marks``, when given, gets the name of each
    kind of mark a crop had (``"frame"``, ``"scale bar"``); ``stated_um``: the size the folder's
    crops state (``CropIndex.stated_crop_um``), which a crop's own may not contradict;
    ``orders``, when given, gets the path's :func:`~ctcnet.io.stored_names.stored_order`."""
    arr, names = read_image(path, MAX_CROP_PLANE_PIXELS)
    refuse_another_crops_pixel_size(names, stated_um, path)
    refuse_planes_unlike_panel(arr, panel, path)
    arr = in_panel_order(arr, names, panel.names, path)
    if orders is not None:
        orders[Path(path)] = stored_order(names, panel.names)
    if min(arr.shape[1:]) < min_size:
        raise InputError(f"crop is {arr.shape[1]}x{arr.shape[2]} px, smaller than the model "
                         f"input {min_size}x{min_size}", path)
    if panel.composite == "rgb":
        arr, found = without_marks(arr)
        if marks is not None:
            marks += found
    # CellSearch's export offset (2^15 added to some values of each channel), as a
    # cartridge's frames have it removed: a crop cut from such an export carries it too.
    return np.stack([remove_cellsearch_offset(plane) for plane in arr]) \
        if arr.dtype == np.uint16 else arr


def load_crops(index: CropIndex, size: int | None = None, model_pixel_um: float | None = None,
               min_size: int = 0, fitting: bool = False) -> np.ndarray:
    """Load every crop of an index into one float32 (N, C, size, size) array at model scale
    (:func:`crop_chunks`, whose checks and warnings it makes). ``fitting``: the crops are to
    fit a model (train, finetune, a recalibration), and crops past their stated range are
    refused, not only said."""
    if not len(index):  # (no crop: none to check, an empty batch as a model takes it)
        return np.zeros((0, index.panel.num_channels, size or 0, size or 0), np.float32)
    # One chunk, the whole index (read to the end: the checks come after the last chunk).
    chunks = list(crop_chunks(index, size, model_pixel_um, min_size, max(len(index), 1),
                              fitting=fitting))
    return chunks[0][1] if chunks else None


# Crops brought to model scale at a time by a chunked read: 128 MB of five-channel 80 px
# crops, a few times the model's batch, so a chunk's copies (the network's view, the guard's
# arrays) stay well under a gigabyte.
CHUNK_CROPS = 1024


def crop_chunks(index: CropIndex, size: int | None = None,
                model_pixel_um: float | None = None, min_size: int = 0,
                chunk: int = CHUNK_CROPS, fitting: bool = False
                ) -> Iterator[tuple[int, np.ndarray]]:
    """Read the crops of an index ``chunk`` at a time: yields (first row, float32
    (n, C, size, size) crops at model scale).

    Each crop is resampled from the dataset's pixel size to ``model_pixel_um`` (when given)
    and centre-cut or padded to ``size`` by :func:`ctcnet.detect.cropping.to_model_scale`;
    ``size=None``: the first crop's size. Every crop is read before this returns: after the
    last chunk, crops that cannot be read or are blank (every channel 0) are named in one
    :class:`InputError` (once one is found no more chunks are yielded, and the rest are read
    only to be named), and crops that had to be padded or cut, and what
    :class:`~ctcnet.detect.crop_checks.CropNotes` notices (copies, scale bars, values past
    their range, composite planes likely in another order) are logged, each once for the
    whole index. ``fitting``: values past the channels' stated range, and crops rescaled to
    fractions of it, are refused with the rest (:meth:`~ctcnet.detect.crop_checks.CropNotes.
    fitting_refusal`), as a model fitted from the crops would carry them.
    """
    if size is not None and int(size) < 1:  # (0 read as "the first crop's")
        raise InputError(f"the crop size must be a whole number of pixels, got {size!r}")
    errors, notes = [], CropNotes(index, fitting)
    cut = padded = 0
    for start in range(0, len(index), chunk):
        out = None
        for i in range(start, min(start + chunk, len(index))):
            try:
                planes = read_crop(index.paths[i], notes.panel, min_size, notes.marks,
                                   index.stated_crop_um, notes.orders)
            except InputError as err:  # read on: every bad crop is named at once, not one a run
                errors.append(err)
                continue
            if not notes.read(i, planes) or errors or notes.unusable:
                continue  # blank, or a bad crop before it: nothing more is made of it
            planes = notes.restored(i, planes)
            arr = planes if index.channels is None else planes[list(index.channels)]
            size = size or arr.shape[1]
            if out is None:
                rows = min(chunk, len(index) - start)
                out = np.empty((rows, index.panel.num_channels, size, size), np.float32)
            crop, cut_px, pad_px = to_model_scale(arr[None], index.pixel_um(i), model_pixel_um,
                                                  size)
            out[i - start] = crop[0]
            # A cut of a pixel or two per axis is resampling rounding, not a larger crop.
            cut += cut_px > 2
            padded += pad_px > 0
        if not errors and not notes.unusable:
            notes.scaled(out, start)
            yield start, out
    refusal = notes.refusal(errors) or notes.order_refusal() or notes.fitting_refusal()
    if refusal is not None:
        raise refusal
    report_fit(f"crop dataset {index.root}", len(index), cut, padded,
               padding_expected=index.crop_pixel_um is not None)
    notes.say()
