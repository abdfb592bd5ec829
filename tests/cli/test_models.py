"""``ctcnet models``: the registry's models listed."""

import json

from ctcnet.cli import main

# --- the registry ---------------------------------------------------------------------------------


def test_models_command(with_tiny3, capsys):
    assert main(["models", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["name"] for r in rows] == ["ctcnet-default", "tiny3"]
    assert rows[0]["channels"] == ["DAPI", "CK", "CD45", "CD61", "CD66b"]
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "tiny3" in out and "DAPI, CK, CD45 at 0.64 um/px" in out and "MB on disk" in out
    assert main(["predict", "x", "--out", "y", "--model", "tiny5"]) == 2
