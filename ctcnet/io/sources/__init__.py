"""Frame sources: the ways a scan's frames lie on disk, each a small class in one registry.

A source says which files of a cartridge folder it claims (:meth:`FrameSource.claim`), lists
the frames they hold with their positions (:meth:`FrameSource.frames`) and reads one frame's
channels when asked, never before (:meth:`FrameSource.read`). :func:`ctcnet.io.scan.open_cartridge`
asks every registered source about every file and builds the frame list from the answers.

Two kinds of source:

* named frames (:mod:`ctcnet.io.sources.named`): a file's name gives its frame position,
  ``r<row>c<col>`` or ``frame<k>``: one multipage TIFF per frame, one colour composite per
  frame, or one file per channel (``r03c12_c0.tif`` or ``.png``);
* microscopy containers (:mod:`ctcnet.io.sources.microscopy`): one file holds many frames
  (scenes, or tiles of a large scene) and names its channels and pixel size in its metadata:
  OME-TIFF, OME-Zarr, CZI, ND2, LIF, read through bioio when its extras are installed.

The registry is ordered: the first source to claim a file gets it.
"""

from ctcnet.io.sources.base import (
    FramePart,
    FrameRef,
    FrameSource,
    claim,
    frame_digest,
    get_source,
    list_sources,
    register,
)

# Imported for their registrations, in claim order: named frames first (their names are
# unambiguous), then the containers, which claim by suffix.
from ctcnet.io.sources import named  # noqa: E402,I001  isort: skip
from ctcnet.io.sources import microscopy  # noqa: E402  isort: skip

__all__ = ["FramePart", "FrameRef", "FrameSource", "claim", "frame_digest", "get_source",
           "list_sources", "microscopy", "named", "register"]
