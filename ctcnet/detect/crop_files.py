"""Which files of a crop folder are its crops, and what is said of the others: crops its
manifest.csv does not list, a table beside unlabelled crops (a lab's labels.csv), images of a
format ctcnet does not read, a class folder that is a link, a crop linked from outside the
folder. Each warning is said once a process and kept in the record of each piece of work
that reads the folder (a report's ``warnings``)."""

from __future__ import annotations

import logging
from pathlib import Path

from ctcnet.core.log_capture import keep_unsaid
from ctcnet.core.said_once import first_time
from ctcnet.detect.crop_checks import named_in_utf8
from ctcnet.errors import InputError
from ctcnet.io.image_headers import UNREAD_IMAGE_SUFFIXES
from ctcnet.io.images import IMAGE_SUFFIXES

log = logging.getLogger("ctcnet.detect.crop_dataset")  # (the folder's reader: one logger)


def say_not_read(root: Path, unlabelled: bool) -> None:
    """Warn of a crop folder's files that are not read: a table beside ``unlabelled`` crops
    (a lab's labels.csv), and images of a format ctcnet does not read (a .bmp among the crops
    went unread, the count fell without a word)."""
    tables = sorted(p.name for p in root.glob("*.csv"))
    if unlabelled and tables:
        say_once(f"{root}: {', '.join(tables)} beside the crops is not read: labels come from "
                  "class folders or manifest.csv (columns path,label[,sample_id][,split]); the "
                  "crops in the folder itself are read unlabelled, so no accuracy is given "
                  "of them")
    unread = [f for f in root.rglob("*") if f.suffix.lower() in UNREAD_IMAGE_SUFFIXES]
    if unread:
        say_once(f"{root}: {len(unread)} image(s) of a format ctcnet does not read are not "
                  f"read (e.g. {unread[0].relative_to(root)}): save crops as TIFF, PNG or JPEG")


def say_once(text: str) -> None:
    """A warning of a folder said once a process (a run reads it more than once), and kept in
    the record of each piece of work that reads it after (:func:`keep_unsaid`)."""
    if first_time(__name__, text):
        log.warning("%s", text)
    else:
        keep_unsaid(text)


def say_unlisted(root: Path, listed: list[Path]) -> None:
    """Warn of crops under ``root`` that its manifest.csv does not list: the manifest is the
    dataset, so a class folder added beside it (more CTCs, a class the model lacks) is not
    read, and a count that leaves it out must not pass for the folder's."""
    known, base = set(listed), root.resolve()  # (the manifest's paths are resolved already)
    unlisted = [f for f in crop_files(root, recursive=True)
                if base / f.relative_to(root) not in known]
    if unlisted:  # (kept in the report too: a validation record names what it left out)
        shown = ", ".join(str(f.relative_to(root)) for f in unlisted[:3])
        say_once(f"{root}: {len(unlisted)} image file(s) there are not in its manifest.csv and "
                 f"are not read (e.g. {shown}): the manifest lists the dataset; add them to "
                 "it, or remove it to read the class folders")


def crop_files(folder: Path, recursive: bool, refuse_links: bool = False) -> list[Path]:
    """The image files in ``folder`` (and, ``recursive``, its subfolders'), sorted, hidden ones
    left out (macOS writes a "._name.tif" resource fork beside each file on foreign disks)."""
    found = list(folder.rglob("*") if recursive else folder.iterdir())
    # A subfolder that is a link is not walked into: its crops were left out without a word.
    linked = [f for f in found if f.is_symlink() and f.is_dir()]
    if linked and refuse_links and recursive:  # (a linked class folder: its crops, below)
        raise InputError(f"{linked[0].relative_to(folder.parent)} is a link to a folder "
                         f"({linked[0].resolve()}): its crops are not read; copy them into "
                         "the dataset folder", folder.parent)
    kept = sorted(f for f in found if f.suffix.lower() in IMAGE_SUFFIXES and not f.is_dir()
                  and not any(part.startswith(".") for part in f.relative_to(folder).parts))
    return named_in_utf8(kept, folder)


def refuse_links_out(root: Path, files: list[Path]) -> None:
    """Refuse crops that are links (or lie in a class folder that is one) to a file outside
    the dataset folder, as a manifest's path outside it is: a class folder linked elsewhere
    was read without a word, and a crop linked to a system file was opened."""
    inside = root.resolve()
    for f in files:
        if not f.resolve().is_relative_to(inside):
            raise InputError(f"{f.relative_to(root)} points outside the dataset folder (a "
                             f"link to {f.resolve()}): copy the crops into it", root)
