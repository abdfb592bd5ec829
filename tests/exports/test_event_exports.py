"""``ctcnet export-events``: a predict run's events as FCS 3.1 and as QuPath GeoJSON, read back
with independent readers (FlowIO, FlowCal, the geojson package) and compared with the table."""

import errno
import json
import os
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import assert_one_line_error, edit_json, run_cli, save_tiny_model, write_events

from ctcnet.cli import main
from ctcnet.errors import InputError
from ctcnet.exports.event_exports import export_events
from ctcnet.exports.fcs import HEADER_OFFSET_MAX, MISSING_VALUE, fcs_bytes, write_fcs
from ctcnet.inference.guard import FLAGS
from ctcnet.io.atomic import atomic_write_bytes

SAMPLE = "S1"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A real predict output: a 2-frame simulated cartridge classified by a tiny model."""
    from ctcnet.inference.backends import load_backend
    from ctcnet.inference.predict import PredictOptions, predict_cartridge
    from ctcnet.io.panel import load_panel
    from ctcnet.simulate import simulate_cartridge

    base = tmp_path_factory.mktemp("export_events")
    simulate_cartridge(base / "cart", load_panel(None), num_frames=2, frame_shape=(256, 320),
                       seed=3, events_per_frame=25, sample_id=SAMPLE,
                       rare_rates={"ctc": 0.2, "cluster": 0.1})
    model = save_tiny_model(base / "model.pt", crop_size=48, width=8)[0]
    backend = load_backend(model, device="cpu", batch_size=32)
    predict_cartridge(base / "cart", backend, base / "results" / SAMPLE,
                      PredictOptions(quiet=True, workers=1))
    return base / "results"


def copy_run(run, dest: Path, edit=None) -> Path:
    """A copy of the run's results folder; ``edit(events) -> events`` rewrites its table."""
    shutil.copytree(run, dest, ignore=shutil.ignore_patterns("*.fcs", "geojson", "gallery"))
    if edit is not None:
        write_events(dest / SAMPLE, edit(pd.read_parquet(dest / SAMPLE / "events.parquet")))
    return dest


def another_sample(results: Path, name: str, move: bool = False) -> Path:
    """The sample's output as another sample's folder ``name``, as predict would have written
    it there (a copy alone is refused: it holds another sample's outputs)."""
    folder = (shutil.move if move else shutil.copytree)(results / SAMPLE, results / name)
    summary = Path(folder) / "summary.json"
    summary.write_text(json.dumps({**json.loads(summary.read_text()), "output_folder": name}))
    return Path(folder)


def events_of(results: Path) -> pd.DataFrame:
    return pd.read_parquet(results / SAMPLE / "events.parquet")


def codes(text: str) -> dict[int, str]:
    """``0=ctc,1=wbc`` -> {0: "ctc", 1: "wbc"}."""
    return {int(k): v for k, v in (item.split("=", 1) for item in text.split(","))}


# --- FCS, read back by two readers --------------------------------------------------------------

def read_flowio(path):
    flowio = pytest.importorskip("flowio")
    data = flowio.FlowData(str(path))
    names = [data.channels[i]["pnn"] for i in sorted(data.channels, key=int)]
    values = np.asarray(data.as_array(preprocess=False)).reshape(-1, len(names))
    # FlowIO lower-cases keywords and drops the $ of the standard ones.
    text = {k.upper(): v for k, v in data.text.items()}
    return names, values, text


def read_flowcal(path):
    flowcal_io = pytest.importorskip("FlowCal.io")
    data = flowcal_io.FCSData(str(path))
    text = {k.lstrip("$").upper(): v for k, v in data.text.items()}
    # FlowCal's range of a channel is [0, $PnR - 1]: every value must lie inside it.
    for channel, (_, high) in zip(data.channels, data.range()):
        assert np.asarray(data[:, channel]).max(initial=0) <= high, channel
    return list(data.channels), np.asarray(data), text


@pytest.mark.parametrize("reader", [read_flowio, read_flowcal], ids=["flowio", "flowcal"])
def test_fcs_reads_back_identical(run, tmp_path, reader):
    results = copy_run(run, tmp_path / "results")
    export_events(results, fcs=True)
    path = results / SAMPLE / f"{SAMPLE}.fcs"
    names, values, text = reader(path)
    events = events_of(results)
    assert path.read_bytes()[:6] == b"FCS3.1"
    assert values.shape == (len(events), len(names)) and len(events) > 10
    # Every measurement of the table comes back as the same float32.
    for column in ["event_id", "frame", "x", "y", "area_um2", "confidence",
                   *[c for c in events.columns if c.startswith(("mean_", "p_", "fused_p_"))]]:
        assert np.array_equal(values[:, names.index(column)].astype(np.float32),
                              events[column].to_numpy(np.float32)), column
    # Codes decode through the keywords to the table's text columns.
    by_code = codes(text["CTCNET_CLASS_CODES"])
    for column in ("class", "model_class"):
        decoded = [by_code[int(v)] for v in values[:, names.index(column)]]
        assert decoded == events[column].tolist()
    bits = codes(text["CTCNET_GUARD_BITS"])
    assert list(bits.values())[:len(FLAGS)] == list(FLAGS)
    decoded = ["+".join(f for b, f in bits.items() if int(v) & b)
               for v in values[:, names.index("guard")]]
    assert decoded == events["guard"].fillna("").tolist()
    assert np.array_equal(values[:, names.index("review")], events["review"].to_numpy(float))
    frames = codes(text["CTCNET_FRAMES"])
    assert [frames[int(v)] for v in values[:, names.index("frame")]] == \
        events["frame_id"].tolist()
    # The standard's required keywords and the run's facts.
    for key, value in {"DATATYPE": "F", "BYTEORD": "1,2,3,4", "MODE": "L", "NEXTDATA": "0",
                       "TOT": str(len(events)), "PAR": str(len(names)),
                       "CTCNET_SAMPLE_ID": SAMPLE, "CTCNET_VERSION": "0.1.0",
                       "CTCNET_PANEL_CHANNELS": "DAPI,CK,CD45,CD61,CD66b",
                       "CTCNET_MODEL_CLASSES": "ctc,wbc,cluster,debris"}.items():
        assert str(text[key]) == value, key
    assert text["CTCNET_MODEL"].endswith("model.pt")   # a path starting with "/": unescaped
    # The run the calls are of, as summary.json says it.
    summary = json.loads((run / SAMPLE / "summary.json").read_text())
    assert text["CTCNET_COUNTED_AT"] == summary["counted_at_utc"]
    assert text["CTCNET_MODEL_SHA256"] == summary["model"]["sha256"]
    software = summary["software"]
    commit = (software.get("commit") or "") + ("+modified" if software.get("commit") and
                                               software.get("modified") else "")
    assert str(text.get("CTCNET_PREDICT_COMMIT", "")) == commit
    for i, name in enumerate(names, start=1):
        assert text[f"P{i}N"] == name and str(text[f"P{i}B"]) == "32"
        assert text[f"P{i}S"] and str(text[f"P{i}E"]).replace(".0", "") == "0,0"
        # Every value lies inside the range readers take from $PnR: [0, $PnR - 1].
        assert values[:, i - 1].max() <= float(text[f"P{i}R"]) - 1
    assert text[f"P{names.index('p_ctc') + 1}S"] == "P(ctc)"
    assert text[f"P{names.index('mean_DAPI') + 1}S"] == "DAPI mean intensity"
    # x and y on the frame's scale, whatever the events: one gate fits every file of a scan.
    height, width = summary["frame_shape"]
    assert (float(text["P3R"]), float(text["P4R"])) == (width + 1, height + 1)
    # Codes, yes/no values and indices lie below that top, not on it: FlowCal's saturation
    # gate (high_low) drops the events on it, every counted call and the last frame's too.
    discrete = [n for n in names if n in ("event_id", "frame", "class", "model_class",
                                          "review", "guard", "counted", "edge_cut")]
    assert {"class", "counted", "review", "frame"} <= set(discrete)
    for name in discrete:
        i = names.index(name) + 1
        assert values[:, i - 1].max() < float(text[f"P{i}R"]) - 1, name
    assert float(text[f"P{names.index('frame') + 1}R"]) == summary["frames"]["total"] + 1


def header_fields(raw: bytes) -> list[int]:
    assert raw[:10] == b"FCS3.1    "
    return [int(raw[10 + 8 * i:18 + 8 * i]) for i in range(6)]


def text_keywords(raw: bytes, begin: int, end: int) -> dict[str, str]:
    segment = raw[begin:end + 1].decode("utf-8")
    delimiter, items = segment[0], segment[1:-1].split(segment[0])
    assert delimiter not in "".join(items)
    return dict(zip(items[::2], items[1::2]))


def test_fcs_segment_offsets_follow_the_standard():
    data = np.arange(12, dtype=np.float32).reshape(4, 3) - 2.5
    raw = fcs_bytes(data, ["a", "b", "c"], ["A", "B", "C"], {"NOTE": "x"})
    text_begin, text_end, data_begin, data_end, ana_begin, ana_end = header_fields(raw)
    keywords = text_keywords(raw, text_begin, text_end)
    assert text_begin == 58 and data_begin == text_end + 1 and (ana_begin, ana_end) == (0, 0)
    assert (int(keywords["$BEGINDATA"]), int(keywords["$ENDDATA"])) == (data_begin, data_end)
    assert data_end == len(raw) - 1 and data_end - data_begin + 1 == data.nbytes
    assert np.array_equal(np.frombuffer(raw[data_begin:], "<f4").reshape(4, 3), data)
    assert keywords["$P2S"] == "B" and keywords["NOTE"] == "x"


def test_fcs_data_past_the_header_limit(tmp_path):
    """DATA ending past byte 99,999,999: the header's DATA fields are 0 and TEXT places it."""
    rows = (HEADER_OFFSET_MAX + 1) // 8 + 10    # two float32 parameters: 8 bytes an event
    data = np.zeros((rows, 2), np.float32)
    data[-1] = [7.0, 9.5]
    path = tmp_path / "big.fcs"
    write_fcs(path, data, ["a", "b"])
    del data
    with open(path, "rb") as fh:
        head = fh.read(4096)
    text_begin, text_end, data_begin, data_end, _, _ = header_fields(head)
    keywords = text_keywords(head, text_begin, text_end)
    assert (data_begin, data_end) == (0, 0)
    assert int(keywords["$ENDDATA"]) == path.stat().st_size - 1 > HEADER_OFFSET_MAX
    assert int(keywords["$BEGINDATA"]) == text_end + 1
    flowio = pytest.importorskip("flowio")
    read = flowio.FlowData(str(path))
    assert read.event_count == rows
    assert list(read.as_array(preprocess=False)[-1]) == [7.0, 9.5]


def test_fcs_keyword_values_need_no_escaping(tmp_path):
    """Values holding every usual delimiter (one starting with it) read back unchanged; control
    characters become spaces; an empty value is left out."""
    flowio = pytest.importorskip("flowio")
    values = {"A_PATH": "/data/run|1\\x", "B_NOTE": "two\nlines", "C_EMPTY": ""}
    write_fcs(tmp_path / "k.fcs", np.ones((2, 1), np.float32), ["a"], keywords=values)
    text = flowio.FlowData(str(tmp_path / "k.fcs")).text
    assert text["a_path"] == "/data/run|1\\x" and text["b_note"] == "two lines"
    assert "c_empty" not in text
    with pytest.raises(ValueError, match="commas"):
        fcs_bytes(np.ones((1, 1)), ["a,b"])


@pytest.mark.parametrize("reader", [read_flowio, read_flowcal], ids=["flowio", "flowcal"])
def test_fcs_without_events(tmp_path, reader):
    write_fcs(tmp_path / "empty.fcs", np.zeros((0, 2), np.float32), ["a", "b"])
    names, values, text = reader(tmp_path / "empty.fcs")
    assert names == ["a", "b"] and values.size == 0 and str(text["TOT"]) == "0"


def test_failed_events_are_missing_values(run, tmp_path):
    """An event without a call (probabilities not finite): -1 in FCS, the class code of
    ``failed``, and no probability measurements in GeoJSON (QuPath reads numbers only)."""
    def fail_first(events):
        events.loc[0, ["p_ctc", "p_wbc", "p_cluster", "p_debris", "confidence"]] = np.nan
        events.loc[0, "class"] = "failed"
        return events

    results = copy_run(run, tmp_path / "results", fail_first)
    export_events(results, fcs=True, geojson=True)
    names, values, text = read_flowio(results / SAMPLE / f"{SAMPLE}.fcs")
    assert values[0, names.index("p_ctc")] == values[0, names.index("confidence")] == \
        MISSING_VALUE
    assert codes(text["CTCNET_CLASS_CODES"])[int(values[0, names.index("class")])] == "failed"
    frame_id = events_of(results).loc[0, "frame_id"]
    collection = json.loads((results / SAMPLE / "geojson" / f"{frame_id}.geojson").read_text())
    first = next(f for f in collection["features"] if f["properties"]["metadata"]["event_id"]
                 == "0")
    assert first["properties"]["classification"]["name"] == "failed"
    assert "p_ctc" not in first["properties"]["measurements"]
    assert "mean_CK" in first["properties"]["measurements"]


# --- GeoJSON for QuPath -------------------------------------------------------------------------

def test_geojson_round_trip(run, tmp_path):
    geojson = pytest.importorskip("geojson")
    results = copy_run(run, tmp_path / "results")
    export_events(results, fcs=False, geojson=True)
    events = events_of(results).set_index("event_id", drop=False)
    folder = results / SAMPLE / "geojson"
    files = sorted(folder.glob("*.geojson"))
    assert [f.stem for f in files] == sorted(events["frame_id"].unique())
    seen = []
    for path in files:
        collection = geojson.loads(path.read_text())
        assert collection.is_valid, collection.errors()
        assert collection["type"] == "FeatureCollection"
        for feature in collection["features"]:
            props = feature["properties"]
            event = events.loc[int(props["metadata"]["event_id"])]
            seen.append(int(event["event_id"]))
            assert event["frame_id"] == path.stem == props["metadata"]["frame_id"]
            assert props["objectType"] == "detection"
            # A call the guard held is no count: "<class>: held" (QuPath's derived class).
            assert props["classification"]["name"] == event["class"] + \
                (": held" if event["guard"] else "")
            colour = props["classification"]["color"]
            assert len(colour) == 3 and all(0 <= c <= 255 for c in colour)
            ring = feature["geometry"]["coordinates"][0]
            x0, y0, x1, y1 = (int(event[c]) for c in ("bbox_x0", "bbox_y0", "bbox_x1",
                                                      "bbox_y1"))
            assert ring == [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]
            for name, value in props["measurements"].items():
                if name in ("review", "guard", "edge_cut", "counted"):
                    continue
                if name.startswith("snr_"):  # (the sample's levels, read from its frames)
                    assert name.removeprefix("snr_") in {c.removeprefix("mean_")
                                                         for c in events.columns}
                    continue
                assert np.float32(value) == np.float32(event[name]), name
            assert props["measurements"]["review"] == float(event["review"])
            # counted: the call enters summary.json's counts (not held by the guard)
            assert props["measurements"]["counted"] == float(not event["guard"])
    assert sorted(seen) == events["event_id"].tolist()
    # A second export gives the same objects the same ids (QuPath matches them on import).
    ids = {f["id"] for p in files for f in json.loads(p.read_text())["features"]}
    assert len(ids) == len(events)  # one a cell
    export_events(results, fcs=False, geojson=True, overwrite=True)
    assert ids == {f["id"] for p in files for f in json.loads(p.read_text())["features"]}


def test_geojson_is_built_a_frame_at_a_time(run):
    """Each frame's collection is built as it is asked for (a large sample's features were all
    held at once), in the table's frame order, each frame's events in the table's order."""
    from ctcnet.exports.geojson import events_geojson
    from ctcnet.review.runs import load_sample

    events, summary = load_sample(run / SAMPLE)
    frames = events["frame_id"].astype(str).unique().tolist()
    assert len(frames) == 2
    built = events_geojson(events, summary, run / SAMPLE)
    first, collection = next(built)
    assert first == frames[0]
    assert [int(f["properties"]["metadata"]["event_id"]) for f in collection["features"]] == \
        events.loc[events["frame_id"] == first, "event_id"].tolist()
    assert [frame for frame, _ in built] == frames[1:]
    # A frame read with no event on it gets its file too, empty (it had none: a missing
    # file could not be told from a failed export, and a script importing each frame stopped).
    alone = events[events["frame_id"].astype(str) == frames[0]]
    assert [(frame, len(c["features"])) for frame, c in events_geojson(alone, summary,
                                                                       run / SAMPLE)] == \
        [(frames[0], len(alone)), (frames[1], 0)]


def test_geojson_points_at_pixel_centres(run, tmp_path):
    geojson = pytest.importorskip("geojson")
    results = copy_run(run, tmp_path / "results")
    export_events(results, fcs=False, geojson=True, geometry="point")
    events = events_of(results)
    row = events.iloc[0]
    text = (results / SAMPLE / "geojson" / f"{row['frame_id']}.geojson").read_text()
    assert geojson.loads(text).is_valid
    # Read with json: geojson rounds coordinates to 6 decimals as it loads them.
    point = next(f for f in json.loads(text)["features"]
                 if f["properties"]["metadata"]["event_id"] == str(row["event_id"]))
    # events.csv counts pixel centres from 0; QuPath's pixel edges start at 0.
    assert point["geometry"]["coordinates"] == [row["x"] + 0.5, row["y"] + 0.5]


# --- The command --------------------------------------------------------------------------------

def without_export_time(fcs: bytes) -> bytes:
    """An FCS file's bytes with its CTCNET_EXPORTED_AT value blanked (its length is fixed)."""
    said = re.findall(rb"CTCNET_EXPORTED_AT.(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00)", fcs)
    assert len(said) == 1, said
    return fcs.replace(said[0], b"-" * len(said[0]))


def test_cli_writes_refuses_and_overwrites(run, tmp_path, capsys):
    results = copy_run(run, tmp_path / "results")
    assert main(["export-events", str(results), "--fcs", "--geojson"]) == 0
    out = capsys.readouterr().out
    assert f"{SAMPLE}.fcs" in out and "GeoJSON" in out
    fcs = results / SAMPLE / f"{SAMPLE}.fcs"
    before = fcs.read_bytes()
    # A second export is refused, naming what exists; nothing is touched.
    assert main(["export-events", str(results), "--fcs"]) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and "--overwrite" in err and len(err.splitlines()) == 1
    # --overwrite replaces the files, and drops a frame file this run has no events for.
    stale = results / SAMPLE / "geojson" / "r09c09.geojson"
    stale.write_text("{}")
    assert main(["export-events", str(results), "--fcs", "--geojson", "--overwrite"]) == 0
    # The same file but for when it was written (CTCNET_EXPORTED_AT, to the second: two
    # exports a second apart differed there alone, and this failed now and then).
    assert without_export_time(fcs.read_bytes()) == without_export_time(before)
    assert not stale.exists()
    assert not list((results / SAMPLE).glob(".*.tmp*"))    # no temporary file left behind


def test_a_rerun_that_writes_new_tables_moves_the_earlier_exports_aside(run, tmp_path, caplog):
    """Exports beside the events hold the calls of the tables they were made from: a rerun
    that writes the tables again moves them (and the summary it replaces) into previous/; one
    that finds every frame in its journal keeps them, and the counts' time."""
    from ctcnet.inference.backends import load_backend
    from ctcnet.inference.predict import PredictOptions, predict_cartridge

    results = copy_run(run, tmp_path / "results")
    assert main(["export-events", str(results), "--fcs", "--geojson"]) == 0
    sample = results / SAMPLE
    counted = json.loads((sample / "summary.json").read_text())["counted_at"]
    backend = load_backend(run.parent / "model.pt", device="cpu", batch_size=32)
    cart = run.parent / "cart"
    # Resumed with every frame done: the same tables, their exports and their time.
    predict_cartridge(cart, backend, sample, PredictOptions(quiet=True, workers=1))
    assert (sample / f"{SAMPLE}.fcs").exists() and (sample / "geojson").is_dir()
    assert not (sample / "previous").exists()
    assert json.loads((sample / "summary.json").read_text())["counted_at"] == counted
    # A frame done again from the same bytes (its journal part gone, as after a crash, or an
    # archive restored without parts/): the same tables, byte for byte, so their exports and
    # time stand, and nothing is kept twice.
    next((sample / "parts").glob("r*.parquet")).unlink()
    predict_cartridge(cart, backend, sample, PredictOptions(quiet=True, workers=1))
    assert (sample / f"{SAMPLE}.fcs").exists() and not (sample / "previous").exists()
    assert json.loads((sample / "summary.json").read_text())["counted_at"] == counted
    # A frame replaced by other pixels (another frame's): new tables.
    replaced = shutil.copytree(cart, tmp_path / "replaced")
    frames = sorted(replaced.glob("r*.tif"))
    frames[1].write_bytes(frames[0].read_bytes())
    predict_cartridge(replaced, backend, sample,
                      PredictOptions(quiet=True, workers=1, overwrite=True))
    assert not (sample / f"{SAMPLE}.fcs").exists() and not (sample / "geojson").exists()
    kept = list(sample.glob("previous/exports-*"))
    assert len(kept) == 1 and (kept[0] / f"{SAMPLE}.fcs").is_file()
    assert list((kept[0] / "geojson").glob("*.geojson"))
    assert "export-events makes this run's" in caplog.text
    earlier = list(sample.glob("previous/summary-*.json"))
    assert len(earlier) == 1 and json.loads(earlier[0].read_text())["counted_at"] == counted
    assert json.loads((sample / "summary.json").read_text())["counted_at"] > counted
    # Exported again: the new run's, beside its tables; --overwrite that writes the same
    # tables keeps them; one that writes others moves them aside too.
    assert main(["export-events", str(results), "--fcs"]) == 0
    predict_cartridge(replaced, backend, sample,
                      PredictOptions(quiet=True, workers=1, overwrite=True))
    assert (sample / f"{SAMPLE}.fcs").exists()
    predict_cartridge(cart, backend, sample,
                      PredictOptions(quiet=True, workers=1, overwrite=True))
    assert not (sample / f"{SAMPLE}.fcs").exists()
    assert len(list(sample.glob("previous/exports-*/*.fcs"))) == 2
    # A frame that turned unreadable: its events leave the tables (a change) once; skipped
    # again on the next rerun, it adds nothing, and that rerun's tables are the same.
    scan = shutil.copytree(cart, tmp_path / "scan")
    predict_cartridge(scan, backend, sample, PredictOptions(quiet=True, workers=1,
                                                            overwrite=True))
    frame = sorted(scan.glob("r*.tif"))[0]
    frame.write_bytes(frame.read_bytes()[:1000])
    predict_cartridge(scan, backend, sample, PredictOptions(quiet=True, workers=1))
    assert main(["export-events", str(results), "--fcs"]) == 0
    counted = json.loads((sample / "summary.json").read_text())["counted_at"]
    again = predict_cartridge(scan, backend, sample, PredictOptions(quiet=True, workers=1))
    assert again.frames.skipped == 1 and (sample / f"{SAMPLE}.fcs").exists()
    assert json.loads((sample / "summary.json").read_text())["counted_at"] == counted
    # A part written after the summary (a killed run's) that holds what the tables held:
    # told by the tables' bytes, not the part's time, so the exports stand.
    part = next((sample / "parts").glob("r*.parquet"))
    os.utime(part, (time.time() + 5, time.time() + 5))
    predict_cartridge(scan, backend, sample, PredictOptions(quiet=True, workers=1))
    assert (sample / f"{SAMPLE}.fcs").exists()
    # A frame gone from the scan folder (its part still journaled): its events leave.
    shutil.copy2(cart / frame.name, frame)  # the unreadable frame mended first
    os.utime(part, (time.time() - 60, time.time() - 60))  # back before the summaries below
    predict_cartridge(scan, backend, sample, PredictOptions(quiet=True, workers=1))
    assert main(["export-events", str(results), "--fcs"]) == 0
    sorted(scan.glob("r*.tif"))[-1].unlink()
    predict_cartridge(scan, backend, sample, PredictOptions(quiet=True, workers=1))
    assert not (sample / f"{SAMPLE}.fcs").exists()
    # The summary cannot be kept (a folder where its copy goes): refused, nothing lost.
    assert main(["export-events", str(results), "--fcs"]) == 0
    summary = json.loads((sample / "summary.json").read_text())
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(summary["counted_at"]))
    blocked = sample / "previous" / f"summary-{stamp}.json"
    blocked.unlink(missing_ok=True)  # (kept by an earlier step of this test)
    blocked.mkdir(parents=True)
    before = (sample / "summary.json").read_bytes()
    with pytest.raises(InputError, match="summary-.*json: is a folder where ctcnet writes a file"):
        predict_cartridge(scan, backend, sample,
                          PredictOptions(quiet=True, workers=1, overwrite=True))
    assert (sample / "summary.json").read_bytes() == before
    assert (sample / f"{SAMPLE}.fcs").exists() and list((sample / "parts").glob("*.parquet"))
    # previous/ a file (or a link elsewhere): refused in one line, nothing replaced or lost.
    shutil.rmtree(sample / "previous")
    (sample / "previous").write_text("the lab's notes")
    before = (sample / "summary.json").read_bytes()
    with pytest.raises(InputError, match="not a folder"):
        predict_cartridge(scan, backend, sample,
                          PredictOptions(quiet=True, workers=1, overwrite=True))
    assert (sample / "summary.json").read_bytes() == before
    assert (sample / "previous").read_text() == "the lab's notes"
    assert (sample / f"{SAMPLE}.fcs").exists() and list((sample / "parts").glob("*.parquet"))
    (sample / "previous").unlink()
    (sample / "previous").symlink_to(tmp_path)
    with pytest.raises(InputError, match="a link, not a folder"):
        predict_cartridge(scan, backend, sample,
                          PredictOptions(quiet=True, workers=1, overwrite=True))


def test_an_export_never_replaces_what_is_not_one(run, tmp_path, capsys):
    """--overwrite replaces an earlier export, not a file where its folder goes."""
    results = copy_run(run, tmp_path / "results")
    (results / SAMPLE / "geojson").write_text("the lab's own notes")
    status, err = run_cli(capsys, "export-events", results, "--fcs", "--geojson", "--overwrite")
    assert_one_line_error(status, err, "is not an export's folder")
    assert (results / SAMPLE / "geojson").read_text() == "the lab's own notes"
    assert not (results / SAMPLE / f"{SAMPLE}.fcs").exists()
    # A link where the FCS file goes, even one pointing nowhere, is not replaced either.
    (results / SAMPLE / "geojson").unlink()
    (results / SAMPLE / f"{SAMPLE}.fcs").symlink_to(tmp_path / "nowhere.fcs")
    status, err = run_cli(capsys, "export-events", results, "--fcs", "--overwrite")
    assert_one_line_error(status, err, "is not an export's file")
    assert (results / SAMPLE / f"{SAMPLE}.fcs").is_symlink()


def test_cli_out_folder_and_one_sample_folder(run, tmp_path, capsys):
    results = copy_run(run, tmp_path / "results")
    out = tmp_path / "exports"
    assert main(["export-events", str(results / SAMPLE), "--fcs", "--geojson",
                 "--out", str(out)]) == 0
    assert (out / f"{SAMPLE}.fcs").is_file()
    assert sorted(p.stem for p in (out / f"{SAMPLE}_geojson").glob("*.geojson")) == \
        sorted(events_of(results)["frame_id"].unique())
    assert not (results / SAMPLE / f"{SAMPLE}.fcs").exists()


def test_an_export_into_an_out_another_export_is_writing_is_refused(run, tmp_path, capsys):
    """Two exports at once into one --out (GeoJSON boxes and points) both said they wrote it;
    the files left were one's alone."""
    from ctcnet.io.atomic import exclusive_folder

    results = copy_run(run, tmp_path / "results")
    out = tmp_path / "exports"
    with exclusive_folder(out, "export-events"):
        status, err = run_cli(capsys, "export-events", results, "--geojson", "--fcs", "--out",
                              out)
        assert_one_line_error(status, err, "another ctcnet export-events")
        assert [p.name for p in out.iterdir()] == [".ctcnet.lock"]  # nothing written
    assert main(["export-events", str(results), "--geojson", "--out", str(out)]) == 0


def test_an_export_beside_the_samples_of_a_read_only_archive_says_to_give_out(
        run, tmp_path, capsys, monkeypatch):
    """Exported twice into a read-only archive: "already exist; pass --overwrite", which then
    failed with a permission error; the folder's matter is said first."""
    import ctcnet.exports.event_exports as module

    results = copy_run(run, tmp_path / "results")
    monkeypatch.setattr(module.os, "access", lambda path, mode: False)
    status, err = run_cli(capsys, "export-events", results, "--fcs")
    assert_one_line_error(status, err, "cannot be written (read-only media, an archive?): "
                                       "export into a folder of your own with --out")


def test_cli_refuses_two_samples_that_would_share_a_file(run, tmp_path, capsys):
    results = copy_run(run, tmp_path / "results")
    another_sample(results, "Patient 17")
    another_sample(results, "Patient_17", move=True)
    out = tmp_path / "exports"
    assert main(["export-events", str(results), "--fcs", "--out", str(out)]) == 2
    assert "would both be exported as Patient_17" in capsys.readouterr().err
    assert not out.exists() or not list(out.glob("*.fcs"))
    assert main(["export-events", str(results), "--fcs"]) == 0  # beside each sample: apart
    assert (results / "Patient 17" / "Patient_17.fcs").is_file()
    assert (results / "Patient_17" / "Patient_17.fcs").is_file()


def corrupt_table(results):
    (results / SAMPLE / "events.parquet").write_bytes(b"not a parquet file")


def drop_xy(results):
    write_events(results / SAMPLE, events_of(results).drop(columns=["x", "y"]))


def text_area(results):
    events = events_of(results)
    events["area_um2"] = "big"
    write_events(results / SAMPLE, events)


def no_box(results):
    events = events_of(results)
    events.loc[3, "bbox_x0"] = np.nan
    write_events(results / SAMPLE, events)


def rows_cut(results):
    """The table 20 rows short of what summary.json counts (a copy cut short, its digest
    recorded: the count is checked too)."""
    write_events(results / SAMPLE, events_of(results).iloc[:-20])


def failed_run(results):
    edit_json(results / SAMPLE / "summary.json", status="failed")  # (a run's, sealed)


@pytest.mark.parametrize("spoil, args, message", [
    (None, ["--fcs"], "no predict outputs here"),
    (lambda r: (r / SAMPLE / "events.parquet").unlink(), ["--fcs"], "no predict outputs"),
    (corrupt_table, ["--fcs"], "cannot read the predict outputs"),
    (drop_xy, ["--geojson"], "lacks column(s) x, y"),
    (text_area, ["--fcs"], "column area_um2 of the events table is not numeric"),
    (failed_run, ["--fcs"], "the run of every sample failed"),
    (lambda r: None, [], "ask for --fcs and/or --geojson"),
    # The FCS file is not written first and then the GeoJSON refused: nothing is written.
    (no_box, ["--fcs", "--geojson"], "events.parquet: column bbox_x0 of the events table holds "
                                     "1 missing or infinite value(s) (event_id 3)"),
    (rows_cut, ["--fcs"], "the events table and the summary disagree"),
], ids=["empty-folder", "no-events", "corrupt", "missing-columns", "not-numeric", "failed",
        "no-format", "box-missing", "rows-missing"])
def test_cli_bad_inputs_one_line(run, tmp_path, capsys, spoil, args, message):
    if spoil is None:
        results = tmp_path / "empty"
        results.mkdir()
    else:
        results = copy_run(run, tmp_path / "results")
        spoil(results)
    assert main(["export-events", str(results), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert not list(results.rglob("*.fcs")) and not list(results.rglob("*.geojson"))


def test_a_table_cut_short_names_both_counts(run, tmp_path):
    results = copy_run(run, tmp_path / "results")
    counted = len(events_of(results))
    rows_cut(results)
    with pytest.raises(InputError, match=rf"events.parquet: holds {counted - 20} events but "
                                         rf"summary.json counts {counted}: "):
        export_events(results, fcs=True)


def test_an_event_without_a_box_still_exports_where_no_box_is_written(run, tmp_path):
    """FCS files and GeoJSON points carry no box: the table is refused only where one is
    drawn, and there with the way out named."""
    results = copy_run(run, tmp_path / "results")
    no_box(results)
    with pytest.raises(InputError, match=r"--geometry point\); nothing was exported"):
        export_events(results, fcs=True, geojson=True)
    done = export_events(results, fcs=True, geojson=True, geometry="point")
    assert done[0].events == len(events_of(results))


class NearlyFullDisk:
    """A file opened on a disk with ``room`` bytes free: a write past them writes what fits
    and fails with ENOSPC, as the system's file objects do; numpy's ``tofile``, which writes
    to the descriptor itself, meets a full device (/dev/full) there, as it did a full disk."""

    def __init__(self, path, mode, room):
        self._fh, self._room = open(path, mode), room
        self._device = os.open("/dev/full", os.O_WRONLY)

    def write(self, data):
        data = memoryview(data).cast("B")
        if len(data) > self._room:
            self._fh.write(data[:self._room])
            self._room = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._room -= len(data)
        return self._fh.write(data)

    def fileno(self):
        return self._device

    def __getattr__(self, name):  # flush, tell, seek: the file's own
        return getattr(self._fh, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._fh.close()
        os.close(self._device)


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_disk_that_fills_in_the_fcs_data_is_one_line_and_leaves_nothing(run, tmp_path,
                                                                            capsys, monkeypatch):
    """The disk fills partway through the DATA segment: the no-space line every disk-full
    case gives (numpy's tofile said "N requested and M written" with no errno: a traceback,
    after the header was written), no file and no temporary one; a rerun with room writes."""
    from ctcnet.exports import fcs

    results = copy_run(run, tmp_path / "results")
    with_levels(monkeypatch)
    monkeypatch.setattr(fcs, "open", lambda path, mode: NearlyFullDisk(path, mode, 3000),
                        raising=False)
    status, err = run_cli(capsys, "export-events", results, "--fcs")
    assert_one_line_error(status, err, "No space left on device", code=4)
    assert f"{SAMPLE}.fcs); nothing was left half written, free space and run it again" in err[0]
    assert sorted(p.name for p in (results / SAMPLE).iterdir()) == \
        sorted(p.name for p in (run / SAMPLE).iterdir() if p.name != "gallery")
    monkeypatch.undo()
    assert main(["export-events", str(results), "--fcs"]) == 0


def test_a_write_that_fails_takes_back_the_exports_before_it(run, tmp_path, capsys,
                                                              monkeypatch):
    """The disk fills at a sample's second GeoJSON file, its FCS file written: nothing of the
    export is left (a rerun needs no --overwrite, and no half export passes for a whole)."""
    from ctcnet.exports import geojson  # the GeoJSON files' writer

    results = copy_run(run, tmp_path / "results")
    out = tmp_path / "exports"
    writes = []

    def fills(path, data):
        writes.append(path)
        if len(writes) == 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        atomic_write_bytes(path, data)

    monkeypatch.setattr(geojson, "atomic_write_bytes", fills)
    with_levels(monkeypatch)
    status, err = run_cli(capsys, "export-events", results, "--fcs", "--geojson", "--out", out)
    assert_one_line_error(status, err, "No space left on device", code=4)
    assert len(writes) == 2 and not out.exists()
    monkeypatch.undo()
    with_levels(monkeypatch)
    assert main(["export-events", str(results), "--fcs", "--geojson", "--out", str(out)]) == 0
    assert (out / f"{SAMPLE}.fcs").is_file() and len(list(out.rglob("*.geojson"))) == 2
    # --overwrite failing midway: the earlier export is put back whole (it was removed, with
    # half of an older one's frames left beside it).
    def files():  # (not the lock each export holds the folder by)
        return {p.relative_to(out): p.read_bytes() for p in out.rglob("*")
                if p.is_file() and p.name != ".ctcnet.lock"}

    before = files()
    (out / f"{SAMPLE}.fcs").write_bytes(b"earlier")  # the earlier export, told apart
    before[Path(f"{SAMPLE}.fcs")] = b"earlier"
    writes.clear()
    monkeypatch.setattr(geojson, "atomic_write_bytes", fills)
    status, err = run_cli(capsys, "export-events", results, "--fcs", "--geojson", "--out", out,
                          "--overwrite")
    assert_one_line_error(status, err, "No space left on device", code=4)
    assert files() == before
    # Two samples, the second's FCS file failing once the first's GeoJSON is written: the
    # first's earlier GeoJSON was swept away with its copy kept aside, and lost.
    from ctcnet.exports import event_exports

    monkeypatch.undo()
    with_levels(monkeypatch)
    another_sample(results, "S2")
    assert main(["export-events", str(results), "--fcs", "--geojson", "--out", str(out),
                 "--overwrite"]) == 0
    before = files()
    fcs_writes = []

    def second_fills(path, *args, **kwargs):
        fcs_writes.append(path)
        if len(fcs_writes) == 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        write_fcs(path, *args, **kwargs)

    monkeypatch.setattr(event_exports, "write_fcs", second_fills)
    status, err = run_cli(capsys, "export-events", results, "--fcs", "--geojson", "--out", out,
                          "--overwrite")
    assert_one_line_error(status, err, "No space left on device", code=4)
    assert len(fcs_writes) == 2 and files() == before


def test_failed_sample_is_skipped_beside_good_ones(run, tmp_path, caplog):
    results = copy_run(run, tmp_path / "results")
    another_sample(results, "S2")
    edit_json(results / "S2" / "summary.json", status="failed")  # (a run's, sealed)
    done = export_events(results, fcs=True)
    assert [d.name for d in done] == [SAMPLE]
    assert not (results / "S2" / "S2.fcs").exists() and "S2: its run failed" in caplog.text


def test_existing_outputs_refused_before_any_is_written(run, tmp_path):
    """Two samples, the second's FCS exists: nothing is written, the first's included."""
    results = copy_run(run, tmp_path / "results")
    another_sample(results, "S2")
    (results / "S2" / "S2.fcs").write_bytes(b"earlier")
    with pytest.raises(InputError, match="S2.fcs already exists"):
        export_events(results, fcs=True)
    assert not (results / SAMPLE / f"{SAMPLE}.fcs").exists()
    assert (results / "S2" / "S2.fcs").read_bytes() == b"earlier"


def test_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["export-events", "--help"])
    assert exit_info.value.code == 0
    assert "usage: ctcnet export-events" in capsys.readouterr().out


def test_a_relabel_stays_a_relabel_when_a_rerun_calls_the_cell_as_the_reviewer_did(
        run, tmp_path):
    """A reviewer relabelled a debris call ctc; predict run again calls the cell ctc. The
    reviewed crops counted the decision "confirmed", and gave the crop the new run's call as
    the one the event had: the relabel could no longer be told from dataset.json."""
    from ctcnet.exports.event_crops import write_event_dataset
    from ctcnet.inference.summary import RunSummary
    from ctcnet.review import decisions as D

    results = copy_run(run, tmp_path / "results")
    sample = results / SAMPLE
    events = events_of(results)
    summary = RunSummary.read(sample)
    event, now = int(events["event_id"].iloc[0]), str(events["class"].iloc[0])
    # Decided when this run's events table called the cell debris (as an earlier run did).
    seen = events.assign(**{"class": events["class"].astype(object)})
    seen.loc[seen["event_id"] == event, "class"] = "debris" if now != "debris" else "wbc"
    before = str(seen.loc[seen["event_id"] == event, "class"].iloc[0])
    D.record_decisions(sample, D.RunEvents.of_sample(sample, seen, summary), {event: now}, "ann")
    write_event_dataset(results, tmp_path / "crops", reviewed=True)
    written = json.loads((tmp_path / "crops" / "dataset.json").read_text())
    [source] = written["sources"]
    assert source["decisions"] == {"confirmed": 0, "relabelled": 1, "rejected": 0}
    [crop] = written["crops"]
    assert (crop["event_id"], crop["label"], crop["model_call"]) == (event, now, before)


def test_a_reviewed_samples_exports_carry_the_reviewers_calls(run, tmp_path, monkeypatch):
    """Decisions in review.csv reach the exports: FCS ``reviewer_call`` by the class codes
    (``rejected`` given one, -1 where nothing was decided) and the class and count after
    review (a rejected event counts nowhere); GeoJSON classifies each event as the review left
    it (QuPath colours and counts by it), predict's call kept in its metadata."""
    from ctcnet.inference.summary import RunSummary
    from ctcnet.review import decisions as D

    results = copy_run(run, tmp_path / "results")
    sample = results / SAMPLE
    events = events_of(results)
    summary = RunSummary.read(sample)
    first, second = (int(e) for e in events["event_id"].iloc[:2])
    D.record_decisions(sample, D.RunEvents.of_sample(sample, events, summary),
                       {first: "ctc", second: D.REJECTED}, "ann")
    # The decisions are read (and what is said of them said) once a sample, as it is
    # exported: its "not exported" warning was said twice.
    import ctcnet.exports.event_exports as exporting

    read, reading = [], exporting.with_reviewer_calls
    monkeypatch.setattr(exporting, "with_reviewer_calls",
                        lambda *a: read.append(a[0]) or reading(*a))
    export_events(results, fcs=True, geojson=True)
    assert read == [sample]
    names, values, text = read_flowio(sample / f"{SAMPLE}.fcs")
    table = codes(text["CTCNET_CLASS_CODES"])
    given = values[:, names.index("reviewer_call")]
    assert table[int(given[0])] == "ctc" and table[int(given[1])] == D.REJECTED
    assert (given[2:] == MISSING_VALUE).all()
    features = [f for path in sorted((sample / "geojson").glob("*.geojson"))
                for f in json.loads(path.read_text())["features"]]
    by_id = {int(f["properties"]["metadata"]["event_id"]): f["properties"] for f in features}
    assert by_id[first]["metadata"]["reviewer_call"] == "ctc"
    assert by_id[second]["metadata"]["reviewer_call"] == D.REJECTED
    assert sum("reviewer_call" in p["metadata"] for p in by_id.values()) == 2
    assert by_id[first]["classification"]["name"] == "ctc"
    assert by_id[second]["classification"]["name"] == D.REJECTED
    assert by_id[second]["metadata"]["class"] == events["class"].iloc[1]
    third = int(events["event_id"].iloc[2])
    held = ": held" if events["guard"].iloc[2] else ""  # undecided: as the count has it
    assert by_id[third]["classification"]["name"] == events["class"].iloc[2] + held
    final = values[:, names.index("class_after_review")]
    kept = values[:, names.index("counted_after_review")]
    assert table[int(final[0])] == "ctc" and table[int(final[1])] == D.REJECTED
    assert (kept[0], kept[1]) == (1, 0)
    from ctcnet.inference.guard import counted
    assert (kept[2:] == np.asarray(counted(events))[2:]).all()
    assert by_id[second]["measurements"]["counted_after_review"] == 0


def test_a_scan_that_is_not_there_is_named_with_what_to_do(tmp_path, monkeypatch):
    """Moved: pass --scans. Recorded relative by an older ctcnet: said so."""
    from types import SimpleNamespace

    import pytest

    from ctcnet.errors import InputError
    from ctcnet.exports.event_crops import open_scanned_cartridge

    monkeypatch.chdir(tmp_path)
    moved = SimpleNamespace(sample_id="S1", input=str(tmp_path / "gone"), panel={})
    with pytest.raises(InputError, match=r"S1 is not here any more \(moved\? pass its folder "
                                         r"with --scans\)"):
        open_scanned_cartridge(moved)
    relative = SimpleNamespace(sample_id="S1", input="scans/c1", panel={})
    with pytest.raises(InputError, match="recorded relative to the folder predict ran in"):
        open_scanned_cartridge(relative)


def test_a_one_format_export_after_a_review_says_the_other_is_behind_it(run, tmp_path,
                                                                        caplog):
    """`--fcs --overwrite` after a decision left the GeoJSON beside it as an earlier export
    wrote it (QuPath showing calls the FCS file no longer holds), without a word."""
    import logging
    import os

    from ctcnet.inference.summary import RunSummary
    from ctcnet.review import decisions as D

    results = copy_run(run, tmp_path / "results")
    sample = results / SAMPLE
    events = events_of(results)
    summary = RunSummary.read(sample)
    export_events(results, fcs=True, geojson=True)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        export_events(results, fcs=True, overwrite=True)  # nothing decided: nothing said
    # A sign-off alone is no change to the GeoJSON, which holds none.
    (sample / "signoff.json").write_text("{}")
    with caplog.at_level(logging.WARNING):
        export_events(results, fcs=True, overwrite=True)
    assert "left as it was" not in caplog.text
    (sample / "signoff.json").unlink()
    D.record_decision(sample, D.RunEvents.of_sample(sample, events, summary),
                      int(events["event_id"].iloc[0]), D.REJECTED, "ann")
    old = (sample / "review.csv").stat().st_mtime - 60  # the GeoJSON a minute before it
    for path in [sample / "geojson", *(sample / "geojson").iterdir()]:
        os.utime(path, (old, old))
    with caplog.at_level(logging.WARNING):
        export_events(results, fcs=True, overwrite=True)
    assert f"{sample / 'geojson'} was exported at" in caplog.text
    assert "export it again with --geojson --overwrite" in caplog.text
    caplog.clear()
    out = tmp_path / "side"
    export_events(results, fcs=True, geojson=True, out=out)
    with caplog.at_level(logging.WARNING):
        export_events(results, geojson=True, fcs=False, out=out, overwrite=True)
    assert "left as it was" not in caplog.text  # written after the decision
    fcs = out / f"{SAMPLE}.fcs"
    os.utime(fcs, (old, old))
    with caplog.at_level(logging.WARNING):
        export_events(results, geojson=True, fcs=False, out=out, overwrite=True)
    assert f"{fcs} was exported at" in caplog.text and "with --fcs --overwrite" in caplog.text


def test_export_names_keep_a_sample_ids_letters():
    """"Müller" exports as Müller.fcs (composed, as a Mac's decomposed id too), not M_ller.fcs;
    a separator or control character never reaches the path."""
    from ctcnet.inference.rerun_outputs import file_stem

    assert file_stem("M\u00fcller") == file_stem("Mu\u0308ller") == "M\u00fcller"
    assert file_stem("\u6771\u4eac-1") == "\u6771\u4eac-1"
    assert file_stem("a/b\\c") == "a_b_c" and file_stem("..x") == "x"
    assert file_stem("P\x00 1") == "P__1"


def test_an_export_of_a_stopped_batch_names_the_samples_it_lacks(run, tmp_path, caplog):
    """A batch stopped before its second sample: the export of the first says the other has
    no output and how to get one (it exported the rest silently, status 0)."""
    results = copy_run(run, tmp_path / "results")
    (results / "run.json").write_text(json.dumps({"state": "stopped", "outputs": [
        {"name": SAMPLE, "summary": f"{SAMPLE}/summary.json"},
        {"name": "S3", "missing": True, "reason": "not finished"}]}))
    (results / "S4" / "parts").mkdir(parents=True)  # begun, not finished
    with caplog.at_level("WARNING"):
        assert main(["export-events", str(results), "--fcs"]) == 0
    assert "2 sample(s) have no output to export (S3, S4; run.json: stopped)" in caplog.text
    # ... and so do the crops cut from it (a crop folder of the rest, silently, exit 0).
    caplog.clear()
    with caplog.at_level("WARNING"):
        assert main(["crops", str(results), "--out", str(tmp_path / "cut")]) == 0
    assert "2 sample(s) have no output to cut crops from (S3, S4; run.json: stopped)" in \
        caplog.text


def test_a_geometry_without_geojson_is_refused(run, tmp_path, capsys):
    results = copy_run(run, tmp_path / "results")
    assert main(["export-events", str(results), "--fcs", "--geometry", "point"]) == 2
    assert "--geometry point shapes the GeoJSON detections: add --geojson" in \
        capsys.readouterr().err


def test_fcs_gives_each_mean_in_the_samples_noise_units_where_the_report_kept_them(
        run, tmp_path, caplog, monkeypatch):
    """snr_<channel> = (mean - background) / noise, the review page's m: a gate that carries
    across samples whose backgrounds differ. Only for the run the levels were kept for; where
    none were kept (a negative sample: no tile drawn), read from the frames as the review
    reads them at its first look, and said only where the frames cannot be read."""
    from ctcnet.review.runs import run_id

    results = copy_run(run, tmp_path / "results")
    events = events_of(results)
    channels = [c.removeprefix("mean_") for c in events.columns if c.startswith("mean_")]
    levels = {"channels": channels, "background": [100.0 + i for i in range(len(channels))],
              "noise": [2.0] * len(channels), "white": [999.0] * len(channels),
              "run_id": run_id(events)}
    (results / SAMPLE / "gallery").mkdir(exist_ok=True)
    (results / SAMPLE / "gallery" / "levels.json").write_text(json.dumps(levels))
    export_events(results, fcs=True)
    names, values, _ = read_flowio(results / SAMPLE / f"{SAMPLE}.fcs")
    for i, channel in enumerate(channels):
        want = (events[f"mean_{channel}"].to_numpy(np.float64) - (100.0 + i)) / 2.0
        assert np.allclose(values[:, names.index(f"snr_{channel}")], want, rtol=1e-5)
    # Levels of another run are not this one's: read from the frames instead, as the review
    # server reads them (a negative sample's export lacked them, and a gate set on them
    # across a batch missed it).
    import ctcnet.exports.levels as export_levels
    from ctcnet.inference.summary import RunSummary

    (results / SAMPLE / "gallery" / "levels.json").write_text(
        json.dumps({**levels, "run_id": "another"}))
    export_events(results, fcs=True, overwrite=True)
    names, values, _ = read_flowio(results / SAMPLE / f"{SAMPLE}.fcs")
    read = export_levels.levels_from_frames(RunSummary.read(results / SAMPLE), events)
    assert read is not None and read.background[0] != 100.0
    want = (events[f"mean_{channels[0]}"].to_numpy(np.float64) - read.background[0]) / \
        read.noise[0]
    assert np.allclose(values[:, names.index(f"snr_{channels[0]}")], want, rtol=1e-4)
    # ... and where the frames cannot be read as predict read them (moved, changed): none,
    # said.
    def moved(summary, *args, **kwargs):
        raise InputError("the scan is not here any more", summary.input)

    monkeypatch.setattr(export_levels, "open_scanned_cartridge", moved)
    with caplog.at_level("WARNING"):
        export_events(results, fcs=True, overwrite=True)
    assert not any(n.startswith("snr_")
                   for n in read_flowio(results / SAMPLE / f"{SAMPLE}.fcs")[0])
    assert "no snr_<channel> parameters: no levels are kept for this run" in caplog.text


def test_an_export_over_another_samples_file_is_refused_even_with_overwrite(run, tmp_path,
                                                                           capsys):
    """Two samples whose ids make one file name ("Pt 1", "Pt_1") exported into one --out one
    after the other: the second replaced the first's FCS file under --overwrite."""
    results = copy_run(run, tmp_path / "results")
    summary = results / SAMPLE / "summary.json"
    first = json.loads(summary.read_text())
    assert main(["export-events", str(results / SAMPLE), "--fcs", "--out",
                 str(tmp_path / "shared")]) == 0
    written = next((tmp_path / "shared").glob("*.fcs"))
    summary.write_text(json.dumps({**first, "sample_id": "another"}))
    capsys.readouterr()
    assert main(["export-events", str(results / SAMPLE), "--fcs", "--out",
                 str(tmp_path / "shared"), "--overwrite"]) == 2
    assert f"holds the export of sample {SAMPLE!r}, not of 'another'" in capsys.readouterr().err
    assert written.is_file()


def test_reviewed_rates_of_a_summary_without_its_tally_are_made_of_its_events(run, tmp_path):
    """A summary written before summaries kept their tally (an earlier ctcnet's): the counts
    after review a sign-off is checked against are made of the events, as the review
    server's are (crops --reviewed failed on it with an AttributeError)."""
    from dataclasses import replace

    from ctcnet.exports.sample_review import reviewed_rates
    from ctcnet.inference.summary import RunSummary
    from ctcnet.review import decisions as D

    results = copy_run(run, tmp_path / "results")
    sample = results / SAMPLE
    events = events_of(results)
    summary = RunSummary.read(sample)
    run_events = D.RunEvents.of_sample(sample, events, summary)
    D.record_decisions(sample, run_events, {int(events["event_id"].iloc[0]): "ctc"}, "ann")
    matched = D.load_decisions(sample, run_events)
    with_tally = reviewed_rates(sample, events, matched, summary)
    assert reviewed_rates(sample, events, matched, replace(summary, tally=None)) == with_tally


def test_an_export_of_a_review_never_signed_off_says_so_as_crops_does(run, tmp_path, caplog):
    from ctcnet.inference.summary import RunSummary
    from ctcnet.review import decisions as D

    results = copy_run(run, tmp_path / "results")
    sample = results / SAMPLE
    events = events_of(results)
    run_events = D.RunEvents.of_sample(sample, events, RunSummary.read(sample))
    D.record_decisions(sample, run_events, {int(events["event_id"].iloc[0]): "ctc"}, "ann")
    with caplog.at_level("WARNING"):
        export_events(results, fcs=True)
    assert f"{SAMPLE}: its review is not signed off" in caplog.text


def test_a_coded_copy_names_each_sample_by_its_code_and_leaves_out_who_and_where(
        run, tmp_path, capsys):
    """A trial's sponsor gets the events of a sample run and reviewed under a patient's name
    under the site's code: file names, FCS $SRC/$FIL/CTCNET_SAMPLE_ID, every GeoJSON
    feature; the model by its file's name, no reviewer's name. A sample without a code, a
    copy beside the samples, a code that is no file name: refused before anything is
    written."""
    from ctcnet.cli import main
    from ctcnet.exports.coded import read_codes

    results = copy_run(run, tmp_path / "results")
    (tmp_path / "codes.csv").write_text("sample_id,code\nS1,SITE03-P017\n")
    out = tmp_path / "sponsor"
    assert main(["export-events", str(results), "--fcs", "--geojson", "--out", str(out),
                 "--codes", str(tmp_path / "codes.csv")]) == 0
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "SITE03-P017.fcs", "SITE03-P017_geojson"]
    raw = (out / "SITE03-P017.fcs").read_bytes()
    keywords = text_keywords(raw, *header_fields(raw)[:2])
    assert keywords["$SRC"] == keywords["CTCNET_SAMPLE_ID"] == "SITE03-P017"
    assert keywords["$FIL"] == "SITE03-P017.fcs"
    assert keywords["CTCNET_MODEL"] == "model.pt"  # its name, not where it lies
    assert not keywords.get("CTCNET_CARTRIDGE_ID")  # (a plain export's would link the two)
    # Nor a time to the second: the counts' and the last decision's linked it as well.
    plain = tmp_path / "plain"
    assert main(["export-events", str(results), "--fcs", "--out", str(plain)]) == 0
    raw_plain = (plain / "S1.fcs").read_bytes()
    mine = text_keywords(raw_plain, *header_fields(raw_plain)[:2])
    assert mine["CTCNET_COUNTED_AT"] and not keywords.get("CTCNET_COUNTED_AT")
    assert not keywords.get("CTCNET_REVIEW_UPDATED")
    signed = keywords.get("CTCNET_SIGNOFF", "")
    assert not signed or len(signed.rsplit("; ", 1)[1]) == 10  # (the day it was signed)
    every = b"".join(p.read_bytes() for p in out.rglob("*") if p.is_file())
    assert b"S1" not in every.replace(b"SITE03", b"") and str(tmp_path).encode() not in every
    feature = json.loads(next((out / "SITE03-P017_geojson").glob("*.geojson")).read_text())[
        "features"][0]
    assert feature["properties"]["metadata"]["sample_id"] == "SITE03-P017"
    # Refused, naming why, before any file: no --out; a sample with no code; a bad code.
    (tmp_path / "none.csv").write_text("sample_id,code\nS2,SITE03-P018\n")
    (tmp_path / "bad.csv").write_text("sample_id,code\nS1,../P017\n")
    for extra, said in ((["--codes", str(tmp_path / "codes.csv")], "give --out"),
                        (["--out", str(tmp_path / "x"), "--codes", str(tmp_path / "none.csv")],
                         "gives no code for 1 sample(s) to export: S1"),
                        (["--out", str(tmp_path / "x"), "--codes", str(tmp_path / "bad.csv")],
                         "code '../P017' is not a file's name")):
        assert main(["export-events", str(results), "--fcs", *extra]) == 2
        assert said in capsys.readouterr().err
    assert not (tmp_path / "x").exists() or not any((tmp_path / "x").iterdir())
    assert read_codes(tmp_path / "codes.csv") == {"S1": "SITE03-P017"}
    # Saved by a spreadsheet in a European locale: its semicolons said.
    (tmp_path / "semi.csv").write_text("sample_id;code\nS1;SITE03-P017\n")
    with pytest.raises(InputError, match="separated by semicolons.*save it with commas"):
        read_codes(tmp_path / "semi.csv")
    # A sample id typed on a Mac (its accent decomposed) codes the sample a run wrote
    # composed: "gives no code for Patiënt", the id it named looking as the one given.
    (tmp_path / "mac.csv").write_text("sample_id,code\nPatie\u0308nt 1,C8\n", encoding="utf-8")
    mac = read_codes(tmp_path / "mac.csv")
    assert "Pati\u00ebnt 1" in mac and mac["Pati\u00ebnt 1"] == mac.get("Pati\u00ebnt 1") == "C8"
    # Two samples whose codes differ in case alone would be one file on a lab's share.
    another_sample(results, "S2")
    (tmp_path / "case.csv").write_text("sample_id,code\nS1,P017\nS2,p017\n")
    assert main(["export-events", str(results), "--fcs", "--out", str(tmp_path / "y"),
                 "--codes", str(tmp_path / "case.csv")]) == 2
    assert "give them codes that differ in more than case" in capsys.readouterr().err
    # A codes file shifted by a row gives a sample's id as another's code: S2's events were
    # written as "S1.fcs" in the coded copy, a real id in it.
    (tmp_path / "shifted.csv").write_text("sample_id,code\nS1,S2\nS2,P099\n")
    assert main(["export-events", str(results), "--fcs", "--out", str(tmp_path / "z"),
                 "--codes", str(tmp_path / "shifted.csv")]) == 2
    assert "--codes gives sample ids as codes: S2 (the code of S1)" in capsys.readouterr().err
    # ... exported alone too (S1's events as "S2.fcs"), and in another case.
    (tmp_path / "lower.csv").write_text("sample_id,code\nS1,s2\nS2,P099\n")
    for codes in ("shifted.csv", "lower.csv"):
        assert main(["export-events", str(results / "S1"), "--fcs", "--out",
                     str(tmp_path / "z"), "--codes", str(tmp_path / codes)]) == 2
        assert "--codes gives sample ids as codes" in capsys.readouterr().err
    # A coded copy refreshed with --overwrite (its file holds the code, not the id: it was
    # refused for good); one into a folder holding a plain export is refused.
    coded_args = ["export-events", str(results / "S1"), "--fcs", "--geojson", "--out",
                  str(out), "--codes", str(tmp_path / "codes.csv")]
    assert main([*coded_args, "--overwrite"]) == 0
    assert main(["export-events", str(results / "S1"), "--fcs", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main([*coded_args, "--overwrite"]) == 2
    assert "holds 1 export(s) this coded copy does not write (S1.fcs)" in \
        capsys.readouterr().err
    # ... but its own files are this copy's: another batch's under the same codes, a GeoJSON
    # refresh beside its FCS, a write's hidden temporary file.
    (out / "S1.fcs").unlink()
    (out / ".SITE03-P017.fcs.k3j4h5g6.tmp.fcs").write_bytes(b"a killed write's")
    (tmp_path / "more.csv").write_text("sample_id,code\nS1,SITE03-P017\nS9,SITE03-P099\n")
    (out / "SITE03-P099.fcs").write_bytes((out / "SITE03-P017.fcs").read_bytes().replace(
        b"SITE03-P017", b"SITE03-P099"))
    assert main(["export-events", str(results / "S1"), "--geojson", "--out", str(out),
                 "--codes", str(tmp_path / "more.csv"), "--overwrite"]) == 0


def test_class_codes_hold_rejected_in_one_place_whatever_a_journal_holds():
    """A call typed into review.csv by hand ("rejectd") took a code before "rejected"'s, so
    a gating script keyed on rejected's code read other events."""
    import pandas as pd

    from ctcnet.exports.event_exports import EventCodes

    classes = ["ctc", "wbc", "cluster", "debris"]
    plain = EventCodes.of(pd.DataFrame({"class": ["ctc"], "reviewer_call": [""]}), classes)
    typo = EventCodes.of(pd.DataFrame({"class": ["ctc", "wbc"],
                                       "reviewer_call": ["rejected", "rejectd"]}), classes)
    assert plain.classes == [*classes, "failed", "rejected"]
    assert typo.classes == [*classes, "failed", "rejected", "rejectd"]


def test_channel_names_that_clash_once_commas_go_are_told_apart():
    """Planes "X,Y" and "X_Y" both became $PnN "mean_X_Y": the batch's export ended in a
    ValueError traceback, no sample exported."""
    from ctcnet.exports.event_exports import fcs_names

    assert fcs_names(["mean_X,Y", "mean_X_Y", "snr_X,Y", "snr_X_Y", "mean_X_Y"]) == [
        "mean_X_Y", "mean_X_Y_2", "snr_X_Y", "snr_X_Y_2", "mean_X_Y_3"]
    assert fcs_names(["a", "b"]) == ["a", "b"]


def with_levels(monkeypatch) -> None:
    """The sample's levels as a run with its report kept them (the test run draws no report):
    its export then says nothing of missing snr_ parameters."""
    from ctcnet.exports import event_exports

    monkeypatch.setattr(event_exports, "sample_levels",
                        lambda folder, events, summary=None: {"DAPI": (100.0, 2.0)})
