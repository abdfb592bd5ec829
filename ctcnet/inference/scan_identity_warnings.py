"""Warnings before a cartridge is predicted into a results folder that holds another scan's
work under its sample id, or into a batch's ``--out`` that holds this scan under another one:
said while the person who ran it can still choose another ``--out``."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from ctcnet.core.paths import absolute, same_name
from ctcnet.io.scan import Cartridge

log = logging.getLogger(__name__)


def warn_of_decisions_on_another_cartridge(out_dir: Path, cartridge: Cartridge) -> None:
    """A results folder reviewed on one cartridge, predicted again from another with the same
    sample id (another scan, or this one with a frame changed): the decisions made on pixels
    that changed will be set aside (``ctcnet.review.decisions``); said now, while the person
    who ran it can still pick another ``--out``."""
    try:
        earlier = json.loads((out_dir / "summary.json").read_text(encoding="utf-8"))
        before, digests = earlier.get("cartridge_id"), earlier.get("frame_digests") or {}
    except (OSError, ValueError, AttributeError):
        return
    if before and cartridge.identity and before != cartridge.identity and \
            (out_dir / "review.csv").exists():
        now = {f.frame_id for f in cartridge.frames}
        if isinstance(digests, dict) and digests and set(digests) < now:
            # The frames read then are all here, and more: a scan reviewed while it was still
            # being written (or a partial one completed), not another scan.
            log.info("%s: the scan has %d frame(s) more than when its review began (still "
                     "being written then?): the decisions made on frames unchanged since "
                     "still count", out_dir, len(now - set(digests)))
            return
        log.warning("%s: review.csv holds decisions made on a scan with sample id %s whose "
                    "frames were not all these (cartridge %s; this scan is %s: another scan, or "
                    "this one with frames repaired or changed): those made on frames whose files "
                    "changed (all of them, for another scan; a recompression too, its pixels "
                    "the same: frames are told by their files' bytes) will be set aside, not "
                    "counted; those on frames unchanged still count", out_dir,
                    cartridge.sample_id,
                    before, cartridge.identity)


def warn_of_the_same_scans_under_other_names(out: Path, cartridges) -> None:
    """A scan whose output is already in ``out`` under another sample id (``sample_id``
    corrected in cartridge.json, a folder renamed): this run writes a second output beside
    the first, and the first's review decisions and sign-off stay with it. Said once per such
    cartridge, naming both (every summary in ``out`` read once, for the whole run)."""
    if not cartridges or not out.is_dir():
        return
    ours = {c.identity: c.sample_id for c in cartridges if c.identity}
    # Also by the folder read: a scan read while it was still being written (fewer frames,
    # another identity) before its cartridge.json named its sample id.
    folders = {absolute(c.root): c.sample_id for c in cartridges}
    for summary in out.glob("*/summary.json"):
        try:
            read = json.loads(summary.read_text(encoding="utf-8"))
            identity, folder = read.get("cartridge_id"), read.get("input")
        except (OSError, ValueError, AttributeError):
            continue
        by_folder = folders.get(absolute(folder)) if isinstance(folder, str) else None
        name = ours.get(identity) or by_folder
        if name is not None and not same_name(name, summary.parent.name):
            reviewed = (summary.parent / "review.csv").exists()
            what = (f"this scan (cartridge {identity})" if identity in ours else
                    f"this scan's folder ({folder}, read then with other frames: still being "
                    "written?)")
            log.warning("%s: %s already has an output here as %s%s; this run writes %s beside "
                        "it%s", out, what, summary.parent.name, " (reviewed)" if reviewed
                        else "", name, ": the review's decisions and sign-off stay with the "
                        "first" if reviewed else f"; {summary.parent.name} is left as it was "
                        "(remove it where it was the same tube)")
