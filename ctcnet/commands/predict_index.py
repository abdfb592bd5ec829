"""``ctcnet predict``'s run index as the run ends: ``run.json`` (and ``samples.csv``) of a run
that finished, or of one a signal or an error ended, with what it did said."""

from __future__ import annotations

import contextlib
import logging

from ctcnet.inference.run_index import (
    mark_run_ended_in_place,
    refusals_that_stand,
    write_run_index,
)

log = logging.getLogger(__name__)


def index_at_the_end(out, names, world_size, set_aside, started, failed_reports,
                      sharded: bool) -> dict:
    """run.json of a run that ended as it should; returns the refusals that stand (those
    another run did not finish or hold). A full disk leaves it ``failed``, not ``running``."""
    index = index_or_ended_in_place(out, "failed", names, world_size, set_aside, started,
                                    failed_reports=failed_reports, sharded=sharded)
    return refusals_that_stand(index, set_aside, several=len(names) > 1)


def index_or_ended_in_place(out, ended: str, *args, **kwargs) -> dict:
    """``write_run_index(out, *args, **kwargs)``; where it cannot be written (a full disk, a
    folder gone read-only) run.json is written over in place with the state ``ended``
    (``failed``, ``stopped``) and the error, not left reading ``running``, and the error
    raised."""
    try:
        return write_run_index(out, *args, **kwargs)
    except OSError as err:
        with contextlib.suppress(Exception):
            mark_run_ended_in_place(out, ended, err)
        raise


def own_share(set_aside: dict, names, mine, summaries, shard_text) -> dict:
    """Of a job array's share's refusals (name: reason), those of its own inputs (``mine``, of
    the run's ``names``; None: not a job of an array, all of them) and those it cannot tell
    the share of (a name none of its inputs gives): every job checks every input before the
    split, and each said the others' refusals and ended with exit status 2 for them. A share
    that ran nothing and refused nothing is said (not an error: a split by name leaves some
    shares of a small batch empty, and a task that fails would hold up the jobs that wait
    for the array; but a job that did nothing is not read as one that did its share)."""
    if mine is None:
        return set_aside
    theirs = set(names) - set(mine)
    own = {name: reason for name, reason in set_aside.items() if name not in theirs}
    if not summaries and not own:
        log.warning("--shard %s: none of the %d input(s) falls to this share (they are split by "
                    "a hash of each sample's name, so a share may hold none); this job ran "
                    "nothing", shard_text, len(names))
    return own


def resume_text(overwrite: bool) -> str:
    """How a run that ended before a sample's output was written is resumed: with
    ``--overwrite`` the same command would start every sample afresh, and without it a sample
    the run did not reach still holds its earlier output (``kept_output``), refused where
    that was made with other settings."""
    return ("the same command without --overwrite resumes it where this run began it (with "
            "it, each sample starts afresh); one with an earlier output kept (kept_output), "
            "which this run did not reach, is replaced only with --overwrite: give those "
            "inputs alone" if overwrite else "the same command resumes it")


def ended_over_an_index(err: BaseException, out, indexing: bool) -> bool:
    """Whether a run that ended before its checks had passed (a signal, a refusal, an error)
    leaves an index to say so: where an earlier run's is in ``--out``, which read "finished"
    beside an exit of 143 (or 2, or 4) and a line saying why (a wrapper took last night's
    results for tonight's)."""
    import json
    from pathlib import Path

    from ctcnet.core.processes import recorded_process_alive
    from ctcnet.io.cartridge_info import RUN_INDEX_FILE

    if not indexing or isinstance(err, SystemExit | GeneratorExit):
        return False
    try:
        index = json.loads((Path(out) / RUN_INDEX_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    # Another run writing the same --out now keeps its own "running" index: one whose process
    # cannot be seen alive or gone (another host, another container) too.
    return not (isinstance(index, dict) and index.get("state") == "running"
                and recorded_process_alive(index) is not False)


@contextlib.contextmanager
def index_said_ended_as_it_begins(out, indexing: bool):
    """Around what a run does before its checks have passed (its modules imported, its
    inputs listed and read, its model chosen): a signal, a refusal or an error there, where
    an earlier run's index is in ``--out`` (:func:`ended_over_an_index`), leaves it reading
    ``stopped`` or ``failed`` (:func:`~ctcnet.inference.run_index.mark_run_ended_as_it_began`),
    not "finished"."""
    from ctcnet.errors import stop_within
    from ctcnet.inference.run_index import mark_run_ended_as_it_began

    try:
        yield
    except BaseException as err:
        ended = stop_within(err) or err
        if ended_over_an_index(ended, out, indexing):
            with contextlib.suppress(Exception):  # the signal or refusal is told, not this
                mark_run_ended_as_it_began(out, ended, "stopped" if isinstance(
                    ended, KeyboardInterrupt) else "failed")
        raise


def index_as_the_run_ended(out, began: bool, ended: BaseException, indexing: bool,
                           write_index) -> None:
    """run.json of a run a signal or an error ended: its own (``write_index``) where it had
    begun, or a signal stopped it once its checks had passed; else, where an earlier run's
    index is in ``--out`` (:func:`ended_over_an_index`) and an error ended the run (its
    model refused), that index reads ``failed``, not "finished"."""
    from ctcnet.inference.run_index import mark_run_ended_as_it_began

    over = not began and ended_over_an_index(ended, out, indexing)
    if began or (over and isinstance(ended, KeyboardInterrupt)):
        write_index()
    elif over:
        with contextlib.suppress(Exception):  # the refusal is told, not this
            mark_run_ended_as_it_began(out, ended, "failed")


def index_of_an_ended_run(out, names, world_size, set_aside, started, failed_reports,
                           err: BaseException, log, mine, sharded: bool,
                           overwrite: bool = False) -> None:
    """run.json of a run a signal or an error ended: what it did, why it ended (``error``),
    and why each sample it did not reach has no output; its log names the samples of its
    own (``mine``: a job's share) done. An index that cannot be written (a full disk) is
    written over in place with the state and the error alone."""
    from ctcnet.core.run_log import ending_text

    ended = "stopped" if isinstance(err, KeyboardInterrupt) else "failed"
    try:
        why = (f"not finished: the run ended ({ending_text(err)}) before its output was "
               f"written; {resume_text(overwrite)}")
        # A job's own share says why it ended, not that another job has not run.
        own = {name: why for name in mine} if sharded else {}
        index = write_run_index(out, names, world_size, set_aside, started, state=ended,
                                failed_reports={**own, **(failed_reports or {})}, error=err,
                                sharded=sharded, missing_reason=None if sharded else why)
    except Exception:  # the error that ended the run is told, not this one
        with contextlib.suppress(Exception):
            mark_run_ended_in_place(out, ended, err)
        return
    say_done_before_the_end(index, mine, log)


def say_done_before_the_end(index: dict, mine, log) -> None:
    """Name the samples of ``mine`` (this run's, or a job's share) whose output the run index
    of a run that ended early lists as done: in the log, and on the console, which an operator
    reads before any file."""
    done = [entry["name"] for entry in index["outputs"]
            if "summary" in entry and entry["name"] in mine]
    for name in done:
        log.note(f"{name}: done before the run ended")
    if done:
        import sys

        print(f"ctcnet predict: {len(done)} sample(s) done before the run ended: "
              f"{', '.join(done[:10])}{', ...' if len(done) > 10 else ''} (run.json lists "
              "each)", file=sys.stderr)
