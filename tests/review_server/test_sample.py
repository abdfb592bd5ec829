"""Review at lab scale: a page of decisions recorded at once (the grid), a second reader's
decisions kept apart and compared (Cohen's kappa, the disagreements), the per-sample sign-off
written beside the counts, and the channel sliders; the grid and the sign-off also driven in
headless Chromium (skipped where it is missing)."""

import contextlib
import json
import shutil
import threading

import numpy as np
import pandas as pd
import pytest
from conftest import write_events

from ctcnet.review import decision_journal
from ctcnet.review import decisions as D
from ctcnet.review.agreement import cohen_kappa, compare_readings
from ctcnet.review.matching import extend_match
from ctcnet.review_server.server import make_server, server_url
from tests.review.test_decisions import tiny_run
from tests.review_server.test_server import (  # noqa: F401 (results: a fixture, the predict run)
    Browser,
    _chromium,
    request,
    results,
)


def post(server, path, body, sample="P001"):
    status, data = request(server, "POST", f"/api/{sample}/{path}", json.dumps(body),
                           {"Content-Type": "application/json"})
    return status, json.loads(data)


def get(server, path, sample="P001"):
    status, data = request(server, "GET", f"/api/{sample}/{path}")
    return status, json.loads(data)


def sign(server, body, sample="P001"):
    """A sign-off as the page sends it: with the stamps of the decisions it read, the second
    reading's too, the sign-off it showed (and a note, for the held calls these tests leave
    undecided)."""
    state = get(server, "state", sample)[1]
    second = (state.get("agreement") or {}).get("second_stamp")
    return post(server, "signoff", {"stamp": state["stamp"], "second_stamp": second,
                                    "signed_seen": (state.get("signoff") or {}).get(
                                        "signed_seen"),
                                    "note": "held calls checked on the frames", **body},
                sample)


@pytest.fixture
def serve():
    """Start a review server on a results folder; every one started is stopped after."""
    servers = []

    def start(out, **options):
        server = make_server(out, port=0, reviewer="tester", **options)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server
    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def crowded(results, tmp_path_factory):  # noqa: F811 (the imported fixture, used)
    """The predict run with each event copied five times a few pixels apart as flagged
    ``wbc`` calls: hundreds of candidates of one call, as a grid page needs."""
    out = tmp_path_factory.mktemp("crowded") / "results"
    shutil.copytree(results / "results", out)
    sample = out / "P001"
    events = pd.read_parquet(sample / "events.parquet")
    copies = []
    for k in range(1, 6):
        more = events.assign(event_id=events["event_id"] + k * (int(events["event_id"].max())
                                                                + 1),
                             x=events["x"] + 2.0 * k, review=True, confidence=0.6)
        more["class"] = "wbc"
        copies.append(more)
    # (summary.json written after the events table: a finished run, not one predict is still
    # writing)
    write_events(sample, pd.concat([events, *copies], ignore_index=True), index=False)
    return out


def fresh(crowded, tmp_path):
    out = tmp_path / "results"
    shutil.copytree(crowded, out)
    return out


# ---------------------------------------------------------------------------------------------
# A page of decisions at once.

def test_a_match_extended_by_a_page_of_rows_is_the_whole_match(tmp_path):
    events, run = tiny_run(classes=["debris"] * 12)
    log = D.DecisionLog(tmp_path)
    D.record_decisions(tmp_path, run, {0: "debris", 1: D.REJECTED}, "a", decisions=log)
    D.record_decision(tmp_path, run, 2, "wbc", "a", decisions=log)
    before = log.matched(run)
    rows = D._decision_rows(run, [1, 2, 3, 4], ["debris", "ctc", "debris",
                                                        D.UNDECIDED], "b", None)
    rows = decision_journal._parse_typed(rows, tmp_path)
    extended = extend_match(before, rows, run)
    whole = D.match_decisions(pd.concat([before.table, rows], ignore_index=True), run)
    for name in ("decisions", "unattached", "table"):
        pd.testing.assert_frame_equal(getattr(extended, name).reset_index(drop=True),
                                      getattr(whole, name).reset_index(drop=True))
    assert extended.superseded == whole.superseded
    assert np.array_equal(extended.target, whole.target)
    with pytest.raises(ValueError):
        extend_match(before, pd.concat([rows.head(1), rows.head(1)]), run)


def test_a_grid_page_is_recorded_in_one_request(crowded, tmp_path, serve):
    out = fresh(crowded, tmp_path)
    server = serve(out)
    state = get(server, "state")[1]
    wbc = [c["event_id"] for c in state["candidates"] if c["call"] == "wbc"][:100]
    assert len(wbc) == 100
    status, answer = post(server, "decisions", {"event_ids": wbc, "call": "confirm",
                                                "run_id": state["run_id"], "reviewer": "g"})
    assert status == 200, answer
    assert answer["decisions"] == [[e, "wbc"] for e in wbc]
    assert answer["counts"]["reviewed"]["reviewed"] == 100
    table = pd.read_csv(out / "P001" / "review.csv")
    assert table["event_id"].tolist() == wbc and set(table["reviewer_call"]) == {"wbc"}
    summary = json.loads((out / "P001" / "summary.json").read_text())
    assert summary["reviewed"]["reviewed"] == 100
    # Refused as a whole: a repeated or unknown event, "undecided", too many, no run named,
    # a stale page.
    run = {"run_id": state["run_id"]}
    for body, code in (({"event_ids": [wbc[0], wbc[0]], "call": "confirm", **run}, 400),
                       ({"event_ids": [wbc[0], 10 ** 12], "call": "confirm", **run}, 400),
                       ({"event_ids": [wbc[0]], "call": "undecided", **run}, 400),
                       ({"event_ids": [True], "call": "confirm", **run}, 400),
                       ({"event_ids": list(range(501)), "call": "confirm", **run}, 400),
                       ({"event_ids": [wbc[0]], "call": "confirm"}, 400),
                       ({"event_ids": [wbc[0]], "call": "reject", "run_id": "old"}, 409)):
        assert post(server, "decisions", body)[0] == code, body
    assert len(pd.read_csv(out / "P001" / "review.csv")) == 100
    # A grid's page is of undecided events: one another reviewer decided meanwhile keeps that
    # decision, and the answer names it.
    debris = [c["event_id"] for c in state["candidates"] if c["call"] == "debris"][:3]
    post(server, "decision", {"event_id": debris[0], "call": "reject", "reviewer": "bob",
                              "run_id": state["run_id"]})
    status, answer = post(server, "decisions", {"event_ids": debris, "call": "confirm",
                                                "run_id": state["run_id"], "reviewer": "g",
                                                "undecided_only": True})
    assert status == 200 and answer["skipped"] == [debris[0]], answer
    assert answer["decisions"] == [[e, "debris"] for e in debris[1:]]
    table = pd.read_csv(out / "P001" / "review.csv")
    last = table.drop_duplicates("event_id", keep="last").set_index("event_id")
    assert last.loc[debris[0], "reviewer_call"] == "rejected"
    # One decision with the decision its page showed ("was"): one another reviewer made since
    # is not replaced unseen (409, naming who); with the one shown, it is.
    status, answer = post(server, "decision", {"event_id": debris[0], "call": "confirm",
                                               "reviewer": "ann", "run_id": state["run_id"],
                                               "was": None})
    assert status == 409 and "decided rejected by bob" in answer["error"], answer
    assert post(server, "decision", {"event_id": debris[0], "call": "undecided",
                                     "reviewer": "ann", "run_id": state["run_id"],
                                     "was": "debris"})[0] == 409
    # The same decision as the one made since (two reviewers confirming one event at once):
    # nothing is replaced unseen, so it is saved, not answered "decide again".
    assert post(server, "decision", {"event_id": debris[0], "call": "reject", "reviewer": "ann",
                                     "run_id": state["run_id"], "was": None})[0] == 200
    assert post(server, "decision", {"event_id": debris[0], "call": "confirm", "reviewer": "ann",
                                     "run_id": state["run_id"], "was": "rejected"})[0] == 200
    assert post(server, "decision", {"event_id": debris[0], "call": "confirm",
                                     "run_id": state["run_id"], "was": 5})[0] == 400
    # A word no decision is would never match: malformed (400), not "read again" (409).
    status, answer = post(server, "decision", {"event_id": debris[0], "call": "confirm",
                                               "run_id": state["run_id"], "was": "banana"})
    assert status == 400 and "'rejected' or null" in answer["error"], answer
    # A name with a newline would split review.csv's line: recorded on one line.
    post(server, "decision", {"event_id": debris[1], "call": "reject", "reviewer": "x\ny",
                              "run_id": state["run_id"]})
    assert pd.read_csv(out / "P001" / "review.csv")["reviewer"].iloc[-1] == "x y"


def test_only_the_pages_events_are_decided_and_a_sign_off_signs_what_was_read(
        results, tmp_path, serve):  # noqa: F811 (the imported fixture, used)
    """A decision on an event the page does not list (neither a counted-class call, flagged,
    nor in the quality-control sample) is refused: it would change the counts on no page and
    in no sign-off's list. A sign-off names the decisions as its signer read them (the
    state's stamp): one recorded since, by another page or script, makes it 409, unsigned."""
    out = tmp_path / "results"
    shutil.copytree(results / "results", out)
    events = pd.read_parquet(out / "P001" / "events.parquet")
    # Unflagged debris calls past the quality-control sample's size: some are not listed.
    step = int(events["event_id"].max()) + 1
    more = [events.assign(event_id=events["event_id"] + k * step, x=events["x"] + 2.0 * k,
                          review=False, guard="", **{"class": "debris"}) for k in range(1, 9)]
    write_events(out / "P001", pd.concat([events, *more], ignore_index=True), index=False)
    server = serve(out)
    state = get(server, "state")[1]
    listed = {c["event_id"] for c in state["candidates"]}
    every = pd.read_parquet(out / "P001" / "events.parquet")["event_id"].astype(int)
    off = [e for e in every if e not in listed]
    assert off, "the quality-control sample leaves unflagged debris calls off the page"
    before = (out / "P001" / "review.csv").exists()
    status, answer = post(server, "decision", {"event_id": off[0], "call": "ctc",
                                               "run_id": state["run_id"]})
    assert status == 400 and "not on its review page" in answer["error"], answer
    assert post(server, "decisions", {"event_ids": [min(listed), off[0]], "call": "reject",
                                      "run_id": state["run_id"]})[0] == 400
    assert (out / "P001" / "review.csv").exists() == before
    # `was` names the decision read: the model's call given for an undecided event is told so.
    call = next(c["call"] for c in state["candidates"] if c["event_id"] == min(listed))
    status, answer = post(server, "decision", {"event_id": min(listed), "call": "reject",
                                               "run_id": state["run_id"], "was": call})
    assert status == 409 and "is undecided now" in answer["error"], answer
    assert "never the model's call" in answer["error"]
    # Read, then another reviewer decides: the first reader's sign-off is refused.
    read = get(server, "state")[1]["stamp"]
    assert post(server, "decision", {"event_id": min(listed), "call": "reject",
                                     "run_id": state["run_id"], "reviewer": "bob"})[0] == 200
    status, answer = post(server, "signoff", {"reviewer": "ann", "run_id": state["run_id"],
                                              "stamp": read})
    assert status == 409 and "decisions recorded since it was read" in answer["error"], answer
    assert not (out / "P001" / "signoff.json").exists()
    assert post(server, "signoff", {"reviewer": "ann", "run_id": state["run_id"]})[0] == 400
    status, answer = sign(server, {"reviewer": "ann", "run_id": state["run_id"]})
    assert status == 200 and answer["signoff"]["decided"] == 1, answer


# ---------------------------------------------------------------------------------------------
# A second reading.

@pytest.mark.parametrize("first, second, expected", [
    (["a", "a", "b", "b"], ["a", "a", "b", "b"], 1.0),
    (["a", "b", "a", "b"], ["b", "a", "b", "a"], -1.0),
    (["a", "a", "a", "b"], ["a", "a", "b", "b"], 0.5),   # po 3/4, pe 1/2
    (["a", "a"], ["a", "a"], None),                      # one label throughout: undefined
    ([], [], None),
])
def test_cohen_kappa(first, second, expected):
    got = cohen_kappa(first, second)
    assert got == (None if expected is None else pytest.approx(expected))


def test_cohen_kappa_agrees_with_scikit_learn():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(3)
    labels = np.array(["ctc", "wbc", "debris", "rejected"])
    for _ in range(20):
        a = labels[rng.integers(0, 4, 50)]
        b = np.where(rng.random(50) < 0.7, a, labels[rng.integers(0, 4, 50)])
        assert cohen_kappa(list(a), list(b)) == pytest.approx(metrics.cohen_kappa_score(a, b))


def test_readings_compared_on_the_events_both_decided():
    def decided(calls):
        return pd.DataFrame({"event_id": list(calls), "reviewer_call": list(calls.values()),
                             "reviewer": "r", "model_call": "wbc"})
    got = compare_readings(decided({1: "wbc", 2: "wbc", 3: "rejected", 4: "ctc"}),
                           decided({2: "wbc", 3: "wbc", 4: "ctc", 5: "wbc"}))
    assert (got["first"], got["second"], got["both"], got["agree"]) == (4, 4, 3, 2)
    assert [(d["event_id"], d["first"], d["second"]) for d in got["disagreements"]] == [
        (3, "rejected", "wbc")]
    assert got["kappa"] == pytest.approx(cohen_kappa(["wbc", "rejected", "ctc"],
                                                     ["wbc", "wbc", "ctc"]), abs=1e-4)


def test_a_second_reading_is_kept_apart_and_compared(crowded, tmp_path, serve):
    out = fresh(crowded, tmp_path)
    server = serve(out)
    state = get(server, "state")[1]
    run = state["run_id"]
    ids = [c["event_id"] for c in state["candidates"] if c["call"] == "wbc"][:6]
    assert post(server, "decisions", {"event_ids": ids, "call": "confirm", "run_id": run,
                                      "reviewer": "ann"})[0] == 200
    for event_id, call in zip(ids[:4], ["confirm", "confirm", "reject", "ctc"]):
        status, answer = post(server, "decision", {"event_id": event_id, "call": call,
                                                   "run_id": run, "reviewer": "bob",
                                                   "reading": "second"})
        assert status == 200, answer
    # One person reads one reading: the first reader deciding in the second (names told
    # apart by case and spacing alone are one) was counted as agreeing with themselves.
    for same in (" ANN ", "A nn", "\uff21\uff2e\uff2e"):  # (full-width letters too)
        status, said = post(server, "decision", {"event_id": ids[5], "call": "confirm",
                                                 "run_id": run, "reviewer": same,
                                                 "reading": "second"})
        assert status == 400 and "decided events of this sample in the first reading" in \
            said["error"], same
    status, said = post(server, "decision", {"event_id": ids[5], "call": "reject",
                                             "run_id": run, "reviewer": "bob"})
    assert status == 400 and "in the second reading: a first reading is another" in \
        said["error"]
    # Without a name, never under the server's --reviewer (usually the first reader's): a
    # second reader's decisions went in under it, and that reader was refused their own.
    for nameless in ({}, {"reviewer": "  "}):
        status, said = post(server, "decision", {"event_id": ids[4], "call": "confirm",
                                                 "run_id": run, "reading": "second",
                                                 **nameless})
        assert status == 400 and "needs its reader's own name" in said["error"]
    # The second reader's decisions are in their own journal, never counted.
    assert len(pd.read_csv(out / "P001" / "review.csv")) == 6
    second = pd.read_csv(out / "P001" / D.SECOND_FILE)
    assert second["reviewer"].tolist() == ["bob"] * 4
    summary = json.loads((out / "P001" / "summary.json").read_text())
    assert summary["reviewed"]["reviewed"] == 6
    assert answer["counts"]["reviewed"]["reviewed"] == 4  # the second reading's own page
    # Its page is blind: its own decisions, no agreement, no sign-off.
    blind = get(server, "state?reading=second")[1]
    assert blind["reading"] == "second" and "agreement" not in blind
    assert sum(c["decision"] is not None for c in blind["candidates"]) == 4
    # A reading no route takes is a malformed request (400), not a problem of the results.
    status, said = get(server, "state?reading=third")
    assert status == 400 and "reading must be 'first' or 'second'" in said["error"]
    agreement = get(server, f"agreement?run={run}")[1]
    assert (agreement["both"], agreement["agree"]) == (4, 2)
    assert [(d["event_id"], d["first"], d["second"], d["second_reviewer"])
            for d in agreement["disagreements"]] == [(ids[2], "wbc", "rejected", "bob"),
                                                     (ids[3], "wbc", "ctc", "bob")]
    assert agreement.pop("signoff") is None  # the sign-off beside it (none yet)
    assert get(server, "state")[1]["agreement"] == agreement
    # Adjudicated: the first reading decides the event again; it counts, and agrees.
    assert post(server, "decision", {"event_id": ids[2], "call": "reject", "run_id": run,
                                     "reviewer": "ann"})[0] == 200
    adjudicated = get(server, "agreement")[1]
    assert adjudicated["agree"] == 3
    # The readers' own agreement, as each first decided, is what adjudication leaves alone.
    assert (adjudicated["independent"]["both"], adjudicated["independent"]["agree"]) == (4, 2)
    assert adjudicated["independent"]["kappa"] == agreement["kappa"]
    assert adjudicated["independent"]["disagreed"] == [ids[2], ids[3]]  # which, kept
    assert post(server, "decision", {"event_id": ids[0], "call": "confirm", "run_id": run,
                                     "reading": "third"})[0] == 400
    # ids[3] (first wbc, second ctc) is left: a possible missed CTC, which a sign-off
    # without a note took without a word; refused, named, as undecided counted calls are.
    status, said = sign(server, {"reviewer": "lead", "run_id": run, "note": ""})
    assert status == 400 and "1 disagreement(s) of the two readers on a counted class not " \
        f"adjudicated (event(s) {ids[3]})" in said["error"]
    # A second reader's "sign-off" was recorded as the first reading's: refused, said.
    status, said = sign(server, {"reviewer": "bob", "run_id": run, "reading": "second"})
    assert status == 400 and "a sign-off has no 'reading'; a sign-off is the first " \
        "reading's alone" in said["error"]
    # ... and by its reviewer's name (a browser's box filled with the second reader's name
    # on the first reading's page signed the counted reading under it).
    status, said = sign(server, {"reviewer": "bob", "run_id": run})
    assert status == 400 and "decided events of this sample in the second reading" in \
        said["error"]
    # A second reader's decision after the signer read the agreement (a possible missed CTC
    # on an event the first left undecided) was signed under a note that never saw it.
    state = get(server, "state")[1]
    post(server, "decision", {"event_id": ids[5], "call": "ctc", "run_id": run,
                              "reviewer": "bob", "reading": "second"})
    for named in ({"second_stamp": state["agreement"]["second_stamp"]}, {}):
        status, said = post(server, "signoff", {"reviewer": "lead", "run_id": run,
                                                "stamp": state["stamp"], "note": "seen",
                                                **named})
        assert status == 409 and ("the second reading has decisions this sign-off did not "
                                  "read" if named else "the sign-off names none as read") in \
            said["error"]
    post(server, "decision", {"event_id": ids[5], "call": "undecided", "run_id": run,
                              "reviewer": "bob", "reading": "second"})
    # Signed off, then a second-reading decision: the sign-off's agreement no longer stands.
    signed = sign(server, {"reviewer": "lead", "run_id": run})[1]["signoff"]
    assert signed["status"] == "current"
    assert signed["second_reading"]["independent"]["agree"] == 2
    assert "as first read 2 of 4" in (out / "P001" / "index.html").read_text()
    post(server, "decision", {"event_id": ids[4], "call": "reject", "run_id": run,
                              "reviewer": "bob", "reading": "second"})
    assert get(server, "state")[1]["signoff"]["status"] == "changed since"
    # ... and the files say so at once, as after a first-reading decision.
    assert json.loads((out / "P001" / "summary.json").read_text())["signoff"]["status"] == \
        "changed since"
    assert 'data-signoff="changed since"' in (out / "P001" / "index.html").read_text()
    # ... and so do the commands that check a sign-off without the server (verify
    # --results, crops, export-events): they said "current".
    from ctcnet.exports.sample_review import signoff_now
    from ctcnet.inference.summary import RunSummary

    summary = RunSummary.from_dict(json.loads((out / "P001" / "summary.json").read_text()))
    assert signoff_now(out / "P001", pd.read_parquet(out / "P001" / "events.parquet"),
                       summary, say=False)["status"] == "changed since"
    # The blind reader's own correction is their call (their last): a mis-key put right
    # (ids[3]: ctc, then reject by mistake, then ctc again) leaves the figure as it was.
    for call in ("reject", "ctc"):
        post(server, "decision", {"event_id": ids[3], "call": call, "run_id": run,
                                  "reviewer": "bob", "reading": "second"})
    assert get(server, "agreement")[1]["independent"]["agree"] == 2
    # Every sign-off is kept in order, the latest in signoff.json.
    sign(server, {"reviewer": "lead2", "run_id": run})
    history = [json.loads(line) for line in
               (out / "P001" / "signoff_history.jsonl").read_text().splitlines()]
    assert [h["reviewer"] for h in history] == ["lead", "lead2"]
    # A decision in the other reading taken back leaves its reviewer free (one misclick on
    # the second reading's link barred the lab's lead from the sample for good).
    for call in ("confirm", "undecided"):
        assert post(server, "decision", {"event_id": ids[5], "call": call, "run_id": run,
                                         "reviewer": "fay", "reading": "second"})[0] == 200
    assert post(server, "decision", {"event_id": ids[5], "call": "undecided", "run_id": run,
                                     "reviewer": "fay"})[0] == 200


# ---------------------------------------------------------------------------------------------
# The sign-off.


def test_each_reading_lists_the_events_its_own_decisions_bring_in(crowded, tmp_path, serve,
                                                                 caplog):
    """Events off the review list that a decision brings in (``decided``: decided on an
    earlier run that called them otherwise): each reading's page lists its own. The blind
    second reader's page listed the first reader's (telling what they decided) and not its
    own (decisions that counted in the agreement, off their reader's page)."""
    out = fresh(crowded, tmp_path)
    events = pd.read_parquet(out / "P001" / "events.parquet")
    copied = events["event_id"] > events["event_id"].max() / 6  # confident wbc: most unlisted
    write_events(out / "P001", events.assign(review=events["review"] & ~copied,
                                             confidence=events["confidence"].where(~copied,
                                                                                   0.99)),
                 index=False)
    listed = {c["event_id"] for c in get(serve(out), "state")[1]["candidates"]}
    events, summary = D.load_sample(out / "P001")
    run = D.RunEvents.of_sample(out / "P001", events, summary)
    first_only, second_only = [int(e) for e in events["event_id"] if int(e) not in listed][:2]
    D.record_decision(out / "P001", run, first_only, "wbc", "ann")
    second = decision_journal.DecisionLog(out / "P001", D.SECOND_FILE)
    D.record_decision(out / "P001", run, second_only, "debris", "bob", decisions=second)
    # A rejection of a call a rerun changed (the same numbering): said of either journal.
    rejected = int(events.loc[events["class"] == "wbc", "event_id"].iloc[0])
    D.record_decision(out / "P001", run, rejected, D.REJECTED, "bob", decisions=second)
    write_events(out / "P001", events.assign(**{"class": events["class"].where(
        events["event_id"] != rejected, "debris")}), index=False)
    caplog.clear()
    server = serve(out)
    for reading, own, other in (("first", first_only, second_only),
                                ("second", second_only, first_only)):
        state = get(server, f"state?reading={reading}")[1]
        rows = {c["event_id"]: c for c in state["candidates"]}
        assert own in rows and other not in rows, reading
        assert rows[own]["why"] == "decided" and rows[own]["decision"] is not None
        assert set(rows) == listed | {own}
        decided = [r for r in state["reasons"] if r["code"] == "decided"]
        assert [r["count"] for r in decided] == [1], state["reasons"]
    assert f"1 decision(s) in {D.SECOND_FILE} count for no event of this run" in caplog.text
    assert f"event {rejected}: rejected a wbc call; this run calls the event debris" in \
        caplog.text


def test_a_sign_off_with_no_decision_brings_the_run_index_up_to_date(crowded, tmp_path, serve):
    """A person who reviewed the list and changed nothing signs off: samples.csv (the file a
    study reads) and run.json (the one a laboratory system reads) say signed off at once, the
    counts after review and their intervals the automatic ones."""
    from ctcnet.inference.run_index import write_run_index

    out = fresh(crowded, tmp_path)
    write_run_index(out, ["P001"], 1, {})
    before = json.loads((out / "run.json").read_text())
    assert before["outputs"][0]["result_state"] == "partial" and "reviewed_at" not in before
    server = serve(out)
    state = get(server, "state")[1]
    status, answer = sign(server, {"reviewer": "ann", "run_id": state["run_id"]})
    assert status == 200, answer
    row = pd.read_csv(out / "samples.csv").set_index("name").loc["P001"]
    assert bool(row["signed_off"]) and row["after_review_ctc"] == row["count_ctc"]
    assert row["after_review_per_7_5_ml_low_ctc"] == row["per_7_5_ml_low_ctc"]
    assert row["after_review_per_7_5_ml_high_ctc"] == row["per_7_5_ml_high_ctc"]
    index = json.loads((out / "run.json").read_text())
    entry = index["outputs"][0]
    assert entry["signed_off"] is True and entry["after_review"]["ctc"] == entry["counts"]["ctc"]
    assert entry["after_review_per_7_5_ml_interval"] == entry["per_7_5_ml_interval"]
    assert index["reviewed_at"] and index["written_at"] == before["written_at"]
    summary = json.loads((out / "P001" / "summary.json").read_text())
    assert entry["result_state"] == summary["result_state"]["state"]
    # The headline names the figures to report, each with its interval.
    low, high = entry["per_7_5_ml_interval"]["ctc"]
    assert f"report the counts after review: ctc {entry['counts']['ctc']} (" in \
        summary["result_state"]["text"]
    from ctcnet.inference.counts import interval_text

    assert f"95 % blood-draw interval {interval_text(low, high)})" in \
        summary["result_state"]["text"]  # rounded outward, as samples.csv holds it


def test_a_sign_off_is_written_beside_the_counts_and_shown_by_crops(crowded, tmp_path, serve,
                                                                     caplog):
    from ctcnet.cli import main
    from ctcnet.inference.run_index import write_run_index

    out = fresh(crowded, tmp_path)
    write_run_index(out, ["P001"], 1, {})  # the run index ctcnet predict writes
    # Nobody reviewed: the column is there (every night's table has it), empty.
    assert pd.read_csv(out / "samples.csv")["signed_off"].isna().all()
    sample = out / "P001"
    server = serve(out)
    state = get(server, "state")[1]
    assert state["signoff"] is None
    ids = [c["event_id"] for c in state["candidates"] if c["call"] == "wbc"][:3]
    post(server, "decisions", {"event_ids": ids, "call": "confirm", "run_id": state["run_id"]})
    assert 'data-signoff="none"' in (sample / "index.html").read_text()
    # Decided, not signed: samples.csv says so at once (counts after review, signed_off
    # False), not a row that reads as never reviewed until the next predict run.
    table = pd.read_csv(out / "samples.csv").set_index("name")
    assert pd.notna(table.loc["P001", "signed_off"]) and not bool(table.loc["P001", "signed_off"])
    assert table.loc["P001", "after_review_ctc"] >= 0
    status, answer = sign(server, {"reviewer": "ann", "run_id": state["run_id"]})
    assert status == 200, answer
    record = answer["signoff"]
    assert record["reviewer"] == "ann" and record["status"] == "current"
    assert record["decided"] == 3
    # What was signed beyond the counts: the sample's status, its blood and the model.
    assert record["sample_status"] == "partial" and record["blood_volume_read_ml"] > 0
    assert record["model_sha256"]
    # Each figure's interval as signed: the one the headline names, kept with the record.
    signed = json.loads((sample / "signoff.json").read_text())
    assert signed["after_review_per_7_5_ml_interval"] == json.loads(
        (sample / "summary.json").read_text())["reviewed"]["after_review_per_7_5_ml_interval"]
    assert set(signed["after_review_per_7_5_ml_interval"]) == set(
        signed["after_review_per_7_5_ml"])
    assert "signed on a partial sample" in (sample / "index.html").read_text()
    # The folder's samples.csv is brought up to date with it (predict wrote it unsigned).
    table = pd.read_csv(out / "samples.csv").set_index("name")
    assert bool(table.loc["P001", "signed_off"])
    assert record["unreviewed"] == len(state["candidates"]) - 3
    summary = json.loads((sample / "summary.json").read_text())
    assert summary["signoff"] == record
    assert summary["reviewed"]["reviewed"] == 3 and summary["tally"]  # beside the counts
    page = (sample / "index.html").read_text()
    assert 'data-signoff="current"' in page and "reviewed by ann on" in page
    # (the crowded cartridge is partial: more CTCs than blood holds, its headline says so first)
    assert summary["result_state"]["state"] == "partial"
    assert "SIGNED OFF by ann" in summary["result_state"]["text"] and "SIGNED OFF by ann" in page
    assert sign(server, {"run_id": "old"})[0] == 409
    assert sign(server, {"run_id": 5})[0] == 400
    assert sign(server, {"reviewer": "ann"})[0] == 400  # which run, unsaid
    with caplog.at_level("INFO", logger="ctcnet.exports"):
        assert main(["crops", str(out), "--reviewed", "--out", str(tmp_path / "ds")]) == 0
    assert "reviewed by ann on" in caplog.text
    info = json.loads((tmp_path / "ds" / "dataset.json").read_text())
    assert info["sources"][0]["signoff"]["reviewer"] == "ann"
    # What the review did, per sample, and each crop's call beside its label (a relabel told
    # from the file): the three decisions, the crops of those not rejected.
    kinds = info["sources"][0]["decisions"]
    assert sum(kinds.values()) == 3 and len(info["crops"]) == 3 - kinds["rejected"]
    assert sum(c["label"] != c["model_call"] for c in info["crops"]) == kinds["relabelled"]
    # A decision after the sign-off: it no longer covers the decisions, and says so.
    answer = post(server, "decision", {"event_id": ids[0], "call": "reject",
                                       "run_id": state["run_id"]})[1]
    assert answer["signoff"]["status"] == "changed since"
    assert json.loads((sample / "summary.json").read_text())["signoff"]["status"] == \
        "changed since"
    assert 'data-signoff="changed since"' in (sample / "index.html").read_text()
    assert "SIGN-OFF NO LONGER HOLDS" in (sample / "index.html").read_text()
    # ... and samples.csv follows the sign-off gone stale.
    table = pd.read_csv(out / "samples.csv").set_index("name")
    assert not bool(table.loc["P001", "signed_off"])
    assert table.loc["P001", "signoff_status"] == "changed since"
    # The count after review has its own blood-draw interval, not the automatic count's.
    reviewed = json.loads((sample / "summary.json").read_text())["reviewed"]
    from ctcnet.inference.counts import rate_interval

    assert reviewed["after_review_per_7_5_ml_interval"]["ctc"] == rate_interval(
        reviewed["after_review"]["ctc"], reviewed["blood_volume_ml"])
    from ctcnet.inference.counts import interval_at_two_decimals

    assert table.loc["P001", "after_review_per_7_5_ml_high_ctc"] == interval_at_two_decimals(
        *reviewed["after_review_per_7_5_ml_interval"]["ctc"])[1]  # rounded outward
    caplog.clear()
    with caplog.at_level("WARNING", logger="ctcnet.exports"):
        assert main(["crops", str(out), "--reviewed", "--out", str(tmp_path / "ds2")]) == 0
    assert "decisions changed since the sign-off" in caplog.text


# ---------------------------------------------------------------------------------------------
# In headless Chromium.

needs_chromium = pytest.mark.skipif(_chromium() is None, reason="headless Chromium not "
                                    "installed (apt-get install chromium)")


@contextlib.contextmanager
def review_page(crowded, tmp_path, serve):
    """(results folder, server, browser) on a fresh copy of the crowded run, the page loaded;
    the browser closed after."""
    pytest.importorskip("websocket")
    out = fresh(crowded, tmp_path)
    # As ctcnet review serves it: the page opened at the address with the server's token
    # (its answer sets the cookie every later request of the page carries).
    server = serve(out, token="page-token")
    browser = Browser(server_url(server) + "?token=page-token")
    try:
        browser.wait_for("document.body.getAttribute('data-ready') === 'yes'")
        yield out, server, browser
    finally:
        browser.close()


@needs_chromium
def test_the_page_ctcnet_review_opens_from_its_file_loads_with_its_tiles(crowded, tmp_path,
                                                                        serve):
    """As ctcnet review opens it: a file that sends the browser to the token's address (a
    navigation from another site), on to the session's path. A Strict cookie was not sent on
    it (every first page a 403), and tiles asked for outside the session's path were 403s."""
    from ctcnet.review_server.access import opening_page

    pytest.importorskip("websocket")
    out = fresh(crowded, tmp_path)
    server = serve(out, token="page-token")
    opener = opening_page(server_url(server) + "?token=page-token")
    browser = Browser(opener.as_uri())
    try:
        browser.wait_for("document.body.getAttribute('data-ready') === 'yes'")
        assert "/s/" in browser.js("location.pathname")
        browser.wait_for("Array.from(document.querySelectorAll('#tile img'))"
                         ".some(i => i.complete && i.naturalWidth > 0)")
    finally:
        browser.close()
        opener.unlink()


@needs_chromium
def test_grid_confirms_a_page_of_100_tiles_in_one_action_in_chromium(crowded, tmp_path, serve):
    with review_page(crowded, tmp_path, serve) as (out, server, browser):
        # Count the requests that record decisions.
        browser.js("window.posts = []; var f0 = window.fetch; window.fetch = function (u, o) {"
                   " if (o && o.method === 'POST') posts.push(u); return f0(u, o); }; 1")
        # A channel brightened for the event view is brightened on the grid's tiles too.
        browser.js("var i = document.querySelectorAll('#display-controls input[type=range]')"
                   "[1]; i.value = 10; i.dispatchEvent(new Event('input')); 1")
        browser.key("g")
        browser.wait_for("document.body.getAttribute('data-grid') === 'on'")
        browser.js("var s = document.getElementById('grid-call'); s.value = 'wbc'; "
                   "s.dispatchEvent(new Event('change')); 1")
        assert browser.js("document.querySelectorAll('#grid-cells .cell').length") == 100
        assert browser.js("document.querySelectorAll('#grid-cells .cell .gain').length") == 100
        page = json.loads(browser.js("JSON.stringify(grid.page.map(c => c.event_id))"))
        browser.wait_for("Array.from(document.querySelectorAll('#grid-cells img'))"
                         ".slice(0, 4).every(i => i.complete && i.naturalWidth > 0)")
        browser.key("y")                            # the whole page, in one action
        browser.wait_for("document.body.getAttribute('data-grid-decided') === '100'")
        # (under the session's path the token's cookie is kept to)
        from ctcnet.review_server.access import session_prefix

        assert json.loads(browser.js("JSON.stringify(posts)")) == [
            f"{session_prefix('page-token')}/api/P001/decisions"]
        table = pd.read_csv(out / "P001" / "review.csv")
        assert table["event_id"].tolist() == page and set(table["reviewer_call"]) == {"wbc"}
        # The next page: two tiles picked as exceptions, the rest confirmed.
        second = json.loads(browser.js("JSON.stringify(grid.page.map(c => c.event_id))"))
        assert second and not set(second) & set(page)
        browser.js("document.querySelectorAll('#grid-cells .cell')[1].click(); "
                   "document.querySelectorAll('#grid-cells .cell')[4].click(); 1")
        assert browser.js("document.querySelectorAll('#grid-cells .cell.marked').length") == 2
        browser.js("document.getElementById('grid-confirm').click()")
        browser.wait_for(f"document.body.getAttribute('data-grid-decided') === "
                         f"'{100 + len(second) - 2}'")
        decided = set(pd.read_csv(out / "P001" / "review.csv")["event_id"])
        assert decided == set(page) | (set(second) - {second[1], second[4]})
        # The exceptions are left for one-by-one review, not put on the next page.
        third = json.loads(browser.js("JSON.stringify(grid.page.map(c => c.event_id))"))
        assert not {second[1], second[4]} & set(third)
        browser.key("g")
        browser.wait_for("document.body.getAttribute('data-grid') === 'off'")
        rows = browser.js("document.querySelectorAll('#list div[data-decision=wbc]').length")
        assert rows == len(decided)


@needs_chromium
def test_sliders_sign_off_and_a_second_reading_in_chromium(crowded, tmp_path, serve):
    with review_page(crowded, tmp_path, serve) as (out, server, browser):
        channels = json.loads(browser.js("JSON.stringify(state.channels)"))
        sliders = "#display-controls input[type=range]"
        assert browser.js(f"document.querySelectorAll('{sliders}').length") == len(channels)
        assert browser.js("document.querySelectorAll('#tile .gain').length") == 0
        # The second channel twice as bright as the sample's scale: a layer over its panel.
        browser.js(f"var i = document.querySelectorAll('{sliders}')[1]; i.value = 10; "
                   "i.dispatchEvent(new Event('input')); 1")
        layer = "document.querySelector('#tile .gain')"
        assert browser.js(f"{layer}.getAttribute('data-channel')") == "1"
        assert browser.js(f"getComputedStyle({layer}).backdropFilter") == "brightness(2)"
        left = browser.js(f"{layer}.style.left")
        assert left.startswith(f"{100 / (len(channels) + 1):.2f}"[:4])
        browser.key("y")
        browser.wait_for("document.body.getAttribute('data-saved') === '1'")
        assert browser.js("document.querySelectorAll('#tile .gain').length") >= 1  # kept
        browser.js("document.getElementById('reviewer').value = 'ann'; 1")
        browser.js("document.getElementById('signoff-note').value = 'held calls checked'; 1")
        browser.js("document.getElementById('signoff-button').click()")  # what it would sign
        browser.js("document.getElementById('signoff-button').click()")  # signs
        browser.wait_for("document.getElementById('signoff-text')"
                         ".getAttribute('data-status') === 'current'")
        assert "signed off by ann" in browser.js(
            "document.getElementById('signoff-text').textContent")
        summary = json.loads((out / "P001" / "summary.json").read_text())
        assert summary["signoff"]["reviewer"] == "ann"
        browser.send("Page.reload")                  # the slider is remembered
        browser.wait_for("document.body.getAttribute('data-ready') === 'yes'")
        assert browser.js(f"document.querySelectorAll('{sliders}')[1].value") == "10"
        # The static report the page links to shows its gallery (sandboxed, its images are
        # cross-site requests: refused, "3 of 3 images failed to load").
        # (the page's own link to it, and to the second reading, under the session's path,
        # where the cookie is sent)
        here = browser.js("location.href")
        report = browser.js("document.getElementById('static-link').href")
        browser.send("Page.navigate", url=report)
        browser.wait_for("document.body.hasAttribute('data-images-ok')")
        assert browser.js("document.body.getAttribute('data-images-ok')") == "yes"
        # A second reader's page: blind, its decisions in their own journal.
        browser.send("Page.navigate", url=here.split("?")[0] + "?reading=second")
        browser.wait_for("document.body.getAttribute('data-ready') === 'yes' && "
                         "reading === 'second'")
        assert "second reading" in browser.js("document.title")
        assert browser.js("document.querySelectorAll('#list div[data-decision]:not("
                          "[data-decision=\"\"])').length") == 0
        browser.js("document.getElementById('reviewer').value = 'bob'; 1")  # another reader
        browser.key("n")
        browser.wait_for("document.body.getAttribute('data-saved') === '1'")
    assert len(pd.read_csv(out / "P001" / D.SECOND_FILE)) == 1
    assert len(pd.read_csv(out / "P001" / "review.csv")) == 1


def test_reviewed_counts_kept_up_to_date_are_count_reviewed(tmp_path):
    from ctcnet.inference.counts import count_events, count_reviewed
    from ctcnet.review.tally import ReviewTally

    classes = ["ctc", "wbc", "cluster", "debris"]
    rng = np.random.default_rng(1)
    events, run = tiny_run(classes=list(rng.choice(classes, 30)))
    events = events.assign(review=rng.random(30) < 0.3, confidence=0.8, guard="",
                           edge_cut=False)
    tally = count_events(events, classes, ["ctc", "cluster"], 7.5)
    counter, log = ReviewTally(events, tally), D.DecisionLog(tmp_path)
    for step in range(60):
        event = int(rng.integers(0, 30))
        if step % 7 == 3:
            D.clear_decision(tmp_path, run, event, "a", decisions=log)
        elif step % 5 == 0:
            calls = {int(e): str(rng.choice(classes + [D.REJECTED]))
                     for e in rng.choice(30, 4, replace=False)}
            D.record_decisions(tmp_path, run, calls, "a", decisions=log)
        else:
            D.record_decision(tmp_path, run, event, str(rng.choice(classes + [D.REJECTED])),
                              "a", decisions=log)
        matched = log.matched(run)
        assert counter.counts(matched) == count_reviewed(events, matched.decisions, tally,
                                                         len(matched.unattached),
                                                         matched.latest), step
    assert matched.extends is not None  # brought up to date, not counted whole each time


def test_a_take_back_moves_when_the_review_last_changed(tmp_path):
    """An export stamped with the latest decision (FCS CTCNET_REVIEW_UPDATED) is out of date
    once a later decision is taken back: reviewed.updated moves on, never back."""
    from datetime import UTC, datetime

    from ctcnet.inference.counts import count_events, count_reviewed
    from ctcnet.review.tally import ReviewTally

    events, run = tiny_run(classes=["ctc", "ctc", "wbc"])
    events = events.assign(review=False, confidence=0.9, guard="", edge_cut=False)
    tally = count_events(events, ["ctc", "wbc"], ["ctc"], 7.5)
    counter, log = ReviewTally(events, tally), D.DecisionLog(tmp_path)
    at = [datetime(2026, 12, 6, 10, 49, s, tzinfo=UTC) for s in (37, 39, 46)]
    D.record_decision(tmp_path, run, 0, "ctc", "a", now=at[0], decisions=log)
    D.record_decision(tmp_path, run, 1, D.REJECTED, "a", now=at[1], decisions=log)
    assert counter.counts(log.matched(run)).updated == "2026-12-06T10:49:39.000000+00:00"
    D.clear_decision(tmp_path, run, 1, "a", now=at[2], decisions=log)
    matched = log.matched(run)
    assert matched.extends is not None
    kept = counter.counts(matched)
    assert kept.updated == "2026-12-06T10:49:46.000000+00:00"
    assert kept.after_review["ctc"] == 2
    whole = D.match_decisions(D.read_decisions(tmp_path), run)  # the file read afresh
    assert whole.latest == kept.updated
    assert count_reviewed(events, whole.decisions, tally, updated=whole.latest) == kept




def _predicted(tmp_path):
    """A 2-frame cartridge predicted into ``results/P001`` with a tiny model, the review's
    counts written back by predict's hook: (backend, options, the sample's folder)."""
    from conftest import save_tiny_model

    from ctcnet.inference.backends import load_backend
    from ctcnet.inference.predict import PredictOptions, predict_cartridge
    from ctcnet.io.panel import load_panel
    from ctcnet.report import run_report
    from ctcnet.review_server.refresh import refresh_reviewed
    from ctcnet.simulate import simulate_cartridge

    simulate_cartridge(tmp_path / "cart", load_panel(None), num_frames=2,
                       frame_shape=(256, 320), seed=5, events_per_frame=25, sample_id="P001")
    save_tiny_model(tmp_path / "model.pt", crop_size=48)
    backend = load_backend(tmp_path / "model.pt", device="cpu", batch_size=64)
    options = PredictOptions(quiet=True, workers=0, gallery_limit=8, report=run_report,
                             refresh_review=refresh_reviewed)
    out = tmp_path / "results" / "P001"
    predict_cartridge(tmp_path / "cart", backend, out, options)
    return backend, options, out

def test_a_rerun_of_predict_keeps_the_review_counts_and_the_sign_off(tmp_path):
    """A nightly batch run again over a cartridge already done and reviewed rewrites its
    summary.json and index.html: the decisions' counts and the sign-off of that same run are
    written back into them once predict releases the folder (without the hook they are gone
    until the review server starts)."""
    from dataclasses import replace

    from ctcnet.inference.predict import predict_cartridge
    from ctcnet.review_server.sample import Sample

    backend, options, out = _predicted(tmp_path)
    sample = Sample("P001", out)
    state = sample.state("ann")
    ids = [c["event_id"] for c in state["candidates"]][:2]
    sample.decide_many({"event_ids": ids, "call": "confirm", "run_id": state["run_id"]}, "ann")
    sample.sign_off({"stamp": sample.decisions.stamp(), "note": "held calls checked",
                     "reviewer": "ann", "run_id": state["run_id"]}, "ann")
    before = json.loads((out / "summary.json").read_text())
    assert before["reviewed"]["reviewed"] == 2 and before["signoff"]["status"] == "current"

    predict_cartridge(tmp_path / "cart", backend, out, options)  # every frame from the journal
    after = json.loads((out / "summary.json").read_text())
    assert after["reviewed"] == before["reviewed"]
    assert after["signoff"]["reviewer"] == "ann" and after["signoff"]["status"] == "current"
    assert 'data-signoff="current"' in (out / "index.html").read_text()
    # The blood volume corrected in cartridge.json: the same decisions, other figures per
    # 7.5 mL than those signed. The sign-off stays shown, said to hold no longer.
    info = tmp_path / "cart" / "cartridge.json"
    info.write_text(json.dumps({**json.loads(info.read_text()), "blood_volume_ml": 5.0}))
    predict_cartridge(tmp_path / "cart", backend, out, options)
    moved = json.loads((out / "summary.json").read_text())
    assert moved["reviewed"]["after_review_per_7_5_ml"] != \
        before["reviewed"]["after_review_per_7_5_ml"]
    assert moved["signoff"]["status"] == "counts changed since"
    assert 'data-signoff="counts changed since"' in (out / "index.html").read_text()
    predict_cartridge(tmp_path / "cart", backend, out, replace(options, refresh_review=None))
    assert "reviewed" not in json.loads((out / "summary.json").read_text())


def test_a_sign_off_of_no_decision_is_stale_in_the_exports_once_the_volume_moves(tmp_path):
    """Signed with nothing decided ("the rest as called"), then the blood volume corrected:
    summary.json said "counts changed since", while verify --results and the FCS export read
    the sign-off as current (no decision: its figures were never checked)."""
    import pandas as pd

    from ctcnet.exports.results_audit import audit_results
    from ctcnet.exports.sample_review import signoff_now
    from ctcnet.inference.predict import predict_cartridge
    from ctcnet.inference.summary import RunSummary
    from ctcnet.review_server.sample import Sample

    backend, options, out = _predicted(tmp_path)
    sample = Sample("P001", out)
    state = sample.state("ann")
    sample.sign_off({"stamp": sample.decisions.stamp(), "note": "the rest as called",
                     "reviewer": "ann", "run_id": state["run_id"]}, "ann")

    def exported():
        events = pd.read_parquet(out / "events.parquet")
        return signoff_now(out, events, RunSummary.read(out), say=False)["status"]

    assert exported() == "current"
    info = tmp_path / "cart" / "cartridge.json"
    info.write_text(json.dumps({**json.loads(info.read_text()), "blood_volume_ml": 5.0}))
    predict_cartridge(tmp_path / "cart", backend, out, options)
    assert json.loads((out / "summary.json").read_text())["signoff"]["status"] == \
        "counts changed since"
    assert exported() == "counts changed since"
    (audited,) = audit_results(tmp_path / "results")
    assert "counts changed since" in json.dumps(audited)


def test_a_rerun_with_other_calls_says_the_sign_off_no_longer_holds(tmp_path, caplog):
    """predict --overwrite with another model: the same events, other calls. The decisions
    carry over; the sign-off was of another model's calls and no longer holds, which the run
    says rather than leave it to vanish from the report. The page says each carried decision
    against the call it was made on (a confirmed ctc call read as "relabelled ctc")."""
    from conftest import save_tiny_model

    from ctcnet.inference.backends import load_backend
    from ctcnet.inference.predict import PredictOptions, predict_cartridge
    from ctcnet.io.panel import load_panel
    from ctcnet.report import run_report
    from ctcnet.review_server.refresh import refresh_reviewed
    from ctcnet.review_server.sample import Sample
    from ctcnet.simulate import simulate_cartridge

    simulate_cartridge(tmp_path / "cart", load_panel(None), num_frames=2,
                       frame_shape=(256, 320), seed=5, events_per_frame=25, sample_id="P001")
    options = PredictOptions(quiet=True, workers=0, gallery_limit=8, report=run_report,
                             refresh_review=refresh_reviewed, overwrite=True)
    out = tmp_path / "results" / "P001"
    calls = {}
    for seed in (0, 1):
        save_tiny_model(tmp_path / f"m{seed}.pt", crop_size=48, seed=seed)
        backend = load_backend(tmp_path / f"m{seed}.pt", device="cpu", batch_size=64)
        with caplog.at_level("WARNING"):
            predict_cartridge(tmp_path / "cart", backend, out, options)
        calls[seed] = pd.read_parquet(out / "events.parquet")["class"].tolist()
        if seed == 0:
            sample = Sample("P001", out)
            state = sample.state("ann")
            every = pd.read_parquet(out / "events.parquet")["event_id"].tolist()
            sample.decide_many({"event_ids": every, "call": "confirm",
                                "run_id": state["run_id"]}, "ann")
            sample.sign_off({"stamp": sample.decisions.stamp(), "note": "held calls checked",
                             "reviewer": "ann", "run_id": state["run_id"]}, "ann")
            caplog.clear()
    assert calls[0] != calls[1]
    # Shown as of the calls before, not dropped: a LIMS read it as never reviewed.
    summary = json.loads((out / "summary.json").read_text())
    assert summary["signoff"]["status"] == "model changed since"
    assert "the sign-off by ann" in caplog.text and "sign it off" in caplog.text
    # The decisions carried onto other calls are said as such.
    changed = sum(a != b for a, b in zip(calls[0], calls[1]))
    assert f"{changed} of the {len(calls[0])} decision(s) in review.csv were made on other " \
        "calls" in caplog.text
    state = Sample("P001", out).state("ann")
    assert state["model"]["name"] == "m1.pt"  # the page names whose calls it shows
    rows = state["candidates"]
    seen = dict(enumerate(calls[0]))
    assert {r["event_id"]: r["decided_on"] for r in rows if r["decided_on"]} == {
        r["event_id"]: seen[r["event_id"]] for r in rows
        if r["decision"] and seen[r["event_id"]] != r["call"]}
    assert any(r["decided_on"] for r in rows)


def test_a_summary_edited_by_hand_is_said_as_it_is_written_again_from_the_events(
        results, tmp_path, caplog):  # noqa: F811 (the imported fixture)
    """A ctc count typed into summary.json (21 -> 30) was rewritten to 21 as the review server
    started, with no trace: a LIMS reading the file before then filed 30."""
    from ctcnet.review_server.sample import Sample

    out = tmp_path / "results"
    shutil.copytree(results / "results", out)
    path = out / "P001" / "summary.json"
    true = typed_wbc_count(path)
    with caplog.at_level("WARNING"):
        Sample("P001", out / "P001").write_counts()
    assert "edited after predict wrote it, or counted by another" in caplog.text
    assert json.loads(path.read_text())["counts"]["wbc"] == true
    # The file found is the evidence: kept, not written over without a copy.
    (kept,) = (out / "P001" / "previous").glob("summary-*-not-as-written.json")
    assert json.loads(kept.read_text())["counts"]["wbc"] == true + 9


def test_a_summary_edited_while_a_server_runs_is_written_again_at_its_next_look(
        results, tmp_path, caplog):  # noqa: F811 (the imported fixture)
    """A running server kept showing, and kept on disk, a count typed into summary.json
    until the next decision; verify already said FAILED."""
    from ctcnet.review_server.app import ReviewApp

    out = tmp_path / "results"
    shutil.copytree(results / "results", out)
    app = ReviewApp(out, saliency=False)
    app.sample("P001")
    path = out / "P001" / "summary.json"
    true = typed_wbc_count(path)
    with caplog.at_level("WARNING"):
        app.sample("P001")
    assert "edited after predict wrote it, or counted by another" in caplog.text
    assert json.loads(path.read_text())["counts"]["wbc"] == true
    (kept,) = (out / "P001" / "previous").glob("summary-*-not-as-written.json")
    assert json.loads(kept.read_text())["counts"]["wbc"] == true + 9
    written = path.stat().st_mtime_ns
    app.sample("P001")  # nothing changed since: nothing written
    assert path.stat().st_mtime_ns == written


def typed_wbc_count(path) -> int:
    """Type 9 more wbc into a summary.json by hand; the count it held."""
    summary = json.loads(path.read_text())
    true = summary["counts"]["wbc"]
    summary["counts"]["wbc"] = true + 9
    path.write_text(json.dumps(summary))
    return true


def test_a_summary_whose_after_review_figure_was_edited_is_kept_and_said(
        results, tmp_path, caplog):  # noqa: F811 (the imported fixture)
    """A figure after review typed into summary.json: draws refused it (its seal), and
    the review server's start wrote it over without a word, the evidence gone."""
    from ctcnet.review import decisions as D
    from ctcnet.review_server.sample import Sample

    out = tmp_path / "results"
    shutil.copytree(results / "results", out)
    sample = Sample("P001", out / "P001")
    ids = [c["event_id"] for c in sample.state("ann")["candidates"]][:1]
    D.record_decision(out / "P001", sample.run, ids[0], "wbc", "ann")
    sample.write_counts()
    path = out / "P001" / "summary.json"
    summary = json.loads(path.read_text())
    summary["reviewed"]["after_review"]["ctc"] += 3
    path.write_text(json.dumps(summary))
    with caplog.at_level("WARNING"):
        Sample("P001", out / "P001").write_counts()
    assert "its figures (an after-review count, a rate) were changed since ctcnet wrote " \
        "them" in caplog.text
    (kept,) = (out / "P001" / "previous").glob("summary-*-not-as-written.json")
    assert json.loads(kept.read_text())["reviewed"]["after_review"]["ctc"] == \
        summary["reviewed"]["after_review"]["ctc"]


def test_a_pruned_gallery_leaves_its_events_tiles_to_the_server(results, tmp_path):  # noqa: F811
    """gallery/ deleted to save disk: 16 of a sample's candidates pointed at its pages and got
    404. Their tiles are cut from the scans as the others are."""
    from ctcnet.review_server.sample import Sample

    out = tmp_path / "results"
    shutil.copytree(results / "results", out)
    before = Sample("P001", out / "P001").state("ann", False)["candidates"]
    on_pages = [c for c in before if c["tile"]["src"].startswith("/files/")]
    assert on_pages  # the run drew a gallery
    shutil.rmtree(out / "P001" / "gallery")
    after = Sample("P001", out / "P001").state("ann", False)["candidates"]
    assert not [c for c in after if c["tile"]["src"].startswith("/files/")]
    assert len(after) == len(before)


def test_a_sample_this_account_cannot_update_is_warned_of_once(
        results, tmp_path, caplog, monkeypatch):  # noqa: F811 (the imported fixture)
    """Every request that counted the decisions warned again that summary.json could not be
    written (another account's file): one warning a sample and cause, the rest at info."""
    import ctcnet.review_server.sample as sample_module

    out = tmp_path / "results"
    shutil.copytree(results / "results", out)

    def not_theirs(folder, *_args, **_kwargs):
        raise PermissionError(13, "Permission denied", str(folder / "review.csv.lock"))

    monkeypatch.setattr(sample_module.D, "decisions_lock", not_theirs)
    sample = sample_module.Sample("P001", out / "P001")
    with caplog.at_level("INFO", logger="ctcnet.review_server.sample"):
        for _ in range(3):
            sample.write_counts()
    said = [r.levelname for r in caplog.records if "keep what the last command" in r.message]
    assert len(said) >= 3 and said[0] == "WARNING" and set(said[1:]) == {"INFO"}, said


def test_a_decision_of_another_models_class_is_taken_back_as_the_page_shows_it(
        results, serve):  # noqa: F811 (the imported fixture, used)
    """A decision carried from a run of another model (its class, ctc_emt, none of this
    model's) counts for nothing, as the server refuses such a call: the event is undecided on
    the page, which decides it afresh (refused as malformed once, the page could not change
    it); a word no decision is stays refused (400, not "read again")."""
    out = results / "results"
    state = get(serve(out), "state")[1]
    first = state["candidates"][0]["event_id"]
    server = serve(out)
    assert post(server, "decision", {"event_id": first, "call": "confirm",
                                     "run_id": state["run_id"], "was": None})[0] == 200
    path = out / "P001" / "review.csv"
    table = pd.read_csv(path)
    table.loc[table.index[-1], "reviewer_call"] = "ctc_emt"
    table.to_csv(path, index=False)
    (path.parent / ".review.csv.seal").unlink(missing_ok=True)
    server = serve(out)
    shown = {c["event_id"]: c["decision"] for c in get(server, "state")[1]["candidates"]}
    assert shown[first] is None
    status, answer = post(server, "decision", {"event_id": first, "call": "reject",
                                               "run_id": state["run_id"], "was": "banana"})
    assert status == 400 and "or null, not \"banana\"" in answer["error"], answer
    status, answer = post(server, "decision", {"event_id": first, "call": "reject",
                                               "run_id": state["run_id"], "was": None})
    assert status == 200, answer


@needs_chromium
def test_the_page_says_a_folder_it_cannot_write_before_a_decision_is_refused(
        crowded, tmp_path, serve, monkeypatch):
    """Read-only media (an archive): the page opened as any other, and a reviewer learnt that
    nothing could be recorded from the first decision's refusal."""
    import os

    from ctcnet.review_server import server as served
    from ctcnet.review_server.sample_states import READ_ONLY_TEXT

    real = os.access
    monkeypatch.setattr(served.os, "access", lambda path, mode, **kw: False
                        if mode == os.W_OK and "P001" in str(path) else real(path, mode, **kw))
    with review_page(crowded, tmp_path, serve) as (_, _, browser):
        assert browser.js("document.getElementById('read-only').textContent") == READ_ONLY_TEXT
    monkeypatch.setattr(served.os, "access", real)
    with review_page(crowded, tmp_path / "again", serve) as (_, _, browser):
        assert browser.js("document.getElementById('read-only').textContent") == ""


def test_a_third_persons_adjudication_and_a_replaced_readers_call_are_no_readers_own(
        crowded, tmp_path, serve):
    """A third person adjudicating an event the first reader never decided was read as the
    first reader's own blind call, and the readers' agreement rose; a first reader whose calls
    another person replaced could then read the second reading, agreeing with themselves."""
    out = fresh(crowded, tmp_path)
    server = serve(out)
    state = get(server, "state")[1]
    run = state["run_id"]
    ids = [c["event_id"] for c in state["candidates"] if c["call"] == "wbc"][:4]
    for event_id in ids[:3]:
        assert post(server, "decision", {"event_id": event_id, "call": "confirm",
                                         "run_id": run, "reviewer": "ann"})[0] == 200
    for event_id, call in zip(ids, ["confirm", "confirm", "reject", "reject"]):
        assert post(server, "decision", {"event_id": event_id, "call": call, "run_id": run,
                                         "reviewer": "bob", "reading": "second"})[0] == 200
    # carol adjudicates ids[3], which ann never decided, to bob's call
    assert post(server, "decision", {"event_id": ids[3], "call": "reject", "run_id": run,
                                     "reviewer": "carol"})[0] == 200
    independent = get(server, "agreement")[1]["independent"]
    assert (independent["both"], independent["agree"]) == (3, 2), independent
    # ann's calls replaced by carol's: ann is still the first reading's reader.
    for event_id in ids[:3]:
        assert post(server, "decision", {"event_id": event_id, "call": "confirm",
                                         "run_id": run, "reviewer": "carol"})[0] == 200
    status, said = post(server, "decision", {"event_id": ids[0], "call": "confirm",
                                             "run_id": run, "reviewer": "ann",
                                             "reading": "second"})
    assert status == 400 and "decided events of this sample in the first reading" in \
        said["error"]


def test_a_reading_counts_as_its_readers_whose_last_call_on_an_event_stands_or_was_replaced():
    """A call replaced by another person's still makes its reviewer a reader; a call its
    reviewer took back last (a misclick on the other reading's link), after correcting it
    even, leaves them free; rows of an earlier run count only where they stand."""
    from types import SimpleNamespace

    from ctcnet.review.agreement import readers_of
    from ctcnet.review.matching import UNDECIDED

    table = pd.DataFrame({"run_id": ["r1"] * 6 + ["r0"],
                          "event_id": [1, 1, 2, 2, 2, 3, 9],
                          "reviewer": ["ann", "carol", "fay", "fay", "fay", "carol", "old"],
                          "reviewer_call": ["ctc", "wbc", "ctc", "wbc", UNDECIDED, "ctc",
                                            "ctc"], "model_call": "ctc"})
    # (the earlier run's row attaches to no event of this run: target and history -1)
    matched = SimpleNamespace(table=table, decisions=pd.DataFrame({"reviewer": ["carol"]}),
                              target=np.full(len(table), -1), unattached=table.iloc[:0])
    assert readers_of(matched, "r1") == ["ann", "carol"]
    assert readers_of(SimpleNamespace(table=table.iloc[:0], decisions=pd.DataFrame(),
                                      target=np.zeros(0, int), unattached=table.iloc[:0]),
                      "r1") == []
