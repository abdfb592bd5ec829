"""What a model takes: raw crops (N, C, S, S) of an accepted dtype in its channel order and
crop size, checked so by every backend (:func:`checked_crops`), and their values looked at for
what no error catches (:func:`crop_value_warning`); and stand-in crops of a model's shape
(:func:`synthetic_crops`). numpy alone: the torch-free ONNX runtime and the torch backend
share it."""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import Iterator, Sequence

import numpy as np

from ctcnet.core.robust import CLIPPED_SHARES
from ctcnet.errors import InputError

log = logging.getLogger(__name__)

ACCEPTED_DTYPES = (np.uint8, np.uint16, np.float32)


def _shape_hint(shape: tuple, c: int, s: int) -> str:
    """What a shape that is almost the one asked for most likely is, and how to bring it."""
    if shape == (c, s, s):
        return ": one crop without its batch axis (crops[None])"
    if shape[-3:] == (s, s, c) and len(shape) in (3, 4):
        take = "crops[None]" if len(shape) == 3 else "crops"
        return (f": channels last, as an image viewer stores them "
                f"(np.moveaxis({take}, -1, -3))")
    if len(shape) == 4 and shape[1] == c and shape[2] == shape[3] and shape[2] != s:
        return (f": crops of {shape[2]} px, the model reads {s} px cut at its pixel size "
                "(ctcnet.load_crops brings a crop folder to its scale, "
                "ctcnet.detect.cropping.to_model_scale an array of crops)")
    return ""


def checked_crops(raw, channels: Sequence[str], crop_size: int) -> np.ndarray:
    """``raw`` as a model of ``channels`` and ``crop_size`` classifies it: (N, C, S, S) raw
    counts of an accepted dtype (another byte order brought to this machine's), else refused
    by name. Every backend checks its crops so: a network with global pooling takes crops of
    any size and runs, and 100 px crops read at 0.87 accuracy against 0.997."""
    c, s = len(channels), int(crop_size)
    if raw is None or not hasattr(raw, "__len__") and not hasattr(raw, "__array__"):
        # (a generator, or None: an array of one object, "got shape ()")
        raise InputError(f"crops must be an array (N, {c}, {s}, {s}) or a list of crops, got "
                         f"{type(raw).__name__}" + (": np.stack(list(...))" if hasattr(
                             raw, "__iter__") else ""))
    try:
        raw = np.asarray(raw)
    except ValueError:  # (crops of other sizes in a list: "an array element with a sequence")
        raise InputError(f"crops of different shapes: each must be ({c}, {s}, {s}), one array "
                         "(N, C, H, W) or a list of such crops") from None
    if raw.size == 0 and raw.ndim < 4:  # no crops at all (an empty list): nothing to call
        raw = np.zeros((0, c, s, s), np.float32)
    if raw.dtype.kind in "uf" and not raw.dtype.isnative:  # another byte order, same counts
        raw = raw.astype(raw.dtype.newbyteorder("="))
    if raw.ndim != 4 or raw.shape[1:] != (c, s, s):
        raise InputError(f"crops must be (N, {c}, {s}, {s}) raw counts in the channel order "
                         f"{list(channels)}, got shape {raw.shape}{_shape_hint(raw.shape, c, s)}")
    if raw.dtype not in ACCEPTED_DTYPES:
        hint = " (crops.astype(np.float32) holds any count exactly)" \
            if raw.dtype.kind in "fiu" else ""
        raise InputError(f"crops must be uint8, uint16 or float32 raw counts, got "
                         f"{raw.dtype}{hint}")
    return raw


# Set while crops of display levels (a crop folder's composites or 8-bit exports, which its
# reading marks so) are handed over: their black is no background clipped at 0.
DISPLAY_LEVELS: contextvars.ContextVar[bool] = contextvars.ContextVar("display_levels",
                                                                     default=False)


@contextlib.contextmanager
def display_levels(these: bool = True) -> Iterator[None]:
    """Crops handed to a model within it are display levels where ``these`` (see
    :data:`DISPLAY_LEVELS`)."""
    token = DISPLAY_LEVELS.set(bool(these))
    try:
        yield
    finally:
        DISPLAY_LEVELS.reset(token)


def crop_value_warning(raw: np.ndarray, tops: Sequence[float]) -> str | None:
    """What ``raw`` crops' values say is amiss where no error stops them, or None: float crops
    scaled to 0-1 (``skimage.img_as_float``) for a model of counts (``tops``: its channels'
    value_range tops, above 1), which read as nearly empty, every call debris; for a model of
    a camera's counts (tops above 255), channels whose background was subtracted and clipped
    at 0 (a folder's reading draws it again; an array is read as given). A look at every
    8th pixel each way of at most 64 crops spread over the array: a scaling of the whole
    array shows in any of them (a look at every crop of a 1,024-crop batch took as long as a
    GPU's network on it)."""
    if not raw.size or not min(tops, default=0) > 1.0:
        return None
    sample = raw[::-(-len(raw) // 64), :, ::8, ::8]
    if raw.dtype.kind == "f":
        with np.errstate(invalid="ignore"):
            highest = float(np.nan_to_num(sample, nan=0.0, posinf=0.0).max())
        if 0 < highest <= 1.0:
            return ("the crops' values lie within 0-1: the model reads raw scanner counts "
                    "(normalised inside it), and crops scaled to 0-1 read as nearly empty; "
                    "give the counts as read from the image files")
    if min(tops) <= 255:  # (a composite's black background is its own: display levels)
        return None
    if DISPLAY_LEVELS.get():
        # A folder of composites or 8-bit exports handed to a model of counts (ctcnet-core3
        # reading composites): display levels, whose black is a display's black point.
        return None
    # A background subtracted and clipped at 0 (an export so made, or a notebook's own
    # step): a crop folder's is drawn again as it is read, an array here is read as given,
    # and its calls moved by up to 0.85 without a word.
    # Each crop's channels judged on their own, as a folder's reading judges them (a crop
    # clipped past the band is not drawn again, nor averaged with unclipped ones into it).
    # Only where 0 is the channel's lowest value, as a folder's reading judges it: float crops
    # with their median taken off (half their pixels under 0, a few at 0 exactly) are no
    # clipped background.
    seen = np.nan_to_num(sample, nan=1.0)
    zero = (seen == 0).mean(axis=(2, 3))  # (crops looked at, C)
    clipped = (zero >= CLIPPED_SHARES[0]) & (zero <= CLIPPED_SHARES[1]) & \
        (seen.min(axis=(2, 3)) == 0)
    if not clipped.any():
        return None
    return (f"{int(clipped.any(axis=1).sum())} of {len(sample)} crops looked at read as "
            f"background subtracted and clipped at 0 in {int(clipped.any(axis=0).sum())} "
            f"channel(s) ({CLIPPED_SHARES[0]:.0%}-{CLIPPED_SHARES[1]:.0%} of its pixels at 0): "
            "the model reads a camera's counts, background included; ctcnet.load_crops draws "
            "such a background again as it reads a folder (ctcnet.detect.clipped_background), "
            "crops handed over as an array are read as they are")


# What a crop with a NaN or infinite pixel is where the network's calls are asked for.
NOT_CLASSIFIED = "classified (rows NaN, call 'failed')"


def say_not_finite(bad: Sequence[int], unrun: str = NOT_CLASSIFIED) -> None:
    """Log the crops (``bad``: their indices) whose pixels are not all finite, left out of
    the graph or the network's calls and their rows NaN (``unrun``: what they were not), as
    every backend says it."""
    if len(bad):
        log.warning("%d crop(s) with NaN or infinite pixels not %s: indices %s", len(bad),
                    unrun, list(bad[:20]))


def say_crop_values(raw: np.ndarray, tops: Sequence[float], said: set[str],
                    reads_exports: bool = False) -> None:
    """Log :func:`crop_value_warning` of ``raw`` where it is not in ``said`` (the caller's:
    once a classifier or backend, not once a batch), and add it there. ``reads_exports``: the
    model reads composite exports (``spec.reads_exports``), whose crops are display levels
    whatever hands them over (its input contract: an engineer giving it composites was told
    their black read as a background clipped at 0)."""
    with display_levels(True) if reads_exports else contextlib.nullcontext():
        text = crop_value_warning(raw, tops)
    if text is not None and text not in said:
        said.add(text)
        log.warning("%s", text)


def synthetic_crops(spec, count: int, seed: int = 0) -> np.ndarray:
    """``count`` raw-count-like uint16 crops of a model's shape (``spec``: its ``in_chans`` and
    ``crop_size``) without the simulator: background, noise and one blurred blob each. For
    timing a model (its time does not depend on the content) and checking its backends agree."""
    rng = np.random.default_rng(seed)
    c, s = spec.in_chans, spec.crop_size
    yy, xx = np.mgrid[:s, :s] - (s - 1) / 2
    radius = rng.uniform(3, 10, (count, 1, 1, 1))
    blob = np.exp(-(yy ** 2 + xx ** 2) / (2 * radius ** 2))
    background = rng.uniform(50, 400, (count, c, 1, 1))
    signal = rng.uniform(0, 1500, (count, c, 1, 1)) * blob
    counts = rng.poisson(background + signal) + rng.normal(0, 5, (count, c, s, s))
    return np.clip(np.rint(counts), 0, 65535).astype(np.uint16)
