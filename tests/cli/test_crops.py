"""``ctcnet crops``: an output that is an existing file gives one line."""

from conftest import assert_one_line_error, run_cli


def test_crops_into_an_existing_file_is_one_line(tmp_path, capsys):
    taken = tmp_path / "taken"
    taken.write_text("a file kept here\n")
    status, err = run_cli(capsys, "crops", tmp_path / "results", "--reviewed", "--out", taken)
    assert_one_line_error(status, err, f"{taken}: exists and is not a folder")
    assert taken.read_text() == "a file kept here\n"


def test_crops_of_a_frame_changed_since_predict_are_refused_in_one_line(clean_run, cart,
                                                                        capsys):
    """A frame shifted 60 px after predict: its crops would be cut from other cells than those
    called (they were, silently); refused, naming the sample and the frame. A frame only
    touched (its time changed, its bytes not) is no change."""
    import os

    import numpy as np
    import tifffile
    from conftest import frames, one_line_refusal, predict

    predict(clean_run, cart, out=cart.parent / "results" / "S1")
    for path in frames(cart):
        os.utime(path)
    status, err = run_cli(capsys, "crops", cart.parent / "results", "--out",
                          cart.parent / "touched")
    assert status == 0, err
    # A refused cut (no review decisions to cut by, a run that is not there) leaves no empty
    # output folder behind.
    status, err = run_cli(capsys, "crops", cart.parent / "results", "--reviewed", "--out",
                          cart.parent / "unreviewed")
    assert status == 2 and not (cart.parent / "unreviewed").exists(), err
    status, err = run_cli(capsys, "crops", cart.parent / "nosuch", "--out", cart.parent / "gone")
    assert_one_line_error(status, err, "results folder not found")
    assert not (cart.parent / "gone").exists()
    path = frames(cart)[1]
    tifffile.imwrite(path, np.roll(tifffile.imread(path), 60, axis=2), photometric="minisblack")
    one_line_refusal(capsys, ["crops", cart.parent / "results", "--out", cart.parent / "cut"],
                     "sample S1: frame r00c01 changed since predict read it (its files' SHA-256")
    assert not (cart.parent / "cut").exists()


def test_a_file_given_for_a_run_folder_names_its_folder(tmp_path, capsys):
    summary = tmp_path / "run" / "S1" / "summary.json"
    summary.parent.mkdir(parents=True)
    summary.write_text("{}")
    status, err = run_cli(capsys, "review", summary, "--no-browser")
    assert_one_line_error(status, err, f"is a file; pass the predict output folder (for this "
                                       f"file: {summary.parent})")


def test_crops_again_into_the_same_folder_replaces_them_with_overwrite(clean_run, cart, capsys):
    """A lab cuts crops, reviews more, cuts again: --overwrite replaces an earlier cut (the
    old crops kept until the new ones are written); without it, or over a folder of other
    files, refused in one line and nothing touched."""
    from conftest import predict

    predict(clean_run, cart, out=cart.parent / "results" / "S1")
    out = cart.parent / "cut"
    assert run_cli(capsys, "crops", cart.parent / "results", "--out", out)[0] == 0
    first = sorted(p.name for p in out.rglob("*") if p.is_file())
    status, err = run_cli(capsys, "crops", cart.parent / "results", "--out", out)
    assert_one_line_error(status, err, "not empty; choose a new one (or --overwrite")
    # A lab's own work added to the cut (a note, its own labelled crop with its manifest
    # line, a crop placed by hand in a split): --overwrite refuses, naming it (it deleted
    # them with the earlier cut, unsaid); a desktop's files are nobody's work.
    (out / "note.txt").write_text("kept by a refusal\n")
    label = next(p.parent.name for p in out.rglob("*.tif"))
    (out / label / "own_1.tif").write_bytes(b"mine")
    manifest = (out / "manifest.csv").read_text()
    (out / "manifest.csv").write_text(manifest + f"{label}/own_1.tif,{label},lab,\n")
    (out / ".DS_Store").write_bytes(b"")
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    status, err = run_cli(capsys, "crops", cart.parent / "results", "--out", out,
                          "--overwrite")
    assert_one_line_error(status, err, "--overwrite would delete what the earlier `ctcnet "
                          f"crops` did not write here: {label}/own_1.tif, note.txt, "
                          "manifest.csv (1 line(s) added, changed or removed since the cut)")
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    (out / "note.txt").unlink()
    (out / label / "own_1.tif").unlink()
    lines = manifest.splitlines(keepends=True)
    (out / "manifest.csv").write_text(lines[0] + lines[1].rstrip("\n") + "val\n"
                                      + "".join(lines[2:]))
    status, err = run_cli(capsys, "crops", cart.parent / "results", "--out", out,
                          "--overwrite")
    assert_one_line_error(status, err, "manifest.csv (1 line(s) added, changed or removed")
    (out / "manifest.csv").write_text(manifest)
    out.chmod(0o2775)  # shared with a lab group
    assert run_cli(capsys, "crops", cart.parent / "results", "--out", out, "--overwrite")[0] == 0
    assert oct(out.stat().st_mode & 0o7777) == oct(0o2775)
    # Every file as open as the crops, the dataset's own files too (they were 0600).
    modes = {oct(p.stat().st_mode & 0o777) for p in out.rglob("*") if p.is_file()}
    assert len(modes) == 1 and modes != {oct(0o600)}, modes
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) == first
    assert not [p for p in cart.parent.iterdir() if p.name.startswith(".cut.")]
    other = cart.parent / "other"
    other.mkdir()
    (other / "mine.txt").write_text("x")
    status, err = run_cli(capsys, "crops", cart.parent / "results", "--out", other,
                          "--overwrite")
    assert_one_line_error(status, err, "replaces only a crop dataset ctcnet wrote")
    assert [p.name for p in other.iterdir()] == ["mine.txt"]


def test_each_crop_is_named_beside_its_event_frame_and_centre(clean_run, cart, capsys):
    """A crop's file name is a running number (event 93's crop is ..._0000001.tif): dataset.json
    names each crop's file beside its event, frame and centre, which read back to the same
    pixels as the events table's crop."""
    import json

    import numpy as np
    import pandas as pd
    from conftest import predict

    from ctcnet.io.images import read_image

    info = json.loads((cart / "cartridge.json").read_text())
    (cart / "cartridge.json").write_text(json.dumps({**info, "patient_id": "PT-7"}))
    predict(clean_run, cart, out=cart.parent / "results" / "S1")
    out = cart.parent / "named"
    assert run_cli(capsys, "crops", cart.parent / "results", "--out", out)[0] == 0
    rows = json.loads((out / "dataset.json").read_text())["crops"]
    manifest = pd.read_csv(out / "manifest.csv")
    assert [r["path"] for r in rows] == manifest["path"].tolist()  # one order, written
    # The patient cartridge.json names, for a split that keeps a patient's draws together.
    assert set(manifest["patient_id"]) == {"PT-7"}
    events = pd.read_parquet(cart.parent / "results" / "S1" / "events.parquet")
    by_id = events.set_index("event_id")
    for row in rows:
        event = by_id.loc[row["event_id"]]
        assert (row["frame_id"], row["x"], row["y"]) == (event["frame_id"], event["x"],
                                                         event["y"])
        assert row["label"] == event["class"] and (out / row["path"]).is_file()
    assert len({r["path"] for r in rows}) == len(rows) == len(events)
    assert np.isfinite(read_image(out / rows[0]["path"])[0]).all()
