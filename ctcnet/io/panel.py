"""The panel: which fluorescence channels a scan has, in which order, and how to normalise them.

A panel is plain data (JSON or YAML), at least ``{"channels": ["DAPI", "CK", "CD45"],
"pixel_size_um": 0.64}``; in full, each channel's value range and normalisation. Names match
case-insensitively and through well-known aliases (CD41 the platelet marker like CD61, CD15
the neutrophil marker like CD66b): code that needs biology (the simulator, the gate) asks
for a role. Data reach a model by channel *name* (:meth:`Panel.channel_indices`), so another
plane order (an RGB composite: R = CK, G = CD45, B = DAPI) needs no conversion; channels the
model does not use are dropped with a note, missing ones are an error. ``"composite": "rgb"``
marks an 8-bit colour export of three named channels (inferred when such a file is read)."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ctcnet.core.log_capture import keep_unsaid
from ctcnet.core.said_once import first_time
from ctcnet.errors import InputError, PanelMismatchError
from ctcnet.io.atomic import atomic_write_text
from ctcnet.io.hand_edits import pixel_unit_hint
from ctcnet.io.marker_names import (  # noqa: F401 (the panel's vocabulary, read from here too)
    CK_NEGATIVE_CTC_ROLES,
    DYE_WORD,
    MARKER_ROLES,
    from_the_marker,
    marker_core,
    marker_key,
    marker_role,
)
from ctcnet.io.metadata_text import read_mapping

log = logging.getLogger(__name__)

MIN_CHANNELS, MAX_CHANNELS = 3, 6
# Pixel sizes seen run from ~0.02 um (a zoomed viewer export) to ~2 um (a 4x scan); the bounds
# leave a margin and still catch unit mix-ups (nm, or pixels per um, written as um per pixel).
PIXEL_SIZE_RANGE_UM = (0.01, 5.0)
COMPOSITES = ("rgb",)
RGB_PLANES = ("R", "G", "B")

# The keys of panel.json and of each channel (``bit_depth``: the camera's, for a range unsaid).
PANEL_KEYS = ("name", "pixel_size_um", "channels", "composite", "bit_depth")
CHANNEL_KEYS = ("name", "value_range", "normalisation", "leaks_in", "bit_depth")
DEFAULT_VALUE_RANGE = (0.0, 4095.0)  # a channel that states no range nor bit depth: 12 bits
MAX_COUNT = 3.4028234e38  # a value_range's top at most: float32's largest (a float scan's)
# A pixel at this share of its value_range's top or above is saturated (clipped): out of ratios.
SATURATED_AT = 0.999

# How raw counts become network input (ctcnet.nn.normalise). "snr": subtract a robust per-crop
# background and divide by the robust background noise, then compress; invariant to the camera
# gain and offset, so a 10x brighter scanner or another background looks the same to the
# network. "fixed": (x - low) / (high - low) over the channel's value range.
NORMALISATION_METHODS = ("snr", "fixed")
# The default is asinh of the signal in noise units (softness 1): linear within the noise,
# logarithmic above it, so ratios between channels survive over four decades (a CK 50x brighter
# than its 2 % leak into CD61 looks so). The earlier default, rational at softness 6, saturated
# above ~30 noise units; models trained with it keep it (their spec records the settings).
# The background is read on the crop's outer ring (10 px), which stays background when the
# object fills most of the crop (a tight single-cell export, a cluster); models made before
# read it on the whole crop and keep doing so.
DEFAULT_NORMALISATION = {"method": "snr", "softness": 1.0, "compression": "asinh",
                         "sample_step": 4, "noise_floor": 0.5, "background_from": "ring",
                         "ring_px": 10}
# A key a channel's normalisation leaves out: the first release's (specs stored before it).
LEGACY_SNR = {"softness": 3.0, "compression": "asinh", "sample_step": 2, "noise_floor": 0.5,
              "background_from": "crop", "ring_px": 10}
# What the snr channels of one panel share: the model reads them per crop, not per channel.
SHARED_SNR_KEYS = ("compression", "sample_step", "background_from", "ring_px")


@dataclass(frozen=True)
class Channel:
    """One channel of a panel.

    ``leaks_in``: the instrument's known spillover into this channel, {source channel name:
    share of the source's counts}, as measured on a lab's labelled crops (``ctcnet finetune``):
    the marker guard lets a leak that large be taken off before what is left counts as the
    channel's own marker (:meth:`ctcnet.inference.guard.GuardRules.leak_cap`). Empty: the
    spillover of the training ranges."""

    name: str
    value_range: tuple[float, float] = DEFAULT_VALUE_RANGE
    normalisation: dict = field(default_factory=lambda: dict(DEFAULT_NORMALISATION))
    leaks_in: dict = field(default_factory=dict)
    range_stated: bool = field(default=True, compare=False)  # False: panel.json's default

    @property
    def normalisation_in_full(self) -> dict:
        """The normalisation as the model reads it: each key left out, the first release's
        (``LEGACY_SNR``)."""
        return {**LEGACY_SNR, **self.normalisation}

    @property
    def role(self) -> str:
        """The channel's marker role (nucleus, epithelial, leukocyte, ...), from its name."""
        return marker_role(self.name)

    def to_dict(self) -> dict:
        """The channel as plain data."""
        out = {"name": self.name, "value_range": list(self.value_range),
               "normalisation": dict(self.normalisation)}
        if self.leaks_in:
            out["leaks_in"] = {k: float(v) for k, v in self.leaks_in.items()}
        return out


@dataclass(frozen=True)
class Panel:
    """Channels in scan order plus the pixel size, in micrometres per pixel."""

    channels: tuple[Channel, ...]
    pixel_size_um: float = 0.64
    name: str = "custom"
    composite: str | None = None  # "rgb": the channels are the R, G, B planes of colour files

    def __post_init__(self):
        if not MIN_CHANNELS <= len(self.channels) <= MAX_CHANNELS:
            raise InputError(f"a panel needs {MIN_CHANNELS} to {MAX_CHANNELS} channels, "
                             f"got {len(self.channels)}: {self.names}")
        upper = [c.name.strip().upper() for c in self.channels]
        if len(set(upper)) != len(upper) or "" in upper:  # (a blank name made a column "mean_")
            raise InputError(f"panel channel names must be unique and not blank, got {self.names}")
        lo_um, hi_um = PIXEL_SIZE_RANGE_UM
        if not lo_um <= float(self.pixel_size_um) <= hi_um:
            raise InputError(f"pixel_size_um={self.pixel_size_um} is not a plausible pixel size "
                             f"({lo_um} to {hi_um} um per pixel)"
                             f"{pixel_unit_hint(float(self.pixel_size_um))}")
        if self.composite is not None:
            if self.composite not in COMPOSITES:
                raise InputError(f"composite {self.composite!r} is not one of {COMPOSITES}")
            if len(self.channels) != len(RGB_PLANES):
                raise InputError(f"an RGB composite names one channel per colour plane (R, G, B),"
                                 f" got {len(self.channels)}: {self.names}")
        for c in self.channels:
            method = c.normalisation.get("method")
            if method not in NORMALISATION_METHODS:
                raise InputError(f"channel {c.name}: normalisation method {method!r} is not one "
                                 f"of {NORMALISATION_METHODS}")
            if c.normalisation.get("compression", "asinh") not in ("rational", "asinh"):
                raise InputError(f"channel {c.name}: compression "
                                 f"{c.normalisation['compression']!r} is not rational or asinh")
            if not 1 <= int(c.normalisation.get("sample_step", 2)) <= 8:
                raise InputError(f"channel {c.name}: sample_step must be 1 to 8")
            if c.normalisation.get("background_from", "crop") not in ("crop", "ring"):
                raise InputError(f"channel {c.name}: background_from "
                                 f"{c.normalisation['background_from']!r} is not crop or ring")
            if not 1 <= int(c.normalisation.get("ring_px", 10)) <= 64:
                raise InputError(f"channel {c.name}: ring_px must be 1 to 64")
            lo, hi = c.value_range
            if not hi > lo or lo < 0 or hi > MAX_COUNT:  # counts: 0 up, float32 at most
                raise InputError(f"channel {c.name}: value_range {list(c.value_range)} is " + (
                    "empty" if not hi > lo else "no camera's: counts run from 0 up (a 12-bit "
                    "scan [0, 4095], a 16-bit one [0, 65535]), float32's largest at most"))
            _check_leaks(c, self.names)

    def check_normalisation(self) -> None:
        """Refuse, by channel, a normalisation no model can read (asked where a model is made:
        a data folder's panel.json is read for its channels alone): softness and noise floor
        over 0 (0 made every input NaN; a negative softness turned a marker's sign), and one
        setting of ``SHARED_SNR_KEYS`` for every snr channel, as each reads in full."""
        read = {}
        for c in (c for c in self.channels if c.normalisation.get("method") == "snr"):
            full = c.normalisation_in_full
            if not (float(full["softness"]) > 0 and float(full["noise_floor"]) > 0):
                raise InputError(f"channel {c.name}: normalisation softness and noise_floor "
                                 f"must be over 0 (got {full['softness']} and "
                                 f"{full['noise_floor']})")
            read[c.name] = tuple(int(float(full[k])) if k in ("sample_step", "ring_px")
                                 else str(full[k]) for k in SHARED_SNR_KEYS)
        if len(set(read.values())) > 1:
            said = "; ".join(f"{name} " + ", ".join(f"{k} {v}" for k, v in
                                                    zip(SHARED_SNR_KEYS, values))
                             for name, values in read.items())
            raise InputError(f"the snr channels must share {', '.join(SHARED_SNR_KEYS)} (a "
                             f"model reads them per crop); read here: {said}. A key a channel's "
                             "normalisation leaves out is the first release's ("
                             + ", ".join(f"{k} {LEGACY_SNR[k]}" for k in SHARED_SNR_KEYS)
                             + "), not today's default: state each, or give no normalisation")

    @property
    def names(self) -> list[str]:
        """The channel names, in the order the model reads them."""
        return [c.name for c in self.channels]

    @property
    def value_tops(self) -> list[float]:
        """Each channel's value_range top (its saturation), in the same order."""
        return [float(c.value_range[1]) for c in self.channels]

    @property
    def num_channels(self) -> int:
        """How many channels the panel has."""
        return len(self.channels)

    def roles(self) -> list[str]:
        """The marker role of each channel, in channel order."""
        return [c.role for c in self.channels]

    def index_of(self, name: str, role: str | None = None) -> int | None:
        """Position of the channel carrying marker ``name``: by name (case-insensitive), else
        the one channel of the same role (a well-known alias: CD41 for CD61; ``role``: the
        role to read ``name`` as, where not :func:`marker_role`'s); None if none."""
        names = [n.upper() for n in self.names]
        if name.upper() in names:
            return names.index(name.upper())
        # Its marker with a dye or "anti" round it (HER2-FITC for HER2): a marker no alias
        # names has no role to be found by.
        core = [i for i, n in enumerate(self.names) if marker_core(n) == marker_core(name)]
        if len(core) == 1:
            return core[0]
        role = marker_role(name) if role is None else role
        same_role = [i for i, c in enumerate(self.channels)
                     if role != "unknown" and c.role == role]
        return same_role[0] if len(same_role) == 1 else None

    @property
    def saturation_levels(self) -> np.ndarray:
        """(C,) float32: per channel, the count from which a pixel reads as saturated
        (``SATURATED_AT`` of the top of its value_range)."""
        return SATURATED_AT * np.array([high for _, high in
                                         (c.value_range for c in self.channels)], np.float32)

    def indices_of_roles(self, roles) -> list[int]:
        """Positions of the channels whose role is one of ``roles`` (the exclusion markers',
        a CTC's dyes'), in channel order."""
        return [i for i, c in enumerate(self.channels) if c.role in roles]

    def index_of_role(self, role: str) -> int | None:
        """Position of the first channel with this role, or None if the panel lacks it."""
        for i, c in enumerate(self.channels):
            if c.role == role:
                return i
        return None

    def to_dict(self) -> dict:
        """The panel as plain data (``composite`` only when set)."""
        out = {"name": self.name, "pixel_size_um": float(self.pixel_size_um),
               "channels": [c.to_dict() for c in self.channels]}
        if self.composite:
            out["composite"] = self.composite
        return out

    @classmethod
    def from_dict(cls, data: Any, source: str | Path | None = None,
                  require_pixel_size: bool = False) -> Panel:
        """Build a panel from plain data; every value is checked, so a bad file is refused
        by name (``require_pixel_size``: a panel file must state its pixel size, never get
        CellSearch's 0.64 um by default)."""
        if isinstance(data, (list, tuple)):
            if require_pixel_size:  # channels alone (or a panel in a list) state no size
                raise InputError('a panel file is a JSON object ({"pixel_size_um": ..., '
                                 '"channels": [...]}), not a list', source)
            data = {"channels": list(data)}
        if isinstance(data, dict):
            refuse_misspelt_keys(data, PANEL_KEYS, "key ", source)
        if not isinstance(data, dict) or not isinstance(data.get("channels"), (list, tuple)):
            raise InputError("a panel is a mapping with a 'channels' list", source)
        if require_pixel_size and "pixel_size_um" not in data:
            raise InputError("panel has no pixel_size_um (micrometres per scan pixel, e.g. "
                             "0.64 for CellSearch): it is required, never guessed", source)
        bits = _bit_depth(data, "panel.json", source)
        channels = [_channel_from(entry, source, bits) for entry in data["channels"]]
        composite = data.get("composite")
        pixel_size_um = _number(data.get("pixel_size_um", 0.64), "pixel_size_um", source)
        try:
            return cls(channels=tuple(channels), pixel_size_um=pixel_size_um,
                       name=str(data.get("name", "custom")),
                       composite=str(composite).lower() if composite else None)
        except InputError as err:
            raise InputError(str(err), source) from None

    def check_matches(self, other: Panel, what: str = "data") -> None:
        """Refuse data whose channels differ from this (the model's) panel, by name and order."""
        check_channel_order(self.names, other.names, what)

    def match_channels(self, data: Panel) -> tuple[list[int | None], list[str]]:
        """For each of this (the model's) channels, the index of the data channel that carries
        it, matched by name (case-insensitive), else by a well-known alias (CD41 for CD61), or
        None; and the names of the data channels left over."""
        indices = [data.index_of(channel.name) for channel in self.channels]
        extra = [n for i, n in enumerate(data.names) if i not in indices]
        return indices, extra

    def channel_indices(self, data: Panel, what: str = "data", dropped_as: str = "") -> list[int]:
        """Indices of the data channels that carry this (the model's) channels, in its order.
        Data channels the model does not use are dropped with a logged note (``dropped_as``:
        what becomes of them, said after it); a channel the model needs and the data lacks is
        a :class:`PanelMismatchError` naming it."""
        indices, extra = self.match_channels(data)
        missing = [c.name for c, i in zip(self.channels, indices) if i is None]
        twins = [n for n in extra if marker_role(n) in set(self.roles()) - {"unknown"}]
        if missing or twins:
            from ctcnet.io.panel_mismatch import mismatch_text

            raise PanelMismatchError(mismatch_text(self, data, what, missing, twins))
        said = (what, tuple(extra), tuple(self.names))
        aliased = [f"{data.names[i]} as {c.name}" for c, i in zip(self.channels, indices)
                   if data.names[i].upper() != c.name.upper()]
        if aliased and first_time(__name__, "aliases", *said):
            log.info("%s: reading %s (by the marker's well-known name)", what,
                     ", ".join(aliased))
        if extra:
            # A marker that finds CK-negative CTCs (vimentin, EpCAM) the model cannot read:
            # those CTCs are not counted, which a count read beside the scanner's should say.
            vouching = [name for name in extra if marker_role(name) in CK_NEGATIVE_CTC_ROLES]
            # A plane of no marker the calls know (a therapy marker, a free plane), measured
            # beside them, is the panel as designed: said in the log, not warned of nightly.
            level = logging.INFO if dropped_as and all(
                marker_role(name) == "unknown" for name in extra) else logging.WARNING
            text = (f"{what}: dropping channel(s) {extra}, which the model "
                    f"({', '.join(self.names)}) does not use{dropped_as}" +
                    (f"; CTCs that only {', '.join(vouching)} shows (CK-negative: EMT) are "
                     "not counted by this model (a model trained with the channel reads "
                     "them)" if vouching else ""))
            # once per data and model: a run checks its inputs, then opens each again
            if first_time(__name__, "drops", *said):
                log.log(level, "%s", text)
            elif level == logging.WARNING:  # (in the record of the work it is said for)
                keep_unsaid(text)
        return [int(i) for i in indices]

    def subset(self, indices: list[int]) -> Panel:
        """The panel of the channels at ``indices`` (in that order), same pixel size."""
        composite = self.composite if list(indices) == list(range(len(self.channels))) else None
        return replace(self, channels=tuple(self.channels[i] for i in indices),
                       composite=composite)

    def with_value_ranges_of(self, data: Panel, wider_only: bool = False) -> Panel:
        """A copy whose channels take the value ranges ``data``'s channels carrying them
        state (as :meth:`match_channels` reads them: Hoechst as DAPI too; the others keep
        theirs; with ``wider_only``, theirs where it reaches as high): where pixels count as
        saturated in the data read, not in the data a model was trained on (a 16-bit scan's
        0-65535, not 0-4095; by name alone, counts x16 under a dye's name read saturated)."""
        indices, _ = self.match_channels(data)

        def taken(channel: Channel, index: int | None) -> tuple[float, float]:
            theirs = channel.value_range if index is None else data.channels[index].value_range
            return channel.value_range if wider_only and \
                theirs[1] <= channel.value_range[1] else theirs

        return replace(self, channels=tuple(replace(c, value_range=taken(c, i))
                                            for c, i in zip(self.channels, indices)))

    def with_pixel_size(self, pixel_size_um: float) -> Panel:
        """A copy of the panel with another pixel size."""
        return replace(self, pixel_size_um=float(pixel_size_um))

    def with_leaks(self, source: str, leaks: dict[str, float]) -> Panel:
        """A copy with the known leaks of channel ``source`` into others ({target: share}) in
        their ``leaks_in``; the leaks of other sources are kept."""
        return replace(self, channels=tuple(
            replace(c, leaks_in={**c.leaks_in, source: float(leaks[c.name])})
            if c.name in leaks else c for c in self.channels))


def check_channel_order(expected: Sequence[str], found: Sequence[str], what: str = "data",
                        source=None, expected_by: str = "the model") -> None:
    """The one channel check: ``found`` (a list, not one text) must name ``expected``'s
    channels in order, else :class:`PanelMismatchError` says which differ. A name matches its
    own (case aside) or another name of its well-known marker (:func:`marker_role`: CD45-APC
    for CD45, Hoechst for DAPI), as predict matches a scan's channels to a model: data
    against a model (torch and ONNX alike), a file's stored channel names against its panel."""
    if isinstance(found, str):  # (read a character a channel: ['D', 'A', 'P', 'I', ...])
        raise InputError(f"the {what}'s channels as one text {found!r}: give a list", source)
    mine = [marker_key(n) for n in expected]
    theirs = [marker_key(n) for n in found]
    if mine != theirs:
        hint = ""
        if sorted(mine) == sorted(theirs):  # the side to correct: the data, or the panel
            hint = (" (same channels in another order: reorder the data, never the model)"
                    if expected_by == "the model" else
                    " (same channels in another order: the file stores its own channels' "
                    "names, as the scanner wrote them; put panel.json's channels in the "
                    "file's order)")
        raise PanelMismatchError(f"channel mismatch: {expected_by} expects {list(expected)} but "
                                 f"the {what} has {list(found)}{hint}", source)


def _check_leaks(channel: Channel, names: list[str]) -> None:
    """A channel's known leaks come from other channels of its panel, each a share."""
    for source_name, share in channel.leaks_in.items():
        if source_name.upper() not in [n.upper() for n in names] or \
                source_name.upper() == channel.name.upper():
            raise InputError(f"channel {channel.name}: leaks_in names {source_name!r}, not "
                             f"another channel of {names}")
        if not 0.0 <= float(share) <= 1.0:
            raise InputError(f"channel {channel.name}: the leak of {source_name} into it is "
                             f"{share}, not a share from 0 to 1")


def _number(value: Any, what: str, source) -> float:
    """A finite number from panel data; text such as "0.64 um" or null is refused by name."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not math.isfinite(value):
        raise InputError(f"{what} must be a number, got {value!r}", source)
    return float(value)


def refuse_misspelt_keys(data: dict, known: tuple[str, ...], what: str, source) -> None:
    """A key that is not read but looks like one that is (``pixel_size`` for ``pixel_size_um``,
    ``value-range``) is refused by name: passed over, its default would
    take its place (CellSearch's 0.64 um, a 12-bit range) without a word. Keys like none of
    them (a lab's own ``scanner`` or ``notes``) are its own record, left alone. ``what``: how
    the message names the key's place (``"key "``, ``"channel CK: key "``)."""
    import difflib

    for key in data:
        if key in known:
            continue
        close = difflib.get_close_matches(str(key).lower().replace("-", "_").replace(" ", "_"),
                                          known, n=1, cutoff=0.75)
        if close and close[0] not in data:
            raise InputError(f"{what}{key!r} is not read (did you mean {close[0]!r}?): "
                             "correct the key", source)


def _bit_depth(data: dict, what: str, source) -> int | None:
    """A stated ``bit_depth`` (the camera's: 8 to 16), or None."""
    if "bit_depth" not in data:
        return None
    bits = data["bit_depth"]
    if isinstance(bits, bool) or not isinstance(bits, int) or not 8 <= bits <= 16:
        raise InputError(f"{what}: bit_depth must be a camera's whole number of bits, 8 to 16 "
                         f"(12 for [0, 4095], 14 for [0, 16383]), got {bits!r}", source)
    return bits


def _channel_from(entry: Any, source, bits: int | None = None) -> Channel:
    """A channel from its entry: a name, or a mapping; ``bits``: the panel's ``bit_depth``,
    the value range of a channel that states neither its own nor its bit depth."""
    default_range = (0, 2 ** bits - 1) if bits else DEFAULT_VALUE_RANGE
    if isinstance(entry, str):
        return Channel(entry, tuple(float(v) for v in default_range), range_stated=bool(bits))
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        raise InputError(f"panel channel entry {entry!r} is neither a name nor a mapping with "
                         "a 'name'", source)
    name = entry["name"]
    refuse_misspelt_keys(entry, CHANNEL_KEYS, f"channel {name}: key ", source)
    own_bits = _bit_depth(entry, f"channel {name}", source)
    default_range = (0, 2 ** own_bits - 1) if own_bits else default_range
    value_range = entry.get("value_range", default_range)
    if not isinstance(value_range, (list, tuple)) or len(value_range) != 2:
        raise InputError(f"channel {name}: value_range must be [low, high], got "
                         f"{value_range!r}", source)
    if own_bits and list(value_range) != list(default_range):
        raise InputError(f"channel {name}: value_range {list(value_range)} is not bit_depth "
                         f"{own_bits}'s {list(default_range)}: state one of them", source)
    normalisation = entry.get("normalisation", DEFAULT_NORMALISATION)
    if not isinstance(normalisation, dict):
        raise InputError(f"channel {name}: normalisation must be a mapping such as "
                         f'{{"method": "snr"}}, got {normalisation!r}', source)
    for key in ("softness", "noise_floor", "sample_step", "ring_px"):
        if key in normalisation:
            _number(normalisation[key], f"channel {name}: normalisation {key}", source)
    leaks_in = entry.get("leaks_in", {})
    if not isinstance(leaks_in, dict):
        raise InputError(f"channel {name}: leaks_in must be a mapping such as "
                         f'{{"CK": 0.3}}, got {leaks_in!r}', source)
    return Channel(name=name,
                   value_range=tuple(_number(v, f"channel {name}: value_range", source)
                                     for v in value_range),
                   normalisation=dict(normalisation),
                   leaks_in={str(k): _number(v, f"channel {name}: leaks_in {k}", source)
                             for k, v in leaks_in.items()},
                   range_stated=bool("value_range" in entry or own_bits or bits))


def load_panel(source: str | Path | dict | list | Panel | None = None) -> Panel:
    """Load a panel from a file, a mapping, a list of names, or the default when None."""
    if isinstance(source, Panel):
        return source
    if source is None:
        return default_panel()
    if isinstance(source, (dict, list, tuple)):
        return Panel.from_dict(source)
    path = Path(source) / "panel.json" if Path(source).is_dir() else Path(source)
    if not path.exists():
        raise InputError("panel file not found", path)
    return Panel.from_dict(read_mapping(path), path, require_pixel_size=True)


def save_panel(panel: Panel, path: str | Path) -> None:
    """Write ``panel`` to ``path`` as JSON, atomically."""
    atomic_write_text(path, json.dumps(panel.to_dict(), indent=2) + "\n")


def default_panel() -> Panel:
    """The panel shipped with ctcnet (``ctcnet/data/default_panel.json``)."""
    text = resources.files("ctcnet.data").joinpath("default_panel.json").read_text(encoding="utf-8")
    return Panel.from_dict(json.loads(text))
