"""Frames that lack the file of a plane the model does not read, read without it.

A scan's per-channel files may lack one plane's file for a frame (a therapy marker's export
failed, a FITC plane named otherwise than panel.json says). Until a model's channels are known
such a frame carries the missing file as its problem; once they are
(:meth:`ctcnet.io.scan.Cartridge.conform`), a plane the model does not read is only measured
(:mod:`ctcnet.io.unread_planes`: its events' ``mean_<plane>`` left empty there), so the frame is
read, its blood counted, and the absence said once a cartridge, naming the frames: skipping it
lost the frame's CTCs from the count for a measurement beside it.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from ctcnet.io.panel import Panel
from ctcnet.io.sources import FrameRef

log = logging.getLogger(__name__)

_SAID: set[tuple[str, tuple[str, ...]]] = set()  # (sample, frames): a run conforms it again


def read_without_unread_files(frames: list[FrameRef], kept: list[int], panel: Panel,
                              sample_id: str) -> list[FrameRef]:
    """``frames`` with the problem cleared of each that lacks only files of planes not in
    ``kept`` (indices into ``panel``, the files' panel); the others as they were."""
    out, eased = [], []
    for frame in frames:
        if frame.missing and frame.problem is not None and not set(frame.missing) & set(kept):
            frame = replace(frame, problem=None)
            eased.append(frame)
        out.append(frame)
    if eased:
        planes = sorted({panel.names[c] for f in eased for c in f.missing})
        stems = tuple(f.stem for f in eased)
        if (sample_id, stems) not in _SAID:
            _SAID.add((sample_id, stems))
            log.warning("%s: %d frame(s) lack the file of %s, a plane the model does not read: "
                        "read without it (its events' mean_%s empty there): %s%s", sample_id,
                        len(eased), ", ".join(planes), planes[0], ", ".join(stems[:5]),
                        ", ..." if len(stems) > 5 else "")
    return out
