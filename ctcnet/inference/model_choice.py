"""Which shipped model runs a batch: the one that fits every input's panel
(:func:`ctcnet.nn.registry.choose_model`), said where inputs alone would get another; crop
folders of a scanner's gallery thumbnails go to the scan model. A cartridge whose panel.json
names another number of channels than its frames hold plays no part in the choice.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from ctcnet.detect.crop_dataset import MAX_CROP_PLANE_PIXELS, read_crop_index
from ctcnet.errors import InputError
from ctcnet.inference.inputs import stated_pixel_size
from ctcnet.io.images import is_rgb_composite, read_image
from ctcnet.io.layout_checks import CHANNELS_PAST_PANEL
from ctcnet.io.panel import Panel
from ctcnet.io.scan import Cartridge, frame_planes, open_cartridge

log = logging.getLogger(__name__)


# RGB composite crops at a scanner's own pixel size (scanners: 0.3-0.7 um) and field of view (a
# gallery's thumbnail of a scan's event: 80 px at 0.64 um/px, 51 um across) are read as scans'
# crops. Exports cut tight round a cell (21-23 um across as a folder's median, 30 for clusters
# alone, at 0.3-0.8 um/px) stay with the export model, which reads them better (0.980 / 0.924 /
# 0.967 against core3's 0.957 / 0.906 / 0.943 at 0.3 / 0.4 / 0.5 um/px, docs/core3-rgb.md);
# the scan model reads thumbnails better (scripts/scan_thumbnails.py: 0.917-0.934 against
# 0.891-0.914 per sample's range, 0.896-0.939 against 0.872-0.926 per image's).
SCAN_PIXEL_UM = 0.3
SCAN_FIELD_UM = 40.0
# Crops whose size is read for a folder's field of view, spread over it.
FIELD_SAMPLE = 9


def choose_for_inputs(cartridges: list[Path], datasets: list[Path],
                      pixel_size: float | str | None, what: str):
    """The shipped model for the inputs (:func:`ctcnet.nn.registry.choose_model` of their
    panels); crop folders only, each an RGB composite whose pixel size is stated (its
    panel.json's, or a number in ``pixel_size``) at :data:`SCAN_PIXEL_UM` or more and whose
    crops are :data:`SCAN_FIELD_UM` or more across (a median of a few), are read as scans'
    thumbnails."""
    from ctcnet.nn.registry import choose_model

    indices = _crop_indices(datasets, pixel_size)
    named = _named_panels(cartridges, indices)
    panels = [panel for _, panel in named]
    kinds = _input_kinds(named, indices, pixel_size)
    scan_scale = bool(indices) and not cartridges and all(thumb for _, thumb in kinds)
    chosen = choose_model(panels, what, cartridges=bool(cartridges), scan_scale=scan_scale)
    _say_a_mixed_batch(named, chosen, kinds)
    if pixel_size == "auto" and indices and chosen.reads_exports and \
            all(p.composite for p in panels):  # the choice turned on how the size was given
        log.warning("RGB composite crops with --pixel-size auto are read as high-magnification "
                    "single-cell exports (%s); a scanner's gallery thumbnails (%g um/px or "
                    "more, %g um across) are read by the scan model where their pixel size is "
                    "stated, --pixel-size UM (simulated per-sample thumbnails: macro-F1 0.94 "
                    "against 0.91)", chosen.name, SCAN_PIXEL_UM, SCAN_FIELD_UM)
    return chosen


def choose_for_most(cartridges: list[Path], datasets: list[Path],
                    pixel_size: float | str | None):
    """Where no shipped model fits every input of a batch: the one that fits the most of
    them (on a tie, the default model), said with the inputs it cannot read and the model
    that reads each, if any. One input no model reads made the whole batch fall back to the
    default model, and a three-channel cartridge ``ctcnet-core3`` reads was set aside with
    it, its counts one night's and not the next's. None where no input opens, no model fits
    any, or one fits every input (the choice failed on something else)."""
    from ctcnet.nn.registry import DEFAULT_MODEL_NAME, list_models, missing_channels

    try:
        indices = _crop_indices(datasets, pixel_size)
        named = _named_panels(cartridges, indices)
    except InputError:  # no input opens
        return None
    reads = dict(zip((name for name, _ in named),
                     _models_alone(named, _input_kinds(named, indices, pixel_size))))
    models = {m.name: m for m in list_models() if m.name in reads.values()}
    if not models:
        return None

    def fits(model, panel) -> bool:
        return not missing_channels(model.panel, panel)

    best = max(models.values(), key=lambda m: (sum(fits(m, p) for _, p in named),
                                               m.name == DEFAULT_MODEL_NAME))
    left = [f"{name} ({reads[name] + ' reads it' if reads[name] else 'no shipped model reads it'})"
            for name, panel in named if not fits(best, panel)]
    if not left:  # (the choice failed on something else than channels: not this one's to make)
        return None
    fewer = [f"{name} ({reads[name]})" for name, panel in named
             if fits(best, panel) and reads[name] not in (None, best.name)]
    log.warning("no shipped model fits every input: %s runs the %d it fits; it cannot read %s%s: "
                "run each apart with the model named (--model), or every night with one",
                best.name, len(named) - len(left), "; ".join(left),
                f"; alone, some would get another, reading more of their channels: "
                f"{'; '.join(fewer)}" if fewer else "")
    return best


def _input_kinds(named: list[tuple[str, Panel]], indices: list, pixel_size
                 ) -> list[tuple[bool, bool]]:
    """(a scan, scans' thumbnails) per input of ``named``: the cartridges (first), then the
    crop folders of ``indices``, each an RGB composite whose pixel size is stated at
    :data:`SCAN_PIXEL_UM` or more and whose crops are :data:`SCAN_FIELD_UM` or more across
    being thumbnails."""
    return [(True, False)] * (len(named) - len(indices)) + [
        (False, not isinstance(pixel_size, str) and bool(index.panel.composite) and
         index.panel.pixel_size_um >= SCAN_PIXEL_UM and field_um(index) >= SCAN_FIELD_UM)
        for index in indices]


def _say_a_mixed_batch(named: list[tuple[str, Panel]], chosen,
                       kinds: list[tuple[bool, bool]]) -> None:
    """Warn where one model for the whole batch is not the one some inputs would get alone
    (``kinds``: :func:`_input_kinds`): a batch of three- and five-channel cartridges runs on
    the three-channel model, whose calls on the five-channel ones lose their platelet and
    neutrophil markers; a folder of scans' thumbnails beside exports, or of exports beside
    cartridges, gets another look's model (counts that depend on what else was in the
    batch). Names the inputs."""
    if len({(tuple(p.names), p.composite, kind) for (_, p), kind in zip(named, kinds)}) < 2:
        return
    alone: dict[str, list[str]] = {}
    for (name, _), model in zip(named, _models_alone(named, kinds)):
        if model is not None and model != chosen.name:
            alone.setdefault(model, []).append(name)
    if alone:
        said = "; ".join(f"{model} for {', '.join(names[:5])}"
                         + (f" and {len(names) - 5} more" if len(names) > 5 else "")
                         for model, names in sorted(alone.items()))
        log.warning("the inputs differ (their channels, or scans' thumbnails beside "
                    "exports): %s, the model every input fits, runs them all; alone, some "
                    "would get another (more of their channels read, or their look): %s. Their "
                    "counts then depend on the rest of the batch: run them apart, or pass "
                    "--model every night", chosen.name, said)


def _models_alone(named: list[tuple[str, Panel]], kinds: list[tuple[bool, bool]]
                  ) -> list[str | None]:
    """The shipped model each input of ``named`` (name, panel) would get alone
    (:func:`ctcnet.nn.registry.choose_model`; ``kinds``: :func:`_input_kinds`), None where
    none fits it; one choice per kind of input (its channels, composite or not, a scan or
    crops, thumbnails or not), not per input."""
    from ctcnet.errors import PanelMismatchError
    from ctcnet.nn.registry import choose_model

    best: dict[tuple, str | None] = {}
    keys = [(tuple(panel.names), panel.composite, *kind) for (_, panel), kind in
            zip(named, kinds)]
    for (_, panel), key in zip(named, keys):
        if key not in best:
            best[key] = None
            with contextlib.suppress(PanelMismatchError, InputError):
                best[key] = choose_model([panel], cartridges=key[2], scan_scale=key[3]).name
    return [best[key] for key in keys]


def field_um(index) -> float:
    """The median size across (each crop's larger side) of up to :data:`FIELD_SAMPLE` crops of
    a crop folder's index, spread over it, in um at its panel's pixel size."""
    import numpy as np

    picks = np.unique(np.linspace(0, len(index) - 1, min(FIELD_SAMPLE, len(index)))
                      .round().astype(int)) if len(index) else []
    sides = []
    for i in picks:
        try:
            sides.append(max(read_image(index.paths[i], MAX_CROP_PLANE_PIXELS)[0].shape[-2:]))
        except (InputError, OSError):  # a bad crop is the run's to report, not the choice's
            continue
    return float(np.median(sides)) * float(index.panel.pixel_size_um) if sides else 0.0


def input_panels(cartridges: Iterable[Path], datasets: Iterable[Path],
                 pixel_size: float | str | None = None) -> list[Panel]:
    """The panel of every cartridge and crop dataset (:func:`resolve_inputs` of the inputs;
    reads no pixels but one frame per cartridge and one crop per dataset; ``pixel_size``: as
    ``PredictOptions.pixel_size``, which only the channel names are read for here). A
    cartridge that cannot be opened is left out (the run sets it aside, saying why), unless
    nothing else is left."""
    return _panels(cartridges, _crop_indices(datasets, pixel_size))


def _crop_indices(datasets: Iterable[Path], pixel_size: float | str | None) -> list:
    """Each crop dataset's index, read for its panel (a stated ``pixel_size`` applied)."""
    return [read_crop_index(d, pixel_size=stated_pixel_size(pixel_size), look_ahead=True)
            for d in datasets]


def _panels(cartridges: Iterable[Path], indices: list) -> list[Panel]:
    """:func:`input_panels` of the cartridges and of the crop datasets' ``indices``."""
    return [panel for _, panel in _named_panels(cartridges, indices)]


def _named_panels(cartridges: Iterable[Path], indices: list) -> list[tuple[str, Panel]]:
    """Each input's name and panel: the cartridges' (those that open) and the crop datasets'
    ``indices``'."""
    panels, refused = [], None
    for path in cartridges:
        try:
            panels.append((Path(path).name, _cartridge_panel(open_cartridge(path))))
        except InputError as err:
            refused = refused or err
    panels += [(Path(index.root).name, index.panel) for index in indices]
    if refused is not None and not panels:
        raise refused
    return panels


def _cartridge_panel(cartridge: Cartridge) -> Panel:
    """A cartridge's panel, marked an RGB composite exactly when its first frame is an 8-bit
    colour file (as a crop folder's is marked by its first crop): a model that reads exports
    only must not get 16-bit frames whose panel.json says "composite", and a colour export
    whose panel.json does not say so is still one. A frame that cannot be read leaves the
    panel's word; the run reports the frame itself. Refused where the first frame's file
    holds another number of planes than the panel names, or its channel files are numbered
    past the channels the panel names: not its frames' panel, it must not
    choose the model of a batch (one such made the others run on a three-channel model)."""
    named = cartridge.panel.num_channels
    # The first frames' plane counts: one odd frame (an extra plane) is that frame's to skip
    # with its reason, not the cartridge's panel refused.
    counts = [c for c in (frame_planes(frame) for frame in cartridge.frames[:3]) if c]
    planes = max(counts, key=counts.count) if counts else None  # (the commonest)
    if planes not in (None, named) and counts.count(planes) > counts.count(named):
        stack = (f"; or {planes // named} planes a channel (focal planes or time points: "
                 "export one plane or a projection)" if planes % named == 0 else "")
        raise InputError(f"its frames hold {planes} planes where panel.json names {named} "
                         f"channels: a channel missing from panel.json?{stack}", cartridge.root)
    past = [p for p in cartridge.problems if p.startswith(CHANNELS_PAST_PANEL)]
    if past:  # one file a channel, numbered past what panel.json names: as above
        raise InputError(past[0], cartridge.root)
    files = cartridge.frames[0].files
    if len(files) != 1 or cartridge.panel.num_channels != 3:
        return replace(cartridge.panel, composite=None)
    try:
        rgb = is_rgb_composite(read_image(files[0])[0])
    except InputError:
        return cartridge.panel
    return replace(cartridge.panel, composite="rgb" if rgb else None)
