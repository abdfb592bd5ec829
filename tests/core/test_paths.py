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
