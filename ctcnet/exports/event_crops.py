"""Crops of chosen events, cut again from a cartridge's original frames.

Predict keeps crops only for the gallery (reported calls and flagged events, capped per
frame). The review page's quality-control tiles and the reviewed training set need the crops
of any event: they are cut here exactly as predict cut them (``extract_crops`` at the
model's crop size and pixel size), one frame read per frame that holds a wanted event.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from ctcnet.core.file_modes import make_folder
from ctcnet.core.paths import absolute, as_listed, typed_id
from ctcnet.detect.crop_writing import finish_crop_dataset, write_crop_files
from ctcnet.detect.cropping import extract_crops
from ctcnet.errors import InputError
from ctcnet.exports.batch_checks import say_unfinished
from ctcnet.exports.sample_review import reviewed_rates
from ctcnet.inference.summary import RunSummary
from ctcnet.io.cartridge_info import PATIENT_KEY
from ctcnet.io.digests import frame_change
from ctcnet.io.panel import Panel
from ctcnet.io.scan import Cartridge, is_cartridge, open_cartridge
from ctcnet.io.spilled import size_text
from ctcnet.review.decision_journal import REVIEW_FILE
from ctcnet.review.decisions import (
    REJECTED,
    RunEvents,
    find_samples,
    load_decisions,
    load_sample,
    reviewed_labels,
    warn_set_aside,
)
from ctcnet.review.signoff import CURRENT, signoff_in
from ctcnet.review.signoff_words import signoff_text

log = logging.getLogger(__name__)


def check_scans_for(samples: dict[str, Path], scans: str | Path | None,
                    results: str | Path, every: bool = False) -> None:
    """Check ``--scans`` against the ``samples`` (name: results folder) before any is read:
    refuse a path that is not there, one cartridge for several samples (every other sample's
    frames would be read from it, told apart only as "changed"), and a folder of cartridges
    holding none of theirs (a wrong folder, which every tile or crop would otherwise find
    wanting, one at a time); warn of the samples whose scans it lacks, or with ``every``
    (a cut that needs them all) refuse. A folder of cartridges holds each by the name of the
    folder predict read (:func:`open_scanned_cartridge`)."""
    if scans is None:
        return
    scans = Path(scans)
    if not scans.exists():
        raise InputError("--scans: not found", scans)
    if scans.is_file() or is_cartridge(scans, unreadable=False):  # a container, or frames
        if len(samples) > 1:
            raise InputError("--scans names one cartridge; the results hold several samples: "
                             "pass the folder holding their cartridges (each found by the name "
                             "of the folder predict read it from), or one sample's results "
                             "folder", results)
        return
    wanted = {}
    for name, folder in samples.items():
        try:
            wanted[name] = Path(RunSummary.read(folder).input).name
        except (InputError, OSError, KeyError, TypeError, ValueError):
            continue  # said where the sample is read
    lacking = {name: scan for name, scan in wanted.items()
               if not as_listed(scans / scan).exists()}
    if wanted and (len(lacking) == len(wanted) or every and lacking):
        looked = ", ".join(sorted(set(lacking.values()))[:5])
        which = "none of these samples' scans" if len(lacking) == len(wanted) else \
            f"no scan of {len(lacking)} of {len(wanted)} samples ({', '.join(lacking)})"
        raise InputError(f"--scans holds {which} (looked for {looked}"
                         f"{', ...' if len(set(lacking.values())) > 5 else ''}: the folders "
                         "predict read, by name): pass the folder that holds them", scans)
    if lacking:
        log.warning("--scans %s lacks the scans of %d of %d samples (%s): their tiles and "
                    "crops not kept with the results cannot be cut", scans, len(lacking),
                    len(wanted), ", ".join(f"{n} ({s})" for n, s in list(lacking.items())[:5]))


def open_scanned_cartridge(summary: RunSummary, scans: str | Path | None = None,
                           every_channel: bool = False) -> Cartridge:
    """The cartridge a predict run read: the path its summary records, or ``scans``, a
    cartridge or a folder of cartridges (the batch's scans moved together) holding one by the
    name of the folder predict read. Its channels are the model's, as the run read them, or
    with ``every_channel`` all the scan's, in its own order (those the model did not read
    too: a lab's vimentin, for a model of its own)."""
    root = Path(scans) if scans is not None else Path(summary.input)
    if scans is not None and root.is_dir() and not is_cartridge(root, unreadable=False):
        inside = as_listed(root / Path(summary.input).name)  # (its accents decomposed)
        if not inside.exists():
            raise InputError(f"neither the scan of sample {summary.sample_id} nor a folder of "
                             f"cartridges holding it by its name ({Path(summary.input).name}, "
                             "the folder predict read)", root)
        root = inside
    # A folder of frames, or a single microscopy container (OME-TIFF, CZI, ...) read as one.
    if not root.exists():
        # A summary of an older ctcnet recorded the path as given, relative to the folder
        # predict ran in: from anywhere else it cannot be found.
        relative = " (recorded relative to the folder predict ran in)" \
            if scans is None and not root.is_absolute() else ""
        raise InputError(f"the scan of sample {summary.sample_id} is not here any more"
                         f"{relative} (moved? pass its folder with --scans)", root)
    if every_channel:
        return open_cartridge(root)
    # The run saw the cartridge's channels in the model's order, by name: read them so again.
    return open_cartridge(root).conform(Panel.from_dict(summary.panel))


def read_as_predicted(cartridge: Cartridge, frame, records: dict | None,
                      consequence: str = "") -> np.ndarray:
    """The pixels of ``frame``, refused (InputError) where they are not those predict read
    (``records``: its summary's ``frame_digests``): what is cut from them would show cells
    that were never called, under the calls made on the old ones (``consequence`` says so,
    after the change)."""
    pixels = cartridge.read(frame)
    change = frame_change(frame.files, (records or {}).get(frame.frame_id), pixels)
    if change is not None:
        raise InputError(f"frame {frame.frame_id} changed since predict read it ({change})"
                         f"{consequence}", frame.files[0])
    return pixels


def sealed_as_written(folder: Path) -> None:
    """Refuse a sample whose summary.json was edited since ctcnet wrote it (a seal broken:
    :func:`~ctcnet.inference.figures_seal.refuse_edited_summary`) before its exports or
    crops carry the edit on as ctcnet's."""
    from ctcnet.inference.figures_seal import refuse_edited_summary

    try:
        data = json.loads((Path(folder) / "summary.json").read_bytes())
    except (OSError, ValueError) as err:
        raise InputError(f"cannot read summary.json: {err}", folder) from None
    if isinstance(data, dict):
        refuse_edited_summary(data, folder)


def cut_event_crops(cartridge: Cartridge, events: pd.DataFrame, crop_size: int,
                    model_pixel_um: float, read=None) -> np.ndarray:
    """(N, C, crop_size, crop_size) float32 crops of ``events`` (rows of events.parquet), in
    the table's order. Events of a frame that cannot be read any more raise InputError.
    ``read(frame)``: how a frame is read (the review server keeps the last few); by default
    ``cartridge.read``."""
    out = np.zeros((len(events), cartridge.panel.num_channels, crop_size, crop_size),
                   np.float32)
    for rows, crops in frame_event_crops(cartridge, events, crop_size, model_pixel_um, read):
        out[rows] = crops
    log.debug("cut %d crops from %s", len(events), cartridge.root)
    return out


def frame_event_crops(cartridge: Cartridge, events: pd.DataFrame, crop_size: int,
                      model_pixel_um: float, read=None):
    """:func:`cut_event_crops` a frame at a time: (positions in ``events``, their crops) per
    frame that holds a wanted event, so a whole sample's crops are never held at once."""
    # By the frame's name, not its index in the listing predict made: a frame added to the
    # folder since (or lost from it) moves every index after it, and every crop was cut from
    # the frame before its own, unsaid (the frames' digests are each checked by name).
    if "frame_id" in events:
        frames = {f.frame_id: f for f in cartridge.frames}
        keys = events["frame_id"].astype(str).to_numpy()
    else:  # (a table of an older ctcnet without the names)
        frames = {f.index: f for f in cartridge.frames}
        keys = events["frame"].to_numpy()
    positions = np.arange(len(events))
    for key, rows in pd.Series(positions).groupby(keys):
        frame = frames.get(key)
        if frame is None:
            raise InputError(f"frame {key} is not in the cartridge any more", cartridge.root)
        pixels = (read or cartridge.read)(frame)
        chosen = events.iloc[rows.to_numpy()]
        crops, _ = extract_crops(pixels, chosen["x"].to_numpy(), chosen["y"].to_numpy(),
                                 crop_size, model_pixel_um, cartridge.panel.pixel_size_um)
        yield rows.to_numpy(), crops


def reviewed_signoff(name: str, folder: Path, run: RunEvents, matched,
                     per_7_5_ml: dict | None = None, model_sha256: str | None = None,
                     network_sha256: str | None = None) -> dict | None:
    """The sample's sign-off for the decisions cut (:mod:`ctcnet.review.signoff`), recorded
    with its source in dataset.json; a warning when there is none, or when the decisions
    (or the reviewed counts per 7.5 mL, ``per_7_5_ml``, as the events and decisions give them)
    changed since it."""
    _, record = signoff_in(folder, run, matched, per_7_5_ml, model_sha256, network_sha256)
    if record is None and not matched.n_decisions:
        log.warning("%s: no review decisions; nothing of it is cut", name)
    elif record is None:
        log.warning("%s: the review is not signed off (the review page's \"sign off\"); its "
                    "decisions are cut as they are", name)
    else:  # dataset.json keeps it per source; a sign-off that no longer holds is a warning
        log.log(logging.INFO if record["status"] == CURRENT else logging.WARNING, "%s: %s",
                name, signoff_text(record))
    return record


def write_event_dataset(results: str | Path, out: str | Path, reviewed: bool = True,
                        scans: str | Path | None = None, every_channel: bool = False) -> dict:
    """Cut a run's events into a labelled crop dataset (``write_crop_dataset`` layout).

    ``reviewed``: the confirmed and relabelled events of every sample's review.csv, labelled
    with the reviewer's call (rejected events have no class and are left out). Decisions are
    matched to the run now in the folder by run and position
    (:func:`ctcnet.review.decisions.match_decisions`); those that attach to no event (among
    them those made on another cartridge with the same sample id) are left out with a warning
    and counted per source (``unattached_decisions``). Otherwise every
    event, labelled with the model's call (pseudo-labels, e.g. to look at or to bootstrap).
    Crops are cut as the model saw them (its crop size and pixel size), kept as integers when
    the frame's counts survive unchanged (no resampling), and carry their sample id. Each
    frame's crops are written as they are cut (a sample of hundreds of thousands of events is
    never held whole), after a check, sample by sample, that the disk holds its crops.
    ``every_channel``: every channel of the scans, in their own order, not only the model's.
    Returns what ``dataset.json`` records: sources, counts, and per crop the sample and
    event.
    """
    samples = find_samples(results)
    # (a night's samples a run did not finish are left out, as an export leaves them: said)
    say_unfinished(Path(results), "to cut crops from")
    check_scans_for(samples, scans, results, every=True)
    # (with --reviewed, a sample nobody decided on gives no crop: its scan is not weighed)
    check_one_scale({name: folder for name, folder in samples.items()
                     if not reviewed or (folder / REVIEW_FILE).is_file()})
    labels, rows, sources, manifest, patients, undecided_signed = [], [], [], [], [], []
    panel = model = None
    out = Path(out)
    for name, folder in samples.items():
        events, summary = load_sample(folder)
        sealed_as_written(folder)
        unattached, signed, kinds = 0, None, {}
        if reviewed:
            run = RunEvents.of_sample(folder, events, summary)
            matched = load_decisions(folder, run)
            warn_set_aside(name, matched)
            signed = reviewed_signoff(name, folder, run, matched,
                                      reviewed_rates(folder, events, matched, summary),
                                      summary.model.sha256, summary.network_sha256)
            if signed is not None and signed.get("decided") and not matched.n_decisions:
                undecided_signed.append(name)
            unattached = len(matched.unattached)
            if unattached:
                log.warning("%s: %d decision(s) in review.csv count for no event of the run "
                            "in this folder (predict ran again?); left out: %s", name,
                            unattached, "; ".join(matched.unattached["reason"][:3]))
            decided = reviewed_labels(matched.decisions)
            kinds = decision_kinds(matched.decisions)
            chosen = events.set_index("event_id", drop=False).loc[decided["event_id"]]
            chosen_labels = decided["reviewer_call"].tolist()
            reviewers = decided["reviewer"].tolist()
            # The call each crop's event had when the reviewer decided it, beside its label: a
            # relabel is told from the file (a rerun of predict that calls the event as the
            # reviewer did has not made their relabel a confirmation).
            calls = decided["decided_call"].astype(str).tolist()
        else:
            chosen, chosen_labels = events, events["class"].tolist()
            reviewers = [""] * len(events)
            calls = chosen["class"].astype(str).tolist()
        if not len(chosen):
            log.info("%s: no %s events", name, "reviewed" if reviewed else "")
            continue
        cartridge = open_scanned_cartridge(summary, scans, every_channel)
        this_panel = cartridge.panel if every_channel else Panel.from_dict(summary.panel)
        if panel is None:
            panel, model = this_panel, summary.model
        else:
            panel.check_matches(this_panel, what=f"sample {name}")
            if (summary.model.crop_size, summary.model.pixel_size_um) != \
                    (model.crop_size, model.pixel_size_um):
                raise InputError("samples were predicted with models of other crop or pixel "
                                 "sizes; cut them into separate datasets", folder)
        sample_id = summary.sample_id or name
        # The patient cartridge.json names (serial draws): training keeps a patient's draws
        # on one side of its split.
        patient = typed_id((summary.cartridge_info or {}).get(PATIENT_KEY) or "")
        check_room(out, len(chosen), panel.num_channels, model.crop_size)
        at_model_scale = panel.with_pixel_size(model.pixel_size_um)
        ids, frame_ids = chosen["event_id"].to_numpy(), chosen["frame_id"].astype(str).to_numpy()
        xs, ys = chosen["x"].to_numpy(np.float64), chosen["y"].to_numpy(np.float64)
        for at, crops in frame_event_crops(cartridge, chosen, model.crop_size,
                                           model.pixel_size_um):
            written = write_crop_files(out, _as_counts(crops), [chosen_labels[i] for i in at],
                                       [sample_id] * len(at), at_model_scale,
                                       first=len(manifest))
            manifest += written
            patients += [patient] * len(written)
            # Each crop's file beside its event, in the order written (frame by frame): the
            # crop of event 93 is named by no event id, and a rerun numbers events anew, so
            # its frame and centre name the cell too.
            rows += [{"path": w[0], "sample_id": sample_id, "event_id": int(ids[i]),
                      "frame_id": frame_ids[i], "x": float(xs[i]), "y": float(ys[i]),
                      "label": chosen_labels[i], "model_call": calls[i],
                      "reviewer": reviewers[i]}
                     for w, i in zip(written, at)]
        labels += chosen_labels
        # Absolute, as outputs.md says: the set outlives the working folder it was cut in.
        sources.append({"sample_id": sample_id, "results": absolute(folder),
                        "scan": absolute(cartridge.root), "model": summary.model.path,
                        "crops": len(chosen), **({"unattached_decisions": unattached}
                                              if unattached else {}),
                        **({"decisions": kinds} if reviewed else {}),
                        **({"signoff": signed} if reviewed else {})})
    if not manifest:
        # A signed-off sample with no decision read: its journal went, not its review.
        raise InputError("no events to cut" + (
            f" (no decision in review.csv, though {', '.join(undecided_signed[:3])} "
            "is signed off: its review.csv removed or replaced? the sign-off's line above "
            "says what changed)" if undecided_signed else
            " (nothing confirmed or relabelled yet: run ctcnet review first)" if reviewed
            else ""), results)
    counts = {k: labels.count(k) for k in sorted(set(labels))}
    info = {"labels": "reviewer" if reviewed else "model", "sources": sources,
            "class_counts": counts, "crops": rows}
    finish_crop_dataset(out, manifest, panel.with_pixel_size(model.pixel_size_um), info,
                        patients)
    log.info("wrote %d crops (%s) to %s", len(manifest), counts, out)
    return info


def decision_kinds(decisions: pd.DataFrame) -> dict[str, int]:
    """How many of the decisions that count confirmed the call the reviewer saw, relabelled
    it, or rejected it (the crops leave rejected events out)."""
    calls = decisions["reviewer_call"].astype(str)
    rejected = calls == REJECTED
    confirmed = ~rejected & (calls == decisions["decided_call"].astype(str))
    return {"confirmed": int(confirmed.sum()), "relabelled": int((~rejected & ~confirmed).sum()),
            "rejected": int(rejected.sum())}


def check_one_scale(samples: dict[str, Path]) -> None:
    """Refuse, before any crop is cut, samples whose scans state other value ranges (a
    12-bit scan's 0-4095 beside a 16-bit one's 0-65535, or an 8-bit export's 0-255): one
    crop dataset states one range for all its crops (its panel.json), and crops kept as the
    scans' counts would be read at another's (the guard's saturation, the checks of values
    past the range). Summaries that cannot be read are left to the cut, which says why."""
    stated: dict[tuple, list[str]] = {}
    for name, folder in samples.items():
        try:
            panel = Panel.from_dict(RunSummary.read(folder).panel)
        except (InputError, OSError, KeyError, TypeError, ValueError):
            continue
        ranges = tuple((c.name, tuple(c.value_range)) for c in panel.channels)
        stated.setdefault(ranges, []).append(name)
    if len(stated) > 1:
        # Other channels (a three-channel scan beside five) said as such: their ranges may
        # read alike.
        channels = len({tuple(c for c, _ in ranges) for ranges in stated}) > 1
        said = "; ".join(f"{', '.join(names[:3])}{', ...' if len(names) > 3 else ''}: "
                         + (", ".join(c for c, _ in ranges) if channels else
                            _ranges_text(ranges)) for ranges, names in stated.items())
        what = "hold other channels" if channels else "state other value ranges"
        raise InputError(f"the samples' scans {what} ({said}): one crop dataset states one "
                         "panel and range for all its crops; cut each sample into a dataset of "
                         "its own (its folder as RESULTS)", next(iter(samples.values())).parent)


def _ranges_text(ranges: tuple) -> str:
    """Channels' value ranges in words: one range once where every channel states it."""
    if len({r for _, r in ranges}) == 1:
        lo, hi = ranges[0][1]
        return f"{lo:g}-{hi:g}"
    return ", ".join(f"{channel} {lo:g}-{hi:g}" for channel, (lo, hi) in ranges)


def _as_counts(crops: np.ndarray) -> np.ndarray:
    """A frame's crops as uint16 where they are the scan's own counts (whole numbers in 16
    bits: cut without resampling), as they were; else float32."""
    rounded = np.rint(crops)
    if len(crops) and np.array_equal(rounded, crops) and crops.min() >= 0 and \
            crops.max() <= 65535:
        return rounded.astype(np.uint16)
    return crops


def check_room(out: Path, crops: int, channels: int, crop_size: int) -> None:
    """Refuse, before cutting, crops the disk under ``out`` cannot hold (float32, the most a
    crop takes, with a tenth more for the files' own bytes)."""
    need = int(crops * channels * crop_size * crop_size * 4 * 1.1)
    make_folder(out)
    free = shutil.disk_usage(out).free
    if need > free:
        raise InputError(f"{crops:,} crops of {channels} x {crop_size} x {crop_size} need up to "
                         f"{size_text(need)}; {size_text(free)} is free there: cut the "
                         "reviewed events (--reviewed) or write elsewhere", out)
