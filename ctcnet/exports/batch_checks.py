"""What an export of a predict ``--out`` folder checks beyond each sample's own table: the
samples of the batch that have no output to export (said, so that an export of the rest is
not read as the night's), and a file under a shared ``--out`` that holds another sample's
export of the same file name (refused, even with ``--overwrite``: "Pt 1" and "Pt_1" write one
file name, and the first's export was replaced without a word)."""

from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path

from ctcnet.errors import InputError
from ctcnet.exports.fcs import fcs_keyword
from ctcnet.io.cartridge_info import RUN_INDEX_FILE

log = logging.getLogger("ctcnet.exports.event_exports")


def refuse_another_samples_files(plans, codes: dict[str, str] | None = None,
                                 out: Path | None = None) -> None:
    """Refuse an export whose FCS file exists and holds another sample's events (its
    ``CTCNET_SAMPLE_ID``; a coded copy's, the sample's code in ``codes``): under one ``--out``
    two sample ids may make one file name; and a coded copy beside exports it does not write
    (:func:`refuse_uncoded_beside`)."""
    refuse_uncoded_beside(plans, out, codes)
    for plan in plans:
        if plan.fcs is None or not plan.fcs.is_file():
            continue
        try:
            mine = json.loads((plan.folder / "summary.json").read_text(encoding="utf-8"))[
                "sample_id"]
        except (OSError, ValueError, KeyError, TypeError):
            continue  # (the sample's own read says what is wrong with it)
        # (a coded copy holds the code: refreshed with --overwrite, never refused so)
        mine = codes.get(mine, mine) if codes else mine
        other = fcs_keyword(plan.fcs, "CTCNET_SAMPLE_ID")
        if other is not None and other != mine:
            raise InputError(f"holds the export of sample {other!r}, not of {mine!r} (their "
                             "ids make one file name): export into another --out", plan.fcs)


def refuse_uncoded_beside(plans, out: Path | None, codes: dict[str, str] | None) -> None:
    """Refuse a coded copy (``codes``) into an ``--out`` holding exports it does not write
    (a plain export's, named by sample ids and carrying them; an earlier copy's under other
    codes): the sponsor's folder would hold them beside the coded files, unsaid."""
    if not codes or out is None or not Path(out).is_dir():
        return
    planned = {p for plan in plans for p in (plan.fcs, plan.geojson) if p is not None}
    mine = set(codes.values())  # (an earlier batch's copy under these codes is this copy's)

    def coded_here(path: Path) -> bool:
        if path.is_dir():
            return path.name.removesuffix("_geojson") in mine
        with contextlib.suppress(OSError, ValueError):
            return fcs_keyword(path, "CTCNET_SAMPLE_ID") in mine
        return False

    others = sorted(p.name for p in Path(out).iterdir() if p not in planned and (
        not p.name.startswith(".")) and (  # (a write's hidden temporary file, a desktop's)
        p.suffix.lower() == ".fcs" or (p.is_dir() and p.name.endswith("_geojson"))) and
        not coded_here(p))
    if others:
        raise InputError(f"holds {len(others)} export(s) this coded copy does not write "
                         f"({', '.join(others[:5])}{', ...' if len(others) > 5 else ''}): a "
                         "coded copy for a sponsor goes into a folder of its own", out)


def say_unfinished(results: Path, what: str = "to export") -> None:
    """Warn of the samples of a batch folder that have no output ``what`` (to export, to cut
    crops from): those its run.json lists as missing (a run stopped before them) and those a
    run began and did not finish. An export of the rest reads as the night's unless said."""
    from ctcnet.inference.run_index import unfinished_outputs

    try:
        index = json.loads((results / RUN_INDEX_FILE).read_text(encoding="utf-8"))
        missing = [str(e["name"]) for e in index.get("outputs", [])
                   if isinstance(e, dict) and e.get("missing")]
    except (OSError, ValueError, AttributeError, KeyError, TypeError):
        return  # one sample's folder, or no index: nothing to say
    left = sorted({*missing, *unfinished_outputs(results)})
    if left:
        log.warning("%s: %d sample(s) have no output %s (%s%s; run.json: %s): the predict "
                    "command that ran them finishes them, then run this again", results,
                    len(left), what, ", ".join(left[:5]), ", ..." if len(left) > 5 else "",
                    index.get("state", "not finished"))
