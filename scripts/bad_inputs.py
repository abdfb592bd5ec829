"""Run the CLI on families of bad inputs and classify each outcome.

Builds a small simulated cartridge and crop set once, derives one broken copy per case, runs
``python -m ctcnet ...`` on it in a subprocess with a timeout and sorts the outcome into:

* ``error``     one clean line on stderr and exit status 2 (refused, nothing half-done);
* ``handled``   the bad part skipped and recorded, the rest finished (checked per case);
* ``traceback`` a Python traceback;
* ``hang``      no exit within the timeout;
* ``refused``   a clean one-line error where the bad part should have been skipped instead;
* ``wrong``     exit 0 (or a non-2 error) with wrong or lost output.

Usage: ``python scripts/bad_inputs.py [--work DIR] [--only FAMILY] [--timeout S]``; prints one
line per case and a per-family table. Takes a few minutes on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable


class FileSizeLimit(int):
    """A case's first argument: the command runs with its files limited to this many bytes
    (``ulimit -f``), a disk that fills as it writes: a write that crosses the limit is cut
    short and the next fails (EFBIG), as the last writes on a full disk do (ENOSPC)."""

    def apply(self) -> None:
        """Set the limit (in the child, before it starts)."""
        import resource

        resource.setrlimit(resource.RLIMIT_FSIZE, (int(self), int(self)))


def cli(*args, cwd=None, timeout=120) -> tuple[int | None, str, str]:
    """Run ``python -m ctcnet`` with ``args`` (led by a :class:`FileSizeLimit`: under it):
    (exit status, stdout, stderr), or None as the status on a hang."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    limit = args[0] if args and isinstance(args[0], FileSizeLimit) else None
    args = args[1:] if limit is not None else args
    try:
        p = subprocess.run([PY, "-m", "ctcnet", *map(str, args)], capture_output=True,
                           text=True, timeout=timeout, env=env, cwd=cwd,
                           preexec_fn=limit.apply if limit is not None else None)
        return p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired:
        return None, "", ""


def write_json(path: Path, data) -> None:
    """Write ``data`` to ``path`` as JSON."""
    path.write_text(json.dumps(data))


def edit_json(path: Path, **changes) -> None:
    """Set keys of the JSON file at ``path`` (``DELETE`` as a value removes the key)."""
    data = json.loads(path.read_text())
    for k, v in changes.items():
        if v is DELETE:
            data.pop(k, None)
        else:
            data[k] = v
    write_json(path, data)


DELETE = object()


def write_frame(path: Path, arr: np.ndarray) -> None:
    """Write ``arr`` as a single-page grey TIFF frame."""
    import tifffile

    tifffile.imwrite(path, arr, photometric="minisblack")


# --- output checks: None when the output is right, else what is wrong ----------------------

def summary_of(out: Path) -> dict | None:
    """The run's summary.json under ``out``, or None when the run wrote none."""
    found = list(out.glob("*/summary.json"))
    return json.loads(found[0].read_text()) if found else None


def one_frame_skipped(out: Path) -> str | None:
    """None when exactly one frame was skipped and the rest processed, else what is wrong."""
    s = summary_of(out)
    if s is None or not list(out.glob("*/events.csv")):
        return "no summary.json / events.csv"
    if s["frames"]["skipped"] != 1 or s["frames"]["processed"] != s["frames"]["total"] - 1:
        return f"frames {s['frames']}"
    return None


def failed_status(out: Path) -> str | None:
    """None when the run wrote no summary or one with status ``failed``, else the status it has."""
    s = summary_of(out)
    if s is None:
        return None
    return None if s.get("status") == "failed" else f"status {s.get('status')!r}"


# --- the cases -----------------------------------------------------------------------------

def build_base(work: Path) -> dict:
    """Simulate the clean cartridge and crop set once (kept in ``work`` between runs)."""
    cart, crops = work / "cartridge", work / "crops"
    if not cart.exists():
        rc, _, err = cli("simulate", "cartridge", cart, "--frames", "4", "--frame-shape",
                         "256x256", "--events", "6", "--sample-id", "S1", "--seed", "1")
        assert rc == 0, err
    if not crops.exists():
        rc, _, err = cli("simulate", "crops", crops, "--counts", "6", "--seed", "2")
        assert rc == 0, err
    return {"cartridge": cart, "crops": crops}


def broken_model(work: Path, how: str) -> Path:
    """The shipped model with one NaN weight, or with temperature 0 (a broken training run)."""
    import torch

    path = work / f"{how}.pt"
    if not path.exists():
        blob = torch.load(ROOT / "models" / "ctcnet-default.pt", weights_only=True)
        if how == "nan":
            state = blob["state_dict"]
            key = next(k for k, v in state.items() if k.startswith("net.") and v.ndim == 4)
            state[key].view(-1)[0] = float("nan")
        else:
            blob["ctcnet_spec"]["temperature"] = 0.0
        torch.save(blob, path)
    return path


def frames(d: Path) -> list[Path]:
    """The cartridge's frame files, in name order."""
    return sorted(d.glob("r*c*.tif"))


def predict(d: Path, *extra) -> list:
    """Arguments of a quiet predict run on ``d`` without the report, plus ``extra``."""
    return ["predict", d, "--out", d.parent / "out", "--no-report", "--quiet", *extra]


def cases(work: Path, base: dict):
    """Yield (family, name, setup(dir) -> argv, check(out) or 'error'), family by family."""
    yield from frame_cases(work)
    yield from metadata_cases()
    yield from crop_dataset_cases(work, base["crops"])
    yield from option_cases(base["crops"])
    yield from review_cases()
    yield from export_and_full_disk_cases()
    yield from encoding_cases(base["crops"])
    yield from frames_as_read_cases()
    yield from crop_pixel_cases(base["crops"])


def frame_cases(work: Path):
    """Odd frames, broken models, duplicate frame ids, path-like sample ids, no readable frame
    and a panel without its pixel size."""

    def frame_case(arr):
        def setup(d):
            write_frame(frames(d)[0], arr)
            return predict(d)
        return setup

    def all_frames_kept_or_one_skipped(out):  # a tiny frame may be read or refused, not lost
        problem = one_frame_skipped(out)
        s = summary_of(out)
        return None if s and s["frames"]["processed"] == s["frames"]["total"] else problem

    c5 = 5
    yield "1 odd frame", "12x12 px", frame_case(
        np.full((c5, 12, 12), 100, np.uint16) + np.arange(144, dtype=np.uint16).reshape(12, 12)
    ), all_frames_kept_or_one_skipped
    noise = np.random.default_rng(0).integers
    yield "1 odd frame", "3x500 px", frame_case(
        noise(90, 110, (c5, 3, 500)).astype(np.uint16)), one_frame_skipped
    yield "1 odd frame", "400x5 px", frame_case(
        noise(90, 110, (c5, 400, 5)).astype(np.uint16)), one_frame_skipped
    big = np.random.default_rng(0).random((c5, 256, 256)).astype(np.float32)
    big[:, 100, 100] = 3e38
    yield "1 odd frame", "float32 3e38", frame_case(big), one_frame_skipped

    # One NaN weight or temperature 0: a model file no good training gives, refused at load.
    for how, name, check in (("nan", "one NaN weight", "error"),
                             ("temp0", "temperature 0", "error")):
        def nan_setup(d, how=how):
            return predict(d, "--model", broken_model(work, how))
        yield "2 NaN probabilities", name, nan_setup, check

    def dup_rc(d):
        shutil.copy(frames(d)[1], d / "r0c1.tif")
        return predict(d)
    yield "3 duplicate frame ids", "r00c01 + r0c1", dup_rc, "error"

    def dup_index(d):
        shutil.copy(frames(d)[0], d / "frame0.tif")
        return predict(d)
    yield "3 duplicate frame ids", "r00c00 + frame0", dup_index, "error"

    for sid in ("../../escaped", "/tmp/ctcnet_escaped_abs"):
        def sid_setup(d, sid=sid):
            edit_json(d / "cartridge.json", sample_id=sid)
            return predict(d)
        yield "4 sample_id as path", sid, sid_setup, "error"

    def all_bad(d):
        for f in frames(d):
            f.write_bytes(b"not a tiff")
        return predict(d)
    yield "5 no readable frame", "every frame corrupt", all_bad, "failed"

    def no_pixel_size(d):
        edit_json(d / "panel.json", pixel_size_um=DELETE)
        return predict(d)
    yield "6 silent defaults", "panel without pixel_size_um", no_pixel_size, "error"


def metadata_cases():
    """Bad cartridge and panel metadata, and a resumed run whose frame was replaced."""
    for name, key, value in (("blood_volume_ml 0", "blood_volume_ml", 0),
                             ("blood_volume_ml '7.5 mL'", "blood_volume_ml", "7.5 mL"),
                             ("blood_volume_ml -2", "blood_volume_ml", -2),
                             ("columns 'six'", "columns", "six")):
        def meta(d, key=key, value=value):
            edit_json(d / "cartridge.json", **{key: value})
            return predict(d)
        yield "7 bad metadata", name, meta, "error"

    def cart_list(d):
        write_json(d / "cartridge.json", [1, 2])
        return predict(d)
    yield "7 bad metadata", "cartridge.json a list", cart_list, "error"
    for name, value in (("pixel_size_um null", None), ("pixel_size_um '0.64 um'", "0.64 um")):
        def px(d, value=value):
            edit_json(d / "panel.json", pixel_size_um=value)
            return predict(d)
        yield "7 bad metadata", name, px, "error"

    def norm_null(d):
        panel = json.loads((d / "panel.json").read_text())
        panel["channels"][0]["normalisation"] = None
        write_json(d / "panel.json", panel)
        return predict(d)
    yield "7 bad metadata", "normalisation null", norm_null, "error"

    def resume_changed(d):
        import tifffile

        rc, _, err = cli(*predict(d))
        assert rc == 0, err
        # Frame 0 now holds frame 1's pixels one count brighter (a byte copy would be the same
        # tile under two names, counted once: family 14).
        write_frame(frames(d)[0], tifffile.imread(frames(d)[1]) + np.uint16(1))
        return predict(d)

    def same_events(out):
        import pandas as pd

        ev = pd.read_csv(next(out.glob("*/events.csv")))
        a = ev[ev.frame_id == "r00c00"][["x", "y"]].round(1).to_numpy()
        b = ev[ev.frame_id == "r00c01"][["x", "y"]].round(1).to_numpy()
        if a.shape == b.shape and np.allclose(a, b):
            return None
        return "old events of the replaced frame"
    yield "8 resume, changed frame", "frame replaced", resume_changed, same_events


def crop_dataset_cases(work: Path, crops: Path):
    """Broken crop datasets: repeated or conflicting manifest rows, escaping paths, odd files."""

    def manifest_edit(fn):
        def setup(d):
            lines = (d / "manifest.csv").read_text().splitlines()
            (d / "manifest.csv").write_bytes(fn(lines))
            return ["predict", d, "--out", d.parent / "out", "--quiet"]
        return setup

    def dup_rows(lines):
        return ("\n".join(lines + [lines[1]]) + "\n").encode()

    def two_labels(lines):
        path, label, *rest = lines[1].split(",")
        other = "wbc" if label != "wbc" else "ctc"
        return ("\n".join(lines + [",".join([path, other, *rest])]) + "\n").encode()

    def escape(lines):
        path, *rest = lines[1].split(",")
        # The target exists (outside the dataset root): reading it would be the bug.
        shutil.copy(crops / path, work / Path(path).name)
        return ("\n".join(lines + [",".join(["../../" + Path(path).name, *rest])]) + "\n").encode()

    def bom(lines):
        return ("\ufeff" + "\n".join(lines) + "\n").encode("utf-8")
    yield "9 crop datasets", "duplicated manifest row", manifest_edit(dup_rows), "error"
    yield "9 crop datasets", "one file two labels", manifest_edit(two_labels), "error"
    yield "9 crop datasets", "../../ path", manifest_edit(escape), "error"

    def bom_ok(out):
        s = summary_of(out)
        return None if s and s.get("crops") == 24 else "lost or wrong crops"
    yield "9 crop datasets", "UTF-8 BOM manifest", manifest_edit(bom), bom_ok

    def apple_double(d):
        (d / "manifest.csv").unlink()
        (d / "ctc" / "._x.tif").write_bytes(b"\x00\x05\x16\x07 resource fork")
        return ["predict", d, "--out", d.parent / "out", "--quiet"]
    yield "9 crop datasets", "macOS ._x.tif", apple_double, bom_ok

    def one_class(d):
        lines = (d / "manifest.csv").read_text().splitlines()
        keep = [ln for ln in lines[1:] if ln.split(",")[1] == "ctc"]
        (d / "manifest.csv").write_text("\n".join(lines[:1] + keep) + "\n")
        return ["evaluate", d, "--out", d.parent / "out", "--no-baselines",
                "--calibrate-on", d, "--save-model", d.parent / "cal.pt"]
    yield "9 crop datasets", "--calibrate-on one class", one_class, "error"


def option_cases(crops: Path):
    """Special files, an --out that is a file, impossible options, implausible inputs, and
    training on crops without their panel."""

    def fifo(d):
        os.mkfifo(d / "r09c09.tif")
        return predict(d)
    # Refused, never opened: a position left out would still count its blood as read.
    yield "10 files and runs", "FIFO named like a frame", fifo, "error"

    def out_file(d):
        (d.parent / "afile").write_text("x")
        return ["predict", d, "--out", d.parent / "afile", "--quiet", "--no-report"]
    yield "10 files and runs", "--out is a file", out_file, "error"

    for value in ("nan", "0", "-5"):
        def snr(d, value=value):
            return predict(d, "--threshold-snr", value)
        yield "11 options", f"--threshold-snr {value}", snr, "error"

    def dev_gpu(d):
        return predict(d, "--device", "gpu")
    yield "11 options", "--device gpu", dev_gpu, "error"

    def cuda_onnx(d):
        return predict(d, "--device", "cuda", "--backend", "onnx")
    yield "11 options", "--device cuda --backend onnx (no GPU)", cuda_onnx, "error"

    def eval_bs(d):
        return ["evaluate", crops_copy(d), "--out", d.parent / "out", "--no-baselines",
                "--batch-size", "0"]

    def crops_copy(d):
        target = d.parent / "crops"
        if not target.exists():
            shutil.copytree(crops, target)
        return target
    yield "11 options", "evaluate --batch-size 0", eval_bs, "error"

    yield from implausible_cases(frames, predict)

    def train_no_panel(d):
        target = crops_copy(d)
        (target / "panel.json").unlink()
        return ["train", f"--data.data_dir={target}", "--trainer.fast_dev_run=true",
                f"--trainer.default_root_dir={d.parent / 'train'}", "--export=null"]
    yield "6 silent defaults", "train on crops without panel.json", train_no_panel, "error"


def partial_with_problem(words: str):
    """The run finished ``partial`` with a problem naming ``words``, nothing skipped."""
    def check(out: Path) -> str | None:
        s = summary_of(out)
        if s is None:
            return "no summary.json"
        if s["status"] != "partial" or s["frames"]["skipped"]:
            return f"status {s['status']}, frames {s['frames']}"
        return None if any(words in p for p in s["problems"]) else f"problems {s['problems']}"
    return check


def one_frame_skipped_for(words: str):
    """One frame skipped with a reason naming ``words``, the rest finished, status partial."""
    def check(out: Path) -> str | None:
        problem = one_frame_skipped(out)
        if problem is not None:
            return problem
        s = summary_of(out)
        reason = s["skipped_frames"][0]["reason"]
        if s["status"] != "partial" or words not in reason:
            return f"status {s['status']}: {reason[-60:]}"
        return None
    return check


def implausible_cases(frames, predict):
    """Inputs a count must not stand on: metadata no scan or tube has, pixels the panel does
    not describe, and frame lists that hold one frame twice or two ways."""
    import tifffile

    def meta(file, **changes):
        def setup(d):
            edit_json(d / file, **changes)
            return predict(d)
        return setup
    yield "13 implausible metadata", "pixel_size_um 4", meta("panel.json", pixel_size_um=4.0), \
        "error"
    yield "13 implausible metadata", "blood_volume_ml 750", meta(
        "cartridge.json", blood_volume_ml=750), partial_with_problem("blood tube")
    yield "13 implausible metadata", "blood_volume_ml 7500", meta(
        "cartridge.json", blood_volume_ml=7500), "error"

    def pixels(edit):
        def setup(d):
            arr = tifffile.imread(frames(d)[0])
            edit(arr)
            write_frame(frames(d)[0], arr)
            return predict(d)
        return setup

    def saturate(arr):
        arr[1, 10:20, 10:20] = 65535  # in a 12-bit panel
    yield "13 implausible metadata", "65535 in a 12-bit panel", pixels(saturate), \
        one_frame_skipped_for("value_range")

    def dead(arr):
        arr[2] = 0
    yield "13 implausible metadata", "an all-zero channel", pixels(dead), \
        one_frame_skipped_for("is empty")

    def copied(name):
        def setup(d):
            shutil.copy(frames(d)[1], d / name(frames(d)[1]))
            return predict(d)
        return setup
    yield "14 frame list", "one tile under two names", copied(lambda f: "r09c09.tif"), \
        one_frame_skipped_for("same bytes")
    yield "14 frame list", "rXXcYY.TIF beside rXXcYY.tif", copied(lambda f: f.stem + ".TIF"), \
        "error"

    def whole_and_channels(d):
        arr = tifffile.imread(frames(d)[0])
        for c in range(len(arr)):
            write_frame(d / f"{frames(d)[0].stem}_c{c}.tif", arr[c:c + 1])
        return predict(d)
    yield "14 frame list", "whole frame + per-channel files", whole_and_channels, "error"

    def not_utf8(d):
        shutil.copy(frames(d)[1], os.fsdecode(os.fsencode(d) + b"/r09c09\xff.tif"))
        return predict(d)
    yield "14 frame list", "file name not UTF-8", not_utf8, "error"


def model_cases(work: Path):
    """Model files a person may hand over: broken spec values, wrong weights, pickled code."""
    import torch

    def edited(name, edit):
        def setup(d):
            blob = torch.load(ROOT / "models" / "ctcnet-default.pt", weights_only=True)
            edit(blob)
            torch.save(blob, d.parent / name)
            return ["predict", d, "--out", d.parent / "out", "--quiet", "--no-report",
                    "--model", d.parent / name]
        return setup

    def shrink(blob):
        key = next(k for k in blob["state_dict"] if k.startswith("net.") and k.endswith("weight"))
        blob["state_dict"][key] = torch.zeros(2, 2)

    def pickled(blob):
        from argparse import Namespace

        blob["extra"] = Namespace(a=1)  # refused by weights_only loading
    yield "12 model files", "unknown arch", edited("arch.pt", lambda b: b["ctcnet_spec"].update(
        arch="vgg99")), "error"
    yield "12 model files", "crop_size 0", edited("c0.pt", lambda b: b["ctcnet_spec"].update(
        crop_size=0)), "error"
    yield "12 model files", "weight-shape mismatch", edited("shape.pt", shrink), "error"
    yield "12 model files", "pickled object", edited("pickle.pt", pickled), "error"


def review_cases():
    """``ctcnet review`` on a port another server holds (refused), and a signoff.json holding
    a JSON list under a predict run again and ``crops --reviewed`` (said, read as no
    sign-off, the rest done)."""
    import socket

    held = []  # listening sockets: the server already there, open while its case runs

    def predicted(d) -> Path:
        rc, _, err = cli(*predict(d))
        assert rc == 0, err
        return next((d.parent / "out").glob("*/summary.json")).parent

    def port_taken(d):
        predicted(d)
        held.append(socket.create_server(("127.0.0.1", 0)))
        return ["review", d.parent / "out", "--no-browser", "--port",
                held[-1].getsockname()[1]]
    yield "15 review", "--port another server holds", port_taken, "error"

    def signoff_list(then):
        def setup(d):
            from ctcnet.review import decisions as D

            sample = predicted(d)
            run = D.RunEvents.of_sample(sample, *D.load_sample(sample))
            D.record_decision(sample, run, 0, "wbc", "bad_inputs")  # for crops to cut
            write_json(sample / "signoff.json", [1, 2])
            return then(d)
        return setup

    def not_signed(out):
        s = summary_of(out)
        return None if s and s.get("signoff") is None and s.get("reviewed") else f"summary {s}"

    def one_crop(out):
        info = out.parent / "ds" / "dataset.json"
        crops = json.loads(info.read_text())["crops"] if info.exists() else []
        return None if len(crops) == 1 else f"{len(crops)} crops"
    yield "15 review", "signoff.json a list, predict again", signoff_list(predict), not_signed
    yield "15 review", "signoff.json a list, crops --reviewed", signoff_list(
        lambda d: ["crops", d.parent / "out", "--reviewed", "--out", d.parent / "ds"]), one_crop


def export_and_full_disk_cases():
    """``export-events`` on a table predict would not write (a box missing, rows cut short of
    the summary's count), a disk that fills under ``export-events`` and ``predict`` (a fresh
    run and a rerun over a finished sample), and a ``--shard`` whose share is empty."""
    import pandas as pd

    def predicted(d) -> Path:
        rc, _, err = cli(*predict(d))
        assert rc == 0, err
        return next((d.parent / "out").glob("*/events.parquet"))

    def table_edit(edit, *formats):
        def setup(d):
            path = predicted(d)
            edit(pd.read_parquet(path)).to_parquet(path)
            return ["export-events", d.parent / "out", *formats]
        return setup

    def no_box(events):
        events.loc[0, "bbox_x0"] = np.nan
        return events
    yield "16 event exports", "bbox_x0 NaN, --fcs --geojson", table_edit(
        no_box, "--fcs", "--geojson"), "error"
    yield "16 event exports", "rows short of summary.json", table_edit(
        lambda ev: ev.iloc[:-min(20, len(ev) // 2)], "--fcs"), "error"

    def export_full(d):
        predicted(d)
        return [FileSizeLimit(3000), "export-events", d.parent / "out", "--fcs", "--geojson"]
    yield "17 full disk", "export-events, 3 kB left", export_full, "error"
    yield "17 full disk", "predict, 3 kB left", lambda d: [FileSizeLimit(3000), *predict(d)], \
        "error"

    def rerun_full(d):  # the earlier run's "ok" summary must not outlive the failed rerun
        predicted(d)
        return [FileSizeLimit(3000), *predict(d, "--overwrite")]
    yield "17 full disk", "predict --overwrite of a done sample", rerun_full, "error"

    def empty_share(d):
        from ctcnet.inference.distributed import stable_rank

        sample = json.loads((d / "cartridge.json").read_text())["sample_id"]
        return predict(d, "--shard", f"{2 - stable_rank(sample, 2)}/2")

    def nothing_run(out):
        run = json.loads((out / "run.json").read_text()) if (out / "run.json").exists() else {}
        done = [e for e in run.get("outputs", []) if not e.get("missing")]
        return None if run and not done else f"run.json {run}"
    yield "18 --shard", "a share that holds no input", empty_share, nothing_run


def encoding_cases(crops: Path):
    """Names no UTF-8 reader takes: a panel.json an older editor saved as Latin-1 (predict, and
    evaluate on a crop folder), a cartridge folder named in Latin-1 bytes without a sample_id."""

    def latin1(path: Path, **changes) -> None:
        data = {**json.loads(path.read_text()), **changes}
        path.write_bytes(json.dumps(data, ensure_ascii=False).encode("latin-1"))

    def panel_latin1(d):
        latin1(d / "panel.json", name="Référence")
        return predict(d)
    yield "19 names and encodings", "Latin-1 panel.json", panel_latin1, summary_says(status="ok")

    def crops_latin1(d):
        target = d.parent / "crops"
        shutil.copytree(crops, target)
        latin1(target / "panel.json", name="Référence")
        return ["evaluate", target, "--out", d.parent / "out", "--no-baselines"]
    yield "19 names and encodings", "Latin-1 panel.json, evaluate crops", crops_latin1, \
        lambda out: None if (out / "report.json").exists() else "no report.json"

    def folder_latin1(d):
        edit_json(d / "cartridge.json", sample_id=DELETE)
        odd = Path(os.fsdecode(os.fsencode(d.parent) + b"/cart\xe9"))
        shutil.move(d, odd)
        return predict(odd)
    yield "19 names and encodings", "folder b'cart\\xe9', no sample_id", folder_latin1, \
        summary_says(sample_id="cart\u00e9", status="ok")


def summary_says(**want):
    """None when the run's summary.json holds ``want``'s values, else what it holds."""
    def check(out):
        s = summary_of(out)
        got = {k: s.get(k) for k in want} if s else None
        return None if got == want else f"summary {got}"
    return check


def frames_as_read_cases():
    """Frames read wrong without a word unless checked: an OME-Zarr chunk file lost, frames of
    another size, a saturated frame, one OME-TIFF holding the scan, and a frame changed after
    predict before ``ctcnet crops`` cuts it again."""
    import tifffile

    from ctcnet.io.scan import open_cartridge

    def as_containers(d, write):
        cart = open_cartridge(d)
        pixels = {f.frame_id: cart.read(f).astype(np.uint16) for f in cart.frames}
        for f in frames(d):
            f.unlink()
        write(d, cart, pixels)
        return d

    def zarr_stores(d, cart, pixels):
        from bioio_ome_zarr.writers import Channel, OMEZarrWriter

        px = cart.panel.pixel_size_um
        for frame_id, data in pixels.items():
            OMEZarrWriter(d / f"{frame_id}.ome.zarr", level_shapes=[data.shape], dtype="uint16",
                          chunk_shape=[(1, 64, 64)], axes_names=["c", "y", "x"],
                          axes_types=["channel", "space", "space"],
                          axes_units=[None, "micrometer", "micrometer"],
                          physical_pixel_size=[1.0, px, px], image_name=frame_id,
                          channels=[Channel(label=n, color="FFFFFF") for n in cart.panel.names]
                          ).write_full_volume(data)

    def lost_chunk(d):
        as_containers(d, zarr_stores)
        (d / "r00c01.ome.zarr" / "0" / "c" / "1" / "1" / "1").unlink()
        return predict(d)
    yield "20 frames as read", "OME-Zarr, one chunk file missing", lost_chunk, \
        one_frame_skipped_for("chunk file(s) missing")

    def other_size(shape, name):
        def setup(d):
            noise = np.random.default_rng(0).integers(90, 400, (5, *shape)).astype(np.uint16)
            write_frame(d / name if name else frames(d)[0], noise)  # added, or in frame 0's place
            return predict(d)
        return setup
    yield "20 frames as read", "a 700x600 frame among 256x256", other_size(
        (700, 600), "r09c09.tif"), one_frame_skipped_for("700 x 600 px")
    yield "20 frames as read", "a 40x40 frame", other_size((40, 40), None), \
        one_frame_skipped_for("40 x 40 px")

    def saturated(d):
        arr = tifffile.imread(frames(d)[1])
        arr[:, : arr.shape[1] // 2] = 4095  # the top of the 12-bit panel's range
        write_frame(frames(d)[1], arr)
        return predict(d)
    yield "20 frames as read", "half a frame at 4095", saturated, partial_with_problem("saturated")

    def one_ome_tiff(d, cart, pixels):
        px = cart.panel.pixel_size_um
        with tifffile.TiffWriter(d / "scan.ome.tif", ome=True) as tw:
            for frame_id, data in pixels.items():
                tw.write(data, photometric="minisblack", metadata={
                    "axes": "CYX", "Name": frame_id, "Channel": {"Name": cart.panel.names},
                    "PhysicalSizeX": px, "PhysicalSizeY": px, "SignificantBits": 12})

    def single_file(d):
        scan = as_containers(d, one_ome_tiff) / "scan.ome.tif"
        return ["predict", scan, "--out", d.parent / "out", "--no-report", "--quiet"]
    yield "20 frames as read", "predict scan.ome.tif (one file)", single_file, \
        summary_says(status="ok")

    def shifted_after_predict(d):
        rc, _, err = cli(*predict(d))
        assert rc == 0, err
        write_frame(frames(d)[1], np.roll(tifffile.imread(frames(d)[1]), 60, axis=2))
        return ["crops", d.parent / "out", "--out", d.parent / "ds"]
    yield "20 frames as read", "frame shifted 60 px, then crops", shifted_after_predict, "error"


def crop_pixel_cases(crops: Path):
    """Crop folders whose pixels or panel mislead: no pixel size stated (every command that
    reads crops takes the --pixel-size its message names, finetune too), a blank crop (every
    channel 0: refused by predict and evaluate alike), a composite folder whose panel.json
    names its R and B planes the wrong way round (warned of, the likely order named) and one
    in its order (not warned of)."""

    def copied(d, edit) -> Path:
        target = d.parent / "crops"
        shutil.copytree(crops, target)
        edit(target)
        return target

    def no_pixel_size(target):
        edit_json(target / "panel.json", pixel_size_um=DELETE)

    def finetune(target, *more):
        return ["finetune", target, "--out", target.parent / "out" / "m.pt", "--steps", "2",
                "--simulated-per-class", "0", "--sim-check-per-class", "0", *more]
    yield "21 crop pixel size", "finetune, none stated", lambda d: finetune(
        copied(d, no_pixel_size)), "error"
    yield "21 crop pixel size", "finetune --pixel-size fit, none stated", lambda d: finetune(
        copied(d, no_pixel_size), "--pixel-size", "fit"), \
        lambda out: None if (out / "m.pt").exists() else "no model written"

    def blank(target):
        import tifffile

        first = sorted(target.glob("ctc/*.tif"))[0]
        tifffile.imwrite(first, np.zeros_like(tifffile.imread(first)))
    yield "22 blank crop", "predict", lambda d: ["predict", copied(d, blank), "--out",
                                                d.parent / "out", "--quiet"], "error"
    yield "22 blank crop", "evaluate", lambda d: ["evaluate", copied(d, blank), "--out",
                                                 d.parent / "out", "--no-baselines",
                                                 "--model", "ctcnet-default"], "error"

    def composites(swap: bool):
        def setup(d):
            target = d.parent / "rgb"
            rc, _, err = cli("simulate", "crops", target, "--export", "rgb-jpeg", "--counts",
                             "10", "--seed", "2")
            assert rc == 0, err
            if swap:  # the files are R, G, B = CK, CD45, DAPI; panel.json says DAPI, CD45, CK
                panel = json.loads((target / "panel.json").read_text())
                panel["channels"] = panel["channels"][::-1]
                write_json(target / "panel.json", panel)
            return ["evaluate", target, "--out", d.parent / "out", "--no-baselines"]
        return setup
    yield "23 RGB plane order", "R and B swapped, evaluate", composites(True), \
        on_stderr("likely [\"CK\", \"CD45\", \"DAPI\"]")
    yield "23 RGB plane order", "planes in order, evaluate", composites(False), \
        on_stderr("the nucleus", absent=True)


def on_stderr(words: str, absent: bool = False):
    """A check of the run's stderr (the run finished): None when it holds ``words`` (or, with
    ``absent``, does not), else what is wrong."""
    def check(out, err):
        if (words in err) != absent:
            return None
        return f"{'a' if absent else 'no'} warning naming {words!r}"
    check.reads_stderr = True  # (classify hands it stderr as well)
    return check


def classify(rc, err, check, out: Path) -> tuple[str, str]:
    """Sort a case's exit status, stderr and output into one outcome (error, handled, refused,
    traceback, hang, wrong) and a note."""
    if rc is None:
        return "hang", ""
    if "Traceback" in err:
        return "traceback", err.strip().splitlines()[-1][:100]
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    if rc == 2 and len(lines) == 1:
        # A clean refusal is right for bad input, wrong where the rest should have finished.
        return ("error" if check in ("error", "failed") else "refused"), lines[0][:100]
    if check == "error":
        return ("wrong", f"exit {rc}, bad input accepted") if rc == 0 else \
            ("wrong", f"exit {rc}, {len(lines)} lines")
    if check == "failed":
        if rc == 0:
            return "wrong", "exit 0 on a sample with no readable frame"
        problem = failed_status(out)
        return ("handled", f"status failed, exit {rc}") if problem is None else ("wrong", problem)
    if rc != 0:
        return "wrong", f"exit {rc}: {lines[-1][:80] if lines else ''}"
    problem = check(out, err) if getattr(check, "reads_stderr", False) else check(out)
    return ("handled", "") if problem is None else ("wrong", problem)


def main() -> int:
    """Run every case (or the ``--only`` families), print one line each and the per-family table."""
    ap = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    ap.add_argument("--work", default=None, help="scratch folder (default: a temporary one)")
    ap.add_argument("--only", default=None, help="run only families whose name contains this")
    ap.add_argument("--timeout", type=float, default=90)
    args = ap.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="ctcnet-bad-"))
    work.mkdir(parents=True, exist_ok=True)
    base = build_base(work)
    table: dict[str, Counter] = {}
    import itertools

    for n, (family, name, setup, check) in enumerate(itertools.chain(cases(work, base),
                                                                     model_cases(work))):
        if args.only and args.only not in family:
            continue
        case = work / f"case{n:02d}"
        shutil.rmtree(case, ignore_errors=True)
        case.mkdir()
        src = base["crops"] if family.startswith("9") else base["cartridge"]
        data = case / src.name
        shutil.copytree(src, data)
        try:
            argv = setup(data)
        except Exception as err:  # a case that cannot even be set up is a harness bug
            print(f"[setup failed] {family} / {name}: {err}")
            continue
        rc, _, err = cli(*argv, timeout=args.timeout)
        outcome, note = classify(rc, err, check, case / "out")
        table.setdefault(family, Counter())[outcome] += 1
        print(f"{outcome:9s} {family:24s} {name:38s} {note}", flush=True)
    kinds = ["error", "handled", "refused", "traceback", "hang", "wrong"]
    print("\n| family | " + " | ".join(kinds) + " |")
    print("|---|" + "---|" * len(kinds))
    total = Counter()
    for family, counts in table.items():
        total.update(counts)
        print(f"| {family} | " + " | ".join(str(counts[k]) for k in kinds) + " |")
    print("| **all** | " + " | ".join(str(total[k]) for k in kinds) + " |")
    escaped = [p for p in (Path("/tmp/ctcnet_escaped_abs"), work / "escaped") if p.exists()]
    if escaped:
        print(f"written outside --out: {escaped}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
