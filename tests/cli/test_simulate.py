"""``ctcnet simulate`` refuses to write over an existing output unless --overwrite, and
--overwrite replaces only what simulate wrote."""

import json
from pathlib import Path

import pytest
from conftest import digest, refused

from ctcnet.cli import main


def tree(folder):
    """Every file under ``folder`` with its digest: what must stay untouched."""
    return {str(p.relative_to(folder)): digest(p) for p in sorted(folder.rglob("*"))
            if p.is_file()}


def test_simulate_refuses_an_existing_output_and_overwrite_replaces_it_whole(tmp_path, capsys):
    cart = tmp_path / "cart"
    small = ["--frame-shape", "96x128", "--events", "4", "--clean"]
    assert main(["simulate", "cartridge", str(cart), "--frames", "3", *small]) == 0
    before = tree(cart)
    refused(capsys, cart, ["simulate", "cartridge", str(cart), "--frames", "2", "--seed", "1",
                           *small])
    assert tree(cart) == before
    # --overwrite replaces the folder whole: no frame of the 3-frame run stays beside the 2.
    assert main(["simulate", "cartridge", str(cart), "--frames", "2", "--seed", "1", *small,
                 "--overwrite"]) == 0
    assert sorted(p.name for p in cart.glob("r*.tif")) == ["r00c00.tif", "r00c01.tif"]
    assert json.loads((cart / "cartridge.json").read_text())["seed"] == 1

    crops = tmp_path / "crops"
    args = ["simulate", "crops", str(crops), "--counts", "2", "--crop-size", "32"]
    assert main(args) == 0
    before = tree(crops)
    refused(capsys, crops, [*args, "--seed", "4"])
    assert tree(crops) == before
    assert main([*args, "--seed", "4", "--overwrite"]) == 0
    assert json.loads((crops / "dataset.json").read_text())["seed"] == 4
    # A finished output holds no mark of a run at work.
    assert not any(p.name.startswith(".ctcnet-simulate") for p in [*crops.iterdir(),
                                                                   *cart.iterdir()])
    # A run killed outright (SIGKILL) left its frames without cartridge.json: --overwrite
    # refused them as nobody's; they were its own, marked so.
    killed = tmp_path / "killed"
    killed.mkdir()
    (killed / "r00c00.tif").write_bytes(b"half a run")
    (killed / ".ctcnet-simulate-unfinished").write_text("cartridge\n")
    refused(capsys, killed, ["simulate", "cartridge", str(killed), "--frames", "1", *small])
    assert main(["simulate", "cartridge", str(killed), "--frames", "1", *small,
                 "--overwrite"]) == 0
    assert (killed / "cartridge.json").is_file()
    assert not (killed / ".ctcnet-simulate-unfinished").exists()
    # A killed crops run's crops are its own; a file someone added beside them is not.
    crops_killed = tmp_path / "crops_killed"
    (crops_killed / "ctc").mkdir(parents=True)
    (crops_killed / "ctc" / "sim0-s000__0000003.tif").write_bytes(b"half")
    (crops_killed / "notes.txt").write_text("mine")
    (crops_killed / ".ctcnet-simulate-unfinished").write_text("crops\n")
    assert main(["simulate", "crops", str(crops_killed), "--counts", "1", "--crop-size", "32",
                 "--overwrite"]) == 2
    assert "holds 1 file(s) ctcnet simulate did not write (notes.txt)" in \
        capsys.readouterr().err
    # A run that fails in a folder the user made leaves no mark there.
    mine = tmp_path / "mine"
    mine.mkdir()
    assert main(["simulate", "crops", str(mine), "--counts", "platypus=1"]) == 2
    assert list(mine.iterdir()) == []
    # ... nor any of its files where it was stopped midway (`mkdir -p OUT` first, then a
    # Ctrl-C: half its frames stayed, a folder --overwrite then refused as nobody's).
    import ctcnet.simulate as simulator

    def stopped(out, *args, **kwargs):
        (Path(out) / "r00c00.tif").write_bytes(b"half a run")
        (Path(out) / "sub").mkdir()
        raise KeyboardInterrupt

    real = simulator.simulate_cartridge
    simulator.simulate_cartridge = stopped
    try:
        assert main(["simulate", "cartridge", str(mine), "--frames", "1", *small]) == 130
    finally:
        simulator.simulate_cartridge = real
    assert mine.is_dir() and list(mine.iterdir()) == []
    # ... its mark is of that kind of output alone: a killed crops run is no cartridge's.
    (killed / ".ctcnet-simulate-unfinished").write_text("crops\n")
    (killed / "cartridge.json").unlink()
    assert main(["simulate", "cartridge", str(killed), "--frames", "1", *small,
                 "--overwrite"]) == 2
    assert "is not an earlier ctcnet simulate cartridge output" in capsys.readouterr().err

    gallery = tmp_path / "gallery"
    args = ["simulate", "gallery", str(gallery), "--per-class", "1", "--crop-size", "32"]
    assert main(args) == 0
    before = tree(gallery)
    refused(capsys, gallery / "gallery_ctc.png", [*args, "--seed", "2"])
    assert tree(gallery) == before
    assert main([*args, "--seed", "2", "--overwrite"]) == 0
    assert tree(gallery) != before
    # A gallery drawn into a simulated cartridge's folder is simulate's too: the cartridge's
    # --overwrite was refused as holding "files ctcnet simulate did not write".
    drawn = tmp_path / "drawn"
    assert main(["simulate", "cartridge", str(drawn), "--frames", "1", *small]) == 0
    assert main(["simulate", "gallery", str(drawn), "--per-class", "1", "--crop-size",
                 "32"]) == 0
    assert main(["simulate", "cartridge", str(drawn), "--frames", "1", *small,
                 "--overwrite"]) == 0, capsys.readouterr().err
    # Stopped after its first class's image: none of its own left, the earlier ones back.
    import ctcnet.simulate.gallery as drawing

    replaced = tree(gallery)
    real = drawing.write_simulated_gallery

    def stopped(out, *a, **kw):  # (each image written whole, as the gallery's are)
        from ctcnet.io.atomic import atomic_write_bytes

        atomic_write_bytes(Path(out) / "gallery_ctc.png", b"a first class's image")
        raise KeyboardInterrupt

    drawing.write_simulated_gallery = stopped
    try:
        assert main([*args, "--seed", "3", "--overwrite"]) == 130
        assert tree(gallery) == replaced
        fresh = tmp_path / "fresh"
        assert main(["simulate", "gallery", str(fresh), "--per-class", "1"]) == 130
        assert not fresh.exists() or not any(fresh.iterdir())
    finally:
        drawing.write_simulated_gallery = real


def test_the_earlier_output_a_killed_overwrite_set_aside_is_named(tmp_path, capsys, caplog):
    """An --overwrite run killed outright left the earlier output hidden beside OUT for good
    (.OUT.replaced-<pid>, as large as a cartridge), and no rerun named it. Said, not moved
    (a run elsewhere on shared storage may still be writing); a running process's is not."""
    import os
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    cart = tmp_path / "cart"
    small = ["--frame-shape", "96x128", "--events", "4", "--clean"]
    assert main(["simulate", "cartridge", str(cart), "--frames", "1", *small]) == 0
    aside = tmp_path / f".cart.replaced-{dead}"
    (aside / "r00c00.tif").parent.mkdir()
    running = tmp_path / f".cart.replaced-{os.getpid()}"
    running.mkdir()
    with caplog.at_level("WARNING"):
        refused(capsys, cart, ["simulate", "cartridge", str(cart), "--frames", "1", *small])
    assert f"{aside} holds the earlier output an --overwrite run set aside" in caplog.text
    assert str(running) not in caplog.text
    assert aside.is_dir() and running.is_dir()


def test_an_overwrite_refused_deep_in_the_simulator_keeps_the_earlier_output(tmp_path, capsys):
    """Options the simulator itself refuses (a rate over 1, unknown classes of --counts):
    --overwrite had deleted the earlier output before, and wrote nothing. A run that fails
    leaves nothing of its own, and no folder set aside."""
    from conftest import assert_one_line_error, run_cli

    cart = tmp_path / "cart"
    small = ["--frames", "1", "--frame-shape", "96x128", "--events", "4", "--clean"]
    assert main(["simulate", "cartridge", str(cart), *small]) == 0
    before = tree(cart)
    assert_one_line_error(*run_cli(capsys, "simulate", "cartridge", cart, *small,
                                   "--rates", "ctc=1.5", "--overwrite"), "the rate of ctc (1.5)")
    assert tree(cart) == before
    crops = tmp_path / "crops"
    args = ["simulate", "crops", str(crops), "--crop-size", "32"]
    assert main([*args, "--counts", "2"]) == 0
    before = tree(crops)
    assert run_cli(capsys, *args, "--counts", "foo=3", "--overwrite")[0] == 2
    assert tree(crops) == before
    assert run_cli(capsys, "simulate", "cartridge", tmp_path / "new", *small, "--rates",
                   "ctc=1.5")[0] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cart", "crops"]
    # A folder that cannot be made, an infinite --events: one line each, not a traceback.
    (tmp_path / "afile").write_text("")
    assert_one_line_error(*run_cli(capsys, "simulate", "cartridge", tmp_path / "afile" / "sub",
                                   *small), "cannot make the output folder here: Not a "
                                            "directory")
    with pytest.raises(SystemExit):
        run_cli(capsys, "simulate", "cartridge", tmp_path / "inf", "--events", "inf")
    assert "argument --events: a finite number, 0 or more, not inf" in capsys.readouterr().err
    assert_one_line_error(*run_cli(capsys, "simulate", "cartridge", tmp_path / "many",
                                   "--frames", "1", "--frame-shape", "64x64", "--events", "1e9"),
                          "events per frame (--events) must be 0 to 1024 for a 64 x 64 frame")


def test_simulate_overwrite_never_deletes_what_simulate_did_not_write(tmp_path, capsys):
    """A real scan (or a lab's crops) given as OUT by mistake: --overwrite refuses too."""
    scan = tmp_path / "scan"
    scan.mkdir()
    (scan / "r00c00.tif").write_bytes(b"a real frame")
    (scan / "cartridge.json").write_text(json.dumps({"sample_id": "patient 7"}))
    before = tree(scan)
    capsys.readouterr()
    for overwrite in ([], ["--overwrite"]):  # never offered --overwrite, which refuses too
        assert main(["simulate", "cartridge", str(scan), "--frames", "1", "--frame-shape",
                     "96x128", *overwrite]) == 2
        err = capsys.readouterr().err
        assert "is not an earlier ctcnet simulate cartridge output" in err
        assert "pass --overwrite" not in err
    assert tree(scan) == before
    # An earlier simulate output a researcher added files to (notes, a hand-cut crop):
    # --overwrite refuses, naming them (it removed them with the earlier output, unsaid);
    # a desktop's own files are nobody's work, in whatever case a share writes their names.
    crops = tmp_path / "crops"
    args = ["simulate", "crops", str(crops), "--counts", "1", "--crop-size", "32"]
    assert main(args) == 0
    (crops / "README_lab.txt").write_text("keep")
    (crops / "ctc" / "hand_crop.tif").write_bytes(b"mine")
    (crops / ".DS_Store").write_bytes(b"")
    (crops / "ctc" / "THUMBS.DB").write_bytes(b"")
    before = tree(crops)
    capsys.readouterr()
    assert main([*args, "--seed", "2", "--overwrite"]) == 2
    assert "holds 2 file(s) ctcnet simulate did not write (README_lab.txt, " \
        "ctc/hand_crop.tif)" in capsys.readouterr().err
    assert tree(crops) == before
    (crops / "README_lab.txt").unlink()
    (crops / "ctc" / "hand_crop.tif").unlink()
    assert main([*args, "--seed", "2", "--overwrite"]) == 0
    # An empty folder holds nothing to lose: written without --overwrite.
    (tmp_path / "empty").mkdir()
    assert main(["simulate", "cartridge", str(tmp_path / "empty"), "--frames", "1",
                 "--frame-shape", "96x128", "--events", "4"]) == 0


def test_simulate_takes_out_as_every_command_does_and_v_after_its_kind(tmp_path, capsys):
    """OUT or --out (the spelling of every other command), one of them; -v after the kind
    (``simulate cartridge OUT -v``) as after any other command."""
    from conftest import assert_one_line_error, run_cli

    small = ["--frames", "1", "--frame-shape", "96x128", "--events", "4", "--clean"]
    assert main(["simulate", "cartridge", "--out", str(tmp_path / "a"), *small, "-v"]) == 0
    assert (tmp_path / "a" / "cartridge.json").is_file()
    assert_one_line_error(*run_cli(capsys, "simulate", "cartridge", tmp_path / "b", "--out",
                                   tmp_path / "c", *small), "two output folders given")
    assert_one_line_error(*run_cli(capsys, "simulate", "cartridge", *small),
                          "name one output folder: OUT or --out OUT")
    with pytest.raises(SystemExit) as stop:  # argparse's refusal, naming the option
        run_cli(capsys, "simulate", "cartridge", tmp_path / "d", "--frames", "0")
    assert stop.value.code == 2
    assert "argument --frames: a whole number, 1 or more, not 0" in capsys.readouterr().err
    assert not any((tmp_path / name).exists() for name in "bcd")


def test_a_marker_the_simulator_does_not_know_is_said_not_drawn_silently(tmp_path, caplog):
    """A HER2 panel: the simulator draws no cell in HER2, and says so before a lab trains on
    crops that hold nothing of it."""
    panel = tmp_path / "panel.json"
    panel.write_text(json.dumps({"channels": ["DAPI", "CK", "CD45", "HER2"],
                                 "pixel_size_um": 0.64}))
    with caplog.at_level("WARNING"):
        assert main(["simulate", "crops", str(tmp_path / "crops"), "--counts", "2",
                     "--crop-size", "32", "--panel", str(panel)]) == 0
    assert "the simulator knows no marker HER2: drawn as background and the other dyes' " \
        "bleed into it" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        assert main(["simulate", "crops", str(tmp_path / "known"), "--counts", "2",
                     "--crop-size", "32"]) == 0
    assert "knows no marker" not in caplog.text


def test_a_class_given_twice_in_counts_or_rates_is_refused(tmp_path, capsys):
    """``--counts ctc=5,ctc=10`` drew 10 CTCs without a word: the first was dropped."""
    from conftest import one_line_refusal

    one_line_refusal(capsys, ["simulate", "crops", str(tmp_path / "c"), "--counts",
                              "ctc=5,ctc=10"], "ctc is given twice")
    one_line_refusal(capsys, ["simulate", "cartridge", str(tmp_path / "k"), "--rates",
                              "ctc=0.01,cluster=0.01,ctc=0.02"], "ctc is given twice")
    # A negative count alone was read as "every class count is 0".
    one_line_refusal(capsys, ["simulate", "crops", str(tmp_path / "c"), "--counts", "-3"],
                     "--counts: -3 crops a class; give 0 or more")
    assert not (tmp_path / "c").exists() and not (tmp_path / "k").exists()


def test_a_draw_past_any_machine_is_refused_before_anything_is_set_aside(tmp_path, capsys):
    """--counts 99999999999 or --samples 99999 was killed by the kernel midway (exit 137),
    the crop set --overwrite had set aside gone with it; a frame or crop of absurd sides ran
    out of memory with "free memory and run it again"."""
    crops = tmp_path / "crops"
    assert main(["simulate", "crops", str(crops), "--counts", "1", "--crop-size", "32"]) == 0
    before = sorted(p.name for p in crops.rglob("*"))
    for extra, said in ((["--counts", "99999999999"], "crops of 80 px in all, more than one"),
                        (["--counts", "2000", "--crop-size", "1024"], "2,000,000,000 pixels"),
                        (["--counts", "2", "--samples", "99999"], "1 to 10,000"),
                        (["--counts", "2", "--crop-size", "99999"], "16 to 1,024")):
        try:
            status = main(["simulate", "crops", str(crops), "--overwrite", *extra])
        except SystemExit as stop:  # (argparse's refusal of a bad value)
            status = stop.code
        assert status == 2 and said in capsys.readouterr().err
        assert sorted(p.name for p in crops.rglob("*")) == before
    assert main(["simulate", "cartridge", str(tmp_path / "c"), "--frame-shape",
                 "99999999x99999999"]) == 2
    assert "--frame-shape: sides of 64 to 16,384 pixels" in capsys.readouterr().err


def test_a_run_past_the_machines_memory_is_refused_before_any_work(tmp_path, monkeypatch,
                                                                   capsys):
    """A 16,384 px frame or 1,024 px crops by the hundred were accepted, then killed midway
    or told to free memory and run again, which could not help; a gallery had no bounds."""
    import os

    pages = {"SC_PHYS_PAGES": (4 << 30) // 4096, "SC_PAGE_SIZE": 4096}  # a 4 GiB machine
    monkeypatch.setattr(os, "sysconf", lambda name: pages[name])
    out = tmp_path / "big"
    assert main(["simulate", "cartridge", str(out), "--frames", "2", "--frame-shape",
                 "8192x8192", "--events", "0"]) == 2
    assert "needs about 22 GiB of memory, more than this machine's 4 GiB" in \
        capsys.readouterr().err
    assert main(["simulate", "crops", str(out), "--crop-size", "512", "--counts", "40"]) == 2
    assert "crops of 512 px needs about" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["simulate", "gallery", str(out), "--crop-size", "100000"])
    assert not out.exists()


def test_a_cartridge_drawn_at_another_pixel_size_than_the_panels_says_so(tmp_path, capsys):
    """A site simulated "at 0.64" was written at 0.78 (the panel's x a scanner's draw),
    unsaid; with --clean it is the panel's, and nothing more is said."""
    small = ["--frame-shape", "96x128", "--events", "4", "--frames", "1"]
    assert main(["simulate", "cartridge", str(tmp_path / "drawn"), "--seed", "3", *small]) == 0
    drawn = json.loads((tmp_path / "drawn" / "panel.json").read_text())["pixel_size_um"]
    out = capsys.readouterr().out
    assert drawn != 0.64 and f"at {drawn:g} um/px (the panel's 0.64 x the simulator's " \
        "pixel_scale" in out, out
    assert main(["simulate", "cartridge", str(tmp_path / "clean"), "--clean", *small]) == 0
    assert " um/px (the panel's" not in capsys.readouterr().out
