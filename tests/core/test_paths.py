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


def test_a_file_dated_ahead_of_this_clock_is_read_as_when_it_came_here(tmp_path, monkeypatch):
    """A scanner's clock a day ahead: its files' modification times are tomorrow's, and every
    scan copied in read as "written in the last 15 minutes" all day (partial, "run again once
    the scan is complete"). Such a time is read as the file's arrival here; one copied in a
    moment ago is still written lately, in either reading."""
    import time

    import ctcnet.core.paths as paths
    from ctcnet.core.paths import written_lately

    path = tmp_path / "r00c00.tif"
    path.write_bytes(b"x")
    tomorrow = time.time() + 86_400
    os.utime(path, (tomorrow, tomorrow))
    assert written_lately([path]) and written_lately([path], arrived=True)
    later = time.time() + 20 * 60
    monkeypatch.setattr(paths, "time", type("Clock", (), {"time": staticmethod(lambda: later)}))
    assert not written_lately([path]) and not written_lately([path], arrived=True)
