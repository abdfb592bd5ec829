"""A run names a folder one way, from whatever working directory it was given."""

import os

from ctcnet.core.paths import absolute


def test_a_folder_named_with_dots_reads_as_itself(tmp_path, monkeypatch):
    (tmp_path / "scans" / "S1").mkdir(parents=True)
    (tmp_path / "runs").mkdir()
    monkeypatch.chdir(tmp_path / "runs")
    assert absolute("../scans/S1") == str(tmp_path / "scans" / "S1")
    assert absolute(tmp_path / "scans" / "." / "S1") == str(tmp_path / "scans" / "S1")
    link = tmp_path / "link"
    os.symlink(tmp_path / "scans", link)
    assert absolute(link / "S1") == str(link / "S1")  # a link is how the lab named it


def test_dot_dot_after_a_link_is_read_as_the_disk_reads_it(tmp_path, monkeypatch):
    """`link/../cartY` is the folder beside the link's target (as `ls` shows it): taken out
    by the text alone, it named another folder (a cartridge of that name beside the link was
    read instead) or none."""
    (tmp_path / "real" / "inner").mkdir(parents=True)
    (tmp_path / "real" / "cartY").mkdir()
    (tmp_path / "cartY").mkdir()  # the folder the text alone would name
    (tmp_path / "L").symlink_to(tmp_path / "real" / "inner")
    monkeypatch.chdir(tmp_path)
    assert absolute("L/../cartY") == str(tmp_path.resolve() / "real" / "cartY")
    assert os.path.samefile(absolute("L/../cartY"), "L/../cartY")
    assert absolute("L/./x") == str(tmp_path / "L" / "x")  # a link's own name is kept
    assert absolute("real/inner/../../new/out") == str(tmp_path.resolve() / "new" / "out")
