"""ctcnet.io.taxonomy: the classes and the subtype mapping."""

import json

import pytest

from ctcnet.errors import InputError
from ctcnet.io.taxonomy import Taxonomy, load_taxonomy


def test_taxonomy_subtype_mapping(tmp_path):
    tax = load_taxonomy(["ctc", "wbc", "cluster", "debris", "tdev", "bare_nucleus"])
    assert tax.class_for_subtype("tdev", "debris") == "tdev"
    assert tax.class_for_subtype("fibre", "debris") == "debris"
    custom = Taxonomy.from_dict({"classes": ["ctc", {"name": "other", "includes": ["lymphocyte",
                                                                                    "fibre"]}]})
    assert custom.class_for_subtype("lymphocyte", "wbc") == "other"
    with pytest.raises(InputError, match="no class"):
        custom.class_for_subtype("tdev", "debris")
    with pytest.raises(InputError):
        load_taxonomy(["ctc", "CTC!"])
    path = tmp_path / "tax.json"
    path.write_text(json.dumps(tax.to_dict()))
    assert load_taxonomy(path) == tax


def test_reported_classes_must_be_the_taxonomys_own():
    """A typo in 'reported' ("ctc-emt") is refused: the class would lose its rate per 7.5 mL
    without a word. Left out, ctc and cluster are reported where the taxonomy has them."""
    classes = ["ctc", "ctc_emt", "wbc", "cluster", "debris"]
    with pytest.raises(InputError, match=r"'reported' \['ctc', 'ctc-emt'\] names classes it "
                                         r"does not have"):
        load_taxonomy({"classes": classes, "reported": ["ctc", "ctc-emt"]})
    good = load_taxonomy({"classes": classes, "reported": ["ctc", "ctc_emt", "cluster"]})
    assert good.reported_classes() == ["ctc", "ctc_emt", "cluster"]
    assert load_taxonomy({"classes": ["ctc", "wbc"]}).reported_classes() == ["ctc"]


def test_a_subtype_listed_under_two_classes_is_named():
    """ctc_dim under both ctc and ctc_emt: the first would take every such cell and the other
    class none; the file is refused naming the subtype and both classes."""
    with pytest.raises(InputError, match="'ctc_dim' is in the 'includes' of both 'ctc' and "
                                         "'ctc_emt'"):
        load_taxonomy({"classes": [{"name": "ctc", "includes": ["ctc_bright", "ctc_dim"]},
                                   {"name": "ctc_emt", "includes": ["ctc_dim"]}, "wbc"]})


def test_the_guard_checks_a_class_as_the_kind_it_says_or_its_subtypes_share():
    """The kind of call the marker guard checks a class as: its ``checked_as``; else its own
    name where that is one of the four; else the parent its included subtypes share (or its
    name's, a class named like a subtype); else none. A kind the guard does not know is
    refused; ``checked_as`` survives the round trip through the spec's dict."""
    tax = load_taxonomy({"classes": [
        "ctc", {"name": "ctc_emt", "includes": ["ctc_dim"]}, "tdev", "lymphocyte",
        {"name": "real_emt", "checked_as": "ctc"}, "other",
        {"name": "mixed", "includes": ["ctc_bright", "lymphocyte"]}, "wbc", "cluster", "debris"]})
    assert tax.guard_kinds() == ["ctc", "ctc", "debris", "wbc", "ctc", "", "", "wbc",
                                 "cluster", "debris"]
    assert Taxonomy.from_dict(tax.to_dict()) == tax
    assert load_taxonomy(None).guard_kinds() == ["ctc", "wbc", "cluster", "debris"]
    with pytest.raises(InputError, match="checked_as 'emt' is none of the kinds"):
        load_taxonomy({"classes": ["ctc", {"name": "x", "checked_as": "emt"}]})


def test_a_misspelt_key_is_refused_not_passed_over():
    """``cheked_as`` (or ``reportd``) would be dropped and the model trained without it: refused,
    naming the key meant. A key like no known one (a comment) is let be."""
    with pytest.raises(InputError, match="class 'ctc_emt': key 'cheked_as' is not read; did "
                                         "you mean 'checked_as'"):
        load_taxonomy({"classes": ["ctc", {"name": "ctc_emt", "cheked_as": "ctc"}]})
    with pytest.raises(InputError, match="key 'reportd' is not read; did you mean 'reported'"):
        load_taxonomy({"classes": ["ctc", "wbc"], "reportd": ["ctc"]})
    assert load_taxonomy({"classes": ["ctc", "wbc"], "comment": "ours"}).names == ["ctc", "wbc"]


def test_includes_is_a_list_of_the_simulators_subtypes():
    """A string (read letter by letter) and a misspelt subtype (its cells drawn as another
    class, the guard's checks taken off this one) are refused, the latter naming the subtype
    meant; a model's stored taxonomy is read as it was trained."""
    with pytest.raises(InputError, match=r'class \'ctc_emt\': includes is a list of subtypes, '
                                         r'e.g. \["ctc_dim"\]'):
        load_taxonomy({"classes": ["ctc", {"name": "ctc_emt", "includes": "ctc_dim"}]})
    with pytest.raises(InputError, match="'ctc_apoptotc' is none of the simulator's subtypes; "
                                         "did you mean 'ctc_apoptotic'"):
        load_taxonomy({"classes": ["ctc", {"name": "ctc_emt",
                                           "includes": ["ctc_dim", "ctc_apoptotc"]}]})
    # A model's stored taxonomy is read as it was trained (a subtype kept as listed).
    stored = Taxonomy.from_dict({"classes": ["ctc", {"name": "x", "includes": ["ctc_dimm"]}]},
                                stored=True)
    assert stored.classes[1].includes == ("ctc_dimm",) and stored.guard_kind("x") == ""
    # What fine-tuning reads: the base model's taxonomy, as it was trained.
    base = {"classes": ["ctc", {"name": "x", "includes": ["ctc_dimm"]}]}
    assert load_taxonomy(base, stored=True).classes[1].includes == ("ctc_dimm",)


def test_a_class_set_without_clusters_reports_ctc_alone_and_reads_back():
    """The least taxonomy file the docs give, {"classes": ["ctc", "wbc"]}: written into a
    model's spec and read back, it did not name the default 'cluster' it lacks."""
    taxonomy = Taxonomy.from_dict({"classes": ["ctc", "wbc"]})
    assert taxonomy.to_dict()["reported"] == ["ctc"]
    assert Taxonomy.from_dict(taxonomy.to_dict()).reported_classes() == ["ctc"]
