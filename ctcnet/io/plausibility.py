"""What a cartridge's metadata claim, checked against what scans and blood tubes can be: a
pixel size no scan has or a volume more than a person's blood is refused; a volume more than
a tube holds, or under a drop, and a pixel size or a list of channels in cartridge.json other
than the one read are the sample's problems (partial, saying so)."""

from __future__ import annotations

from ctcnet.errors import InputError

# Scans that image CTCs run from ~0.1 um per pixel (a 63x objective) to ~1.3 um (a 4x-5x or
# binned 10x scan; CellSearch 0.64, other platforms 0.3-0.7). Beyond these bounds a 4 um CTC is
# under 2 pixels or over 80 pixels across: a unit slip (nm, px per um) or a wrong panel.json,
# which would size every event wrongly. Wider than the model crop's own range on purpose: a
# scan is resampled to the model's pixel size.
SCAN_PIXEL_SIZE_UM = (0.05, 2.0)
# A CellSearch frame (H, W px): what the simulator draws and the benchmark measures by default.
CELLSEARCH_FRAME_SHAPE = (1036, 1384)
# Detected events per mm^2 of frame over which a sample is a problem (partial,
# ctcnet.inference.sample_checks): detection merges and misses cells in crowds. On simulated
# scans (seed 11, 4 frames a density) leukocyte recall was 0.97, 0.96, 0.92, 0.89 and 0.77 at
# about 500, 1,000, 1,700, 2,500 and 4,100 drawn cells per mm^2 (CTCs 1.0 up to 2,500, 0.86
# at 4,100); the dense test family reads about 1,400.
CROWDED_PER_MM2 = 2000.0

# One blood tube holds at most 10 mL (CellSave tubes; CellSearch processes 7.5 mL of one).
# More is possible (tubes pooled, a leukapheresis aliquot), so the run goes on, partial and
# saying so. More than a person's whole blood (~5 L; 6 L leaves a margin) is a typo: refused.
TUBE_VOLUME_ML = 10.0
WHOLE_BLOOD_ML = 6000.0
# Under a drop of blood (50 uL; a mouse's sample is 0.1-1 mL) is a unit slip (litres: 0.0075
# for 7.5 mL made a cartridge's 15 CTCs 2,000 per 7.5 mL): the run goes on, partial and
# saying so.
DROP_OF_BLOOD_ML = 0.05
# cartridge.json keys under which a scanner's or a lab's record lists the scan's channels. The
# frames are read by panel.json's; a list here that names others, or the same in another
# order, says one of the two is wrong (it was dropped without a word, and a swap in
# panel.json with it).
CHANNEL_LIST_KEYS = ("channels", "channel_names", "channel_order", "markers")


def events_per_mm2(events: int, frames: int, frame_shape, pixel_size_um: float | None
                   ) -> float | None:
    """Events per mm^2 of ``frames`` frames of ``frame_shape`` (None: no frame, no size
    known): a sample's detected ones (:data:`CROWDED_PER_MM2`), or a simulated scan's drawn."""
    if not frames or not frame_shape or not pixel_size_um:
        return None
    height, width = frame_shape
    area_mm2 = height * width * (float(pixel_size_um) / 1000.0) ** 2
    return events / (frames * area_mm2) if area_mm2 > 0 else None


def plausibility_problems(cartridge) -> list[str]:
    """What a cartridge's metadata claim, checked against what scans and blood tubes can be.

    Refused (InputError): a pixel size outside :data:`SCAN_PIXEL_SIZE_UM` (no reading of such a
    scan gives right sizes, so no count from it stands) and a blood volume over
    :data:`WHOLE_BLOOD_ML`. Returned as problems (the run goes on, status ``partial``): a blood
    volume over :data:`TUBE_VOLUME_ML`, which pooled tubes can explain, or under
    :data:`DROP_OF_BLOOD_ML`, and a pixel size in
    cartridge.json other than the one the frames are read at (panel.json's or the files'):
    counts per 7.5 mL, cell sizes and cropping follow the one read, so a person should know
    which is right.
    """
    lo, hi = SCAN_PIXEL_SIZE_UM
    px = float(cartridge.panel.pixel_size_um)
    if not lo <= px <= hi:
        why = (f"coarser, a 12 um cell spans under {12 / hi:.0f} pixels, too few to read its "
               "markers: scan at a finer pixel size, or bin less" if px > hi else
               "a unit slip (nm for um)?")
        raise InputError(f"panel.json: pixel_size_um {px:g} is outside what ctcnet reads as a "
                         f"scan ({lo:g} to {hi:g} um per pixel; CellSearch: 0.64): {why}",
                         cartridge.root)
    volume = float(cartridge.blood_volume_ml)
    if volume > WHOLE_BLOOD_ML:
        raise InputError(f"cartridge.json: blood_volume_ml {volume:g} is more blood than a "
                         f"person has (over {WHOLE_BLOOD_ML:g} mL); a unit slip?",
                         cartridge.root)
    problems = []
    if volume < DROP_OF_BLOOD_ML:
        problems.append(f"cartridge.json: blood_volume_ml {volume:g} is less than a drop of "
                        f"blood ({DROP_OF_BLOOD_ML:g} mL); the per-7.5 mL figures divide by it: "
                        "check it (litres for millilitres?)")
    if volume > TUBE_VOLUME_ML:
        problems.append(f"cartridge.json: blood_volume_ml {volume:g} is more than one blood tube "
                        f"holds ({TUBE_VOLUME_ML:g} mL); the per-7.5 mL figures divide by it: "
                        "check it (pooled tubes?)")
    stated = cartridge.info.get("pixel_size_um")
    if stated is not None and abs(float(stated) - px) > 0.01 * px:
        problems.append(f"cartridge.json states pixel_size_um {float(stated):g}, but the frames "
                        f"are read at {px:g} (panel.json or the files' metadata): check which "
                        "is right")
    return problems + channel_list_problems(cartridge.info, cartridge.panel.names,
                                            by_file_name=_read_by_file_names(cartridge))


def _read_by_file_names(cartridge) -> bool:
    """Whether the cartridge's planes are files named by their markers (r00c00_CK.tif): read
    by name, in whatever order panel.json lists them."""
    from pathlib import Path

    from ctcnet.io.sources.named import frame_stem

    files = cartridge.frames[0].files if cartridge.frames else ()
    return len(files) > 1 and all(isinstance(frame_stem(Path(f))[1], str) for f in files)


def channel_list_problems(info: dict, names: list[str], by_file_name: bool = False
                          ) -> list[str]:
    """A channel list cartridge.json states (:data:`CHANNEL_LIST_KEYS`: names, or entries with
    a ``name``) that puts another known marker (or another of panel.json's channels) where
    ``names`` (panel.json's, by which the frames are read) has one, compared as the one
    channel check compares names (``CD45-APC`` is CD45): the problem to say. None where no
    such list is stated, or it has another length or names the scanner's own (Ch1, Ch2: no
    marker to compare). ``by_file_name``: the planes are files named by their markers, read
    by name: the lists' orders do not matter, only the markers they name (a correct sample
    was made partial, its every count called in doubt)."""
    from ctcnet.io.panel import marker_key, marker_role

    ours = [marker_key(n) for n in names]  # (as the one channel check compares names)
    for key_name in CHANNEL_LIST_KEYS:
        stated = info.get(key_name)
        listed = [e.get("name") if isinstance(e, dict) else e
                  for e in (stated if isinstance(stated, list) else [])]
        if len(listed) != len(names) or not all(isinstance(n, str) for n in listed):
            continue
        if by_file_name:  # (the same markers in another order: compared as sets)
            listed_keys = [marker_key(n) for n in listed]
            order = sorted(range(len(listed)), key=lambda i: listed_keys[i])
            listed, ours_now = [listed[i] for i in order], sorted(ours)
        else:
            ours_now = ours
        if any(marker_key(n) != mine and (marker_role(n) != "unknown" or marker_key(n) in ours)
               for n, mine in zip(listed, ours_now)):
            return [f"cartridge.json lists the channels {listed} ({key_name}), but the frames "
                    f"are read as panel.json's {list(names)}: check which is right; where "
                    "panel.json is wrong, so is every count (its channel order corrected, run "
                    "the sample again alone with --overwrite)"]
    return []
