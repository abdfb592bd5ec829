"""The planes a model does not read, checked once a cartridge: the nucleus may lie in one.

The metadata check (:mod:`ctcnet.detect.metadata_signs`) reads the signs of the planes the
model reads. A scan of more channels than the model's (a six-channel EMT panel run with the
three-channel ``ctcnet-core3``) drops the others unread, so a panel.json that swaps the DNA
channel with one of them (DAPI and VIM) gives the model vimentin as its DNA, and nothing
reads the real DNA plane to say so: the counts came out wrong and ``ok``. Here a few frames
are read whole, every plane, their events cut from all of them, and the nucleus's plane
judged over the file's own channels as the metadata check judges the model's; a problem
naming a plane the model drops is the sample's (``partial``). So is a dropped plane of no
known marker that lights the events as the leukocyte marker should, where the plane named so
lights far fewer (an empty FITC listed in the wrong place: CK read from FITC, CD45 from CK,
the real CD45 dropped as "FITC"; 0 of 8 CTCs counted, ``ok``). Only where planes are
dropped: a scan of the model's channels costs nothing more.
"""

from __future__ import annotations

import logging
import re
from dataclasses import replace

import numpy as np

from ctcnet.detect.cropping import extract_crops
from ctcnet.detect.detection import detect_events
from ctcnet.detect.metadata_signs import frame_signs, metadata_problems, spread_rows
from ctcnet.errors import InputError
from ctcnet.inference.frames import FRAME_DATA_ERRORS
from ctcnet.io.panel import marker_role
from ctcnet.io.scan import Cartridge, read_frame

log = logging.getLogger(__name__)

# Frames read whole, spread over the cartridge: enough events for the nucleus's vote.
FRAMES_READ = 3


def with_dropped_plane_problems(cartridge: Cartridge, spec, config) -> Cartridge:
    """``cartridge`` (conformed to ``spec``'s channels) with the metadata problems that name
    a plane it drops among its problems (:func:`dropped_plane_problems`)."""
    new = [p for p in dropped_plane_problems(cartridge, spec, config)
           if p not in cartridge.problems]
    return replace(cartridge, problems=[*cartridge.problems, *new]) if new else cartridge


def dropped_plane_problems(cartridge: Cartridge, spec, config) -> list[str]:
    """The metadata problems that name a plane ``cartridge`` (conformed to ``spec``'s
    channels) drops, judged on up to :data:`FRAMES_READ` of its frames read whole; [] where
    it drops none, or its frames cannot be read (their own reads say why)."""
    source = cartridge.file_panel
    if source is None or cartridge.channels is None or \
            source.num_channels == cartridge.panel.num_channels:
        return []
    dropped = [n for i, n in enumerate(source.names) if i not in set(cartridge.channels)]
    readable = [f for f in cartridge.frames if f.problem is None]
    if not readable:
        return []
    picked = [readable[int(i)] for i in spread_rows(np.arange(len(readable)), FRAMES_READ)]
    signs = []
    for frame in picked:
        try:
            pixels = read_frame(frame, source)  # every plane, in the files' order
            # The events predict reads: detected on the model's planes.
            events = detect_events(pixels[list(cartridge.channels)], cartridge.panel, config,
                                   counts_checked=True)
            crops, padded = extract_crops(pixels, events["x"].to_numpy(),
                                          events["y"].to_numpy(), spec.crop_size,
                                          spec.pixel_size_um, source.pixel_size_um)
            signs.append(frame_signs(crops, source, spec.pixel_size_um, len(picked),
                                     ~np.asarray(padded, bool)))
        except (InputError, OSError, *FRAME_DATA_ERRORS):  # the frame's own run says why
            continue
    problems, record = metadata_problems(signs, source, None)
    said = [f"{p} (a plane this model does not read: metadata_check)" for p in problems
            if names_a_plane(p, dropped)]
    said += _leukocyte_light_dropped(record, source, dropped)
    for line in said:
        log.warning("%s: %s", cartridge.sample_id, line)
    return said


def names_a_plane(problem: str, names) -> bool:
    """Whether ``problem`` names one of the planes ``names`` as a word of its own: a dropped
    "CD4" is not named by a line on "CD45", nor "CK" by one on "CK20"."""
    return any(re.search(rf"(?<![\w/-]){re.escape(name)}(?![\w/-])", problem)
               for name in names)


# A dropped plane of no known marker lighting at least this share of the events read, and this
# many times the events the leukocyte-marker plane lights, carries the leukocyte marker's
# light (an empty FITC lit 4 of 29 events where CD45 lit 22, a HER2 7 of 26 where CD45 lit
# 17; listed out of the file's order, the dropped "FITC" lit 21 and the plane named CD45 8,
# a dropped "HER2" 19 and "CD45" 11). Vimentin and CD66b light leukocytes too, but never
# more than CD45 does (every leukocyte carries CD45), and have roles of their own.
# Judged on this many events read at least (a share of a few frames': 29 on a 6-frame
# cartridge), as a two-to-one split of them is far past chance.
LEUKOCYTE_LIGHT_SHARE, LEUKOCYTE_LIGHT_RATIO, LEUKOCYTE_LIGHT_READ = 0.3, 1.5, 20


def _leukocyte_light_dropped(record: dict, source, dropped: list[str]) -> list[str]:
    """The dropped planes of no known marker that light the events as the leukocyte marker
    should, where the plane the panel names so lights far fewer, said."""
    read, lit = record.get("events_read") or 0, record.get("lit_by_plane") or {}
    leukocyte = source.index_of_role("leukocyte")
    if leukocyte is None or read < LEUKOCYTE_LIGHT_READ:
        return []
    named = source.names[leukocyte]
    return [f"{name}, a plane this model does not read, lights {lit[name]} of the {read} "
            f"events read, and {named} {lit[named]}: the leukocyte marker's light lies in a "
            "dropped plane. Is panel.json's channel order the file's? (metadata_check)"
            for name in dropped if marker_role(name) == "unknown" and name in lit
            and lit[name] >= LEUKOCYTE_LIGHT_SHARE * read
            and lit[name] >= LEUKOCYTE_LIGHT_RATIO * max(lit.get(named, 0), 1)]
