"""The torch-free predict install (``pip install 'ctcnet[predict]'``): predict on a cartridge and
on a crop folder, the review server, crops, event exports and models run with torch,
torchvision and Lightning unimportable, and make the calls a full install makes with the same
(ONNX) model.

The data are simulated here, where torch is; the commands run in a subprocess that cannot
import torch and that fails on any attempt to, even one whose error was caught
(``scripts/no_torch.py``). ``.ci/run`` runs them in a real ``.[predict]`` virtual environment.
"""

import json
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from ctcnet.cli import main
from ctcnet.core.install_hint import install_command
from ctcnet.io.panel import load_panel
from ctcnet.nn.registry import get_model

REPO = Path(__file__).resolve().parent.parent
NO_TORCH = REPO / "scripts" / "no_torch.py"  # torch & co. unimportable, attempts recorded


def no_torch(args, **popen):
    """``python -m ctcnet ARGS`` as an install without torch runs it (exit status 70 when it
    tried to import torch, even if it went on without)."""
    command = [sys.executable, str(NO_TORCH), *map(str, args)]
    if popen:
        return subprocess.Popen(command, cwd=REPO, **popen)
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from ctcnet.simulate import simulate_cartridge

    base = tmp_path_factory.mktemp("predict_install")
    cart = base / "cart"
    simulate_cartridge(cart, load_panel(None), num_frames=3, frame_shape=(256, 320), seed=5,
                       events_per_frame=20, rare_rates={"ctc": 0.2, "cluster": 0.1})
    crops = base / "crops"
    assert main(["simulate", "crops", str(crops), "--counts", "3", "--crop-size", "80",
                 "--seed", "3"]) == 0
    # The full install's run of the same (ONNX) model: the calls to match.
    for name, source in (("full", cart), ("full_crops", crops)):
        assert main(["predict", str(source), "--out", str(base / name), "--backend", "onnx",
                     "--device", "cpu", "--quiet"]) == 0
    return {"base": base, "cart": cart, "crops": crops}


def test_predict_without_torch_makes_the_full_installs_calls(data, tmp_path):
    scan_px = json.loads((data["cart"] / "panel.json").read_text())["pixel_size_um"]
    assert scan_px != get_model("ctcnet-default").panel.pixel_size_um  # crops are resampled
    out = tmp_path / "out"
    run = no_torch(["predict", data["cart"], data["crops"], "--out", out, "--device", "cpu",
                    "--saliency"])
    assert run.returncode == 0, run.stderr[-3000:]  # 70: torch was asked for
    # Without torch the shipped model runs as its ONNX export, and the gallery goes without
    # the saliency maps asked for, said once.
    assert run.stderr.count("no saliency maps") == 1, run.stderr
    for sample, full in (("sim", "full"), ("crops", "full_crops")):
        folder = next(p for p in out.iterdir() if p.is_dir() and p.name.startswith(sample))
        reference = data["base"] / full / folder.name
        table = "events" if sample == "sim" else "predictions"
        got = pd.read_parquet(folder / f"{table}.parquet")
        want = pd.read_parquet(reference / f"{table}.parquet")
        assert len(got) > 10
        # The same code on the same numbers: the same table, calls and flags exactly; floats
        # up to the last float32 digits, which the cross-frame batcher's batch sizes (set by
        # thread timing) may move, as tests/inference/test_golden_predict.py allows.
        pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=1e-4, atol=1e-4)
        summary = json.loads((folder / "summary.json").read_text())
        expected = json.loads((reference / "summary.json").read_text())
        assert summary["counts"] == expected["counts"]
        model = summary["model"]  # a cartridge's: a mapping; a crop set's: the path
        path = model["path"] if isinstance(model, dict) else model
        assert summary["backend"] == "onnx" and path.endswith(".onnx"), summary
    cartridge = next(p for p in out.iterdir() if p.name.startswith("sim"))
    assert (cartridge / "index.html").is_file() and list((cartridge / "gallery").glob("*.png"))


def test_review_crops_exports_and_models_without_torch(data, tmp_path):
    results = data["base"] / "full"
    sample = next(p.name for p in results.iterdir() if (p / "summary.json").is_file())
    server = no_torch(["review", results, "--port", "0", "--no-browser"],
                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()  # "ctcnet review: serving ... at URL (Ctrl-C stops)"
        assert " at http://" in line, (line, server.stderr.read() if server.poll() else "")
        # The address carries the server's token: each request passes it (without: 403).
        url, _, token = line.split(" at ", 1)[1].split()[0].partition("?")
        url = url.rstrip("/")
        assert token.startswith("token=")
        try:
            urllib.request.urlopen(f"{url}/api/{sample}/state", timeout=60)
            raise AssertionError("a request without the token was answered")
        except urllib.error.HTTPError as refused:
            assert refused.code == 403
        with urllib.request.urlopen(f"{url}/api/{sample}/state?{token}", timeout=60) as answer:
            state = json.load(answer)
        assert state["candidates"] and state["counts"]["model"]
        assert state["saliency"] is False  # the page's `s` says why, not a tile unchanged
        event = state["candidates"][0]["event_id"]
        # Cut from the frames by the server; the saliency row it asks for needs torch, so the
        # tile comes without it.
        with urllib.request.urlopen(f"{url}/api/{sample}/tile/{event}.png?saliency=1&{token}",
                                    timeout=60) as tile:
            assert tile.read(8) == b"\x89PNG\r\n\x1a\n"
    finally:
        server.send_signal(signal.SIGINT)
        server.communicate(timeout=60)
    assert server.returncode == 0

    run = no_torch(["crops", results, "--out", tmp_path / "crops"])
    assert run.returncode == 0, run.stderr[-3000:]
    cut = json.loads((tmp_path / "crops" / "dataset.json").read_text())
    assert sum(cut["class_counts"].values()) == len(pd.read_parquet(results / sample /
                                                                    "events.parquet"))

    run = no_torch(["export-events", results, "--fcs", "--geojson"])
    assert run.returncode == 0, run.stderr[-3000:]
    assert list((results / sample).glob("*.fcs"))

    run = no_torch(["models"])
    assert run.returncode == 0 and "ctcnet-default" in run.stdout, run.stderr


def test_torch_backend_without_torch_says_what_to_install(data, tmp_path):
    run = no_torch(["predict", data["crops"], "--out", tmp_path / "out", "--backend", "torch",
                    "--quiet"])
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and install_command("all") in lines[0], run.stderr


def test_evaluate_without_torch_scores_cartridges_and_names_what_crops_need(data, tmp_path):
    run = no_torch(["evaluate", data["cart"], "--out", tmp_path / "cart"])
    assert run.returncode == 0, run.stderr[-3000:]  # 70: torch was asked for
    assert json.loads((tmp_path / "cart" / "counts.json").read_text())
    # Scoring labelled crops needs the full install: one line says so and what this install
    # evaluates, before any work (no --out folder left behind).
    run = no_torch(["evaluate", data["crops"], "--out", tmp_path / "crops"])
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "scoring labelled crops needs torch" in lines[0], run.stderr
    assert install_command("all") in lines[0] and "--expected" in lines[0]
    assert not (tmp_path / "crops").exists()


def test_simulate_without_torch_says_so_and_leaves_no_folder(tmp_path):
    run = no_torch(["simulate", "cartridge", tmp_path / "cart", "--frames", "1"])
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "needs torch" not in lines[0] and install_command("all") in lines[0]
    assert "camera noise with torch" in lines[0] and not (tmp_path / "cart").exists()
