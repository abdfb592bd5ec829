"""ctcnet.errors: a path that is not there said as what it is: a link whose target is gone
(a share not mounted), or one that leads back to itself."""

import os

from ctcnet.errors import not_found


def test_a_link_that_leads_back_to_itself_is_said_so_not_as_a_share_not_mounted(tmp_path):
    loop = tmp_path / "r00c01.tif"
    os.symlink("r00c01.tif", loop)
    assert "leads back to itself (r00c01.tif), never to a file" in str(
        not_found(loop, "file not found"))
    gone = tmp_path / "r00c02.tif"
    os.symlink("/mnt/nowhere/r00c02.tif", gone)
    assert "a link to /mnt/nowhere/r00c02.tif, which is not there (a share not mounted" in \
        str(not_found(gone, "file not found"))
    assert str(not_found(tmp_path / "plain.tif", "file not found")).endswith("file not found")
