"""What a predict run is given: cartridges, folders of cartridges, list files and crop
datasets sorted apart (:func:`resolve_inputs`; their panels and the model they choose:
:mod:`ctcnet.inference.model_choice`), every
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

from ctcnet.core.file_modes import group_unshared_text, make_folder
from ctcnet.core.paths import HOME_NOT_EXPANDED, absolute, desktop_file, unexpanded_home
from ctcnet.core.said_once import first_time
from ctcnet.detect.crop_dataset import read_crop_index
from ctcnet.detect.crop_labels import names_a_class
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
from ctcnet.io.images import IMAGE_SUFFIXES
from ctcnet.io.input_lists import expand_list_files
from ctcnet.io.panel import Panel
from ctcnet.io.plausibility import plausibility_problems
from ctcnet.io.scan import (
    FRAME_POSITION,
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
    given_inputs = expand_list_files(inputs)  # list files read, a list naming itself refused
    for given in given_inputs:
        # Absolute: what run.json and a night's log say of a frame (skipped_because) names a
        # file whoever reads the alert can find, not one of the job's working folder.
        path = Path(absolute(given))
        if is_cartridge(path) and not _one_frame_of_several(path):
            if _crops_named_as_frames(path):
                datasets.append(path)
                continue
            cartridges.append(path)  # a folder, or one container file holding a whole scan
        elif path.is_file() and claim(path) is not None:
            raise InputError("one frame of a cartridge: pass the cartridge folder holding it",
                             path)
        elif not path.is_dir():
            raise InputError(f"input not found: {HOME_NOT_EXPANDED}" if unexpanded_home(given)
                             else "input not found (a cartridge folder, a folder of "
                             "cartridges, a list file, or a crop dataset)", path)
        elif len(given_inputs) > 1 and (_metadata_alone(path) or _holds_no_scan(path)):
            # One of a night's folders (incoming/*) holding nothing of a scan yet (a copy not
            # begun, or its panel.json alone): set aside with its reason in run.json as a
            # cartridge would be, and the others run (it refused the whole night).
            cartridges.append(path)
        elif (path / "manifest.csv").exists() or (
                (path / "panel.json").exists() and not _beside_cartridges(path, say_skipped)):
            datasets.append(path)
        else:
            subs = sorted(p for p in path.iterdir()
                          if (p.is_dir() and (is_cartridge(p, unreadable=False)
                                              or _metadata_alone(p)))
                          or _out_of_reach(p))
            # (crops named as a scan's frames are crops here too, as when given alone)
            crops = [p for p in subs if _crops_named_as_frames(p)]
            datasets += crops
            subs = [p for p in subs if p not in crops]
            if not subs and not crops:
                raise _not_an_input(path)
            _refuse_class_folders_as_scans(path, subs)
            if say_skipped:
                _say_what_is_not_read(path, [*subs, *crops])
            cartridges += subs
    return _once(cartridges, say_skipped), _once(datasets, say_skipped)


# A scanner's field of view is a thousand pixels or more across; a cell's crop, a few tens to
# a few hundred (a cluster's at high magnification).
CROP_SIZED_PX = 256


def _crops_named_as_frames(path: Path) -> bool:
    """Whether a folder a frame source claims (``frame_0000.tif``...) holds crops, not frames:
    a panel.json beside images of a crop's size, and no cartridge.json. Read as a scan, 24
    unlabelled crops of 80 px came out as 35 "events" with rates per 7.5 mL of blood, said."""
    if not path.is_dir() or (path / "cartridge.json").exists() or \
            not (path / "panel.json").exists():
        return False
    try:
        shape = open_cartridge(path).frame_shape
    except (InputError, OSError):
        return False
    if not shape or max(shape) > CROP_SIZED_PX:
        return False
    if first_time("crops-named-as-frames", str(path)):  # (inputs are resolved more than once)
        log.warning("%s: its images are named as a scan's frames but are %d x %d px, a "
                    "cell's crop, and no cartridge.json says it is a scan: read as a folder of "
                    "crops (in no class folder: unlabelled); a scan of frames this small needs "
                    "its cartridge.json", path, *shape)
    return True


def _one_frame_of_several(path: Path) -> bool:
    """Whether ``path`` is a file named as a frame is (``r00c01.ome.tif``) beside other scan
    files: one frame of a cartridge of OME-TIFF frames, not a scan of its own (read alone it
    was counted as the whole tube, its rate per 7.5 mL from a share of the blood)."""
    if not path.is_file() or not FRAME_POSITION.search(path.name):
        return False
    # A frame's name but for its position (r00c00.ome.tif beside r00c01.ome.tif): scans
    # named otherwise (donor7_r1c2.ome.tif beside donor8.ome.tif) are scans of their own.
    rest = FRAME_POSITION.sub("", path.name).lower()
    for other in path.parent.iterdir():
        if other != path and FRAME_POSITION.search(other.name) and \
                FRAME_POSITION.sub("", other.name).lower() == rest:
            with contextlib.suppress(InputError, OSError):
                if claim(other) is not None:
                    return True
    return False


def _refuse_class_folders_as_scans(folder: Path, subs: list[Path]) -> None:
    """Refuse a folder whose subfolders would be read as scans though they are a crop
    folder's class folders: crops exported as OME-TIFFs (each a scan's container to the
    reader) or named as frames, in folders named as classes, with no metadata of a scan (a
    panel.json or cartridge.json of their own). Each class was read as a scan, each crop as a
    frame, and rates per 7.5 mL reported of the crops' cells."""
    names = default_taxonomy().names
    classes = [s.name for s in subs if s.is_dir() and names_a_class(s.name, names)]
    if classes and not any((s / "panel.json").exists() or (s / "cartridge.json").exists()
                           for s in subs):
        others = [s.name for s in subs if s.name not in classes]
        # (with its panel.json there, a folder named otherwise read as a scan beside them)
        need = (f"a crop folder's class folders are named by its classes ({', '.join(names)}),"
                f" and {', '.join(others[:4])} is none" if others and
                (folder / "panel.json").exists() else
                "a crop folder needs a panel.json beside its class folders")
        raise InputError(f"its folders {', '.join(classes[:4])} are named as classes, and no "
                         f"scan's metadata is in them: {need} (docs/data-formats.md); a "
                         "folder of scans, each scan's panel.json or cartridge.json in its "
                         "own folder", folder)


def _metadata_alone(folder: Path) -> bool:
    """Whether a folder holds a panel.json and nothing else of a scan or a crop set (no image,
    no subfolder, no manifest): a scan whose frames have not arrived. Taken as a cartridge
    among a folder's, so that it is set aside with its reason in run.json and samples.csv
    (it was named in the log alone, and a night's record lost it)."""
    try:
        entries = [e for e in folder.iterdir() if not e.name.startswith(".")]
    except OSError:
        return False
    return (folder / "panel.json").is_file() and not any(
        e.is_dir() or e.name == "manifest.csv" or e.suffix.lower() in IMAGE_SUFFIXES
        for e in entries)


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
            not names_a_class(folder.name, default_taxonomy().names)
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
    without a word; hidden and system folders (:func:`_system_entry`) are left out, and a
    predict output (a night's ``--out`` kept beside its scans) is said only as a note."""
    others = sorted(p for p in folder.iterdir() if p.is_dir() and p not in cartridges
                    and not _system_entry(p.name))
    for sub in others:
        if is_predict_output(sub):  # (a night's --out kept among its scans: no scan missing)
            log.info("%s: a ctcnet predict output, not read", sub)
            continue
        if sub.is_symlink() and Path(os.path.realpath(sub)) in (
                Path(os.path.realpath(folder)), *Path(os.path.realpath(folder)).parents):
            # (passing it "too", as a folder of cartridges, would read the night twice)
            log.warning("%s: a link to this folder or one above it, not read", sub)
            continue
        try:
            what = "empty" if not any(sub.iterdir()) else "no frames nor cartridge.json"
            if any(p.is_dir() and is_cartridge(p, unreadable=False) for p in sub.iterdir()):
                what = "a folder of cartridges: pass it too, as an input of its own"
        except PermissionError:
            what = "this user may not read it"
        log.warning("%s: not a cartridge (%s), not read", sub, what)


def _holds_no_scan(path: Path) -> bool:
    """Whether a folder holds nothing that could be a scan or part of one: no image or
    scanner file and no metadata in it or its subfolders (empty ones a scanner made before
    copying, a share's Thumbs.db, a transfer log, a README are not scans)."""
    def scan_like(entry: Path) -> bool:
        if _system_entry(entry.name) or desktop_file(entry.name):
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
    # Crop folders side by side (parentfolder/A/panel.json): each is an input of its own.
    crop_folders = sorted(p.name for p in subs if (p / "panel.json").is_file())
    if crop_folders:
        return InputError(f"holds crop folders ({', '.join(crop_folders[:5])}"
                          f"{', ...' if len(crop_folders) > 5 else ''}), not crops: pass each "
                          "(e.g. " + " ".join(f"{path / s}" for s in crop_folders[:2])
                          + f", or {path}/*), or a list file naming them", path)
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
                                    record, datasets,
                                    {absolute(path): f"its metadata cannot be read: {err}"
                                     for path, err in unread})
        opened = [c for c in opened if absolute(c.root) not in aside]
        unread = [(path, err) for path, err in unread if absolute(path) not in aside]
        datasets = [d for d in datasets if absolute(d) not in aside]
    for path, err in unread:
        set_aside_or_raise(err, unopened_sample_id(path), record, path)
    for cartridge in opened:
        try:
            cartridges.append(checked_cartridge(cartridge).conform(panel))  # channels too
        except InputError as err:
            set_aside_or_raise(err, cartridge.sample_id, record, cartridge.root)
    refuse_colliding_outputs([(c.sample_id, str(c.root)) for c in cartridges]
                             + [(Path(d).name, str(d)) for d in datasets])
    readable = []
    for d in datasets:
        try:
            read_crop_index(d, pixel_size=stated_pixel_size(pixel_size),
                            look_ahead=True).conform(panel)
        except InputError as err:  # (as a cartridge refused on its own: the others run)
            set_aside_or_raise(err, Path(d).name, record, d)
            continue
        readable.append(d)
    return cartridges, readable


def stated_pixel_size(pixel_size: float | str | None) -> float | None:
    """A placeholder pixel size where only a crop set's channels are read: an ``auto``
    estimate reads hundreds of crops, and is made once, by the run itself."""
    return None if pixel_size is None else (1.0 if isinstance(pixel_size, str) else pixel_size)


def check_writable(out: Path) -> None:
    """Create the output folder, or stop with one line saying why it cannot be written to:
    before any work, not after the first cartridge."""
    whole = Path(out).absolute()
    made = [p for p in (whole, *whole.parents) if not p.exists()]
    try:
        make_folder(out)
    except OSError as err:
        if err.errno in MACHINE_ERRNOS:  # a folder it may not write, a full or read-only disk:
            # the machine's state (exit 4, docs/outputs.md), not a bad input (exit 2)
            raise type(err)(err.errno, f"cannot create output folder: {err.strerror}",
                            str(out)) from None
        # (a file where the folder or one above it would be: "File exists" read as a folder)
        file = next((p for p in (whole, *whole.parents) if p.exists() and not p.is_dir()), None)
        dangling = next((p for p in (whole, *whole.parents)
                         if p.is_symlink() and not p.exists()), None)
        raise CtcnetError(f"cannot create output folder {out}: " + (
            f"{file} is a file, not a folder" if file is not None else
            f"{dangling} is a link to {os.readlink(dangling)}, which is not there (a share not "
            "mounted, or moved?)" if dangling is not None else
            f"{err.strerror or err}")) from None
    unshared = group_unshared_text(out)
    if unshared:
        log.warning("--out %s: %s", out, unshared)
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
