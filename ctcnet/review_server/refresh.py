"""A predict rerun's review brought back: after predict rewrote a reviewed cartridge's
summary.json and index.html, the counts of its review decisions and its sign-off are written
back into them (:func:`refresh_reviewed`), and what no longer holds is said."""

from __future__ import annotations

import logging
from pathlib import Path

from ctcnet.errors import CtcnetError
from ctcnet.io.cartridge_info import record_changes_text
from ctcnet.review.signoff import (
    CALLS_CHANGED,
    COUNTS_CHANGED,
    EDITED,
    MODEL_CHANGED,
    RECORD_CHANGED,
    SIGNOFF_FILE,
    read_signoff,
)
from ctcnet.review_server.candidate_rows import decided_on_other_calls
from ctcnet.review_server.sample import READING_FILES, Sample

log = logging.getLogger(__name__)


def refresh_reviewed(folder: str | Path) -> None:
    """After predict rewrote a cartridge folder's summary.json and index.html (a rerun, a
    nightly batch over cartridges already done): the counts of its review decisions and its
    sign-off brought back into them, as the review server does when it starts. A folder
    without decisions or sign-off is left alone; a failure is said, never raised (the review
    server's next start tries again)."""
    folder = Path(folder)
    if not any((folder / name).exists() for name in (*READING_FILES.values(), SIGNOFF_FILE)):
        return
    try:
        sample = Sample(folder.name, folder)  # reading it writes its counts (write_counts)
    except (CtcnetError, OSError, ValueError, KeyError) as err:
        log.warning("%s: the review counts were not written back into summary.json (%s); "
                    "`ctcnet review` does it when it starts", folder, err)
        return
    matched = sample.decisions.matched(sample.run)
    decided = matched.decisions
    # Decisions follow their cells into a run of other calls (another model, rule or prior):
    # each stands as decided, but was made looking at another call (the page's "decided on
    # another call").
    other = len(decided_on_other_calls(decided))
    if other:
        log.warning("%s: %d of the %d decision(s) in review.csv were made on other calls than "
                    "this run's (another model, rule or prior): they stand as decided; check "
                    "them on the review page (\"decided on another call\")", folder, other,
                    len(decided))
    signed = read_signoff(folder)
    record = None if signed is None else sample.signoff(matched)
    if record is not None and record["status"] == CALLS_CHANGED:
        # The decisions carry over to the new calls; the signature does not: shown as of the
        # calls before (summary.json, samples.csv: "sign-off stale"), and said.
        log.warning("%s: the sign-off by %s on %s was of the calls before this run; it no "
                    "longer holds: review the sample again and sign it off", folder,
                    signed.reviewer, signed.signed_at)
    elif record is not None and record["status"] == EDITED:
        log.warning("%s: the sign-off by %s on %s no longer holds: %s; review the sample and "
                    "sign it off again", folder, signed.reviewer, signed.signed_at,
                    record["problem"])
    elif record is not None and record["status"] == MODEL_CHANGED:
        log.warning("%s: the sign-off by %s on %s was of calls another model file made (SHA-256 "
                    "%s..., now %s...); it no longer holds: check the calls and sign it off "
                    "again", folder, signed.reviewer, signed.signed_at,
                    str(signed.model_sha256)[:12], str(sample.summary.model.sha256)[:12])
    elif record is not None and record["status"] == RECORD_CHANGED:
        log.warning("%s: the sign-off by %s on %s was of another record of the sample in "
                    "cartridge.json (%s); it no longer holds: check the result is this "
                    "sample's and sign it off again", folder, signed.reviewer, signed.signed_at,
                    record_changes_text(signed.cartridge_info, sample.summary.cartridge_info))
    elif record is not None and record["status"] == COUNTS_CHANGED:
        log.warning("%s: the sign-off by %s on %s signed other counts per 7.5 mL than the "
                    "same decisions give now (%s, now %s): the blood volume or the frames read "
                    "changed; check and sign it off again", folder, signed.reviewer,
                    signed.signed_at, signed.after_review_per_7_5_ml,
                    sample.reviewed(matched).after_review_per_7_5_ml)
