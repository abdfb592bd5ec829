"""What each input's output folder is named, and the names that would clash: two inputs of
one name (cartridges of one sample id, crop folders of one name), names alike but for case or
accent encoding (one folder on a Windows or macOS share), and how run.json names a cartridge
set aside for such a clash, and the name of one that cannot be opened. Also where a refused
input is recorded as set aside, so the rest of a batch runs, and which inputs are a batch."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

from ctcnet.core.paths import absolute, name_key, same_name
from ctcnet.core.printable import printable_name
from ctcnet.errors import FolderHeldError, InputError, OutputFolderError, SampleIdTakenError
from ctcnet.io.atomic import check_output_path
from ctcnet.io.cartridge_info import RESERVED_OUT_NAMES, safe_sample_id, unopened_sample_id
from ctcnet.io.scan import open_cartridge

log = logging.getLogger("ctcnet.inference.inputs")  # the inputs' checks: one logger for them


def refuse_alike_output(out_dir: Path) -> None:
    """Refuse a sample's output folder where ``--out`` already holds one whose name differs
    from it in case or accents only (:func:`name_key`): on a share that tells no case apart
    the two are one folder, and this sample would be written into the other's, or refused as
    another run of it with a reason that names neither. A path no run could write as meant
    (:func:`~ctcnet.io.atomic.check_output_path`: a '~' unexpanded, a non-UTF-8 locale's name)
    is refused too."""
    out_dir = Path(out_dir)
    check_output_path(out_dir)
    if out_dir.is_symlink():  # (--out itself may be a link: its sample folders may not)
        raise OutputFolderError(f"is a link to {os.readlink(out_dir)}, not a folder: ctcnet "
                                "never writes through a symbolic link (a link planted at a "
                                "sample's name would take its outputs elsewhere); move it "
                                "away, or give another --out", out_dir)
    try:
        # A name that differs in its accents' encoding alone is this sample's own folder as a
        # file system that decomposes names (macOS, a ZFS or SMB share) lists it.
        alike = sorted(p.name for p in out_dir.parent.iterdir()
                       if not same_name(p.name, out_dir.name)
                       and name_key(p.name) == name_key(out_dir.name) and p.is_dir())
    except OSError:  # --out not there yet, or not listable: its own check says so
        return
    if alike:
        raise OutputFolderError(f"--out already holds the output of sample {alike[0]!r}: on a "
                                "share that tells no case apart (Windows, macOS) the two are "
                                "one folder; give this input another name (a cartridge's "
                                "sample id in cartridge.json, a crop folder's own name), or "
                                "run it into another --out", out_dir)


def refuse_another_samples_folder(out_dir: Path, sample_id: str, overwrite: bool) -> None:
    """Refuse to write a cartridge into a folder holding another sample's finished output
    (its summary.json names another sample id): ``predict_cartridge`` called with one folder
    for every cartridge of a loop. The command line names each sample's folder by its id, so
    only a folder given by hand meets this (a corrected sample id: ``overwrite``)."""
    import json

    try:
        held = json.loads((Path(out_dir) / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    other = held.get("sample_id") if isinstance(held, dict) else None
    if overwrite or not isinstance(other, str) or same_name(other, sample_id):
        return
    raise OutputFolderError(f"it holds the output of sample {other!r}, not of {sample_id!r}: "
                            "give each cartridge a folder of its own (a sample's output folder; "
                            "the command line's --out holds one per sample, named by its id); "
                            "the same scan under a corrected sample id is run again there "
                            "with --overwrite", out_dir)


def refuse_out_in_crop_folders(out: Path, crop_folders: list[Path]) -> None:
    """Refuse an ``--out`` that is a crop folder read, or lies inside one: its report's
    gallery images were read as crops by every later run of the folder (refused for the
    channels they lack), and the folder itself, holding run.json, read as a predict output."""
    here = Path(absolute(out))
    for folder in crop_folders:
        if here.is_relative_to(absolute(folder)):
            raise InputError(f"--out {'is' if here == Path(absolute(folder)) else 'lies in'} "
                             f"the crop folder {folder}: its outputs (gallery images) would be "
                             "read as its crops by the next run; choose an --out outside it",
                             out)


def without_alike_outputs(out: Path, items: list, record: dict | None,
                          name: Callable = lambda cartridge: cartridge.sample_id) -> list:
    """The inputs (cartridges; crop folders with ``name`` their folder's name) but those whose
    output folder :func:`refuse_alike_output` refuses in ``out``, each set aside in
    ``record`` (or, with none, the refusal raised)."""
    kept = []
    for item in items:
        try:
            if not hasattr(item, "sample_id"):  # a crop folder: its name names its output,
                # held to a sample id's rules (Windows' forbidden characters, length)
                safe_sample_id(name(item).strip() or name(item), Path(item),
                               "the crop folder's name")
            refuse_alike_output(Path(out) / name(item))
        except InputError as err:
            set_aside_or_raise(err, name(item), record, getattr(item, "root", item))
            continue
        kept.append(item)
    return kept


def colliding_outputs(named: list[tuple[str, str]]) -> dict[str, list[str]]:
    """Of inputs as (output name, path), the names two or more of them would write, each with
    their paths (by the first of the names, where they differ in case or accents only:
    :func:`name_key`). Each input writes out/<its name>: a cartridge its sample id, a crop
    set its folder's name; two alike would write one folder, the second replacing the first."""
    first: dict[str, str] = {}
    paths: dict[str, list[str]] = {}
    for name, path in named:
        paths.setdefault(first.setdefault(name_key(name), name), []).append(path)
    return {name: found for name, found in paths.items() if len(found) > 1}


def refuse_colliding_outputs(named: list[tuple[str, str]]) -> None:
    """Refuse inputs (as (output name, path)) of which two would write one output folder, or
    one a file a run writes at the top of --out (:data:`RESERVED_OUT_NAMES`), naming them."""
    taken = sorted((name, path) for name, path in named if name.lower() in RESERVED_OUT_NAMES)
    if taken:
        raise InputError(_reserved_text(taken[0][0]), taken[0][1])
    clashes = colliding_outputs(named)
    if clashes:
        raise InputError("; ".join(f"{' and '.join(paths)} would all write the output folder "
                                   f"{name!r}" for name, paths in sorted(clashes.items()))
                         + " (cartridges of one sample id, or crop folders of one name): "
                         "rename one, or run them into another --out")


def _reserved_text(name: str) -> str:
    return (f"it would write its output folder as {name!r}, a file or folder of that name a "
            "run writes at the top of --out: rename the crop folder (or the cartridge's "
            "sample id)")


def colliding_name(sample_id: str, root: str | Path) -> str:
    """How run.json names a cartridge set aside for sharing its sample id: with its folder."""
    return f"{sample_id} ({absolute(root)})"


def run_names(named: list[tuple[str, str | Path]], datasets) -> list[str]:
    """Each input's name in run.json, in input order: of cartridges as (output name, folder),
    their output names, then the crop folders' names; an input that shares its output name
    with another (a cartridge's sample id, a crop folder's name) with its folder
    (:func:`colliding_name`: the inputs :func:`set_aside_colliding` sets aside)."""
    every = [(n, absolute(p)) for n, p in named] + [(Path(d).name, absolute(d))
                                                    for d in datasets]
    shared = {name_key(n) for n in colliding_outputs(every)}
    return [colliding_name(n, p) if name_key(n) in shared else n for n, p in every]


def output_folder_of(name: str) -> str:
    """The output folder an input named so in run.json writes: its sample id, also for one
    set aside for sharing it (:func:`colliding_name`), whose earlier output lies there."""
    if name.endswith(")") and " (" in name:
        sample_id, folder = name[:-1].rsplit(" (", 1)
        if os.path.isabs(folder):
            return sample_id
    return name


def set_aside_colliding(named: list[tuple[str, str | Path]], record: dict | None,
                        datasets=(), notes: dict[str, str] | None = None) -> set[str]:
    """Of the inputs, cartridges as (sample id, folder) and the crop folders ``datasets``,
    those that would write one output folder (a sample id another has too, a crop folder's
    name), set aside in ``record`` (each as :func:`colliding_name`, naming the others, and
    what ``notes`` says of its folder, absolute: its own refusal): which of them the lab meant
    no run can tell, and the batch's other inputs still run. A crop folder named as a file a
    run writes at the top of --out (run.json, samples.csv, logs) is set aside too. Returns
    their folders (absolute). With no ``record`` the first is refused (raised)."""
    crops = {absolute(d) for d in datasets}
    own = {absolute(p): n for n, p in named} | {absolute(d): Path(d).name for d in datasets}
    aside = set()
    # (named in run.json as run_names names them: with its folder where another shares it)
    shared = {name_key(n) for n in colliding_outputs([(n, f) for f, n in own.items()])}
    for folder in sorted(crops):
        if own[folder].lower() in RESERVED_OUT_NAMES:
            set_aside_or_raise(InputError(_reserved_text(own[folder]), Path(folder)),
                               colliding_name(own[folder], folder)
                               if name_key(own[folder]) in shared else own[folder],
                               record, folder)
            aside.add(folder)
    clashes = colliding_outputs([(n, f) for f, n in own.items() if f not in aside])
    for _, folders in sorted(clashes.items()):
        for folder in folders:
            others = [f if own[f] == own[folder] else f"{f} ({_named(f, own, crops)})"
                      for f in folders if f != folder]
            alike = ("" if all(own[f] == own[folder] for f in folders) else
                     ", on a share that tells no case apart (Windows, macOS)")
            note = (notes or {}).get(folder)
            fix = ("rename the crop folder" if folder in crops else
                   "give each its own sample id (cartridge.json)")
            set_aside_or_raise(InputError(
                f"its {_named(folder, own, crops)} is that of {' and '.join(others)} too: "
                f"their outputs would be one folder{alike}; {fix}, or run them into another "
                "--out" + (f"; and {note}" if note else ""), Path(folder)),
                colliding_name(own[folder], folder), record, folder)
            aside.add(folder)
    return aside


def _named(folder: str, own: dict[str, str], crops: set[str]) -> str:
    """What names an input's output folder: a crop folder's name, a cartridge's sample id."""
    return f"{'name' if folder in crops else 'sample id'} {own[folder]!r}"


def set_aside_record(set_aside: dict | None, inputs: int, share_of_several: bool = False
                     ) -> dict | None:
    """Where a refused input is recorded as set aside: ``set_aside`` when the run has several
    ``inputs`` (or is one process's share of a run of several), so the others run; None when
    a refusal is to stop the run (one input alone, or a caller that keeps no record)."""
    several = share_of_several or inputs > 1
    return set_aside if set_aside is not None and several else None


class SetAsideReason(str):
    """Why an input was set aside, as run.json gives it, with the input's path (``input``,
    absolute; None where not known) so that the index names what was refused, as it names
    what was read, and whose matter it is (``kind``: ``input``, the scan or its metadata,
    the lab's; ``output``, the output folder, whoever runs the job's; ``held``, another
    ctcnet process was writing it, which finishes it: no one's, ``held_since`` when it took
    it). A string, so the records that keep reasons alone read it unchanged."""

    input: str | None = None
    kind: str = "input"
    held_since: float | None = None


def set_aside_reason(text: str, input_path: str | Path | None,
                     err: InputError | None = None) -> SetAsideReason:
    """``text`` as a :class:`SetAsideReason` of the input at ``input_path``, of the kind
    ``err`` says."""
    reason = SetAsideReason(text)
    reason.input = absolute(input_path) if input_path is not None else None
    reason.kind = ("held" if isinstance(err, FolderHeldError) else
                   "input" if isinstance(err, SampleIdTakenError) else
                   "output" if isinstance(err, OutputFolderError) else "input")
    reason.held_since = getattr(err, "held_since", None)
    return reason


def set_aside_or_raise(err: InputError, name: str, set_aside: dict | None,
                       input_path: str | Path | None = None, say: bool = True) -> None:
    """Record input ``name`` (read from ``input_path``) as set aside for ``err`` and say so
    (the other inputs run; not ``say``: a run of this input alone, whose end says it), or,
    with no record to keep (``None``: one input, or a caller that stops on a refusal), raise
    ``err``."""
    if set_aside is None:
        raise err
    set_aside[name] = set_aside_reason(str(err), input_path, err)
    if say:  # said as it happens, a warning: the run's end says each refusal as its error
        # (once: a monitor counting error lines counted every refusal twice).
        log.warning("%s: set aside, the other inputs run: %s", printable_name(name), err)


def output_name_and_frames(cartridge: str | Path) -> tuple[str, int]:
    """A cartridge folder's output name (its sample id) and frame count; when it cannot be
    opened, :func:`~ctcnet.io.cartridge_info.unopened_sample_id` and one frame (the run sets
    it aside under that name)."""
    try:
        opened = open_cartridge(cartridge)
    except InputError:
        return unopened_sample_id(cartridge), 1
    return opened.sample_id, len(opened.frames)


def is_batch(inputs: list, cartridges: list, datasets: list) -> bool:
    """Whether a run's ``inputs`` (as given) are a batch: several inputs, or a folder of
    cartridges or a list file (an input that is none of the ``cartridges`` and ``datasets`` it
    resolved to) even when it holds one. A batch's refused input is set aside and recorded in
    run.json, so a night whose cartridges are all refused leaves an index that says so, not
    the last night's standing as tonight's; an input given alone is refused outright."""
    found = {absolute(p) for p in [*cartridges, *datasets]}
    return len(found) > 1 or any(absolute(p) not in found for p in inputs)
