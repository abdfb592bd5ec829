"""What ``run.json`` (and so ``samples.csv``) says of one sample with an output: its counts and
status, what made them, its review and sign-off, and why it is partial, from its
``summary.json`` as it is now."""

from __future__ import annotations

import contextlib
import time
from datetime import datetime
from pathlib import Path

from ctcnet.core.provenance import software_text
from ctcnet.inference.model_records import model_file_of
from ctcnet.inference.result_state import result_state, reviewed_figures
from ctcnet.inference.sample_folders import PREVIOUS_DIR
from ctcnet.inference.summary import signoff_holds

# Skipped frames whose reasons run.json repeats per sample (summary.json lists them all).
SKIP_REASONS_SHOWN = 5


def _why(summary: dict) -> dict:
    """What ``run.json`` repeats of a sample's summary for an operator: the folder it was read
    from, its problems, and its frames skipped (with the first ones' reasons) or missing (only
    those that are there)."""
    frames = summary.get("frames") or {}
    skipped = summary.get("skipped_frames") or []
    reasons = [f"{s.get('frame')}: {s.get('reason')}" for s in skipped[:SKIP_REASONS_SHOWN]]
    if len(skipped) > SKIP_REASONS_SHOWN:
        reasons.append(f"and {len(skipped) - SKIP_REASONS_SHOWN} more (summary.json)")
    out = {"input": summary.get("input", summary.get("dataset")),
           "problems": summary.get("problems") or [],
           "frames_skipped": frames.get("skipped"), "skipped_because": reasons,
           "frames_missing": frames.get("missing")}
    return {k: v for k, v in out.items() if v}


def _made_by(summary: dict, path: Path) -> dict:
    """What made a sample's numbers, as ``run.json`` names it: the model file (its path and
    SHA-256) and when the counts were made (UTC), so that one index of a folder holding
    samples of two models, or of runs months apart, tells them apart."""
    model = summary.get("model")
    named = dict(zip(("path", "sha256"), model_file_of(summary)))
    # What else makes serial counts comparable: the decision rule's prior, spillover
    # compensation, the ctcnet that counted, and the scan itself (one scan under two sample
    # ids, a corrected one, is one blood draw).
    prior = model.get("prior") if isinstance(model, dict) else summary.get("prior")
    return {"model": {k: v for k, v in named.items() if v},
            "counted_at": utc(counted_at(path, summary)),
            # When a run last finished the sample: a rerun that kept the counts (a volume
            # corrected) is told from the original by it, where counted_at stays.
            "finished_at": utc(counted_at(path, summary, "finished_at")),
            **({"prior": prior} if prior else {}),
            "compensated": bool((summary.get("run_fingerprint") or {}).get("compensate")
                                or summary.get("spillover")),
            **({"ctcnet_version": summary["ctcnet_version"]}
               if summary.get("ctcnet_version") else {}),
            # The build: one version is every build of a release (a commit, or the code's
            # digest where the checkout was edited or none names it).
            **({"software": software_text(summary["software"])}
               if isinstance(summary.get("software"), dict) else {}),
            **({"cartridge_id": summary["cartridge_id"]} if summary.get("cartridge_id") else {}),
            **_scan_read(summary),
            # A run resumed on frames another backend or ctcnet made: ``model`` is the file
            # this run was given, these made the calls (frames per backend and software).
            **({"frames_made_by": summary["frames_made_by"]}
               if isinstance(summary.get("frames_made_by"), dict) else {})}


def scan_pixel_size(summary: dict) -> float | None:
    """The pixel size a summary.json (as parsed) read its scan at: a cartridge's panel's, a
    crop set's own (None: not recorded)."""
    panel = summary.get("panel") if isinstance(summary.get("panel"), dict) else {}
    size = panel.get("pixel_size_um", summary.get("pixel_size_um"))
    return float(size) if isinstance(size, (int, float)) and not isinstance(size, bool) \
        else None


def scan_value_top(summary: dict) -> float | None:
    """The top of the range of counts a summary.json (as parsed) read its scan's channels on
    (4095: a 12-bit scanner, 65535: a 16-bit one); None where its panel records none."""
    panel = summary.get("panel") if isinstance(summary.get("panel"), dict) else {}
    tops = [c["value_range"][1] for c in panel.get("channels") or ()
            if isinstance(c, dict) and isinstance(c.get("value_range"), list | tuple)
            and len(c["value_range"]) == 2 and isinstance(c["value_range"][1], int | float)]
    return float(max(tops)) if tops else None


def scanner_text(summary: dict) -> str | None:
    """A scanner as a study tells it from its samples' summaries: its pixel size and the top
    of its range of counts ("0.64 um/px, 0-65535"); None where neither is recorded."""
    size, top = scan_pixel_size(summary), scan_value_top(summary)
    if size is None and top is None:
        return None
    return ", ".join(([f"{size:g} um/px"] if size is not None else []) +
                     ([f"0-{top:g}"] if top is not None else []))


def _scan_read(summary: dict) -> dict:
    """The pixel size the scan was read at and its channels in the order read: a study
    pooling two scanners' samples tells them apart in its table, not only in each
    summary.json."""
    panel = summary.get("panel") if isinstance(summary.get("panel"), dict) else {}
    names = [c.get("name") for c in panel.get("channels") or [] if isinstance(c, dict)]
    size = scan_pixel_size(summary)
    return {**({"pixel_size_um": size} if size is not None else {}),
            **({"channels": names} if names and all(names) else {})}


def review_entry(summary: dict) -> dict:
    """What ``run.json`` repeats of a sample's review, where a person has decided on its
    events or signed it off: the counts after review (of the reported classes, and per 7.5
    mL; with no decision, the automatic ones) and whether they are signed off on this run's
    calls. A batch reader that took ``counts`` alone would
    report the automatic counts of a reviewed sample."""
    reviewed = summary.get("reviewed") or {}
    signoff = summary.get("signoff") or {}
    if not reviewed.get("reviewed") and not signoff:
        return {}
    holds = signoff_holds(summary)
    # (signed off with no decision: the automatic counts are the reviewed ones; a summary
    # written before the reviewed interval was kept has none)
    after = {k: v for k, v in reviewed_figures(summary).items() if v is not None}
    # Signed off on these figures: a sign-off the decisions or the counts moved on from is
    # named by its status, not read as one that holds.
    # The decisions that count (0: a sign-off on no event looked at).
    # A sign-off that holds with calls the guard held left undecided (a possible missed CTC
    # among them) is said beside it: the page asked twice, a batch's table must say it too.
    # What it left undecided, and its note, are said too: a sign-off on 2 of 37 candidates
    # with a note read in a batch's table as one on every candidate.
    return {**after, "decided": int(reviewed.get("reviewed") or 0), "signed_off": holds,
            **({"signed_off_by": signoff.get("reviewer"),
                "signed_off_at": signoff.get("signed_at"),
                "held_undecided": int(signoff.get("held_undecided") or 0),
                "left_undecided": int(signoff.get("unreviewed") or 0),
                "signoff_note": signoff.get("note") or ""} if holds else {}),
            **(_readers(signoff.get("second_reading")) if holds else {}),
            **({"signoff_status": signoff["status"]} if signoff and not holds else {})}


def _readers(second) -> dict:
    """A signed-off double reading's agreement as a batch's table pools it over samples (a
    monthly figure: the events both readers decided and those they agreed on, as they stand
    and as each first read them), where the sign-off recorded one."""
    if not isinstance(second, dict):
        return {}
    own = second.get("independent") if isinstance(second.get("independent"), dict) else {}
    # Each over its own events: the readers' own calls are of another set of events than
    # the decisions as they stand (a call taken back, one adjudicated), so pooled over
    # readers_both their agreement read 7 of 9 where it was 7 of 11.
    return {**({"readers_both": second.get("both"), "readers_agree": second.get("agree"),
                "readers_kappa": second.get("kappa")} if second.get("both") else {}),
            **({"readers_own_both": own.get("both"), "readers_own_agree": own.get("agree"),
                "readers_own_kappa": own.get("kappa")} if own.get("both") else {})}


def counted_at(summary: Path, read: dict | None, key: str = "counted_at") -> float:
    """When a summary's counts were made (``key``: or when a run last finished the sample,
    ``finished_at``, where it says): that time, a crop folder's ``written_at``, else the
    file's."""
    read = read or {}
    when = read.get(key, read.get("counted_at"))
    if when is None and isinstance(read.get("written_at"), str):
        with contextlib.suppress(ValueError):
            return datetime.fromisoformat(read["written_at"]).timestamp()
    return float(when) if when is not None else summary.stat().st_mtime


def utc(seconds: float) -> str:
    """``seconds`` since the epoch as ISO 8601 UTC (``2026-12-01T20:37:37Z``)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def output_entry(name: str, summary: dict, path: Path) -> dict:
    """``run.json``'s entry of a sample with an output: its main counts, status, what made
    them, its review and why it is partial. ``path``: its summary's file (one a failed
    ``--overwrite`` kept in ``previous/``: named there)."""
    kept = Path(path).parent.name == PREVIOUS_DIR
    return {"name": name, "summary": f"{name}/{PREVIOUS_DIR}/{Path(path).name}" if kept
            else f"{name}/summary.json",
            "events": summary.get("events", summary.get("crops")),
            "counts": summary.get("counts", {}),
            # the calls the guard held for a person, counted apart: counts and held together
            # make every event's call
            "held": (summary.get("tally") or {}).get("held", summary.get("held", {})),
            "per_7_5_ml": summary.get("per_7_5_ml", {}),
            # what the review could still make each reported count ([low, high]: every call
            # held or in doubt decided against, or for, the class): a count that may cross a
            # study's cut-off is found in the table, not only in each summary.json
            **({"review_span": (summary.get("tally") or {})["review_span"]}
               if isinstance((summary.get("tally") or {}).get("review_span"), dict) else {}),
            # counted clusters by partner and the unread planes' CTCs above the leukocytes:
            # what a study of clusters or of a therapy marker reads per sample
            **({"clusters_by_partner": summary["clusters_by_partner"]}
               if isinstance(summary.get("clusters_by_partner"), dict) else {}),
            **_unread_above(summary),
            # the events on the review list: the morning's work, read before the page opens
            **({"review_events": summary["review_list"]["events"]}
               if isinstance(summary.get("review_list"), dict) else {}),
            **({"blood_volume_read_ml": summary["blood_volume_processed_ml"]}
               if summary.get("blood_volume_processed_ml") is not None else {}),
            # ok / partial / failed (a crop set's run has none): a batch job reads every
            # sample's in one file, and why it is not ok; and whether its result may be read
            # as one (failed, partial, preliminary, signed off, sign-off stale).
            **({"status": summary["status"],
                "result_state": result_state(summary)["state"]} if "status" in summary
               else {}),
            **({"blood_volume_stated": summary["blood_volume_stated"]}
               if summary.get("blood_volume_stated") is not None else {}),
            **_denominator(summary),
            **_made_by(summary, path), **review_entry(summary), **_why(summary)}


def _unread_above(summary: dict) -> dict:
    """Per plane the model does not read, the counted CTCs above the sample's leukocytes and
    all counted CTCs (``[above, of]``; above null where too few leukocytes gave no level)."""
    planes = (summary.get("unread_markers") or {}).get("planes")
    if not isinstance(planes, dict):
        return {}
    past = [name for name, r in planes.items() if r.get("ck_leak_past_allowance")]
    # The same of the CTCs counted after review, once a review has decisions: what a study
    # reports beside the signed-off count (the automatic figure stood beside it alone).
    reviewed = (summary.get("unread_markers") or {}).get("after_review")
    unmeasured = {name: r["counted_ctcs_unmeasured"] for name, r in planes.items()
                  if r.get("counted_ctcs_unmeasured")}
    return {"unread_ctcs_above": {name: [r.get("counted_ctcs_above"), r.get("counted_ctcs")]
                                  for name, r in planes.items()},
            # Counted CTCs of frames that lack the plane's file: in "of", never above.
            **({"unread_ctcs_unmeasured": unmeasured} if unmeasured else {}),
            **({"unread_leak_past_allowance": past} if past else {}),
            **({"unread_ctcs_above_after_review": {
                name: [r.get("counted_ctcs_above"), r.get("counted_ctcs")]
                for name, r in reviewed.items()}} if isinstance(reviewed, dict) else {})}


def _denominator(summary: dict) -> dict:
    """What a cartridge's rates rest on, for a study's table: the tube's volume (stated, or
    7.5 mL assumed), the frames read of those the scan should hold (in the folder and
    missing), and each rate's 95 % interval (``tally.per_7_5_ml_interval``); none for a crop
    folder."""
    frames = summary.get("frames")
    if not isinstance(frames, dict) or summary.get("blood_volume_ml") is None:
        return {}
    interval = (summary.get("tally") or {}).get("per_7_5_ml_interval")
    return {"blood_volume_ml": summary["blood_volume_ml"],
            # Detection density: a finer pixel size at the same events a frame is a crowded
            # sample, whose merged cells read as fewer (a site's counts beside another's).
            "events_per_mm2": summary.get("events_per_mm2"),
            "frames_read": frames.get("processed"),
            # Of those, taken from an earlier run's journal (not computed by this run).
            "frames_resumed": frames.get("resumed_from_journal"),
            "frames_expected": (frames.get("total") or 0) + (frames.get("missing") or 0),
            # (False: counted from those found; a truncated copy then reads whole)
            "frames_expected_stated": frames.get("expected_stated"),
            **({"per_7_5_ml_interval": interval} if isinstance(interval, dict) else {})}


def outcome_tally(entries: list[dict]) -> dict[str, int]:
    """How the run's inputs came out, counted from its entries, for a monitor to read at a
    glance (the same entries, one kind each): ``ok``, ``partial`` and ``failed`` cartridges,
    crop sets written (``crop_sets``), inputs ``set_aside`` (refused: the exit status 2),
    ``held`` by another run of the batch (no fault), and ``missing`` (not reached: a run that
    ended early)."""
    tally = dict.fromkeys(("ok", "partial", "failed", "crop_sets", "set_aside", "held",
                           "missing"), 0)
    for entry in entries:
        if "set_aside" in entry:
            tally["held" if entry.get("set_aside_kind") == "held" else "set_aside"] += 1
        elif entry.get("missing"):
            tally["missing"] += 1
        elif entry.get("status") in ("ok", "partial", "failed"):
            tally[entry["status"]] += 1
        else:
            tally["crop_sets"] += 1
    return {"inputs": len(entries), **tally}
