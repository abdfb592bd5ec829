"""Microscopy containers read through bioio: OME-TIFF, OME-Zarr, CZI, ND2 and LIF.

One container file holds many frames: each scene (image) is a frame, and a scene larger than a
camera frame (a stitched slide scan) is cut into tiles of at most ``tile_px`` pixels a side
(``cartridge.json``'s ``tile_px``, default :data:`DEFAULT_TILE_PX`), each tile a frame. The
file's metadata name the channels and the pixel size; ``panel.json`` is read only for what the
metadata lack (names, pixel size, value ranges and normalisation, matched to the metadata's
channels by name), and a pixel size stated by both must agree
(:mod:`ctcnet.io.sources.container_metadata`).

Frames are read lazily: a frame's planes (the channels kept, one tile) are computed from the
reader's dask array, so only the chunks that hold them are read and a 10 GB OME-Zarr never sits
in memory whole. Each format needs its bioio plugin (the ``ome-tiff``, ``ome-zarr``, ``czi``,
``nd2``, ``lif`` extras, or ``bioio`` for all); without it the file is refused by name with the
install command. An OME-Zarr frame whose chunk files are not all on disk is refused, never read
with zeros in their place (:mod:`ctcnet.io.sources.zarr_store`).

Positions: a single-scene file named like a frame (``r03c12.ome.tif``, ``frame4.czi``) sits at
that position; scenes named like frames sit at theirs; tiles of a scene sit at their tile row
and column; anything else is numbered in file then scene order and placed as ``frame<k>`` is.
"""

from __future__ import annotations

import importlib
import logging
import math
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from ctcnet.core.install_hint import install_command
from ctcnet.errors import InputError, check_regular_file, is_resource_error
from ctcnet.io.images import check_pixels, remove_cellsearch_offset
from ctcnet.io.panel import Panel
from ctcnet.io.sources.base import (
    FramePart,
    FrameRef,
    FrameSource,
    frame_digest,
    register,
    same_pixel_size,
)

# The metadata mapping lives in its own module; what callers imported from here stays.
from ctcnet.io.sources.container_metadata import (  # noqa: F401
    UM_PER_UNIT,
    SceneInfo,
    dtype_range,
    in_um,
    metadata_channel_names,
    metadata_panel,
    metadata_pixel_size,
)
from ctcnet.io.sources.named import is_frame_stem, stem_position
from ctcnet.io.sources.zarr_store import axis_units, refuse_missing_chunks

log = logging.getLogger(__name__)

# A camera frame is ~1-2 k pixels a side (CellSearch 1384 x 1036); a scene larger than this is
# a stitched scan, cut into tiles of about this size so one frame's planes stay ~100 MB.
DEFAULT_TILE_PX = 2048
# Open images kept per reading thread: a cartridge's few container files, not every file a
# long-lived process (the review server) ever opened.
OPEN_PER_THREAD = 8


class BioioContainer(FrameSource):
    """A container format read through one bioio plugin."""

    container = True
    suffixes: tuple[str, ...] = ()
    plugin = ""  # the bioio plugin module, e.g. "bioio_ome_tiff"
    extra = ""  # the ctcnet extra that installs it
    is_folder = False  # OME-Zarr stores are folders
    no_image = "its metadata describe none"  # why a file holds no scene, as far as is known

    def claim(self, path: Path) -> FramePart | None:
        """A file (or, for OME-Zarr, a folder) whose name ends in one of the suffixes."""
        if not path.name.lower().endswith(self.suffixes):
            return None
        if self.is_folder != path.is_dir():
            return None
        if not self.is_folder:
            check_regular_file(path, "a frame")
        return FramePart(path, self.name)

    def open(self, path: Path):
        """A bioio image of ``path`` through this format's plugin; one per thread and file,
        kept (scene choice is state of the image, so threads never share one)."""
        cache = _OPEN.__dict__.setdefault("images", {})
        key = (self.name, str(path), _mtime(path))
        image = cache.pop(key, None)
        if image is None:
            image = self._open(path)
        cache[key] = image  # most recently used last
        while len(cache) > OPEN_PER_THREAD:
            cache.pop(next(iter(cache)))
        return image

    def _open(self, path: Path):
        try:
            # Optional heavy dependencies (bioio pulls dask, xarray, ome-types; the format's
            # reader): imported only when a container is opened, so no install needs them.
            from bioio import BioImage

            reader = importlib.import_module(self.plugin).Reader
        except ImportError as err:
            raise InputError(f"reading {self.name} files needs bioio and its plugin "
                             f"({err.name} is missing): {install_command(self.extra)}",
                             path) from None
        try:
            return BioImage(path, reader=reader)
        except Exception as err:  # readers raise many types on damaged or foreign files
            raise self._unreadable(err, path) from None

    def _unreadable(self, err: Exception, path: Path) -> InputError:
        """The refusal of a file the reader failed on, naming it; an error of the machine
        (too many open files, no memory: not the file's) is raised as it is."""
        if is_resource_error(err):
            raise err
        return InputError(f"not a readable {self.name} file: {err}", path)

    def scenes(self, path: Path) -> list[SceneInfo]:
        """The metadata of each scene of a file; metadata the reader fails on (an array's
        zarr.json cut short) refuse the file by name."""
        image = self.open(path)
        try:
            return [self._scene_info(image, index, scene, path)
                    for index, scene in enumerate(image.scenes)]
        except InputError:
            raise
        except Exception as err:  # readers raise many types on damaged metadata
            raise self._unreadable(err, path) from None

    def _scene_info(self, image, index: int, scene: str, path: Path) -> SceneInfo:
        """The metadata of one scene."""
        image.set_scene(index)
        dims = image.dims
        samples = int(getattr(dims, "S", 1) or 1)
        if samples > 1:  # (it read as a panel of one channel, the first's name)
            raise InputError(f"scene {scene} stores {samples} channels interleaved, as one "
                             "plane's samples (channels last): export one plane per "
                             "channel (OME's planar layout)", path)
        return SceneInfo(
            name=self.scene_name(image, index, scene),
            channel_names=metadata_channel_names(image.channel_names),
            pixel_size_um=metadata_pixel_size(self.pixel_sizes(image, index), path),
            shape=(int(dims.Y), int(dims.X)), num_channels=int(dims.C),
            dtype=np.dtype(image.dtype), planes=int(dims.T) * int(dims.Z),
            significant_bits=self.significant_bits(image, index))

    def scene_name(self, image, index: int, scene: str) -> str:
        """The name of a scene as the metadata give it (the reader's scene id by default)."""
        return str(scene)

    def pixel_sizes(self, image, index: int):
        """The scene's physical pixel sizes (Z, Y, X) in um, as the reader gives them."""
        return image.physical_pixel_sizes

    def significant_bits(self, image, index: int) -> int | None:
        """Bits per pixel actually used, where the format records them."""
        return None

    def panel(self, parts: list[FramePart], stated: Panel | None) -> Panel:
        """The files' panel: channel names and pixel size from the metadata, the rest (and
        what the metadata lack) from ``stated`` (panel.json); every scene must agree."""
        panels = {}
        for part in parts:
            source = _source_of(part)
            try:
                scenes = source.scenes(part.path)
            except InputError as err:
                if err.path is not None:
                    raise
                raise InputError(str(err), part.path) from None  # (a unit not read) its file
            for scene in scenes:
                where = f"{part.path.name} scene {scene.name}"
                if scene.planes != 1:
                    raise InputError(f"scene {scene.name} holds {scene.planes} planes per channel "
                                     "(time points or focal planes); a frame is one plane per "
                                     "channel: export one plane or a projection", part.path)
                try:
                    panels[where] = metadata_panel(scene, stated, where)
                except InputError as err:
                    if err.path is not None or str(err).startswith(where):
                        raise
                    # The panel's own checks (a pixel size no scan has) name no file.
                    raise InputError(f"{err} (scene {scene.name})", part.path) from None
        if not panels:  # (no scene in any file: nothing to take the panel from)
            one = len(parts) == 1
            raise InputError(f"{'holds' if one else 'the files hold'} no image "
                             f"({self.no_image}){'' if one else ': ' + _named(parts)}",
                             parts[0].path if one else parts[0].path.parent)
        first_where, first = next(iter(panels.items()))
        for where, other in panels.items():
            names, firsts = [n.upper() for n in other.names], [n.upper() for n in first.names]
            if names != firsts or \
                    not same_pixel_size(other.pixel_size_um, first.pixel_size_um):
                # The same channels in another order: a writer's, which one export settles.
                order = (": the same channels in another order; export every file in one "
                         "order" if names != firsts and sorted(names) == sorted(firsts) else "")
                raise InputError(f"{where} ({other.names}, {other.pixel_size_um:g} um) and "
                                 f"{first_where} ({first.names}, {first.pixel_size_um:g} um) "
                                 f"differ: one cartridge is one panel{order}",
                                 parts[0].path.parent)
        return first

    def frames(self, parts: list[FramePart], info: dict, panel: Panel) -> list[FrameRef]:
        """Every scene of every file (by file name, then scene), a large scene as its tiles;
        positions as the module says. A file holding no image is a frame skipped with the
        reason (:func:`_no_image_frame`)."""
        tile_px = _tile_px(info, parts[0].path.parent)
        columns = info.get("columns")
        frames: list[FrameRef] = []
        tile_row = 0  # tiled scenes stack their tile rows one after another
        for part in sorted(parts, key=lambda p: p.path.name):
            source = _source_of(part)
            scenes = source.scenes(part.path)
            base = _base_name(part.path, source.suffixes)
            digest = frame_digest((part.path,))
            if not scenes:  # (beside files that hold images, or the panel was refused)
                frames.append(_no_image_frame(part, source, base, len(frames), columns, digest))
                continue
            for k, scene in enumerate(scenes):
                tiles = tile_regions(scene.shape, tile_px)
                for (r, c), region in tiles.items():
                    if len(tiles) > 1:
                        position, index = (tile_row + r, c), -1
                        stem = f"{base}_s{k}_r{r}c{c}"
                    else:
                        stem = base if len(scenes) == 1 and is_frame_stem(base) else scene.name
                        if is_frame_stem(stem):
                            position, index = stem_position(stem, columns)
                        else:
                            index = len(frames)
                            position, _ = stem_position(f"frame{index}", columns)
                            stem = f"{base}_s{k}"
                    frames.append(FrameRef(
                        index, position[0], position[1], (part.path,), stem,
                        digest=f"{digest}:{k}:{region}", source=part.source, scene=k,
                        region=region if len(tiles) > 1 else None))
                if len(tiles) > 1:
                    tile_row += 1 + max(r for r, _ in tiles)
        _refuse_shared_positions(frames, parts[0].path.parent)
        return frames

    def read(self, frame: FrameRef, panel: Panel, keep: list[int]) -> list[np.ndarray]:
        """The kept channels of the frame's scene (and tile) through the reader's dask array:
        nothing else is decoded."""
        path = frame.files[0]
        image = self.open(path)
        try:
            image.set_scene(frame.scene)
            data = image.get_image_dask_data("CYX", T=0, Z=0, C=list(keep))
            if frame.region is not None:
                y0, x0, y1, x1 = frame.region
                data = data[:, y0:y1, x0:x1]
            # Only the chunks of the kept channels (and the tile) are read here, in this
            # thread: predict already reads frames in parallel, one frame per thread.
            arr = np.asarray(data.compute(scheduler="synchronous"))
        except InputError:
            raise
        except Exception as err:  # readers raise many types on damaged files
            if is_resource_error(err):  # too many open files, no memory: not the file's
                raise
            raise InputError(f"{frame.stem}: cannot read scene {frame.scene}: {err}",
                             path) from None
        arr = check_pixels(arr, path)
        return [remove_cellsearch_offset(plane) for plane in arr]

    def shape(self, frame: FrameRef) -> tuple[int, int] | None:
        """The tile's size, or its scene's from the metadata (read once a file, not once a
        frame: a file of a thousand scenes would be read a thousand times over)."""
        if frame.region is not None:
            y0, x0, y1, x1 = frame.region
            return y1 - y0, x1 - x0
        path = frame.files[0]
        key = (self.name, str(path), _mtime(path))
        if key not in _SCENE_SHAPES:
            _SCENE_SHAPES[key] = [scene.shape for scene in self.scenes(path)]
        return _SCENE_SHAPES[key][frame.scene]


_OPEN = threading.local()
_SCENE_SHAPES: dict[tuple[str, str, int], list[tuple[int, int]]] = {}


def _mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0


def _source_of(part: FramePart) -> BioioContainer:
    return _BY_NAME[part.source]


def _no_image_frame(part: FramePart, source: BioioContainer, base: str, index: int, columns,
                    digest: str) -> FrameRef:
    """The frame a file holding no image stands for, at its name's position (else numbered
    as ``frame<k>``), to be skipped with the reason: a store without its image metadata
    beside good ones was dropped without a word, and the sample read whole."""
    if is_frame_stem(base):
        position, index = stem_position(base, columns)
    else:
        position, _ = stem_position(f"frame{index}", columns)
    return FrameRef(index, position[0], position[1], (part.path,), base, digest=f"{digest}:-",
                    source=part.source, problem=f"{part.path.name} holds no image "
                    f"({source.no_image}): not read, its blood not counted")


def _named(parts: list[FramePart], most: int = 3) -> str:
    """The first few files' names, for a message."""
    names = [part.path.name for part in parts]
    return ", ".join(names[:most]) + (f" and {len(names) - most} more" if len(names) > most else "")


def _tile_px(info: dict, root: Path) -> int:
    """cartridge.json's ``tile_px`` (a whole number of at least 64), else the default."""
    value = info.get("tile_px", DEFAULT_TILE_PX)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not float(value).is_integer() or value < 64:
        raise InputError(f"cartridge.json: tile_px must be a whole number >= 64, got {value!r}",
                         root)
    return int(value)


def _base_name(path: Path, suffixes: tuple[str, ...]) -> str:
    name = path.name
    for suffix in sorted(suffixes, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[:-len(suffix)]
    return path.stem


def _refuse_shared_positions(frames: list[FrameRef], root: Path) -> None:
    seen: dict[str, FrameRef] = {}
    for f in frames:
        other = seen.setdefault(f.frame_id, f)
        if other is not f:
            raise InputError(f"{other.files[0].name} ({other.stem}) and {f.files[0].name} "
                             f"({f.stem}) both name frame {f.frame_id}; keep one", root)


def tile_regions(shape: tuple[int, int], tile_px: int
                 ) -> dict[tuple[int, int], tuple[int, int, int, int]]:
    """(tile row, tile column) -> (y0, x0, y1, x1) of a scene cut into equal tiles of at
    most ``tile_px`` a side (one tile when the scene fits)."""
    height, width = shape
    rows, cols = math.ceil(height / tile_px), math.ceil(width / tile_px)
    ys = np.linspace(0, height, rows + 1).round().astype(int)
    xs = np.linspace(0, width, cols + 1).round().astype(int)
    return {(r, c): (int(ys[r]), int(xs[c]), int(ys[r + 1]), int(xs[c + 1]))
            for r in range(rows) for c in range(cols)}


class OmeTiff(BioioContainer):
    """OME-TIFF: ``.ome.tif`` / ``.ome.tiff``, one OME Image per scene."""

    name = "ome-tiff"
    suffixes = (".ome.tif", ".ome.tiff")
    plugin = "bioio_ome_tiff"
    extra = "ome-tiff"

    def scene_name(self, image, index: int, scene: str) -> str:
        """The OME Image's name: bioio names OME-TIFF scenes by their id ("Image:0"), the
        name is the one a scanner or a user gave (a frame position, a region name)."""
        name = image.ome_metadata.images[index].name
        return str(name) if name else str(scene)

    def significant_bits(self, image, index: int) -> int | None:
        """OME's SignificantBits: 12-bit data in 16-bit pixels reads as 0-4095."""
        bits = image.ome_metadata.images[index].pixels.significant_bits
        return int(bits) if bits else None

    def pixel_sizes(self, image, index: int):
        """OME's PhysicalSizeX/Y in um, whatever unit the file states them in (bioio-ome-tiff
        hands the numbers on as written: 591.3 nm read as 591.3 um)."""
        pixels = image.ome_metadata.images[index].pixels
        return SimpleNamespace(X=in_um(pixels.physical_size_x, pixels.physical_size_x_unit),
                               Y=in_um(pixels.physical_size_y, pixels.physical_size_y_unit))


class OmeZarr(BioioContainer):
    """OME-Zarr (NGFF): a ``.ome.zarr`` or ``.zarr`` store folder; scenes are its images."""

    name = "ome-zarr"
    suffixes = (".ome.zarr", ".zarr")
    plugin = "bioio_ome_zarr"
    extra = "ome-zarr"
    is_folder = True
    no_image = ("no OME-Zarr image metadata, 'multiscales', in it: the pixels written without "
                "them? Convert it again")

    def pixel_sizes(self, image, index: int):
        """The scale's Y and X in um, whatever unit the image's axes state (bioio-ome-zarr
        hands the numbers on as written: 455.1 nm read as 455.1 um and refused)."""
        sizes = image.physical_pixel_sizes
        units = axis_units(getattr(image.metadata, "attributes", None) or {}, index)
        return SimpleNamespace(X=in_um(sizes.X, units.get("x")), Y=in_um(sizes.Y, units.get("y")))

    def read(self, frame: FrameRef, panel: Panel, keep: list[int]) -> list[np.ndarray]:
        """As every container's, once the chunk files the frame needs are found on disk: zarr
        reads a missing one as zeros (:mod:`ctcnet.io.sources.zarr_store`)."""
        refuse_missing_chunks(frame.files[0], frame.stem, frame.scene, keep, frame.region)
        return super().read(frame, panel, keep)


class Czi(BioioContainer):
    """Zeiss CZI; a tiled scene comes stitched from the reader and is cut into tiles here."""

    name = "czi"
    suffixes = (".czi",)
    plugin = "bioio_czi"
    extra = "czi"


class Nd2(BioioContainer):
    """Nikon ND2; each stage position is a scene."""

    name = "nd2"
    suffixes = (".nd2",)
    plugin = "bioio_nd2"
    extra = "nd2"


class Lif(BioioContainer):
    """Leica LIF; each image of the project is a scene."""

    name = "lif"
    suffixes = (".lif",)
    plugin = "bioio_lif"
    extra = "lif"


SOURCES = [register(source) for source in (OmeTiff(), OmeZarr(), Czi(), Nd2(), Lif())]
_BY_NAME = {source.name: source for source in SOURCES}
