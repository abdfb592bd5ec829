"""ctcnet.io.cartridge_info: cartridge.json read in any encoding an editor saves, and a sample id
that can name a folder, from cartridge.json or from the cartridge's own name."""

import json
import os
import shutil

import pytest
from conftest import edit_json, predict

from ctcnet.errors import InputError
from ctcnet.io.cartridge_info import read_cartridge_info, safe_sample_id
from ctcnet.io.scan import open_cartridge


def _without_sample_id(folder):
    info = json.loads((folder / "cartridge.json").read_text())
    info.pop("sample_id")
    (folder / "cartridge.json").write_text(json.dumps(info))


def test_a_folder_name_that_is_not_utf8_gives_a_readable_sample_id(clean_run, cart, caplog):
    """A cartridge folder named b'cart\\xe9' (a Latin-1 system's "carté") and no sample_id:
    the id is read as Windows-1252, said once; predict writes its outputs under it (the
    journal and the summary once raised UnicodeEncodeError: surrogates not allowed)."""
    _without_sample_id(cart)
    odd = os.fsdecode(os.fsencode(cart.parent) + b"/cart\xe9")
    shutil.move(cart, odd)
    with caplog.at_level("WARNING", logger="ctcnet.io"):
        opened = open_cartridge(odd)
        open_cartridge(odd)
    assert opened.sample_id == "carté"
    said = [r.getMessage() for r in caplog.records if "not UTF-8" in r.getMessage()]
    assert len(said) == 1 and "'carté'" in said[0] and "sample_id" in said[0]
    summary = predict(clean_run, odd, out=cart.parent / "out")
    assert summary.status == "ok" and summary.sample_id == "carté"
    assert summary.input == str(odd)
    written = json.loads((cart.parent / "out" / "summary.json").read_text())
    assert written["input"] == odd  # the path itself, as a reader of the JSON gets it back


def test_a_night_with_a_folder_name_that_is_not_utf8_runs_it_and_logs_its_bytes(
        cart_and_model, cart, tmp_path):
    """The run's log file once raised UnicodeEncodeError on the warning about such a folder,
    and the whole night ended with a traceback; the name is logged as its bytes."""
    from ctcnet.cli import main

    night = tmp_path / "night"
    night.mkdir()
    _without_sample_id(cart)
    odd = os.fsdecode(os.fsencode(night) + b"/cart\xe9")
    shutil.move(cart, odd)
    out = tmp_path / "out"
    assert main(["predict", str(night), "--out", str(out), "--model",
                 str(cart_and_model / "model.pt"), "--device", "cpu", "--no-report",
                 "--quiet"]) == 0
    assert json.loads((out / "carté" / "summary.json").read_text())["status"] == "ok"
    log = next((out / "logs").glob("predict-*.log")).read_text(encoding="utf-8")
    assert "cart\\xe9" in log and "not UTF-8" in log
    # An --out whose name is not UTF-8 is refused before any work: Parquet cannot write there.
    bad = os.fsdecode(os.fsencode(tmp_path) + b"/out\xff")
    assert main(["predict", odd, "--out", bad, "--model", str(cart_and_model / "model.pt"),
                 "--quiet"]) == 2
    assert not os.path.exists(bad)
    # Its own name fine, the folder it lies in not: that folder is named.
    from ctcnet.errors import InputError
    from ctcnet.io.atomic import check_output_path

    with pytest.raises(InputError, match=r"the path of the folder it lies in \(.*out"):
        check_output_path(os.path.join(bad, "res"))


@pytest.mark.parametrize("named", ["PAT-M\u00fcller", "PAT-\u60a3\u800517"])
def test_a_sample_named_beyond_ascii_under_a_latin1_locale_is_set_aside_by_name(
        cart_and_model, tmp_path, monkeypatch, named):
    """Under LC_ALL=de_DE.ISO-8859-1 a sample Müller's folder was made in Latin-1 and its
    tables written by Parquet under the UTF-8 name: a traceback at the first table, and a
    run.json saying the same command resumes it. A name Latin-1 cannot write at all (患者17)
    ended the whole batch in a traceback, no run.json, no log."""
    import ctcnet.io.atomic as atomic
    from ctcnet.cli import main

    monkeypatch.setattr(atomic, "on_disk", lambda path: os.fspath(path).encode("latin-1"))
    scans = tmp_path / "scans"
    for name, sample in (("a", named), ("b", "PAT-B")):
        shutil.copytree(cart_and_model / "cart", scans / name)
        edit_json(scans / name / "cartridge.json", sample_id=sample)
    out = tmp_path / "out"
    assert main(["predict", str(scans), "--out", str(out), "--model",
                 str(cart_and_model / "model.pt"), "--device", "cpu", "--no-report",
                 "--quiet"]) == 2
    outputs = json.loads((out / "run.json").read_text())["outputs"]
    said = {o["name"]: o.get("status") or o["set_aside"] for o in outputs}
    assert said["PAT-B"] == "ok"
    assert "writes file names in" in said[named] and "PYTHONUTF8=1" in said[named]


def test_a_sample_id_of_lone_surrogates_is_refused_by_name(tmp_path):
    with pytest.raises(InputError, match="lone surrogates"):
        safe_sample_id(json.loads('"cart\\udce9"'), tmp_path)


def test_a_latin1_cartridge_json_is_read_with_a_warning(tmp_path, caplog):
    (tmp_path / "cartridge.json").write_bytes(
        json.dumps({"sample_id": "Genève-3", "blood_volume_ml": 7.5}, ensure_ascii=False)
        .encode("latin-1"))
    with caplog.at_level("WARNING", logger="ctcnet.io"):
        assert read_cartridge_info(tmp_path)["sample_id"] == "Genève-3"
    assert "not UTF-8" in caplog.text and "cartridge.json" in caplog.text


def test_metadata_files_that_cannot_be_records_are_refused_before_they_are_read(tmp_path):
    """A FIFO named cartridge.json would block the run forever, a link to /dev/zero fill its
    memory, JSON nested past Python's limit crash it: each is one refusal by name, so a
    batch sets the cartridge aside and runs the others."""
    from ctcnet.io.panel import load_panel

    fifo = tmp_path / "fifo" / "cartridge.json"
    fifo.parent.mkdir()
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="not a regular file"):
        read_cartridge_info(fifo.parent)
    (tmp_path / "zero").mkdir()
    os.symlink("/dev/zero", tmp_path / "zero" / "panel.json")
    with pytest.raises(InputError, match="not a regular file"):
        load_panel(tmp_path / "zero" / "panel.json")
    (tmp_path / "deep").mkdir()
    (tmp_path / "deep" / "cartridge.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(InputError, match="not valid JSON"):
        read_cartridge_info(tmp_path / "deep")


def test_sample_ids_and_counts_a_slip_would_make(tmp_path):
    """A sample id the batch's own index is named (run.json) is refused; so is a frame count
    no scan has (10^9 made a 4-frame cartridge's counts 2.5 x 10^8 per 7.5 mL)."""
    from ctcnet.io.cartridge_info import MAX_STATED, whole_number

    for name in ("run.json", "Samples.csv", "logs"):  # a batch's index, table and logs
        with pytest.raises(InputError, match="--out holds a file or folder of that name"):
            safe_sample_id(name, tmp_path)
    assert whole_number({"num_frames": MAX_STATED}, "num_frames", tmp_path) == MAX_STATED
    with pytest.raises(InputError, match="num_frames must be a whole number from 1 to"):
        whole_number({"num_frames": 10**9}, "num_frames", tmp_path)


def test_sample_ids_a_windows_share_cannot_hold_are_refused(tmp_path):
    """The output folder is the sample id, and a lab's share is opened from Windows too: a
    name Windows cannot give a file, or keeps for a device, is refused naming why."""
    for name in ("P:01", "a?b", "x|y", 'say"hi"', "dot."):
        with pytest.raises(InputError, match="Windows cannot name a file so"):
            safe_sample_id(name, tmp_path)
    for name in ("CON", "nul", "aux.txt", "COM1", "lpt9.x"):
        with pytest.raises(InputError, match="Windows keeps the name for a device"):
            safe_sample_id(name, tmp_path)
    for name in ("COM0", "lpt¹", "CONIN$"):
        with pytest.raises(InputError, match="Windows keeps the name for a device"):
            safe_sample_id(name, tmp_path)
    for name in ("CONSENT-12", "P-01 ß", "nullify", "com10"):
        assert safe_sample_id(name, tmp_path) == name
    # Accents composed: a folder copied through macOS and one named on Linux are one sample.
    assert safe_sample_id("Mu\u0308ller", tmp_path) == "M\u00fcller"


def test_a_blood_volume_under_a_drop_is_a_problem_of_the_sample(cart_and_model, tmp_path):
    """0.0075 (litres for 7.5 mL) is said, as more than a tube holds is: partial."""
    from ctcnet.io.plausibility import plausibility_problems

    cart = tmp_path / "cart"
    shutil.copytree(cart_and_model / "cart", cart)
    info = json.loads((cart / "cartridge.json").read_text())
    (cart / "cartridge.json").write_text(json.dumps({**info, "blood_volume_ml": 0.0075}))
    problems = plausibility_problems(open_cartridge(cart))
    assert len(problems) == 1 and "less than a drop of blood" in problems[0]
    (cart / "cartridge.json").write_text(json.dumps({**info, "blood_volume_ml": 0.2}))
    assert plausibility_problems(open_cartridge(cart)) == []


def test_a_labs_own_keys_travel_only_as_json_any_reader_parses():
    """cartridge.json written by Python may hold Infinity or NaN (its json writes them):
    carried into summary.json they would make it unreadable to a strict parser (a LIMS's,
    a browser's), so such values are left out; plain values travel."""
    from ctcnet.io.cartridge_info import unread_keys

    kept = unread_keys({"site": "B", "exposure_ms": float("inf"), "gain": float("-inf"),
                        "offset": float("nan"), "lamp_hours": 1200.5, "sample_id": "S1"})
    assert kept == {"site": "B", "lamp_hours": 1200.5}


@pytest.mark.parametrize("text, said", [
    ('{\n  "sample_id": "P1",\n  "blood_volume_ml": 7.5,\n}', "a comma after the last item on "
     "line 3 (JSON allows none before '}'): remove it"),
    ('{"sample_id": "P1"\n "blood_volume_ml": 7.5}', "a comma missing at the end of line 1?"),
    ("{'sample_id': 'P1'}", "double quotes"),
    ('{"sample_id": "P1",\n "blood_volume_ml": 7,5\n}', "a decimal comma on line 2? JSON "
     "writes a number with a point (7.5)"),
    ('{"sample_id": "P1",\n "blood_volume_ml": 7.5,\n  ', "the file ends before its JSON "
     "does (cut short: a copy or export stopped part-way?): write it again whole"),
])
def test_a_hand_edited_cartridge_json_names_its_slip(tmp_path, text, said):
    (tmp_path / "cartridge.json").write_text(text)
    with pytest.raises(InputError, match="cartridge.json is not valid JSON") as err:
        read_cartridge_info(tmp_path)
    assert said in str(err.value) and "line" in str(err.value)


def test_a_sample_id_with_spaces_at_its_ends_is_read_trimmed_and_said(tmp_path, caplog):
    import logging

    with caplog.at_level(logging.WARNING):
        assert safe_sample_id(" PAT-012 ", tmp_path) == "PAT-012"
        assert safe_sample_id(" PAT-012 ", tmp_path) == "PAT-012"  # opened again: said once
    assert caplog.text.count("has spaces at its ends: read as 'PAT-012'") == 1
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert safe_sample_id("PAT-013", tmp_path) == "PAT-013"
    assert caplog.text == ""


def test_metadata_still_being_written_is_said_so(tmp_path):
    """A cartridge.json cut short as the scanner writes it, a panel.json not yet copied: the
    refusal says the scan may still be in progress (a watcher told it from bad input by
    nothing); an old one is refused as it was."""
    from ctcnet.io.sources.base import no_panel_json

    (tmp_path / "cartridge.json").write_text('{"sample_id": "P1", "blood_vol')
    with pytest.raises(InputError, match="still writing it, run again once it is whole"):
        read_cartridge_info(tmp_path)
    (tmp_path / "r00c00.tif").write_bytes(b"x")
    assert "panel.json may come last" in str(no_panel_json(tmp_path))
    old = 1e9
    for name in ("cartridge.json", "r00c00.tif"):
        os.utime(tmp_path / name, (old, old))
    with pytest.raises(InputError) as refused:
        read_cartridge_info(tmp_path)
    assert "still writing" not in str(refused.value)
    assert "may come last" not in str(no_panel_json(tmp_path))


def test_a_sample_id_one_slip_from_its_folders_name_is_said(tmp_path, caplog):
    """P20_WK3 in P02_WK3: the outputs went by the typo and the draw was not found under the
    folder's name, unsaid. Ids unlike their folder's name (a lab naming folders by run) are
    no slip."""
    from ctcnet.io.cartridge_info import say_if_mistyped

    with caplog.at_level("WARNING"):
        say_if_mistyped("P20_WK3", tmp_path / "P02_WK3")
        say_if_mistyped("sample_12", tmp_path / "sample_13")
        for same_or_unlike in (("P02_WK3", "P02_WK3"), ("p02_wk3", "P02_WK3"),
                               ("sim5", "cart12"), ("PT-0417", "run_2026-12-01"),
                               ("PTA-D0", "PTA_D0"), ("pta d0", "PTA.D0")):  # separators
            say_if_mistyped(same_or_unlike[0], tmp_path / same_or_unlike[1])
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 2, said
    assert "cartridge.json's sample_id 'P20_WK3' is not its folder's name 'P02_WK3', " \
        "nearly: a slip in one of them? The outputs go by the sample id (P20_WK3)" in said[0]


def test_a_sample_id_of_another_json_type_is_named_so_not_an_empty_name(tmp_path):
    """A list, a number with a fraction or true as cartridge.json's sample_id: refused
    saying what it is (it read "an empty name")."""
    for value, kind in ((["x"], "list"), (3.5, "float"), (True, "bool")):
        with pytest.raises(InputError, match=f"text or a whole number, not a {kind}"):
            safe_sample_id(value, tmp_path)
    with pytest.raises(InputError, match="an empty name"):
        safe_sample_id("  ", tmp_path)
    assert safe_sample_id(17, tmp_path) == "17"


def test_a_null_blood_volume_is_refused_saying_how_to_read_the_standard_tube(tmp_path):
    """A LIMS writes null for a volume it lacks: refused (a rate per 7.5 mL over an unknown
    volume is no figure), saying that a key left out reads the standard tube, as one is."""
    from ctcnet.io.cartridge_info import positive_number

    with pytest.raises(InputError, match=r"got null \(null: state it, or leave the key out "
                                         r"to read 7.5\)"):
        positive_number({"blood_volume_ml": None}, "blood_volume_ml", 7.5, tmp_path)
    assert positive_number({}, "blood_volume_ml", 7.5, tmp_path) == 7.5
    with pytest.raises(InputError, match=r"got 'abc'$"):
        positive_number({"pixel_size_um": "abc"}, "pixel_size_um", 0.0, tmp_path)


def test_a_simulated_cartridges_own_sample_id_is_no_slip(tmp_path, caplog):
    """simulate names its sample sim<seed>: a folder named s101 read "a slip in one of
    them?" on a newcomer's first cartridge."""
    from ctcnet.io.panel import load_panel
    from ctcnet.io.scan import open_cartridge
    from ctcnet.simulate import simulate_cartridge

    simulate_cartridge(tmp_path / "s101", load_panel(None), num_frames=1,
                       frame_shape=(96, 128), seed=101, events_per_frame=4)
    with caplog.at_level("WARNING"):
        open_cartridge(tmp_path / "s101")
    assert "a slip in one of them" not in caplog.text
