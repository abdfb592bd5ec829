"""ctcnet.review.runs: which outputs of a results folder the review tools read."""


def test_a_results_folder_names_the_crop_set_outputs_it_leaves_out(tmp_path, caplog):
    """The review page, ``ctcnet crops`` and ``export-events`` read cartridges' events; a
    crop folder's predictions beside them are named as left out, not skipped silently."""
    import pytest

    from ctcnet.errors import InputError
    from ctcnet.review.runs import find_samples

    (tmp_path / "crops1").mkdir()
    (tmp_path / "crops1" / "predictions.parquet").write_bytes(b"")
    with pytest.raises(InputError, match=r"crop folder output\(s\) \(crops1\)"):
        find_samples(tmp_path)
    (tmp_path / "P001").mkdir()
    for name in ("summary.json", "events.parquet"):
        (tmp_path / "P001" / name).write_bytes(b"")
    with caplog.at_level("WARNING"):
        assert list(find_samples(tmp_path)) == ["P001"]
    assert "crops1" in caplog.text and "index.html" in caplog.text  # where its calls are shown
    # The crop folder's output given itself (as `review RESULTS/<sample>` takes a sample's):
    # said so, not "dictionary update sequence element #0 has length 1".
    (tmp_path / "crops1" / "summary.json").write_text('{"dataset": "crops1", "crops": 2}')
    with pytest.raises(InputError, match=r"a crop folder's output: its calls are shown with "
                       r"the crops in its index\.html"):
        find_samples(tmp_path / "crops1")


def test_a_folder_a_run_is_still_writing_says_so_not_that_it_holds_no_outputs(tmp_path):
    import json

    import pytest

    from ctcnet.errors import InputError
    from ctcnet.review.runs import find_samples

    (tmp_path / "run.json").write_text(json.dumps({"state": "running"}))
    with pytest.raises(InputError, match="yet: run.json says a run is writing into this"):
        find_samples(tmp_path)
    (tmp_path / "run.json").write_text(json.dumps({"state": "finished"}))
    with pytest.raises(InputError, match=r"here \(expected a cartridge's"):
        find_samples(tmp_path)


def test_an_output_folder_without_a_finished_sample_says_how_its_run_ended(tmp_path):
    """A batch killed (its process gone) or stopped before any sample: not "a run is writing
    into this folder", which sent a person to wait for nothing."""
    import json
    import os
    import socket
    import subprocess
    import sys

    import pytest

    from ctcnet.errors import InputError
    from ctcnet.review.runs import find_samples

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    for index, said in (({"state": "running", "host": socket.gethostname(), "pid": int(gone)},
                         "the run that wrote run.json was killed before its first sample"),
                        ({"state": "stopped"}, "was stopped before its first sample was done; "
                                               "the same predict command resumes it"),
                        ({"state": "running", "host": socket.gethostname(),
                          "pid": os.getpid()}, "run.json says a run is writing into this")):
        (tmp_path / "run.json").write_text(json.dumps(index))
        with pytest.raises(InputError, match=said):
            find_samples(tmp_path)
    # The samples it began (their journal written, no summary yet) are named.
    (tmp_path / "sim21" / "parts").mkdir(parents=True)
    (tmp_path / "run.json").write_text(json.dumps({"state": "stopped"}))
    with pytest.raises(InputError, match="resumes it; begun and not finished: sim21"):
        find_samples(tmp_path)


def test_a_sample_folder_linked_from_elsewhere_is_not_read(tmp_path, caplog):
    """A link into another batch's sample: served (and written to) by the review server."""
    from ctcnet.review.runs import find_samples

    for name in ("P1", "elsewhere/P2"):
        (tmp_path / name).mkdir(parents=True)
        (tmp_path / name / "summary.json").write_text("{}")
        (tmp_path / name / "events.parquet").write_bytes(b"")
    (tmp_path / "results").mkdir()
    (tmp_path / "P1").rename(tmp_path / "results" / "P1")
    (tmp_path / "results" / "P2").symlink_to(tmp_path / "elsewhere" / "P2",
                                             target_is_directory=True)
    with caplog.at_level("WARNING"):
        assert list(find_samples(tmp_path / "results")) == ["P1"]
    assert "1 sample folder(s) are links to folders elsewhere, not read (P2)" in caplog.text


def test_a_sample_folder_a_rerun_is_writing_says_so_not_that_it_holds_no_outputs(tmp_path):
    """export-events of a sample during its predict --overwrite said "no predict outputs
    here" where the review page said "being written"."""
    import pytest

    from ctcnet.errors import InputError
    from ctcnet.io.atomic import exclusive_folder
    from ctcnet.review.runs import find_samples

    sample = tmp_path / "P3"
    (sample / "parts").mkdir(parents=True)
    (sample / "events.parquet").write_bytes(b"")
    with exclusive_folder(sample, "predict"):
        with pytest.raises(InputError, match="ctcnet predict is writing it; wait for it"):
            find_samples(sample)
    with pytest.raises(InputError, match="stopped before it finished; the same predict"):
        find_samples(sample)
