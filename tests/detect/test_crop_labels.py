"""ctcnet.detect.crop_labels: which class a lab's folder or label names."""


def test_a_label_is_read_as_a_class_misspelt_only_for_a_slip_of_the_keys():
    """A one-letter likeness named other cells as a class: rbc (red cells) "did you mean wbc",
    cec (endothelial) and etc "ctc"; predict now refuses a misspelt class folder, so those
    would have refused a lab's run and told it to relabel red cells as leukocytes."""
    from ctcnet.detect.crop_labels import class_meant

    names = ["ctc", "wbc", "cluster", "debris"]
    for other in ("rbc", "RBC", "cec", "ctm", "etc", "ltc", "tumour", "emt_ctc", "platelets"):
        assert class_meant(other, names) is None, other
    meant = {"wcb": "wbc", "debri": "debris", "clsuter": "cluster", "clusters": "cluster",
             "CTCs": "ctc", "Leukocytes": "wbc"}
    assert {word: class_meant(word, names) for word in meant} == meant
