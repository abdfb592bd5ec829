"""The summary of a cartridge's run (``summary.json``), built from its events, its frames and
the settings it ran with: :func:`build_summary`, predict's one place for it."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict

import pandas as pd

from ctcnet import __version__
from ctcnet.core.paths import absolute
from ctcnet.core.provenance import software_record
from ctcnet.detect.cropping import window_size
from ctcnet.inference.counts import (
    count_events,
    implausible_frames,
    implausible_marker_balance,
)
from ctcnet.inference.frame_device import default_workers
from ctcnet.inference.guard import cluster_partners, guard_summary
from ctcnet.inference.guard.planes import missing_guard_planes
from ctcnet.inference.model_records import model_path, model_sha256
from ctcnet.inference.options import PredictOptions, edge_cut_class, unguarded_classes
from ctcnet.inference.resources import children_peak_memory_mb, peak_memory_mb
from ctcnet.inference.review_list import review_list_summary
from ctcnet.inference.sample_checks import (
    blurred_frames_problem,
    crowding_problem,
    dark_planes_problem,
    empty_frames_problem,
    faint_problem,
    repeated_frames_problem,
    review_load_problem,
    sparse_frames,
    sparse_problem,
)
from ctcnet.inference.summary import (
    FrameCounts,
    ModelUsed,
    RunSummary,
    sample_status,
    volume_read_ml,
)
from ctcnet.inference.unread_markers import unread_marker_summary
from ctcnet.io.cartridge_info import unread_keys
from ctcnet.io.panel import CK_NEGATIVE_CTC_ROLES
from ctcnet.io.plausibility import events_per_mm2
from ctcnet.io.scan import Cartridge
from ctcnet.io.unread_planes import ck_plane, unread_planes
from ctcnet.nn.calls import BALANCED_PRIOR, CARTRIDGE_PRIOR, decision_weights
from ctcnet.nn.spec import ModelSpec

# Its warnings are predict's, as the console and a batch's log filters name them.
log = logging.getLogger("ctcnet.inference.predict")


def build_summary(cartridge: Cartridge, backend, events: pd.DataFrame, skipped: list[dict],
                  resumed: int, seconds: dict, options: PredictOptions,
                  spec: ModelSpec | None = None, prior: str = CARTRIDGE_PRIOR,
                  new_events: int | None = None, counted_at: float | None = None
                  ) -> RunSummary:
    """The summary of a cartridge's run: its counts (one tally), status, the blood volume
    read, the settings and the stage timings so far (the report's are added after).
    ``new_events``: the events of the frames this run processed (None: every event), over
    which its rates are: a resumed run's frames from the journal took none of its time.
    ``counted_at``: when its counts were made, if earlier than now (a rerun that found every
    frame in its journal writes the earlier run's counts)."""
    spec = spec or backend.spec
    total, skips = len(cartridge.frames), len(skipped)
    volume = volume_read_ml(cartridge.blood_volume_ml, total, skips, cartridge.frames_scanned)
    # Every count from one tally; the guard's held calls apart (tally.held, guard["by_flag"]).
    tally = count_events(events, spec.class_names, spec.taxonomy.reported_classes(), volume)
    # A problem of the sample (partial), for a batch job reading status: a swapped channel
    # order counts every leukocyte as a CTC (a spike-in looks alike: its counts stand).
    # (a lab's class checked as a CTC is one here too)
    # One frame's files swapped hides under the cartridge's share: said by the frame.
    ctc_kinds, balanced = spec.taxonomy.of_kind("ctc"), prior == BALANCED_PRIOR
    wbc_kinds = spec.taxonomy.of_kind("wbc")  # (a lab's "leukocyte" is checked as one)
    implausible = implausible_marker_balance(tally, ctc_kinds, balanced, wbc_kinds) or \
        implausible_marker_balance(tally, spec.taxonomy.of_kind("cluster"), balanced,
                                   wbc_kinds) or \
        implausible_frames(events, ctc_kinds, wbc_kinds)
    density = events_per_mm2(len(events), total - skips, cartridge.frame_shape,
                             cartridge.panel.pixel_size_um)
    review_list = review_list_summary(events, spec)
    by_frame = frame_counts(events, cartridge, skipped)
    said = [p for p in (implausible, crowding_problem(density),
                        empty_frames_problem(by_frame), blurred_frames_problem(events),
                        dark_planes_problem(events),
                        sparse_problem(len(events), total - skips, density),
                        review_load_problem(review_list, len(events)),
                        faint_problem(events["peak_snr"] if "peak_snr" in events else ()),
                        # (a benchmark's frames repeat on purpose, as cartridge.json says)
                        None if (cartridge.info or {}).get("repeated_frames") is True
                        else repeated_frames_problem(events)) if p]
    problems = list(cartridge.problems) + said
    for problem in said:  # said at once too: the console's reader is often the batch's operator
        log.warning("%s: %s", cartridge.sample_id, problem)
    if "blood_volume_ml" not in (cartridge.info or {}):  # the rates rest on a tube assumed
        log.warning("%s: cartridge.json states no blood_volume_ml: %g mL assumed, and the "
                    "rates per 7.5 mL rest on that (state the tube's volume and run the same "
                    "command again: the counts stand, the rates are made anew)",
                    cartridge.sample_id, cartridge.blood_volume_ml)
    if (few := sparse_frames(by_frame)) is not None:
        log.warning("%s: %s", cartridge.sample_id, few)
    n = len(events)
    # The events of the frames this run read: none where its journal held every frame (a
    # speed of the journal's events over a rerun's fraction of a second read 2,894 a second).
    rated = None if resumed >= total - skips else n if new_events is None else new_events
    classify = seconds.get("classify", 0.0)
    return RunSummary(
        sample_id=cartridge.sample_id,
        # Absolute: the review and `ctcnet crops` read the frames from it, run from anywhere.
        input=absolute(cartridge.root),
        ctcnet_version=__version__, software=software_record(),
        model=ModelUsed(path=model_path(backend), arch=spec.arch, version=spec.version,
                        classes=spec.class_names, crop_size=spec.crop_size,
                        pixel_size_um=spec.pixel_size_um, temperature=spec.temperature,
                        review_threshold=spec.review_threshold,
                        decision_log_weights=decision_weights(spec.decision),
                        prior=prior, sha256=model_sha256(backend)),
        backend=backend.name,
        device=backend.device_name,
        panel=cartridge.panel.to_dict(),
        counted_as=count_definition(spec),
        cartridge_info=unread_keys(cartridge.info),
        resampled_window_px=window_size(spec.crop_size, spec.pixel_size_um,
                                        cartridge.panel.pixel_size_um),
        blood_volume_ml=cartridge.blood_volume_ml,
        blood_volume_processed_ml=volume,
        blood_volume_stated="blood_volume_ml" in (cartridge.info or {}),
        events_per_mm2=None if density is None else round(density, 1),
        events_by_frame=by_frame,
        # (null where no frame was read, as documented: the headers' size is no frame read)
        frame_shape=[int(v) for v in cartridge.frame_shape]
        if cartridge.frame_shape and total > skips else None,
        status=sample_status(total, skips, tally.failed, len(problems)),
        frames=FrameCounts(total=total, processed=total - skips, skipped=skips,
                           resumed_from_journal=resumed,
                           missing=cartridge.frames_scanned - total,
                           expected_stated=cartridge.expected_frames is not None),
        skipped_frames=skipped,
        problems=problems,
        cartridge_id=cartridge.identity or None,
        counted_at=time.time() if counted_at is None else counted_at,
        finished_at=time.time(),
        events=n,
        **RunSummary.count_fields(tally),
        guard=guard_summary(events, spec),  # calls the marker guard sent to review, by flag
        clusters_by_partner=cluster_partners(events),
        unread_markers=unread_marker_summary(
            events, [name for _, name in unread_planes(cartridge)],
            spec.taxonomy.of_kind("ctc"), spec.taxonomy.of_kind("wbc"),
            ck_name=ck_plane(cartridge), sample_id=cartridge.sample_id),
        review_list=review_list,
        edge_cut=int(events["edge_cut"].sum()) if n else 0,
        detection=asdict(options.detect),
        edge_cut_as=edge_cut_class(spec, options),
        batch_size=options.batch_size or backend.batch_size,
        workers=default_workers(backend) if options.workers is None else options.workers,
        timings_s={k: round(v, 4) for k, v in seconds.items()},
        events_per_s=rated / seconds["total"] if seconds.get("total") and rated is not None
        else None,
        classify_events_per_s=rated / classify if classify and rated is not None else None,
        # Its frame processes' (and a report process's) too: the run's memory on the machine.
        peak_memory_mb=round(peak_memory_mb() + children_peak_memory_mb(), 1),
    )


def frame_counts(events: pd.DataFrame, cartridge: Cartridge, skipped: list[dict]
                 ) -> dict[str, int]:
    """Detected events per frame read, by frame id (a frame read with none: 0)."""
    skipped_ids = {s.get("frame") for s in skipped}
    counts = events["frame_id"].astype(str).value_counts() if len(events) else {}
    return {f.frame_id: int(counts.get(f.frame_id, 0)) for f in cartridge.frames
            if f.frame_id not in skipped_ids}


def count_definition(spec: ModelSpec) -> dict:
    """What the counts include, for a reader of the summary and the report: each reported
    class's description in the model's taxonomy, and whether a cell without CK can be counted
    as a CTC (only where the model's channels hold a marker that vouches for one,
    ``CK_NEGATIVE_CTC_ROLES``: vimentin, EpCAM, and it is lit at the cell; else the guard
    holds a ``ctc`` call without CK for a person, the CellSearch definition)."""
    vouching = [c.name for c in spec.panel.channels if c.role in CK_NEGATIVE_CTC_ROLES]
    ck_negative = (f"A CTC without CK is counted where the model calls it so and the guard "
                   f"reads {' or '.join(vouching)} of its own at the cell (above what DAPI "
                   f"and CK leak into it), with no CD45 over the cell (a ctc call with "
                   f"neither CK nor {' nor '.join(vouching)} of its own is held for a "
                   "person): the count of CK-negative CTCs is as good as the model's reading "
                   f"of {', '.join(vouching)}, which only its own validation (its card) "
                   "establishes." if vouching else
                   "A cell without CK is not counted as a CTC (the CellSearch definition: CK+, "
                   "a nucleus, CD45-): the guard holds a ctc call without CK for a person, and "
                   "the model reads no marker (vimentin, EpCAM) that could vouch for one.")
    # A plane named by no marker the guard knows: it reads none, and holds nothing for it.
    missing = missing_guard_planes(spec.panel)
    unguarded = (f"The model's channels ({', '.join(spec.panel.names)}) name no "
                 f"{' and no '.join(missing)}: the marker guard checks no call by that "
                 "marker, and holds none for it." if missing else "")
    if spec.panel.index_of_role("epithelial") is None:
        ck_negative = "With no CK plane, a ctc call is counted as the network makes it."
    reported = spec.taxonomy.reported_classes()
    others = unguarded_classes(spec)  # a lab's class checked as neither ctc nor cluster
    return {"classes": {c.name: c.description for c in spec.taxonomy.classes
                        if c.name in reported},
            "ck_negative": ck_negative,
            **({"unguarded_planes": unguarded} if unguarded else {}),
            **({"not_guarded_classes": others} if others else {}),
            **({"not_guarded": f"{', '.join(others)} calls are counted, listed for review and "
                               "queued where the network doubts them, but the marker guard "
                               "does not check their markers (a CD45+ cell so called is "
                               "counted): review every one."} if others else {}),
            # A class named as a CTC the taxonomy does not report (a lab's emt_ctc), or none
            # of its classes reported: calls with no rate and no guard, which the report's
            # table alone left unsaid.
            **({"not_reported": f"{note[0].upper()}{note[1:]}."}
               if (note := spec.taxonomy.unreported_note()) else {})}
