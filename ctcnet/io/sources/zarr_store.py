"""The chunk files an OME-Zarr frame is read from, checked to be there before it is read.

Zarr reads a chunk whose file is missing as its fill value (zeros): a store copied short (a sync
cut off, one file lost) reads without an error, its frame part black, and the events there are
not found: 205 events where there were 207, and a count that looks whole. A frame whose chunks
are not all on disk is therefore refused by name (the run skips it with the reason). Zarr also
leaves out chunks that hold only the fill value when they are written; a scanner's frame never
does (the camera's offset and noise), so a missing chunk is a lost one.
"""

from __future__ import annotations

import itertools
from pathlib import Path

from ctcnet.errors import InputError

# Chunk files named in a refusal.
NAMED = 3


def multiscales(attrs: dict) -> list:
    """A store's NGFF image records (``multiscales``: under ``ome`` from OME-Zarr 0.5, at the
    top of the group's attributes before)."""
    return attrs.get("ome", {}).get("multiscales") or attrs.get("multiscales") or []


def axis_units(attrs: dict, scene: int) -> dict[str, str]:
    """The unit each named axis of image ``scene`` states (``{"y": "nanometer", ...}``: NGFF's
    names); axes that state none are left out."""
    records = multiscales(attrs)
    axes = records[scene].get("axes", []) if scene < len(records) else []
    return {str(a.get("name", "")).lower(): str(a["unit"]) for a in axes
            if isinstance(a, dict) and a.get("unit")}


def _axes(multiscale: dict, ndim: int) -> list[str]:
    """The array's axis names (t, c, z, y, x), lower case; OME-Zarr 0.4+ states them, older
    stores are TCZYX (the last ``ndim`` of them)."""
    axes = [str(a.get("name", "") if isinstance(a, dict) else a).lower()
            for a in multiscale.get("axes", [])]
    return axes if len(axes) == ndim else list("tczyx"[-ndim:])


def _wanted(axis: str, size: int, keep: list[int], region) -> list[int]:
    """The indices along ``axis`` a frame's read touches: its kept channels, its tile's rows and
    columns, the first time point and focal plane."""
    if axis == "c":
        return list(keep)
    if axis in ("y", "x") and region is not None:
        y0, x0, y1, x1 = region
        lo, hi = (y0, y1) if axis == "y" else (x0, x1)
        return list(range(lo, hi))
    if axis in ("y", "x"):
        return list(range(size))
    return [0]


def missing_chunks(store: Path, scene: int, keep: list[int],
                   region: tuple[int, int, int, int] | None) -> list[str]:
    """The chunk files (relative to ``store``) that reading the channels ``keep`` of scene
    ``scene`` (its full-resolution array; the tile ``region`` of it) needs and that are not
    on disk."""
    import zarr  # with the ome-zarr extra, as bioio-ome-zarr reads through it

    group = zarr.open_group(str(store), mode="r")
    multiscale = multiscales(group.attrs.asdict())[scene]
    path = multiscale["datasets"][0]["path"]
    array = group[path]
    grid = array.shards or array.chunks  # a sharded array's files are its shards
    ranges = []
    for axis, size, step in zip(_axes(multiscale, array.ndim), array.shape, grid):
        ranges.append(sorted({i // step for i in _wanted(axis, size, keep, region)}))
    missing = []
    for coords in itertools.product(*ranges):
        key = f"{path}/{array.metadata.encode_chunk_key(coords)}"
        if not (store / key).is_file():
            missing.append(key)
    return missing


def refuse_missing_chunks(store: Path, stem: str, scene: int, keep: list[int],
                          region: tuple[int, int, int, int] | None) -> None:
    """Refuse a frame whose chunk files are not all in the store, naming the first few."""
    try:
        missing = missing_chunks(store, scene, keep, region)
    except (KeyError, IndexError, TypeError, ValueError) as err:  # metadata bioio read otherwise
        raise InputError(f"{stem}: cannot list the chunks of scene {scene}: {err}",
                         store) from None
    if missing:
        named = ", ".join(missing[:NAMED]) + (", ..." if len(missing) > NAMED else "")
        raise InputError(f"{stem}: {len(missing)} chunk file(s) missing from the store "
                         f"({named}): zarr would read them as zeros, hiding the cells there "
                         "(a copy cut short?); not read, its blood not counted", store)
