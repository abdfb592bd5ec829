"""What reading a crop folder notices in its crops' pixels, gathered crop by crop as
:func:`ctcnet.detect.crop_dataset.crop_chunks` reads them and said once for the whole folder
(:class:`CropNotes`):

* **blank** crops, every channel 0 (an export of an empty region, a file written before its
  image was), and raw crops (not 8-bit) with a **dead channel** among those the model reads,
  one value throughout (no camera's counts are: a channel that failed, or its plane left
  unwritten; a CD45 that shows nothing makes every leukocyte a CTC candidate, and the network
  calls such leukocytes ``ctc``):
  refused, named with the unreadable ones, in every command that reads crops (predict,
  evaluate, robustness, train, finetune). Nothing in them is a cell to call, and any call made
  of one is noise in the figures and the training set; its file is left out by a person, not
  by ctcnet behind their back;
* pixel-identical **copies** of another crop (one label of two is wrong where they differ);
* float crops **rescaled** to fractions, raw crops stored in **8 bits**, and values **above**
  the channels' stated range;
* raw crops whose **background was subtracted** and clipped at 0: said, and their clipped
  pixels drawn again as the background's lower tail (:mod:`ctcnet.detect.clipped_background`);
* the **marks** filled in colour composites (frames, scale bars:
  :func:`ctcnet.io.annotations.warn_of_marks`);
* composites whose R, G, B planes are likely in **another order** than ``panel.json`` says
  (:mod:`ctcnet.detect.plane_order`), and raw scan crops so, or at a pixel size their nuclei
  belie (:mod:`ctcnet.detect.metadata_signs`); labelled crops whose CK and CD45 read
  swapped (:mod:`ctcnet.detect.marker_labels`).

Everything is read in the files' own channel order (``index.file_panel``), before the crops
are brought to a model's channels and scale, except the range check, which reads the crops at
model scale.
"""

from __future__ import annotations

import hashlib
import logging
from typing import TYPE_CHECKING

import numpy as np

from ctcnet.core.paths import name_in_folder, shown_in
from ctcnet.detect.clipped_background import restore_clipped_background, subtracted_note
from ctcnet.detect.crop_folder_signs import CropFolderSigns
from ctcnet.detect.marker_labels import MarkerLabelVotes
from ctcnet.detect.plane_order import PlaneVotes
from ctcnet.errors import InputError
from ctcnet.io.annotations import warn_of_marks
from ctcnet.io.frame_checks import SATURATED_SHARE, clipped_tops, rescaled_counts
from ctcnet.io.images import is_rgb_composite

if TYPE_CHECKING:  # a type only: crop_dataset imports this module
    from ctcnet.detect.crop_dataset import CropIndex

# The crop reader's logger: its warnings are the crop set's, whichever module words them.
log = logging.getLogger("ctcnet.detect.crop_dataset")
# The share by which a resampled pixel may pass the values it was resampled from.
RESAMPLING_ROUNDING = 1e-4


def past_stated_top(peak: np.ndarray, stated: np.ndarray) -> np.ndarray:
    """Where pixel values ``peak`` (of crops at model scale, per channel) pass their channels'
    stated tops ``stated`` (``value_range``): resampling's weights sum to 1 only up to float
    rounding, so a 4095 pixel brought to model scale may read 4095.0005, which is the top,
    not past it."""
    return np.asarray(peak) > np.asarray(stated, np.float32) * np.float32(1 + RESAMPLING_ROUNDING)

# Unreadable or blank crops named in the one error that lists them (the count covers the rest).
BAD_CROPS_NAMED = 10
BLANK = "blank: every channel is 0 (an empty or failed export)"
DEAD = ("holds one value throughout in channel(s) {} (a channel that failed: no camera's "
        "counts are one value; a CD45 that shows nothing makes a leukocyte a CTC candidate)")
LEAVE_OUT = "delete it or its manifest.csv line"
# A crop whose shorter side covers more than this (um, at the set's stated pixel size) is a
# scanner's field, not a cell's: the shipped models read 51 um round one cell, and the largest
# CTC-leukocyte clusters span well under 100 um; a CellSearch frame spans 668 x 893 um.
FRAME_LIKE_UM = 200.0


def refuse_planes_unlike_panel(arr: np.ndarray, panel, path) -> None:
    """Refuse a crop's planes (``arr``, as read) unlike the folder's panel: a composite among
    raw crops or the other way round, or another count of channels than the panel's."""
    if panel.composite == "rgb" and not is_rgb_composite(arr):
        raise InputError(f"the folder's crops are RGB composites (as panel.json or its first "
                         f"crop says), but this file holds {arr.shape[0]} plane(s) of "
                         f"{arr.dtype}: keep other crops in a folder of their own", path)
    if panel.composite is None and panel.num_channels == 3 and is_rgb_composite(arr):
        # Its planes are R, G, B display levels, in the composite's order, not the panel's.
        raise InputError("an 8-bit colour composite in a folder read as crops of raw "
                         "channels (panel.json does not state \"composite\": \"rgb\", and the "
                         "folder's first crop is no colour composite): keep composites and other "
                         "crops in folders of their own", path)
    if arr.shape[0] != panel.num_channels:
        hint = (" (a colour file holds three planes, R, G, B: panel.json names one channel per "
                "plane)" if is_rgb_composite(arr) else "")
        if arr.shape[0] == 1 and panel.num_channels > 1:
            # One image a channel (cell_c0.png, cell_c1.png...) is a cartridge frame's layout.
            hint = (": a crop is one file holding every channel (a (C, H, W) TIFF, or an RGB "
                    "composite); files of one channel each are read only as a cartridge's "
                    "frames, named by position and channel (r00c01_DAPI.tif, r00c01_c0.tif, "
                    "or frame<k>_CK.tif)")
        raise InputError(f"crop has {arr.shape[0]} channels, the panel {panel.names} has "
                         f"{panel.num_channels}{hint}", path)


class CropNotes:
    """What a crop set's read notices (see the module), for one pass over ``index``."""

    def __init__(self, index: CropIndex, fitting: bool = False):
        """``fitting``: the crops are read to fit a model (train, finetune, a recalibration):
        :meth:`fitting_refusal` refuses what such a model would carry, and what could not be
        checked of them is said."""
        self.index, self.fitting = index, fitting
        self.panel = index.file_panel or index.panel  # the files' planes, as read
        self.marks: list[str] = []
        self.orders: dict = {}  # each crop's stored channel names' order (stored_order)
        self.blank: list[int] = []
        self.dead: list[tuple[int, list[str]]] = []  # crop, its channels of one value
        self._saturated = self.panel.saturation_levels  # read per crop: computed once
        self.over = 0
        self.rescaled: list[int] = []  # float crops of fractions of their range (0-1?)
        self.eight_bit = 0  # raw crops (a scan's counts, not a composite) stored in 8 bits
        self.eight_bit_crops: list[int] = []  # each of them (the first few named)
        self.over_in: set[int] = set()  # the channels some crop holds values above
        self.over_crops: list[int] = []  # the first crops that do (named in what is said)
        self.saturated = 0
        self.saturated_in: set[int] = set()  # the channels some crop is saturated in
        self.saturated_crops: list[int] = []  # the first of them (named: which to look at)
        self.subtracted: list[int] = []  # raw crops whose background was clipped at 0
        self.subtracted_in: set[int] = set()  # (their channels so)
        self._first_of: dict[bytes, list[int]] = {}
        # Crops of a scanner's field (whole frames read as a crop folder), at a stated size.
        self.frame_like: list[int] = []
        self._fixed_pixel_um = index.panel.pixel_size_um if index.crop_pixel_um is None \
            else None
        dna = self.panel.index_of_role("nucleus")
        # Only composites: their planes are markers by panel.json's word alone (a scan's
        # files carry their channel names, checked as they are read).
        self.planes = PlaneVotes(self.panel.names, dna, len(index)) \
            if self.panel.composite == "rgb" and dna is not None else None
        # Labelled crops: those labelled ctc light CK, and wbc CD45, unless the two are swapped.
        self.marker_labels = MarkerLabelVotes.of(self.panel, index.labels, index.sample_ids)
        # Raw crops (a scan's counts): their cells tell the order as a cartridge's do.
        self.scan_signs = CropFolderSigns(
            self.panel, len(index),
            index.panel.pixel_size_um if index.crop_pixel_um is None else None,
            list(index.sample_ids)) if not self.panel.composite and not index.exported else None

    @property
    def unusable(self) -> bool:
        """Whether a crop read so far is blank or has a dead channel (refused)."""
        return bool(self.blank or self.dead)

    def read(self, i: int, crop: np.ndarray) -> bool:
        """Note crop ``i`` as read, (C, H, W) in the files' planes; False when it is blank
        (refused once the read is over, with the unreadable crops)."""
        if not crop.any():
            self.blank.append(i)
            return False
        # Display exports (composites, 8-bit levels) show an unlit marker as black.
        if not self.index.exported and crop.dtype != np.uint8:
            flat = crop.reshape(crop.shape[0], -1)
            # One value throughout, under the channel's saturation (a clipped plane is read
            # as saturated, not as dead).
            low = flat.min(axis=1)
            dead = np.flatnonzero((flat.max(axis=1) == low) &
                                  (low < self._saturated[:len(low)]))
            # A plane the model does not read (one never acquired, named so in panel.json)
            # refused every crop for nothing the calls use.
            dead = [c for c in dead if self.index.channels is None or c in self.index.channels]
            if dead:
                self.dead.append((i, [self.panel.names[c] for c in dead]))
                return False
        if crop.dtype == np.uint8 and not self.index.exported:
            self.eight_bit += 1
            self.eight_bit_crops.append(i)
        if crop.dtype.kind == "f" and not self.index.exported:
            # Display exports hold levels, not counts: never "rescaled".
            if rescaled_counts(crop, self.panel.channels) is not None:
                self.rescaled.append(i)
        if self._fixed_pixel_um and min(crop.shape[1:]) * self._fixed_pixel_um > FRAME_LIKE_UM:
            self.frame_like.append(i)
        digest = hashlib.blake2b(repr((crop.shape, crop.dtype.str)).encode(), digest_size=16)
        digest.update(np.ascontiguousarray(crop).data)
        self._first_of.setdefault(digest.digest(), []).append(i)
        if self.planes is not None and self.planes.wants(i):
            self.planes.add(crop)
        if self.scan_signs is not None:
            self.scan_signs.add(i, crop, self.index.pixel_um(i))
        if self.marker_labels is not None:
            self.marker_labels.add(i, crop)
        return True

    def restored(self, i: int, crop: np.ndarray) -> np.ndarray:
        """Crop ``i`` ((C, H, W), the files' planes) with a background subtracted and clipped
        at 0 drawn again (:func:`~ctcnet.detect.clipped_background.restore_clipped_background`),
        noted; as it is elsewhere, and always for display levels (a composite's or an 8-bit
        crop's black is a display's black point, not a clip of counts)."""
        if self.index.exported or crop.dtype == np.uint8:
            return crop
        crop, channels = restore_clipped_background(crop)
        if channels:
            self.subtracted.append(i)
            self.subtracted_in.update(channels)
        return crop

    def scaled(self, crops: np.ndarray, start: int = 0) -> None:
        """Note a chunk of crops at model scale (the index's crops from ``start`` on), in the
        index's channel order: how many hold
        values above their channels' stated range (panel.json's ``value_range``, 0-4095
        unless stated). The marker guard reads such pixels as saturated, and a whole frame so
        is refused (``ctcnet.io.scan``); crops are read on, with a warning."""
        if not len(crops) or self.index.exported:  # display levels (a model's order drops
            return                                   # the panel's composite word)
        stated = np.array([c.value_range[1] for c in self.index.panel.channels], np.float32)
        peak = crops.max(axis=(2, 3))
        above = past_stated_top(peak, stated)
        self.over += int(above.any(axis=1).sum())
        if len(self.over_crops) < 3:
            self.over_crops += (start + np.flatnonzero(above.any(axis=1))[:3]).tolist()
        self.over_in.update(np.flatnonzero(above.any(axis=0)).tolist())
        # Saturated: at the stated top, or at a camera's own top under it (12-bit counts
        # stated 0-65535), over more of a crop than a frame may be before it is said.
        top = clipped_tops(peak, stated).astype(np.float32)
        at_top = (crops >= (top * np.float32(1 - RESAMPLING_ROUNDING))[:, :, None, None]) \
            .mean(axis=(2, 3)) > SATURATED_SHARE
        self.saturated += int(at_top.any(axis=1).sum())
        if len(self.saturated_crops) < 3:
            self.saturated_crops += (start + np.flatnonzero(at_top.any(axis=1))[:3]).tolist()
        self.saturated_in.update(np.flatnonzero(at_top.any(axis=0)).tolist())

    def refusal(self, errors: list[InputError]) -> InputError | None:
        """The one error for the crops that cannot be read (``errors``) or are blank: each
        named (up to ``BAD_CROPS_NAMED``), with the count; a single one keeps its own error;
        None when every crop is usable."""
        index = self.index
        blank = [InputError(f"{BLANK}: {LEAVE_OUT}", index.paths[i]) for i in self.blank] + \
            [InputError(f"{DEAD.format(', '.join(names))}: {LEAVE_OUT}", index.paths[i])
             for i, names in self.dead]
        if len(errors) + len(blank) == 1:
            return (errors + blank)[0]
        if not errors and not blank:
            return InputError(self._frames(), index.root) \
                if len(self.frame_like) == len(index) else None
        bad = errors + [InputError(BLANK, index.paths[i]) for i in self.blank] + \
            [InputError(DEAD.format(", ".join(names)), index.paths[i]) for i, names in self.dead]
        how = "".join(f"; {n} {what}" for n, what in (
            (len(self.blank), "blank crop(s) (every channel 0)"),
            (len(self.dead), "crop(s) with a channel of one value throughout")) if n)
        how += ": delete them or their manifest.csv lines" if blank else ""
        return InputError(f"{len(bad)} of {len(index)} crops cannot be "
                          f"{'used' if blank else 'read'}" + how + ": " + _by_reason(bad),
                          index.root)

    def order_refusal(self) -> InputError | None:
        """Crops that name their channels in another order than panel.json beside crops that
        name none, which are read in panel.json's order: one of the two is read wrong (20 of
        40 crops had their DAPI and CK swapped, said only as "the file's names are read")."""
        kinds = list(self.orders.values())
        if "another order" not in kinds or "unnamed" not in kinds:
            return None
        unnamed = next(p for p, kind in self.orders.items() if kind == "unnamed")
        return InputError(
            f"{kinds.count('another order')} crop(s) name their channels in another order than "
            f"panel.json ({', '.join(self.panel.names)}), and {kinds.count('unnamed')} store no "
            f"names, which would be read in panel.json's order (e.g. {unnamed.name}): one of "
            "the two is read wrong; state the files' order in panel.json, or keep the two "
            "kinds in folders of their own", self.index.root)

    def _frames(self, some: bool = False) -> str:
        """What is said of crops the size of a scanner's field (refused when every crop is:
        the model reads the centre of each, and 4 frames read so got one call each, cluster 1
        and debris 3, exit 0); ``some``: only some are (a warning)."""
        index, first = self.index, self.frame_like[0]
        return (f"{len(self.frame_like)} of {len(index)} images are a scanner's field, not a "
                f"cell's crop (e.g. {shown_in(index.paths[first], index.root)}: its shorter "
                f"side spans over {FRAME_LIKE_UM:g} um at {self._fixed_pixel_um:g} um/px, and the "
                "model reads one cell's field at the centre of each image). "
                + ("Leave them out of the crop folder, or give" if some else "Give")
                + " a scan's frames as a cartridge: one TIFF a frame named r<row>c<col>.tif "
                "(or frame<n>.tif) beside a cartridge.json and panel.json (docs/formats.md)")

    def past_range(self) -> str:
        """What the crops past their channels' stated range are (empty when none): how many,
        the channels and ranges they pass, and the panel.json line that states a 16-bit
        camera's range."""
        if not self.over:
            return ""
        over = {k: self.index.panel.channels[k] for k in self.over_in}
        named = ", ".join(shown_in(self.index.paths[i], self.index.root)
                          for i in self.over_crops[:3])
        return (f"{self.over} of {len(self.index)} crops hold values above their channels' "
                "stated range (" + ", ".join(f"{over[k].name} {over[k].value_range[1]:g}"
                                             for k in sorted(over)) +
                f"; panel.json's value_range), e.g. {named}")

    def _rescaled(self) -> str:
        """What is said of float crops holding only fractions of their channels' range."""
        named = ", ".join(shown_in(self.index.paths[i], self.index.root)
                          for i in self.rescaled[:3])
        return (f"{len(self.rescaled)} of {len(self.index)} crops hold only fractions far below "
                "their channels' range: rescaled (e.g. to 0-1)? ctcnet reads raw counts, and "
                f"such cells read as faint specks (called debris); e.g. {named}")

    def fitting_refusal(self) -> InputError | None:
        """The error a command that fits a model from the crops (train, finetune, a
        recalibration) gives, or None: for crops past their stated range (the guard's
        readings it would fit, CK's leak into the exclusion markers and its reference, read
        those pixels as saturated, and the model would carry them), and for crops rescaled to
        fractions (a fine-tune on crops divided by 4095 was written, its held-out macro-F1
        0.11: it learns faint specks as cells and calls camera counts wrong). None where the
        crops are not read to fit a model."""
        if not self.fitting:
            return None
        if self.over:
            return InputError(f"{self.past_range()}: a model fitted from them would carry "
                              "marker readings that take their pixels for saturated. "
                              + self._state_range(), self.index.root)
        if self.rescaled:
            return InputError(f"{self._rescaled()}. A model fitted from them would learn the "
                              "rescaled values and misread a camera's counts: export the "
                              "camera's counts, or multiply the crops back by the range they "
                              "were divided by", self.index.root)
        return None

    def _state_range(self) -> str:
        return ("A camera writing 16-bit values (or 12-bit counts stored x16, to 65520) is read "
                'as such once panel.json states its range for every channel ("bit_depth": 16; '
                "one channel stored x16 beside the others' 12 bits is divided by 16 first: the "
                "guard weighs one channel's counts against another's); "
                "crops past a range that is the camera's were changed after it (a "
                "flat-field correction, a rescale): leave those out, or export them as the "
                "camera's counts")

    def say(self) -> None:
        """Log what the read noticed, one warning per kind for the whole set."""
        index, n = self.index, len(self.index)
        if self.over:
            log.warning("crop dataset %s: %s: the marker guard reads such pixels as saturated, "
                        "so its flags and the review list are not those of the counts. %s",
                        index.root, self.past_range(), self._state_range())
        if self.saturated:
            log.warning("crop dataset %s: %d of %d crops are saturated in %s over more than "
                        "%.0f%% of their pixels (at the top of what the camera records: "
                        "overexposed, or glare?): their markers' readings, and the calls "
                        "and checks made of them, are not to be trusted without a look; e.g. "
                        "%s", index.root, self.saturated, n,
                        ", ".join(index.panel.channels[k].name
                                  for k in sorted(self.saturated_in)), 100 * SATURATED_SHARE,
                        ", ".join(shown_in(index.paths[i], index.root)
                                  for i in self.saturated_crops[:3]))
        if self.rescaled:
            log.warning("crop dataset %s: %s", index.root, self._rescaled())
        if self.subtracted:
            log.warning("crop dataset %s: %d of %d crops have their %s; e.g. %s", index.root,
                        len(self.subtracted), n, subtracted_note(
                            [self.panel.names[k] for k in sorted(self.subtracted_in)]),
                        ", ".join(shown_in(index.paths[i], index.root)
                                  for i in self.subtracted[:3]))
        if self.eight_bit:
            log.warning("crop dataset %s: %d of %d crops are 8-bit (256 levels) where a scan's "
                        "counts are read: dim markers fall between the levels and are lost or "
                        "read as negative; export the crops at the camera's depth (12 or 16 "
                        "bits) where the scanner can; e.g. %s%s", index.root, self.eight_bit, n,
                        ", ".join(shown_in(index.paths[i], index.root)
                                  for i in self.eight_bit_crops[:3]),
                        depth_by_class(index.labels, self.eight_bit_crops))
        if self.frame_like:  # (all of them: refused)
            log.warning("crop dataset %s: %s", index.root, self._frames(some=True))
        warn_of_copies([g for g in self._first_of.values() if len(g) > 1], index)
        warn_of_folder_labels(index)
        warn_of_marks(index.root, self.marks, n)
        order = self.planes.warning() if self.planes is not None else None
        if order:
            log.warning("crop dataset %s: %s", index.root, order)
        for line in self.scan_signs.problems() if self.scan_signs is not None else ():
            log.warning("crop dataset %s: %s", index.root, line)
        unjudged = self.scan_signs.order_unjudged() \
            if self.fitting and self.scan_signs is not None else None
        if unjudged:
            log.warning("crop dataset %s: %s", index.root, unjudged)
        swapped = self.marker_labels.warning() if self.marker_labels is not None else None
        if swapped:
            # Other causes this set shows: glare lights a marker where it is not, 8 bits lose
            # a dim one.
            other = [f"the glare of the {self.saturated} crops saturated, which lights a "
                     "marker where it is not"] if self.saturated else []
            other += [f"the 8-bit levels of the {self.eight_bit} 8-bit crops, which lose a dim "
                      "marker"] if self.eight_bit else []
            log.warning("crop dataset %s: %s%s", index.root, swapped,
                        f". Or it is {', or '.join(other)}" if other else "")


def depth_by_class(labels, eight_bit: list[int]) -> str:
    """Where the 8-bit crops of a labelled set are (nearly) all of some classes and (nearly)
    none of the others, a clause saying so: the depth then tells the class, and a model
    learns it in place of the markers (exports from two sources merged, one class from each);
    "" otherwise."""
    labels = list(labels or [])
    if not labels or not eight_bit or not all(labels):
        return ""
    chosen = np.zeros(len(labels), bool)
    chosen[eight_bit] = True
    share = {c: chosen[[lab == c for lab in labels]].mean() for c in sorted(set(labels))}
    most = [c for c, f in share.items() if f >= 0.9]
    if not most or len(most) == len(share) or any(0.1 < f < 0.9 for f in share.values()):
        return ""
    return (f"; they are the {', '.join(most)} crops and (nearly) none of the others: the "
            "depth tells the class, which a model learns in place of the markers; bring "
            "every class to one depth")


def warn_of_folder_labels(index: CropIndex) -> None:
    """Say which crops a manifest labels otherwise than the class folder they sit in
    (``wbc/cell_7.tif`` labelled ``ctc``): one of the two is a slip, and a model fitted from
    them learnt the manifest's without a word."""
    classes = set(index.labels)
    other = []
    for path, label in zip(index.paths, index.labels):
        name = name_in_folder(path, index.root)
        if name.is_absolute():  # (a manifest's path outside the folder is refused elsewhere)
            continue
        if name.parts[0] != label and name.parts[0] in classes:
            other.append(f"{name} ({label})")
    if other:
        log.warning("%s: %d crops are labelled otherwise than the class folder they sit in, "
                    "one of the two a slip (the manifest's label is read): %s%s", index.root,
                    len(other), "; ".join(other[:3]), " ..." if len(other) > 3 else "")


def warn_of_copies(groups: list[list[int]], index: CropIndex) -> None:
    """Say which crops are pixel-identical copies of another (``groups``: crop numbers of
    one image each): a copy weighs twice in training and in every figure, may sit on both
    sides of a split, and a copy filed under another class means one of its labels is wrong.
    Those under another class are named first, then those across the manifest's splits or
    under two sample ids (a training crop scored as held out), then the rest."""
    if not groups:
        return
    relabelled = [g for g in groups if len({index.labels[i] for i in g}) > 1]
    across = [g for g in groups if g not in relabelled and (
        len({index.splits[i].strip().lower() for i in g}) > 1 or
        len({index.sample_ids[i] for i in g}) > 1)]
    rest = [g for g in groups if g not in relabelled and g not in across]
    ordered = relabelled + across + rest
    shown = ordered[:3]
    named = "; ".join(" = ".join(
        f"{shown_in(index.paths[i], index.root)} ({index.labels[i]}"
        + (f", {index.splits[i]}" if index.splits[i] else "") + ")" for i in g) for g in shown)
    said = [f"{sum(index.labels[i] != index.labels[g[0]] for g in groups for i in g)} of them "
            "under another class (one label is wrong)"] if relabelled else []
    said += [f"{sum(len(g) - 1 for g in across)} across the manifest's splits or sample ids "
             "(a copy trained on and held out: its figures in-sample)"] if across else []
    log.warning("%s: %d crops are pixel-identical copies of another%s: %s%s", index.root,
                sum(len(g) - 1 for g in groups), f", {'; '.join(said)}" if said else "",
                named, " ..." if len(ordered) > len(shown) else "")


def _by_reason(errors: list[InputError]) -> str:
    """The crops' errors, those of one reason together (a set of the wrong panel fails every
    crop alike: one line with the count, not each path saying the same again), up to
    ``BAD_CROPS_NAMED`` reasons and crops a reason: each file to mend or leave out named (six
    truncated files named by the first alone took six runs to find)."""
    paths: dict[str, list[str]] = {}
    for err in errors:
        text, prefix = str(err), f"{err.path}: " if err.path else ""
        paths.setdefault(text[len(prefix):] if prefix and text.startswith(prefix) else text,
                         []).append(err.path or "")
    told = [f"{p[0]}: {reason}" if len(p) == 1 else
            f"{reason} ({len(p)} crops: {', '.join(p[:BAD_CROPS_NAMED])}"
            f"{', ...' if len(p) > BAD_CROPS_NAMED else ''})"
            for reason, p in list(paths.items())[:BAD_CROPS_NAMED]]
    rest = sum(len(p) for p in list(paths.values())[BAD_CROPS_NAMED:])
    return "; ".join(told) + (f"; and {rest} more" if rest else "")


def named_in_utf8(files: list, folder) -> list:
    """``files``, refusing by name the first whose path under ``folder`` is not UTF-8 (bytes
    another system's encoding wrote): its name cannot go into the predictions table, and the
    run failed writing it after classifying every crop."""
    for path in files:
        try:
            str(path.relative_to(folder)).encode("utf-8")
        except UnicodeEncodeError:
            raise InputError(f"file name {ascii(bytes(path.relative_to(folder)))} is not "
                             "valid UTF-8: rename it (its name goes into the predictions "
                             "table)", folder) from None
    return files
