"""A whole frame brought to model scale once, for cutting crops from a scan whose pixels are
finer than the model's (:func:`ctcnet.detect.cropping.extract_crops`).

Shrinking a scan of fine pixels (0.45 um/px against the model's 0.64) per event resamples each
pixel of a crowded frame up to 2.6 times over (the events' windows overlap); resampling the
frame once (:func:`model_scale_frame`, with :func:`~ctcnet.detect.resampling.frame_weights`:
the antialiased weights :func:`~ctcnet.detect.cropping.to_model_scale` uses, at exactly the
ratio of the pixel sizes) and cutting the crops from it as from a frame at the model's own
pixel size costs about half. Only the tiles of the model-scale frame that the crops read are
computed, each pixel with the same numbers whichever events are cut, so the report cuts a few
events again exactly as predict cut them.
"""

from __future__ import annotations

import functools
import threading

import numpy as np

from ctcnet.detect.resampling import frame_weights, resampled_size, to_output_coordinates


def model_centres(x: np.ndarray, y: np.ndarray, factor: float) -> tuple[np.ndarray, np.ndarray]:
    """Event centres (x, y) in scan pixels -> the same points in pixels of the frame brought
    to model scale by ``factor`` (:func:`model_scale_frame`)."""
    return to_output_coordinates(x, factor), to_output_coordinates(y, factor)


# Model rows resampled together: the stripe's row pass result (C x 64 rows of the frame's
# width) stays in the cache for the column pass (64 about the fastest of 16 to 128 on a
# 1036 x 1384 frame at 0.45 um/px: 10-11 ms against 15 for two whole-frame passes with the
# frame transposed between them).
_STRIPE = 64
# Model columns resampled together in a stripe, and transposed back to rows together (0.55
# against 0.77 ns a pixel for a whole stripe at once); only the tiles a crop reaches are.
_TILE = 128


def model_scale_frame(frame: np.ndarray, factor: float, out: np.ndarray | None = None,
                      windows: tuple | None = None) -> np.ndarray:
    """A (C, H, W) frame shrunk by ``factor`` (model pixels per scan pixel, < 1) to
    (C, round(H * factor), round(W * factor)) float32, with :func:`frame_weights` (antialiased)
    along each axis: per output pixel
    ``rows @ frame @ cols.T``. ``out``: a float32 array of that shape to write it into.
    ``windows``: (top, left, size) of the square windows wanted, in model pixels; then only
    the tiles of ``_STRIPE`` x ``_TILE`` model pixels they reach are computed (the rest of
    ``out`` is left as it was), each pixel with the same numbers either way.

    By stripes of output rows, two sparse products each, each over the leading axis of a
    contiguous array (a weight row has two to four taps): the stripe's rows channel by
    channel, laid columns first, then the columns of all its channels at once, a tile of
    columns at a time.
    """
    c, h, w = frame.shape
    stripes, tiles = _row_stripes(h, factor), _column_tiles(w, factor)
    h_out, w_out = stripes[-1][1], tiles[-1][1]
    if out is None:
        out = np.empty((c, h_out, w_out), np.float32)
    wanted = _wanted_tiles(windows, len(stripes), len(tiles), h_out, w_out)
    space = np.empty(w * c * _STRIPE, np.float32)  # one allocation: fresh pages cost
    for (o0, o1, i0, i1, rows), wanted_here in zip(stripes, wanted):
        n = o1 - o0
        for t0, t1 in _runs(wanted_here):
            j0, k0, k1 = tiles[t0][0], tiles[t0][2], tiles[t1 - 1][3]
            laid = space[:(k1 - k0) * c * n].reshape(k1 - k0, c, n)
            for ch in range(c):
                laid[:, ch] = (rows @ frame[ch, i0:i1, k0:k1]).T
            both = (_run_weights(w, factor, t0, t1) @ laid.reshape(k1 - k0, c * n))
            both = both.reshape(-1, c, n)
            for j in range(0, len(both), _TILE):  # back to rows, a cached block at a time
                out[:, o0:o1, j0 + j:j0 + j + _TILE] = both[j:j + _TILE].transpose(1, 2, 0)
    return out


def _wanted_tiles(windows, n_stripes: int, n_tiles: int, h_out: int, w_out: int
                  ) -> np.ndarray:
    """(stripes, tiles) bool: the tiles of the model-scale frame that the ``windows`` (top,
    left, size) read; every tile without windows."""
    if windows is None:
        return np.ones((n_stripes, n_tiles), bool)
    top, left, size = windows
    # The pixels a window reads: those inside the frame, or for a window wholly outside, the
    # nearest ones (:func:`border_gather` clamps into the frame).
    r0, r1 = np.clip(top, 0, h_out - 1), np.clip(top + size - 1, 0, h_out - 1)
    c0, c1 = np.clip(left, 0, w_out - 1), np.clip(left + size - 1, 0, w_out - 1)
    r0, r1, c0, c1 = r0 // _STRIPE, r1 // _STRIPE + 1, c0 // _TILE, c1 // _TILE + 1
    # Each window's block of tiles as +1/-1 at its corners, summed up along both axes.
    corners = np.zeros((n_stripes + 1, n_tiles + 1), np.int32)
    for rows, cols, sign in ((r0, c0, 1), (r0, c1, -1), (r1, c0, -1), (r1, c1, 1)):
        np.add.at(corners, (rows, cols), sign)
    return corners.cumsum(axis=0).cumsum(axis=1)[:-1, :-1] > 0


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) of each run of True in a 1-d bool array."""
    edges = np.flatnonzero(np.diff(np.concatenate(([0], flags.astype(np.int8), [0]))))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


_per_thread = threading.local()


def frame_buffer(shape: tuple[int, ...], factor: float) -> np.ndarray:
    """This thread's float32 array for a frame of ``shape`` at model scale, kept for its next
    frame (predict's frame threads, and their arrays, end with the run): fresh memory for each
    frame (14 MB at 0.45 um/px for 5 channels of 1036 x 1384) is mapped from the system page by
    page as it is first written, which cost about 10 ms a frame for a 43 MB frame. The crops
    are copies, so the next frame may overwrite it."""
    c, h, w = shape
    size = (c, *resampled_size(h, w, factor))
    buffer = getattr(_per_thread, "frame", None)
    if buffer is None or buffer.shape != size:
        buffer = _per_thread.frame = np.empty(size, np.float32)
    return buffer


def _row_stripes(n_in: int, factor: float) -> list:
    """:func:`frame_weights` by stripes of ``_STRIPE`` output rows (:func:`_weight_blocks`)."""
    return _weight_blocks(n_in, factor, _STRIPE)


def _column_tiles(n_in: int, factor: float) -> list:
    """:func:`frame_weights` by tiles of ``_TILE`` output columns (:func:`_weight_blocks`)."""
    return _weight_blocks(n_in, factor, _TILE)


@functools.lru_cache(maxsize=256)
def _run_weights(n_in: int, factor: float, first: int, stop: int):
    """The column weights of tiles ``first`` to ``stop`` (:func:`_column_tiles`) on the input
    columns they reach, as one CSR matrix (each row's taps in the same order as in the whole
    matrix, so each pixel comes out the same)."""
    from scipy import sparse  # see _weight_blocks

    tiles = _column_tiles(n_in, factor)
    j0, j1, k0, k1 = tiles[first][0], tiles[stop - 1][1], tiles[first][2], tiles[stop - 1][3]
    return sparse.csr_matrix(frame_weights(n_in, factor)[j0:j1, k0:k1])


@functools.lru_cache(maxsize=32)
def _weight_blocks(n_in: int, factor: float, block: int) -> list:
    """:func:`frame_weights` by blocks of ``block`` output pixels: (out start, stop, in start,
    stop, the block's weights on those inputs as a float32 CSR matrix)."""
    from scipy import sparse  # detection's dependency; imported here to keep this module light

    weights = frame_weights(n_in, factor)
    blocks = []
    for o0 in range(0, len(weights), block):
        o1 = min(o0 + block, len(weights))
        used = np.flatnonzero(weights[o0:o1].any(axis=0))
        i0, i1 = int(used[0]), int(used[-1]) + 1
        blocks.append((o0, o1, i0, i1, sparse.csr_matrix(weights[o0:o1, i0:i1])))
    return blocks
