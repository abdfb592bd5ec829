"""docs/outputs.md names every field that predict, the review and export-events write.

A LIMS parses run.json, samples.csv, summary.json, the events and predictions tables,
review.csv and the FCS export against docs/outputs.md, so a field written without its row in
the doc is a field no parser knows, and a row for a field no longer written sends one looking
for it. This runs, in this process and with an untrained tiny model, a batch of a simulated
cartridge, a cartridge whose frames are all corrupt (failed), one set aside (an invalid
cartridge.json) and a crop folder; reviews and signs off the cartridge; exports it to FCS; and
runs predict again with an input set aside whose earlier output is in the folder. Then every
field name written must be in its file's table in the doc (per-class names through their
``<class>`` pattern, ``count_<class>``), and every row of the tables of run.json, samples.csv,
summary.json and the events and predictions tables must be written by these runs or be marked
"(only ...)" in the doc.
"""

import csv
import json
import re
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import edit_json, frames

from ctcnet.cli import main
from ctcnet.detect.crop_dataset import write_crop_dataset
from ctcnet.exports.event_exports import export_events
from ctcnet.io.panel import load_panel
from ctcnet.review_server.sample import Sample
from ctcnet.simulate import simulate_crops

DOC = Path(__file__).resolve().parents[1] / "docs" / "outputs.md"
# A row whose field is written only in some runs says so: "(only with --compensate)".
CONDITIONAL = "(only "
# The doc's tables, by heading, whose rows must each be written or marked conditional.
COMPLETE = ("run.json: top level", "run.json: each entry of outputs", "samples.csv",
            "summary.json (cartridge): top level", "summary.json of a crop folder",
            "events.parquet and events.csv", "predictions.parquet and predictions.csv")


def doc_tables() -> dict[str, list[tuple[list[str], bool]]]:
    """Per heading of docs/outputs.md (``#`` and backticks dropped), its tables' rows as (the
    backticked names of the first cell, whether the row is marked conditional)."""
    sections: dict[str, list] = {}
    heading, fenced = None, False
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif line.startswith("#") and not fenced:
            heading = line.lstrip("#").strip().replace("`", "")
            sections[heading] = []
        elif line.startswith("|") and heading is not None:
            names = re.findall(r"`([^`]+)`", line.split("|")[1])
            if names:  # a header row or the separator has none
                sections[heading].append((names, CONDITIONAL in line))
    return sections


def pattern(name: str, classes, channels) -> re.Pattern:
    """A doc name as a pattern: ``<class>`` any of the model's classes, ``<channel>`` any
    channel of the panel."""
    text = re.escape(name).replace("<class>", "(?:" + "|".join(map(re.escape, classes)) + ")")
    return re.compile(text.replace("<channel>", "(?:" + "|".join(map(re.escape, channels))
                                   + ")"))


def fcs_keywords(path: Path) -> dict[str, str]:
    """The TEXT segment of an FCS file as a dict (its HEADER gives where it lies)."""
    data = path.read_bytes()
    begin, end = int(data[10:18]), int(data[18:26])
    text = data[begin:end + 1].decode("utf-8")
    parts = text[1:].split(text[0])
    return dict(zip(parts[0::2], parts[1::2]))


def predict(*args) -> int:
    return main(["predict", *map(str, args), "--device", "cpu", "--quiet", "--no-report",
                 "--workers", "0"])


@pytest.fixture(scope="module")
def written(cart_and_model, tmp_path_factory):
    """(field names written, by the doc heading of their file's table; the model's classes;
    the panel's channels)."""
    root = tmp_path_factory.mktemp("outputs")
    model, out, scans = cart_and_model / "model.pt", root / "out", root / "scans"
    shutil.copytree(cart_and_model / "cart", scans / "S1")
    shutil.copytree(cart_and_model / "cart", scans / "dead")  # every frame corrupt: failed
    edit_json(scans / "dead" / "cartridge.json", sample_id="dead")
    for frame in frames(scans / "dead"):
        frame.write_bytes(b"not a TIFF: " + frame.name.encode())
    shutil.copytree(cart_and_model / "cart", scans / "bad")  # set aside
    edit_json(scans / "bad" / "cartridge.json", sample_id="bad", blood_volume_ml="lots")
    batch = simulate_crops(2, load_panel(None), crop_size=32, seed=3, num_samples=2)
    write_crop_dataset(scans / "crops", batch.images, batch.labels, load_panel(None),
                       batch.sample_ids)
    names: dict[str, set] = {}

    def add(heading, keys):
        names.setdefault(heading, set()).update(keys)

    def index():  # run.json and samples.csv as they are now
        run = json.loads((out / "run.json").read_text())
        add("run.json: top level", run)
        for entry in run["outputs"]:
            add("run.json: each entry of outputs", entry)
            add("run.json: each entry of outputs", entry.get("kept_output", {}))
        with open(out / "samples.csv", newline="") as table:
            add("samples.csv", next(csv.reader(table)))

    def summaries():
        for sample in ("S1", "dead"):
            summary = json.loads((out / sample / "summary.json").read_text())
            add("summary.json (cartridge): top level", summary)
            for key in ("model", "frames", "tally", "reviewed", "review_list", "signoff"):
                add(f"summary.json (cartridge): {key}", summary.get(key) or {})
            table = pq.read_schema(out / sample / "events.parquet")
            add("events.parquet and events.csv", table.names)
            add("Parquet metadata", (k.decode() for k in table.metadata))
        add("summary.json of a crop folder", json.loads((out / "crops" / "summary.json")
                                                        .read_text()))
        table = pq.read_schema(out / "crops" / "predictions.parquet")
        add("predictions.parquet and predictions.csv", table.names)
        add("Parquet metadata", (k.decode() for k in table.metadata))

    assert predict(scans / "S1", scans / "dead", scans / "bad", scans / "crops", "--out", out,
                   "--model", model) == 2  # a sample set aside (2 wins over a failed one's 3)
    index()
    # A person decides two events and signs the cartridge off: summary.json gains
    # "reviewed" and "signoff", review.csv its lines, samples.csv the review's columns.
    sample = Sample("S1", out / "S1")
    run_id = sample.run.token
    first, second = (int(e) for e in sample.events["event_id"][:2])
    sample.decide({"event_id": first, "call": "confirm", "reviewer": "ann", "run_id": run_id},
                  "ann")
    sample.decide({"event_id": second, "call": "reject", "reviewer": "ann", "run_id": run_id},
                  "ann")
    sample.sign_off({"stamp": sample.decisions.stamp(), "note": "held calls checked",
                     "reviewer": "ann", "run_id": run_id}, "ann")
    with open(out / "S1" / "review.csv", newline="") as table:
        add("review.csv", next(csv.reader(table)))
    summaries()
    index()
    (done,) = export_events(out, fcs=True)  # the failed sample and the crop folder: none
    keywords = fcs_keywords(done.fcs)
    assert keywords["CTCNET_SIGNOFF"].startswith("current; ann; ")  # what the columns hold
    add("FCS keywords", (k for k in keywords if k.startswith("CTCNET_")))
    add("FCS parameters", (v for k, v in keywords.items() if re.fullmatch(r"\$P\d+N", k)))
    # Again, with the failed sample's scan refused: its output is kept beside the refusal,
    # the reviewed sample's run.json entry says its review, the crop folder is an earlier
    # run's.
    shutil.copytree(scans / "bad", root / "again" / "dead")
    assert predict(scans / "S1", root / "again" / "dead", "--out", out, "--model", model) == 2
    index()
    summaries()
    summary = json.loads((out / "S1" / "summary.json").read_text())
    channels = [c["name"] for c in summary["panel"]["channels"]]
    return names, summary["model"]["classes"], channels


def test_every_field_written_is_in_its_files_table(written):
    """A field added to an output without its row in docs/outputs.md fails here."""
    names, classes, channels = written
    tables = doc_tables()
    undocumented = {}
    for heading, fields in names.items():
        assert heading in tables, f"docs/outputs.md has no section {heading!r}"
        patterns = [pattern(n, classes, channels) for row, _ in tables[heading] for n in row]
        missing = sorted(f for f in fields if not any(p.fullmatch(f) for p in patterns))
        if missing:
            undocumented[heading] = missing
    assert not undocumented, f"written but not in docs/outputs.md: {undocumented}"


def test_every_field_the_tables_list_is_written_or_marked_conditional(written):
    """A row of docs/outputs.md for a field these runs did not write (removed, renamed) fails
    here, unless the row says when it is written: "(only ...)"."""
    names, classes, channels = written
    tables = doc_tables()
    stale = {}
    for heading in COMPLETE:
        fields = names[heading]
        never = sorted(n for row, conditional in tables[heading] if not conditional
                       for n in row
                       if not any(pattern(n, classes, channels).fullmatch(f) for f in fields))
        if never:
            stale[heading] = never
    assert not stale, f"in docs/outputs.md but never written (mark it '(only ...)'?): {stale}"
