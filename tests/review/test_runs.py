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
