"""A sample finished by another version of ctcnet, kept as it is when a run resumes.

A journal records what made each frame's rows (``journal.run_fingerprint``); one that differs
is another run's, refused rather than mixed into this one. But where the difference is only
what a version of ctcnet decides (its event tables' columns, the guard's levels) and the
earlier run finished (its ``summary.json``, every frame of the scan journaled, none changed
or removed since, cartridge.json's volume and record of the sample as it read them), the
sample is done: a night stopped and resumed after an upgrade keeps the samples it
finished, counted as finished, instead of setting them aside (``--overwrite`` redoes them with
this version).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from ctcnet.errors import FinishedEarlierError
from ctcnet.inference.figures_seal import sample_record_of
from ctcnet.inference.summary import SUMMARY_FILE, RunSummary
from ctcnet.io.cartridge_info import record_changes, unread_keys

log = logging.getLogger(__name__)

# The fingerprint's entries that a version of ctcnet sets, not the run's model, scan or options.
VERSION_KEYS = frozenset({"table_columns", "guard", "same_cluster_um"})


def refuse_to_redo_finished(out_dir: Path, differing: list[str] | None, done: set[str],
                            recorded: dict, current: dict, stated: dict | None = None) -> None:
    """Raise :class:`~ctcnet.errors.FinishedEarlierError` where ``out_dir`` holds a finished
    run that differs from this one only in ``VERSION_KEYS`` (``differing``: the fingerprint's
    entries that differ; None: an unreadable record). ``done``: the frames its journal holds;
    ``recorded`` and ``current``: each frame's file signatures as journaled and now;
    ``stated``: what cartridge.json states of the sample now, as summary.json records it
    (``blood_volume_ml``, ``cartridge_info``; None: not compared)."""
    if not differing or not set(differing) <= VERSION_KEYS:
        return
    if set(current) != set(done) or any(recorded.get(f) != current[f] for f in current):
        # Frames still to do, gone from the scan (a frame removed: its cells were still
        # counted, the sample "ok") or changed since: the run is not the scan's as it is.
        return
    try:
        data = json.loads((Path(out_dir) / SUMMARY_FILE).read_bytes())  # (read once: both)
        summary, record = RunSummary.from_dict(data), sample_record_of(data)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return  # none, or unreadable: not a finished run to keep
    if stated is not None and restated(summary.blood_volume_ml, record, stated):
        return  # a tube or a patient record corrected: not the sample's result as it stands
    software = summary.software or {}
    # (an earlier ctcnet's summary names its version in ctcnet_version alone)
    made = f"ctcnet {software.get('ctcnet') or summary.ctcnet_version}" + (
        f", commit {software['commit'][:12]}" if software.get("commit") else "")
    raise FinishedEarlierError(
        f"finished by an earlier run ({made}), whose tables differ from this ctcnet's in "
        f"{', '.join(sorted(differing))}: its outputs are kept as they are (--overwrite "
        "redoes it with this version)", out_dir, summary)


def stated_of(cartridge) -> dict:
    """What ``cartridge``'s cartridge.json states of the sample, as summary.json records it:
    :func:`refuse_to_redo_finished`'s ``stated``."""
    return {"blood_volume_ml": cartridge.blood_volume_ml,
            "cartridge_info": unread_keys(cartridge.info)}


def restated(volume_ml: float | None, record: dict | None, stated: dict) -> bool:
    """Whether cartridge.json now states another blood volume or another record of the sample
    (``stated``) than a summary was made from (``volume_ml``, ``record``:
    :func:`~ctcnet.inference.figures_seal.sample_record_of`): its rates, or the patient or draw
    its counts stand under, are no longer the sample's (a same-version rerun keeps the earlier
    summary in ``previous/`` and says so; an earlier version's is not kept as finished)."""
    volume = stated.get("blood_volume_ml")
    moved = volume is not None and volume_ml is not None and \
        abs(float(volume_ml) - float(volume)) >= 1e-9
    # (a summary of a ctcnet that kept no record of the sample: not compared, not "changed",
    # as a same-version rerun reads it: rerun_outputs.EarlierRun.keep_if_record_moved)
    return moved or (record is not None and bool(
        record_changes(record, stated.get("cartridge_info"))))


def kept_finished(err: FinishedEarlierError, name: str) -> RunSummary:
    """The summary of a sample :func:`refuse_to_redo_finished` kept (read as it refused),
    said as it is kept."""
    log.warning("%s: %s", name, err)
    return err.summary
