"""docs/python.md runs as written: each python block, in order, in a folder holding the crop
folder and the cartridge the page names (small ones, simulated here)."""

import re
from pathlib import Path

from ctcnet.cli import main

DOC = Path(__file__).resolve().parents[1] / "docs" / "python.md"


def test_every_python_block_of_the_page_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["simulate", "crops", "crops", "--counts", "3"]) == 0
    assert main(["simulate", "cartridge", "scan", "--frames", "1", "--events", "40"]) == 0
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert len(blocks) == 7
    scopes = []
    for block in blocks:
        scopes.append({})
        exec(compile(block, str(DOC), "exec"), scopes[-1])  # noqa: S102 (the page's own code)
    calls = scopes[2]  # "ctcnet's calls of crops in memory": a row a crop, as predict's
    assert len(calls["calls"]) == len(calls["crops"]) == 12
    assert {"class", "review", "guard"} <= set(calls["calls"].columns)
    network = scopes[4]  # "The network itself"
    assert network["proba"].shape == (2, network["spec"].num_classes)
    assert (tmp_path / "out" / "scan" / "events.parquet").is_file()
    assert (tmp_path / "default.onnx").is_file()  # the export block's, beside the others
    steps = scopes[6]  # one frame's events and crops, step by step
    assert steps["proba"].shape == (len(steps["events"]), steps["spec"].num_classes)
