"""A crop folder's splits as training reads them: what it says of sample ids that cannot keep
a patient's crops together."""


def test_a_split_of_crops_each_its_own_sample_is_warned_about(caplog):
    from ctcnet.training.crop_folder import warn_if_each_crop_its_own_sample

    with caplog.at_level("WARNING", logger="ctcnet.training.crop_folder"):
        warn_if_each_crop_its_own_sample([f"P000_cell{i}" for i in range(12)], "lab")
        assert "every crop is its own sample" in caplog.text
        caplog.clear()
        warn_if_each_crop_its_own_sample([f"P{i % 3}" for i in range(12)], "lab")
        assert not caplog.text
        # Crops named without a sample beside patients of many crops: said, naming some.
        mixed = [f"P{i % 4}" for i in range(40)] + [f"eight_{i}" for i in range(10)]
        warn_if_each_crop_its_own_sample(mixed, "lab")
        assert "10 crops are each a sample of their own beside 4 samples" in caplog.text
        assert "eight_0" in caplog.text
        caplog.clear()
        warn_if_each_crop_its_own_sample([f"P{i % 8}" for i in range(40)] + ["odd"], "lab")
        assert not caplog.text  # one stray crop is no pattern
        # An export numbering each class folder anew: ctc/cell_1.tif, wbc/cell_1.tif, ...
        stems = [f"cell_{i}" for i in range(12) for _ in range(4)]
        labels = ["ctc", "wbc", "cluster", "debris"] * 12
        warn_if_each_crop_its_own_sample(stems, "lab", labels, stems)
        assert "12 file names recur in several class folders, one crop in each" in caplog.text
        caplog.clear()
        patients = [f"P{i % 6}" for i in range(48)]  # patients' subfolders: not numbering
        warn_if_each_crop_its_own_sample(patients, "lab", labels, stems)
        assert not caplog.text
