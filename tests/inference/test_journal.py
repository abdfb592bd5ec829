"""ctcnet.inference.journal: the record of the frames a predict run has done."""

import os
import shutil
import time
from pathlib import Path

from conftest import predict, stated_range


def test_a_copy_done_before_is_dropped_from_the_journal(clean_run, cart):
    """A resumed run does not keep a frame it now knows to be a copy."""
    predict(clean_run, cart)
    before = (cart / "r00c02.tif").stat()
    shutil.copy(cart / "r00c01.tif", cart / "r00c02.tif")  # r00c02 replaced by r00c01's bytes
    # Same name, size and time as before: the journal's own check sees no change.
    os.utime(cart / "r00c02.tif", ns=(before.st_atime_ns, before.st_mtime_ns))
    summary = predict(clean_run, cart)
    assert summary.frames.skipped == 1 and summary.skipped_frames[0]["frame"] == "r00c02"
    assert summary.frames.resumed_from_journal == 2
    assert not (cart.parent / "out" / "parts" / "r00c02.parquet").exists()


def test_a_run_resumes_on_the_other_copy_of_one_model(clean_run, cart, tmp_path, caplog):
    """A batch moved from a GPU node (the checkpoint) to a CPU one (its fp32 ONNX export)
    resumes: the two make the same calls. Another model is still refused."""
    import logging

    import pytest

    from ctcnet.deploy.export import export_onnx
    from ctcnet.errors import InputError
    from ctcnet.inference.backends import load_backend

    out = tmp_path / "out"
    (cart / "r00c02.tif").rename(tmp_path / "r00c02.tif")
    predict(clean_run, cart, out)  # with the checkpoint: two frames journaled
    (tmp_path / "r00c02.tif").rename(cart / "r00c02.tif")
    export_onnx(clean_run["root"] / "model.pt", tmp_path / "model.onnx")
    onnx = {**clean_run, "backend": load_backend(tmp_path / "model.onnx", device="cpu")}
    summary = predict(onnx, cart, out)
    assert summary.frames.resumed_from_journal == 2 and summary.status == "ok"
    # The summary says which frames each copy made: its backend names only this run's.
    made = summary.frames_made_by
    assert made is not None and sorted(made.values()) == [1, 2]
    assert sorted(k.split(" (file")[0] for k in made) == ["onnx", "torch"]
    # Each names its model file too: a re-exported or altered copy of one network is said.
    from ctcnet.io.digests import file_sha256

    assert any(f"onnx (file {file_sha256(tmp_path / 'model.onnx')[:12]})" in k for k in made)
    assert summary.software["ctcnet"] and summary.frame_device == "numpy"
    # Every frame made by the other copy (a rerun with nothing left to do): said all the same,
    # or the summary would name a file that made none of its calls.
    predict(clean_run, cart, tmp_path / "whole")
    with caplog.at_level(logging.WARNING):
        summary = predict(onnx, cart, tmp_path / "whole")
    assert "every call is from the earlier run's journal (torch" in caplog.text
    assert summary.frames.resumed_from_journal == 3
    assert [k.split(" (file")[0] for k in summary.frames_made_by] == ["torch"]
    # ... and so does the index's entry of it, and the report's model line.
    from ctcnet.inference.run_index import write_run_index
    from ctcnet.report.report_page import _made_by_text

    summary.write(tmp_path / "index" / "S1")
    (entry,) = write_run_index(tmp_path / "index", ["S1"], world_size=1)["outputs"]
    assert entry["frames_made_by"] == summary.frames_made_by
    assert _made_by_text(summary.frames_made_by).startswith("; its frames' calls made by: torch")
    # A quantised graph makes calls of its own: its identity is its file's.
    import hashlib
    import json

    backend = onnx["backend"]
    record = json.loads(backend.classifier.metadata["ctcnet_export"])
    backend.classifier.metadata["ctcnet_export"] = json.dumps({**record, "precision": "int8"})
    assert backend.model_identity() == hashlib.sha256(
        (tmp_path / "model.onnx").read_bytes()).hexdigest()
    with pytest.raises(InputError, match="differs in model_sha256"):
        predict(onnx, cart, out)


def test_the_summary_names_the_model_file_by_its_sha256(clean_run):
    """What says which file made the calls (re-exports of one version share its version)."""
    import hashlib
    import json

    model = clean_run["root"] / "model.pt"
    summary = json.loads((clean_run["root"] / "clean" / "summary.json").read_text())
    assert summary["model"]["sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()


def test_a_journal_deleted_mid_run_is_an_error_and_a_rerun_redoes_it(clean_run, cart,
                                                                     tmp_path):
    """The output folder deleted (or moved) while predict runs: the frames journaled before
    it went are gone, and a summary without them would read ``ok`` with their events missing.
    The run stops instead, saying so; a rerun redoes them."""
    import pandas as pd
    import pytest

    from ctcnet.errors import InputError

    out = tmp_path / "out"
    gone = []

    def delete_after_first(frame_id):
        if not gone:
            gone.append(frame_id)
            shutil.rmtree(out / "parts")

    with pytest.raises(InputError, match=r"journal of 1 frame\(s\) \(r00c0.\) vanished"):
        predict(clean_run, cart, out, on_frame_done=delete_after_first)
    assert not (out / "events.parquet").exists() and not (out / "summary.json").exists()
    summary = predict(clean_run, cart, out)
    assert summary.status == "ok" and summary.frames.processed == 3
    pd.testing.assert_frame_equal(pd.read_parquet(out / "events.parquet"),
                                  pd.read_parquet(clean_run["root"] / "clean" / "events.parquet"))


def test_a_16_bit_scans_brightest_counts_are_kept_finite_in_the_gallery():
    """The journal keeps the gallery's crops at half precision: a 16-bit scan's counts past
    float16's top are kept at its top, not as infinity (a white tile, not a broken one)."""
    import numpy as np

    from ctcnet.inference.journal import HALF_TOP, gallery_values

    crops = np.array([[[[0.0, 4095.0], [65504.0, 65535.0]]]], np.float32)
    kept = gallery_values(crops)
    assert kept.dtype == np.float16 and np.isfinite(kept).all()
    assert kept.max() == np.float16(HALF_TOP) and kept[0, 0, 0, 1] == 4095.0


def test_a_journal_of_frames_detected_on_another_device_is_not_resumed(tmp_path):
    """A torch device's detection differs from numpy's in the last digits: a journal made on
    one is refused on the other, naming the setting, not mixed into one count."""
    import pytest

    from ctcnet.errors import InputError
    from ctcnet.inference.journal import open_journal

    on_numpy = {"model_sha256": "m", "detect": {"threshold_snr": 5.0}}
    on_gpu = {**on_numpy, "frame_device": "cuda:0"}
    open_journal(tmp_path, on_numpy, overwrite=False)
    (tmp_path / "parts" / "r00c00.parquet").write_bytes(b"")  # a frame done on numpy
    with pytest.raises(InputError, match="differs in frame_device"):
        open_journal(tmp_path, on_gpu, overwrite=False)
    # A journal of no frame keeps nothing apart: taken by the run on the other device.
    (tmp_path / "parts" / "r00c00.parquet").unlink()
    assert open_journal(tmp_path, on_gpu, overwrite=False) == set()


def test_frames_on_one_gpu_and_on_another_are_one_setting(clean_run, tmp_path):
    """GPU 0 and GPU 1 run the same frame kernels: a torchrun batch's ranks, draws counted on
    other GPUs and a sample rerun on another rank are one setting (also where an earlier run
    recorded the GPU, cuda:1), not "other settings"; numpy against a GPU still differs."""
    from ctcnet.detect.detection import DetectConfig
    from ctcnet.inference.journal import open_journal, run_fingerprint
    from ctcnet.inference.run_differences import differing_keys
    from ctcnet.inference.setting_differences import batch_settings, how_settings_differ
    from ctcnet.io.scan import open_cartridge

    backend = clean_run["backend"]
    made = run_fingerprint(backend, open_cartridge(clean_run["root"] / "cart"), backend.spec,
                           detect=DetectConfig(), edge_cut_as=None, compensated=False,
                           frame_device="cuda:1")
    assert made["frame_device"] == "cuda"
    on_numpy = {"model_sha256": "m", "detect": {"threshold_snr": 5.0}}
    on = {gpu: {**on_numpy, "frame_device": gpu} for gpu in ("cuda", "cuda:0", "cuda:1")}
    assert how_settings_differ(on) == []
    assert batch_settings(on["cuda:1"]) == batch_settings(on["cuda"])
    assert differing_keys(on["cuda:1"], on["cuda:0"]) == []
    assert how_settings_differ({"a": on_numpy, "b": on["cuda:1"]}) == \
        ['frame_device (null in a; "cuda" in b)']
    # A journal an earlier run began on GPU 1 (recording it) is resumed on GPU 0, not refused
    # (its one part, empty here, is then done again as unreadable).
    open_journal(tmp_path, on["cuda:1"], overwrite=False)
    (tmp_path / "parts" / "r00c00.parquet").write_bytes(b"")
    assert open_journal(tmp_path, on["cuda"], overwrite=False) == set()


def test_the_software_record_names_a_checkouts_commit(tmp_path):
    """A checkout's commit is read from its .git (a branch's loose or packed ref, a detached
    HEAD) without running git; none outside a checkout."""
    from ctcnet.core.provenance import _head_commit, software_record

    git = tmp_path / ".git"
    (git / "refs" / "heads").mkdir(parents=True)
    (git / "HEAD").write_text("ref: refs/heads/main\n")
    (git / "refs" / "heads" / "main").write_text("abc123\n")
    assert _head_commit(git) == "abc123"
    (git / "refs" / "heads" / "main").unlink()
    (git / "packed-refs").write_text("# pack-refs\ndef456 refs/heads/main\n")
    assert _head_commit(git) == "def456"
    (git / "HEAD").write_text("0123abcd\n")
    assert _head_commit(git) == "0123abcd"
    assert _head_commit(tmp_path / "nowhere") is None
    # A worktree: its own HEAD, the main repository's refs (commondir).
    tree = git / "worktrees" / "old"
    tree.mkdir(parents=True)
    (tree / "commondir").write_text("../..\n")
    (tree / "HEAD").write_text("ref: refs/heads/main\n")
    assert _head_commit(tree) == "def456"
    record = software_record()
    assert record["ctcnet"] and record["python"] and "numpy" in record["libraries"]


def test_a_worktrees_commit_and_a_checkouts_edits_are_read(tmp_path, monkeypatch):
    """A worktree's .git is a file naming its folder in the main repository; a checkout whose
    package files differ from its commit reads modified."""
    import shutil
    import subprocess

    import pytest

    from ctcnet.core import provenance

    if shutil.which("git") is None:
        pytest.skip("no git installed")
    repo = tmp_path / "repo"
    (repo / "ctcnet").mkdir(parents=True)
    (repo / "ctcnet" / "x.py").write_text("A = 1\n")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "one"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True,
                          text=True).stdout.strip()
    tree = tmp_path / "tree"
    subprocess.run([*git, "worktree", "add", "-q", str(tree)], check=True)
    for root, commit in ((repo, head), (tree, head)):
        monkeypatch.setattr(provenance, "_checkout", lambda root=root: root)
        provenance.checkout_commit.cache_clear()
        provenance.checkout_modified.cache_clear()
        assert provenance.checkout_commit() == commit
        assert provenance.checkout_modified() is False
    (tree / "ctcnet" / "x.py").write_text("A = 2\n")
    provenance.checkout_modified.cache_clear()
    assert provenance.checkout_modified() is True
    provenance.checkout_commit.cache_clear()
    provenance.checkout_modified.cache_clear()


def test_the_code_that_counted_is_named_by_its_digest(tmp_path, monkeypatch):
    """An installed package has no commit and every build between releases one version: a
    night resumed by another build read as made by one ctcnet. The code's digest names it,
    and changes with any of its files."""
    import shutil

    from ctcnet.core import provenance
    from ctcnet.inference.model_records import frames_made_by, made_by

    package = tmp_path / "site-packages" / "ctcnet"
    (package / "core").mkdir(parents=True)
    shutil.copy(provenance.__file__, package / "core" / "provenance.py")
    (package / "x.py").write_text("A = 1\n")
    monkeypatch.setattr(provenance, "__file__", str(package / "core" / "provenance.py"))
    provenance.code_digest.cache_clear()
    first = provenance.code_digest()
    (package / "x.py").write_text("A = 2\n")
    provenance.code_digest.cache_clear()
    second = provenance.code_digest()
    provenance.code_digest.cache_clear()
    assert first != second
    installed = {"ctcnet": "0.1.0", "commit": None}
    old, new = (made_by("onnx", {**installed, "code_sha256": c}) for c in (first, second))
    assert old == f"onnx, ctcnet 0.1.0 (code {first[:12]})" and old != new
    assert frames_made_by([{"made_by": old}, {"made_by": new}], new) == {old: 1, new: 1}
    assert provenance.software_text({**installed, "code_sha256": second}) == \
        f"ctcnet 0.1.0, code {second[:12]}"
    # The code's digest names it under a commit too: two commits of the same code (a
    # docs-only commit between a run's start and its resume) are one build, said so.
    at_commits = [made_by("onnx", {"ctcnet": "0.1.0", "commit": c * 20, "modified": False,
                                   "code_sha256": first}) for c in ("ab", "cd")]
    assert at_commits == [f"onnx, ctcnet 0.1.0 (code {first[:12]})"] * 2
    assert frames_made_by([{"made_by": m} for m in at_commits], at_commits[1]) is None
    # A record without a digest is named by its commit.
    assert made_by("onnx", {"ctcnet": "0.1.0", "commit": "ab" * 20, "modified": True}) == \
        "onnx, ctcnet 0.1.0 (abababababab modified)"
    assert made_by("onnx", installed, "cd" * 32) == "onnx (file cdcdcdcdcdcd), ctcnet 0.1.0"


def test_a_deleted_journal_still_refuses_another_run_over_a_finished_sample(clean_run, cart,
                                                                            tmp_path):
    """parts/ is most of a sample's disk and a finished sample needs it no more; deleted, what
    made the sample is still read from its summary.json (the journal's fingerprint): on a
    reviewed sample a run with other settings is refused without --overwrite (its calls are
    not replaced unasked), an unreviewed one is done again; the same model and settings run
    again, as its .onnx export does (the journal lets them resume each other). A summary
    written before the fingerprint was kept is told by its model file, and a reviewed one
    refused as of unknown settings."""
    import json

    import pytest

    from ctcnet.deploy.export import export_onnx
    from ctcnet.detect.detection import DetectConfig
    from ctcnet.errors import InputError
    from ctcnet.inference.backends import load_backend

    out = tmp_path / "out"
    predict(clean_run, cart, out)
    shutil.rmtree(out / "parts")
    (out / "review.csv").write_text("event_id\n")  # a person reviewed it
    with pytest.raises(InputError, match="differs in detect .*its journal parts/ was deleted"):
        predict(clean_run, cart, out, detect=DetectConfig(threshold_snr=9.0))
    assert predict(clean_run, cart, out).frames.processed == 3  # the same run: done again
    # Unreviewed, other settings are done again: every frame is, nothing is mixed in.
    (out / "review.csv").unlink()
    shutil.rmtree(out / "parts")
    assert predict(clean_run, cart, out, detect=DetectConfig(threshold_snr=9.0)).frames \
        .processed == 3
    shutil.rmtree(out / "parts")
    export_onnx(clean_run["root"] / "model.pt", tmp_path / "model.onnx")
    other = {**clean_run, "backend": load_backend(tmp_path / "model.onnx", device="cpu")}
    assert predict(other, cart, out).backend == "onnx"
    # A summary of an earlier ctcnet, without the fingerprint: told by its model file.
    shutil.rmtree(out / "parts")
    summary = json.loads((out / "summary.json").read_text())
    del summary["run_fingerprint"]
    summary["model"]["sha256"] = "0" * 64
    (out / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(InputError, match="another model file .*its journal parts/ was deleted"):
        predict(clean_run, cart, out)
    # ... and, reviewed, refused even with its model: its settings are not known.
    summary["model"]["sha256"] = None
    (out / "summary.json").write_text(json.dumps(summary))
    (out / "review.csv").write_text("event_id\n")
    with pytest.raises(InputError, match="reviewed outputs \\(review.csv\\) of a run whose "
                                         "settings"):
        predict(clean_run, cart, out)
    # Signed off: the refusal says what --overwrite does to the sign-off.
    (out / "signoff.json").write_text("{}")
    with pytest.raises(InputError, match="signed off, and --overwrite makes its calls again: "
                                         "that sign-off then no longer holds"):
        predict(clean_run, cart, out)
    (out / "signoff.json").unlink()
    assert predict(other, cart, out, overwrite=True).backend == "onnx"
    # The run --overwrite replaced stays on record beside the new one (as do those the runs
    # that did every frame again replaced: their tables changed).
    kept = [json.loads(k.read_text()) for k in (out / "previous").glob("summary-*.json")]
    assert len(kept) >= 2 and any(k["model"]["sha256"] is None for k in kept)


def test_a_scan_moved_since_its_run_resumes_and_a_copy_is_refused_naming_both(clean_run, cart,
                                                                              tmp_path, caplog):
    """A scan folder renamed as the scanner finished it (a run started early, on part of its
    frames): the journal's frames are there unchanged, and the run resumes from them (from a
    copy with other times too: the same bytes). A copy whose frames are not the journal's
    (other bytes) is refused, naming both folders and what --overwrite does, not a model or
    settings."""
    import os

    import pytest

    from ctcnet.errors import InputError

    out = tmp_path / "out"
    (cart / "r00c02.tif").rename(tmp_path / "r00c02.tif")  # the scanner still writing
    assert predict(clean_run, cart, out).status == "partial"
    moved = cart.rename(tmp_path / "done")
    (tmp_path / "r00c02.tif").rename(moved / "r00c02.tif")
    with caplog.at_level("WARNING", logger="ctcnet.inference.journal"):
        finished = predict(clean_run, moved, out)
    assert finished.status == "ok" and finished.frames.resumed_from_journal == 2
    assert f"the scan moved from {cart} to {moved};" in caplog.text
    copied = shutil.copytree(moved, tmp_path / "copied" / cart.name)
    for frame in copied.glob("*.tif"):
        os.utime(frame, (1e9, 1e9))
    caplog.clear()
    with caplog.at_level("WARNING", logger="ctcnet.inference.journal"):
        resumed = predict(clean_run, copied, out)
    assert resumed.frames.resumed_from_journal == 3
    # No frame read now: no speed (the journal's events over a rerun's moment read 2,894/s).
    assert resumed.events_per_s is None and resumed.classify_events_per_s is None
    # The folder it read is still there: a copy read, not a move.
    assert (f"the scan read from {moved} before, is read from a copy at {copied} (the "
            "first still there);") in caplog.text
    other = shutil.copytree(copied, tmp_path / "other" / cart.name)
    (other / "r00c01.tif").write_bytes((other / "r00c00.tif").read_bytes())
    with pytest.raises(InputError, match=r"read from another folder: it read .*copied.*, this "
                                         r"run reads .*other.*--overwrite") as refused:
        predict(clean_run, other, out)
    assert "review's decisions following their cells" in str(refused.value)
    assert "another model" not in str(refused.value)
    # Another scan's frames under this sample id: the lab's matter (set_aside_kind input).
    from ctcnet.errors import SampleIdTakenError
    from ctcnet.inference.output_names import set_aside_reason

    assert isinstance(refused.value, SampleIdTakenError)
    assert set_aside_reason(str(refused.value), other, refused.value).kind == "input"
    # Another scan under the same folder name (a scanner's Images/): told how to keep both.
    assert "given its own sample_id in its cartridge.json: --overwrite would replace this " \
        "sample's results with it" in str(refused.value)


def test_another_scan_of_the_sample_id_is_refused_as_one_not_as_other_settings(
        clean_run, cart, tmp_path):
    """A second scan under a sample id already in --out, its pixel size another: refused
    as a run of this sample read from another folder, naming what else differs and what
    --overwrite would do, not as "another model or other settings" (whose remedy would
    replace the other tube's results); names a screen shows alike are said to differ in
    their accents' encoding alone."""
    import json
    import unicodedata

    import pytest

    from ctcnet.errors import InputError

    out = tmp_path / "out"
    first = cart.rename(tmp_path / unicodedata.normalize("NFC", "Café"))
    assert predict(clean_run, first, out).status == "ok"
    second = shutil.copytree(first, tmp_path / "second" / unicodedata.normalize("NFD", "Café"))
    panel = json.loads((second / "panel.json").read_text())
    panel["pixel_size_um"] *= 1.1
    (second / "panel.json").write_text(json.dumps(panel))
    with pytest.raises(InputError, match="read from another folder") as refused:
        predict(clean_run, second, out)
    said = str(refused.value)
    assert "another model" not in said and "and the runs differ in scan_pixel_size_um" in said
    from ctcnet.errors import SampleIdTakenError

    assert isinstance(refused.value, SampleIdTakenError)
    assert "given its own sample_id in its cartridge.json" in said
    moved_alike = shutil.copytree(second, tmp_path / unicodedata.normalize("NFD", "Café"))
    shutil.rmtree(second)
    with pytest.raises(InputError, match="differ only in how their accents are encoded"):
        predict(clean_run, moved_alike, out)


def test_a_journal_of_no_frame_does_not_hold_a_renamed_scan_back(clean_run, cart, tmp_path):
    """A run that read no frame (its cartridge renamed as it began: every frame gone) leaves a
    journal of none: the rerun under the folder's new name starts afresh, not refused as
    another folder's run whose only remedy, --overwrite, would drop a batch's journals."""
    out = tmp_path / "out"
    assert predict(clean_run, cart, out).status == "ok"
    for done in (out / "parts").iterdir():  # what a run that read nothing leaves
        if done.name not in ("run.json", "frames.json"):
            done.unlink()
    moved = cart.rename(tmp_path / "renamed")
    again = predict(clean_run, moved, out)
    assert again.status == "ok" and again.frames.resumed_from_journal == 0
    assert Path(again.input) == moved.absolute()


def test_a_scan_already_output_under_another_sample_id_is_said(clean_run, cart, tmp_path,
                                                                caplog):
    """sample_id corrected in cartridge.json after the sample was reviewed: the run writes a
    second output beside the first, and says that the first holds the review."""
    import json
    import logging

    from ctcnet.inference.predict import PredictOptions, predict_inputs

    out = tmp_path / "results"
    info = cart / "cartridge.json"
    first = json.loads(info.read_text())["sample_id"]
    predict_inputs([cart], out, clean_run["backend"], PredictOptions(quiet=True, workers=0,
                                                                     report=None))
    (out / first / "review.csv").write_text("event_id,model_call,reviewer_call,reviewer,time\n")
    info.write_text(json.dumps({**json.loads(info.read_text()), "sample_id": "renamed"}))
    with caplog.at_level(logging.WARNING):
        predict_inputs([cart], out, clean_run["backend"], PredictOptions(quiet=True, workers=0,
                                                                         report=None))
    said = [r.getMessage() for r in caplog.records if "already has an output" in r.getMessage()]
    assert len(said) == 1 and f"as {first} (reviewed)" in said[0] and "writes renamed" in said[0]
    assert (out / "renamed" / "summary.json").exists()


def test_a_scan_restored_with_its_times_reset_is_the_scan_journaled(clean_run, cart, tmp_path):
    """An archive restored (file times to the second, or reset to the restore's time; in
    place or at another path) holds the bytes the journal was made of: no frame is done
    again, the counts' time stands and the exports beside the tables stay."""
    import json
    import time

    out = tmp_path / "out"
    predict(clean_run, cart, out)
    counted = json.loads((out / "summary.json").read_text())["counted_at"]
    exported = out / "out.fcs"  # an export of these tables (ctcnet export-events' name)
    exported.write_text("the signed export")
    for frame in cart.glob("r*.tif"):  # tar without sub-second times
        os.utime(frame, (int(frame.stat().st_mtime), int(frame.stat().st_mtime)))
    summary = predict(clean_run, cart, out)
    assert summary.frames.resumed_from_journal == 3
    restored = shutil.copytree(cart, tmp_path / "restored", copy_function=shutil.copyfile)
    summary = predict(clean_run, restored, out)  # elsewhere, every time the restore's
    assert summary.frames.resumed_from_journal == 3 and summary.status == "ok"
    assert json.loads((out / "summary.json").read_text())["counted_at"] == counted
    # The rerun's own time is said apart (run.json, samples.csv): it finished the sample.
    from ctcnet.inference.run_entry import output_entry

    written = json.loads((out / "summary.json").read_text())
    assert written["finished_at"] > written["counted_at"]
    entry = output_entry("out", written, out / "summary.json")  # to the second
    assert entry["finished_at"] >= entry["counted_at"]
    assert exported.read_text() == "the signed export"
    assert not (out / "previous").exists()
    # Other bytes behind a restored name are still done again, and the exports go.
    time.sleep(0.01)
    frame = restored / "r00c01.tif"
    frame.write_bytes((restored / "r00c00.tif").read_bytes())
    summary = predict(clean_run, restored, out)
    assert summary.frames.resumed_from_journal == 2 and not exported.exists()


def test_a_panel_json_corrected_for_its_plane_order_is_another_run(clean_run, cart, tmp_path):
    """A site's panel.json fixed after a night read CK and CD45 swapped: the journal's calls
    were made of the wrong planes, so the rerun is refused as of other settings (naming the
    plane order), not resumed with them; --overwrite redoes every frame."""
    import json

    import pytest

    from ctcnet.errors import InputError

    out = tmp_path / "out"
    info = json.loads((cart / "cartridge.json").read_text())
    (cart / "cartridge.json").write_text(json.dumps({**info, "site": "B", "nested": {"a": 1}}))
    predict(clean_run, cart, out)
    # (a lab's own keys of cartridge.json travel with the outputs: the plain ones)
    kept = json.loads((out / "summary.json").read_text())["cartridge_info"]
    assert kept["site"] == "B" and "nested" not in kept and "sample_id" not in kept
    panel = json.loads((cart / "panel.json").read_text())
    names = [c["name"] for c in panel["channels"]]
    ck, cd45 = names.index("CK"), names.index("CD45")
    channels = panel["channels"]
    channels[ck]["name"], channels[cd45]["name"] = "CD45", "CK"
    (cart / "panel.json").write_text(json.dumps(panel))
    with pytest.raises(InputError, match=r"differs in plane_order: which plane is read as which "
                                         r"channel, panel.json.s or the files. channel names\);"):
        predict(clean_run, cart, out)
    assert predict(clean_run, cart, out, overwrite=True).frames.resumed_from_journal == 0
    assert json.loads((out / "summary.json").read_text())["run_fingerprint"]["plane_order"] == {
        "file": [c["name"] for c in channels], "read": [0, cd45, ck, 3, 4]}


def test_a_scan_stored_at_16_times_its_counts_gets_the_calls_of_its_counts(clean_run, cart,
                                                                          tmp_path):
    """A 12-bit camera's counts written x16 into 16-bit files, panel.json stating 0-65535 (as
    many scanners store them): the same events, calls, flags and marker readings as the
    counts themselves; saturation is judged at the stated range, not the training data's."""

    import pandas as pd

    scaled = stated_range(shutil.copytree(cart, tmp_path / "x16"), 65535, 16)
    predict(clean_run, cart, tmp_path / "one")
    predict(clean_run, scaled, tmp_path / "sixteen")
    one, sixteen = (pd.read_parquet(tmp_path / run / "S1" / "events.parquet")
                    if (tmp_path / run / "S1").exists() else
                    pd.read_parquet(tmp_path / run / "events.parquet")
                    for run in ("one", "sixteen"))
    assert len(one) == len(sixteen)
    for column in ("class", "guard", "markers_ctc", "review"):
        if column in one:
            assert one[column].equals(sixteen[column]), column


def test_a_12_bit_scan_stated_as_16_bit_gets_the_guard_of_its_cameras_top(clean_run, cart,
                                                                           tmp_path):
    """Glare clips a 12-bit camera's CK at 4095 over a band of a frame. Stated 0-4095, or
    0-65535 with the counts as they are, or 0-65535 stored x16 (clipped at 65520): every
    event's calls, flags and marker readings the same (the measurements up to the rounding
    of counts stored x16). Stated 0-65535, the guard read the band as unsaturated (it is
    saturated at the camera's top, which the frame check said)."""

    import numpy as np
    import pandas as pd
    import tifffile

    from ctcnet.inference.guard import TABLE_MEASURES

    for frame in cart.glob("r*.tif"):
        pixels = tifffile.imread(frame)
        pixels[1, : pixels.shape[1] // 3] = 4095
        tifffile.imwrite(frame, pixels)

    wide = stated_range(shutil.copytree(cart, tmp_path / "wide"), 65535)
    x16 = stated_range(shutil.copytree(cart, tmp_path / "x16"), 65535, 16)
    runs = {}
    for name, root in (("counts", cart), ("wide", wide), ("x16", x16)):
        predict(clean_run, root, tmp_path / f"out_{name}")
        runs[name] = pd.read_parquet(tmp_path / f"out_{name}" / "events.parquet")
    readings = [c for c in runs["counts"].columns
                if c in ("class", "guard", "review") or c.startswith(("markers_", "ck_", "cd45_",
                                                                        "dna_"))]
    assert "guard" in readings
    for name in ("wide", "x16"):
        assert len(runs[name]) == len(runs["counts"]), name
        for column in readings:
            if column in TABLE_MEASURES:
                np.testing.assert_allclose(runs[name][column], runs["counts"][column],
                                           rtol=0.01, atol=0.02, err_msg=f"{name} {column}")
            else:
                assert runs[name][column].equals(runs["counts"][column]), (name, column)


def test_an_overwrite_stopped_before_its_summary_leaves_the_sample_missing(clean_run, cart,
                                                                           tmp_path):
    """--overwrite keeps the replaced run's summary in previous/ and takes it out of the
    folder as its journal goes: a run stopped then lists the sample as missing, not "ok" with
    the replaced run's counts; the same command run again writes the sample."""
    import json
    import time

    from ctcnet.inference.journal import open_journal
    from ctcnet.inference.run_index import write_run_index

    out = tmp_path / "out"
    first = predict(clean_run, cart, out / "S1")
    fingerprint = json.loads((out / "S1" / "summary.json").read_text())["run_fingerprint"]
    began = time.time()
    (out / "S1" / "index.html").write_text("<p>ok, ctc 3</p>")  # the replaced run's page
    open_journal(out / "S1", fingerprint, True, [], None)  # the journal opened; then stopped
    assert not (out / "S1" / "summary.json").exists()
    (kept,) = (out / "S1" / "previous").glob("summary-*.json")
    # Nor does its page show the replaced counts as current.
    page = (out / "S1" / "index.html").read_text()
    assert "ctc 3" not in page and "being run again" in page and kept.name in page
    index = write_run_index(out, ["S1"], world_size=1, state="stopped", since=began)
    (entry,) = index["outputs"]
    assert entry["missing"] and "status" not in entry
    # The output it replaced, kept in previous/ by this run, marked as the earlier one.
    assert entry["kept_output"]["events"] == first.events
    # ... named where it lies now (it named S1/summary.json, which is not there).
    assert entry["kept_output"]["summary"] == f"S1/previous/{kept.name}"
    assert (out / entry["kept_output"]["summary"]).is_file()
    again = predict(clean_run, cart, out / "S1")
    assert again.counts == first.counts and (out / "S1" / "summary.json").is_file()
    # The same tables as the run it replaced: that run's counts' time stands (read from the
    # summary kept in previous/).
    assert again.counted_at == first.counted_at


def test_a_corrected_blood_volume_keeps_the_earlier_rates_on_record(clean_run, cart, tmp_path,
                                                                    caplog):
    """cartridge.json's blood volume corrected after a run: the rerun writes the same tables
    (the counts' time stands), its rates per 7.5 mL change, and the earlier summary, with the
    rates it gave, is kept in previous/ and said."""
    import json
    import logging

    from conftest import edit_json

    from ctcnet.inference.rerun_outputs import in_folder_exports

    out = tmp_path / "out"
    first = predict(clean_run, cart, out)
    fcs = in_folder_exports(out, first.sample_id)[0]
    fcs.write_bytes(b"an export of the earlier rates")  # (ctcnet export-events's file)
    edit_json(cart / "cartridge.json", blood_volume_ml=6.0)
    with caplog.at_level(logging.WARNING):
        again = predict(clean_run, cart, out)
    assert again.counts == first.counts and again.counted_at == first.counted_at
    # Its export carries the earlier volume: moved aside, said, not left beside the new rates.
    assert not fcs.exists() and len(list((out / "previous").glob(f"exports-*/{fcs.name}"))) == 1
    assert "carry the blood volume it read (7.5 mL), not the 6 mL now stated" in caplog.text
    assert again.blood_volume_ml == 6.0
    (kept,) = (out / "previous").glob("summary-*.json")
    assert json.loads(kept.read_text())["per_7_5_ml"] == first.per_7_5_ml
    assert "the blood volume is now 6 mL (cartridge.json), the earlier run read 7.5 mL" in \
        caplog.text
    predict(clean_run, cart, out)  # the same volume again: nothing more kept
    assert len(list((out / "previous").glob("summary-*.json"))) == 1


def test_a_corrected_patient_id_keeps_the_earlier_summary_and_says_what_moved(
        clean_run, cart, tmp_path, caplog):
    """cartridge.json's patient id corrected after a run: the rerun writes the same counts
    under the other patient; the summary that filed them under the first one is kept in
    previous/, and what moved is said (before, nothing: a LIMS kept the result under both)."""
    import json
    import logging

    from conftest import edit_json

    out = tmp_path / "out"
    edit_json(cart / "cartridge.json", patient_id="PAT-001")
    first = predict(clean_run, cart, out)
    edit_json(cart / "cartridge.json", patient_id="PAT-002")
    with caplog.at_level(logging.WARNING):
        again = predict(clean_run, cart, out)
    assert again.counts == first.counts
    (kept,) = (out / "previous").glob("summary-*.json")
    assert json.loads(kept.read_text())["cartridge_info"]["patient_id"] == "PAT-001"
    assert "patient_id 'PAT-001', now 'PAT-002'" in caplog.text
    assert json.loads((out / "summary.json").read_text())["cartridge_info"][
        "patient_id"] == "PAT-002"


def test_a_finished_sample_run_again_keeps_its_summary_until_the_new_one(clean_run, cart,
                                                                          tmp_path,
                                                                          monkeypatch):
    """A finished night run again (one cartridge added to it) writes each finished sample's
    tables again, the same bytes: a run stopped on the way leaves the summary that holds for
    them (a LIMS reading summary.json lost complete results before). A sample whose tables
    change (a frame redone from other bytes) has none until its run finishes."""
    import pytest

    import ctcnet.inference.predict as P

    out = tmp_path / "out"
    predict(clean_run, cart, out)
    before = (out / "summary.json").read_text()
    release = P.release_free_memory

    def stopped_once_the_tables_are_written():  # a kill between the tables and the summary
        if (out / "events.parquet").stat().st_mtime_ns > began:
            raise KeyboardInterrupt
        release()

    monkeypatch.setattr(P, "release_free_memory", stopped_once_the_tables_are_written)
    began = time.time_ns()
    with pytest.raises(KeyboardInterrupt):
        predict(clean_run, cart, out)
    assert (out / "summary.json").read_text() == before
    # Another frame's bytes: the tables change, and the summary goes with the old tables.
    frame = sorted(cart.glob("r*c*.tif"))[0]
    data = bytearray(frame.read_bytes())
    data[-2:] = bytes([data[-2] ^ 1, data[-1]])
    frame.write_bytes(bytes(data))
    (out / "index.html").write_text("<p>ok, ctc 3</p>")  # the earlier run's page
    began = time.time_ns()
    with pytest.raises(KeyboardInterrupt):
        predict(clean_run, cart, out)
    assert not (out / "summary.json").exists()
    # Nor is its page left showing the earlier counts as current (only --overwrite's was).
    page = (out / "index.html").read_text()
    assert "ctc 3" not in page and "being run again" in page


def test_a_frame_made_by_the_same_model_file_under_other_code_is_no_other_models():
    """After an upgrade, the earlier run's frames (its record naming no model file, or the
    same one) are this model's: not said to be another model's calls."""
    from ctcnet.inference.model_records import same_model_file

    now = "onnx (file c538449cce41), ctcnet 0.1.0 (3ba1e9dc0000)"
    assert same_model_file("onnx, ctcnet 0.1.0 (07dd9f9e7efe)", now)  # an earlier record
    assert same_model_file("onnx (file c538449cce41), ctcnet 0.1.0 (07dd9f9e7efe)", now)
    assert not same_model_file("onnx (file 5e99c9c9b0e9), ctcnet 0.1.0 (3ba1e9dc0000)", now)
    assert not same_model_file("torch (file c538449cce41), ctcnet 0.1.0", now)


def test_an_earlier_journal_without_its_input_is_no_run_read_from_another_folder():
    """An earlier ctcnet's journal recorded no input folder: a rerun from the same scan is not
    said to read "from another folder: it read None"; what does differ is named."""
    from ctcnet.inference.journal import _moved
    from ctcnet.inference.run_differences import what_differs

    previous = {"model_sha256": "a" * 64}
    now = {"model_sha256": "b" * 64, "input": "/scans/cartA"}
    for earlier in (previous, {**previous, "input": None}):  # not recorded, or recorded none
        assert _moved(earlier, now) == ""
        assert what_differs(earlier, now).startswith("model_sha256 (another model file")
    assert "it read /scans/old" in _moved({**previous, "input": "/scans/old"}, now)


def test_two_summaries_of_one_counts_time_are_both_kept(tmp_path):
    """A volume corrected twice keeps the counts' time: the second summary kept under that
    time went over the first (a result reported 'ok' at 7.5 mL lost from previous/)."""
    import json

    from ctcnet.inference.summary import keep_previous_summary, kept_summaries

    sample = tmp_path / "S1"
    sample.mkdir()
    for volume in (7.5, 6.8, 6.8):
        (sample / "summary.json").write_text(json.dumps({"counted_at": 1e9,
                                                         "blood_volume_ml": volume}))
        keep_previous_summary(sample)
    kept = kept_summaries(sample)
    assert [json.loads(p.read_text())["blood_volume_ml"] for p in kept] == [7.5, 6.8]
    assert kept[-1].name.endswith("-2.json")  # the latest last: what a rerun reads


def test_a_scan_read_before_its_sample_id_was_named_is_said(clean_run, cart, tmp_path, caplog):
    """A scanner's folder read while it was still being written (fewer frames: another scan
    identity) before cartridge.json named its sample id: the next run writes the named sample
    beside the first output, and says so (the first stayed, a phantom sample, unsaid)."""
    import json
    import logging

    from ctcnet.inference.predict import PredictOptions, predict_inputs

    out = tmp_path / "results"
    info = cart / "cartridge.json"
    first = json.loads(info.read_text())["sample_id"]
    last = sorted(cart.glob("r*.tif"))[-1]
    last.rename(tmp_path / last.name)  # not written yet
    options = PredictOptions(quiet=True, workers=0, report=None)
    predict_inputs([cart], out, clean_run["backend"], options)
    (tmp_path / last.name).rename(last)
    info.write_text(json.dumps({**json.loads(info.read_text()), "sample_id": "named"}))
    with caplog.at_level(logging.WARNING):
        predict_inputs([cart], out, clean_run["backend"], options)
    said = [r.getMessage() for r in caplog.records if "already has an output" in r.getMessage()]
    assert len(said) == 1 and f"as {first}" in said[0] and "still being written?" in said[0]
    assert f"{first} is left as it was" in said[0]


def test_a_scan_reviewed_while_it_was_written_is_not_said_to_be_another(clean_run, cart,
                                                                         tmp_path, caplog):
    """Review began on a scan still being written; the next run has every frame read then and
    more: no warning that the decisions were made on another scan (they still count)."""
    import json
    import logging

    from ctcnet.inference.predict import PredictOptions, predict_inputs

    out = tmp_path / "results"
    sample = json.loads((cart / "cartridge.json").read_text())["sample_id"]
    last = sorted(cart.glob("r*.tif"))[-1]
    last.rename(tmp_path / last.name)
    options = PredictOptions(quiet=True, workers=0, report=None)
    predict_inputs([cart], out, clean_run["backend"], options)
    (out / sample / "review.csv").write_text("event_id,model_call,reviewer_call,reviewer,time\n")
    (tmp_path / last.name).rename(last)
    with caplog.at_level(logging.INFO):
        predict_inputs([cart], out, clean_run["backend"], options)
    assert "frames were not all these" not in caplog.text
    assert "1 frame(s) more than when its review began" in caplog.text


def test_a_rescan_at_another_pixel_size_is_said_as_the_scan_not_the_settings():
    """A sample scanned again under its id into last night's folder: the refusal named "another
    model, other settings" and "scan_pixel_size_um", and --overwrite, which redoes every input
    of the run."""
    from ctcnet.inference.run_differences import what_differs

    said = what_differs({"scan_pixel_size_um": 0.64, "model": "m"},
                         {"scan_pixel_size_um": 0.52, "model": "m"})
    assert said == ("scan_pixel_size_um (0.64 then, 0.52 now: another scan of the sample, a "
                    "rescan, or a pixel size corrected)")


def test_one_scan_under_two_sample_ids_is_marked_in_run_json_and_warned_of(clean_run, tmp_path,
                                                                         caplog):
    """The same frames run under two sample ids (an id corrected and run again, or a scan
    copied into a second folder): each was counted as a blood draw of its own, said only by
    samples.csv's same_scan_as. run.json's entries name each other and the run warns."""
    import logging

    from ctcnet.inference.run_index import write_run_index

    summary = clean_run["clean"]
    for name in ("P02_WK3", "P20_WK3"):
        summary.write(tmp_path / "index" / name)
    with caplog.at_level(logging.WARNING):
        first, second = write_run_index(tmp_path / "index", ["P02_WK3", "P20_WK3"],
                                        world_size=1)["outputs"]
    assert first["same_scan_as"] == ["P20_WK3"] and second["same_scan_as"] == ["P02_WK3"]
    assert f"P02_WK3, P20_WK3: one scan (the same frames, cartridge_id " \
        f"{summary.cartridge_id}) under 2 sample ids" in caplog.text
    (alone,) = write_run_index(tmp_path / "index", ["P02_WK3"], world_size=1)["outputs"]
    assert "same_scan_as" not in alone


def test_the_run_index_is_written_after_the_samples_table(tmp_path, monkeypatch):
    """A run killed between the two (out of memory, a power cut) left run.json "finished"
    without samples.csv; the table is written first, so run.json still says "running"."""
    import json

    import pytest

    from ctcnet.inference import run_index

    out = tmp_path / "out"
    out.mkdir()
    (out / "run.json").write_text(json.dumps({"state": "running"}))

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(run_index, "_write_samples_table", killed)
    with pytest.raises(KeyboardInterrupt):
        run_index.write_run_index(out, [], world_size=1)
    assert json.loads((out / "run.json").read_text())["state"] == "running"
    monkeypatch.undo()
    run_index.write_run_index(out, [], world_size=1)
    assert json.loads((out / "run.json").read_text())["state"] == "finished"
    assert (out / "samples.csv").is_file()


def test_a_refusal_says_a_stale_sign_off_as_stale(tmp_path):
    """A sample whose sign-off no longer holds (calls changed since) was called "signed off"
    by the refusal that names --overwrite."""
    import json

    from ctcnet.inference.run_differences import overwrite_advice

    assert overwrite_advice(tmp_path) == ""
    (tmp_path / "signoff.json").write_text("{}")
    (tmp_path / "summary.json").write_text(json.dumps({"signoff": {"status": "current"}}))
    assert "the sample is signed off" in overwrite_advice(tmp_path)
    (tmp_path / "summary.json").write_text(json.dumps(
        {"signoff": {"status": "calls changed since"}}))
    said = overwrite_advice(tmp_path)
    assert "no longer holds already (calls changed since)" in said and "is signed off" not in said
