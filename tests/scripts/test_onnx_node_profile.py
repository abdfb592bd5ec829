"""scripts/onnx_node_profile.py: each operator type's share of a model's time in onnxruntime."""

from pathlib import Path

import pytest


def test_the_profile_shares_add_up_and_name_the_graphs_operators(capsys):
    """The shipped default model's graph: its convolutions and its normalisation's log and TopK
    are all seen, the shares of kernel time add up to one, and every elementwise operator is
    timed alone."""
    from conftest import load_script

    from ctcnet.nn.registry import resolve_model

    root = Path(__file__).resolve().parents[2]
    script = load_script(root / "scripts" / "onnx_node_profile.py")
    path = resolve_model("ctcnet-default", "onnx")
    shares, per_crop_ms = script.op_shares(path, batch=2, runs=3, threads=1)
    assert sum(shares.values()) == pytest.approx(1.0)
    assert {"Conv", "Log", "TopK"} <= set(shares) and per_crop_ms > 0
    timed = script.elementwise_ns([2, 5, 16, 16], threads=1, repeats=2)
    assert set(timed) == set(script.ELEMENTWISE) and all(ns > 0 for ns in timed.values())
    assert script.main(["--batch", "2", "--runs", "2"]) == 0
    out = capsys.readouterr().out
    assert "| Conv |" in out and "| Log |" in out and "ns a value" in out
