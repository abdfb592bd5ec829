"""What a predict run is given: cartridges, folders of cartridges, list files and crop
datasets sorted apart (:func:`resolve_inputs`), their panels read without reading their pixels
(:func:`input_panels`, which the command checks against the model's channels), every
cartridge's metadata and channels and every crop set's channels checked
(:func:`checked_cartridge`, :func:`checked_inputs`), and the output folder made writable
(:func:`check_writable`), all before any work starts.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from ctcnet.core.paths import HOME_NOT_EXPANDED, absolute, unexpanded_home
from ctcnet.detect.crop_dataset import read_crop_index
from ctcnet.detect.folder_kinds import is_predict_output
from ctcnet.errors import MACHINE_ERRNOS, CtcnetError, InputError
from ctcnet.inference.output_names import (
    is_batch,
    refuse_colliding_outputs,
    set_aside_colliding,
    set_aside_or_raise,
    set_aside_record,
)
from ctcnet.inference.run_index import SET_ASIDE_DIR
from ctcnet.io import mounts
from ctcnet.io.cartridge_info import key_slips, personal_keys_note, unopened_sample_id
from ctcnet.io.images import IMAGE_SUFFIXES, is_rgb_composite, read_image
from ctcnet.io.input_lists import expand_list_files
from ctcnet.io.panel import Panel
from ctcnet.io.plausibility import plausibility_problems
from ctcnet.io.scan import (
    Cartridge,
    claim,
    is_cartridge,
    open_cartridge,
)
from ctcnet.io.taxonomy import default_taxonomy

log = logging.getLogger(__name__)


_SAID: set = set()  # (cartridge folder, line) already said this run


def checked_cartridge(cartridge: Cartridge) -> Cartridge:
    """The cartridge with what its metadata claim checked (``plausibility_problems``: refused
    by InputError, or added to its problems, which make the run ``partial``); every predict
    entry point goes through here, some twice (a problem is listed once)."""
    slipped, noted = key_slips(cartridge.info)
    noted += [note for note in (personal_keys_note(cartridge.info),) if note]
    new = [p for p in [*plausibility_problems(cartridge), *slipped] if p not in cartridge.problems]
    said = [*cartridge.problems, *new, *noted]  # the listing's own too (frames missing)
    for line in said:
        if (cartridge.root, line) not in _SAID:  # once per run, however often it is checked
            _SAID.add((cartridge.root, line))
            log.warning("%s: %s", cartridge.sample_id, line)
    return replace(cartridge, problems=[*cartridge.problems, *new]) if new else cartridge


def resolve_inputs(inputs: Iterable[str | Path], say_skipped: bool = False
                   ) -> tuple[list[Path], list[Path]]:
    """Sort the given paths into (cartridge folders, crop dataset folders).

    A path may be a cartridge folder, a container file holding a whole scan (an OME-TIFF, CZI,
    ND2 or LIF), a folder whose sub-folders are cartridges, a text file listing such paths (one
    per line, ``#`` comments), or a crop dataset folder. With
    ``say_skipped`` (the run's own listing, not a look ahead), a folder of cartridges'
    subfolders that are none are named.
    """
    cartridges, datasets = [], []
    for given in expand_list_files(inputs):  # list files read, a list naming itself refused
        # Absolute: what run.json and a night's log say of a frame (skipped_because) names a
        # file whoever reads the alert can find, not one of the job's working folder.
        path = Path(absolute(given))
        if is_cartridge(path):  # a folder, or one container file holding a whole scan
            cartridges.append(path)
        elif path.is_file() and claim(path) is not None:
            raise InputError("one frame of a cartridge: pass the cartridge folder holding it",
                             path)
        elif not path.is_dir():
            raise InputError(f"input not found: {HOME_NOT_EXPANDED}" if unexpanded_home(given)
                             else "input not found (a cartridge folder, a folder of "
                             "cartridges, a list file, or a crop dataset)", path)
        elif (path / "manifest.csv").exists() or (
                (path / "panel.json").exists() and not _beside_cartridges(path, say_skipped)):
            datasets.append(path)
        else:
            subs = sorted(p for p in path.iterdir()
                          if (p.is_dir() and is_cartridge(p, unreadable=False))
                          or _out_of_reach(p))
            if not subs:
                raise _not_an_input(path)
            if say_skipped:
                _say_what_is_not_read(path, subs)
            cartridges += subs
    return _once(cartridges, say_skipped), _once(datasets, say_skipped)


def _beside_cartridges(folder: Path, say: bool) -> bool:
    """Whether a folder holding a panel.json (as a crop folder does) holds cartridges
    (:func:`_holds_a_scan`): a site's folder of scans with one panel.json for them all,
    whose frames read as crops would make nonsense of the night. Said (``say``): each
    cartridge reads the panel.json in its own folder."""
    try:
        held = [p for p in folder.iterdir() if p.is_dir() and _holds_a_scan(p)]
    except OSError:
        return False
    if held and say:
        log.warning("%s holds cartridges (%s): read as a folder of cartridges, each with the "
                    "panel.json in its own folder, not the one beside them", folder,
                    ", ".join(sorted(p.name for p in held)[:3]) + (", ..." if len(held) > 3
                                                                    else ""))
    return bool(held)


def _holds_a_scan(folder: Path) -> bool:
    """A cartridge.json; or a frame or a scan's container file (an OME-TIFF) with a
    panel.json of its own or under a name no class has: a crop folder's class folder may
    hold crops named as frames (``frame_0000.tif``, an image sequence's export) or exported
    as OME-TIFFs, never a panel.json, and is named by its class."""
    if (folder / "cartridge.json").exists():
        return True
    with contextlib.suppress(InputError):  # a FIFO or device a source refuses: no frame
        if not any(entry.is_file() and not entry.name.startswith(".")
                   and claim(entry) is not None for entry in folder.iterdir()):
            return False
        return (folder / "panel.json").exists() or \
            folder.name.casefold() not in {name.casefold() for name in default_taxonomy().names}
    return False


# Folders a file system or a share keeps beside the scans (Windows, Synology, QNAP, NetApp):
# none is a scan whose absence a run must report, readable or not. By name: a scan may be
# named "#42" or "@lab3".
SYSTEM_FOLDERS = {name.casefold() for name in (
    "lost+found", "System Volume Information", "~snapshot", "$RECYCLE.BIN", "#recycle",
    "#snapshot", "@eaDir", "@Recycle", "@Recently-Snapshot", "@tmp", "@sharebin")}
# Files a dangling link may point to that are no scan (a stale link to a log, a lock).
NOT_A_SCAN = {".log", ".txt", ".csv", ".json", ".xml", ".html", ".pdf", ".lock", ".pid"}


def _system_entry(name: str) -> bool:
    """A hidden or system entry of a folder of cartridges (``.snapshot``, ``$RECYCLE.BIN``,
    ``#recycle``, ``@eaDir``, ``lost+found``): never a scan, never named as not read."""
    return name.startswith(".") or name.casefold() in SYSTEM_FOLDERS


def _out_of_reach(sub: Path) -> bool:
    """Whether a folder of cartridges' entry may be a scan that cannot be looked into: a folder
    this user may not read (a share's access list), or a link whose target is gone (a share
    not mounted; one to a log or text file is no scan, :data:`NOT_A_SCAN`). Taken as a
    cartridge, so that opening it sets it aside with the reason and the run ends with exit 2,
    instead of a night that reads "finished" without the sample."""
    if _system_entry(sub.name):
        return False
    if sub.is_symlink() and not sub.exists():  # ("2026.03.01_P17": a dotted scan name)
        return Path(os.readlink(sub)).suffix.lower() not in NOT_A_SCAN
    if not sub.is_dir():
        return False
    try:
        next(sub.iterdir(), None)
    except PermissionError:
        return True
    return False


def _once(paths: list[Path], say: bool = False) -> list[Path]:
    """``paths`` with each folder once (one named twice, or by a list file and a folder of
    cartridges: run once, not set aside as two inputs of one sample id), said where ``say``
    (the run's own listing)."""
    seen: dict[str, Path] = {}
    for path in paths:
        key = os.path.realpath(path)
        if key in seen:
            if say:  # (a link to a folder named too is that folder)
                log.warning("%s: the folder of %s, named too; run once", path, seen[key])
        else:
            seen[key] = path
    return list(seen.values())


def _say_what_is_not_read(folder: Path, cartridges: list[Path]) -> None:
    """Name the subfolders of a folder of cartridges that are no cartridge, so that a scan
    whose copy has not arrived yet (an empty folder) or lacks its frames is not passed over
    without a word; hidden and system folders (:func:`_system_entry`) are left out."""
    others = sorted(p for p in folder.iterdir() if p.is_dir() and p not in cartridges
                    and not _system_entry(p.name))
    for sub in others:
        try:
            what = "empty" if not any(sub.iterdir()) else "no frames nor cartridge.json"
            if any(p.is_dir() and is_cartridge(p, unreadable=False) for p in sub.iterdir()):
                what = "a folder of cartridges: pass it too, as an input of its own"
        except PermissionError:
            what = "this user may not read it"
        log.warning("%s: not a cartridge (%s), not read", sub, what)


# What a share or a copy leaves in a folder that holds no scan: never a scan's file.
NOT_A_SCAN_FILES = {"thumbs.db", "desktop.ini", ".ds_store"}


def _holds_no_scan(path: Path) -> bool:
    """Whether a folder holds nothing that could be a scan or part of one: no image or
    scanner file and no metadata in it or its subfolders (empty ones a scanner made before
    copying, a share's Thumbs.db, a transfer log, a README are not scans)."""
    def scan_like(entry: Path) -> bool:
        if _system_entry(entry.name) or entry.name.casefold() in NOT_A_SCAN_FILES:
            return False
        if entry.is_dir():
            return is_cartridge(entry, unreadable=True) or \
                any(scan_like(e) for e in entry.iterdir())
        return entry.suffix.lower() in IMAGE_SUFFIXES or claim(entry) is not None or \
            entry.name in ("cartridge.json", "panel.json", "manifest.csv")

    return path.is_dir() and not is_cartridge(path) and \
        not any(scan_like(e) for e in path.iterdir())


def without_empty_folders(inputs) -> list[Path]:
    """``inputs`` but the folders that hold no scan (:func:`_holds_no_scan`): a night without
    scans, for ``--allow-empty``; each said in a note."""
    kept = []
    for path in map(Path, inputs):
        try:
            empty = _holds_no_scan(path)
        except OSError:  # not listable: its own check says why
            empty = False
        share = mounts.unmounted_above(path) if empty else None
        if share is not None:  # a missing share is no quiet night: the job must hear of it
            raise InputError(f"holds no cartridge, and {share} is a mount point in {mounts.FSTAB} "
                             "with nothing mounted there: is the share of scans mounted? "
                             "(--allow-empty takes a night without scans, not a share "
                             "missing)", path)
        if empty:
            log.info("%s: holds no cartridge (--allow-empty: nothing to do for it)", path)
        else:
            kept.append(path)
    return kept


def _not_an_input(path: Path) -> InputError:
    """The refusal of a folder that is no input, saying what it lacks where it holds images
    (a folder of crops with no panel.json is the usual case: published images come without)."""
    def images(folder: Path) -> bool:
        return any(f.suffix.lower() in IMAGE_SUFFIXES for f in folder.iterdir() if f.is_file())

    if is_predict_output(path):
        return InputError("is a ctcnet predict output, not an input: review it with `ctcnet "
                          "review`, turn its reviewed events into crops with `ctcnet crops`, "
                          "score its counts against known spike-ins with `ctcnet evaluate "
                          "--expected CSV`, or give the cartridges it was made from", path)

    subs = [p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")]
    # Sites' folders of cartridges (incoming/siteA/P01/): one level deeper than is looked.
    sites = sorted(p.name for p in subs
                   if any(q.is_dir() and is_cartridge(q, unreadable=False) for q in p.iterdir()))
    if sites:
        return InputError(f"holds folders of cartridges ({', '.join(sites[:5])}"
                          f"{', ...' if len(sites) > 5 else ''}), not cartridges: pass those "
                          "folders (e.g. " + " ".join(f"{path / s}" for s in sites[:2])
                          + "), or a list file naming them", path)
    # Crops in class folders, or in a class folder's sample folders (ctc/P017/cell.tif).
    if images(path) or any(images(p) for p in subs) or any(
            images(q) for p in subs for q in p.iterdir() if q.is_dir()):
        return InputError("holds images but no panel.json (nor cartridge.json): a crop folder "
                          "needs a panel.json naming its channels in order, e.g. for RGB "
                          'composites {"composite": "rgb", "channels": ["CK", "CD45", '
                          '"DAPI"]} (docs/data-formats.md)', path)
    why = " (no scan yet: --allow-empty makes that nothing to do)" if _holds_no_scan(path) else ""
    return InputError(f"neither a cartridge, a folder of cartridges nor a crop dataset{why}", path)


def checked_inputs(inputs: Iterable[str | Path], panel: Panel,
                   pixel_size: float | str | None = None, set_aside: dict | None = None,
                   share_of_several: bool = False) -> tuple[list[Cartridge], list[Path]]:
    """The cartridges (opened, their metadata checked, conformed to the model's ``panel``) and
    crop dataset folders of ``inputs``, all checked before any work, never after the first
    cartridges (``pixel_size``: as ``PredictOptions.pixel_size``). A refusal stops the run;
    with ``set_aside`` (a dict) and several inputs, a cartridge refused on its own (its
    metadata, its channels) is left out instead and recorded there (its name: the reason), so
    that one bad cartridge does not cost a night's batch the others (``share_of_several``:
    these inputs are one process's share of a run of several, so even one alone is set
    aside)."""
    inputs = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)  # one, alone
    cartridge_paths, datasets = resolve_inputs(inputs, say_skipped=True)
    record = set_aside_record(set_aside, len(cartridge_paths) + len(datasets), share_of_several
                              or is_batch(inputs, cartridge_paths, datasets))
    opened, unread, cartridges = [], [], []
    for path in cartridge_paths:
        try:
            opened.append(open_cartridge(path))
        except InputError as err:  # goes by its folder's name, as run.json names it
            unread.append((path, err))
    if record is not None:  # before their own checks, as output names are told (run.json)
        aside = set_aside_colliding([(c.sample_id, c.root) for c in opened]
                                    + [(unopened_sample_id(path), path) for path, _ in unread],
                                    record,
                                    {Path(d).name for d in datasets},
                                    {absolute(path): f"its metadata cannot be read: {err}"
                                     for path, err in unread})
        opened = [c for c in opened if absolute(c.root) not in aside]
        unread = [(path, err) for path, err in unread if absolute(path) not in aside]
    for path, err in unread:
        set_aside_or_raise(err, unopened_sample_id(path), record, path)
    for cartridge in opened:
        try:
            cartridges.append(checked_cartridge(cartridge).conform(panel))  # channels too
        except InputError as err:
            set_aside_or_raise(err, cartridge.sample_id, record, cartridge.root)
    refuse_colliding_outputs([(c.sample_id, str(c.root)) for c in cartridges]
                             + [(Path(d).name, str(d)) for d in datasets])
    for d in datasets:
        read_crop_index(d, pixel_size=_stated(pixel_size)).conform(panel)
    return cartridges, datasets


# RGB composite crops at a scanner's own pixel size (scanners: 0.3-0.7 um) and field of view (a
# gallery's thumbnail of a scan's event: 80 px at 0.64 um/px, 51 um across, the cell small in
# it) are read as scans' crops. Exports cut tight round a cell are 21-23 um across as a
# folder's median, 30 um for a folder of clusters alone (simulated tight exports at 0.3-0.8
# um/px), and stay with the export model, which reads them better (0.3 / 0.4 / 0.5 um/px:
# 0.980 / 0.924 / 0.967 against core3's 0.957 / 0.906 / 0.943, docs/core3-rgb.md). The scan
# model reads thumbnails better (scripts/scan_thumbnails.py, seeds 52700-52703: 0.917-0.934
# against 0.891-0.914 per sample's range, 0.896-0.939 against 0.872-0.926 per image's).
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
    scan_scale = bool(indices) and not cartridges and not isinstance(pixel_size, str) and \
        all(p.composite and p.pixel_size_um >= SCAN_PIXEL_UM for p in panels) and \
        all(field_um(index) >= SCAN_FIELD_UM for index in indices)
    chosen = choose_model(panels, what, cartridges=bool(cartridges), scan_scale=scan_scale)
    _say_a_mixed_batch(named, chosen, cartridges=bool(cartridges), scan_scale=scan_scale)
    if pixel_size == "auto" and indices and chosen.reads_exports and \
            all(p.composite for p in panels):  # the choice turned on how the size was given
        log.warning("RGB composite crops with --pixel-size auto are read as high-magnification "
                    "single-cell exports (%s); a scanner's gallery thumbnails (%g um/px or "
                    "more, %g um across) are read by the scan model where their pixel size is "
                    "stated, --pixel-size UM (simulated per-sample thumbnails: macro-F1 0.94 "
                    "against 0.91)", chosen.name, SCAN_PIXEL_UM, SCAN_FIELD_UM)
    return chosen


def _say_a_mixed_batch(named: list[tuple[str, Panel]], chosen, **choice) -> None:
    """Warn where one model for the whole batch leaves some inputs channels another model
    would read: a batch of three- and five-channel cartridges runs on the three-channel
    model, whose calls on the five-channel ones lose their platelet and neutrophil markers
    (counts that depend on what else was in the batch). Names the inputs."""
    from ctcnet.errors import PanelMismatchError
    from ctcnet.nn.registry import choose_model

    if len({tuple(p.names) for _, p in named}) < 2:
        return
    # One choice per kind of panel (its channels, composite or not), not per input.
    best: dict[tuple, str | None] = {}
    for _, panel in named:
        key = (tuple(panel.names), panel.composite)
        if key not in best:
            best[key] = None
            with contextlib.suppress(PanelMismatchError, InputError):
                best[key] = choose_model([panel], **choice).name
    alone: dict[str, list[str]] = {}
    for name, panel in named:
        model = best[(tuple(panel.names), panel.composite)]
        if model is not None and model != chosen.name:
            alone.setdefault(model, []).append(name)
    if alone:
        said = "; ".join(f"{model} for {', '.join(names[:5])}"
                         + (f" and {len(names) - 5} more" if len(names) > 5 else "")
                         for model, names in sorted(alone.items()))
        log.warning("the inputs' panels differ: %s, the model every input fits, runs them all; "
                    "alone, some would get another (more of their channels read): %s. Their "
                    "counts then depend on the rest of the batch: run them apart, or pass "
                    "--model every night", chosen.name, said)


def field_um(index) -> float:
    """The median size across (each crop's larger side) of up to :data:`FIELD_SAMPLE` crops of
    a crop folder's index, spread over it, in um at its panel's pixel size."""
    import numpy as np

    picks = np.unique(np.linspace(0, len(index) - 1, min(FIELD_SAMPLE, len(index)))
                      .round().astype(int)) if len(index) else []
    sides = []
    for i in picks:
        try:
            sides.append(max(read_image(index.paths[i])[0].shape[-2:]))
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
    return [read_crop_index(d, pixel_size=_stated(pixel_size)) for d in datasets]


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
    panel's word; the run reports the frame itself."""
    files = cartridge.frames[0].files
    if len(files) != 1 or cartridge.panel.num_channels != 3:
        return replace(cartridge.panel, composite=None)
    try:
        rgb = is_rgb_composite(read_image(files[0])[0])
    except InputError:
        return cartridge.panel
    return replace(cartridge.panel, composite="rgb" if rgb else None)


def _stated(pixel_size: float | str | None) -> float | None:
    """A placeholder pixel size where only a crop set's channels are read: an ``auto``
    estimate reads hundreds of crops, and is made once, by the run itself."""
    return None if pixel_size is None else (1.0 if isinstance(pixel_size, str) else pixel_size)


def check_writable(out: Path) -> None:
    """Create the output folder, or stop with one line saying why it cannot be written to:
    before any work, not after the first cartridge."""
    whole = Path(out).absolute()
    made = [p for p in (whole, *whole.parents) if not p.exists()]
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        if err.errno in MACHINE_ERRNOS:  # a folder it may not write, a full or read-only disk:
            # the machine's state (exit 4, docs/outputs.md), not a bad input (exit 2)
            raise type(err)(err.errno, f"cannot create output folder: {err.strerror}",
                            str(out)) from None
        raise CtcnetError(f"cannot create output folder {out}: {err.strerror or err}") from None
    kept = Path(out) / SET_ASIDE_DIR  # a file there would end the run as it writes its index
    if kept.exists() and not kept.is_dir():
        raise CtcnetError(f"{kept} is not a folder: predict keeps a run's refusals there; move "
                          "it away")
    # A share not mounted leaves its mount point an empty folder, and the folders under it
    # to be made on the local disk: said where the system's table of mounts names one (a
    # warning), noted where --out is made in an empty folder (a first night's, as often).
    above = made[-1].parent if made else None
    unmounted = mounts.unmounted_above(whole)
    if unmounted:
        log.warning("--out %s: %s is a mount point in %s but nothing is mounted there: the "
                    "outputs go to the local disk; is the share mounted?", out, unmounted,
                    mounts.FSTAB)
    elif above is not None and not any(p not in made for p in above.iterdir()):
        log.info("--out %s: made in the empty folder %s: if --out is on a share, is it "
                 "mounted?", out, above)
    if not os.access(out, os.W_OK):
        raise PermissionError(errno.EACCES, "the output folder is not writable", str(out))
