"""One blood draw, one count, across a run's outputs: one scan under two sample ids or more
(:func:`mark_same_scans`), and a frame's file read into two samples (:func:`mark_shared_frames`),
marked in run.json's entries and warned of."""

from __future__ import annotations

import logging

from ctcnet.inference.run_table import others_of_scan

log = logging.getLogger(__name__)


def mark_same_scans(entries: list[dict]) -> None:
    """Give the outputs of one scan under two sample ids or more (one ``cartridge_id``: the
    same frames) ``same_scan_as``, the others' names, as samples.csv does, and warn: one
    blood draw was counted as two, and only a column of the table said so."""
    said = set()
    for entry, others in zip(entries, others_of_scan(entries)):
        if not others:
            continue
        entry["same_scan_as"] = others
        names = sorted([entry["name"], *others])
        if tuple(names) not in said:
            said.add(tuple(names))
            log.warning("%s: one scan (the same frames, cartridge_id %s) under %d sample ids, "
                        "each counted as a blood draw of its own; keep the output of the right "
                        "id and move the other's out of the folder", ", ".join(names),
                        entry["cartridge_id"], len(names))


def mark_shared_frames(entries: list[dict], digests: dict[str, dict]) -> None:
    """Give the outputs of scans of other sample ids that read one frame's file (its bytes:
    a frame copied or linked into another patient's folder) ``frames_shared_with``, the others'
    names with the frame ids, and warn: that frame's cells were counted in both."""
    by_bytes: dict[str, list[tuple[str, str]]] = {}
    for name, frames in digests.items():
        for frame_id, record in frames.items():
            sha = record.get("sha256") if isinstance(record, dict) else None
            if sha:
                by_bytes.setdefault(sha, []).append((name, frame_id))
    # Once over the frames read more than once: each reader gets the others' frame ids.
    read_as: dict[str, dict[str, list[str]]] = {}
    for readers in by_bytes.values():
        for name, _ in readers if len(readers) > 1 else ():
            for other, frame_id in readers:
                if other != name:
                    read_as.setdefault(name, {}).setdefault(other, []).append(frame_id)
    for entry in entries:
        scan = entry.get("same_scan_as") or []
        shared = {other: ids for other, ids in read_as.get(entry["name"], {}).items()
                  if other not in scan}
        if shared:
            entry["frames_shared_with"] = shared
            log.warning("%s: %d frame(s) read as frames of %s too (the same file's bytes: a "
                        "frame copied or linked into another sample's folder?): their cells are "
                        "counted in each; check which sample each belongs to", entry["name"],
                        sum(map(len, shared.values())), ", ".join(sorted(shared)))
