"""What a scan's files and metadata say of its layout that reading it would otherwise get
wrong without a word: channel files numbered past panel.json's channels, frames stated to
overlap, and ``frame<k>`` files numbered from 1. Each is a problem of the sample (the run goes
on, its status ``partial``), said in words that name the files and what to do. Where
cartridge.json's record of the frames' size or grid is not theirs, a warning
(:func:`stated_layout_notes`).

Found by bringing another scanner's per-channel files to ctcnet: a sixth file (vimentin) among
``_c0`` ... ``_c5`` under a five-channel panel.json was dropped and every later channel read
under another's name (7 CTCs counted against 12); tiles cut with 15 % overlap counted 27 CTCs
against 21; frames numbered ``frame1`` ... ``frame4`` sat one place later each, the last in a
row the cartridge does not have.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Real


def layout_problems(parts: Sequence, frames: Sequence, info: dict, panel,
                    expected: int | None) -> list[str]:
    """The layout problems of a cartridge's frame files (``parts``: the sources' claims, each
    with its ``channel``; ``frames``: their frames, ``index`` the number a ``frame<k>`` name
    gives, -1 for one named by its row and column), its cartridge.json (``info``) and its
    ``panel``; ``expected``: the frames cartridge.json lists (None: not stated)."""
    return [p for p in (_channels_past_panel(parts, panel), _overlap(info),
                        _numbered_from_one(frames, expected)) if p]


# How the problem of channel files past panel.json's channels begins (the model choice leaves
# such a cartridge out: its panel.json is not its frames').
CHANNELS_PAST_PANEL = "channel files numbered past panel.json's"


def _channels_past_panel(parts: Sequence, panel) -> str | None:
    # Numbered files only (a file named by its marker names its channel: one the panel does
    # not name is said where the names are matched).
    past = sorted({c for c in (part.channel for part in parts)
                   if isinstance(c, int) and c >= panel.num_channels})
    if not past:
        return None
    example = next(part.path.name for part in parts if part.channel == past[0])
    numbered = {part.channel for part in parts if isinstance(part.channel, int)}
    if numbered == set(range(1, panel.num_channels + 1)):  # _c1 ... _cN: counted from 1
        return (f"channel files are numbered _c1 to _c{panel.num_channels} (e.g. {example}) "
                f"for panel.json's {panel.num_channels} channels: they count from _c0 in "
                "panel.json's order, so each is read as the channel after its own and the "
                "last is not read; rename them from _c0")
    return (f"{CHANNELS_PAST_PANEL} {panel.num_channels} channels "
            f"({', '.join(f'_c{c}' for c in past)}; e.g. {example}) are not read: channel files "
            "are numbered from _c0 in panel.json's order, so a marker panel.json does not name "
            "(vimentin?) among them puts every later channel under another's name; name every "
            "channel the files hold in panel.json (the model reads those it knows)")


def _overlap(info: dict) -> str | None:
    stated = {key: value for key, value in info.items() if "overlap" in str(key).lower()
              and isinstance(value, Real) and not isinstance(value, bool) and value > 0}
    if not stated:
        return None
    said = ", ".join(f"{key} {value:g}" for key, value in stated.items())
    return (f"cartridge.json states the frames overlap ({said}): ctcnet reads frames as tiles "
            "that do not overlap, so a cell in an overlap is detected and counted in each frame "
            "it lies in (the counts are high); give the frames cut without overlap, or with "
            "the overlap cropped off each")


def _numbered_from_one(frames: Sequence, expected: int | None) -> str | None:
    numbers = sorted(f.index for f in frames if f.index >= 0)
    if not numbers:
        return None
    # From 1, not 0: with the frames listed, the last is past them (a frame0 lost from a
    # truncated scan leaves the last within them, said as missing elsewhere).
    if numbers[0] != 1 or (expected is not None and numbers[-1] < expected):
        return None
    return (f"frame files are numbered frame{numbers[0]} to frame{numbers[-1]}"
            + (f" against {expected} frames listed" if expected is not None else "") +
            ": frame<k> counts from frame0 in scan order, so numbered from 1 each frame sits "
            "one place later (its row and column in events.csv, the review and the exports "
            "are off); rename them from frame0")


def _named_from_one(frames: Sequence) -> bool:
    """Frames named from r01c01 (a scanner counting from 1): none in row 0 nor column 0."""
    return bool(frames) and min(f.row for f in frames) >= 1 and min(f.col for f in frames) >= 1


def frames_outside_grid(frames: Sequence, info: dict) -> tuple[list, str | None]:
    """(the frames within cartridge.json's grid of ``rows`` x ``columns``, the problem naming
    those outside it). A frame outside the stated grid is no frame of that scan (another
    scan's file copied in, a stray export): read, its events were counted into this sample's
    result, over this sample's blood volume (a CTC-rich scan's frame beside a 3-frame
    cartridge counted 8 CTCs where it holds 1). So it is not read, and said. Only where the
    grid is the scan's whole (``num_frames`` not stated, or ``rows`` x ``columns``): a grid
    that ``num_frames`` contradicts is a record in doubt, and where no frame lies in row 0 or
    column 0 the frames are this scan's named from r01c01, one place off
    (:func:`stated_layout_notes` says both)."""
    rows, columns, listed = info.get("rows"), info.get("columns"), info.get("num_frames")
    if not (isinstance(rows, int) and isinstance(columns, int)) or not frames or \
            (listed is not None and listed != rows * columns):
        return list(frames), None
    if _named_from_one(frames):
        return list(frames), None
    # Named by its row and column (``index`` -1): a frame<k> file's place follows from its
    # number, which _numbered_from_one checks.
    outside = [f for f in frames if f.index < 0 and (f.row >= rows or f.col >= columns)]
    if not outside:
        return list(frames), None
    named = ", ".join(f.frame_id for f in outside[:10]) + \
        (f" and {len(outside) - 10} more" if len(outside) > 10 else "")
    return [f for f in frames if f not in outside], (
        f"cartridge.json states a grid of {rows} x {columns} frames, and {len(outside)} "
        f"frame(s) lie outside it ({named}): not read (another scan's files, or copies, in "
        "the folder?); if they are this scan's, correct cartridge.json's rows, columns and "
        "num_frames and run again")


def stated_layout_notes(info: dict, frames: Sequence, shape: tuple[int, int] | None,
                        root) -> None:
    """Warn (once) where cartridge.json's record of the layout is not the frames': a frame
    size other than theirs (height and width swapped, another scanner's record), frames
    outside its grid of rows and columns. A record only (the frames are read as they are),
    but a hand-written cartridge.json wrong there may be wrong where it counts too."""
    from ctcnet.io.cartridge_info import say_once

    stated = (info.get("frame_height"), info.get("frame_width"))
    if shape is not None and all(isinstance(v, int) for v in stated) and \
            tuple(stated) != tuple(shape):
        swapped = " (height and width swapped?)" if tuple(stated) == tuple(shape)[::-1] else ""
        say_once(root, f"cartridge.json states frames of {stated[0]} x {stated[1]} px (height "
                       f"x width), the frames are {shape[0]} x {shape[1]}{swapped}: check its "
                       "other values too")
    rows, columns = info.get("rows"), info.get("columns")
    if isinstance(rows, int) and isinstance(columns, int):
        outside = [f.frame_id for f in frames if f.row >= rows or f.col >= columns]
        from_one = _named_from_one(frames)
        if outside:
            say_once(root, f"cartridge.json states a grid of {rows} x {columns} frames, but "
                           f"{len(outside)} lie outside it ({', '.join(outside[:5])}): check "
                           "its rows, columns and num_frames" + (
                               "; no frame lies in row 0 or column 0: named from r01c01? Rows "
                               "and columns count from r00c00, so each frame sits one place "
                               "off (its row and column in events.csv, the review and the "
                               "exports): rename them from r00c00" if from_one else ""))
