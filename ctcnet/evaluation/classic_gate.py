"""A classic CellSearch-style gate, the peer ctcnet is measured against: the pipeline a lab
writes with scipy and scikit-image, with no network.

Per frame (:func:`gate_frame`): each of DAPI, CK and CD45 smoothed (a 1 px Gaussian), its
background (median) and noise (MAD) taken, and turned into noise units; a threshold on DAPI
or CK at ``sigmas``, an opening, a watershed on the distance map seeded at its maxima (4 um
apart); each object's area, centroid and mean noise units per channel; a CTC is CK+, DAPI+
and CD45- at ``sigmas`` (the object's mean) and at least 4 um across. Nothing is tuned.

Written as efficiently as such a script honestly is: the distance map is computed per
connected object on its own box (the same values as over the whole frame, a twentieth of the
pixels), and the measurements are one ``np.bincount`` per quantity over every labelled pixel
rather than a loop over objects. Over a cartridge (:func:`gate_cartridge`) the frames are
shared between worker processes, each reading only the three channels it gates.

``scripts/cells_in_scans.py`` counts with it beside ``ctcnet predict``, and ``ctcnet
benchmark`` times it on the same cartridges (``ctcnet.benchmark.peer``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ctcnet.core.robust import MAD_TO_SIGMA
from ctcnet.errors import InputError

log = logging.getLogger(__name__)

# The markers the gate reads, by panel channel name.
MARKERS = ("DAPI", "CK", "CD45")
# Per-object columns of a gate's table (x, y in pixels; the means in noise units).
COLUMNS = ("x", "y", "area_px", "dapi_snr", "ck_snr", "cd45_snr", "ctc")


def gate_frame(frame: np.ndarray, channels: Sequence[int], pixel_um: float,
               sigmas: float = 3.0) -> pd.DataFrame:
    """Every object the gate segments in one (C, H, W) frame, one row each (:data:`COLUMNS`):
    ``channels`` are the positions of DAPI, CK and CD45 in the frame; ``ctc`` marks the
    objects that are CK+, DAPI+ and CD45- at ``sigmas`` noise units and at least 4 um
    across."""
    from scipy import ndimage
    from skimage.feature import peak_local_max
    from skimage.segmentation import watershed

    shape = frame.shape[1:]
    snr = noise_units(frame, channels)
    mask = ndimage.binary_opening((snr[0] > sigmas) | (snr[1] > sigmas), iterations=1)
    objects, _ = ndimage.label(mask)
    distance = object_distance(objects)
    seeds = peak_local_max(distance, min_distance=max(2, int(4.0 / pixel_um)), labels=objects)
    markers = np.zeros(shape, np.int32)
    markers[tuple(seeds.T)] = np.arange(1, len(seeds) + 1)
    labels = watershed(-distance, markers, mask=mask)
    table = measure_objects(labels, snr, len(seeds))
    min_area = np.pi * (2.0 / pixel_um) ** 2  # a 4 um object at least
    table["ctc"] = ((table["ck_snr"] > sigmas) & (table["dapi_snr"] > sigmas)
                    & (table["cd45_snr"] < sigmas) & (table["area_px"] >= min_area))
    return table


def noise_units(frame: np.ndarray, channels: Sequence[int]) -> np.ndarray:
    """(len(channels), H, W) float32: each of ``channels`` of a (C, H, W) frame smoothed (a 1
    px Gaussian), less its background (median), over its noise (MAD): what the gate reads."""
    from scipy import ndimage

    snr = np.empty((len(channels), *frame.shape[1:]), np.float32)
    for i, c in enumerate(channels):
        plane = ndimage.gaussian_filter(np.asarray(frame[c], dtype=np.float32), 1.0)
        background = np.median(plane)
        noise = MAD_TO_SIGMA * np.median(np.abs(plane - background)) + 1e-6
        np.subtract(plane, background, out=snr[i])
        snr[i] /= noise
    return snr


def gate_ctcs(frame: np.ndarray, channels: Sequence[int], pixel_um: float,
              sigmas: float = 3.0) -> np.ndarray:
    """The (x, y) centres of the objects :func:`gate_frame` calls CTCs, (N, 2)."""
    table = gate_frame(frame, channels, pixel_um, sigmas)
    return table.loc[table["ctc"], ["x", "y"]].to_numpy(float).reshape(-1, 2)


def object_distance(objects: np.ndarray) -> np.ndarray:
    """The Euclidean distance of each pixel of a labelled object to the nearest pixel outside
    every object, as ``distance_transform_edt`` of the whole mask gives it, computed object by
    object on its box grown by a pixel. Objects are 4-connected, so between two of them lies a
    background pixel no farther than the other object's, and the grown box's rim holds one no
    farther than any outside it: the values are the same."""
    from scipy import ndimage

    distance = np.zeros(objects.shape, np.float64)
    for index, box in enumerate(ndimage.find_objects(objects), start=1):
        if box is None:
            continue
        grown = tuple(slice(max(s.start - 1, 0), min(s.stop + 1, n))
                      for s, n in zip(box, objects.shape))
        own = objects[grown] == index
        distance[grown][own] = ndimage.distance_transform_edt(own)[own]
    return distance


def measure_objects(labels: np.ndarray, snr: np.ndarray, count: int) -> pd.DataFrame:
    """Area, centroid and the mean of each ``snr`` plane of every label 1..``count`` that has
    pixels: one weighted ``bincount`` a quantity over the labelled pixels."""
    flat = labels.ravel()
    inside = np.flatnonzero(flat)
    index = flat[inside]
    area = np.bincount(index, minlength=count + 1)
    present = np.flatnonzero(area[1:]) + 1  # label 0 is the background

    def mean(weights: np.ndarray) -> np.ndarray:
        return np.bincount(index, weights=weights, minlength=count + 1)[present] / area[present]

    rows, cols = np.divmod(inside, labels.shape[1])
    planes = snr.reshape(len(snr), -1)
    return pd.DataFrame({"x": mean(cols), "y": mean(rows), "area_px": area[present],
                         "dapi_snr": mean(planes[0][inside]), "ck_snr": mean(planes[1][inside]),
                         "cd45_snr": mean(planes[2][inside])})


def marker_channels(panel) -> list[int]:
    """The positions of DAPI, CK and CD45 in ``panel`` (a :class:`ctcnet.io.panel.Panel`)."""
    names = [n.upper() for n in panel.names]
    missing = [m for m in MARKERS if m not in names]
    if missing:
        raise InputError(f"the classic gate needs channels {list(MARKERS)}; the panel has "
                         f"{panel.names} (no {', '.join(missing)})")
    return [names.index(m) for m in MARKERS]


@dataclass
class CartridgeGate:
    """The gate's result on one cartridge."""

    frames: int             # frames gated
    objects: int            # objects segmented
    ctcs: int               # objects called CTCs
    events: pd.DataFrame    # one row an object (:data:`COLUMNS` and ``frame``)
    seconds: float          # wall time, workers' start included
    workers: int
    skipped: int = 0        # frames not read (a problem open_cartridge found)
    worker_peak_rss_mb: float | None = None  # the largest worker process's peak (VmHWM)


# A worker process's panel and gate settings, set once by _start_worker.
_WORKER: dict = {}


def import_gate_modules() -> None:
    """Import what gating a frame needs (scipy, scikit-image: about a second)."""
    from scipy import ndimage  # noqa: F401
    from skimage.feature import peak_local_max  # noqa: F401
    from skimage.segmentation import watershed  # noqa: F401

    from ctcnet.inference.resources import peak_memory_mb  # noqa: F401
    from ctcnet.io.scan import read_frame  # noqa: F401


def _start_worker(panel, sigmas: float) -> None:
    _WORKER.update(panel=panel, sigmas=sigmas, channels=marker_channels(panel))


def _gate_one(job: tuple[int, object]) -> tuple[pd.DataFrame, float]:
    """One frame, read (its three markers only) and gated in a worker; the worker's peak
    resident memory so far."""
    from ctcnet.inference.resources import peak_memory_mb
    from ctcnet.io.scan import read_frame

    index, ref = job
    panel, channels = _WORKER["panel"], _WORKER["channels"]
    pixels = read_frame(ref, panel, channels=channels)
    table = gate_frame(pixels, (0, 1, 2), float(panel.pixel_size_um), _WORKER["sigmas"])
    table.insert(0, "frame", index)
    return table, peak_memory_mb()


def gate_cartridge(cartridge: str | Path, workers: int = 1, sigmas: float = 3.0
                   ) -> CartridgeGate:
    """Gate every frame of ``cartridge`` in ``workers`` processes (1: in this process, as a
    lab's script runs); frames a cartridge index marks as unreadable are skipped."""
    from ctcnet.io.scan import open_cartridge

    # Imported before the clock starts, and so into every forked worker: predict's time is
    # taken after its own imports and model load, and the two are compared.
    import_gate_modules()
    started = time.perf_counter()
    cart = open_cartridge(cartridge)
    marker_channels(cart.panel)  # refused here, not in every worker
    jobs = [(i, ref) for i, ref in enumerate(cart.frames) if ref.problem is None]
    skipped = len(cart.frames) - len(jobs)
    if skipped:
        log.warning("classic gate: %d frames of %s skipped (unreadable)", skipped, cartridge)
    if workers <= 1:
        _start_worker(cart.panel, sigmas)
        done = [_gate_one(job) for job in jobs]
    else:
        # A few frames a task: fewer round trips, and the last tasks still even out.
        chunk = max(1, len(jobs) // (4 * workers))
        with ProcessPoolExecutor(workers, initializer=_start_worker,
                                 initargs=(cart.panel, sigmas)) as pool:
            done = list(pool.map(_gate_one, jobs, chunksize=chunk))
    tables = [table for table, _ in done]
    events = (pd.concat(tables, ignore_index=True) if tables
              else pd.DataFrame(columns=["frame", *COLUMNS]))
    seconds = time.perf_counter() - started
    ctcs = int(events["ctc"].sum()) if len(events) else 0
    log.info("classic gate: %d frames, %d objects, %d CTCs in %.1f s (%d workers)",
             len(jobs), len(events), ctcs, seconds, workers)
    return CartridgeGate(frames=len(jobs), objects=len(events), ctcs=ctcs, events=events,
                         seconds=seconds, workers=max(1, workers), skipped=skipped,
                         worker_peak_rss_mb=max((peak for _, peak in done), default=None))
