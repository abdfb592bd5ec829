"""What ``ctcnet verify --results`` checks a sample's summary.json against beyond its seals: the
record read as predict writes it, its result state as its figures make it, and its counts after
review as its decisions give them. A summary edited by hand is said as the sample's problem,
never ends the audit in a traceback."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ctcnet.errors import InputError
from ctcnet.inference.result_state import result_state
from ctcnet.inference.summary import RunSummary

# What reading a record edited by hand raises (a field missing, of another type, a volume
# "7.5 mL", a panel of null): the sample's problem, said, not the audit's end in a traceback.
EDITED_RECORD = (OSError, ValueError, InputError, TypeError, KeyError, AttributeError)


def events_and_summary(folder: Path, data: dict, problems: list):
    """What the sign-off and the review's counts are checked on, read once for both: the
    sample's (events, summary), or why they could not be read (a table is said with its
    digest; a summary that is no run's record as predict writes it is added to ``problems``)."""
    try:
        events = pd.read_parquet(folder / "events.parquet")
    except EDITED_RECORD as err:
        return err
    try:
        return events, RunSummary.from_dict(data)
    except EDITED_RECORD as err:
        problems.append(f"summary.json is not a run's record as predict writes it (edited?): "
                        f"{err}")
        return err


def review_counts_behind(folder: Path, read) -> tuple[list[str], list[str]]:
    """(problems, notes): where summary.json's counts after review are not those its review
    decisions give (a review server killed between appending a decision and writing the
    summary left it one decision behind, and the audit read the folder as intact); a note
    where it holds none (an earlier ctcnet kept none there: what it guards is not checked);
    ``read``: as :func:`events_and_summary` gives it."""
    from ctcnet.exports.sample_review import reviewed_rates
    from ctcnet.review.decisions import load_decisions
    from ctcnet.review.runs import RunEvents
    from ctcnet.review.signoff import same_figures

    if isinstance(read, Exception):
        return [], []
    events, summary = read
    try:
        matched = load_decisions(folder, RunEvents.of_sample(folder, events, summary))
        if not matched.n_decisions:
            return [], []  # (no copy to compare: summary.json keeps none without a decision)
        now = reviewed_rates(folder, events, matched, summary, say=False)
    except (OSError, ValueError, KeyError, InputError):
        return [], []  # (a journal that cannot be read is said with the sign-off)
    except (TypeError, AttributeError) as err:  # (a field edited by hand: a panel of null)
        return [f"its review's counts not checked: {type(err).__name__}: {err}"], []
    if now is None:
        return [], []
    if summary.reviewed is None:
        # (as an earlier ctcnet's review left it, or one stopped before its first summary)
        return [], [f"summary.json holds no counts after review beside {matched.n_decisions} "
                    "review decision(s) (an earlier ctcnet kept none there, or a review stopped "
                    "before it first wrote them): they are not checked; opening the sample in "
                    "ctcnet review writes them"]
    copy = summary.reviewed.after_review_per_7_5_ml
    if copy is not None and same_figures(copy, now):
        return [], []
    return [f"summary.json's counts after review per 7.5 mL ({copy}) are not those its "
            f"review decisions give ({now}): a review stopped while writing it? Opening the "
            "sample in ctcnet review writes it again"], []


def result_state_not_its_own(data: dict) -> list[str]:
    """What is wrong with a summary's ``result_state``: not what its figures and sign-off
    make it (not sealed with the figures: the review's sign-off decides it after predict), or
    not to be worked out from a field edited by hand (a volume "7.5 mL")."""
    state = data.get("result_state")
    try:
        made = result_state(data)["state"]
    except EDITED_RECORD as err:
        return ["summary.json is not a run's record as predict writes it (edited?): its "
                f"result state cannot be worked out ({type(err).__name__}: {err})"]
    if isinstance(state, dict) and state.get("state") != made:
        return [f"summary.json's result_state says {state.get('state')!r}, its figures and "
                f"sign-off make it {made!r} (edited?)"]
    return []

